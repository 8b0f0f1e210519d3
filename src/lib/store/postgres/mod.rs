//! PostgreSQL 13+ store, ported from `sqlite/` with the same semantics.
//!
//! - `now()` is the database clock: the start of the current transaction, which for a statement
//!   outside one is the statement itself. Where a transaction may have waited for a lock before it
//!   reads the time (`instance_lock`), `clock_timestamp()` gives the real time.
//! - Sets are bound as one array value (`= ANY($1)`), so statement text never changes with their size.
//! - A store transaction ([`BEGIN_RUNS`]) runs its prepared statements on their generic plans, made
//!   without sequential scans. Its statements find rows by key (arrays of ids, a status literal),
//!   so a custom plan for each call's values was the same plan made again: a quarter of a drain's
//!   statement time was planning. A generic plan chosen while the run tables were still small (a
//!   fresh database, before autovacuum's first ANALYZE) would be a sequential scan the connection
//!   keeps (with 10,000 instances a task list took 4 ms instead of a few index pages, session 10),
//!   hence no sequential scans where an index serves. Both settings are `SET LOCAL`: they end with
//!   the transaction, through a transaction-pooling PgBouncer too.
//! - Text that is sorted for display sorts `COLLATE "C"` (byte order), as SQLite and MySQL's
//!   `utf8mb4_bin` do, whatever the database's default collation.
//! - The claim is one statement (`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`), so it
//!   needs no transaction of its own. Its limit is written into the text (one statement per limit),
//!   so its plan is cached instead of made again on every claim.
//! - The master lock is a session advisory lock through [`SessionMaster`]; advisory locks are per
//!   database, so every akkaflow database on a server has its own master.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, Postgres};
use sqlx::{Connection, QueryBuilder, Transaction};

use super::common::{
    all_applied, bind_host, fit_in_pool, json_list, last_per_upstream, metric_every_secs, micros,
    normalize_dir_prefix, numbered, placeholders, pool_waiting, INVARIANT_CHECKS, POOL_USED,
    ROWS_PER_INSERT, WORKER_HOST_COLUMNS, WORKER_HOST_SET, WORKER_METRIC_COLUMNS,
};
use super::session_lock::{SessionLock, SessionMaster};
mod alerts;
mod backfills;
mod calendars;
#[macro_use]
mod definitions;
mod fleet;
mod pools;
mod records;
mod retention;
#[macro_use]
mod runs;
// after the modules whose column macros it uses
mod deadlines;
mod tokens;
mod tx;

use tx::PostgresTx;

use super::*;
use crate::definition::{DbLink, FileLink};
use crate::state::{BackfillId, InstanceId, TaskId};

pub(crate) struct PostgresStore {
    pool: PgPool,
    /// Closes surplus idle connections while the store lives.
    _trim: tokio_util::sync::DropGuard,
    /// For the LISTEN connection's own pool.
    acquire_timeout: Duration,
    /// For the LISTEN connection, which must never come from (or return to) the pool.
    options: PgConnectOptions,
    /// A session of its own for the master lock and migrations (`lock_url`, else `url`); `None`
    /// through a transaction-pooling PgBouncer without a `lock_url`.
    session: Option<PgConnectOptions>,
    /// The pool goes through a transaction-pooling PgBouncer: nothing may rely on its session.
    pgbouncer: bool,
    /// The database the pool reaches, which a separate `lock_url` must reach too.
    database: String,
}

/// Why the master lock and migrations cannot go through a transaction-pooling PgBouncer.
const NEEDS_SESSION: &str = "a session advisory lock cannot pass a transaction-pooling PgBouncer \
     ([database] pgbouncer = true): set [database] lock_url (or AKKAFLOW_DATABASE_LOCK_URL) to the \
     server itself or to a session-mode pool";

