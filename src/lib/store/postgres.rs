//! PostgreSQL 13+ store, ported from `sqlite.rs` with the same semantics.
//!
//! - `now()` is the database clock: the start of the current transaction, which for a statement
//!   outside one is the statement itself. Where a transaction may have waited for a lock before it
//!   reads the time (`instance_lock`), `clock_timestamp()` gives the real time.
//! - Sets are bound as one array value (`= ANY($1)`), so statement text never changes with their size.
//! - Text that is sorted for display sorts `COLLATE "C"` (byte order), as SQLite and MySQL's
//!   `utf8mb4_bin` do, whatever the database's default collation.
//! - The claim is one statement (`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`), so it
//!   needs no transaction of its own.
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
    all_applied, json_list, micros, normalize_dir_prefix, numbered, placeholders, INVARIANT_CHECKS,
    ROWS_PER_INSERT,
};
use super::session_lock::{SessionLock, SessionMaster};
mod alerts;

use super::*;
use crate::definition::{DbLink, FileLink};
use crate::state::{InstanceId, TaskId};

/// The advisory lock key of the master election.
const MASTER_KEY: &str = "hashtext('akkaflow.master')";

macro_rules! task_cols {
    () => {
        "id, instance_id, node, kind, status, attempt, max_attempts, retry_interval_s, timeout_s, queue, priority, \
         run_at, worker_id, lease_until, kill_requested, exit_code, error, created_at, started_at, ended_at"
    };
}
macro_rules! instance_cols {
    () => {
        "id, workflow, workflow_version, status, params, trigger_kind, scheduled_for, parent_instance_id, parent_task_id, error, \
         created_by, created_at, started_at, ended_at"
    };
}
macro_rules! coordinator_cols {
    () => {
        "c.workflow, c.cron, c.timezone, c.depends, c.params, c.enabled, c.start_time, c.end_time, c.next_fire_at, \
         c.last_fire_at"
    };
}
macro_rules! workflow_cols {
    () => {
        "name, version, content_hash, source_xml, definition, file_path, dir, creator, description, mail_level, \
         mail_receivers, instance_limit, enabled, created_at, updated_at"
    };
}
macro_rules! head_cols {
    () => {
        "name, version, content_hash, enabled, instance_limit, file_path"
    };
}

const COORDINATOR_DUE: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled AND c.cron IS NOT NULL AND c.next_fire_at <= now() \
     AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled) \
     ORDER BY c.next_fire_at, c.workflow COLLATE \"C\" LIMIT $1"
);
const COORDINATOR_GET: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.workflow = $1"
);
const COORDINATOR_NEEDS_NEXT: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled AND c.cron IS NOT NULL AND c.next_fire_at IS NULL \
     ORDER BY c.workflow COLLATE \"C\" LIMIT $1"
);
const COORDINATOR_DEPS_READY: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled AND c.cron IS NULL \
     AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled) \
     AND EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow) \
     AND NOT EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow AND d.satisfied_at IS NULL) \
     ORDER BY c.workflow COLLATE \"C\" LIMIT $1"
);
/// `workflow` lies in the dir prefix bound as `$n` (NULL: everywhere); see [`dir_in_scope`].
macro_rules! in_dir {
    ($n:literal) => {
        concat!(
            "(",
            $n,
            "::text IS NULL OR workflow IN (SELECT name FROM workflow WHERE dir = ",
            $n,
            " OR left(dir, length(",
            $n,
            ") + 1) = ",
            $n,
            " || '/'))"
        )
    };
}
macro_rules! token_cols {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "name, ",
            $p,
            "role, ",
            $p,
            "dir_prefix, ",
            $p,
            "created_by, ",
            $p,
            "created_at, ",
            $p,
            "revoked_at"
        )
    };
}

