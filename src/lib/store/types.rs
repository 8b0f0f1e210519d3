//! Rows and parameters that cross the store seam. Rows decode the same way on every backend.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::{
    AttemptOutcome, BackfillId, BackfillStatus, InstanceId, InstanceStatus, Reprocess, TaskId,
    TaskStatus, TriggerKind,
};

/// A `workflow` row.
#[derive(Clone, Debug, sqlx::FromRow, Serialize, ToSchema)]
pub struct WorkflowRow {
    pub name: String,
    pub version: i64,
    pub content_hash: String,
    #[serde(skip)]
    pub source_xml: String,
    #[serde(skip)]
    pub definition: String,
    pub file_path: String,
    pub dir: String,
    pub creator: String,
    pub description: String,
    pub mail_level: String,
    pub mail_receivers: String,
    pub instance_limit: i64,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// See [`WorkflowHead::rolled_back_to`]; read by `workflow_get` only (lists leave it `None`).
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<i64>,
}

/// What sync and instance starts need of a workflow row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkflowHead {
    pub name: String,
    pub version: i64,
    pub content_hash: String,
    pub enabled: bool,
    pub instance_limit: i64,
    pub file_path: String,
    /// Set by `workflow rollback` (the version the head's content came from) until a sync finds
    /// the file equal to the head again or overwrites the rollback.
    pub rolled_back_to: Option<i64>,
}

/// Insert or update of a workflow; also records `(name, version)` in `workflow_version`.
#[derive(Clone, Debug)]
pub struct WorkflowUpsert {
    pub name: String,
    pub version: i64,
    pub content_hash: String,
    pub source_xml: String,
    pub definition: String,
    pub file_path: String,
    pub dir: String,
    pub creator: String,
    pub description: String,
    pub mail_level: String,
    pub mail_receivers: String,
    pub instance_limit: i64,
    pub enabled: bool,
    /// `retention-days`: how long its ended instances are kept; `None`: the configured default.
    pub retention_days: Option<i64>,
}

/// A `coordinator` row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct CoordinatorRow {
    pub workflow: String,
    pub cron: Option<String>,
    pub timezone: String,
    /// JSON array of upstream workflow names.
    pub depends: String,
    /// JSON array of `{name, value}` as written (evaluated at fire time).
    pub params: String,
    pub enabled: bool,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The missed-run policy: `latest`, `all` or `none`.
    pub catchup: String,
    /// With `catchup = 'all'`, at most this many missed slots fire.
    pub max_catchup: i64,
    /// The business calendar its slots follow (a `calendar` row), if any.
    pub calendar: Option<String>,
}

/// A `calendar` row: a business calendar of `calendars.xml`, its days as JSON
/// ([`crate::definition::calendar::Calendar`]).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct CalendarRow {
    pub name: String,
    pub definition: String,
}

/// A `coordinator_depend` row: progress of one upstream.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct DependRow {
    pub workflow: String,
    pub upstream: String,
    pub satisfied_at: Option<DateTime<Utc>>,
    pub satisfied_instance_id: Option<i64>,
}

/// A `workflow_instance` row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct InstanceRow {
    pub id: InstanceId,
    pub workflow: String,
    pub workflow_version: i64,
    pub status: InstanceStatus,
    /// JSON object of parameter values.
    pub params: String,
    pub trigger_kind: TriggerKind,
    pub scheduled_for: DateTime<Utc>,
    pub parent_instance_id: Option<InstanceId>,
    /// The parent's sub-workflow task this instance reports its result to.
    pub parent_task_id: Option<TaskId>,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The backfill that created it; 0 for none (see [`InstanceRow::backfill`]).
    pub backfill_id: BackfillId,
}

impl InstanceRow {
    /// The backfill that created this instance, if one did.
    pub fn backfill(&self) -> Option<BackfillId> {
        (self.backfill_id.0 != 0).then_some(self.backfill_id)
    }
}

#[derive(Clone, Debug)]
pub struct NewInstance {
    pub workflow: String,
    pub workflow_version: i64,
    pub params: String,
    pub trigger_kind: TriggerKind,
    pub scheduled_for: DateTime<Utc>,
    pub parent_instance_id: Option<InstanceId>,
    pub parent_task_id: Option<TaskId>,
    pub created_by: String,
    /// Part of the slot key: 0 outside a backfill, so a backfill creates each slot once.
    pub backfill_id: BackfillId,
}

