//! SQLite store: the embedded, zero-setup backend (`standalone`).
//!
//! Times are text `YYYY-MM-DD HH:MM:SS.SSS` in UTC, written with [`ts`] and compared with
//! [`NOW`], so string order is time order. Write transactions open with `BEGIN IMMEDIATE`: a deferred
//! transaction that reads before it writes fails with SQLITE_BUSY when another process committed in
//! between, and busy_timeout cannot help it. Sets are bound as one JSON array read with `json_each`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::common::{
    all_applied, bind_host, fit_in_pool, instance_status_list, json_list, last_per_upstream,
    metric_every_secs, normalize_dir_prefix, placeholders, pool_waiting, status_list,
    INVARIANT_CHECKS, POOL_USED, ROWS_PER_INSERT, WORKER_HOST_COLUMNS, WORKER_HOST_SET,
    WORKER_METRIC_COLUMNS,
};
mod alerts;
mod backfills;
mod calendars;
mod deadlines;
mod definitions;
mod fleet;
mod pools;
mod records;
mod retention;
mod runs;
mod tokens;
mod tx;

use tx::SqliteTx;

use super::*;
use crate::definition::{DbLink, FileLink};
use crate::state::{BackfillId, InstanceId, TaskId};

/// The database clock, in the stored text format.
const NOW: &str = "strftime('%Y-%m-%d %H:%M:%f','now')";

/// A time as stored.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

fn ts_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

/// A `strftime` modifier adding `d` to now.
fn plus(d: Duration) -> String {
    format!("+{:.3} seconds", d.as_secs_f64())
}

pub(crate) struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Self> {
        let unreachable = |e: sqlx::Error| StoreError::Unreachable {
            url: redact_url(&opts.url),
            reason: e.to_string(),
        };
        let options = SqliteConnectOptions::from_str(&opts.url)
            .map_err(unreachable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        // No server limits a file's connections, so the role's budget is only a ceiling here; the
        // floor of 4 keeps a write transaction that reads through the pool (a definition not
        // cached yet) from waiting on a pool whose other connection waits for that transaction's
        // write lock: a 30 s stall seen with the master's pruner and a rescue on a pool of 2.
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.clamp(4, 8))
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        Ok(SqliteStore { pool })
    }
}

/// A write transaction (see the module doc).
async fn begin_immediate(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

#[async_trait]
impl Store for SqliteStore {
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
        Backend::Sqlite
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
        Ok(Box::new(SqliteTx {
            tx: begin_immediate(&self.pool).await?,
            events: Vec::new(),
            attempts: Vec::new(),
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
            let mut q = sqlx::query_as::<_, (i64, Option<String>)>(sql);
            for _ in 0..placeholders(sql) {
                q = q.bind(ts(stuck_before));
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
        Ok(Box::new(fleet::SqliteLease {
            pool: self.pool.clone(),
            holder: holder.to_string(),
            // renewed every second (`renew_every`): a dead master's lease is free again within 3 s
            ttl: Duration::from_secs(3),
        }))
    }

    async fn metrics_read(&self) -> Result<super::metrics::MetricsSnapshot> {
        super::metrics::metrics_read!(&self.pool, super::metrics::plain_text)
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = sqlx::migrate!("sql/sqlite");
        // a role running under a least-privilege user has no DDL rights: only migrate when needed
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        if !all_applied(&migrator, &applied) {
            // a migration that rebuilds a table (0012: a CHECK and a UNIQUE cannot change in place)
            // must not see its rows' foreign keys while the old table is renamed away; the pragma
            // is a no-op inside the migration's own transaction, so it is set on the connection
            let mut conn = self.pool.acquire().await?;
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut *conn)
                .await?;
            let ran = migrator.run_direct(&mut *conn).await;
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await?;
            ran?;
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

/// `cols` with every column prefixed by `alias.`.
pub(crate) fn prefixed(alias: &str, cols: &str) -> String {
    cols.split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The database's clock, read on `conn` (the pool's or a transaction's own connection).
pub(super) async fn clock(conn: &mut SqliteConnection) -> Result<DateTime<Utc>> {
    Ok(sqlx::query_scalar(&format!("SELECT {NOW}"))
        .fetch_one(conn)
        .await?)
}
