//! Run rows: instances, backfills and their slots, tasks, claims, attempts and log lines.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::{
    AttemptOutcome, BackfillId, BackfillStatus, InstanceId, InstanceStatus, Reprocess, TaskId,
    TaskStatus, TriggerKind,
};

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
    /// Inserted `running`, its `started_at` its `created_at` (an instance started by the
    /// transaction that creates it); else `pending`.
    pub started: bool,
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceTransition {
    pub id: InstanceId,
    pub from: Vec<InstanceStatus>,
    pub to: InstanceStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl InstanceTransition {
    /// Whether `other` changes a row the same way (only the id differs): one statement can do both.
    pub fn same_change(&self, other: &InstanceTransition) -> bool {
        InstanceTransition {
            id: other.id,
            ..self.clone()
        } == *other
    }
}

/// Deferred run changes written together ([`crate::store::StoreTx::changes_write`]): runs of
/// identical task changes, then runs of identical instance changes, then which of `pending_of`
/// have a pending instance (a read the ends may call for).
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub tasks: Vec<(Vec<TaskId>, TaskTransition)>,
    pub instances: Vec<(Vec<InstanceId>, InstanceTransition)>,
    pub pending_of: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.instances.is_empty() && self.pending_of.is_empty()
    }
}

/// What [`Changes`] did: the rows each run changed, in order, and the workflows with a pending
/// instance.
#[derive(Clone, Debug, Default)]
pub struct ChangesWritten {
    pub tasks: Vec<u64>,
    pub instances: Vec<u64>,
    pub pending: Vec<String>,
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
    /// `waiting` unless the instance is born started: then what its start made of the node. A
    /// `ready` row gets `run_at`, a finished one `ended_at`: the database's clock at the insert.
    pub status: TaskStatus,
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

/// A broken invariant found by [`super::Store::invariant_check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub what: &'static str,
    /// The row it is about (an instance or task id, or a count).
    pub id: i64,
    pub info: String,
}

/// An instance row read under its lock, with the database clock read after the lock was granted.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct LockedInstance {
    #[sqlx(flatten)]
    pub row: InstanceRow,
    pub db_now: DateTime<Utc>,
}
