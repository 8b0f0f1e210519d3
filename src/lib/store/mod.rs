//! The store: the only way the engine touches the database, one implementation per backend
//! (`sqlite/`, `mysql/`, `postgres/`), all checked by the same conformance suite.
//!
//! Each backend folder holds the same files, one per table group, so the three compare file by
//! file: `mod.rs` (connecting, transactions, the trait impls delegating to the groups),
//! `definitions.rs` (workflows, coordinators, links), `runs.rs` (instances and tasks), `records.rs`
//! (attempts, logs, events, data-monitor checks), `fleet.rs` (workers, schedulers, the master lock),
//! `alerts.rs`, `tokens.rs` (API tokens, sessions) and `retention.rs` (pruning old rows in bounded
//! transactions).
//!
//! Invariants every implementation keeps:
//! - every state change is a compare-and-set (`WHERE id = ? AND status IN (...)` plus fencing columns)
//!   that reports whether it applied ([`Cas`]); a stale writer changes nothing;
//! - every time comparison uses the database's clock, never the host's;
//! - a transaction ([`StoreTx`]) is opened for writing (SQLite: `BEGIN IMMEDIATE`; MySQL: READ
//!   COMMITTED, deadlocks retried by the caller through [`StoreError::is_retryable`]);
//! - rows from the database are parsed strictly: an unknown status is [`StoreError::Corrupt`].
//!
//! ```text
//!  engine (sync, scheduler, worker, cli) ──> Arc<dyn Store> ──> sqlite/ | mysql/ | postgres/
//!                                              └─ begin() ──> Box<dyn StoreTx> (one transaction)
//! ```

pub mod budget;
mod common;
#[cfg(test)]
mod conformance;
pub mod metrics;
mod mysql;
mod outage;
mod postgres;
mod preflight;
pub mod retry;
mod session_lock;
mod sqlite;
mod types;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use common::{dir_in_scope, normalize_dir_prefix};
pub use outage::{OutageLog, OUTAGE_SETTLE};
pub use types::*;

use crate::state::{BackfillId, InstanceId, TaskId};

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
    Postgres,
}

impl Backend {
    /// SQLite takes one write transaction at a time: writers running side by side only wait for
    /// each other's lock there.
    pub fn has_one_writer(self) -> bool {
        matches!(self, Backend::Sqlite)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Mysql => "mysql",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server refused a new connection because it has as many as its `max_connections`.
    #[error("the database refuses new connections: {}", budget::too_many_text(*.max_connections))]
    TooMany { max_connections: Option<u32> },
    #[error("unsupported database: {0}")]
    Unsupported(String),
    #[error("bad database url `{0}`: expected sqlite://, mysql:// or postgres://")]
    BadUrl(String),
    #[error("corrupt row: {table}.{column} holds `{value}`")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// What was asked cannot work with how the database is reached (a setting is missing).
    #[error("{0}")]
    Misconfigured(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    /// A refusal for too many connections names its cause wherever it comes from: the pool also
    /// opens connections in the middle of an operation, not only at connect.
    fn from(e: sqlx::Error) -> Self {
        if budget::is_too_many_sqlx(&e) {
            StoreError::TooMany {
                max_connections: budget::known_max_connections(),
            }
        } else {
            StoreError::Database(e)
        }
    }
}

impl StoreError {
    /// Deadlocks, lock wait timeouts and SQLite busy errors: the whole transaction may be retried.
    pub fn is_retryable(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(e)) = self else {
            return false;
        };
        // sqlx's `code()` is the SQLSTATE on MySQL (`40001` for a deadlock, the catch-all `HY000` for a
        // lock wait timeout): the server's error number tells them apart.
        if let Some(e) = e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            return matches!(e.number(), 1213 | 1205);
        }
        // PostgreSQL: serialization failure, deadlock. SQLite (extended codes): BUSY, BUSY_RECOVERY,
        // BUSY_SNAPSHOT, BUSY_TIMEOUT, LOCKED, LOCKED_SHAREDCACHE.
        matches!(
            e.code().as_deref(),
            Some("40001" | "40P01" | "5" | "261" | "517" | "773" | "6" | "262")
        )
    }

    /// Lost connection, refused connection, pool timeout, a server at its `max_connections`: the
    /// database is away for now.
    pub fn is_connection(&self) -> bool {
        self.is_too_many()
            || matches!(
                self,
                StoreError::Unreachable { .. }
                    | StoreError::Database(
                        sqlx::Error::Io(_)
                            | sqlx::Error::PoolTimedOut
                            | sqlx::Error::PoolClosed
                            | sqlx::Error::Tls(_)
                    )
            )
    }

