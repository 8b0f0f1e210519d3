//! SQLite: what runs leave behind: attempts, log lines, events, data-monitor checks.

use super::*;

/// Lines are stored with SQLite's text timestamps, so not through the shared builder.
fn log_insert(lines: &[LogLine]) -> sqlx::QueryBuilder<'_, Sqlite> {
    let mut qb = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT OR IGNORE INTO task_log (task_id, attempt, seq, logged_at, stream, line) ",
    );
    qb.push_values(lines, |mut b, l| {
        b.push_bind(l.task_id)
            .push_bind(l.attempt)
            .push_bind(l.seq)
            .push_bind(ts(l.logged_at));
        b.push_bind(l.stream).push_bind(&l.line);
    });
    qb
}

pub(super) async fn data_monitor_insert(pool: &SqlitePool, c: &NewDataMonitorCheck) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO data_monitor (checked_at, workflow, instance_id, task_id, node, category, source_name, \
         time_mark, value, min_value, max_value, passed, message) \
         VALUES ({NOW}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
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
    pool: &SqlitePool,
    instance: InstanceId,
) -> Result<Vec<DataMonitorRow>> {
    Ok(sqlx::query_as(
        "SELECT id, checked_at, workflow, instance_id, task_id, node, category, source_name, time_mark, \
         value, min_value, max_value, passed, message FROM data_monitor WHERE instance_id = ? ORDER BY id",
    )
    .bind(instance)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn event_list(pool: &SqlitePool, f: &EventFilter) -> Result<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "SELECT id, created_at, workflow, instance_id, task_id, node, kind, from_status, to_status, message, actor \
         FROM event WHERE (? IS NULL OR instance_id = ?) AND id > COALESCE(?, 0) ORDER BY id LIMIT ?",
    )
    .bind(f.instance_id)
    .bind(f.instance_id)
    .bind(f.after_id)
    .bind(f.limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_attempt_list(
    pool: &SqlitePool,
    instance: InstanceId,
) -> Result<Vec<AttemptRow>> {
    Ok(sqlx::query_as(
        "SELECT a.task_id, a.attempt, a.worker_id, a.outcome, a.exit_code, a.error, a.started_at, a.ended_at \
         FROM task_attempt a JOIN task t ON t.id = a.task_id WHERE t.instance_id = ? ORDER BY a.task_id, a.attempt",
    )
    .bind(instance)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_log_insert_many(pool: &SqlitePool, lines: &[LogLine]) -> Result<()> {
    for chunk in lines.chunks(ROWS_PER_INSERT) {
        log_insert(chunk).build().execute(pool).await?;
    }
    Ok(())
}

pub(super) async fn task_log_insert_many_tx(
    conn: &mut SqliteConnection,
    lines: &[LogLine],
) -> Result<()> {
    for chunk in lines.chunks(ROWS_PER_INSERT) {
        log_insert(chunk).build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn task_log_read(pool: &SqlitePool, q: &LogQuery) -> Result<Vec<LogLine>> {
    let (after_task, after_attempt, after_seq) =
        q.after.map(|(t, a, s)| (t.0, a, s)).unwrap_or((0, 0, -1));
    Ok(sqlx::query_as(
        "SELECT task_id, attempt, seq, logged_at, stream, line FROM task_log \
         WHERE task_id IN (SELECT value FROM json_each(?)) AND (task_id, attempt, seq) > (?, ?, ?) \
         AND (?5 IS NULL OR instr(lower(line), lower(?5)) > 0) \
         ORDER BY task_id, attempt, seq LIMIT ?6",
    )
    .bind(json_list(&q.task_ids))
    .bind(after_task)
    .bind(after_attempt)
    .bind(after_seq)
    .bind(&q.contains)
    .bind(q.limit)
    .fetch_all(pool)
    .await?)
}