const COORDINATOR_LIST_ALL: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c ORDER BY c.workflow COLLATE \"C\""
);
const INSTANCE_GET: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance WHERE id = $1"
);
const INSTANCE_LIST: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance WHERE ($1::text IS NULL OR workflow = $1) AND ($2::text IS NULL OR status = $2) \
     AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::bigint IS NULL OR id < $4) AND ",
    in_dir!("$6"),
    " ORDER BY id DESC LIMIT $5"
);
const INSTANCE_COUNT_BY_DAY: &str = concat!(
    "SELECT to_char(COALESCE(ended_at, created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, status, \
     COUNT(*) AS count FROM workflow_instance WHERE COALESCE(ended_at, created_at) >= $1 AND ",
    in_dir!("$2"),
    " GROUP BY 1, 2 ORDER BY 1, 2"
);
const INSTANCE_LATEST_BY_WORKFLOW: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance WHERE id IN (SELECT MAX(id) FROM workflow_instance GROUP BY workflow) \
     ORDER BY workflow COLLATE \"C\""
);
const SESSION_GET: &str = concat!(
    "SELECT ",
    token_cols!("t."),
    ", s.csrf, s.expires_at FROM api_session s JOIN api_token t ON t.id = s.token_id \
     WHERE s.id_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL"
);
const TOKEN_GET_BY_HASH: &str = concat!(
    "SELECT ",
    token_cols!(""),
    " FROM api_token WHERE secret_hash = $1 AND revoked_at IS NULL"
);
const TOKEN_LIST: &str = concat!(
    "SELECT ",
    token_cols!(""),
    " FROM api_token ORDER BY name COLLATE \"C\""
);
/// The instance row locked, with the clock read by the outer query: after the locked row was returned (now() is
/// when the transaction began, and a projection inside the locking scan may run before the wait).
const INSTANCE_LOCK: &str = concat!(
    "WITH l AS (SELECT ",
    instance_cols!(),
    " FROM workflow_instance WHERE id = $1 FOR UPDATE) SELECT l.*, clock_timestamp() AS db_now FROM l"
);
// The picked ids are MATERIALIZED: as a plain `id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` the
// planner may rescan the subquery and claim more than `n` rows.
/// One index range per queue (LATERAL), merged and cut to the limit: with `queue = ANY(...)` the
/// index cannot give the ORDER BY and every ready row of those queues would be sorted per claim.
const TASK_CLAIM: &str = "WITH picked AS MATERIALIZED ( \
     SELECT c.id FROM unnest($3::text[]) AS q(queue) CROSS JOIN LATERAL ( \
     SELECT id, priority, run_at FROM task WHERE status = 'ready' AND queue = q.queue AND run_at <= now() \
     ORDER BY priority, run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) c \
     ORDER BY c.priority, c.run_at, c.id LIMIT $4), \
     claimed AS ( \
     UPDATE task t SET status = 'running', worker_id = $1, attempt = t.attempt + 1, started_at = now(), \
     lease_until = now() + $2 * interval '1 microsecond', ended_at = NULL \
     FROM picked p WHERE t.id = p.id AND t.status = 'ready' \
     RETURNING t.id, t.instance_id, t.node, t.kind, t.attempt, t.timeout_s, t.priority, t.started_at) \
     SELECT c.id, c.instance_id, c.node, c.kind, c.attempt, c.timeout_s, i.workflow, i.workflow_version, \
     i.params, i.scheduled_for, c.started_at FROM claimed c JOIN workflow_instance i ON i.id = c.instance_id \
     ORDER BY c.priority, c.id";
const TASK_GET: &str = concat!("SELECT ", task_cols!(), " FROM task WHERE id = $1");
const TASK_LEASE_EXPIRED: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task WHERE status = 'running' AND lease_until < now() ORDER BY id LIMIT $1"
);
const TASK_LIST: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task WHERE instance_id = $1 ORDER BY id"
);
const WORKFLOW_GET: &str = concat!(
    "SELECT ",
    workflow_cols!(),
    " FROM workflow WHERE name = $1"
);
const WORKFLOW_LIST: &str = concat!(
    "SELECT ",
    workflow_cols!(),
    " FROM workflow ORDER BY dir COLLATE \"C\", name COLLATE \"C\""
);
const WORKFLOW_HEADS: &str = concat!(
    "SELECT ",
    head_cols!(),
    " FROM workflow ORDER BY name COLLATE \"C\""
);
const WORKFLOW_LOCK: &str = concat!(
    "SELECT ",
    head_cols!(),
    " FROM workflow WHERE name = $1 FOR UPDATE"
);