impl PostgresStore {
    pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Arc<dyn Store>> {
        let unreachable = |e: sqlx::Error| StoreError::on_connect(&opts.url, e);
        let mut options = PgConnectOptions::from_str(&opts.url).map_err(unreachable)?;
        if opts.pgbouncer {
            // PgBouncer refuses a startup parameter it does not know (unless its
            // ignore_startup_parameters names it); the server's default (1 since PostgreSQL 12)
            // already prints floats exactly, and sqlx reads results in binary anyway
            options = options.extra_float_digits(None);
        }
        let session = match &opts.lock_url {
            Some(url) => Some(
                PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::on_connect(url, e))?
                    .extra_float_digits(None),
            ),
            None if opts.pgbouncer => None,
            None => Some(options.clone()),
        };
        let pool = budget::ping_when_idle(PgPoolOptions::new())
            .max_connections(opts.max_connections.max(1))
            .min_connections(0)
            .idle_timeout(opts.idle_timeout)
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(|_conn, _meta| {
                Box::pin(async move {
                    budget::connected();
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            // sqlx retries "too many clients" (53300) as transient until the acquire timeout: one
            // direct attempt tells a full server from an unreachable one
            Err(sqlx::Error::PoolTimedOut) => {
                let direct = tokio::time::timeout(
                    opts.acquire_timeout,
                    <PgConnection as sqlx::Connection>::connect_with(&options),
                )
                .await;
                return Err(match direct {
                    Ok(Err(e)) => unreachable(e),
                    Ok(Ok(c)) => {
                        let _ = sqlx::Connection::close(c).await;
                        unreachable(sqlx::Error::PoolTimedOut)
                    }
                    Err(_) => unreachable(sqlx::Error::PoolTimedOut),
                });
            }
            Err(e) => return Err(unreachable(e)),
        };
        let (max_connections, database): (i64, String) = sqlx::query_as(
            "SELECT current_setting('max_connections')::bigint, current_database()::text",
        )
        .fetch_one(&pool)
        .await?;
        budget::set_max_connections(max_connections);
        Ok(Arc::new(PostgresStore {
            _trim: budget::trim_idle(pool.clone(), opts.idle_timeout),
            acquire_timeout: opts.acquire_timeout,
            pool,
            options,
            session,
            pgbouncer: opts.pgbouncer,
            database,
        }))
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn deadline_late_done(&self, limit: i64) -> Result<Vec<LateDone>> {
        deadlines::late_done(&self.pool, limit).await
    }

    async fn deadline_miss_list(
        &self,
        workflow: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeadlineMissRow>> {
        deadlines::miss_list(&self.pool, workflow, limit).await
    }

    async fn deadline_watch_list(&self) -> Result<Vec<DeadlineWatch>> {
        deadlines::watch_list(&self.pool).await
    }

    async fn instance_for_slot(
        &self,
        workflow: &str,
        slot: DateTime<Utc>,
    ) -> Result<Option<InstanceRow>> {
        deadlines::instance_for_slot(&self.pool, workflow, slot).await
    }

    async fn alert_due(&self, limit: i64, with_mail: bool) -> Result<Vec<AlertRow>> {
        alerts::due(with_mail, &self.pool, limit).await
    }

    async fn alert_resend(&self, id: i64) -> Result<Cas> {
        alerts::resend(&self.pool, id).await
    }

    async fn alert_list(&self, limit: i64) -> Result<Vec<AlertRow>> {
        alerts::list(&self.pool, limit).await
    }

    async fn alert_transition(&self, p: &AlertTransition) -> Result<Cas> {
        alerts::transition(&self.pool, p).await
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn backfill_get(&self, id: BackfillId) -> Result<Option<BackfillRow>> {
        backfills::get(&mut *self.pool.acquire().await?, id, false).await
    }

    async fn backfill_list(&self, filter: &BackfillFilter) -> Result<Vec<BackfillRow>> {
        backfills::list(&self.pool, filter).await
    }

    async fn backfill_slot_history(
        &self,
        workflow: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<SlotHistory> {
        backfills::slot_history(&self.pool, workflow, from, to).await
    }

    async fn backfill_slot_list(&self, id: BackfillId) -> Result<Vec<BackfillSlotRow>> {
        backfills::slot_list(&mut *self.pool.acquire().await?, id).await
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>> {
        Ok(Box::new(PostgresTx {
            tx: self.pool.begin_with(BEGIN_RUNS).await?,
            events: Vec::new(),
            attempts: Vec::new(),
            logs: Vec::new(),
        }))
    }

    async fn coordinator_due(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        definitions::coordinator_due(&self.pool, limit).await
    }

    async fn coordinator_next_due_micros(&self) -> Result<Option<i64>> {
        definitions::coordinator_next_due_micros(&self.pool).await
    }

    async fn coordinator_get(&self, workflow: &str) -> Result<Option<CoordinatorRow>> {
        definitions::coordinator_get(&self.pool, workflow).await
    }

    async fn coordinator_needs_next(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        definitions::coordinator_needs_next(&self.pool, limit).await
    }

    async fn coordinator_set_next(
        &self,
        workflow: &str,
        next: Option<DateTime<Utc>>,
    ) -> Result<Cas> {
        definitions::coordinator_set_next(&self.pool, workflow, next).await
    }

    async fn coordinator_deps_ready(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        definitions::coordinator_deps_ready(&self.pool, limit).await
    }

    async fn coordinator_depend_list(&self, workflow: &str) -> Result<Vec<DependRow>> {
        definitions::coordinator_depend_list(&self.pool, workflow).await
    }

    async fn coordinator_downstream(&self, upstream: &str) -> Result<Vec<String>> {
        alerts::downstream(&self.pool, upstream).await
    }

    async fn data_monitor_insert(&self, c: &NewDataMonitorCheck) -> Result<()> {
        records::data_monitor_insert(&self.pool, c).await
    }

    async fn data_monitor_list(&self, instance: InstanceId) -> Result<Vec<DataMonitorRow>> {
        records::data_monitor_list(&self.pool, instance).await
    }

    async fn calendar_list(&self) -> Result<Vec<CalendarRow>> {
        calendars::calendar_list(&self.pool).await
    }

    async fn db_link_get(&self, name: &str) -> Result<Option<DbLink>> {
        definitions::db_link_get(&self.pool, name).await
    }

    async fn coordinator_list(&self) -> Result<Vec<CoordinatorRow>> {
        definitions::coordinator_list(&self.pool).await
    }

    async fn db_link_list(&self) -> Result<Vec<DbLinkRow>> {
        definitions::db_link_list(&self.pool).await
    }

    async fn definition_sync_list(&self) -> Result<Vec<DefinitionSyncRow>> {
        definitions::definition_sync_list(&self.pool).await
    }

    async fn definition_sync_record(&self, p: &DefinitionSyncRecord) -> Result<()> {
        definitions::definition_sync_record(&self.pool, p).await
    }

    async fn event_list(&self, f: &EventFilter) -> Result<Vec<EventRow>> {
        records::event_list(&self.pool, f).await
    }

    async fn file_link_get(&self, name: &str) -> Result<Option<FileLink>> {
        definitions::file_link_get(&self.pool, name).await
    }

    async fn file_link_list(&self) -> Result<Vec<FileLinkRow>> {
        definitions::file_link_list(&self.pool).await
    }

    async fn instance_children(
        &self,
        parents: &[InstanceId],
    ) -> Result<Vec<(InstanceId, InstanceId, crate::state::InstanceStatus)>> {
        retention::instance_children(&self.pool, parents).await
    }

    async fn instance_count_by_day(
        &self,
        since: DateTime<Utc>,
        dir_prefix: Option<&str>,
    ) -> Result<Vec<DayCount>> {
        runs::instance_count_by_day(&self.pool, since, dir_prefix).await
    }

    async fn instance_get(&self, id: InstanceId) -> Result<Option<InstanceRow>> {
        runs::instance_get(&self.pool, id).await
    }

    async fn instance_latest_by_workflow(&self) -> Result<Vec<InstanceRow>> {
        runs::instance_latest_by_workflow(&self.pool).await
    }

    async fn instance_list(&self, f: &InstanceFilter) -> Result<Vec<InstanceRow>> {
        runs::instance_list(&self.pool, f).await
    }

    async fn instance_pending_workflows(&self, limit: i64) -> Result<Vec<String>> {
        runs::instance_pending_workflows(&self.pool, limit).await
    }

    async fn instance_search(&self, s: &InstanceSearch) -> Result<InstanceSearchPage> {
        runs::instance_search(&self.pool, s).await
    }

    async fn invariant_check(&self, stuck_before: DateTime<Utc>) -> Result<Vec<Violation>> {
        let mut found = Vec::new();
        for (what, sql) in INVARIANT_CHECKS {
            let sql = numbered(sql);
            let mut q = sqlx::query_as::<_, (i64, Option<String>)>(&sql);
            for _ in 0..placeholders(&sql.replace('$', "?")) {
                q = q.bind(stuck_before);
            }
            for (id, info) in q.fetch_all(&self.pool).await? {
                found.push(Violation {
                    what,
                    id,
                    info: info.unwrap_or_default(),
                });
            }
        }
        Ok(found)
    }

    async fn lease_extend_many(&self, worker_id: &str, ttl: Duration) -> Result<u64> {
        runs::lease_extend_many(&self.pool, worker_id, ttl).await
    }

    async fn master_lock(&self, holder: &str) -> Result<Box<dyn MasterLock>> {
        let Some(options) = self.session.clone() else {
            return Err(StoreError::Misconfigured(format!(
                "the master lock: {NEEDS_SESSION}"
            )));
        };
        let lock = fleet::PostgresLock {
            pool: self.pool.clone(),
            options,
            database: self.database.clone(),
        };
        Ok(Box::new(SessionMaster::new(lock, holder)))
    }

    async fn metrics_read(&self) -> Result<super::metrics::MetricsSnapshot> {
        super::metrics::metrics_read!(&self.pool, super::metrics::plain_text)
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = sqlx::migrate!("sql/postgres");
        // a role running under a least-privilege user has no DDL rights: only migrate when needed
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        if all_applied(&migrator, &applied) {
            return Ok(());
        }
        if !self.pgbouncer {
            migrator.run(&self.pool).await?;
            return Ok(());
        }
        // sqlx's migrator holds a session advisory lock while it runs: it needs a session
        let Some(options) = &self.session else {
            return Err(StoreError::Misconfigured(format!(
                "the database needs migrations, and sqlx's migrator takes {NEEDS_SESSION}"
            )));
        };
        // a pool of one: a session, closed when done
        let session = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        let ran = migrator.run(&session).await;
        session.close().await;
        Ok(ran?)
    }

    async fn pool_list(&self) -> Result<Vec<PoolRow>> {
        pools::list(&self.pool).await
    }

    async fn pool_sample_record(&self, every: Duration) -> Result<u64> {
        pools::sample_record(&self.pool, every).await
    }

    async fn pool_sample_list(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<PoolSampleRow>> {
        pools::sample_list(&self.pool, since, limit).await
    }

    async fn pool_names(&self) -> Result<Vec<String>> {
        pools::names(&self.pool).await
    }

    async fn ready_listener(&self) -> Result<Option<Box<dyn ReadyListener>>> {
        if self.pgbouncer {
            // LISTEN is session state: through transaction pooling it would listen on whichever
            // server connection ran it, for whoever gets that connection next
            return Ok(None);
        }
        // its own pool of one (sqlx reconnects through it): a listener holds its connection for
        // good, which must not take one of the budget's pooled connections
        let own = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(self.options.clone());
        let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
        listener.listen(READY_CHANNEL).await?;
        Ok(Some(Box::new(PgReady { listener })))
    }

    async fn now(&self) -> Result<DateTime<Utc>> {
        clock(&mut *self.pool.acquire().await?).await
    }

    async fn ready_tasks_due(&self, queues: &[String]) -> Result<bool> {
        runs::ready_tasks_due(&self.pool, queues).await
    }

    async fn retention_candidates(&self, p: &RetentionScan) -> Result<Vec<InstanceId>> {
        retention::candidates(&self.pool, p).await
    }

    async fn retention_count(&self, instances: &[InstanceId]) -> Result<RetentionCounts> {
        retention::count(&self.pool, instances).await
    }

    async fn retention_delete(&self, p: &RetentionDelete) -> Result<RetentionStep> {
        retention::delete(&self.pool, p).await
    }

    async fn retention_loose(&self, p: &RetentionLoose) -> Result<RetentionCounts> {
        retention::loose(&self.pool, p).await
    }

    async fn scheduler_heartbeat(&self, p: &SchedulerBeat) -> Result<()> {
        fleet::scheduler_heartbeat(&self.pool, p).await
    }

    async fn scheduler_list(&self) -> Result<Vec<SchedulerRow>> {
        fleet::scheduler_list(&self.pool).await
    }

    async fn session_create(&self, p: &NewSession) -> Result<()> {
        tokens::session_create(&self.pool, p).await
    }

    async fn session_delete(&self, id_hash: &str) -> Result<()> {
        tokens::session_delete(&self.pool, id_hash).await
    }

    async fn session_get(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        tokens::session_get(&self.pool, id_hash).await
    }

    async fn task_claim(&self, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
        runs::task_claim(&self.pool, p).await
    }

    async fn task_get(&self, id: TaskId) -> Result<Option<TaskRow>> {
        runs::task_get(&self.pool, id).await
    }

    async fn task_kill_check(&self, worker_id: &str, ids: &[TaskId]) -> Result<Vec<TaskId>> {
        runs::task_kill_check(&self.pool, worker_id, ids).await
    }

    async fn task_lease_expired(&self, limit: i64) -> Result<Vec<TaskRow>> {
        runs::task_lease_expired(&self.pool, limit).await
    }

    async fn task_queue_depth(&self) -> Result<Vec<QueueDepth>> {
        runs::task_queue_depth(&self.pool).await
    }

    async fn task_list(&self, instance: InstanceId) -> Result<Vec<TaskRow>> {
        runs::task_list(&self.pool, instance).await
    }

    async fn task_attempt_list(&self, instance: InstanceId) -> Result<Vec<AttemptRow>> {
        records::task_attempt_list(&self.pool, instance).await
    }

    async fn task_log_insert_many(&self, lines: &[LogLine]) -> Result<()> {
        records::task_log_insert_many(&self.pool, lines).await
    }

    async fn task_log_read(&self, q: &LogQuery) -> Result<Vec<LogLine>> {
        records::task_log_read(&self.pool, q).await
    }

    async fn token_get_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRow>> {
        tokens::token_get_by_hash(&self.pool, secret_hash).await
    }

    async fn token_list(&self) -> Result<Vec<TokenRow>> {
        tokens::token_list(&self.pool).await
    }

    async fn worker_deregister(&self, worker_id: &str) -> Result<()> {
        fleet::worker_deregister(&self.pool, worker_id).await
    }

    async fn worker_heartbeat(&self, worker_id: &str, host: &HostSample) -> Result<Cas> {
        fleet::worker_heartbeat(&self.pool, worker_id, host).await
    }

    async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        fleet::worker_list(&self.pool).await
    }

    async fn worker_metric_insert(&self, p: &WorkerMetricInsert<'_>) -> Result<bool> {
        fleet::worker_metric_insert(&self.pool, p).await
    }

    async fn worker_metric_list(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<WorkerMetricRow>> {
        fleet::worker_metric_list(&self.pool, since, limit).await
    }

    async fn worker_register(&self, p: &WorkerRegistration) -> Result<()> {
        fleet::worker_register(&self.pool, p).await
    }

    async fn workflow_versions(&self, name: &str) -> Result<Vec<WorkflowVersionRow>> {
        definitions::workflow_versions(&self.pool, name).await
    }

    async fn workflow_definition(&self, name: &str, version: i64) -> Result<Option<String>> {
        definitions::workflow_definition(&mut *self.pool.acquire().await?, name, version).await
    }

    async fn workflow_definitions_current(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, i64, String)>> {
        definitions::workflow_definitions_current(&self.pool, names).await
    }

    async fn workflow_get(&self, name: &str) -> Result<Option<WorkflowRow>> {
        definitions::workflow_get(&self.pool, name).await
    }

    async fn workflow_list(&self) -> Result<Vec<WorkflowRow>> {
        definitions::workflow_list(&self.pool).await
    }
}

/// The LISTEN/NOTIFY channel for "tasks became ready".
const READY_CHANNEL: &str = "akkaflow_ready";

/// `sql` with its parameters `$1..` renumbered from `$(base + 1)`.
pub(super) fn renumbered(sql: &str, base: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n: usize = rest[..digits].parse().expect("parameters are numbered");
        out.push_str(&(n + base).to_string());
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// How a store transaction begins (one round trip): see the module doc.
const BEGIN_RUNS: &str =
    "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off";

struct PgReady {
    listener: sqlx::postgres::PgListener,
}

#[async_trait]
impl ReadyListener for PgReady {
    async fn recv(&mut self) -> Result<()> {
        // PgListener reconnects (and re-listens) by itself when its connection drops
        self.listener.recv().await?;
        Ok(())
    }
}

/// The database's clock, read on `conn` (the pool's or a transaction's own connection).
pub(super) async fn clock(conn: &mut PgConnection) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock lives on a session of its own: when that session dies, the handle stops being master
    /// at once, and can win the lock again on a new connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_lock_connection_steps_down() {
        let Some(url) = crate::testkit::fresh_database_url(Backend::Postgres, "killed_lock").await
        else {
            return;
        };
        let store = PostgresStore::connect(&ConnectOptions::new(url.clone()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut lock = store.master_lock("a").await.unwrap();
        let first = lock.try_acquire().await.unwrap().expect("a free lock");

        let mut admin = PgConnection::connect(&url).await.unwrap();
        let session: i32 = sqlx::query_scalar(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        let _: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(session)
            .fetch_one(&mut admin)
            .await
            .unwrap();

        assert!(!lock.still_held().await.unwrap());
        // The server ends the killed session asynchronously: retry until its lock is free.
        let lock = &tokio::sync::Mutex::new(lock);
        let second = crate::testkit::wait_for(Duration::from_secs(10), move || async move {
            let mut lock = lock.lock().await;
            lock.try_acquire().await.unwrap().ok_or("not yet released")
        })
        .await;
        assert!(second > first);
        assert!(lock.lock().await.still_held().await.unwrap());
    }
}