/// A `backfill` row: a range of a coordinator's past slots run again, and how.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct BackfillRow {
    pub id: BackfillId,
    pub workflow: String,
    /// The first instant of the range (a slot at it is included).
    pub range_from: DateTime<Utc>,
    /// The last instant of the range (a slot at it is included).
    pub range_to: DateTime<Utc>,
    pub reprocess: Reprocess,
    /// At most this many of its slots' instances live at once.
    pub parallel: i64,
    /// Newest slot first.
    pub reverse: bool,
    /// A slot's success also runs its downstream workflows for the slot.
    pub blood: bool,
    /// JSON object of the parameters given (they win over the evaluated ones).
    pub params: String,
    /// Every task's priority; `None`: each task's own priority minus one.
    pub priority: Option<i64>,
    pub created_by: String,
    pub status: BackfillStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A new backfill: its row without the id, status and times.
#[derive(Clone, Debug)]
pub struct NewBackfill {
    pub workflow: String,
    pub range_from: DateTime<Utc>,
    pub range_to: DateTime<Utc>,
    pub reprocess: Reprocess,
    pub parallel: i64,
    pub reverse: bool,
    pub blood: bool,
    pub params: String,
    pub priority: Option<i64>,
    pub created_by: String,
}

/// One slot of a new backfill: to run (`skip_reason: None`) or skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct NewBackfillSlot {
    pub slot: DateTime<Utc>,
    pub skip_reason: Option<String>,
}

/// A `backfill_slot` row with its instance's state, when it has one.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct BackfillSlotRow {
    pub slot: DateTime<Utc>,
    pub skip_reason: Option<String>,
    pub instance_id: Option<InstanceId>,
    pub status: Option<InstanceStatus>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// A guarded backfill state change; `ended_at` is set to the database's now when `to` is final.
#[derive(Clone, Debug)]
pub struct BackfillTransition {
    pub id: BackfillId,
    pub from: BackfillStatus,
    pub to: BackfillStatus,
    pub error: Option<String>,
}

/// What the slots of a range have seen: the latest top-level instance's status per slot, and the
/// slots a running backfill has yet to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotHistory {
    pub latest: Vec<(DateTime<Utc>, InstanceStatus)>,
    pub queued: Vec<DateTime<Utc>>,
}

/// A guarded instance state change. `started_at: Some` sets it (else kept); `ended_at` and `error`
/// are written as given.
#[derive(Clone, Debug)]
pub struct InstanceTransition {
    pub id: InstanceId,
    pub from: Vec<InstanceStatus>,
    pub to: InstanceStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// The instances list's filters (UI and API): each given one is an indexed predicate.
#[derive(Clone, Debug, Default)]
pub struct InstanceSearch {
    pub workflow: Option<String>,
    pub status: Option<InstanceStatus>,
    pub trigger: Option<crate::state::TriggerKind>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    /// Paging: only ids below this one (newest first).
    pub before_id: Option<InstanceId>,
    /// Only workflows whose `dir` is this prefix or below it.
    pub dir_prefix: Option<String>,
    pub limit: i64,
    /// Count the matches up to this many (paging ignored): a bounded count, never a table scan.
    pub count_up_to: i64,
}

/// One page of [`InstanceSearch`] and how many instances match in all.
#[derive(Clone, Debug, Default)]
pub struct InstanceSearchPage {
    pub rows: Vec<InstanceRow>,
    /// The matches, counted up to `count_up_to` (then `total == count_up_to`).
    pub total: i64,
}

#[derive(Clone, Debug, Default)]
pub struct InstanceFilter {
    pub workflow: Option<String>,
    pub status: Option<InstanceStatus>,
    pub since: Option<DateTime<Utc>>,
    /// Paging: only ids below this one (newest first).
    pub before_id: Option<InstanceId>,
    /// Only workflows whose `dir` is this prefix or below it (`/dw` matches `/dw` and `/dw/ods`).
    pub dir_prefix: Option<String>,
    pub limit: i64,
}

/// Which backfills to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct BackfillFilter {
    pub workflow: Option<String>,
    pub status: Option<BackfillStatus>,
    pub limit: i64,
}

/// A `task` row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct TaskRow {
    pub id: TaskId,
    pub instance_id: InstanceId,
    pub node: String,
    pub kind: String,
    pub status: TaskStatus,
    pub attempt: i64,
    pub max_attempts: i64,
    pub retry_interval_s: i64,
    pub timeout_s: Option<i64>,
    pub queue: String,
    pub priority: i64,
    /// '' outside any pool.
    pub pool: String,
    pub pool_slots: i64,
    pub run_at: Option<DateTime<Utc>>,
    pub worker_id: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub kill_requested: bool,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Attempts lost with their worker (lease expired) since the task was created or rerun; they do
    /// not spend `max_attempts` but count against the lost budget (`max_lost_attempts`).
    pub lost_attempts: i64,
}

