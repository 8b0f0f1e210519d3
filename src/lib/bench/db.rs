//! The benchmark's own connection to the database: resetting it, and the reads that turn rows into
//! figures (task and instance timestamps). Per-backend SQL, kept here so `store/` stays the engine's.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::error::{Error, Result};
use crate::store::{redact_url, StoreError};

pub(crate) enum Db {
    Sqlite(SqlitePool),
    Mysql(MySqlPool),
    Postgres(PgPool),
}

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    Error::Store(StoreError::Database(e))
}

fn mysql_url(url: &str) -> String {
    match url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => url.to_string(),
    }
}

fn sqlite_file(url: &str) -> String {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    rest.split('?').next().unwrap_or(rest).to_string()
}

/// Drops and recreates the URL's database (SQLite: deletes the file and its WAL).
pub(crate) async fn reset(url: &str) -> Result<()> {
    let unreachable = |e: sqlx::Error| {
        Error::Store(StoreError::Unreachable {
            url: redact_url(url),
            reason: e.to_string(),
        })
    };
    if url.starts_with("sqlite:") {
        let file = sqlite_file(url);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{file}{suffix}"));
        }
    } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
        let opts = MySqlConnectOptions::from_str(&mysql_url(url)).map_err(unreachable)?;
        let name = opts
            .get_database()
            .ok_or_else(|| Error::Config("--reset needs a database name in the URL".into()))?
            .to_string();
        let mut conn = opts.database("").connect().await.map_err(unreachable)?;
        conn.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
            .await
            .map_err(db_err)?;
        conn.execute(
            format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").as_str(),
        )
        .await
        .map_err(db_err)?;
        let _ = conn.close().await;
    } else {
        let opts = PgConnectOptions::from_str(url).map_err(unreachable)?;
        let name = opts
            .get_database()
            .ok_or_else(|| Error::Config("--reset needs a database name in the URL".into()))?
            .to_string();
        let mut conn = opts
            .clone()
            .database("postgres")
            .connect()
            .await
            .map_err(unreachable)?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await
            .map_err(db_err)?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .map_err(db_err)?;
        let _ = conn.close().await;
    }
    Ok(())
}