    /// The server refused a new connection because it has too many (MySQL 1040, PostgreSQL 53300).
    pub fn is_too_many(&self) -> bool {
        match self {
            StoreError::TooMany { .. } => true,
            StoreError::Database(e) => budget::is_too_many_sqlx(e),
            _ => false,
        }
    }

    /// What a failed connect becomes: a refusal for too many connections says so, anything else
    /// is the database being unreachable.
    pub(crate) fn on_connect(url: &str, e: sqlx::Error) -> StoreError {
        if budget::is_too_many_sqlx(&e) {
            StoreError::TooMany {
                max_connections: budget::known_max_connections(),
            }
        } else {
            StoreError::Unreachable {
                url: redact_url(url),
                reason: e.to_string(),
            }
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whether a compare-and-set applied.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cas {
    Applied,
    Stale,
}

impl Cas {
    pub fn from_rows(rows: u64) -> Cas {
        if rows > 0 {
            Cas::Applied
        } else {
            Cas::Stale
        }
    }

    pub fn applied(self) -> bool {
        self == Cas::Applied
    }
}

/// How a store is opened.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub url: String,
    /// The most pooled connections (the master lock's and a PostgreSQL worker's LISTEN connection
    /// are each one more); they open on demand and close when idle (see [`budget`]).
    pub max_connections: u32,
    /// How long a pooled connection may sit unused before it is closed.
    pub idle_timeout: Duration,
    /// Run pending migrations after connecting (every role and command does).
    pub migrate: bool,
    /// How long a call waits for a pooled connection: short, so that during an outage every loop
    /// fails fast and retries on its own schedule instead of hanging in the pool.
    pub acquire_timeout: Duration,
    /// PostgreSQL: `url` goes through a transaction-pooling PgBouncer, so no statement may rely on
    /// the session: no LISTEN, no startup parameter PgBouncer does not know, and the master lock and
    /// migrations go to `lock_url`.
    pub pgbouncer: bool,
    /// PostgreSQL: a session connection (the server directly, or a session-mode pool) for the
    /// master lock and migrations; `url` when not given.
    pub lock_url: Option<String>,
}

/// How long a pooled connection may sit unused before it closes (`[pool] idle_timeout_secs`).
/// Each reopened connection costs its handshake, three session statements and a new prepare of
/// every statement it runs: at 10 s an idle fleet of a scheduler and two workers reopened 19
/// connections a minute (about 1 statement/s of its 6.9 on MariaDB), as two loops meeting by
/// chance opened a second connection that closed again soon after.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl ConnectOptions {
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            max_connections: 4,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            migrate: true,
            acquire_timeout: Duration::from_secs(5),
            pgbouncer: false,
            lock_url: None,
        }
    }
}

/// Opens the store the URL names and applies pending migrations.
pub async fn connect(opts: &ConnectOptions) -> Result<Arc<dyn Store>> {
    let url = opts.url.as_str();
    preflight::check(url).await?;
    let store: Arc<dyn Store> = if url.starts_with("sqlite:") {
        Arc::new(sqlite::SqliteStore::connect(opts).await?)
    } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
        mysql::MysqlStore::connect(opts).await?
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        postgres::PostgresStore::connect(opts).await?
    } else {
        return Err(StoreError::BadUrl(redact_url(url)));
    };
    if opts.migrate {
        store.migrate().await?;
    }
    Ok(store)
}