#[derive(Clone, Debug)]
pub struct NewTask {
    pub instance_id: InstanceId,
    pub node: String,
    pub kind: String,
    pub max_attempts: i64,
    pub retry_interval_s: i64,
    pub timeout_s: Option<i64>,
    pub queue: String,
    /// Higher runs first among ready tasks of the same queue and pool.
    pub priority: i64,
    /// '' outside any pool.
    pub pool: String,
    pub pool_slots: i64,
}

/// The worker and attempt a state change must still match (a rescued task's old worker cannot write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub worker_id: String,
    pub attempt: i64,
}

/// A guarded task state change. Leaving `running` always clears `worker_id` and `lease_until`; the
/// attempt counter only ever goes up (at claim), so every attempt's log lines stay apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskTransition {
    pub id: TaskId,
    pub from: Vec<TaskStatus>,
    pub to: TaskStatus,
    pub fence: Option<Fence>,
    pub run_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub kill_requested: bool,
    /// Set to raise the retry budget (a rerun, or a hand-back that must not count against it).
    pub max_attempts: Option<i64>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Set to count a lost attempt (or to start the count again on a rerun).
    pub lost_attempts: Option<i64>,
}

impl TaskTransition {
    pub fn new(id: TaskId, from: Vec<TaskStatus>, to: TaskStatus) -> Self {
        TaskTransition {
            id,
            from,
            to,
            fence: None,
            run_at: None,
            exit_code: None,
            error: None,
            kill_requested: false,
            max_attempts: None,
            ended_at: None,
            lost_attempts: None,
        }
    }

    /// Whether `other` changes a row the same way (only the id differs): one statement can do both.
    pub fn same_change(&self, other: &TaskTransition) -> bool {
        TaskTransition {
            id: other.id,
            ..self.clone()
        } == *other
    }
}

#[derive(Clone, Debug)]
pub struct TaskClaimParams {
    pub worker_id: String,
    pub queues: Vec<String>,
    pub limit: i64,
    pub lease_ttl: Duration,
    /// The pools whose tasks this claim may take (the worker's view of the `pool` table, refreshed
    /// every few seconds). Empty: only tasks outside any pool, and the `pool` table is not read.
    pub pools: Vec<String>,
}

/// A task a worker now owns, with what it needs to run it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedTask {
    pub id: TaskId,
    pub instance_id: InstanceId,
    pub node: String,
    pub kind: String,
    pub attempt: i64,
    pub timeout_s: Option<i64>,
    pub workflow: String,
    pub workflow_version: i64,
    pub params: String,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
}

/// A `task_attempt` row: one finished attempt.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct AttemptRow {
    pub task_id: TaskId,
    pub attempt: i64,
    pub worker_id: Option<String>,
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
}

crate::state::string_enum!(
    /// Which stream a log line came from.
    LogStream {
        Stdout => "stdout",
        Stderr => "stderr",
        System => "system",
    }
);

/// One line of a task's output.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct LogLine {
    pub task_id: TaskId,
    pub attempt: i64,
    pub seq: i64,
    pub logged_at: DateTime<Utc>,
    pub stream: LogStream,
    pub line: String,
}

#[derive(Clone, Debug)]
pub struct LogQuery {
    pub task_ids: Vec<TaskId>,
    /// Only lines after this (task, attempt, seq), for paging and following.
    pub after: Option<(TaskId, i64, i64)>,
    pub limit: i64,
    /// Only lines containing this text, ignoring ASCII case.
    pub contains: Option<String>,
}

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

/// An audit row: what changed, why, and who did it.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    pub workflow: Option<String>,
    pub instance_id: Option<InstanceId>,
    pub task_id: Option<TaskId>,
    pub node: Option<String>,
    pub kind: &'static str,
    pub from_status: Option<&'static str>,
    pub to_status: Option<&'static str>,
    pub message: String,
    pub actor: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct EventRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub workflow: Option<String>,
    pub instance_id: Option<i64>,
    pub task_id: Option<i64>,
    pub node: Option<String>,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub message: String,
    pub actor: String,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub instance_id: Option<InstanceId>,
    pub after_id: Option<i64>,
    pub limit: i64,
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

