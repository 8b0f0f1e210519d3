//! MySQL 8.0+ / MariaDB 10.6+ store: the shared-server backend, ported from `sqlite.rs` with the same
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
use sha2::{Digest, Sha256};
use sqlx::mysql::{
    MySql, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlPool, MySqlPoolOptions,
};
use sqlx::{Connection, Executor, QueryBuilder, Row, Transaction};

use super::common::{
    all_applied, json_list, micros, normalize_dir_prefix, placeholders, INVARIANT_CHECKS,
    ROWS_PER_INSERT,
};
use super::session_lock::{SessionLock, SessionMaster};
mod alerts;

use super::*;
use crate::definition::{DbLink, FileLink};
use crate::state::{InstanceId, TaskId, TaskStatus};

/// How often a statement that deadlocked or timed out on a lock is tried in all.
const RETRY_ATTEMPTS: u32 = 5;

/// Server error number of a duplicate key.
const ER_DUP_ENTRY: u16 = 1062;

/// Longest user-level lock name the server accepts.
const LOCK_NAME_MAX: usize = 64;

macro_rules! task_cols {
    () => {
        "t.id, t.instance_id, CAST(t.node AS CHAR) AS node, CAST(t.kind AS CHAR) AS kind, \
         CAST(t.status AS CHAR) AS status, t.attempt, t.max_attempts, t.retry_interval_s, t.timeout_s, \
         CAST(t.queue AS CHAR) AS queue, t.priority, t.run_at, CAST(t.worker_id AS CHAR) AS worker_id, \
         t.lease_until, t.kill_requested, t.exit_code, CAST(t.error AS CHAR) AS error, t.created_at, \
         t.started_at, t.ended_at"
    };
}
macro_rules! instance_cols {
    () => {
        "i.id, CAST(i.workflow AS CHAR) AS workflow, i.workflow_version, CAST(i.status AS CHAR) AS status, \
         CAST(i.params AS CHAR) AS params, CAST(i.trigger_kind AS CHAR) AS trigger_kind, i.scheduled_for, \
         i.parent_instance_id, i.parent_task_id, CAST(i.error AS CHAR) AS error, CAST(i.created_by AS CHAR) AS created_by, \
         i.created_at, i.started_at, i.ended_at"
    };
}
macro_rules! coordinator_cols {
    () => {
        "CAST(c.workflow AS CHAR) AS workflow, CAST(c.cron AS CHAR) AS cron, CAST(c.timezone AS CHAR) AS timezone, \
         CAST(c.depends AS CHAR) AS depends, CAST(c.params AS CHAR) AS params, c.enabled, c.start_time, \
         c.end_time, c.next_fire_at, c.last_fire_at"
    };
}
macro_rules! workflow_cols {
    () => {
        "CAST(w.name AS CHAR) AS name, w.version, CAST(w.content_hash AS CHAR) AS content_hash, \
         CAST(w.source_xml AS CHAR) AS source_xml, CAST(w.definition AS CHAR) AS definition, \
         CAST(w.file_path AS CHAR) AS file_path, CAST(w.dir AS CHAR) AS dir, CAST(w.creator AS CHAR) AS creator, \
         CAST(w.description AS CHAR) AS description, CAST(w.mail_level AS CHAR) AS mail_level, \
         CAST(w.mail_receivers AS CHAR) AS mail_receivers, w.instance_limit, w.enabled, w.created_at, w.updated_at"
    };
}
macro_rules! head_cols {
    () => {
        "CAST(w.name AS CHAR) AS name, w.version, CAST(w.content_hash AS CHAR) AS content_hash, w.enabled, \
         w.instance_limit, CAST(w.file_path AS CHAR) AS file_path"
    };
}

/// `i.workflow` lies in the dir prefix bound four times (NULL: everywhere); see [`dir_in_scope`].
macro_rules! in_dir {
    () => {
        "(? IS NULL OR i.workflow IN (SELECT w.name FROM workflow w WHERE w.dir = ? \
         OR LEFT(w.dir, CHAR_LENGTH(?) + 1) = CONCAT(?, '/')))"
    };
}
macro_rules! token_cols {
    () => {
        "t.id, CAST(t.name AS CHAR) AS name, CAST(t.role AS CHAR) AS role, CAST(t.dir_prefix AS CHAR) AS dir_prefix, \
         CAST(t.created_by AS CHAR) AS created_by, t.created_at, t.revoked_at"
    };
}

