//! PostgreSQL: what runs leave behind: attempts, log lines, events, data-monitor checks.

use super::*;

/// The attempt rows' INSERT from one array per column.
const ATTEMPTS_INSERT: &str = "INSERT INTO task_attempt \
     (task_id, attempt, worker_id, outcome, exit_code, error, started_at, ended_at) \
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], \
     $7::timestamptz[], $8::timestamptz[])";

/// The log lines' INSERT, likewise (a line written twice, by a report retried, is kept once).
const LOGS_INSERT: &str = "INSERT INTO task_log (task_id, attempt, seq, logged_at, stream, line) \
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[]) \
     ON CONFLICT (task_id, attempt, seq) DO NOTHING";

/// The events' INSERT, likewise.
const EVENTS_INSERT: &str = "INSERT INTO event \
     (created_at, workflow, instance_id, task_id, node, kind, from_status, to_status, message, actor) \
     SELECT now(), * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[])";

/// Attempt rows, log lines and events in one statement (a data-modifying `WITH` for all but the
/// last kind present): a report's records cost one round trip at commit whatever their numbers.
/// The rows travel as one array per column, so each of the seven texts stays prepared. Only the
/// tables written are named: a role may lack `INSERT` on the others (the HTTP role on `task_log`).
pub(super) async fn records_insert(
    conn: &mut PgConnection,
    attempts: &[AttemptRow],
    logs: &[LogLine],
    events: &[NewEvent],
) -> Result<()> {
    let kinds = [
        (!attempts.is_empty(), ATTEMPTS_INSERT, 8),
        (!logs.is_empty(), LOGS_INSERT, 6),
        (!events.is_empty(), EVENTS_INSERT, 9),
    ];
    let mut parts = Vec::new();
    let mut base = 0;
    for (present, sql, params) in kinds {
        if present {
            parts.push(renumbered(sql, base));
            base += params;
        }
    }
    let Some(last) = parts.pop() else {
        return Ok(());
    };
    let ctes: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(k, part)| format!("r{k} AS ({part})"))
        .collect();
    let sql = if ctes.is_empty() {
        last
    } else {
        format!("WITH {} {last}", ctes.join(", "))
    };
    fn column<'r, T, U: 'r>(rows: &'r [T], f: impl Fn(&'r T) -> U) -> Vec<U> {
        rows.iter().map(f).collect()
    }
    let mut q = sqlx::query(&sql);
    if !attempts.is_empty() {
        q = q
            .bind(column(attempts, |a| a.task_id.0))
            .bind(column(attempts, |a| a.attempt))
            .bind(column(attempts, |a| a.worker_id.as_deref()))
            .bind(column(attempts, |a| a.outcome.as_str()))
            .bind(column(attempts, |a| a.exit_code))
            .bind(column(attempts, |a| a.error.as_deref()))
            .bind(column(attempts, |a| a.started_at))
            .bind(column(attempts, |a| a.ended_at));
    }
    if !logs.is_empty() {
        q = q
            .bind(column(logs, |l| l.task_id.0))
            .bind(column(logs, |l| l.attempt))
            .bind(column(logs, |l| l.seq))
            .bind(column(logs, |l| l.logged_at))
            .bind(column(logs, |l| l.stream.as_str()))
            .bind(column(logs, |l| l.line.as_str()));
    }
    if !events.is_empty() {
        q = q
            .bind(column(events, |e| e.workflow.as_deref()))
            .bind(column(events, |e| e.instance_id.map(|i| i.0)))
            .bind(column(events, |e| e.task_id.map(|t| t.0)))
            .bind(column(events, |e| e.node.as_deref()))
            .bind(column(events, |e| e.kind))
            .bind(column(events, |e| e.from_status))
            .bind(column(events, |e| e.to_status))
            .bind(column(events, |e| e.message.as_str()))
            .bind(column(events, |e| e.actor.as_str()));
    }
    q.execute(&mut *conn).await?;
    Ok(())
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
    records_insert(&mut *pool.acquire().await?, &[], lines, &[]).await
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