/// An action task's timestamps.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TaskTimes {
    pub instance_id: i64,
    pub node: String,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// An instance's timestamps.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct InstanceTimes {
    pub id: i64,
    pub status: String,
    pub scheduled_for: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl Db {
    pub(crate) async fn connect(url: &str) -> Result<Db> {
        let unreachable = |e: sqlx::Error| {
            Error::Store(StoreError::Unreachable {
                url: redact_url(url),
                reason: e.to_string(),
            })
        };
        Ok(if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(unreachable)?
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(std::time::Duration::from_secs(30));
            Db::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(opts)
                    .await
                    .map_err(unreachable)?,
            )
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            let opts = MySqlConnectOptions::from_str(&mysql_url(url))
                .map_err(unreachable)?
                .timezone(Some("+00:00".to_string()));
            Db::Mysql(
                MySqlPoolOptions::new()
                    .max_connections(8)
                    // the engine's queue transactions run at READ COMMITTED: the raw loop too
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("SET time_zone = '+00:00'").await?;
                            conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(opts)
                    .await
                    .map_err(unreachable)?,
            )
        } else {
            let opts = PgConnectOptions::from_str(url).map_err(unreachable)?;
            Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .connect_with(opts)
                    .await
                    .map_err(unreachable)?,
            )
        })
    }

    /// Runs statements that return nothing (DDL, bulk inserts); `;`-separated, no values.
    pub(crate) async fn exec(&self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Db::Mysql(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
            Db::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(drop),
        }
        .map_err(db_err)
    }

    /// Refreshes the planner's statistics of the engine's tables. A database the benchmark has
    /// just reset and filled still plans with an empty table's statistics until the server's
    /// own background analysis catches up (PostgreSQL's autovacuum naptime, InnoDB's
    /// recalculation), which makes the figures depend on how long the set-up took.
    pub(crate) async fn analyze(&self) -> Result<()> {
        match self {
            Db::Mysql(_) => self.exec("ANALYZE TABLE workflow_instance, task").await,
            Db::Postgres(_) => self.exec("ANALYZE workflow_instance, task").await,
            Db::Sqlite(_) => self.exec("ANALYZE").await,
        }
    }

    /// One integer from a query without parameters.
    pub(crate) async fn scalar(&self, sql: &str) -> Result<i64> {
        match self {
            Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            Db::Mysql(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        }
        .map_err(db_err)
    }

    /// Action tasks of the workflows whose name starts with `prefix`.
    pub(crate) async fn task_times(&self, prefix: &str) -> Result<Vec<TaskTimes>> {
        let like = format!("{prefix}%");
        match self {
            Db::Sqlite(p) => sqlx::query_as(
                "SELECT t.instance_id, t.node, t.status, t.started_at, t.ended_at FROM task t \
                 JOIN workflow_instance i ON i.id = t.instance_id \
                 WHERE i.workflow LIKE ? AND t.kind = 'shell' ORDER BY t.id",
            )
            .bind(like)
            .fetch_all(p)
            .await,
            Db::Mysql(p) => sqlx::query_as(
                "SELECT t.instance_id, CAST(t.node AS CHAR) AS node, CAST(t.status AS CHAR) AS status, \
                 t.started_at, t.ended_at FROM task t JOIN workflow_instance i ON i.id = t.instance_id \
                 WHERE i.workflow LIKE ? AND t.kind = 'shell' ORDER BY t.id",
            )
            .bind(like)
            .fetch_all(p)
            .await,
            Db::Postgres(p) => sqlx::query_as(
                "SELECT t.instance_id, t.node, t.status, t.started_at, t.ended_at FROM task t \
                 JOIN workflow_instance i ON i.id = t.instance_id \
                 WHERE i.workflow LIKE $1 AND t.kind = 'shell' ORDER BY t.id",
            )
            .bind(like)
            .fetch_all(p)
            .await,
        }
        .map_err(db_err)
    }

    /// Instances of the workflows whose name starts with `prefix` (history excluded).
    pub(crate) async fn instance_times(&self, prefix: &str) -> Result<Vec<InstanceTimes>> {
        let like = format!("{prefix}%");
        match self {
            Db::Sqlite(p) => sqlx::query_as(
                "SELECT id, status, scheduled_for, created_at FROM workflow_instance \
                 WHERE workflow LIKE ? AND created_by <> 'bench:history' ORDER BY id",
            )
            .bind(like)
            .fetch_all(p)
            .await,
            Db::Mysql(p) => sqlx::query_as(
                "SELECT id, CAST(status AS CHAR) AS status, scheduled_for, created_at FROM workflow_instance \
                 WHERE workflow LIKE ? AND created_by <> 'bench:history' ORDER BY id",
            )
            .bind(like)
            .fetch_all(p)
            .await,
            Db::Postgres(p) => sqlx::query_as(
                "SELECT id, status, scheduled_for, created_at FROM workflow_instance \
                 WHERE workflow LIKE $1 AND created_by <> 'bench:history' ORDER BY id",
            )
            .bind(like)
            .fetch_all(p)
            .await,
        }
        .map_err(db_err)
    }

    /// Instances of `prefix%` workflows that have not ended.
    pub(crate) async fn active_instances(&self, prefix: &str) -> Result<i64> {
        let like = format!("{prefix}%");
        let sql = "SELECT COUNT(*) FROM workflow_instance WHERE workflow LIKE ? \
                   AND status IN ('pending', 'running')";
        match self {
            Db::Sqlite(p) => sqlx::query_scalar(sql).bind(like).fetch_one(p).await,
            Db::Mysql(p) => sqlx::query_scalar(sql).bind(like).fetch_one(p).await,
            Db::Postgres(p) => {
                sqlx::query_scalar(&sql.replace('?', "$1"))
                    .bind(like)
                    .fetch_one(p)
                    .await
            }
        }
        .map_err(db_err)
    }

    /// Instances of `prefix%` workflows that exist and have at least one action task started.
    pub(crate) async fn started_instances(&self, prefix: &str) -> Result<(i64, i64)> {
        let like = format!("{prefix}%");
        let sql = "SELECT COUNT(DISTINCT i.id), COUNT(DISTINCT t.instance_id) FROM workflow_instance i \
                   LEFT JOIN task t ON t.instance_id = i.id AND t.kind = 'shell' AND t.started_at IS NOT NULL \
                   WHERE i.workflow LIKE ?";
        match self {
            Db::Sqlite(p) => sqlx::query_as(sql).bind(like).fetch_one(p).await,
            Db::Mysql(p) => sqlx::query_as(sql).bind(like).fetch_one(p).await,
            Db::Postgres(p) => {
                sqlx::query_as(&sql.replace('?', "$1"))
                    .bind(like)
                    .fetch_one(p)
                    .await
            }
        }
        .map_err(db_err)
    }

    /// Live workers among `pids`.
    pub(crate) async fn workers_running(&self, pids: &[i64]) -> Result<i64> {
        if pids.is_empty() {
            return Ok(0);
        }
        let list = pids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // integers we formatted ourselves, not values from outside
        self.scalar(&format!(
            "SELECT COUNT(*) FROM worker WHERE state = 'running' AND pid IN ({list})"
        ))
        .await
    }

    /// Whether one of the schedulers `pids` is master (per the `scheduler` table).
    pub(crate) async fn master_elected(&self, pids: &[i64]) -> Result<bool> {
        if pids.is_empty() {
            return Ok(true);
        }
        let list = pids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        Ok(self
            .scalar(&format!(
                "SELECT COUNT(*) FROM scheduler WHERE state = 'master' AND pid IN ({list})"
            ))
            .await?
            > 0)
    }
}

impl Db {
    /// Another handle on the same pool (for concurrent loops).
    pub(crate) fn clone_handle(&self) -> Db {
        match self {
            Db::Sqlite(p) => Db::Sqlite(p.clone()),
            Db::Mysql(p) => Db::Mysql(p.clone()),
            Db::Postgres(p) => Db::Postgres(p.clone()),
        }
    }
}