const COORDINATOR_DUE: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled = 1 AND c.cron IS NOT NULL AND c.next_fire_at <= NOW(6) \
     AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled = 1) \
     ORDER BY c.next_fire_at, c.workflow LIMIT ?"
);
const COORDINATOR_GET: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.workflow = ?"
);
const COORDINATOR_NEEDS_NEXT: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled = 1 AND c.cron IS NOT NULL AND c.next_fire_at IS NULL \
     ORDER BY c.workflow LIMIT ?"
);
const COORDINATOR_DEPS_READY: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled = 1 AND c.cron IS NULL \
     AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled = 1) \
     AND EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow) \
     AND NOT EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow AND d.satisfied_at IS NULL) \
     ORDER BY c.workflow LIMIT ?"
);
const COORDINATOR_LIST_ALL: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c ORDER BY c.workflow"
);
const INSTANCE_GET: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance i WHERE i.id = ?"
);
const INSTANCE_LIST: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance i WHERE (? IS NULL OR i.workflow = ?) AND (? IS NULL OR i.status = ?) \
     AND (? IS NULL OR i.created_at >= ?) AND (? IS NULL OR i.id < ?) AND ",
    in_dir!(),
    " ORDER BY i.id DESC LIMIT ?"
);
const INSTANCE_COUNT_BY_DAY: &str = concat!(
    "SELECT CAST(DATE_FORMAT(COALESCE(i.ended_at, i.created_at), '%Y-%m-%d') AS CHAR) AS day, \
     CAST(i.status AS CHAR) AS status, COUNT(*) AS count FROM workflow_instance i \
     WHERE COALESCE(i.ended_at, i.created_at) >= ? AND ",
    in_dir!(),
    " GROUP BY day, status ORDER BY day, status"
);
const INSTANCE_LATEST_BY_WORKFLOW: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance i WHERE i.id IN (SELECT MAX(m.id) FROM workflow_instance m GROUP BY m.workflow) \
     ORDER BY i.workflow"
);
const SESSION_GET: &str = concat!(
    "SELECT ",
    token_cols!(),
    ", CAST(s.csrf AS CHAR) AS csrf, s.expires_at FROM api_session s JOIN api_token t ON t.id = s.token_id \
     WHERE s.id_hash = ? AND s.expires_at > NOW(6) AND t.revoked_at IS NULL"
);
const TOKEN_GET_BY_HASH: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM api_token t WHERE t.secret_hash = ? AND t.revoked_at IS NULL"
);
const TOKEN_GET_BY_ID: &str = concat!("SELECT ", token_cols!(), " FROM api_token t WHERE t.id = ?");
const TOKEN_LIST: &str = concat!(
    "SELECT ",
    token_cols!(),
    " FROM api_token t ORDER BY t.name"
);
const INSTANCE_LOCK: &str = concat!(
    "SELECT ",
    instance_cols!(),
    // SYSDATE, unlike NOW, is read when the row is returned: after the wait for its lock
    ", SYSDATE(6) AS db_now FROM workflow_instance i WHERE i.id = ? FOR UPDATE"
);
const TASK_CLAIM_RESULT: &str = "SELECT t.id, t.instance_id, CAST(t.node AS CHAR) AS node, CAST(t.kind AS CHAR) AS kind, t.attempt, \
     t.timeout_s, CAST(i.workflow AS CHAR) AS workflow, i.workflow_version, CAST(i.params AS CHAR) AS params, \
     i.scheduled_for, t.started_at FROM task t JOIN workflow_instance i ON i.id = t.instance_id WHERE t.id IN ";
const TASK_GET: &str = concat!("SELECT ", task_cols!(), " FROM task t WHERE t.id = ?");
const TASK_LEASE_EXPIRED: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task t WHERE t.status = 'running' AND t.lease_until < NOW(6) ORDER BY t.id LIMIT ?"
);
const TASK_LIST: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task t WHERE t.instance_id = ? ORDER BY t.id"
);
const WORKFLOW_GET: &str = concat!(
    "SELECT ",
    workflow_cols!(),
    " FROM workflow w WHERE w.name = ?"
);
const WORKFLOW_LIST: &str = concat!(
    "SELECT ",
    workflow_cols!(),
    " FROM workflow w ORDER BY w.dir, w.name"
);
const WORKFLOW_HEADS: &str = concat!("SELECT ", head_cols!(), " FROM workflow w ORDER BY w.name");
const WORKFLOW_LOCK: &str = concat!(
    "SELECT ",
    head_cols!(),
    " FROM workflow w WHERE w.name = ? FOR UPDATE"
);

pub(crate) struct MysqlStore {
    pool: MySqlPool,
    /// For the master lock's own connection, which must never come from (or return to) the pool.
    options: MySqlConnectOptions,
    lock_name: String,
    /// The last claim found nothing: the next one first asks, outside a transaction, whether
    /// anything is ready. An idle worker then sends one statement per poll, not BEGIN, SELECT and
    /// ROLLBACK.
    claim_idle: std::sync::atomic::AtomicBool,
}