/// An `api_token` row; the secret's hash never leaves the store.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: TokenRole,
    /// The `dir` prefix this token is confined to; `None` sees everything.
    pub dir_prefix: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewToken {
    pub name: String,
    pub role: TokenRole,
    pub dir_prefix: Option<String>,
    /// sha256 hex of the secret.
    pub secret_hash: String,
    pub created_by: String,
}

/// A live UI session with the token it stands for.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    #[sqlx(flatten)]
    pub token: TokenRow,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    /// sha256 hex of the cookie's value.
    pub id_hash: String,
    pub token_id: i64,
    pub csrf: String,
    pub ttl: Duration,
}

/// A `db_link` row without its password.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct DbLinkRow {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub username: String,
    /// JSON array of `[name, value]` pairs.
    pub properties: String,
    /// The pool of the actions on this link that name none ('' for none).
    pub pool: String,
    pub updated_at: DateTime<Utc>,
}

/// A `file_link` row without its password.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct FileLinkRow {
    pub name: String,
    pub kind: String,
    pub host: String,
    pub port: i64,
    pub username: String,
    pub description: String,
    pub updated_at: DateTime<Utc>,
}

/// How many instances ended (or, unfinished, were created) on one UTC day with one status.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct DayCount {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub status: InstanceStatus,
    pub count: i64,
}

/// One data-monitor check, recorded in `data_monitor` whether it passed or not.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDataMonitorCheck {
    pub workflow: String,
    pub instance_id: InstanceId,
    pub task_id: TaskId,
    pub node: String,
    pub category: Option<String>,
    pub source_name: Option<String>,
    pub time_mark: Option<String>,
    /// `None` when the source could not be evaluated (the message says why).
    pub value: Option<f64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub passed: bool,
    pub message: String,
}

/// A `data_monitor` row: one recorded check.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, Serialize)]
pub struct DataMonitorRow {
    pub id: i64,
    pub checked_at: DateTime<Utc>,
    pub workflow: String,
    pub instance_id: InstanceId,
    pub task_id: TaskId,
    pub node: String,
    pub category: Option<String>,
    pub source_name: Option<String>,
    pub time_mark: Option<String>,
    pub value: Option<f64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub passed: bool,
    pub message: String,
}

/// A `db_link` row as stored, password included; turned into a [`crate::definition::DbLink`].
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct StoredDbLink {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub username: String,
    pub password: String,
    /// JSON array of `[name, value]` pairs.
    pub properties: String,
    /// '' for none.
    pub pool: String,
}

impl TryFrom<StoredDbLink> for crate::definition::DbLink {
    type Error = super::StoreError;

    fn try_from(r: StoredDbLink) -> Result<Self, Self::Error> {
        let kind = r.kind.parse().map_err(|v| super::StoreError::Corrupt {
            table: "db_link",
            column: "kind",
            value: v,
        })?;
        let properties =
            serde_json::from_str(&r.properties).map_err(|_| super::StoreError::Corrupt {
                table: "db_link",
                column: "properties",
                value: r.properties.clone(),
            })?;
        Ok(crate::definition::DbLink {
            name: r.name,
            kind,
            url: r.url,
            username: r.username,
            password: r.password,
            properties,
            pool: Some(r.pool).filter(|p| !p.is_empty()),
        })
    }
}

/// A `file_link` row as stored, password included.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct StoredFileLink {
    pub name: String,
    pub kind: String,
    pub host: String,
    pub port: i64,
    pub username: String,
    pub password: String,
    pub description: String,
}

impl TryFrom<StoredFileLink> for crate::definition::FileLink {
    type Error = super::StoreError;

    fn try_from(r: StoredFileLink) -> Result<Self, Self::Error> {
        let kind = r.kind.parse().map_err(|v| super::StoreError::Corrupt {
            table: "file_link",
            column: "kind",
            value: v,
        })?;
        let port = i32::try_from(r.port).map_err(|_| super::StoreError::Corrupt {
            table: "file_link",
            column: "port",
            value: r.port.to_string(),
        })?;
        Ok(crate::definition::FileLink {
            name: r.name,
            kind,
            host: r.host,
            port,
            username: r.username,
            password: r.password,
            description: r.description,
        })
    }
}

/// A broken invariant found by [`super::Store::invariant_check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub what: &'static str,
    /// The row it is about (an instance or task id, or a count).
    pub id: i64,
    pub info: String,
}