/// The URL with its password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// The only way the engine touches the database. Methods are alphabetical.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Pending alerts whose next attempt is due by the database clock, oldest first: those to a
    /// channel, and the mails to receivers too when `with_mail` (this process has `[smtp]`).
    async fn alert_due(&self, limit: i64, with_mail: bool) -> Result<Vec<AlertRow>>;
    /// Makes a `failed` alert pending again with its attempts counted afresh.
    async fn alert_resend(&self, id: i64) -> Result<Cas>;
    /// Alerts, newest first.
    async fn alert_list(&self, limit: i64) -> Result<Vec<AlertRow>>;
    async fn alert_transition(&self, p: &AlertTransition) -> Result<Cas>;

    fn backend(&self) -> Backend;

    async fn backfill_get(&self, id: BackfillId) -> Result<Option<BackfillRow>>;
    async fn backfill_list(&self, filter: &BackfillFilter) -> Result<Vec<BackfillRow>>;
    /// What the slots of `workflow` from `from` to `to` (both included) have seen: see [`SlotHistory`].
    async fn backfill_slot_history(
        &self,
        workflow: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<SlotHistory>;
    /// A backfill's slots, oldest first, with their instances' states.
    async fn backfill_slot_list(&self, id: BackfillId) -> Result<Vec<BackfillSlotRow>>;
    /// Opens a write transaction.
    async fn begin(&self) -> Result<Box<dyn StoreTx>>;

    async fn coordinator_due(&self, limit: i64) -> Result<Vec<CoordinatorRow>>;
    /// Microseconds from the database's now until the earliest slot [`Store::coordinator_due`]
    /// would return (negative: one is due already); `None` when no slot is scheduled.
    async fn coordinator_next_due_micros(&self) -> Result<Option<i64>>;
    async fn coordinator_get(&self, workflow: &str) -> Result<Option<CoordinatorRow>>;
    /// Enabled coordinators with a cron and no `next_fire_at` yet.
    async fn coordinator_needs_next(&self, limit: i64) -> Result<Vec<CoordinatorRow>>;
    async fn coordinator_set_next(
        &self,
        workflow: &str,
        next: Option<DateTime<Utc>>,
    ) -> Result<Cas>;
    /// Dependency-only coordinators whose upstreams have all succeeded since they last fired.
    async fn coordinator_deps_ready(&self, limit: i64) -> Result<Vec<CoordinatorRow>>;
    async fn coordinator_depend_list(&self, workflow: &str) -> Result<Vec<DependRow>>;
    /// Coordinators that depend on `upstream`.
    async fn coordinator_downstream(&self, upstream: &str) -> Result<Vec<String>>;
    async fn coordinator_list(&self) -> Result<Vec<CoordinatorRow>>;

    /// Open deadline misses whose slot has since succeeded (for the `late_done` alert).
    async fn deadline_late_done(&self, limit: i64) -> Result<Vec<LateDone>>;
    /// Slots that missed their deadline, newest first; of one workflow or of all.
    async fn deadline_miss_list(
        &self,
        workflow: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeadlineMissRow>>;
    /// Every coordinator with a deadline, with how far its slots are checked.
    async fn deadline_watch_list(&self) -> Result<Vec<DeadlineWatch>>;

    /// Records one data-monitor check (time from the database clock).
    async fn data_monitor_insert(&self, check: &NewDataMonitorCheck) -> Result<()>;
    /// The checks recorded for an instance, oldest first.
    async fn data_monitor_list(&self, instance: InstanceId) -> Result<Vec<DataMonitorRow>>;

    /// Every business calendar, by name.
    async fn calendar_list(&self) -> Result<Vec<CalendarRow>>;

    /// The db link `name` as sync wrote it, password included: for executors only, never for output.
    async fn db_link_get(&self, name: &str) -> Result<Option<crate::definition::DbLink>>;
    /// Every db link, without passwords.
    async fn db_link_list(&self) -> Result<Vec<DbLinkRow>>;

    /// The last rescan of each definitions directory (standalone), with its errors.
    async fn definition_sync_list(&self) -> Result<Vec<DefinitionSyncRow>>;
    /// Records a rescan: a clean one sets `synced_at` and clears the errors; a failed one keeps
    /// `synced_at` and the first failure's time (`failing_since`) and replaces the errors.
    async fn definition_sync_record(&self, p: &DefinitionSyncRecord) -> Result<()>;

    async fn event_list(&self, filter: &EventFilter) -> Result<Vec<EventRow>>;

    /// The file link `name` as sync wrote it.
    async fn file_link_get(&self, name: &str) -> Result<Option<crate::definition::FileLink>>;
    /// Every file link, without passwords.
    async fn file_link_list(&self) -> Result<Vec<FileLinkRow>>;

    /// The sub-workflow instances started by any of `parents`: (child, its parent, its status).
    async fn instance_children(
        &self,
        parents: &[InstanceId],
    ) -> Result<Vec<(InstanceId, InstanceId, crate::state::InstanceStatus)>>;

    /// Instances per UTC day and status since `since` (by end time, or creation time while unfinished),
    /// of workflows within `dir_prefix`.
    async fn instance_count_by_day(
        &self,
        since: DateTime<Utc>,
        dir_prefix: Option<&str>,
    ) -> Result<Vec<DayCount>>;

    async fn instance_get(&self, id: InstanceId) -> Result<Option<InstanceRow>>;
    /// The newest top-level instance of `workflow` for the cron slot `slot`; a backfill's instances
    /// do not count (a slot's deadline is about its scheduled run).
    async fn instance_for_slot(
        &self,
        workflow: &str,
        slot: DateTime<Utc>,
    ) -> Result<Option<InstanceRow>>;
    /// The newest instance of every workflow that has one.
    async fn instance_latest_by_workflow(&self) -> Result<Vec<InstanceRow>>;
    async fn instance_list(&self, filter: &InstanceFilter) -> Result<Vec<InstanceRow>>;
    /// Workflows that have `pending` instances, for the master's starter.
    async fn instance_pending_workflows(&self, limit: i64) -> Result<Vec<String>>;
    /// The instances list: a page newest first and the count of all matches (bounded).
    async fn instance_search(&self, s: &InstanceSearch) -> Result<InstanceSearchPage>;

    /// Extends the lease of every task this worker runs, in one statement.
    /// Runs every invariant check; `stuck_before` is the cutoff for an expired lease to count as stuck.
    async fn invariant_check(&self, stuck_before: DateTime<Utc>) -> Result<Vec<Violation>>;

    async fn lease_extend_many(&self, worker_id: &str, ttl: Duration) -> Result<u64>;

    /// A handle on the master lock, held on a connection of its own.
    async fn master_lock(&self, holder: &str) -> Result<Box<dyn MasterLock>>;

    /// One scrape's rows for `GET /metrics` (see [`metrics`] for what it costs).
    async fn metrics_read(&self) -> Result<metrics::MetricsSnapshot>;

    async fn migrate(&self) -> Result<()>;

    /// The database's clock.
    async fn now(&self) -> Result<DateTime<Utc>>;

    /// Every pool with its occupancy now (slots in use, running and waiting tasks), by name.
    async fn pool_list(&self) -> Result<Vec<PoolRow>>;
    /// Records every pool's occupancy in the history, once per pool and interval (`every` by the
    /// database clock; one statement); returns the rows written (0 when the interval has them).
    async fn pool_sample_record(&self, every: Duration) -> Result<u64>;
    /// The occupancy history of every pool sampled since `since`, by pool and time, at most
    /// `limit` rows (the newest kept).
    async fn pool_sample_list(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PoolSampleRow>>;
    /// The names of the pools, by name: what a worker's claims may take from (one small read).
    async fn pool_names(&self) -> Result<Vec<String>>;

    /// A subscription to "tasks became ready" from other processes, where the backend has one
    /// (PostgreSQL LISTEN/NOTIFY); `None` means workers rely on polling.
    async fn ready_listener(&self) -> Result<Option<Box<dyn ReadyListener>>>;

    /// Whether a ready task of any pool is due now in one of `queues` (any queue when empty): an
    /// idle worker asks before it claims, and while the fleet is claiming a maintenance pass (the
    /// pruner) takes smaller steps further apart. One read that stops at the first such task.
    async fn ready_tasks_due(&self, queues: &[String]) -> Result<bool>;

    /// Top-level instances (no parent) that ended longer ago than their retention, by id from
    /// `p.after`, at most `p.limit`: what a pruning pass deletes (with their sub-workflow instances).
    async fn retention_candidates(&self, p: &RetentionScan) -> Result<Vec<InstanceId>>;
    /// The rows [`Store::retention_delete`] would delete for these instances, per table.
    async fn retention_count(&self, instances: &[InstanceId]) -> Result<RetentionCounts>;
    /// One transaction: locks those of `p.instances` that are still ended (a retried task reopens
    /// an instance: it is kept), then deletes up to `p.limit` of their rows, leaves first (logs,
    /// attempts, data-monitor checks, events, alerts, tasks), and the instance rows once nothing
    /// else of them is left. Called until `done`.
    async fn retention_delete(&self, p: &RetentionDelete) -> Result<RetentionStep>;
    /// Deletes (or counts) rows that belong to no instance: old events and sent or failed alerts
    /// without one, dead workers (without a running task) and schedulers (not master), and old
    /// worker host history.
    async fn retention_loose(&self, p: &RetentionLoose) -> Result<RetentionCounts>;

    async fn scheduler_heartbeat(&self, p: &SchedulerBeat) -> Result<()>;
    async fn scheduler_list(&self) -> Result<Vec<SchedulerRow>>;

    /// Stores a UI session (and drops expired ones).
    async fn session_create(&self, p: &NewSession) -> Result<()>;
    async fn session_delete(&self, id_hash: &str) -> Result<()>;
    /// A session that has not expired and whose token is not revoked.
    async fn session_get(&self, id_hash: &str) -> Result<Option<SessionRow>>;

    async fn task_claim(&self, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>>;
    async fn task_get(&self, id: TaskId) -> Result<Option<TaskRow>>;
    /// Of `ids`, the tasks this worker must stop: killed, requested to die, or no longer its own.
    async fn task_kill_check(&self, worker_id: &str, ids: &[TaskId]) -> Result<Vec<TaskId>>;
    async fn task_lease_expired(&self, limit: i64) -> Result<Vec<TaskRow>>;
    /// Ready (due now) and running task counts per queue.
    async fn task_queue_depth(&self) -> Result<Vec<QueueDepth>>;
    async fn task_list(&self, instance: InstanceId) -> Result<Vec<TaskRow>>;
    async fn task_attempt_list(&self, instance: InstanceId) -> Result<Vec<AttemptRow>>;
    async fn task_log_insert_many(&self, lines: &[LogLine]) -> Result<()>;
    async fn task_log_read(&self, p: &LogQuery) -> Result<Vec<LogLine>>;

    /// The token whose secret hashes to `secret_hash`, unless it is revoked.
    async fn token_get_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRow>>;
    /// Every token, revoked ones included, by name.
    async fn token_list(&self) -> Result<Vec<TokenRow>>;

    async fn worker_deregister(&self, worker_id: &str) -> Result<()>;
    /// The heartbeat: one UPDATE of the worker's row, its host figures with it.
    async fn worker_heartbeat(&self, worker_id: &str, host: &HostSample) -> Result<Cas>;
    async fn worker_list(&self) -> Result<Vec<WorkerRow>>;
    /// Records the host in the history, once per worker and interval (`p.every` by the database
    /// clock); false when the interval has its row already (a re-sent insert, a restart).
    async fn worker_metric_insert(&self, p: &WorkerMetricInsert<'_>) -> Result<bool>;
    /// The host history of every worker sampled since `since`, by worker and time, at most `limit` rows
    /// (the newest kept).
    async fn worker_metric_list(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<WorkerMetricRow>>;
    async fn worker_register(&self, p: &WorkerRegistration) -> Result<()>;

    async fn workflow_definition(&self, name: &str, version: i64) -> Result<Option<String>>;
    /// The current version of each named workflow that exists, with its definition, in one read:
    /// what a group of fires will create instances of (see `Engine::warm_definitions`).
    async fn workflow_definitions_current(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, i64, String)>>;
    async fn workflow_get(&self, name: &str) -> Result<Option<WorkflowRow>>;
    async fn workflow_list(&self) -> Result<Vec<WorkflowRow>>;
    /// Every stored version of a workflow, oldest first.
    async fn workflow_versions(&self, name: &str) -> Result<Vec<WorkflowVersionRow>>;
}

/// [`StoreTx::changes_write`] one statement per part, in order.
pub(crate) async fn changes_write_each<T: StoreTx + ?Sized>(
    tx: &mut T,
    c: &Changes,
) -> Result<ChangesWritten> {
    let mut written = ChangesWritten::default();
    for (ids, t) in &c.tasks {
        written.tasks.push(tx.task_transition_many(ids, t).await?);
    }
    for (ids, t) in &c.instances {
        written
            .instances
            .push(tx.instance_transition_many(ids, t).await?);
    }
    if !c.pending_of.is_empty() {
        written.pending = tx.instance_pending_among(&c.pending_of).await?;
    }
    Ok(written)
}

/// One open write transaction; dropped without `commit`, it rolls back. Methods are alphabetical.
#[async_trait]
pub trait StoreTx: Send {
    async fn alert_insert(&mut self, a: &NewAlert) -> Result<()>;

    /// Inserts a backfill (status `running`) and its slots.
    async fn backfill_create(
        &mut self,
        b: &NewBackfill,
        slots: &[NewBackfillSlot],
    ) -> Result<BackfillId>;
    /// Reads a backfill without locking it (its settings never change).
    async fn backfill_get(&mut self, id: BackfillId) -> Result<Option<BackfillRow>>;
    /// Locks a backfill row for its launcher (one launcher per backfill at a time, whoever is master).
    async fn backfill_lock(&mut self, id: BackfillId) -> Result<Option<BackfillRow>>;
    /// Records the instance of a slot that has none yet.
    async fn backfill_slot_launch(
        &mut self,
        id: BackfillId,
        slot: DateTime<Utc>,
        instance: InstanceId,
    ) -> Result<Cas>;
    async fn backfill_slot_list(&mut self, id: BackfillId) -> Result<Vec<BackfillSlotRow>>;
    /// `from → to` if the backfill is still `from`; a final `to` sets `ended_at`.
    async fn backfill_transition(&mut self, t: &BackfillTransition) -> Result<Cas>;
    async fn commit(self: Box<Self>) -> Result<()>;

    async fn coordinator_delete(&mut self, workflow: &str) -> Result<()>;
    /// Workflows whose coordinator depends on `upstream`.
    async fn coordinator_downstream(&mut self, upstream: &str) -> Result<Vec<String>>;
    /// Clears every upstream's satisfaction of `workflow`; applied only if all `expected` were set.
    async fn coordinator_depend_clear(&mut self, workflow: &str, expected: usize) -> Result<Cas>;
    /// Replaces the upstream list, keeping the progress of upstreams that remain.
    async fn coordinator_depend_set(&mut self, workflow: &str, upstreams: &[String]) -> Result<()>;
    /// Marks `upstream` satisfied for every coordinator that depends on it.
    async fn coordinator_depend_satisfy(
        &mut self,
        upstream: &str,
        instance: InstanceId,
    ) -> Result<u64> {
        self.coordinator_depend_satisfy_many(&[(upstream.to_string(), instance)])
            .await
    }
    /// [`StoreTx::coordinator_depend_satisfy`] of each `(upstream, instance)` in one statement; an
    /// upstream named twice is satisfied by its last instance. The rows changed.
    async fn coordinator_depend_satisfy_many(
        &mut self,
        satisfied: &[(String, InstanceId)],
    ) -> Result<u64>;
    /// Moves `next_fire_at` from `expected` to `next` and records the slot fired (`None`: the due
    /// slots were skipped, `last_fire_at` stays); the fence against a second master.
    async fn coordinator_fire(
        &mut self,
        workflow: &str,
        expected: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        fired: Option<DateTime<Utc>>,
    ) -> Result<Cas> {
        let fire = CoordinatorFire {
            workflow: workflow.to_string(),
            expected,
            next,
            fired,
        };
        Ok(Cas::from_rows(self.coordinator_fire_many(&[fire]).await?))
    }
    /// [`StoreTx::coordinator_fire`] for many coordinators (each named once) in one statement;
    /// how many applied.
    async fn coordinator_fire_many(&mut self, fires: &[CoordinatorFire]) -> Result<u64>;
    async fn coordinator_list_all(&mut self) -> Result<Vec<CoordinatorRow>>;
    async fn coordinator_upsert(&mut self, c: &CoordinatorRow) -> Result<()>;
    /// Sets (or, with `None`, drops) a coordinator's deadline; how far it was checked stays.
    async fn coordinator_deadline_set(
        &mut self,
        workflow: &str,
        deadline: Option<&str>,
    ) -> Result<()>;

    /// Moves how far a coordinator's deadlines are checked from `expected` to `through`.
    async fn deadline_checked(
        &mut self,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        through: DateTime<Utc>,
    ) -> Result<Cas>;
    /// Records a missed slot; false when it was recorded already (by this or another master).
    async fn deadline_miss_insert(&mut self, m: &NewDeadlineMiss) -> Result<bool>;
    /// Closes an open miss: its slot succeeded late.
    async fn deadline_miss_done(&mut self, id: i64, done_at: DateTime<Utc>) -> Result<Cas>;

    /// Every business calendar, by name (sync compares them with the files).
    async fn calendar_list_all(&mut self) -> Result<Vec<CalendarRow>>;
    /// Writes a calendar; `updated_at` moves only when its days changed.
    async fn calendar_upsert(&mut self, c: &CalendarRow) -> Result<()>;
    async fn calendar_delete(&mut self, name: &str) -> Result<()>;

    async fn db_link_delete(&mut self, name: &str) -> Result<()>;
    async fn db_link_names(&mut self) -> Result<Vec<String>>;
    async fn db_link_upsert(&mut self, link: &crate::definition::DbLink) -> Result<()>;

    async fn event_insert_many(&mut self, events: &[NewEvent]) -> Result<()>;

    async fn file_link_delete(&mut self, name: &str) -> Result<()>;
    async fn file_link_names(&mut self) -> Result<Vec<String>>;
    async fn file_link_upsert(&mut self, link: &crate::definition::FileLink) -> Result<()>;

    /// Child instances (of sub-workflow nodes) of `parent` that have not ended.
    async fn instance_children_active(&mut self, parent: InstanceId) -> Result<Vec<InstanceId>>;
    async fn instance_count_running(&mut self, workflow: &str) -> Result<i64> {
        let counts = self
            .instance_count_running_many(&[workflow.to_string()])
            .await?;
        Ok(counts.first().map_or(0, |(_, n)| *n))
    }
    /// The running instances of each of `workflows` that has any (one statement for a group of
    /// fires).
    async fn instance_count_running_many(
        &mut self,
        workflows: &[String],
    ) -> Result<Vec<(String, i64)>>;
    /// Inserts an instance; `None` when its (workflow, trigger, scheduled_for) slot is taken.
    async fn instance_insert(&mut self, p: &NewInstance) -> Result<Option<InstanceId>> {
        let ids = self.instance_insert_many(std::slice::from_ref(p)).await?;
        Ok(ids.and_then(|ids| ids.first().copied()))
    }
    /// Inserts instances in one statement, all or none: their ids in the order given, or `None`
    /// (nothing written) when a slot is taken.
    async fn instance_insert_many(
        &mut self,
        rows: &[NewInstance],
    ) -> Result<Option<Vec<InstanceId>>>;
    /// Locks the instance row (`FOR UPDATE`) and returns it with the database's clock.
    async fn instance_lock(
        &mut self,
        id: InstanceId,
    ) -> Result<Option<(InstanceRow, DateTime<Utc>)>> {
        Ok(self.instance_lock_many(&[id]).await?.pop())
    }
    /// Locks the rows of the instances `ids` that exist (`FOR UPDATE`, in ascending id order: the
    /// engine's lock order) in one statement; each is returned with the database's clock read
    /// after its lock, in id order.
    async fn instance_lock_many(
        &mut self,
        ids: &[InstanceId],
    ) -> Result<Vec<(InstanceRow, DateTime<Utc>)>>;
    /// [`StoreTx::instance_lock_many`] without waiting: the rows another transaction holds are
    /// skipped (`SKIP LOCKED`) and left out of the answer, as are those that do not exist. With
    /// one writer (SQLite) no other transaction holds a row: every existing one is returned.
    async fn instance_lock_free(
        &mut self,
        ids: &[InstanceId],
    ) -> Result<Vec<(InstanceRow, DateTime<Utc>)>> {
        self.instance_lock_many(ids).await
    }
    /// Those of `workflows` that have a pending instance (one statement for a batch's ends).
    async fn instance_pending_among(&mut self, workflows: &[String]) -> Result<Vec<String>>;
    /// Writes `c`'s runs in order and reads its pending check; a backend may do it all in one
    /// statement.
    async fn changes_write(&mut self, c: &Changes) -> Result<ChangesWritten> {
        changes_write_each(self, c).await
    }
    async fn instance_pending_oldest(
        &mut self,
        workflow: &str,
        limit: i64,
    ) -> Result<Vec<InstanceId>>;
    async fn instance_transition(&mut self, p: &InstanceTransition) -> Result<Cas> {
        Ok(Cas::from_rows(
            self.instance_transition_many(&[p.id], p).await?,
        ))
    }
    /// [`StoreTx::instance_transition`] of every instance in `ids` (`p.id` is not read); how many
    /// changed.
    async fn instance_transition_many(
        &mut self,
        ids: &[InstanceId],
        p: &InstanceTransition,
    ) -> Result<u64>;

    /// The database's clock, read in this transaction (on its own connection: a transaction that
    /// waits for a second pooled connection can wait on others doing the same, as through a
    /// transaction-pooling PgBouncer).
    async fn now(&mut self) -> Result<DateTime<Utc>>;
    /// Tells other processes' workers at commit that tasks became ready (a no-op without LISTEN/NOTIFY).
    async fn notify_ready(&mut self) -> Result<()>;

    async fn pool_delete(&mut self, name: &str) -> Result<()>;
    /// Locks the pool row (`FOR UPDATE`): serialises with the claims of that pool.
    async fn pool_lock(&mut self, name: &str) -> Result<Option<PoolDef>>;
    /// Every pool row, by name, not locked (a write locks the row it changes; sync writes in name
    /// order, the one order in which any transaction locks more than one pool).
    async fn pool_defs(&mut self) -> Result<Vec<PoolDef>>;
    /// Inserts or replaces a pool row.
    async fn pool_write(&mut self, p: &PoolDef) -> Result<()>;

    async fn rollback(self: Box<Self>) -> Result<()>;

    async fn task_attempt_insert(&mut self, a: &AttemptRow) -> Result<()>;
    /// Inserts tasks and returns their ids, in the order given.
    async fn task_insert_many(&mut self, tasks: &[NewTask]) -> Result<Vec<TaskId>>;
    async fn task_list(&mut self, instance: InstanceId) -> Result<Vec<TaskRow>> {
        self.task_list_many(&[instance]).await
    }
    /// The tasks of the instances `ids`, by instance, then id.
    async fn task_list_many(&mut self, ids: &[InstanceId]) -> Result<Vec<TaskRow>>;
    /// Like [`Store::task_log_insert_many`], inside this transaction (any number of lines).
    async fn task_log_insert_many(&mut self, lines: &[LogLine]) -> Result<()>;
    /// The last `limit` lines of a task's latest attempt, in order.
    async fn task_log_tail(&mut self, id: TaskId, limit: i64) -> Result<Vec<String>>;
    /// Asks the worker running this task to kill it (seen on its next heartbeat); status stays `running`.
    async fn task_request_kill(&mut self, id: TaskId) -> Result<Cas>;
    async fn task_transition(&mut self, p: &TaskTransition) -> Result<Cas> {
        Ok(Cas::from_rows(self.task_transition_many(&[p.id], p).await?))
    }
    /// Applies `p` (its `id` aside) to every task in `ids` in one statement; returns the rows changed,
    /// so a caller expecting all of them can tell a stale one.
    async fn task_transition_many(&mut self, ids: &[TaskId], p: &TaskTransition) -> Result<u64>;

    /// Inserts a token; `None` when its name is taken (revoked tokens keep theirs).
    async fn token_create(&mut self, p: &NewToken) -> Result<Option<TokenRow>>;
    /// Revokes a live token by name and ends its sessions.
    async fn token_revoke(&mut self, name: &str) -> Result<Cas>;

    /// The stored definition of `version` of workflow `name` (its JSON), read in this transaction.
    async fn workflow_definition(&mut self, name: &str, version: i64) -> Result<Option<String>>;
    async fn workflow_heads(&mut self) -> Result<Vec<WorkflowHead>>;
    /// Locks the workflow row (`FOR UPDATE`): serialises instance starts against `instance-limit`.
    async fn workflow_lock(&mut self, name: &str) -> Result<Option<WorkflowHead>> {
        Ok(self.workflow_lock_many(&[name.to_string()]).await?.pop())
    }
    /// [`StoreTx::workflow_lock`] of every named workflow that exists, in one statement, locked in
    /// name order.
    async fn workflow_lock_many(&mut self, names: &[String]) -> Result<Vec<WorkflowHead>>;
    /// The `mail_receivers` of each named workflow that exists (comma lists as stored).
    async fn workflow_receivers(&mut self, names: &[String]) -> Result<Vec<String>>;
    async fn workflow_set_enabled(&mut self, name: &str, enabled: bool) -> Result<Cas>;
    /// Sets or clears `rolled_back_to` (see [`WorkflowHead::rolled_back_to`]).
    async fn workflow_set_rolled_back(&mut self, name: &str, to: Option<i64>) -> Result<()>;
    async fn workflow_upsert(&mut self, w: &WorkflowUpsert) -> Result<()>;
}

/// Waits for "tasks became ready" notifications.
#[async_trait]
pub trait ReadyListener: Send {
    /// Returns when a notification arrives (reconnecting as needed).
    async fn recv(&mut self) -> Result<()>;
}

/// The master lock on a dedicated connection (MySQL `GET_LOCK`, PostgreSQL advisory lock, SQLite a
/// lease row). Any error means "not master".
#[async_trait]
pub trait MasterLock: Send {
    /// Tries to become master; on success returns the new election epoch.
    async fn try_acquire(&mut self) -> Result<Option<i64>>;
    /// Whether this handle still holds the lock (renews it where it is a lease).
    async fn still_held(&mut self) -> Result<bool>;
    async fn release(&mut self) -> Result<()>;
    /// Where the lock is a lease: how often [`MasterLock::still_held`] must run to keep it, even
    /// while the master has nothing else to do. `None`: held as long as the session lives.
    fn renew_every(&self) -> Option<Duration> {
        None
    }
}