impl MysqlStore {
    pub(crate) async fn connect(opts: &ConnectOptions) -> Result<Arc<dyn Store>> {
        let unreachable = |e: sqlx::Error| StoreError::Unreachable {
            url: redact_url(&opts.url),
            reason: e.to_string(),
        };
        // sqlx knows `mysql://` only; `mariadb://` is our alias for the same protocol.
        let url = match opts.url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => opts.url.clone(),
        };
        let options = MySqlConnectOptions::from_str(&url)
            .map_err(unreachable)?
            .timezone(Some("+00:00".to_string()));
        let pool = MySqlPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.acquire_timeout)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET time_zone = '+00:00'").await?;
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options.clone())
            .await
            .map_err(unreachable)?;

        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&pool)
            .await?;
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
        Ok(Arc::new(MysqlStore {
            pool,
            options,
            lock_name: lock_name(&database),
            claim_idle: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}

/// Refuses servers without `FOR UPDATE SKIP LOCKED`: MariaDB before 10.6, MySQL before 8.0.
fn check_server_version(version: &str) -> Result<()> {
    // Old MariaDB replication handshakes prefix a fake `5.5.5-`.
    let v = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    let (major, minor) = match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => {
            return Err(StoreError::Unsupported(format!(
                "cannot read the server version `{version}`"
            )))
        }
    };
    let (name, need) = if v.to_ascii_lowercase().contains("mariadb") {
        ("MariaDB", (10, 6))
    } else {
        ("MySQL", (8, 0))
    };
    if (major, minor) < need {
        return Err(StoreError::Unsupported(format!(
            "{name} {version} is too old: akkaflow needs {name} {}.{} or newer for FOR UPDATE SKIP LOCKED",
            need.0, need.1
        )));
    }
    Ok(())
}

/// The master lock's name: GET_LOCK names are server-wide, so it carries the database name; a name
/// over the server's 64-character limit is shortened to a hash of it.
fn lock_name(database: &str) -> String {
    let plain = format!("akkaflow.master.{database}");
    if plain.chars().count() <= LOCK_NAME_MAX {
        return plain;
    }
    let digest = Sha256::digest(database.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "akkaflow.master.{}",
        &hex[..LOCK_NAME_MAX - "akkaflow.master.".len()]
    )
}

/// Runs `op` again after a deadlock or lock wait timeout, a bounded number of times, with a short
/// jittered backoff. Only for operations that are one statement or open their own transaction: the
/// server rolled back the whole statement or transaction, so running it again is safe.
async fn retrying<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.is_retryable() && attempt < RETRY_ATTEMPTS => {
                let backoff = 5u64 << attempt;
                tracing::debug!(error = %e, attempt, "deadlock or lock wait timeout; retrying");
                tokio::time::sleep(Duration::from_millis(backoff + fastrand::u64(0..backoff)))
                    .await;
                attempt += 1;
            }
            other => return other,
        }
    }
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