/// An alert to put in the outbox, in the transaction of the change that causes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    pub kind: crate::state::AlertKind,
    pub workflow: Option<String>,
    pub instance_id: Option<InstanceId>,
    pub task_id: Option<TaskId>,
    /// Deduplicated addresses, in order.
    pub recipients: Vec<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    /// The configured channel this row goes to; `None`: the mail to `recipients`.
    pub channel: Option<String>,
    /// What happened, as a channel's `kinds` names it (`failed`, `deadline`, ...).
    pub event: String,
    /// The run's state when the alert was written (`failed`, `running`, ...).
    pub state: String,
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// An `alert` row: one message in the outbox (a mail, or one alert to one channel).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub kind: crate::state::AlertKind,
    pub workflow: Option<String>,
    pub instance_id: Option<InstanceId>,
    pub task_id: Option<TaskId>,
    /// Comma-separated addresses.
    pub recipients: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub status: crate::state::AlertStatus,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub channel: Option<String>,
    pub event: String,
    pub state: String,
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl AlertRow {
    pub fn recipient_list(&self) -> Vec<&str> {
        self.recipients
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// A compare-and-set on one alert: applies only while it is `pending` with `attempts` unchanged, so a
/// deposed master and its successor cannot both deliver the same attempt.
#[derive(Clone, Debug)]
pub struct AlertTransition {
    pub id: i64,
    pub expected_attempts: i64,
    pub to: crate::state::AlertStatus,
    pub attempts: i64,
    /// For `pending`: when to try again, from the database's now.
    pub retry_in: Duration,
    pub last_error: Option<String>,
}

/// An instance row read under its lock, with the database clock read after the lock was granted.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct LockedInstance {
    #[sqlx(flatten)]
    pub row: InstanceRow,
    pub db_now: DateTime<Utc>,
}

/// A coordinator with a deadline, as the deadline watch reads it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadlineWatch {
    #[sqlx(flatten)]
    pub coordinator: CoordinatorRow,
    /// As written: `07:00` or `+2h`.
    pub deadline: String,
    /// Slots whose deadline is at or before this have been checked; `None`: not watched yet.
    pub checked_through: Option<DateTime<Utc>>,
}

/// A `deadline_miss` row: a slot whose run had not succeeded by its deadline.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct DeadlineMissRow {
    pub id: i64,
    pub workflow: String,
    pub scheduled_for: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
    /// Why it was late, when it was found late.
    pub reason: String,
    /// The slot's instance when it was found late, if it had one.
    pub instance_id: Option<InstanceId>,
    /// When the slot's instance succeeded after all (the `late_done` alert).
    pub done_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewDeadlineMiss {
    pub workflow: String,
    pub scheduled_for: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub reason: String,
    pub instance_id: Option<InstanceId>,
    /// Set when the slot had already succeeded, late, when it was checked.
    pub done_at: Option<DateTime<Utc>>,
}

/// An open deadline miss whose slot has since succeeded.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LateDone {
    pub miss_id: i64,
    pub workflow: String,
    pub scheduled_for: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub instance_id: InstanceId,
    pub ended_at: DateTime<Utc>,
}

/// Which ended instances a pruning pass looks at (see [`Store::retention_candidates`]).
#[derive(Clone, Debug)]
pub struct RetentionScan {
    /// The database clock at the start of the pass; ages count back from it.
    pub now: DateTime<Utc>,
    /// Instances that ended longer ago than this go, unless their workflow's `retention_days` says
    /// otherwise.
    pub age: Duration,
    /// `--older-than`: `age` for every workflow, their `retention_days` ignored.
    pub uniform: bool,
    /// Paging key: only instances with a greater id.
    pub after: InstanceId,
    pub limit: i64,
}

/// One pruning step on a set of ended instances (see [`Store::retention_delete`]).
#[derive(Clone, Debug)]
pub struct RetentionDelete {
    /// Top-level instances and all their sub-workflow instances, every one ended.
    pub instances: Vec<InstanceId>,
    /// Rows deleted in this step's transaction at most (the instance rows themselves aside).
    pub limit: i64,
}

/// Rows that belong to no instance (see [`Store::retention_loose`]).
#[derive(Clone, Debug)]
pub struct RetentionLoose {
    /// Events and sent or failed alerts without an instance, created before this, go.
    pub before: DateTime<Utc>,
    /// Workers and schedulers stopped, or silent since before this, and last seen before `before`, go.
    pub dead_before: DateTime<Utc>,
    /// Worker host and pool occupancy history (`worker_metric`, `pool_sample`) sampled before
    /// this goes.
    pub metrics_before: DateTime<Utc>,
    /// Rows per table per call at most.
    pub limit: i64,
    /// Count instead of deleting (every matching row, no limit).
    pub dry_run: bool,
}

