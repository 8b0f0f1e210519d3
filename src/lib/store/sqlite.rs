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
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::common::{
    all_applied, instance_status_list, json_list, normalize_dir_prefix, placeholders, status_list,
    task_id_list, INVARIANT_CHECKS, ROWS_PER_INSERT,
};
mod alerts;

use super::*;
use crate::definition::{DbLink, FileLink};
use crate::state::{InstanceId, TaskId};

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
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.clamp(1, 8))
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        Ok(SqliteStore { pool })
    }

    async fn tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// `workflow` lies in the dir prefix bound four times (NULL: everywhere); see [`dir_in_scope`].
const IN_DIR: &str = "(? IS NULL OR workflow IN (SELECT name FROM workflow WHERE dir = ? \
     OR substr(dir, 1, length(?) + 1) = ? || '/'))";
const TOKEN_COLUMNS: &str = "id, name, role, dir_prefix, created_by, created_at, revoked_at";

const TASK_COLUMNS: &str = "id, instance_id, node, kind, status, attempt, max_attempts, retry_interval_s, timeout_s, \
     queue, priority, run_at, worker_id, lease_until, kill_requested, exit_code, error, created_at, started_at, ended_at";
const INSTANCE_COLUMNS: &str =
    "id, workflow, workflow_version, status, params, trigger_kind, scheduled_for, \
     parent_instance_id, parent_task_id, error, created_by, created_at, started_at, ended_at";
const COORDINATOR_COLUMNS: &str =
    "workflow, cron, timezone, depends, params, enabled, start_time, end_time, next_fire_at, last_fire_at";
const WORKFLOW_COLUMNS: &str =
    "name, version, content_hash, source_xml, definition, file_path, dir, creator, \
     description, mail_level, mail_receivers, instance_limit, enabled, created_at, updated_at";