pub(crate) struct PostgresStore {
    pool: PgPool,
    /// For the master lock's own connection, which must never come from (or return to) the pool.
    options: PgConnectOptions,
}

impl PostgresStore {
    pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Arc<dyn Store>> {
        let unreachable = |e: sqlx::Error| StoreError::Unreachable {
            url: redact_url(&opts.url),
            reason: e.to_string(),
        };
        let options = PgConnectOptions::from_str(&opts.url).map_err(unreachable)?;
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(unreachable)?;
        Ok(Arc::new(PostgresStore { pool, options }))
    }
}

#[async_trait]
impl Store for PostgresStore {
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
        Backend::Postgres
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>> {
        Ok(Box::new(PostgresTx {
            tx: self.pool.begin().await?,
            events: Vec::new(),
            attempts: Vec::new(),
        }))
    }

    async fn coordinator_due(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        Ok(sqlx::query_as(COORDINATOR_DUE)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn coordinator_get(&self, workflow: &str) -> Result<Option<CoordinatorRow>> {
        Ok(sqlx::query_as(COORDINATOR_GET)
            .bind(workflow)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn coordinator_needs_next(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        Ok(sqlx::query_as(COORDINATOR_NEEDS_NEXT)
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
            "UPDATE coordinator SET next_fire_at = $1 WHERE workflow = $2 AND next_fire_at IS NULL",
        )
        .bind(next)
        .bind(workflow)
        .execute(&self.pool)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn coordinator_deps_ready(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        Ok(sqlx::query_as(COORDINATOR_DEPS_READY)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn coordinator_depend_list(&self, workflow: &str) -> Result<Vec<DependRow>> {
        Ok(sqlx::query_as(
            "SELECT workflow, upstream, satisfied_at, satisfied_instance_id FROM coordinator_depend \
             WHERE workflow = $1 ORDER BY upstream COLLATE \"C\"",
        )
        .bind(workflow)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn coordinator_downstream(&self, upstream: &str) -> Result<Vec<String>> {
        alerts::downstream(&self.pool, upstream).await
    }

    async fn data_monitor_insert(&self, c: &NewDataMonitorCheck) -> Result<()> {
        sqlx::query(
            "INSERT INTO data_monitor (checked_at, workflow, instance_id, task_id, node, category, source_name, \
             time_mark, value, min_value, max_value, passed, message) \
             VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
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
             value, min_value, max_value, passed, message FROM data_monitor WHERE instance_id = $1 ORDER BY id",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn db_link_get(&self, name: &str) -> Result<Option<DbLink>> {
        let row: Option<StoredDbLink> = sqlx::query_as(
            "SELECT name, kind, url, username, password, properties FROM db_link WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(DbLink::try_from).transpose()
    }

    async fn coordinator_list(&self) -> Result<Vec<CoordinatorRow>> {
        Ok(sqlx::query_as(COORDINATOR_LIST_ALL)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn db_link_list(&self) -> Result<Vec<DbLinkRow>> {
        Ok(sqlx::query_as(
            "SELECT name, kind, url, username, properties, updated_at FROM db_link ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn event_list(&self, f: &EventFilter) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT id, created_at, workflow, instance_id, task_id, node, kind, from_status, to_status, message, actor \
             FROM event WHERE ($1::bigint IS NULL OR instance_id = $1) AND id > COALESCE($2, 0) ORDER BY id LIMIT $3",
        )
        .bind(f.instance_id)
        .bind(f.after_id)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn file_link_get(&self, name: &str) -> Result<Option<FileLink>> {
        let row: Option<StoredFileLink> = sqlx::query_as(
            "SELECT name, kind, host, port, username, password, description FROM file_link WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(FileLink::try_from).transpose()
    }

    async fn file_link_list(&self) -> Result<Vec<FileLinkRow>> {
        Ok(sqlx::query_as(
            "SELECT name, kind, host, port, username, description, updated_at FROM file_link \
             ORDER BY name COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn instance_count_by_day(
        &self,
        since: DateTime<Utc>,
        dir_prefix: Option<&str>,
    ) -> Result<Vec<DayCount>> {
        Ok(sqlx::query_as(INSTANCE_COUNT_BY_DAY)
            .bind(since)
            .bind(normalize_dir_prefix(dir_prefix))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn instance_get(&self, id: InstanceId) -> Result<Option<InstanceRow>> {
        Ok(sqlx::query_as(INSTANCE_GET)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn instance_latest_by_workflow(&self) -> Result<Vec<InstanceRow>> {
        Ok(sqlx::query_as(INSTANCE_LATEST_BY_WORKFLOW)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn instance_list(&self, f: &InstanceFilter) -> Result<Vec<InstanceRow>> {
        Ok(sqlx::query_as(INSTANCE_LIST)
            .bind(&f.workflow)
            .bind(f.status)
            .bind(f.since)
            .bind(f.before_id)
            .bind(f.limit)
            .bind(normalize_dir_prefix(f.dir_prefix.as_deref()))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn instance_pending_workflows(&self, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT workflow FROM workflow_instance WHERE status = 'pending' GROUP BY workflow \
             ORDER BY workflow COLLATE \"C\" LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
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
        let r = sqlx::query(
            "UPDATE task SET lease_until = now() + $1 * interval '1 microsecond' \
             WHERE worker_id = $2 AND status = 'running'",
        )
        .bind(micros(ttl))
        .bind(worker_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn master_lock(&self, holder: &str) -> Result<Box<dyn MasterLock>> {
        let lock = PostgresLock {
            pool: self.pool.clone(),
            options: self.options.clone(),
        };
        Ok(Box::new(SessionMaster::new(lock, holder)))
    }

    async fn migrate(&self) -> Result<()> {
        let migrator = sqlx::migrate!("sql/postgres");
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
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(READY_CHANNEL).await?;
        Ok(Some(Box::new(PgReady { listener })))
    }

    async fn now(&self) -> Result<DateTime<Utc>> {
        Ok(sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn scheduler_heartbeat(&self, p: &SchedulerBeat) -> Result<()> {
        sqlx::query(
            "INSERT INTO scheduler (id, host, pid, state, epoch, master_since, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'master' THEN now() END, now(), now()) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, epoch = excluded.epoch, \
             master_since = CASE WHEN excluded.state = 'master' THEN COALESCE(scheduler.master_since, now()) END, \
             heartbeat_at = now()",
        )
        .bind(&p.id)
        .bind(&p.host)
        .bind(p.pid)
        .bind(p.state)
        .bind(p.epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn scheduler_list(&self) -> Result<Vec<SchedulerRow>> {
        Ok(sqlx::query_as(
            "SELECT id, host, pid, state, epoch, master_since, started_at, heartbeat_at FROM scheduler \
             ORDER BY started_at, id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn session_create(&self, p: &NewSession) -> Result<()> {
        sqlx::query("DELETE FROM api_session WHERE expires_at < now()")
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO api_session (id_hash, token_id, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, now(), now() + $4 * interval '1 microsecond')",
        )
        .bind(&p.id_hash)
        .bind(p.token_id)
        .bind(&p.csrf)
        .bind(micros(p.ttl))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session_delete(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM api_session WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session_get(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(SESSION_GET)
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn task_claim(&self, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
        Ok(sqlx::query_as(TASK_CLAIM)
            .bind(&p.worker_id)
            .bind(micros(p.lease_ttl))
            .bind(&p.queues)
            .bind(p.limit.max(0))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn task_get(&self, id: TaskId) -> Result<Option<TaskRow>> {
        Ok(sqlx::query_as(TASK_GET)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn task_kill_check(&self, worker_id: &str, ids: &[TaskId]) -> Result<Vec<TaskId>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        Ok(sqlx::query_scalar(
            "SELECT id FROM task WHERE id = ANY($1) \
             AND (status <> 'running' OR kill_requested OR worker_id IS NULL OR worker_id <> $2) ORDER BY id",
        )
        .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
        .bind(worker_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn task_lease_expired(&self, limit: i64) -> Result<Vec<TaskRow>> {
        Ok(sqlx::query_as(TASK_LEASE_EXPIRED)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn task_queue_depth(&self) -> Result<Vec<QueueDepth>> {
        Ok(sqlx::query_as(
            "SELECT queue, COUNT(*) FILTER (WHERE status = 'ready' AND run_at <= now()) AS ready, \
             COUNT(*) FILTER (WHERE status = 'running') AS running \
             FROM task WHERE status IN ('ready', 'running') GROUP BY queue ORDER BY queue",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn task_list(&self, instance: InstanceId) -> Result<Vec<TaskRow>> {
        Ok(sqlx::query_as(TASK_LIST)
            .bind(instance)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn task_attempt_list(&self, instance: InstanceId) -> Result<Vec<AttemptRow>> {
        Ok(sqlx::query_as(
            "SELECT a.task_id, a.attempt, a.worker_id, a.outcome, a.exit_code, a.error, a.started_at, a.ended_at \
             FROM task_attempt a JOIN task t ON t.id = a.task_id WHERE t.instance_id = $1 ORDER BY a.task_id, a.attempt",
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
             WHERE task_id = ANY($1) AND (task_id, attempt, seq) > ($2, $3, $4) \
             ORDER BY task_id, attempt, seq LIMIT $5",
        )
        .bind(q.task_ids.iter().map(|i| i.0).collect::<Vec<_>>())
        .bind(after_task)
        .bind(after_attempt)
        .bind(after_seq)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn token_get_by_hash(&self, secret_hash: &str) -> Result<Option<TokenRow>> {
        Ok(sqlx::query_as(TOKEN_GET_BY_HASH)
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn token_list(&self) -> Result<Vec<TokenRow>> {
        Ok(sqlx::query_as(TOKEN_LIST).fetch_all(&self.pool).await?)
    }

    async fn worker_deregister(&self, worker_id: &str) -> Result<()> {
        sqlx::query("UPDATE worker SET state = 'stopped', stopped_at = now() WHERE id = $1")
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn worker_heartbeat(&self, worker_id: &str) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE worker SET heartbeat_at = now() WHERE id = $1 AND state <> 'stopped'",
        )
        .bind(worker_id)
        .execute(&self.pool)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        Ok(sqlx::query_as(
            "SELECT w.id, w.name, w.host, w.pid, w.queues, w.slots, w.state, w.started_at, w.heartbeat_at, w.stopped_at, \
             EXTRACT(EPOCH FROM (now() - w.heartbeat_at))::float8 AS heartbeat_age_s, \
             (SELECT COUNT(*) FROM task t WHERE t.worker_id = w.id AND t.status = 'running') AS running_tasks \
             FROM worker w ORDER BY w.started_at, w.id COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn worker_register(&self, p: &WorkerRegistration) -> Result<()> {
        sqlx::query(
            "INSERT INTO worker (id, name, host, pid, queues, slots, state, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'running', now(), now())",
        )
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
            "SELECT definition FROM workflow_version WHERE workflow = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn workflow_get(&self, name: &str) -> Result<Option<WorkflowRow>> {
        Ok(sqlx::query_as(WORKFLOW_GET)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn workflow_list(&self) -> Result<Vec<WorkflowRow>> {
        Ok(sqlx::query_as(WORKFLOW_LIST).fetch_all(&self.pool).await?)
    }
}

struct PostgresTx {
    tx: Transaction<'static, Postgres>,
    /// Events written by this transaction, inserted together at commit (one statement, not one per change).
    events: Vec<NewEvent>,
    /// Attempt rows, likewise inserted together at commit (a duplicate fails the commit).
    attempts: Vec<AttemptRow>,
}

impl PostgresTx {
    /// Writes what this transaction buffered: its attempt rows, then its events.
    async fn flush_buffered(&mut self) -> Result<()> {
        let attempts = std::mem::take(&mut self.attempts);
        for attempts in attempts.chunks(ROWS_PER_INSERT) {
            super::common::attempt_insert::<Postgres>(attempts)
                .build()
                .execute(&mut *self.tx)
                .await?;
        }
        self.flush_events().await
    }

    async fn flush_events(&mut self) -> Result<()> {
        let events = std::mem::take(&mut self.events);
        for events in events.chunks(ROWS_PER_INSERT) {
            super::common::event_insert::<Postgres>(events, "now()")
                .build()
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl StoreTx for PostgresTx {
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
        sqlx::query("DELETE FROM coordinator_depend WHERE workflow = $1")
            .bind(workflow)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM coordinator WHERE workflow = $1")
            .bind(workflow)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn coordinator_depend_clear(&mut self, workflow: &str, expected: usize) -> Result<Cas> {
        // Lock the satisfied rows first, so a concurrent satisfy cannot slip in between the count and
        // the clear.
        let satisfied: Vec<String> = sqlx::query_scalar(
            "SELECT upstream FROM coordinator_depend WHERE workflow = $1 AND satisfied_at IS NOT NULL FOR UPDATE",
        )
        .bind(workflow)
        .fetch_all(&mut *self.tx)
        .await?;
        if satisfied.len() != expected {
            return Ok(Cas::Stale);
        }
        sqlx::query(
            "UPDATE coordinator_depend SET satisfied_at = NULL, satisfied_instance_id = NULL \
             WHERE workflow = $1 AND satisfied_at IS NOT NULL",
        )
        .bind(workflow)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::Applied)
    }

    async fn coordinator_depend_set(&mut self, workflow: &str, upstreams: &[String]) -> Result<()> {
        sqlx::query(
            "DELETE FROM coordinator_depend WHERE workflow = $1 AND NOT (upstream = ANY($2))",
        )
        .bind(workflow)
        .bind(upstreams)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO coordinator_depend (workflow, upstream) SELECT $1, u FROM unnest($2::text[]) AS u \
             ON CONFLICT (workflow, upstream) DO NOTHING",
        )
        .bind(workflow)
        .bind(upstreams)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn coordinator_depend_satisfy(
        &mut self,
        upstream: &str,
        instance: InstanceId,
    ) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE coordinator_depend SET satisfied_at = now(), satisfied_instance_id = $1 WHERE upstream = $2",
        )
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
            "UPDATE coordinator SET next_fire_at = $1, last_fire_at = $2 WHERE workflow = $3 AND next_fire_at = $4",
        )
        .bind(next)
        .bind(fired)
        .bind(workflow)
        .bind(expected)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn coordinator_list_all(&mut self) -> Result<Vec<CoordinatorRow>> {
        Ok(sqlx::query_as(COORDINATOR_LIST_ALL)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn coordinator_upsert(&mut self, c: &CoordinatorRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO coordinator (workflow, cron, timezone, depends, params, enabled, start_time, end_time, \
             next_fire_at, last_fire_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now()) \
             ON CONFLICT (workflow) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, \
             depends = excluded.depends, params = excluded.params, enabled = excluded.enabled, \
             start_time = excluded.start_time, end_time = excluded.end_time, next_fire_at = excluded.next_fire_at, \
             last_fire_at = excluded.last_fire_at, updated_at = excluded.updated_at",
        )
        .bind(&c.workflow)
        .bind(&c.cron)
        .bind(&c.timezone)
        .bind(&c.depends)
        .bind(&c.params)
        .bind(c.enabled)
        .bind(c.start_time)
        .bind(c.end_time)
        .bind(c.next_fire_at)
        .bind(c.last_fire_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn db_link_delete(&mut self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM db_link WHERE name = $1")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn db_link_names(&mut self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT name FROM db_link ORDER BY name COLLATE \"C\"")
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn db_link_upsert(&mut self, l: &DbLink) -> Result<()> {
        sqlx::query(
            "INSERT INTO db_link (name, kind, url, username, password, properties, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, now()) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             url = excluded.url, username = excluded.username, password = excluded.password, \
             properties = excluded.properties, updated_at = excluded.updated_at \
             WHERE (db_link.kind, db_link.url, db_link.username, db_link.password, db_link.properties) IS DISTINCT FROM \
             (excluded.kind, excluded.url, excluded.username, excluded.password, excluded.properties)",
        )
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
        sqlx::query("DELETE FROM file_link WHERE name = $1")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn file_link_names(&mut self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT name FROM file_link ORDER BY name COLLATE \"C\"")
                .fetch_all(&mut *self.tx)
                .await?,
        )
    }

    async fn file_link_upsert(&mut self, l: &FileLink) -> Result<()> {
        sqlx::query(
            "INSERT INTO file_link (name, kind, host, port, username, password, description, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
             host = excluded.host, port = excluded.port, username = excluded.username, \
             password = excluded.password, description = excluded.description, updated_at = excluded.updated_at \
             WHERE (file_link.kind, file_link.host, file_link.port, file_link.username, file_link.password, file_link.description) \
             IS DISTINCT FROM (excluded.kind, excluded.host, excluded.port, excluded.username, excluded.password, excluded.description)",
        )
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
            "SELECT id FROM workflow_instance WHERE parent_instance_id = $1 AND status IN ('pending', 'running') ORDER BY id",
        )
        .bind(parent)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn instance_count_running(&mut self, workflow: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM workflow_instance WHERE workflow = $1 AND status = 'running'",
        )
        .bind(workflow)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn instance_insert(&mut self, p: &NewInstance) -> Result<Option<InstanceId>> {
        // ON CONFLICT, not a caught unique violation: an error would abort the whole transaction.
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO workflow_instance (workflow, workflow_version, status, params, trigger_kind, scheduled_for, \
             parent_instance_id, parent_task_id, created_by, created_at) VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, now()) \
             ON CONFLICT (workflow, trigger_kind, scheduled_for) DO NOTHING RETURNING id",
        )
        .bind(&p.workflow)
        .bind(p.workflow_version)
        .bind(&p.params)
        .bind(p.trigger_kind)
        .bind(p.scheduled_for)
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
        let row: Option<LockedInstance> = sqlx::query_as(INSTANCE_LOCK)
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
            "SELECT id FROM workflow_instance WHERE workflow = $1 AND status = 'pending' ORDER BY id LIMIT $2",
        )
        .bind(workflow)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn instance_transition(&mut self, p: &InstanceTransition) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE workflow_instance SET status = $1, started_at = COALESCE($2, started_at), ended_at = $3, \
             error = $4 WHERE id = $5 AND status = ANY($6)",
        )
        .bind(p.to)
        .bind(p.started_at)
        .bind(p.ended_at)
        .bind(&p.error)
        .bind(p.id)
        .bind(p.from.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn notify_ready(&mut self) -> Result<()> {
        // delivered at commit, once per transaction and channel however often it is called
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(READY_CHANNEL)
            .execute(&mut *self.tx)
            .await?;
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
        let mut qb = QueryBuilder::<Postgres>::new(
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
            b.push_bind(&t.queue).push_bind(t.priority).push("now()");
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
        Ok(sqlx::query_as(TASK_LIST)
            .bind(instance)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn task_request_kill(&mut self, id: TaskId) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE task SET kill_requested = TRUE WHERE id = $1 AND status = 'running'",
        )
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
            "UPDATE task SET status = $1, run_at = $2, exit_code = $3, error = $4, kill_requested = $5, \
             max_attempts = COALESCE($6, max_attempts), ended_at = $7, \
             worker_id = NULL, lease_until = NULL \
             WHERE id = ANY($8) AND status = ANY($9) \
             AND ($10::text IS NULL OR worker_id = $10) AND ($11::bigint IS NULL OR attempt = $11)",
        )
        .bind(p.to)
        .bind(p.run_at)
        .bind(p.exit_code)
        .bind(&p.error)
        .bind(p.kill_requested)
        .bind(p.max_attempts)
        .bind(p.ended_at)
        .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
        .bind(p.from.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .bind(fence_worker)
        .bind(fence_attempt)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected())
    }

    async fn token_create(&mut self, p: &NewToken) -> Result<Option<TokenRow>> {
        // ON CONFLICT, not a caught unique violation: an error would abort the whole transaction
        Ok(sqlx::query_as(concat!(
            "INSERT INTO api_token (name, role, dir_prefix, secret_hash, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (name) DO NOTHING RETURNING ",
            token_cols!("")
        ))
        .bind(&p.name)
        .bind(p.role)
        .bind(&p.dir_prefix)
        .bind(&p.secret_hash)
        .bind(&p.created_by)
        .fetch_optional(&mut *self.tx)
        .await?)
    }

    async fn token_revoke(&mut self, name: &str) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE api_token SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "DELETE FROM api_session WHERE token_id IN (SELECT id FROM api_token WHERE name = $1)",
        )
        .bind(name)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn workflow_heads(&mut self) -> Result<Vec<WorkflowHead>> {
        Ok(sqlx::query_as(WORKFLOW_HEADS)
            .fetch_all(&mut *self.tx)
            .await?)
    }

    async fn workflow_lock(&mut self, name: &str) -> Result<Option<WorkflowHead>> {
        Ok(sqlx::query_as(WORKFLOW_LOCK)
            .bind(name)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn workflow_receivers(&mut self, names: &[String]) -> Result<Vec<String>> {
        alerts::receivers(&mut self.tx, names).await
    }

    async fn workflow_set_enabled(&mut self, name: &str, enabled: bool) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE workflow SET enabled = $1, updated_at = now() WHERE name = $2 AND enabled <> $1",
        )
        .bind(enabled)
        .bind(name)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn workflow_upsert(&mut self, w: &WorkflowUpsert) -> Result<()> {
        // A version already recorded keeps its first content, like SQLite's INSERT OR IGNORE.
        sqlx::query(
            "INSERT INTO workflow_version (workflow, version, content_hash, source_xml, definition, created_at) \
             VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (workflow, version) DO NOTHING",
        )
        .bind(&w.name)
        .bind(w.version)
        .bind(&w.content_hash)
        .bind(&w.source_xml)
        .bind(&w.definition)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO workflow (name, version, content_hash, source_xml, definition, file_path, dir, creator, \
             description, mail_level, mail_receivers, instance_limit, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), now()) \
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, content_hash = excluded.content_hash, \
             source_xml = excluded.source_xml, definition = excluded.definition, file_path = excluded.file_path, \
             dir = excluded.dir, creator = excluded.creator, description = excluded.description, \
             mail_level = excluded.mail_level, mail_receivers = excluded.mail_receivers, \
             instance_limit = excluded.instance_limit, enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
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

/// A session advisory lock for [`SessionMaster`]; advisory locks are per database.
struct PostgresLock {
    pool: PgPool,
    options: PgConnectOptions,
}

#[async_trait]
impl SessionLock for PostgresLock {
    type Conn = PgConnection;

    async fn connect(&self) -> Result<PgConnection> {
        Ok(PgConnection::connect_with(&self.options).await?)
    }

    async fn take(&self, conn: &mut PgConnection) -> Result<bool> {
        Ok(
            sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({MASTER_KEY})"))
                .fetch_one(conn)
                .await?,
        )
    }

    async fn holds(&self, conn: &mut PgConnection) -> Result<bool> {
        // A bigint advisory key shows as classid = high half, objid = low half, objsubid = 1.
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
             AND granted AND objsubid = 1 \
             AND classid = ((({MASTER_KEY})::bigint >> 32) & 4294967295)::oid \
             AND objid = (({MASTER_KEY})::bigint & 4294967295)::oid)"
        );
        Ok(sqlx::query_scalar(&sql).fetch_one(conn).await?)
    }

    async fn unlock(&self, conn: &mut PgConnection) -> Result<()> {
        let _: bool = sqlx::query_scalar(&format!("SELECT pg_advisory_unlock({MASTER_KEY})"))
            .fetch_one(conn)
            .await?;
        Ok(())
    }

    async fn bump_epoch(&self, holder: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE master_lease SET epoch = epoch + 1, holder = $1, lease_until = NULL WHERE name = 'master' \
             RETURNING epoch",
        )
        .bind(holder)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn clear_holder(&self, holder: &str) -> Result<()> {
        sqlx::query("UPDATE master_lease SET holder = NULL WHERE name = 'master' AND holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The LISTEN/NOTIFY channel for "tasks became ready".
const READY_CHANNEL: &str = "akkaflow_ready";

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

fn log_insert(lines: &[LogLine]) -> QueryBuilder<'_, Postgres> {
    super::common::log_insert(lines, "ON CONFLICT (task_id, attempt, seq) DO NOTHING")
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
