//! What `GET /metrics` reads in one scrape, beyond the queue depth, workers and schedulers the
//! store already lists. The SQL is the same text on every backend (no bind parameters, no time
//! arithmetic: durations are computed in Rust), so it lives here once and each backend runs it
//! through [`metrics_read!`].
//!
//! Cost: three statements, each bounded by an index:
//! - instance counts: `GROUP BY workflow, status` served by the `workflow_instance_status` index
//!   (an index-only scan; it grows with the instance table, not with tasks or logs);
//! - alerts pending: `alert_pending` index;
//! - the recent window: the attempts of the last [`RECENT_TASKS`] tasks and the first start of the
//!   last [`RECENT_INSTANCES`] instances, both primary-key ranges.

use chrono::{DateTime, Utc};

use crate::state::InstanceStatus;

/// How many of the newest tasks' attempts feed the task-duration histogram.
pub const RECENT_TASKS: i64 = 5000;
/// How many of the newest instances feed the trigger-delay histogram.
pub const RECENT_INSTANCES: i64 = 1000;

/// One scrape's worth of rows.
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// (workflow, status, count) over every instance.
    pub instances: Vec<(String, InstanceStatus, i64)>,
    pub alerts_pending: i64,
    /// (workflow, started, ended) of finished attempts of the last [`RECENT_TASKS`] tasks.
    pub attempts: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    /// (workflow, slot, first attempt started) of the last [`RECENT_INSTANCES`] instances with a
    /// finished attempt.
    pub first_starts: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
}

/// How a backend reads a text column as a string: MariaDB returns some as binary without a cast.
pub(crate) type TextCast = fn(&str) -> String;

pub(crate) fn plain_text(column: &str) -> String {
    column.to_string()
}

pub(crate) fn instance_counts_sql(text: TextCast) -> String {
    format!(
        "SELECT {}, {}, COUNT(*) FROM workflow_instance GROUP BY status, workflow",
        text("workflow"),
        text("status")
    )
}

pub(crate) const ALERTS_PENDING: &str = "SELECT COUNT(*) FROM alert WHERE status = 'pending'";

pub(crate) fn recent_attempts_sql(text: TextCast) -> String {
    format!(
        "SELECT {}, a.started_at, a.ended_at FROM task_attempt a \
         JOIN task t ON t.id = a.task_id JOIN workflow_instance w ON w.id = t.instance_id \
         WHERE a.task_id > (SELECT COALESCE(MAX(id), 0) FROM task) - {RECENT_TASKS} \
         AND a.started_at IS NOT NULL",
        text("w.workflow")
    )
}

/// From attempts, which only worker tasks have (control nodes complete inside the scheduler's
/// transaction); an instance counts once its first attempt has ended.
pub(crate) fn first_starts_sql(text: TextCast) -> String {
    format!(
        "SELECT {}, w.scheduled_for, MIN(a.started_at) FROM workflow_instance w \
         JOIN task t ON t.instance_id = w.id JOIN task_attempt a ON a.task_id = t.id \
         WHERE w.id > (SELECT COALESCE(MAX(id), 0) FROM workflow_instance) - {RECENT_INSTANCES} \
         AND a.started_at IS NOT NULL \
         GROUP BY w.id, w.workflow, w.scheduled_for",
        text("w.workflow")
    )
}

/// The body of `Store::metrics_read` for a backend whose pool is `$pool`, reading text columns
/// through `$text` (a [`TextCast`]).
macro_rules! metrics_read {
    ($pool:expr, $text:expr) => {{
        use $crate::store::metrics as m;
        Ok(m::MetricsSnapshot {
            instances: sqlx::query_as(&m::instance_counts_sql($text))
                .fetch_all($pool)
                .await?,
            alerts_pending: sqlx::query_scalar(m::ALERTS_PENDING)
                .fetch_one($pool)
                .await?,
            attempts: sqlx::query_as(&m::recent_attempts_sql($text))
                .fetch_all($pool)
                .await?,
            first_starts: sqlx::query_as(&m::first_starts_sql($text))
                .fetch_all($pool)
                .await?,
        })
    }};
}
pub(crate) use metrics_read;
