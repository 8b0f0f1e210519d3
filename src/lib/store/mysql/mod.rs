//! MySQL 8.0+ / MariaDB 10.6+ store: the shared-server backend, ported from `sqlite/` with the same
//! semantics.
//!
//! - Every pooled session runs with `time_zone = '+00:00'` (DATETIME(6) columns hold UTC) and READ
//!   COMMITTED: at REPEATABLE READ the claim and a concurrent producer deadlocked on next-key locks.
//! - `NOW(6)` is the database clock for every comparison.
//! - Text columns use `utf8mb4_bin` (exact, case-sensitive, like SQLite and PostgreSQL). The server
//!   flags such columns BINARY, and sqlx then refuses to decode them as `String`, so every text
//!   column is selected through `CAST(... AS CHAR)`. ORDER BY always names the table column
//!   (`w.name`), never the alias, so rows still sort by the binary collation.
//! - Sets are bound one value per element (`QueryBuilder::push_bind`); a worker's claim text only
//!   changes with the number of its queues, so it stays prepared.
//! - Deadlocks (1213) and lock wait timeouts (1205) are retried here, in [`retrying`], a bounded
//!   number of times; transactions the engine opens are retried by the engine.
//! - The master lock is `GET_LOCK` through [`SessionMaster`]; its name carries `DATABASE()`, hashed
//!   when over the server's 64-character limit.
//! - Refused at connect: MariaDB < 10.6 and MySQL < 8.0 (no SKIP LOCKED), and Galera, which refuses
//!   GET_LOCK.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::mysql::{
    MySql, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool, MySqlPoolOptions,
};
use sqlx::{Connection, Executor, QueryBuilder, Row, Transaction};

use super::common::{
    all_applied, bind_host, fit_in_pool, json_list, last_per_upstream, metric_every_secs, micros,
    normalize_dir_prefix, placeholders, pool_waiting, INVARIANT_CHECKS, POOL_USED, ROWS_PER_INSERT,
    WORKER_HOST_COLUMNS, WORKER_HOST_SET, WORKER_METRIC_COLUMNS,
};
use super::session_lock::{SessionLock, SessionMaster};
use server::{check_server_version, insert_returns_rows, lock_name};
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
mod server;
// after the modules whose column macros it uses
mod deadlines;
mod tokens;
mod tx;

use tx::MysqlTx;

use super::*;
use crate::definition::{DbLink, FileLink};
use crate::state::{BackfillId, InstanceId, TaskId};

/// Server error number of a duplicate key.
const ER_DUP_ENTRY: u16 = 1062;

pub(crate) struct MysqlStore {
    pool: MySqlPool,
    /// Closes surplus idle connections while the store lives.
    _trim: tokio_util::sync::DropGuard,
    /// For the master lock's own connection, which must never come from (or return to) the pool.
    options: MySqlConnectOptions,
    lock_name: String,
    /// MariaDB: an INSERT can return the rows it wrote.
    insert_returns_rows: bool,
}

impl MysqlStore {
    pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Arc<dyn Store>> {
        Ok(Arc::new(Self::open(opts).await?))
    }

    async fn open(opts: &ConnectOptions) -> Result<MysqlStore> {
        let unreachable = |e: sqlx::Error| StoreError::on_connect(&opts.url, e);
        // sqlx knows `mysql://` only; `mariadb://` is our alias for the same protocol.
        let url = match opts.url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => opts.url.clone(),
        };
        let options = MySqlConnectOptions::from_str(&url)
            .map_err(unreachable)?
            .timezone(Some("+00:00".to_string()));
        let pool = budget::ping_when_idle(MySqlPoolOptions::new())
            .max_connections(opts.max_connections.max(1))
            .min_connections(0)
            .idle_timeout(opts.idle_timeout)
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET time_zone = '+00:00'").await?;
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    budget::connected();
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(unreachable)?;

        let (version, max_connections): (String, i64) =
            sqlx::query_as("SELECT VERSION(), CAST(@@max_connections AS SIGNED)")
                .fetch_one(&pool)
                .await?;
        budget::set_max_connections(max_connections);
        check_server_version(&version)?;
        // SHOW is not preparable everywhere: send it as plain text. MySQL has no such variable.
        let wsrep = sqlx::raw_sql("SHOW VARIABLES LIKE 'wsrep_on'")
            .fetch_all(&pool)
            .await?
            .first()
            .map(|row| row.try_get::<String, _>(1))
            .transpose()?;
        if wsrep.is_some_and(|v| v.eq_ignore_ascii_case("ON")) {
            return Err(StoreError::Unsupported(format!(
                "{version} is a Galera cluster node (wsrep_on = ON): Galera refuses GET_LOCK, which the \
                 master election needs; point akkaflow at a plain MySQL/MariaDB primary"
            )));
        }
        let database: Option<String> = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
            .fetch_one(&pool)
            .await?;
        let Some(database) = database else {
            return Err(StoreError::Unsupported(format!(
                "{} names no database: akkaflow needs one of its own, as in mysql://user:pass@host/akkaflow",
                redact_url(&opts.url)
            )));
        };
        Ok(MysqlStore {
            _trim: budget::trim_idle(pool.clone(), opts.idle_timeout),
            pool,
            options,
            lock_name: lock_name(&database),
            insert_returns_rows: insert_returns_rows(&version),
        })
    }

    /// A store on a fresh test database that reads inserted ids back as on MySQL 8, which has no
    /// `INSERT … RETURNING`, for the conformance cases of that path on MariaDB.
    #[cfg(test)]
    pub(crate) async fn open_reading_ids_back(name: &str) -> Option<Arc<dyn Store>> {
        let url = crate::testkit::fresh_database_url(Backend::Mysql, name).await?;
        let mut store = Self::open(&ConnectOptions::new(url)).await.unwrap();
        store.insert_returns_rows = false;
        store.migrate().await.unwrap();
        Some(Arc::new(store))
    }
}

