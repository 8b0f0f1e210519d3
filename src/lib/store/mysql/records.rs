//! MySQL/MariaDB: what runs leave behind: attempts, log lines, events, data-monitor checks.

use super::*;

fn log_insert(lines: &[LogLine]) -> QueryBuilder<'_, MySql> {
    // a no-op update, unlike INSERT IGNORE, still reports every other error
    crate::store::common::log_insert(lines, "ON DUPLICATE KEY UPDATE seq = seq")
}

pub(super) async fn data_monitor_insert(pool: &MySqlPool, c: &NewDataMonitorCheck) -> Result<()> {
    retrying(|| async move {
        sqlx::query(
            "INSERT INTO data_monitor (checked_at, workflow, instance_id, task_id, node, category, source_name, \
             time_mark, value, min_value, max_value, passed, message) \
             VALUES (NOW(6), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    })
    .await
}

pub(super) async fn data_monitor_list(
    pool: &MySqlPool,
    instance: InstanceId,
) -> Result<Vec<DataMonitorRow>> {
    Ok(sqlx::query_as(
        "SELECT d.id, d.checked_at, CAST(d.workflow AS CHAR) AS workflow, d.instance_id, d.task_id, \
         CAST(d.node AS CHAR) AS node, CAST(d.category AS CHAR) AS category, \
         CAST(d.source_name AS CHAR) AS source_name, CAST(d.time_mark AS CHAR) AS time_mark, \
         d.value, d.min_value, d.max_value, d.passed, CAST(d.message AS CHAR) AS message \
         FROM data_monitor d WHERE d.instance_id = ? ORDER BY d.id",
    )
    .bind(instance)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn event_list(pool: &MySqlPool, f: &EventFilter) -> Result<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "SELECT e.id, e.created_at, CAST(e.workflow AS CHAR) AS workflow, e.instance_id, e.task_id, \
         CAST(e.node AS CHAR) AS node, CAST(e.kind AS CHAR) AS kind, CAST(e.from_status AS CHAR) AS from_status, \
         CAST(e.to_status AS CHAR) AS to_status, CAST(e.message AS CHAR) AS message, CAST(e.actor AS CHAR) AS actor \
         FROM event e WHERE (? IS NULL OR e.instance_id = ?) AND e.id > COALESCE(?, 0) ORDER BY e.id LIMIT ?",
    )
    .bind(f.instance_id)
    .bind(f.instance_id)
    .bind(f.after_id)
    .bind(f.limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_attempt_list(
    pool: &MySqlPool,
    instance: InstanceId,
) -> Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "SELECT a.task_id, a.attempt, CAST(a.worker_id AS CHAR) AS worker_id, CAST(a.outcome AS CHAR) AS outcome, \
         a.exit_code, CAST(a.error AS CHAR) AS error, a.started_at, a.ended_at \
         FROM task_attempt a JOIN task t ON t.id = a.task_id WHERE t.instance_id = ? ORDER BY a.task_id, a.attempt",
    )
    .bind(instance)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_log_insert_many(pool: &MySqlPool, lines: &[LogLine]) -> Result<()> {
    for chunk in lines.chunks(ROWS_PER_INSERT) {
        retrying(|| async move {
            log_insert(chunk).build().execute(pool).await?;
            Ok(())
        })
        .await?;
    }
    Ok(())
}

pub(super) async fn task_log_insert_many_tx(
    conn: &mut MySqlConnection,
    lines: &[LogLine],
) -> Result<()> {
    for chunk in lines.chunks(ROWS_PER_INSERT) {
        log_insert(chunk).build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn task_log_read(pool: &MySqlPool, q: &LogQuery) -> Result<Vec<LogLine>> {
    if q.task_ids.is_empty() {
        return Ok(vec![]);
    }
    let (after_task, after_attempt, after_seq) =
        q.after.map(|(t, a, s)| (t.0, a, s)).unwrap_or((0, 0, -1));
    let mut qb = QueryBuilder::<MySql>::new(
        "SELECT l.task_id, l.attempt, l.seq, l.logged_at, CAST(l.stream AS CHAR) AS stream, \
         CAST(l.line AS CHAR) AS line FROM task_log l WHERE l.task_id IN ",
    );
    push_list(&mut qb, q.task_ids.iter().copied());
    qb.push(" AND (l.task_id, l.attempt, l.seq) > (");
    qb.push_bind(after_task);
    qb.push(", ");
    qb.push_bind(after_attempt);
    qb.push(", ");
    qb.push_bind(after_seq);
    qb.push(")");
    if let Some(text) = &q.contains {
        qb.push(" AND LOCATE(LOWER(")
            .push_bind(text.clone())
            .push("), LOWER(l.line)) > 0");
    }
    qb.push(" ORDER BY l.task_id, l.attempt, l.seq LIMIT ");
    qb.push_bind(q.limit);
    Ok(qb.build_query_as().fetch_all(pool).await?)
}
