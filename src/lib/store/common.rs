//! What the three backends share: how our enums and ids cross sqlx, and small helpers.
//!
//! States are stored as their `as_str` text; decoding an unknown value is an error naming it, never a
//! default.

use std::time::Duration;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::state::{
    AlertKind, AlertStatus, AttemptOutcome, BackfillId, BackfillStatus, InstanceId, InstanceStatus,
    Reprocess, TaskId, TaskStatus, TriggerKind,
};

use super::{LogStream, TokenRole};

macro_rules! text_column {
    ($($t:ty),+) => { $(
        impl<DB: Database> Type<DB> for $t
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $t
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<DB>>::decode(value)?;
                text.parse::<$t>()
                    .map_err(|v| format!("unknown {} `{}`", stringify!($t), v).into())
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $t
        where
            &'q str: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <&str as Encode<DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    )+ };
}

text_column!(
    InstanceStatus,
    TaskStatus,
    TriggerKind,
    AttemptOutcome,
    LogStream,
    TokenRole,
    AlertKind,
    AlertStatus,
    BackfillStatus,
    Reprocess
);

macro_rules! id_column {
    ($($t:ident),+) => { $(
        impl<DB: Database> Type<DB> for $t
        where
            i64: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <i64 as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <i64 as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $t
        where
            i64: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok($t(<i64 as Decode<DB>>::decode(value)?))
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $t
        where
            i64: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                <i64 as Encode<DB>>::encode_by_ref(&self.0, buf)
            }
        }
    )+ };
}

id_column!(InstanceId, TaskId, BackfillId);

/// A list bound as one JSON array value, so statement text stays the same whatever the length
/// (ids serialise as their numbers).
pub(crate) fn json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("a list of strings or numbers always serialises")
}

/// Each upstream of `satisfied` with its last instance (the latest success counts).
pub(crate) fn last_per_upstream(
    satisfied: &[(String, InstanceId)],
) -> std::collections::BTreeMap<&str, InstanceId> {
    satisfied
        .iter()
        .map(|(upstream, instance)| (upstream.as_str(), *instance))
        .collect()
}