/// Runs `op` again after a deadlock or lock wait timeout, by the store's one policy
/// ([`super::retry::STATEMENT`]). Only for operations that are one statement or open their own
/// transaction: the server rolled back the whole statement or transaction, so running it again is safe.
async fn retrying<T, F, Fut>(op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    super::retry::retrying(super::retry::STATEMENT, op).await
}

/// Whether `e` is a duplicate key on the named unique key.
fn is_duplicate_on(e: &sqlx::Error, key: &str) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.try_downcast_ref::<MySqlDatabaseError>()
        .is_some_and(|m| m.number() == ER_DUP_ENTRY && m.message().contains(key))
}

/// Appends `(?, ?, ...)` binding every item; callers make sure `items` is not empty.
fn push_list<'a, T>(qb: &mut QueryBuilder<'a, MySql>, items: impl IntoIterator<Item = T>)
where
    T: 'a + sqlx::Encode<'a, MySql> + sqlx::Type<MySql> + Send,
{
    qb.push("(");
    let mut sep = qb.separated(", ");
    for item in items {
        sep.push_bind(item);
    }
    sep.push_unseparated(")");
}

/// The claim: tasks waiting for a pool first, then the rest (here, not in `runs.rs` or
/// `pools.rs`, because it uses both and each of them uses `runs.rs`' `mark_running`).
async fn task_claim(pool: &MySqlPool, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
    if p.queues.is_empty() || p.limit <= 0 {
        return Ok(vec![]);
    }
    // pooled tasks first (only when pools exist): the unpooled claim below could otherwise fill
    // every free slot while tasks that wait for a pool slot starve
    let mut claimed = if p.pools.is_empty() {
        vec![]
    } else {
        pools::claim(pool, p).await?
    };
    let left = p.limit - claimed.len() as i64;
    if left > 0 {
        match retrying(|| runs::task_claim_tx(pool, p, left)).await {
            Ok(more) => claimed.extend(more),
            // the pooled claims are committed: the worker must run them
            Err(e) if !claimed.is_empty() => {
                tracing::warn!(error = %e, "claim outside pools failed after a pooled claim")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(claimed)
}

#[async_trait]
impl Store for MysqlStore {
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
        Backend::Mysql
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
        Ok(Box::new(MysqlTx {
            tx: self.pool.begin().await?,
            events: Vec::new(),
            attempts: Vec::new(),
            insert_returns_rows: self.insert_returns_rows,
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
            // utf8mb4_bin text arrives flagged binary: read it as bytes
            let mut q = sqlx::query_as::<_, (i64, Option<Vec<u8>>)>(sql);
            for _ in 0..placeholders(sql) {
                q = q.bind(stuck_before);
            }
            for (id, info) in q.fetch_all(&self.pool).await? {
                let info = info
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                found.push(Violation { what, id, info });
            }
        }
        Ok(found)
    }

    async fn lease_extend_many(&self, worker_id: &str, ttl: Duration) -> Result<u64> {
        runs::lease_extend_many(&self.pool, worker_id, ttl).await
    }

    async fn master_lock(&self, holder: &str) -> Result<Box<dyn MasterLock>> {
        let lock = fleet::MysqlLock {
            pool: self.pool.clone(),
            options: self.options.clone(),
            name: self.lock_name.clone(),
        };
        Ok(Box::new(SessionMaster::new(lock, holder)))
    }

    async fn metrics_read(&self) -> Result<super::metrics::MetricsSnapshot> {
        super::metrics::metrics_read!(&self.pool, |c| format!("CAST({c} AS CHAR)"))
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = sqlx::migrate!("sql/mysql");
        // a role running under a least-privilege user has no DDL rights: only migrate when needed
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        if !all_applied(&migrator, &applied) {
            migrator.run(&self.pool).await?;
        }
        Ok(())
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
        Ok(None) // no notifications: workers poll, and wake at once for work made in-process
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
        task_claim(&self.pool, p).await
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

/// The database's clock, read on `conn` (the pool's or a transaction's own connection).
pub(super) async fn clock(conn: &mut MySqlConnection) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar("SELECT NOW(6)").fetch_one(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock lives on a session of its own: when that session dies, the handle stops being master
    /// at once, and can win the lock again on a new connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_lock_connection_steps_down() {
        let Some(url) = crate::testkit::fresh_database_url(Backend::Mysql, "killed_lock").await
        else {
            return;
        };
        let store = MysqlStore::connect(&ConnectOptions::new(url.clone()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut lock = store.master_lock("a").await.unwrap();
        let first = lock.try_acquire().await.unwrap().expect("a free lock");

        let mut admin = MySqlConnection::connect(&url).await.unwrap();
        let db: String = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let session: i64 = sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
            .bind(lock_name(&db))
            .fetch_one(&mut admin)
            .await
            .unwrap();
        admin
            .execute(format!("KILL {session}").as_str())
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