/// Rows deleted (or, in a dry run, that would be) per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetentionCounts {
    pub workflow_instance: u64,
    pub task: u64,
    pub task_attempt: u64,
    pub task_log: u64,
    pub event: u64,
    pub alert: u64,
    pub data_monitor: u64,
    pub worker: u64,
    pub scheduler: u64,
    pub deadline_miss: u64,
    pub worker_metric: u64,
    pub pool_sample: u64,
    pub backfill: u64,
    pub backfill_slot: u64,
}

impl RetentionCounts {
    /// Every table with its count, in the order a pruned instance's rows are deleted.
    pub fn tables(&self) -> [(&'static str, u64); 14] {
        [
            ("task_log", self.task_log),
            ("task_attempt", self.task_attempt),
            ("data_monitor", self.data_monitor),
            ("event", self.event),
            ("alert", self.alert),
            ("task", self.task),
            ("workflow_instance", self.workflow_instance),
            ("worker", self.worker),
            ("scheduler", self.scheduler),
            ("deadline_miss", self.deadline_miss),
            ("worker_metric", self.worker_metric),
            ("pool_sample", self.pool_sample),
            ("backfill_slot", self.backfill_slot),
            ("backfill", self.backfill),
        ]
    }

    pub fn total(&self) -> u64 {
        self.tables().iter().map(|(_, n)| n).sum()
    }

    /// The count of `table` (one of [`RetentionCounts::tables`]).
    pub(crate) fn slot(&mut self, table: &str) -> &mut u64 {
        match table {
            "task_log" => &mut self.task_log,
            "task_attempt" => &mut self.task_attempt,
            "data_monitor" => &mut self.data_monitor,
            "event" => &mut self.event,
            "alert" => &mut self.alert,
            "task" => &mut self.task,
            "worker" => &mut self.worker,
            "scheduler" => &mut self.scheduler,
            "deadline_miss" => &mut self.deadline_miss,
            "worker_metric" => &mut self.worker_metric,
            "pool_sample" => &mut self.pool_sample,
            "backfill" => &mut self.backfill,
            "backfill_slot" => &mut self.backfill_slot,
            _ => &mut self.workflow_instance,
        }
    }

    pub fn add(&mut self, o: &RetentionCounts) {
        self.workflow_instance += o.workflow_instance;
        self.task += o.task;
        self.task_attempt += o.task_attempt;
        self.task_log += o.task_log;
        self.event += o.event;
        self.alert += o.alert;
        self.data_monitor += o.data_monitor;
        self.worker += o.worker;
        self.scheduler += o.scheduler;
        self.deadline_miss += o.deadline_miss;
        self.worker_metric += o.worker_metric;
        self.pool_sample += o.pool_sample;
        self.backfill += o.backfill;
        self.backfill_slot += o.backfill_slot;
    }
}

/// What one [`Store::retention_delete`] step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionStep {
    pub deleted: RetentionCounts,
    /// The instances are gone (or were no longer ended, and are kept): no further step is needed.
    pub done: bool,
}

/// One stored version of a workflow (every version ever synced is kept).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct WorkflowVersionRow {
    pub version: i64,
    pub content_hash: String,
    pub source_xml: String,
    pub created_at: DateTime<Utc>,
}

/// A `definition_sync` row: the last rescan of a definitions directory (standalone).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DefinitionSyncRow {
    /// The directory, as the process that syncs it names it.
    pub source: String,
    /// When the set now running was synced; `None`: never synced from this directory.
    pub synced_at: Option<DateTime<Utc>>,
    /// Since when every rescan has failed; `None`: the last rescan synced.
    pub failing_since: Option<DateTime<Utc>>,
    /// Errors of the last rescan (0 when it synced).
    pub error_count: i64,
    /// JSON array of the first errors, each `file:line:col: message`.
    pub errors: String,
    pub updated_at: DateTime<Utc>,
}

impl DefinitionSyncRow {
    /// The recorded first errors.
    pub fn error_list(&self) -> Vec<String> {
        serde_json::from_str(&self.errors).unwrap_or_default()
    }
}

/// What a rescan found: no errors (it synced) or the errors that held the whole set back.
#[derive(Clone, Debug)]
pub struct DefinitionSyncRecord {
    pub source: String,
    /// Every error of the set (0: it synced).
    pub error_count: i64,
    /// The first few, as they are shown.
    pub errors: Vec<String>,
}

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