#[async_trait]
impl Store for SqliteStore {
    async fn alert_due(&self, limit: i64) -> Result<Vec<AlertRow>> {
        alerts::due(&self.pool, limit).await
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

    async fn begin(&self) -> Result<Box<dyn StoreTx>> {
        Ok(Box::new(SqliteTx {
            tx: self.tx().await?,
            events: Vec::new(),
            attempts: Vec::new(),
        }))
    }

    async fn coordinator_due(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        let sql = format!(
            "SELECT {cols} FROM coordinator c WHERE c.enabled = 1 AND c.cron IS NOT NULL \
             AND c.next_fire_at <= {NOW} \
             AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled = 1) \
             ORDER BY c.next_fire_at, c.workflow LIMIT ?",
            cols = prefixed("c", COORDINATOR_COLUMNS)
        );
        Ok(sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn coordinator_get(&self, workflow: &str) -> Result<Option<CoordinatorRow>> {
        let sql = format!("SELECT {COORDINATOR_COLUMNS} FROM coordinator WHERE workflow = ?");
        Ok(sqlx::query_as(&sql)
            .bind(workflow)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn coordinator_needs_next(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        let sql = format!(
            "SELECT {COORDINATOR_COLUMNS} FROM coordinator WHERE enabled = 1 AND cron IS NOT NULL \
             AND next_fire_at IS NULL ORDER BY workflow LIMIT ?"
        );
        Ok(sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn coordinator_set_next(
        &self,
        workflow: &str,
        next: Option<DateTime<Utc>>,
    ) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE coordinator SET next_fire_at = ? WHERE workflow = ? AND next_fire_at IS NULL",
        )
        .bind(ts_opt(next))
        .bind(workflow)
        .execute(&self.pool)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn coordinator_deps_ready(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        let sql = format!(
            "SELECT {cols} FROM coordinator c WHERE c.enabled = 1 AND c.cron IS NULL \
             AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled = 1) \
             AND EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow) \
             AND NOT EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow AND d.satisfied_at IS NULL) \
             ORDER BY c.workflow LIMIT ?",
            cols = prefixed("c", COORDINATOR_COLUMNS)
        );
        Ok(sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn coordinator_depend_list(&self, workflow: &str) -> Result<Vec<DependRow>> {
        Ok(sqlx::query_as(
            "SELECT workflow, upstream, satisfied_at, satisfied_instance_id FROM coordinator_depend \
             WHERE workflow = ? ORDER BY upstream",
        )
        .bind(workflow)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn coordinator_downstream(&self, upstream: &str) -> Result<Vec<String>> {
        alerts::downstream(&self.pool, upstream).await
    }

    async fn data_monitor_insert(&self, c: &NewDataMonitorCheck) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO data_monitor (checked_at, workflow, instance_id, task_id, node, category, source_name, \
             time_mark, value, min_value, max_value, passed, message) \
             VALUES ({NOW}, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn data_monitor_list(&self, instance: InstanceId) -> Result<Vec<DataMonitorRow>> {
        Ok(sqlx::query_as(
            "SELECT id, checked_at, workflow, instance_id, task_id, node, category, source_name, time_mark, \
             value, min_value, max_value, passed, message FROM data_monitor WHERE instance_id = ? ORDER BY id",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn db_link_get(&self, name: &str) -> Result<Option<DbLink>> {
        let row: Option<StoredDbLink> = sqlx::query_as(
            "SELECT name, kind, url, username, password, properties FROM db_link WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(DbLink::try_from).transpose()
    }

    async fn coordinator_list(&self) -> Result<Vec<CoordinatorRow>> {
        let sql = format!("SELECT {COORDINATOR_COLUMNS} FROM coordinator ORDER BY workflow");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    async fn db_link_list(&self) -> Result<Vec<DbLinkRow>> {
        Ok(sqlx::query_as(
            "SELECT name, kind, url, username, properties, updated_at FROM db_link ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn event_list(&self, f: &EventFilter) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, created_at, workflow, instance_id, task_id, node, kind, from_status, to_status, message, actor \
             FROM event WHERE (? IS NULL OR instance_id = ?) AND id > COALESCE(?, 0) ORDER BY id LIMIT ?",
        )
        .bind(f.instance_id)
        .bind(f.instance_id)
        .bind(f.after_id)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn file_link_get(&self, name: &str) -> Result<Option<FileLink>> {
        let row: Option<StoredFileLink> = sqlx::query_as(
            "SELECT name, kind, host, port, username, password, description FROM file_link WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(FileLink::try_from).transpose()
    }

    async fn file_link_list(&self) -> Result<Vec<FileLinkRow>> {
        Ok(sqlx::query_as(
            "SELECT name, kind, host, port, username, description, updated_at FROM file_link ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn instance_count_by_day(
        &self,
        since: DateTime<Utc>,
        dir_prefix: Option<&str>,
    ) -> Result<Vec<DayCount>> {
        let sql = format!(
            "SELECT substr(COALESCE(ended_at, created_at), 1, 10) AS day, status, COUNT(*) AS count \
             FROM workflow_instance WHERE COALESCE(ended_at, created_at) >= ? AND {IN_DIR} \
             GROUP BY substr(COALESCE(ended_at, created_at), 1, 10), status ORDER BY day, status"
        );
        let dir = normalize_dir_prefix(dir_prefix);
        Ok(sqlx::query_as(&sql)
            .bind(ts(since))
            .bind(&dir)
            .bind(&dir)
            .bind(&dir)
            .bind(&dir)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn instance_get(&self, id: InstanceId) -> Result<Option<InstanceRow>> {
        let sql = format!("SELECT {INSTANCE_COLUMNS} FROM workflow_instance WHERE id = ?");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn instance_latest_by_workflow(&self) -> Result<Vec<InstanceRow>> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM workflow_instance \
             WHERE id IN (SELECT MAX(id) FROM workflow_instance GROUP BY workflow) ORDER BY workflow"
        );
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    async fn instance_list(&self, f: &InstanceFilter) -> Result<Vec<InstanceRow>> {
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM workflow_instance WHERE (? IS NULL OR workflow = ?) \
             AND (? IS NULL OR status = ?) AND (? IS NULL OR created_at >= ?) AND (? IS NULL OR id < ?) \
             AND {IN_DIR} ORDER BY id DESC LIMIT ?"
        );
        let since = ts_opt(f.since);
        let dir = normalize_dir_prefix(f.dir_prefix.as_deref());
        Ok(sqlx::query_as(&sql)
            .bind(&f.workflow)
            .bind(&f.workflow)
            .bind(f.status)
            .bind(f.status)
            .bind(&since)
            .bind(&since)
            .bind(f.before_id)
            .bind(f.before_id)
            .bind(&dir)
            .bind(&dir)
            .bind(&dir)
            .bind(&dir)
            .bind(f.limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn instance_pending_workflows(&self, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT workflow FROM workflow_instance WHERE status = 'pending' ORDER BY workflow LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
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
        let r = sqlx::query(
            "UPDATE task SET lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?) \
             WHERE worker_id = ? AND status = 'running'",
        )
        .bind(plus(ttl))
        .bind(worker_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn master_lock(&self, holder: &str) -> Result<Box<dyn MasterLock>> {
        Ok(Box::new(SqliteLease {
            pool: self.pool.clone(),
            holder: holder.to_string(),
            // renewed every duty cycle (1 s): a dead master's lease is free again within 3 s
            ttl: Duration::from_secs(3),
        }))
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
            migrator.run(&self.pool).await?;
        }
        Ok(())
    }

    async fn ready_listener(&self) -> Result<Option<Box<dyn ReadyListener>>> {
        Ok(None) // no notifications: workers poll, and wake at once for work made in-process
    }

    async fn now(&self) -> Result<DateTime<Utc>> {
        Ok(sqlx::query_scalar(&format!("SELECT {NOW}"))
            .fetch_one(&self.pool)
            .await?)
    }

    async fn scheduler_heartbeat(&self, p: &SchedulerBeat) -> Result<()> {
        let sql = format!(
            "INSERT INTO scheduler (id, host, pid, state, epoch, master_since, started_at, heartbeat_at) \
             VALUES (?, ?, ?, ?, ?, CASE WHEN ? = 'master' THEN {NOW} END, {NOW}, {NOW}) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, epoch = excluded.epoch, \
             master_since = CASE WHEN excluded.state = 'master' THEN COALESCE(scheduler.master_since, {NOW}) END, \
             heartbeat_at = {NOW}"
        );
        sqlx::query(&sql)
            .bind(&p.id)
            .bind(&p.host)
            .bind(p.pid)
            .bind(p.state)
            .bind(p.epoch)
            .bind(p.state)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn scheduler_list(&self) -> Result<Vec<SchedulerRow>> {
        Ok(sqlx::query_as(
            "SELECT id, host, pid, state, epoch, master_since, started_at, heartbeat_at FROM scheduler \
             ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn session_create(&self, p: &NewSession) -> Result<()> {
        sqlx::query(&format!("DELETE FROM api_session WHERE expires_at < {NOW}"))
            .execute(&self.pool)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO api_session (id_hash, token_id, csrf, created_at, expires_at) \
             VALUES (?, ?, ?, {NOW}, strftime('%Y-%m-%d %H:%M:%f','now', ?))"
        ))
        .bind(&p.id_hash)
        .bind(p.token_id)
        .bind(&p.csrf)
        .bind(plus(p.ttl))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session_delete(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_session WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session_get(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        let sql = format!(
            "SELECT {cols}, s.csrf, s.expires_at FROM api_session s JOIN api_token t ON t.id = s.token_id \
             WHERE s.id_hash = ? AND s.expires_at > {NOW} AND t.revoked_at IS NULL",
            cols = prefixed("t", TOKEN_COLUMNS)
        );
        Ok(sqlx::query_as(&sql)
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn task_claim(&self, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
        if p.queues.is_empty() {
            return Ok(vec![]);
        }
        let mut tx = self.tx().await?;
        // one index range per queue, merged: `queue IN (...)` would sort every ready row of the
        // worker's queues on each claim, which grows with the backlog
        let per_queue = format!(
            "SELECT * FROM (SELECT id, priority, run_at FROM task WHERE status = 'ready' AND queue = ? \
             AND run_at <= {NOW} ORDER BY priority, run_at, id LIMIT ?)"
        );
        let claim = format!(
            "UPDATE task SET status = 'running', worker_id = ?, attempt = attempt + 1, started_at = {NOW}, \
             lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?), ended_at = NULL \
             WHERE id IN (SELECT id FROM ({}) ORDER BY priority, run_at, id LIMIT ?) \
             RETURNING id",
            vec![per_queue; p.queues.len()].join(" UNION ALL ")
        );
        let mut q = sqlx::query_scalar(&claim)
            .bind(&p.worker_id)
            .bind(plus(p.lease_ttl));
        for queue in &p.queues {
            q = q.bind(queue).bind(p.limit);
        }
        let ids: Vec<i64> = q.bind(p.limit).fetch_all(&mut *tx).await?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(vec![]);
        }
        let claimed = sqlx::query_as(
            "SELECT t.id, t.instance_id, t.node, t.kind, t.attempt, t.timeout_s, i.workflow, i.workflow_version, \
             i.params, i.scheduled_for, t.started_at FROM task t JOIN workflow_instance i ON i.id = t.instance_id \
             WHERE t.id IN (SELECT value FROM json_each(?)) ORDER BY t.priority, t.id",
        )
        .bind(json_list(&ids))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn task_get(&self, id: TaskId) -> Result<Option<TaskRow>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM task WHERE id = ?");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn task_kill_check(&self, worker_id: &str, ids: &[TaskId]) -> Result<Vec<TaskId>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_scalar(
            "SELECT id FROM task WHERE id IN (SELECT value FROM json_each(?)) \
             AND (status <> 'running' OR kill_requested = 1 OR worker_id IS NULL OR worker_id <> ?) ORDER BY id",
        )
        .bind(task_id_list(ids))
        .bind(worker_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn task_lease_expired(&self, limit: i64) -> Result<Vec<TaskRow>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM task WHERE status = 'running' AND lease_until < {NOW} ORDER BY id LIMIT ?"
        );
        Ok(sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn task_queue_depth(&self) -> Result<Vec<QueueDepth>> {
        let sql = format!(
            "SELECT queue, SUM(CASE WHEN status = 'ready' AND run_at <= {NOW} THEN 1 ELSE 0 END) AS ready, \
             SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running \
             FROM task WHERE status IN ('ready', 'running') GROUP BY queue ORDER BY queue"
        );
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    async fn task_list(&self, instance: InstanceId) -> Result<Vec<TaskRow>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM task WHERE instance_id = ? ORDER BY id");
        Ok(sqlx::query_as(&sql)
            .bind(instance)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn task_attempt_list(&self, instance: InstanceId) -> Result<Vec<AttemptRow>> {
        Ok(sqlx::query_as(
            "SELECT a.task_id, a.attempt, a.worker_id, a.outcome, a.exit_code, a.error, a.started_at, a.ended_at \
             FROM task_attempt a JOIN task t ON t.id = a.task_id WHERE t.instance_id = ? ORDER BY a.task_id, a.attempt",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn task_log_insert_many(&self, lines: &[LogLine]) -> Result<()> {
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            log_insert(chunk).build().execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn task_log_read(&self, q: &LogQuery) -> Result<Vec<LogLine>> {
        let (after_task, after_attempt, after_seq) =
            q.after.map(|(t, a, s)| (t.0, a, s)).unwrap_or((0, 0, -1));
        Ok(sqlx::query_as(
            "SELECT task_id, attempt, seq, logged_at, stream, line FROM task_log \
             WHERE task_id IN (SELECT value FROM json_each(?)) AND (task_id, attempt, seq) > (?, ?, ?) \
             ORDER BY task_id, attempt, seq LIMIT ?",
        )
        .bind(task_id_list(&q.task_ids))
        .bind(after_task)
        .bind(after_attempt)
        .bind(after_seq)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn token_get_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRow>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_token WHERE secret_hash = ? AND revoked_at IS NULL"
        );
        Ok(sqlx::query_as(&sql)
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn token_list(&self) -> Result<Vec<TokenRow>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_token ORDER BY name");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }

    async fn worker_deregister(&self, worker_id: &str) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE worker SET state = 'stopped', stopped_at = {NOW} WHERE id = ?"
        ))
        .bind(worker_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn worker_heartbeat(&self, worker_id: &str) -> Result<Cas> {
        let r = sqlx::query(&format!(
            "UPDATE worker SET heartbeat_at = {NOW} WHERE id = ? AND state <> 'stopped'"
        ))
        .bind(worker_id)
        .execute(&self.pool)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        Ok(sqlx::query_as(
            "SELECT w.id, w.name, w.host, w.pid, w.queues, w.slots, w.state, w.started_at, w.heartbeat_at, w.stopped_at, \
             (julianday('now') - julianday(w.heartbeat_at)) * 86400.0 AS heartbeat_age_s, \
             (SELECT COUNT(*) FROM task t WHERE t.worker_id = w.id AND t.status = 'running') AS running_tasks \
             FROM worker w ORDER BY w.started_at, w.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn worker_register(&self, p: &WorkerRegistration) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO worker (id, name, host, pid, queues, slots, state, started_at, heartbeat_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'running', {NOW}, {NOW})"
        ))
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.host)
        .bind(p.pid)
        .bind(&p.queues)
        .bind(p.slots)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn workflow_definition(&self, name: &str, version: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT definition FROM workflow_version WHERE workflow = ? AND version = ?",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn workflow_get(&self, name: &str) -> Result<Option<WorkflowRow>> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflow WHERE name = ?");
        Ok(sqlx::query_as(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn workflow_list(&self) -> Result<Vec<WorkflowRow>> {
        let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflow ORDER BY dir, name");
        Ok(sqlx::query_as(&sql).fetch_all(&self.pool).await?)
    }
}

/// `cols` with every column prefixed by `alias.`.
pub(crate) fn prefixed(alias: &str, cols: &str) -> String {
    cols.split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    /// Events written by this transaction, inserted together at commit (one statement, not one per change).
    events: Vec<NewEvent>,
    /// Attempt rows, likewise inserted together at commit (a duplicate fails the commit).
    attempts: Vec<AttemptRow>,
}

impl SqliteTx {
    /// Writes what this transaction buffered: its attempt rows, then its events.
    async fn flush_buffered(&mut self) -> Result<()> {
        let attempts = std::mem::take(&mut self.attempts);
        for attempts in attempts.chunks(ROWS_PER_INSERT) {
            let mut qb = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO task_attempt (task_id, attempt, worker_id, outcome, exit_code, error, started_at, ended_at) ",
            );
            qb.push_values(attempts, |mut b, a| {
                b.push_bind(a.task_id)
                    .push_bind(a.attempt)
                    .push_bind(&a.worker_id)
                    .push_bind(a.outcome)
                    .push_bind(a.exit_code)
                    .push_bind(&a.error)
                    .push_bind(ts_opt(a.started_at))
                    .push_bind(ts(a.ended_at));
            });
            qb.build().execute(&mut *self.tx).await?;
        }
        self.flush_events().await
    }

    async fn flush_events(&mut self) -> Result<()> {
        let events = std::mem::take(&mut self.events);
        for events in events.chunks(ROWS_PER_INSERT) {
            super::common::event_insert::<Sqlite>(events, NOW)
                .build()
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn alert_insert(&mut self, a: &NewAlert) -> Result<()> {
        alerts::insert(&mut self.tx, a).await
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush_buffered().await?;
        Ok(self.tx.commit().await?)
    }

    async fn coordinator_downstream(&mut self, upstream: &str) -> Result<Vec<String>> {
        alerts::downstream(&mut *self.tx, upstream).await
    }

    async fn coordinator_delete(&mut self, workflow: &str) -> Result<()> {
        sqlx::query("DELETE FROM coordinator_depend WHERE workflow = ?")
            .bind(workflow)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM coordinator WHERE workflow = ?")
            .bind(workflow)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn coordinator_depend_clear(&mut self, workflow: &str, expected: usize) -> Result<Cas> {
        // Count before clearing: a stale clear must write nothing (BEGIN IMMEDIATE holds the write lock).
        let satisfied: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM coordinator_depend WHERE workflow = ? AND satisfied_at IS NOT NULL",
        )
        .bind(workflow)
        .fetch_one(&mut *self.tx)
        .await?;
        if satisfied != expected as i64 {
            return Ok(Cas::Stale);
        }
        sqlx::query(
            "UPDATE coordinator_depend SET satisfied_at = NULL, satisfied_instance_id = NULL \
             WHERE workflow = ? AND satisfied_at IS NOT NULL",
        )
        .bind(workflow)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::Applied)
    }

    async fn coordinator_depend_set(&mut self, workflow: &str, upstreams: &[String]) -> Result<()> {
        sqlx::query(
            "DELETE FROM coordinator_depend WHERE workflow = ? AND upstream NOT IN (SELECT value FROM json_each(?))",
        )
        .bind(workflow)
        .bind(json_list(upstreams))
        .execute(&mut *self.tx)
        .await?;
        for upstream in upstreams {
            sqlx::query(
                "INSERT OR IGNORE INTO coordinator_depend (workflow, upstream) VALUES (?, ?)",
            )
            .bind(workflow)
            .bind(upstream)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    async fn coordinator_depend_satisfy(
        &mut self,
        upstream: &str,
        instance: InstanceId,
    ) -> Result<u64> {
        let r = sqlx::query(&format!(
            "UPDATE coordinator_depend SET satisfied_at = {NOW}, satisfied_instance_id = ? WHERE upstream = ?"
        ))
        .bind(instance)
        .bind(upstream)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected())
    }

    async fn coordinator_fire(
        &mut self,
        workflow: &str,
        expected: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
        fired: DateTime<Utc>,
    ) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE coordinator SET next_fire_at = ?, last_fire_at = ? WHERE workflow = ? AND next_fire_at = ?",
        )
        .bind(ts_opt(next))
        .bind(ts(fired))
        .bind(workflow)
        .bind(ts(expected))
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn coordinator_list_all(&mut self) -> Result<Vec<CoordinatorRow>> {
        let sql = format!("SELECT {COORDINATOR_COLUMNS} FROM coordinator ORDER BY workflow");
        Ok(sqlx::query_as(&sql).fetch_all(&mut *self.tx).await?)
    }

    async fn coordinator_upsert(&mut self, c: &CoordinatorRow) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO coordinator ({COORDINATOR_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NOW}) \
             ON CONFLICT (workflow) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, \
             depends = excluded.depends, params = excluded.params, enabled = excluded.enabled, \
             start_time = excluded.start_time, end_time = excluded.end_time, next_fire_at = excluded.next_fire_at, \
             last_fire_at = excluded.last_fire_at, updated_at = excluded.updated_at"
        ))
        .bind(&c.workflow)
        .bind(&c.cron)
        .bind(&c.timezone)
        .bind(&c.depends)
        .bind(&c.params)
        .bind(c.enabled)
        .bind(ts_opt(c.start_time))
        .bind(ts_opt(c.end_time))
        .bind(ts_opt(c.next_fire_at))
        .bind(ts_opt(c.last_fire_at))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn db_link_delete(&mut self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM db_link WHERE name = ?")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn db_link_names(&mut self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT name FROM db_link ORDER BY name")
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn db_link_upsert(&mut self, l: &DbLink) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO db_link (name, kind, url, username, password, properties, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, {NOW}) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             url = excluded.url, username = excluded.username, password = excluded.password, \
             properties = excluded.properties, updated_at = excluded.updated_at \
             WHERE db_link.kind <> excluded.kind OR db_link.url <> excluded.url OR db_link.username <> excluded.username \
             OR db_link.password <> excluded.password OR db_link.properties <> excluded.properties"
        ))
        .bind(&l.name)
        .bind(l.kind.as_str())
        .bind(&l.url)
        .bind(&l.username)
        .bind(&l.password)
        .bind(json_list(&l.properties))
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn event_insert_many(&mut self, events: &[NewEvent]) -> Result<()> {
        self.events.extend_from_slice(events);
        Ok(())
    }

    async fn file_link_delete(&mut self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM file_link WHERE name = ?")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn file_link_names(&mut self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT name FROM file_link ORDER BY name")
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn file_link_upsert(&mut self, l: &FileLink) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO file_link (name, kind, host, port, username, password, description, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, {NOW}) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             host = excluded.host, port = excluded.port, username = excluded.username, \
             password = excluded.password, description = excluded.description, updated_at = excluded.updated_at \
             WHERE file_link.kind <> excluded.kind OR file_link.host <> excluded.host OR file_link.port <> excluded.port \
             OR file_link.username <> excluded.username OR file_link.password <> excluded.password \
             OR file_link.description <> excluded.description"
        ))
        .bind(&l.name)
        .bind(l.kind.as_str())
        .bind(&l.host)
        .bind(i64::from(l.port))
        .bind(&l.username)
        .bind(&l.password)
        .bind(&l.description)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn instance_children_active(&mut self, parent: InstanceId) -> Result<Vec<InstanceId>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM workflow_instance WHERE parent_instance_id = ? AND status IN ('pending', 'running') ORDER BY id",
        )
        .bind(parent)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn instance_count_running(&mut self, workflow: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM workflow_instance WHERE workflow = ? AND status = 'running'",
        )
        .bind(workflow)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn instance_insert(&mut self, p: &NewInstance) -> Result<Option<InstanceId>> {
        let id: Option<i64> = sqlx::query_scalar(&format!(
            "INSERT INTO workflow_instance (workflow, workflow_version, status, params, trigger_kind, scheduled_for, \
             parent_instance_id, parent_task_id, created_by, created_at) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, {NOW}) \
             ON CONFLICT (workflow, trigger_kind, scheduled_for) DO NOTHING RETURNING id"
        ))
        .bind(&p.workflow)
        .bind(p.workflow_version)
        .bind(&p.params)
        .bind(p.trigger_kind)
        .bind(ts(p.scheduled_for))
        .bind(p.parent_instance_id)
        .bind(p.parent_task_id)
        .bind(&p.created_by)
        .fetch_optional(&mut *self.tx)
        .await?;
        Ok(id.map(InstanceId))
    }

    async fn instance_lock(
        &mut self,
        id: InstanceId,
    ) -> Result<Option<(InstanceRow, DateTime<Utc>)>> {
        // BEGIN IMMEDIATE already holds the database's write lock: no wait after this read.
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS}, {NOW} AS db_now FROM workflow_instance WHERE id = ?"
        );
        let row: Option<LockedInstance> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(row.map(|l| (l.row, l.db_now)))
    }

    async fn instance_pending_oldest(
        &mut self,
        workflow: &str,
        limit: i64,
    ) -> Result<Vec<InstanceId>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM workflow_instance WHERE workflow = ? AND status = 'pending' ORDER BY id LIMIT ?",
        )
        .bind(workflow)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn instance_transition(&mut self, p: &InstanceTransition) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE workflow_instance SET status = ?, started_at = COALESCE(?, started_at), ended_at = ?, error = ? \
             WHERE id = ? AND status IN (SELECT value FROM json_each(?))",
        )
        .bind(p.to)
        .bind(ts_opt(p.started_at))
        .bind(ts_opt(p.ended_at))
        .bind(&p.error)
        .bind(p.id)
        .bind(instance_status_list(&p.from))
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn notify_ready(&mut self) -> Result<()> {
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }

    async fn task_attempt_insert(&mut self, a: &AttemptRow) -> Result<()> {
        self.attempts.push(a.clone());
        Ok(())
    }

    async fn task_insert_many(&mut self, tasks: &[NewTask]) -> Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut qb = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO task (instance_id, node, kind, status, max_attempts, retry_interval_s, timeout_s, queue, \
             priority, created_at) ",
        );
        qb.push_values(tasks, |mut b, t| {
            b.push_bind(t.instance_id)
                .push_bind(&t.node)
                .push_bind(&t.kind)
                .push_bind("waiting");
            b.push_bind(t.max_attempts)
                .push_bind(t.retry_interval_s)
                .push_bind(t.timeout_s);
            b.push_bind(&t.queue).push_bind(t.priority).push(NOW);
        });
        qb.build().execute(&mut *self.tx).await?;
        Ok(())
    }

    async fn task_log_tail(&mut self, id: TaskId, limit: i64) -> Result<Vec<String>> {
        alerts::log_tail(&mut self.tx, id, limit).await
    }

    async fn task_log_insert_many(&mut self, lines: &[LogLine]) -> Result<()> {
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            log_insert(chunk).build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn task_list(&mut self, instance: InstanceId) -> Result<Vec<TaskRow>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM task WHERE instance_id = ? ORDER BY id");
        Ok(sqlx::query_as(&sql)
            .bind(instance)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn task_request_kill(&mut self, id: TaskId) -> Result<Cas> {
        let r =
            sqlx::query("UPDATE task SET kill_requested = 1 WHERE id = ? AND status = 'running'")
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn task_transition_many(&mut self, ids: &[TaskId], p: &TaskTransition) -> Result<u64> {
        let (fence_worker, fence_attempt) = match &p.fence {
            Some(f) => (Some(f.worker_id.as_str()), Some(f.attempt)),
            None => (None, None),
        };
        let r = sqlx::query(
            "UPDATE task SET status = ?, run_at = ?, exit_code = ?, error = ?, kill_requested = ?, \
             max_attempts = COALESCE(?, max_attempts), ended_at = ?, \
             worker_id = NULL, lease_until = NULL \
             WHERE id IN (SELECT value FROM json_each(?)) AND status IN (SELECT value FROM json_each(?)) \
             AND (? IS NULL OR worker_id = ?) AND (? IS NULL OR attempt = ?)",
        )
        .bind(p.to)
        .bind(ts_opt(p.run_at))
        .bind(p.exit_code)
        .bind(&p.error)
        .bind(p.kill_requested)
        .bind(p.max_attempts)
        .bind(ts_opt(p.ended_at))
        .bind(task_id_list(ids))
        .bind(status_list(&p.from))
        .bind(fence_worker)
        .bind(fence_worker)
        .bind(fence_attempt)
        .bind(fence_attempt)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected())
    }

    async fn token_create(&mut self, p: &NewToken) -> Result<Option<TokenRow>> {
        let sql = format!(
            "INSERT INTO api_token (name, role, dir_prefix, secret_hash, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?, {NOW}) ON CONFLICT (name) DO NOTHING RETURNING {TOKEN_COLUMNS}"
        );
        Ok(sqlx::query_as(&sql)
            .bind(&p.name)
            .bind(p.role)
            .bind(&p.dir_prefix)
            .bind(&p.secret_hash)
            .bind(&p.created_by)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn token_revoke(&mut self, name: &str) -> Result<Cas> {
        let r = sqlx::query(&format!(
            "UPDATE api_token SET revoked_at = {NOW} WHERE name = ? AND revoked_at IS NULL"
        ))
        .bind(name)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "DELETE FROM api_session WHERE token_id IN (SELECT id FROM api_token WHERE name = ?)",
        )
        .bind(name)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn workflow_heads(&mut self) -> Result<Vec<WorkflowHead>> {
        Ok(sqlx::query_as(
            "SELECT name, version, content_hash, enabled, instance_limit, file_path FROM workflow ORDER BY name",
        )
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn workflow_lock(&mut self, name: &str) -> Result<Option<WorkflowHead>> {
        Ok(sqlx::query_as(
            "SELECT name, version, content_hash, enabled, instance_limit, file_path FROM workflow WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn workflow_receivers(&mut self, names: &[String]) -> Result<Vec<String>> {
        alerts::receivers(&mut self.tx, names).await
    }

    async fn workflow_set_enabled(&mut self, name: &str, enabled: bool) -> Result<Cas> {
        let r = sqlx::query(&format!(
            "UPDATE workflow SET enabled = ?, updated_at = {NOW} WHERE name = ? AND enabled <> ?"
        ))
        .bind(enabled)
        .bind(name)
        .bind(enabled)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn workflow_upsert(&mut self, w: &WorkflowUpsert) -> Result<()> {
        sqlx::query(&format!(
            "INSERT OR IGNORE INTO workflow_version (workflow, version, content_hash, source_xml, definition, created_at) \
             VALUES (?, ?, ?, ?, ?, {NOW})"
        ))
        .bind(&w.name)
        .bind(w.version)
        .bind(&w.content_hash)
        .bind(&w.source_xml)
        .bind(&w.definition)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO workflow ({WORKFLOW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NOW}, {NOW}) \
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, content_hash = excluded.content_hash, \
             source_xml = excluded.source_xml, definition = excluded.definition, file_path = excluded.file_path, \
             dir = excluded.dir, creator = excluded.creator, description = excluded.description, \
             mail_level = excluded.mail_level, mail_receivers = excluded.mail_receivers, \
             instance_limit = excluded.instance_limit, enabled = excluded.enabled, updated_at = excluded.updated_at"
        ))
        .bind(&w.name)
        .bind(w.version)
        .bind(&w.content_hash)
        .bind(&w.source_xml)
        .bind(&w.definition)
        .bind(&w.file_path)
        .bind(&w.dir)
        .bind(&w.creator)
        .bind(&w.description)
        .bind(&w.mail_level)
        .bind(&w.mail_receivers)
        .bind(w.instance_limit)
        .bind(w.enabled)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

/// The master lock on SQLite: a lease row renewed on every duty cycle.
struct SqliteLease {
    pool: SqlitePool,
    holder: String,
    ttl: Duration,
}

#[async_trait]
impl MasterLock for SqliteLease {
    async fn try_acquire(&mut self) -> Result<Option<i64>> {
        let epoch: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE master_lease SET holder = ?, epoch = epoch + 1, lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?) \
             WHERE name = 'master' AND (holder IS NULL OR holder = ? OR lease_until < {NOW}) RETURNING epoch"
        ))
        .bind(&self.holder)
        .bind(plus(self.ttl))
        .bind(&self.holder)
        .fetch_optional(&self.pool)
        .await?;
        Ok(epoch)
    }

    async fn still_held(&mut self) -> Result<bool> {
        let r = sqlx::query(&format!(
            "UPDATE master_lease SET lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?) \
             WHERE name = 'master' AND holder = ? AND lease_until >= {NOW}"
        ))
        .bind(plus(self.ttl))
        .bind(&self.holder)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release(&mut self) -> Result<()> {
        sqlx::query("UPDATE master_lease SET holder = NULL, lease_until = NULL WHERE name = 'master' AND holder = ?")
            .bind(&self.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Lines are stored with SQLite's text timestamps, so not through the shared builder.
fn log_insert(lines: &[LogLine]) -> sqlx::QueryBuilder<'_, Sqlite> {
    let mut qb = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT OR IGNORE INTO task_log (task_id, attempt, seq, logged_at, stream, line) ",
    );
    qb.push_values(lines, |mut b, l| {
        b.push_bind(l.task_id)
            .push_bind(l.attempt)
            .push_bind(l.seq)
            .push_bind(ts(l.logged_at));
        b.push_bind(l.stream).push_bind(&l.line);
    });
    qb
}
