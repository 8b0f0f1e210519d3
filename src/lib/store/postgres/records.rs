//! PostgreSQL: what runs leave behind: attempts, log lines, events, data-monitor checks.

use super::*;

fn log_insert(lines: &[LogLine]) -> QueryBuilder<'_, Postgres> {
    crate::store::common::log_insert(lines, "ON CONFLICT (task_id, attempt, seq) DO NOTHING")
}

pub(super) async fn data_monitor_insert(pool: &PgPool, c: &NewDataMonitorCheck) -> Result<()> {
    sqlx::query(
        "INSERT INTO data_monitor (checked_at, workflow, instance_id, task_id, node, category, source_name, \
         time_mark, value, min_value, max_value, passed, message) \
         VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&c.workflow)
    .bind(c.instance_id)
    .bind(c.task_id)
    .bind(&c.node)
    .bind(&c.category)
    .bind(&c.source_name)
    .bind(&c.time_mark)
    .bind(c.value)
    .bind(c.min_value)
    .bind(c.max_value)
    .bind(c.passed)
    .bind(&c.message)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn data_monitor_list(
    pool: &PgPool,
    instance: InstanceId,
) -> Result<Vec<DataMonitorRow>> {
    Ok(sqlx::query_as(
        "SELECT id, checked_at, workflow, instance_id, task_id, node, category, source_name, time_mark, \
         value, min_value, max_value, passed, message FROM data_monitor WHERE instance_id = $1 ORDER BY id",
    )
    .bind(instance)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn event_list(pool: &PgPool, f: &EventFilter) -> Result<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "SELECT id, created_at, workflow, instance_id, task_id, node, kind, from_status, to_status, message, actor \
         FROM event WHERE ($1::bigint IS NULL OR instance_id = $1) AND id > COALESCE($2, 0) ORDER BY id LIMIT $3",
    )
    .bind(f.instance_id)
    .bind(f.after_id)
    .bind(f.limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_attempt_list(
    pool: &PgPool,
    instance: InstanceId,
) -> Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "SELECT a.task_id, a.attempt, a.worker_id, a.outcome, a.exit_code, a.error, a.started_at, a.ended_at \
         FROM task_attempt a JOIN task t ON t.id = a.task_id WHERE t.instance_id = $1 ORDER BY a.task_id, a.attempt",
    )
    .bind(instance)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_log_insert_many(pool: &PgPool, lines: &[LogLine]) -> Result<()> {
    for chunk in lines.chunks(ROWS_PER_INSERT) {
        log_insert(chunk).build().execute(pool).await?;
    }
    Ok(())
}

pub(super) async fn task_log_insert_many_tx(
    conn: &mut PgConnection,
    lines: &[LogLine],
) -> Result<()> {
    for chunk in lines.chunks(ROWS_PER_INSERT) {
        log_insert(chunk).build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn task_log_read(pool: &PgPool, q: &LogQuery) -> Result<Vec<LogLine>> {
    let (after_task, after_attempt, after_seq) =
        q.after.map(|(t, a, s)| (t.0, a, s)).unwrap_or((0, 0, -1));
    Ok(sqlx::query_as(
        "SELECT task_id, attempt, seq, logged_at, stream, line FROM task_log \
         WHERE task_id = ANY($1) AND (task_id, attempt, seq) > ($2, $3, $4) \
         AND ($6::text IS NULL OR strpos(lower(line), lower($6)) > 0) \
         ORDER BY task_id, attempt, seq LIMIT $5",
    )
    .bind(q.task_ids.iter().map(|i| i.0).collect::<Vec<_>>())
    .bind(after_task)
    .bind(after_attempt)
    .bind(after_seq)
    .bind(q.limit)
    .bind(&q.contains)
    .fetch_all(pool)
    .await?)
}
