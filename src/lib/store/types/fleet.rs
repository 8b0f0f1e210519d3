//! Fleet rows: workers with their hosts and history, schedulers, queue depths, and pools with
//! their occupancy.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Clone, Debug)]
pub struct WorkerRegistration {
    pub id: String,
    pub name: String,
    pub host: String,
    pub pid: i64,
    /// JSON array of queue names.
    pub queues: String,
    pub slots: i64,
}

#[derive(Clone, Debug, PartialEq, sqlx::FromRow, Serialize, ToSchema)]
pub struct WorkerRow {
    pub id: String,
    pub name: String,
    pub host: String,
    pub pid: i64,
    pub queues: String,
    pub slots: i64,
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub stopped_at: Option<DateTime<Utc>>,
    /// Seconds since the last heartbeat, by the database's clock.
    pub heartbeat_age_s: f64,
    pub running_tasks: i64,
    /// The host as the last heartbeat sampled it (see [`HostSample`]); `None` before the first
    /// sample (the CPU before the second).
    pub cpu_percent: Option<f64>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub mem_used_bytes: Option<i64>,
    pub mem_total_bytes: Option<i64>,
    pub disk_free_bytes: Option<i64>,
}

impl WorkerRow {
    /// The host figures as `status` and the cluster page print them: CPU, load 1/5/15, memory
    /// used/total, disk free; `—` for what was not sampled.
    pub fn host_text(&self) -> [String; 4] {
        const NONE: &str = "—";
        let cpu = self
            .cpu_percent
            .map_or(NONE.to_string(), |c| format!("{c:.0}%"));
        let load = match (self.load1, self.load5, self.load15) {
            (Some(a), Some(b), Some(c)) => format!("{a:.2} {b:.2} {c:.2}"),
            _ => NONE.to_string(),
        };
        let mem = match (self.mem_used_bytes, self.mem_total_bytes) {
            (Some(u), Some(t)) => format!("{} / {}", bytes_text(u), bytes_text(t)),
            _ => NONE.to_string(),
        };
        let disk = self.disk_free_bytes.map_or(NONE.to_string(), bytes_text);
        [cpu, load, mem, disk]
    }
}

/// Bytes in the largest binary unit that keeps a whole number in front: `7.8 GiB`, `512 MiB`.
pub fn bytes_text(b: i64) -> String {
    let mut v = b.max(0) as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 {
            return if unit == "B" {
                format!("{v:.0} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

/// A worker's host as one heartbeat samples it.
#[derive(Clone, Debug, Default, PartialEq, sqlx::FromRow)]
pub struct HostSample {
    /// Busy share of all CPUs since the previous sample, 0 to 100; `None` without one.
    pub cpu_percent: Option<f64>,
    /// Load averages over 1, 5 and 15 minutes.
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    /// Memory in use (total less available) and installed.
    pub mem_used_bytes: i64,
    pub mem_total_bytes: i64,
    /// Space free to the worker on the file system of its work directory; `None` when not found.
    pub disk_free_bytes: Option<i64>,
    /// Attempts the worker runs.
    pub running_tasks: i64,
}

/// One history row of a worker's host (see [`Store::worker_metric_insert`]).
#[derive(Clone, Copy, Debug)]
pub struct WorkerMetricInsert<'a> {
    pub worker_id: &'a str,
    /// The history's interval: the row's `sampled_at` is the database clock rounded down to a
    /// multiple of it (a minute by default), at most one row per worker and interval.
    pub every: Duration,
    pub host: &'a HostSample,
}

/// A `worker_metric` row: a worker's host at the start of an interval.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct WorkerMetricRow {
    pub worker_id: String,
    pub sampled_at: DateTime<Utc>,
    #[sqlx(flatten)]
    pub host: HostSample,
}

/// A scheduler's registration and heartbeat (upserted).
#[derive(Clone, Debug)]
pub struct SchedulerBeat {
    pub id: String,
    pub host: String,
    pub pid: i64,
    /// `standby`, `master` or `stopped`.
    pub state: &'static str,
    pub epoch: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct SchedulerRow {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub state: String,
    pub epoch: Option<i64>,
    pub master_since: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// How much work a queue holds right now.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct QueueDepth {
    pub queue: String,
    pub ready: i64,
    pub running: i64,
}

crate::state::string_enum!(
    /// What an API token may do; each role includes the ones before it.
    #[derive(PartialOrd, Ord)]
    TokenRole {
        /// Reads everything in its scope.
        Viewer => "viewer",
        /// Also triggers, runs, kills, reruns and retries.
        Operator => "operator",
        /// Also changes definitions, links and tokens.
        Admin => "admin",
    }
);

/// A `pool` row as pools.xml and `pool set` write it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PoolDef {
    pub name: String,
    /// The limit claims enforce now.
    pub slots: i64,
    /// What pools.xml said at the last sync that changed this pool.
    pub file_slots: i64,
    pub description: String,
    pub updated_by: String,
}

/// A pool's occupancy at the start of an interval (`pool_sample`).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct PoolSampleRow {
    pub pool: String,
    pub sampled_at: DateTime<Utc>,
    /// The pool's limit then.
    pub slots: i64,
    /// Slots taken by running tasks then.
    pub used: i64,
    /// Ready tasks waiting for a slot then.
    pub waiting: i64,
}

/// A pool with its occupancy now.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct PoolRow {
    pub name: String,
    /// The limit claims enforce now.
    pub slots: i64,
    /// What pools.xml says (a `pool set` may differ until the file changes).
    pub file_slots: i64,
    pub description: String,
    pub updated_at: DateTime<Utc>,
    /// Who set `slots` last (`sync:...`, `cli:...`, `api:...`).
    pub updated_by: String,
    /// Slots taken by running tasks (a task takes its `pool-slots`).
    pub used: i64,
    /// Running tasks.
    pub running: i64,
    /// Ready tasks (due now) waiting for a slot.
    pub waiting: i64,
}