/// Task statuses as a JSON array of their spellings.
pub(crate) fn status_list(statuses: &[TaskStatus]) -> String {
    json_list(&statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

pub(crate) fn instance_status_list(statuses: &[InstanceStatus]) -> String {
    json_list(&statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

/// The invariant checks, shared by every backend: (what is violated, a query returning `id`, `info`).
/// `?` placeholders take the "stuck" cutoff time; PostgreSQL numbers them with [`numbered`].
pub(crate) const INVARIANT_CHECKS: &[(&str, &str)] = &[
    (
        "instance running although all its tasks ended",
        "SELECT i.id AS id, i.workflow AS info FROM workflow_instance i WHERE i.status = 'running' \
         AND NOT EXISTS (SELECT 1 FROM task t WHERE t.instance_id = i.id AND t.status IN ('waiting', 'ready', 'running'))",
    ),
    (
        "task still active in an ended instance",
        "SELECT t.id AS id, t.node AS info FROM task t JOIN workflow_instance i ON i.id = t.instance_id \
         WHERE i.status IN ('succeeded', 'failed', 'killed') AND (t.status = 'ready' OR t.status = 'running')",
    ),
    (
        "cron slot fired twice",
        "SELECT COUNT(*) AS id, workflow AS info FROM workflow_instance WHERE trigger_kind = 'cron' \
         GROUP BY workflow, scheduled_for HAVING COUNT(*) > 1",
    ),
    (
        "task running with an expired lease and no live worker",
        "SELECT t.id AS id, t.node AS info FROM task t WHERE t.status = 'running' AND t.lease_until < ? \
         AND NOT EXISTS (SELECT 1 FROM worker w WHERE w.id = t.worker_id AND w.state = 'running' AND w.heartbeat_at >= ?)",
    ),
    (
        "join fired twice",
        "SELECT e.instance_id AS id, e.node AS info FROM event e \
         JOIN task t ON t.instance_id = e.instance_id AND t.node = e.node \
         WHERE t.kind = 'join' AND e.to_status = 'succeeded' GROUP BY e.instance_id, e.node \
         HAVING COUNT(*) > 1 + (SELECT COUNT(*) FROM event r WHERE r.instance_id = e.instance_id AND r.kind = 'instance_rerun')",
    ),
    (
        "attempt counted twice (or an attempt row beyond the task's counter)",
        "SELECT a.task_id AS id, t.node AS info FROM task_attempt a JOIN task t ON t.id = a.task_id \
         GROUP BY a.task_id, t.node, t.attempt HAVING COUNT(*) <> MAX(a.attempt) OR MAX(a.attempt) > t.attempt",
    ),
];

/// `?` placeholders as `$1, $2, ...` for PostgreSQL.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

/// How many `?` a check binds (each gets the cutoff).
pub(crate) fn placeholders(sql: &str) -> usize {
    sql.matches('?').count()
}

/// A duration as whole microseconds, for `INTERVAL ? MICROSECOND` and `$1 * interval '1 microsecond'`.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Whether every embedded migration is already recorded as applied.
pub(crate) fn all_applied(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> bool {
    migrator.iter().all(|m| applied.contains(&m.version))
}

/// A scope prefix without its trailing slashes; `None` for the root (sees everything).
pub fn normalize_dir_prefix(prefix: Option<&str>) -> Option<String> {
    let p = prefix?.trim().trim_end_matches('/');
    (!p.is_empty()).then(|| p.to_string())
}

/// Whether `dir` lies at or below `prefix` (`/dw` covers `/dw` and `/dw/ods`, not `/dwh`).
pub fn dir_in_scope(dir: &str, prefix: Option<&str>) -> bool {
    match normalize_dir_prefix(prefix) {
        None => true,
        Some(p) => {
            let d = dir.trim_end_matches('/');
            d == p
                || d.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

/// Rows per multi-row INSERT (log lines, attempt rows, events): well under every backend's limit
/// on bound parameters per statement.
pub(crate) const ROWS_PER_INSERT: usize = 1000;

/// Of a pool's ready candidates `(id, pool_slots)` in claim order, the ids a claim takes: a prefix
/// whose slots fit in `free`, at most `limit` tasks. It stops at the first that does not fit rather
/// than passing it for smaller ones behind it, so a heavy task is never starved by light ones.
pub(crate) fn fit_in_pool(candidates: &[(i64, i64)], free: i64, limit: i64) -> Vec<i64> {
    let mut left = free;
    let mut out = Vec::new();
    for &(id, slots) in candidates {
        if out.len() as i64 >= limit || slots.max(1) > left {
            break;
        }
        left -= slots.max(1);
        out.push(id);
    }
    out
}

/// The multi-row `task_log` INSERT of the server backends; `on_duplicate` makes a batch sent again
/// after a lost reply succeed on the lines already stored.
pub(crate) fn log_insert<'a, DB>(
    lines: &'a [super::LogLine],
    on_duplicate: &str,
) -> sqlx::QueryBuilder<'a, DB>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    TaskId: Encode<'a, DB> + Type<DB>,
    chrono::DateTime<chrono::Utc>: Encode<'a, DB> + Type<DB>,
    LogStream: Encode<'a, DB> + Type<DB>,
    &'a String: Encode<'a, DB> + Type<DB>,
{
    let mut qb = sqlx::QueryBuilder::<DB>::new(
        "INSERT INTO task_log (task_id, attempt, seq, logged_at, stream, line) ",
    );
    qb.push_values(lines, |mut b, l| {
        b.push_bind(l.task_id)
            .push_bind(l.attempt)
            .push_bind(l.seq)
            .push_bind(l.logged_at);
        b.push_bind(l.stream).push_bind(&l.line);
    });
    qb.push(" ");
    qb.push(on_duplicate);
    qb
}

/// The multi-row `task_attempt` INSERT of every backend; `time` turns a time into the form the
/// backend stores (the time itself on the servers, text on SQLite).
pub(crate) fn attempt_insert<'a, DB, T>(
    attempts: &'a [super::AttemptRow],
    time: fn(chrono::DateTime<chrono::Utc>) -> T,
) -> sqlx::QueryBuilder<'a, DB>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    TaskId: Encode<'a, DB> + Type<DB>,
    AttemptOutcome: Encode<'a, DB> + Type<DB>,
    &'a Option<String>: Encode<'a, DB> + Type<DB>,
    T: 'a + Encode<'a, DB> + Type<DB>,
    Option<T>: Encode<'a, DB> + Type<DB>,
{
    let mut qb = sqlx::QueryBuilder::<DB>::new(
        "INSERT INTO task_attempt (task_id, attempt, worker_id, outcome, exit_code, error, started_at, ended_at) ",
    );
    qb.push_values(attempts, |mut b, a| {
        b.push_bind(a.task_id)
            .push_bind(a.attempt)
            .push_bind(&a.worker_id)
            .push_bind(a.outcome)
            .push_bind(a.exit_code)
            .push_bind(&a.error)
            .push_bind(a.started_at.map(time))
            .push_bind(time(a.ended_at));
    });
    qb
}

/// The multi-row `task` INSERT of every backend; `now` is the backend's clock expression, written
/// into `created_at`, and into `run_at` of a ready row and `ended_at` of a finished one.
pub(crate) fn task_insert<'a, DB>(
    tasks: &'a [super::NewTask],
    now: &'static str,
) -> sqlx::QueryBuilder<'a, DB>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    InstanceId: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    &'a String: Encode<'a, DB> + Type<DB>,
{
    let mut qb = sqlx::QueryBuilder::<DB>::new(
        "INSERT INTO task (instance_id, node, kind, status, max_attempts, retry_interval_s, timeout_s, queue, \
         priority, pool, pool_slots, created_at, run_at, ended_at) ",
    );
    let when = |yes: bool| if yes { now } else { "NULL" };
    qb.push_values(tasks, |mut b, t| {
        b.push_bind(t.instance_id)
            .push_bind(&t.node)
            .push_bind(&t.kind)
            .push_bind(t.status.as_str());
        b.push_bind(t.max_attempts)
            .push_bind(t.retry_interval_s)
            .push_bind(t.timeout_s);
        b.push_bind(&t.queue).push_bind(t.priority);
        b.push_bind(&t.pool).push_bind(t.pool_slots).push(now);
        b.push(when(t.status == TaskStatus::Ready))
            .push(when(t.status.is_terminal()));
    });
    qb
}

/// The multi-row `workflow_instance` INSERT of every backend; `now` is the backend's clock
/// expression (`created_at`, and `started_at` of a row inserted running), `time` how it binds a
/// timestamp.
pub(crate) fn instance_insert<'a, DB, T>(
    rows: &'a [super::NewInstance],
    now: &'static str,
    time: fn(chrono::DateTime<chrono::Utc>) -> T,
) -> sqlx::QueryBuilder<'a, DB>
where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    &'a String: Encode<'a, DB> + Type<DB>,
    TriggerKind: Encode<'a, DB> + Type<DB>,
    Option<InstanceId>: Encode<'a, DB> + Type<DB>,
    Option<TaskId>: Encode<'a, DB> + Type<DB>,
    BackfillId: Encode<'a, DB> + Type<DB>,
    T: 'a + Encode<'a, DB> + Type<DB>,
{
    let mut qb = sqlx::QueryBuilder::<DB>::new(
        "INSERT INTO workflow_instance (workflow, workflow_version, status, params, trigger_kind, scheduled_for, \
         parent_instance_id, parent_task_id, created_by, created_at, started_at, backfill_id) ",
    );
    qb.push_values(rows, |mut b, r| {
        let status: &'a str = if r.started { "running" } else { "pending" };
        b.push_bind(&r.workflow)
            .push_bind(r.workflow_version)
            .push_bind(status)
            .push_bind(&r.params);
        b.push_bind(r.trigger_kind)
            .push_bind(time(r.scheduled_for))
            .push_bind(r.parent_instance_id)
            .push_bind(r.parent_task_id);
        b.push_bind(&r.created_by)
            .push(now)
            .push(if r.started { now } else { "NULL" })
            .push_bind(r.backfill_id);
    });
    qb
}

/// The ids one multi-row INSERT of `rows` rows gave, in the order of its rows: every backend
/// numbers the rows of one statement upwards in their order.
pub(crate) fn ids_in_insert_order(
    mut ids: Vec<i64>,
    rows: usize,
) -> Result<Vec<InstanceId>, super::StoreError> {
    if ids.len() != rows {
        return Err(sqlx::Error::Protocol(format!(
            "{rows} instances inserted, {} ids read back",
            ids.len()
        ))
        .into());
    }
    ids.sort_unstable();
    Ok(ids.into_iter().map(InstanceId).collect())
}

/// The ids of inserted `tasks` in their order, from the `(instance_id, node, id)` rows the insert
/// returned in any order (a node is unique within its instance).
pub(crate) fn task_ids_in_order(
    tasks: &[super::NewTask],
    returned: Vec<(InstanceId, String, TaskId)>,
) -> Result<Vec<TaskId>, super::StoreError> {
    let by_node: std::collections::HashMap<(InstanceId, String), TaskId> = returned
        .into_iter()
        .map(|(instance, node, id)| ((instance, node), id))
        .collect();
    tasks
        .iter()
        .map(|t| {
            by_node
                .get(&(t.instance_id, t.node.clone()))
                .copied()
                .ok_or_else(|| {
                    sqlx::Error::Protocol(format!(
                        "the insert of task `{}` of instance {} returned no id",
                        t.node, t.instance_id
                    ))
                    .into()
                })
        })
        .collect()
}

/// The multi-row `event` INSERT of every backend; `now` is the backend's clock expression.
pub(crate) fn event_insert<'a, DB>(
    events: &'a [super::NewEvent],
    now: &'static str,
) -> sqlx::QueryBuilder<'a, DB>
where
    DB: Database,
    &'a Option<String>: Encode<'a, DB> + Type<DB>,
    Option<InstanceId>: Encode<'a, DB> + Type<DB>,
    Option<TaskId>: Encode<'a, DB> + Type<DB>,
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    &'a String: Encode<'a, DB> + Type<DB>,
{
    let mut qb = sqlx::QueryBuilder::<DB>::new(
        "INSERT INTO event (created_at, workflow, instance_id, task_id, node, kind, from_status, to_status, message, actor) ",
    );
    qb.push_values(events, |mut b, e| {
        b.push(now)
            .push_bind(&e.workflow)
            .push_bind(e.instance_id)
            .push_bind(e.task_id)
            .push_bind(&e.node);
        // as `&'a str`: SQLite binds a `&str` only for the query's own lifetime
        let (kind, from, to): (&'a str, Option<&'a str>, Option<&'a str>) =
            (e.kind, e.from_status, e.to_status);
        b.push_bind(kind)
            .push_bind(from)
            .push_bind(to)
            .push_bind(&e.message);
        b.push_bind(&e.actor);
    });
    qb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_scope_matches_whole_segments() {
        for (dir, prefix, want) in [
            ("/dw", Some("/dw"), true),
            ("/dw/ods", Some("/dw"), true),
            ("/dw/ods", Some("/dw/"), true),
            ("/dwh", Some("/dw"), false),
            ("/other", Some("/dw"), false),
            ("/anything", None, true),
            ("/anything", Some("/"), true),
            ("/dw", Some("/dw/ods"), false),
        ] {
            assert_eq!(dir_in_scope(dir, prefix), want, "{dir} in {prefix:?}");
        }
    }
}

/// Retention: what an instance-owned table's rows are matched on (see `Store::retention_delete`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum RetentionKey {
    Instance,
    Task,
}

impl RetentionKey {
    /// Of (the instances' keys, their tasks' keys), the one this table is matched on.
    pub(crate) fn of<T>(self, keys: &[T; 2]) -> &T {
        match self {
            RetentionKey::Instance => &keys[0],
            RetentionKey::Task => &keys[1],
        }
    }
}

/// The tables a pruned instance's rows live in, leaves first: (table, key column, key).
pub(crate) const RETENTION_OWNED: [(&str, &str, RetentionKey); 6] = [
    ("task_log", "task_id", RetentionKey::Task),
    ("task_attempt", "task_id", RetentionKey::Task),
    ("data_monitor", "instance_id", RetentionKey::Instance),
    ("event", "instance_id", RetentionKey::Instance),
    ("alert", "instance_id", RetentionKey::Instance),
    ("task", "instance_id", RetentionKey::Instance),
];

/// A pool row `p`'s slots taken by running tasks, as SQL (the pools list and its history).
pub(crate) const POOL_USED: &str =
    "COALESCE((SELECT SUM(t.pool_slots) FROM task t WHERE t.status = 'running' AND t.pool = p.name), 0)";

/// A pool row `p`'s ready tasks due by `now` (the backend's clock expression), as SQL.
pub(crate) fn pool_waiting(now: &str) -> String {
    format!("(SELECT COUNT(*) FROM task t WHERE t.status = 'ready' AND t.pool = p.name AND t.run_at <= {now})")
}

/// One row with 1 when a ready task of any pool is due by `now` (the backend's clock expression),
/// else 0; `queue_filter` is `""` (any queue) or an `AND queue …` condition. Stops at the first
/// such row of the claim index.
pub(crate) fn ready_due(now: &str, queue_filter: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM task WHERE status = 'ready' AND run_at <= {now}{queue_filter} LIMIT 1) due"
    )
}

/// Rows of no instance that may go: (table, condition). The first `?` takes `before`, a second
/// one `dead_before`, the host history's its own `metrics_before` (see [`loose_cutoffs`] and
/// `Store::retention_loose`).
pub(crate) const RETENTION_LOOSE: [(&str, &str); 9] = [
    ("event", "instance_id IS NULL AND created_at < ?"),
    // a late slot's record, whether or not its instance still exists
    ("deadline_miss", "detected_at < ?"),
    // an ended backfill's slots (and those a bounded pass left behind its row), then the row
    (
        "backfill_slot",
        "backfill_id NOT IN (SELECT b.id FROM backfill b WHERE b.ended_at IS NULL OR b.ended_at >= ?)",
    ),
    ("backfill", "status <> 'running' AND ended_at < ?"),
    (
        "alert",
        "instance_id IS NULL AND status <> 'pending' AND created_at < ?",
    ),
    (
        "worker",
        "heartbeat_at < ? AND (state = 'stopped' OR heartbeat_at < ?) \
         AND NOT EXISTS (SELECT 1 FROM task t WHERE t.worker_id = worker.id AND t.status = 'running')",
    ),
    (
        "scheduler",
        "heartbeat_at < ? AND (state = 'stopped' OR heartbeat_at < ?)",
    ),
    // by its own age (`worker_metric_days`), see `loose_cutoffs`
    ("worker_metric", "sampled_at < ?"),
    ("pool_sample", "sampled_at < ?"),
];

/// The host figures of a worker row, as [`super::WorkerRow`] reads them.
pub(crate) const WORKER_HOST_COLUMNS: &str = "w.cpu_percent, w.load1, w.load5, w.load15, \
     w.mem_used_bytes, w.mem_total_bytes, w.disk_free_bytes";

/// The heartbeat's assignments of the host figures, bound in the order of [`super::HostSample`].
pub(crate) const WORKER_HOST_SET: &str = "cpu_percent = ?, load1 = ?, load5 = ?, load15 = ?, \
     mem_used_bytes = ?, mem_total_bytes = ?, disk_free_bytes = ?";

/// A `worker_metric` row's columns, in the order of [`super::WorkerMetricRow`].
pub(crate) const WORKER_METRIC_COLUMNS: &str = "worker_id, sampled_at, cpu_percent, load1, load5, \
     load15, mem_used_bytes, mem_total_bytes, disk_free_bytes, running_tasks";

/// Binds a host sample's figures in the order of [`WORKER_HOST_SET`] (and of the history's
/// columns after `sampled_at`).
pub(crate) fn bind_host<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>,
    h: &super::HostSample,
) -> sqlx::query::Query<'q, DB, <DB as Database>::Arguments<'q>>
where
    DB: Database,
    f64: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB>,
    Option<i64>: Encode<'q, DB>,
{
    q.bind(h.cpu_percent)
        .bind(h.load1)
        .bind(h.load5)
        .bind(h.load15)
        .bind(h.mem_used_bytes)
        .bind(h.mem_total_bytes)
        .bind(h.disk_free_bytes)
}