#[async_trait]
impl Store for MysqlStore {
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
        Backend::Mysql
    }

    async fn begin(&self) -> Result<Box<dyn StoreTx>> {
        Ok(Box::new(MysqlTx {
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
        retrying(|| async move {
            let r = sqlx::query(
                "UPDATE coordinator SET next_fire_at = ? WHERE workflow = ? AND next_fire_at IS NULL",
            )
            .bind(next)
            .bind(workflow)
            .execute(&self.pool)
            .await?;
            Ok(Cas::from_rows(r.rows_affected()))
        })
        .await
    }

    async fn coordinator_deps_ready(&self, limit: i64) -> Result<Vec<CoordinatorRow>> {
        Ok(sqlx::query_as(COORDINATOR_DEPS_READY)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn coordinator_depend_list(&self, workflow: &str) -> Result<Vec<DependRow>> {
        Ok(sqlx::query_as(
            "SELECT CAST(d.workflow AS CHAR) AS workflow, CAST(d.upstream AS CHAR) AS upstream, d.satisfied_at, \
             d.satisfied_instance_id FROM coordinator_depend d WHERE d.workflow = ? ORDER BY d.upstream",
        )
        .bind(workflow)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn coordinator_downstream(&self, upstream: &str) -> Result<Vec<String>> {
        alerts::downstream(&self.pool, upstream).await
    }

    async fn data_monitor_insert(&self, c: &NewDataMonitorCheck) -> Result<()> {
        retrying(|| async move {
            sqlx::query(
                "INSERT INTO data_monitor (checked_at, workflow, instance_id, task_id, node, category, source_name, \
                 time_mark, value, min_value, max_value, passed, message) \
                 VALUES (NOW(6), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        })
        .await
    }

    async fn data_monitor_list(&self, instance: InstanceId) -> Result<Vec<DataMonitorRow>> {
        Ok(sqlx::query_as(
            "SELECT d.id, d.checked_at, CAST(d.workflow AS CHAR) AS workflow, d.instance_id, d.task_id, \
             CAST(d.node AS CHAR) AS node, CAST(d.category AS CHAR) AS category, \
             CAST(d.source_name AS CHAR) AS source_name, CAST(d.time_mark AS CHAR) AS time_mark, \
             d.value, d.min_value, d.max_value, d.passed, CAST(d.message AS CHAR) AS message \
             FROM data_monitor d WHERE d.instance_id = ? ORDER BY d.id",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn db_link_get(&self, name: &str) -> Result<Option<DbLink>> {
        let row: Option<StoredDbLink> = sqlx::query_as(
            "SELECT CAST(name AS CHAR) AS name, CAST(kind AS CHAR) AS kind, CAST(url AS CHAR) AS url, \
             CAST(username AS CHAR) AS username, CAST(password AS CHAR) AS password, \
             CAST(properties AS CHAR) AS properties FROM db_link WHERE name = ?",
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
            "SELECT CAST(l.name AS CHAR) AS name, CAST(l.kind AS CHAR) AS kind, CAST(l.url AS CHAR) AS url, \
             CAST(l.username AS CHAR) AS username, CAST(l.properties AS CHAR) AS properties, l.updated_at \
             FROM db_link l ORDER BY l.name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn event_list(&self, f: &EventFilter) -> Result<Vec<EventRow>> {
        Ok(sqlx::query_as(
            "SELECT e.id, e.created_at, CAST(e.workflow AS CHAR) AS workflow, e.instance_id, e.task_id, \
             CAST(e.node AS CHAR) AS node, CAST(e.kind AS CHAR) AS kind, CAST(e.from_status AS CHAR) AS from_status, \
             CAST(e.to_status AS CHAR) AS to_status, CAST(e.message AS CHAR) AS message, CAST(e.actor AS CHAR) AS actor \
             FROM event e WHERE (? IS NULL OR e.instance_id = ?) AND e.id > COALESCE(?, 0) ORDER BY e.id LIMIT ?",
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
            "SELECT CAST(name AS CHAR) AS name, CAST(kind AS CHAR) AS kind, CAST(host AS CHAR) AS host, port, \
             CAST(username AS CHAR) AS username, CAST(password AS CHAR) AS password, \
             CAST(description AS CHAR) AS description FROM file_link WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(FileLink::try_from).transpose()
    }

    async fn file_link_list(&self) -> Result<Vec<FileLinkRow>> {
        Ok(sqlx::query_as(
            "SELECT CAST(l.name AS CHAR) AS name, CAST(l.kind AS CHAR) AS kind, CAST(l.host AS CHAR) AS host, \
             l.port, CAST(l.username AS CHAR) AS username, CAST(l.description AS CHAR) AS description, \
             l.updated_at FROM file_link l ORDER BY l.name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn instance_count_by_day(
        &self,
        since: DateTime<Utc>,
        dir_prefix: Option<&str>,
    ) -> Result<Vec<DayCount>> {
        let dir = normalize_dir_prefix(dir_prefix);
        Ok(sqlx::query_as(INSTANCE_COUNT_BY_DAY)
            .bind(since)
            .bind(&dir)
            .bind(&dir)
            .bind(&dir)
            .bind(&dir)
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
        let dir = normalize_dir_prefix(f.dir_prefix.as_deref());
        Ok(sqlx::query_as(INSTANCE_LIST)
            .bind(&f.workflow)
            .bind(&f.workflow)
            .bind(f.status)
            .bind(f.status)
            .bind(f.since)
            .bind(f.since)
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
            "SELECT CAST(i.workflow AS CHAR) AS workflow FROM workflow_instance i WHERE i.status = 'pending' \
             GROUP BY i.workflow ORDER BY i.workflow LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
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
        retrying(|| async move {
            let r = sqlx::query(
                "UPDATE task SET lease_until = DATE_ADD(NOW(6), INTERVAL ? MICROSECOND) \
                 WHERE worker_id = ? AND status = 'running'",
            )
            .bind(micros(ttl))
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected())
        })
        .await
    }

    async fn master_lock(&self, holder: &str) -> Result<Box<dyn MasterLock>> {
        let lock = MysqlLock {
            pool: self.pool.clone(),
            options: self.options.clone(),
            name: self.lock_name.clone(),
        };
        Ok(Box::new(SessionMaster::new(lock, holder)))
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

    async fn ready_listener(&self) -> Result<Option<Box<dyn ReadyListener>>> {
        Ok(None) // no notifications: workers poll, and wake at once for work made in-process
    }

    async fn now(&self) -> Result<DateTime<Utc>> {
        Ok(sqlx::query_scalar("SELECT NOW(6)")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn scheduler_heartbeat(&self, p: &SchedulerBeat) -> Result<()> {
        retrying(|| async move {
            // ON DUPLICATE KEY assignments run left to right: `master_since` still reads the old row.
            sqlx::query(
                "INSERT INTO scheduler (id, host, pid, state, epoch, master_since, started_at, heartbeat_at) \
                 VALUES (?, ?, ?, ?, ?, CASE WHEN ? = 'master' THEN NOW(6) END, NOW(6), NOW(6)) \
                 ON DUPLICATE KEY UPDATE \
                 master_since = CASE WHEN VALUES(state) = 'master' THEN COALESCE(master_since, NOW(6)) END, \
                 state = VALUES(state), epoch = VALUES(epoch), heartbeat_at = NOW(6)",
            )
            .bind(&p.id)
            .bind(&p.host)
            .bind(p.pid)
            .bind(p.state)
            .bind(p.epoch)
            .bind(p.state)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn scheduler_list(&self) -> Result<Vec<SchedulerRow>> {
        Ok(sqlx::query_as(
            "SELECT CAST(s.id AS CHAR) AS id, CAST(s.host AS CHAR) AS host, s.pid, CAST(s.state AS CHAR) AS state, \
             s.epoch, s.master_since, s.started_at, s.heartbeat_at FROM scheduler s ORDER BY s.started_at, s.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn session_create(&self, p: &NewSession) -> Result<()> {
        retrying(|| async move {
            sqlx::query("DELETE FROM api_session WHERE expires_at < NOW(6)")
                .execute(&self.pool)
                .await?;
            sqlx::query(
                "INSERT INTO api_session (id_hash, token_id, csrf, created_at, expires_at) \
                 VALUES (?, ?, ?, NOW(6), DATE_ADD(NOW(6), INTERVAL ? MICROSECOND))",
            )
            .bind(&p.id_hash)
            .bind(p.token_id)
            .bind(&p.csrf)
            .bind(micros(p.ttl))
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn session_delete(&self, id_hash: &str) -> Result<()> {
        retrying(|| async move {
            sqlx::query("DELETE FROM api_session WHERE id_hash = ?")
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn session_get(&self, id_hash: &str) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(SESSION_GET)
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn task_claim(&self, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
        if p.queues.is_empty() || p.limit <= 0 {
            return Ok(vec![]);
        }
        retrying(|| self.task_claim_once(p)).await
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
        let mut qb = QueryBuilder::<MySql>::new("SELECT id FROM task WHERE id IN ");
        push_list(&mut qb, ids.iter().copied());
        qb.push(
            " AND (status <> 'running' OR kill_requested = 1 OR worker_id IS NULL OR worker_id <> ",
        );
        qb.push_bind(worker_id);
        qb.push(") ORDER BY id");
        Ok(qb.build_query_scalar().fetch_all(&self.pool).await?)
    }

    async fn task_lease_expired(&self, limit: i64) -> Result<Vec<TaskRow>> {
        Ok(sqlx::query_as(TASK_LEASE_EXPIRED)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn task_queue_depth(&self) -> Result<Vec<QueueDepth>> {
        Ok(sqlx::query_as(
            "SELECT CAST(queue AS CHAR) AS queue, \
             CAST(SUM(CASE WHEN status = 'ready' AND run_at <= NOW(6) THEN 1 ELSE 0 END) AS SIGNED) AS ready, \
             CAST(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS SIGNED) AS running \
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
            "SELECT a.task_id, a.attempt, CAST(a.worker_id AS CHAR) AS worker_id, CAST(a.outcome AS CHAR) AS outcome, \
             a.exit_code, CAST(a.error AS CHAR) AS error, a.started_at, a.ended_at \
             FROM task_attempt a JOIN task t ON t.id = a.task_id WHERE t.instance_id = ? ORDER BY a.task_id, a.attempt",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn task_log_insert_many(&self, lines: &[LogLine]) -> Result<()> {
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            retrying(|| async move {
                log_insert(chunk).build().execute(&self.pool).await?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn task_log_read(&self, q: &LogQuery) -> Result<Vec<LogLine>> {
        if q.task_ids.is_empty() {
            return Ok(vec![]);
        }
        let (after_task, after_attempt, after_seq) =
            q.after.map(|(t, a, s)| (t.0, a, s)).unwrap_or((0, 0, -1));
        let mut qb = QueryBuilder::<MySql>::new(
            "SELECT l.task_id, l.attempt, l.seq, l.logged_at, CAST(l.stream AS CHAR) AS stream, \
             CAST(l.line AS CHAR) AS line FROM task_log l WHERE l.task_id IN ",
        );
        push_list(&mut qb, q.task_ids.iter().copied());
        qb.push(" AND (l.task_id, l.attempt, l.seq) > (");
        qb.push_bind(after_task);
        qb.push(", ");
        qb.push_bind(after_attempt);
        qb.push(", ");
        qb.push_bind(after_seq);
        qb.push(") ORDER BY l.task_id, l.attempt, l.seq LIMIT ");
        qb.push_bind(q.limit);
        Ok(qb.build_query_as().fetch_all(&self.pool).await?)
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
        retrying(|| async move {
            sqlx::query("UPDATE worker SET state = 'stopped', stopped_at = NOW(6) WHERE id = ?")
                .bind(worker_id)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn worker_heartbeat(&self, worker_id: &str) -> Result<Cas> {
        retrying(|| async move {
            let r = sqlx::query(
                "UPDATE worker SET heartbeat_at = NOW(6) WHERE id = ? AND state <> 'stopped'",
            )
            .bind(worker_id)
            .execute(&self.pool)
            .await?;
            Ok(Cas::from_rows(r.rows_affected()))
        })
        .await
    }

    async fn worker_list(&self) -> Result<Vec<WorkerRow>> {
        Ok(sqlx::query_as(
            "SELECT CAST(w.id AS CHAR) AS id, CAST(w.name AS CHAR) AS name, CAST(w.host AS CHAR) AS host, w.pid, \
             CAST(w.queues AS CHAR) AS queues, w.slots, CAST(w.state AS CHAR) AS state, w.started_at, \
             w.heartbeat_at, w.stopped_at, \
             TIMESTAMPDIFF(MICROSECOND, w.heartbeat_at, NOW(6)) / 1e6 AS heartbeat_age_s, \
             (SELECT COUNT(*) FROM task t WHERE t.worker_id = w.id AND t.status = 'running') AS running_tasks \
             FROM worker w ORDER BY w.started_at, w.id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn worker_register(&self, p: &WorkerRegistration) -> Result<()> {
        retrying(|| async move {
            sqlx::query(
                "INSERT INTO worker (id, name, host, pid, queues, slots, state, started_at, heartbeat_at) \
                 VALUES (?, ?, ?, ?, ?, ?, 'running', NOW(6), NOW(6))",
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
        })
        .await
    }

    async fn workflow_definition(&self, name: &str, version: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(v.definition AS CHAR) AS definition FROM workflow_version v \
             WHERE v.workflow = ? AND v.version = ?",
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

impl MysqlStore {
    /// One claim transaction: lock up to `limit` ready rows (skipping rows another claimer holds),
    /// mark them running by primary key, and read what the worker needs.
    async fn task_claim_once(&self, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
        use std::sync::atomic::Ordering::Relaxed;
        if self.claim_idle.load(Relaxed) {
            let mut probe = QueryBuilder::<MySql>::new(
                "SELECT id FROM task WHERE status = 'ready' AND queue IN ",
            );
            push_list(&mut probe, p.queues.iter());
            probe.push(" AND run_at <= NOW(6) LIMIT 1");
            let any: Option<i64> = probe
                .build_query_scalar()
                .fetch_optional(&self.pool)
                .await?;
            if any.is_none() {
                return Ok(vec![]);
            }
        }
        let claimed = self.task_claim_tx(p).await?;
        self.claim_idle.store(claimed.is_empty(), Relaxed);
        Ok(claimed)
    }

    async fn task_claim_tx(&self, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
        let mut tx = self.pool.begin().await?;
        // One range read per queue: with `queue IN (...)` the index cannot give the ORDER BY, and
        // the server sorts every ready row of those queues on each claim (slower as the backlog
        // grows). Each queue yields its first `limit` rows in index order, all in one statement;
        // the best `limit` of them overall are claimed, the rest are unlocked at commit untouched.
        let mut select = QueryBuilder::<MySql>::new("");
        for (n, queue) in p.queues.iter().enumerate() {
            if n > 0 {
                select.push(" UNION ALL ");
            }
            select
                .push("(SELECT priority, run_at, id FROM task WHERE status = 'ready' AND queue = ");
            select.push_bind(queue);
            select.push(" AND run_at <= NOW(6) ORDER BY priority, run_at, id LIMIT ");
            select.push_bind(p.limit);
            select.push(" FOR UPDATE SKIP LOCKED)");
        }
        let mut candidates: Vec<(i64, DateTime<Utc>, i64)> =
            select.build_query_as().fetch_all(&mut *tx).await?;
        candidates.sort();
        candidates.truncate(p.limit.max(0) as usize);
        let ids: Vec<i64> = candidates.into_iter().map(|(_, _, id)| id).collect();
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(vec![]);
        }

        let mut update =
            QueryBuilder::<MySql>::new("UPDATE task SET status = 'running', worker_id = ");
        update.push_bind(&p.worker_id);
        update.push(
            ", attempt = attempt + 1, started_at = NOW(6), lease_until = DATE_ADD(NOW(6), INTERVAL ",
        );
        update.push_bind(micros(p.lease_ttl));
        update.push(" MICROSECOND), ended_at = NULL WHERE status = 'ready' AND id IN ");
        push_list(&mut update, ids.iter().copied());
        let updated = update.build().execute(&mut *tx).await?.rows_affected();
        debug_assert_eq!(updated, ids.len() as u64, "the claimed rows are locked");

        let mut read = QueryBuilder::<MySql>::new(TASK_CLAIM_RESULT);
        push_list(&mut read, ids.iter().copied());
        read.push(" ORDER BY t.priority, t.id");
        let claimed = read.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(claimed)
    }
}

struct MysqlTx {
    tx: Transaction<'static, MySql>,
    /// Events written by this transaction, inserted together at commit (one statement, not one per change).
    events: Vec<NewEvent>,
    /// Attempt rows, likewise inserted together at commit (a duplicate fails the commit).
    attempts: Vec<AttemptRow>,
}

impl MysqlTx {
    /// Writes what this transaction buffered: its attempt rows, then its events.
    async fn flush_buffered(&mut self) -> Result<()> {
        let attempts = std::mem::take(&mut self.attempts);
        for attempts in attempts.chunks(ROWS_PER_INSERT) {
            super::common::attempt_insert::<MySql>(attempts)
                .build()
                .execute(&mut *self.tx)
                .await?;
        }
        self.flush_events().await
    }

    async fn flush_events(&mut self) -> Result<()> {
        let events = std::mem::take(&mut self.events);
        for events in events.chunks(ROWS_PER_INSERT) {
            super::common::event_insert::<MySql>(events, "NOW(6)")
                .build()
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl StoreTx for MysqlTx {
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
        let satisfied: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM coordinator_depend WHERE workflow = ? AND satisfied_at IS NOT NULL FOR UPDATE",
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
        let mut delete =
            QueryBuilder::<MySql>::new("DELETE FROM coordinator_depend WHERE workflow = ");
        delete.push_bind(workflow);
        if !upstreams.is_empty() {
            delete.push(" AND upstream NOT IN ");
            push_list(&mut delete, upstreams.iter());
        }
        delete.build().execute(&mut *self.tx).await?;
        if upstreams.is_empty() {
            return Ok(());
        }
        let mut insert =
            QueryBuilder::<MySql>::new("INSERT INTO coordinator_depend (workflow, upstream) ");
        insert.push_values(upstreams, |mut b, upstream| {
            b.push_bind(workflow).push_bind(upstream);
        });
        insert.push(" ON DUPLICATE KEY UPDATE upstream = upstream");
        insert.build().execute(&mut *self.tx).await?;
        Ok(())
    }

    async fn coordinator_depend_satisfy(
        &mut self,
        upstream: &str,
        instance: InstanceId,
    ) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE coordinator_depend SET satisfied_at = NOW(6), satisfied_instance_id = ? WHERE upstream = ?",
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
            "UPDATE coordinator SET next_fire_at = ?, last_fire_at = ? WHERE workflow = ? AND next_fire_at = ?",
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
             next_fire_at, last_fire_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6)) \
             ON DUPLICATE KEY UPDATE cron = VALUES(cron), timezone = VALUES(timezone), depends = VALUES(depends), \
             params = VALUES(params), enabled = VALUES(enabled), start_time = VALUES(start_time), \
             end_time = VALUES(end_time), next_fire_at = VALUES(next_fire_at), last_fire_at = VALUES(last_fire_at), \
             updated_at = VALUES(updated_at)",
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
        sqlx::query("DELETE FROM db_link WHERE name = ?")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn db_link_names(&mut self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT CAST(l.name AS CHAR) AS name FROM db_link l ORDER BY l.name",
            )
            .fetch_all(&mut *self.tx)
            .await?,
        )
    }

    async fn db_link_upsert(&mut self, l: &DbLink) -> Result<()> {
        sqlx::query(
            "INSERT INTO db_link (name, kind, url, username, password, properties, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE \
             updated_at = IF((kind, url, username, password, properties) <=> \
               (VALUES(kind), VALUES(url), VALUES(username), VALUES(password), VALUES(properties)), updated_at, VALUES(updated_at)), \
             kind = VALUES(kind), url = VALUES(url), username = VALUES(username), password = VALUES(password), \
             properties = VALUES(properties)",
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
        sqlx::query("DELETE FROM file_link WHERE name = ?")
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn file_link_names(&mut self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(l.name AS CHAR) AS name FROM file_link l ORDER BY l.name",
        )
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn file_link_upsert(&mut self, l: &FileLink) -> Result<()> {
        sqlx::query(
            "INSERT INTO file_link (name, kind, host, port, username, password, description, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE \
             updated_at = IF((kind, host, port, username, password, description) <=> \
               (VALUES(kind), VALUES(host), VALUES(port), VALUES(username), VALUES(password), VALUES(description)), \
               updated_at, VALUES(updated_at)), \
             kind = VALUES(kind), host = VALUES(host), port = VALUES(port), username = VALUES(username), \
             password = VALUES(password), description = VALUES(description)",
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
        // Not INSERT IGNORE: it would also swallow bad values and foreign-key errors. A duplicate key
        // only fails this statement; the transaction goes on.
        let r = sqlx::query(
            "INSERT INTO workflow_instance (workflow, workflow_version, status, params, trigger_kind, scheduled_for, \
             parent_instance_id, parent_task_id, created_by, created_at) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, NOW(6))",
        )
        .bind(&p.workflow)
        .bind(p.workflow_version)
        .bind(&p.params)
        .bind(p.trigger_kind)
        .bind(p.scheduled_for)
        .bind(p.parent_instance_id)
        .bind(p.parent_task_id)
        .bind(&p.created_by)
        .execute(&mut *self.tx)
        .await;
        match r {
            Ok(done) => {
                let id = i64::try_from(done.last_insert_id())
                    .expect("AUTO_INCREMENT of a BIGINT column fits in i64");
                Ok(Some(InstanceId(id)))
            }
            Err(e) if is_duplicate_on(&e, "workflow_instance_slot") => Ok(None),
            Err(e) => Err(e.into()),
        }
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
            "SELECT id FROM workflow_instance WHERE workflow = ? AND status = 'pending' ORDER BY id LIMIT ?",
        )
        .bind(workflow)
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn instance_transition(&mut self, p: &InstanceTransition) -> Result<Cas> {
        if p.from.is_empty() {
            return Ok(Cas::Stale);
        }
        let mut qb = QueryBuilder::<MySql>::new("UPDATE workflow_instance SET status = ");
        qb.push_bind(p.to);
        qb.push(", started_at = COALESCE(");
        qb.push_bind(p.started_at);
        qb.push(", started_at), ended_at = ");
        qb.push_bind(p.ended_at);
        qb.push(", error = ");
        qb.push_bind(&p.error);
        qb.push(" WHERE id = ");
        qb.push_bind(p.id);
        qb.push(" AND status IN ");
        push_list(&mut qb, p.from.iter().copied());
        let r = qb.build().execute(&mut *self.tx).await?;
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
        let mut qb = QueryBuilder::<MySql>::new(
            "INSERT INTO task (instance_id, node, kind, status, max_attempts, retry_interval_s, timeout_s, queue, \
             priority, created_at) ",
        );
        qb.push_values(tasks, |mut b, t| {
            b.push_bind(t.instance_id)
                .push_bind(&t.node)
                .push_bind(&t.kind)
                .push_bind(TaskStatus::Waiting);
            b.push_bind(t.max_attempts)
                .push_bind(t.retry_interval_s)
                .push_bind(t.timeout_s);
            b.push_bind(&t.queue).push_bind(t.priority).push("NOW(6)");
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
            "UPDATE task SET kill_requested = TRUE WHERE id = ? AND status = 'running'",
        )
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn task_transition_many(&mut self, ids: &[TaskId], p: &TaskTransition) -> Result<u64> {
        if p.from.is_empty() || ids.is_empty() {
            return Ok(0);
        }
        let mut qb = QueryBuilder::<MySql>::new("UPDATE task SET status = ");
        qb.push_bind(p.to);
        qb.push(", run_at = ");
        qb.push_bind(p.run_at);
        qb.push(", exit_code = ");
        qb.push_bind(p.exit_code);
        qb.push(", error = ");
        qb.push_bind(&p.error);
        qb.push(", kill_requested = ");
        qb.push_bind(p.kill_requested);
        qb.push(", max_attempts = COALESCE(");
        qb.push_bind(p.max_attempts);
        qb.push(", max_attempts), ended_at = ");
        qb.push_bind(p.ended_at);
        qb.push(", worker_id = NULL, lease_until = NULL WHERE id IN ");
        push_list(&mut qb, ids.iter().copied());
        qb.push(" AND status IN ");
        push_list(&mut qb, p.from.iter().copied());
        if let Some(f) = &p.fence {
            qb.push(" AND worker_id = ");
            qb.push_bind(&f.worker_id);
            qb.push(" AND attempt = ");
            qb.push_bind(f.attempt);
        }
        let r = qb.build().execute(&mut *self.tx).await?;
        Ok(r.rows_affected())
    }

    async fn token_create(&mut self, p: &NewToken) -> Result<Option<TokenRow>> {
        // a duplicate name fails only this statement; the transaction goes on
        let r = sqlx::query(
            "INSERT INTO api_token (name, role, dir_prefix, secret_hash, created_by, created_at) \
             VALUES (?, ?, ?, ?, ?, NOW(6))",
        )
        .bind(&p.name)
        .bind(p.role)
        .bind(&p.dir_prefix)
        .bind(&p.secret_hash)
        .bind(&p.created_by)
        .execute(&mut *self.tx)
        .await;
        let id = match r {
            Ok(done) => i64::try_from(done.last_insert_id())
                .expect("AUTO_INCREMENT of a BIGINT column fits in i64"),
            Err(e) if is_duplicate_on(&e, "api_token_name") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(sqlx::query_as(TOKEN_GET_BY_ID)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    async fn token_revoke(&mut self, name: &str) -> Result<Cas> {
        let r = sqlx::query(
            "UPDATE api_token SET revoked_at = NOW(6) WHERE name = ? AND revoked_at IS NULL",
        )
        .bind(name)
        .execute(&mut *self.tx)
        .await?;
        sqlx::query(
            "DELETE FROM api_session WHERE token_id IN (SELECT t.id FROM api_token t WHERE t.name = ?)",
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
            "UPDATE workflow SET enabled = ?, updated_at = NOW(6) WHERE name = ? AND enabled <> ?",
        )
        .bind(enabled)
        .bind(name)
        .bind(enabled)
        .execute(&mut *self.tx)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    }

    async fn workflow_upsert(&mut self, w: &WorkflowUpsert) -> Result<()> {
        // A version already recorded keeps its first content, like SQLite's INSERT OR IGNORE.
        sqlx::query(
            "INSERT INTO workflow_version (workflow, version, content_hash, source_xml, definition, created_at) \
             VALUES (?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE version = version",
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6), NOW(6)) \
             ON DUPLICATE KEY UPDATE version = VALUES(version), content_hash = VALUES(content_hash), \
             source_xml = VALUES(source_xml), definition = VALUES(definition), file_path = VALUES(file_path), \
             dir = VALUES(dir), creator = VALUES(creator), description = VALUES(description), \
             mail_level = VALUES(mail_level), mail_receivers = VALUES(mail_receivers), \
             instance_limit = VALUES(instance_limit), enabled = VALUES(enabled), updated_at = VALUES(updated_at)",
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

/// `GET_LOCK` for [`SessionMaster`]. The name carries the database (GET_LOCK names are server-wide).
struct MysqlLock {
    pool: MySqlPool,
    options: MySqlConnectOptions,
    name: String,
}

#[async_trait]
impl SessionLock for MysqlLock {
    type Conn = MySqlConnection;

    async fn connect(&self) -> Result<MySqlConnection> {
        Ok(MySqlConnection::connect_with(&self.options).await?)
    }

    async fn take(&self, conn: &mut MySqlConnection) -> Result<bool> {
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
            .bind(&self.name)
            .fetch_one(conn)
            .await?;
        Ok(got == Some(1))
    }

    async fn holds(&self, conn: &mut MySqlConnection) -> Result<bool> {
        let mine: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
            .bind(&self.name)
            .fetch_one(conn)
            .await?;
        Ok(mine == Some(1))
    }

    async fn unlock(&self, conn: &mut MySqlConnection) -> Result<()> {
        let _: Option<i64> = sqlx::query_scalar("SELECT RELEASE_LOCK(?)")
            .bind(&self.name)
            .fetch_one(conn)
            .await?;
        Ok(())
    }

    async fn bump_epoch(&self, holder: &str) -> Result<i64> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "UPDATE master_lease SET epoch = epoch + 1, holder = ?, lease_until = NULL WHERE name = 'master'",
            )
            .bind(holder)
            .execute(&mut *tx)
            .await?;
            let epoch: i64 =
                sqlx::query_scalar("SELECT epoch FROM master_lease WHERE name = 'master'")
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(epoch)
        })
        .await
    }

    async fn clear_holder(&self, holder: &str) -> Result<()> {
        sqlx::query("UPDATE master_lease SET holder = NULL WHERE name = 'master' AND holder = ?")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

fn log_insert(lines: &[LogLine]) -> QueryBuilder<'_, MySql> {
    // a no-op update, unlike INSERT IGNORE, still reports every other error
    super::common::log_insert(lines, "ON DUPLICATE KEY UPDATE seq = seq")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions() {
        let cases = [
            ("10.11.19-MariaDB-0+deb12u1", true),
            ("10.6.0-MariaDB", true),
            ("10.5.23-MariaDB-log", false),
            ("5.5.5-10.4.1-MariaDB", false),
            ("5.5.5-10.6.12-MariaDB", true),
            ("11.4.2-MariaDB", true),
            ("8.0.36", true),
            ("8.4.0-commercial", true),
            ("5.7.44-log", false),
            ("garbage", false),
        ];
        for (version, ok) in cases {
            assert_eq!(check_server_version(version).is_ok(), ok, "{version}");
        }
    }

    #[test]
    fn lock_names_fit_the_server_limit() {
        assert_eq!(lock_name("akkaflow"), "akkaflow.master.akkaflow");
        let long = lock_name(&"x".repeat(64));
        assert_eq!(long.len(), LOCK_NAME_MAX);
        assert!(long.starts_with("akkaflow.master."));
        assert_ne!(long, lock_name(&"y".repeat(64)));
    }

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