/// The host history's interval in whole seconds (at least one).
pub(crate) fn metric_every_secs(every: Duration) -> i64 {
    i64::try_from(every.as_secs()).unwrap_or(i64::MAX).max(1)
}

/// The cutoffs a [`RETENTION_LOOSE`] clause binds, in order.
pub(crate) fn loose_cutoffs(
    p: &super::RetentionLoose,
    table: &str,
    matches: &str,
) -> Vec<chrono::DateTime<chrono::Utc>> {
    if table == "worker_metric" || table == "pool_sample" {
        return vec![p.metrics_before];
    }
    let mut cutoffs = vec![p.before];
    if placeholders(matches) == 2 {
        cutoffs.push(p.dead_before);
    }
    cutoffs
}

/// Instance states a pruned instance may be in, as SQL.
pub(crate) const RETENTION_ENDED: &str = "('succeeded', 'failed', 'killed')";

/// A retention scan's default cutoff, and where its scan of `ended_at` starts: the newest cutoff of
/// any workflow (`shortest_days`: the smallest `retention_days`), so the index can serve it.
pub(crate) fn retention_cutoffs(
    p: &super::RetentionScan,
    shortest_days: Option<i64>,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let cutoff = p.now - chrono::Duration::from_std(p.age).unwrap_or(chrono::Duration::MAX);
    let scan = match shortest_days {
        Some(d) if !p.uniform => (p.now - chrono::Duration::days(d)).max(cutoff),
        _ => cutoff,
    };
    (cutoff, scan)
}
