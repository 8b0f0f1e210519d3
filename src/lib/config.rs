//! Configuration: read raw from `akkaflow.toml` (optional), then `AKKAFLOW_*` environment variables,
//! then flags; resolved once into a validated [`Config`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

use crate::alert::{AlertPolicy, ChannelFile, ChannelSettings, SmtpSettings, TlsMode};
use crate::error::{Error, Result};

/// The default database: an SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://akkaflow.db";

/// `akkaflow.toml` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    /// Zone for coordinators that name none (IANA name, default UTC).
    pub timezone: Option<String>,
    /// Where task attempts get their working directories.
    pub work_dir: Option<PathBuf>,
    /// Lines of output kept per attempt before truncation.
    pub log_max_lines: Option<u64>,
    pub lease_ttl_secs: Option<u64>,
    pub heartbeat_secs: Option<u64>,
    pub poll_secs: Option<f64>,
    pub grace_secs: Option<u64>,
    /// How many times a task may be lost with its worker (lease expired) before it fails (default
    /// 3); lost attempts do not spend `retry-times`. A definition's `lost-times` wins.
    pub max_lost_attempts: Option<u32>,
    /// How long file-monitor waits before re-checking that the files are stable (default 5).
    pub file_monitor_recheck_secs: Option<f64>,
    /// Rows per INSERT batch in a transfer (default 1000).
    pub transfer_batch_rows: Option<usize>,
    /// Days ended instances (and their rows) are kept before the master prunes them (default 30;
    /// 0 keeps everything); a workflow's `retention-days` wins.
    pub retention_days: Option<u64>,
    /// How often a worker's host sample goes into its history (`worker_metric`), in seconds
    /// (default 60: one row per worker per minute).
    pub worker_metric_secs: Option<u64>,
    /// Days the workers' host history and the pools' occupancy history are kept before the
    /// master prunes them (default 7).
    pub worker_metric_days: Option<u64>,
    /// How often the master records every pool's occupancy (`pool_sample`), in seconds (default
    /// 60).
    pub pool_history_secs: Option<u64>,
    /// Command lines for `sql` on links this build has no driver for: `ORACLE = "sqlplus ..."`.
    pub sql_clients: Option<std::collections::BTreeMap<crate::definition::DbKind, String>>,
    /// The SMTP server alerts go through; without it alerts wait in the outbox.
    pub smtp: Option<SmtpFile>,
    pub alerts: Option<AlertsFile>,
    /// The URL users reach the HTTP role at, when it is not its listening address (behind a proxy):
    /// its name is accepted in `Host`/`Origin`, and https makes the session cookie `Secure`.
    pub public_url: Option<String>,
    /// `[pool]`: how many database connections each role may hold.
    pub pool: Option<PoolFile>,
    /// `[database]`: how the connections reach the database (a pooler in between).
    pub database: Option<DatabaseFile>,
}

/// `[database]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    /// `database_url` goes through a transaction-pooling PgBouncer (PostgreSQL only): no LISTEN, and
    /// the master lock and migrations, which need a session, go to `lock_url`.
    pub pgbouncer: Option<bool>,
    /// Where the scheduler's master lock (a session advisory lock) and migrations connect: the
    /// server directly, or a session-mode pool. Better in `AKKAFLOW_DATABASE_LOCK_URL`.
    pub lock_url: Option<String>,
}

/// `[pool]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    pub scheduler_max: Option<u32>,
    pub worker_max: Option<u32>,
    pub http_max: Option<u32>,
    /// Commands such as `workflow run` or `status`.
    pub cli_max: Option<u32>,
    pub idle_timeout_secs: Option<f64>,
    /// PostgreSQL workers LISTEN for ready tasks on a connection of their own (default true);
    /// false polls only (behind a transaction-pooling PgBouncer, where LISTEN cannot pass).
    pub listen: Option<bool>,
}

/// How many pooled database connections a process of each role may hold; they open on demand and
/// close after `idle_timeout` unused.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolSettings {
    /// Besides its master lock connection.
    pub scheduler_max: u32,
    /// Besides its LISTEN connection on PostgreSQL.
    pub worker_max: u32,
    pub http_max: u32,
    pub cli_max: u32,
    pub idle_timeout: Duration,
    pub listen: bool,
    /// `--pool-max`: replaces the max of whichever role this process runs.
    pub max_override: Option<u32>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            scheduler_max: 2,
            worker_max: 2,
            http_max: 4,
            cli_max: 2,
            idle_timeout: crate::store::DEFAULT_IDLE_TIMEOUT,
            listen: true,
            max_override: None,
        }
    }
}

/// Which role a process connects as: it picks the pool size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolRole {
    Scheduler,
    Worker,
    Http,
    /// Scheduler, worker and HTTP server sharing one pool: the sum of the three.
    Standalone,
    Cli,
}

impl PoolSettings {
    /// The role's max and the setting that says so (for messages).
    pub fn max_for(&self, role: PoolRole) -> (u32, &'static str) {
        let (n, name) = match role {
            PoolRole::Scheduler => (self.scheduler_max, "[pool] scheduler_max"),
            PoolRole::Worker => (self.worker_max, "[pool] worker_max"),
            PoolRole::Http => (self.http_max, "[pool] http_max"),
            PoolRole::Standalone => (
                self.scheduler_max + self.worker_max + self.http_max,
                "[pool] scheduler_max + worker_max + http_max",
            ),
            PoolRole::Cli => (self.cli_max, "[pool] cli_max"),
        };
        match self.max_override {
            Some(m) => (m, "--pool-max"),
            None => (n, name),
        }
    }
}

fn pool_settings(f: PoolFile) -> Result<PoolSettings> {
    let d = PoolSettings::default();
    let max = |v: Option<u32>, name: &str, default: u32| match v {
        None => Ok(default),
        Some(0) => Err(Error::Config(format!("[pool] {name} must be at least 1"))),
        Some(n) => Ok(n),
    };
    Ok(PoolSettings {
        scheduler_max: max(f.scheduler_max, "scheduler_max", d.scheduler_max)?,
        worker_max: max(f.worker_max, "worker_max", d.worker_max)?,
        http_max: max(f.http_max, "http_max", d.http_max)?,
        cli_max: max(f.cli_max, "cli_max", d.cli_max)?,
        idle_timeout: match f.idle_timeout_secs {
            None => d.idle_timeout,
            Some(s) if s.is_finite() && s > 0.0 => Duration::from_secs_f64(s),
            Some(s) => {
                return Err(Error::Config(format!(
                    "[pool] idle_timeout_secs must be a positive number of seconds, not {s}"
                )))
            }
        },
        listen: f.listen.unwrap_or(d.listen),
        max_override: None,
    })
}

/// `[smtp]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    pub host: String,
    /// Default 25, 587 with `starttls`, 465 with `tls`.
    pub port: Option<u16>,
    /// `none` (default), `starttls` or `tls`.
    pub tls: Option<TlsMode>,
    pub username: Option<String>,
    /// Better in `AKKAFLOW_SMTP_PASSWORD`, which wins over this.
    pub password: Option<String>,
    pub from: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: Option<u64>,
}

/// `[alerts]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    pub retry_failure_threshold: Option<i64>,
    pub log_tail_lines: Option<i64>,
    pub max_attempts: Option<i64>,
    pub backoff_initial_secs: Option<f64>,
    pub backoff_max_secs: Option<f64>,
    pub deliver_interval_secs: Option<f64>,
    /// `[[alerts.channels]]`: chat robots, webhooks and mail lists alerts also go to.
    #[serde(default)]
    pub channels: Vec<ChannelFile>,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub timezone: Tz,
    pub work_dir: PathBuf,
    pub log_max_lines: u64,
    /// How long a task's lease lasts without a heartbeat; a dead worker's task is rescued after it.
    pub lease_ttl: Duration,
    pub heartbeat: Duration,
    /// The longest a worker waits between claims when idle.
    pub poll: Duration,
    /// How long a stopping worker lets running tasks finish before handing them back.
    pub grace: Duration,
    /// Lost attempts (lease expired) that fail a task whose definition sets no `lost-times`.
    pub max_lost_attempts: u32,
    pub executor: crate::executor::ExecutorSettings,
    pub smtp: Option<SmtpSettings>,
    pub alerts: AlertPolicy,
    /// `public_url` (checked when the HTTP role starts).
    pub public_url: Option<String>,
    /// The alert channels with their URLs and secrets (the routes alone are in `alerts`).
    pub channels: Vec<ChannelSettings>,
    /// How long ended instances are kept (`retention_days`); `None` keeps everything.
    pub retention: Option<Duration>,
    /// How often a worker records its host in the history (`worker_metric_secs`).
    pub worker_metric_every: Duration,
    /// How long the workers' host history is kept (`worker_metric_days`).
    pub worker_metric_retention: Duration,
    /// How often the master records the pools' occupancy (`pool_history_secs`).
    pub pool_history_every: Duration,
    pub pool: PoolSettings,
    pub database: DatabaseSettings,
}

/// How the connections reach the database (`[database]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatabaseSettings {
    /// `database_url` goes through a transaction-pooling PgBouncer.
    pub pgbouncer: bool,
    /// The session connection for the master lock and migrations, when not `database_url`.
    pub lock_url: Option<String>,
}

/// `[database]` resolved against `database_url` and `[pool]`: a pooler in transaction mode carries
/// no LISTEN, so it implies `listen = false`, and says so if `listen = true` was asked for.
fn database_settings(
    f: DatabaseFile,
    env_pgbouncer: Option<String>,
    env_lock_url: Option<String>,
    database_url: &str,
    pool: &mut PoolSettings,
    listen_asked: Option<bool>,
) -> Result<DatabaseSettings> {
    let pgbouncer = match env_pgbouncer.as_deref() {
        None => f.pgbouncer.unwrap_or(false),
        Some("1" | "true") => true,
        Some("0" | "false") => false,
        Some(v) => {
            return Err(Error::Config(format!(
                "AKKAFLOW_DATABASE_PGBOUNCER must be true or false, not `{v}`"
            )))
        }
    };
    let lock_url = env_lock_url.or(f.lock_url);
    let postgres = |u: &str| u.starts_with("postgres:") || u.starts_with("postgresql:");
    if (pgbouncer || lock_url.is_some()) && !postgres(database_url) {
        return Err(Error::Config(
            "[database] pgbouncer and lock_url are for PostgreSQL: database_url is not a postgres:// URL".into(),
        ));
    }
    if let Some(u) = lock_url.as_deref().filter(|u| !postgres(u)) {
        return Err(Error::Config(format!(
            "[database] lock_url must be a postgres:// URL, not `{}`",
            crate::store::redact_url(u)
        )));
    }
    if pgbouncer {
        if listen_asked == Some(true) {
            return Err(Error::Config(
                "[pool] listen = true cannot work through a transaction-pooling PgBouncer ([database] pgbouncer = true): LISTEN needs a session; remove it".into(),
            ));
        }
        pool.listen = false;
    }
    Ok(DatabaseSettings {
        pgbouncer,
        lock_url,
    })
}

impl Config {
    /// Opens the configured database (applying migrations) for a command.
    pub async fn connect(&self) -> Result<std::sync::Arc<dyn crate::store::Store>> {
        self.connect_as(PoolRole::Cli).await
    }

    /// Opens the configured database (applying migrations) with the pool of `role`.
    pub async fn connect_as(
        &self,
        role: PoolRole,
    ) -> Result<std::sync::Arc<dyn crate::store::Store>> {
        let (max, setting) = self.pool.max_for(role);
        crate::store::budget::set_pool_setting(setting);
        let opts = crate::store::ConnectOptions {
            max_connections: max,
            idle_timeout: self.pool.idle_timeout,
            pgbouncer: self.database.pgbouncer,
            lock_url: self.database.lock_url.clone(),
            ..crate::store::ConnectOptions::new(self.database_url.clone())
        };
        Ok(crate::store::connect(&opts).await?)
    }

    /// Reads `path` (or `./akkaflow.toml` when it exists), then the environment, then `database_url`.
    pub fn load(path: Option<&Path>, database_url: Option<String>) -> Result<Config> {
        let file = match path {
            Some(p) => read_file(p)?,
            None if Path::new("akkaflow.toml").exists() => read_file(Path::new("akkaflow.toml"))?,
            None => FileConfig::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let database_url = database_url
            .or_else(|| env("AKKAFLOW_DATABASE_URL"))
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        let tz_name = env("AKKAFLOW_TIMEZONE")
            .or(file.timezone)
            .unwrap_or_else(|| "UTC".into());
        let timezone: Tz = tz_name
            .parse()
            .map_err(|_| Error::Config(format!("unknown timezone `{tz_name}`")))?;
        let secs = |v: Option<u64>, d: u64| Duration::from_secs(v.unwrap_or(d));
        let mut cfg = Config {
            database_url,
            timezone,
            work_dir: env("AKKAFLOW_WORK_DIR")
                .map(PathBuf::from)
                .or(file.work_dir)
                .unwrap_or_else(|| "akkaflow-work".into()),
            log_max_lines: file.log_max_lines.unwrap_or(100_000),
            lease_ttl: secs(
                env("AKKAFLOW_LEASE_TTL_SECS")
                    .and_then(|v| v.parse().ok())
                    .or(file.lease_ttl_secs),
                15,
            ),
            heartbeat: secs(file.heartbeat_secs, 3),
            poll: Duration::from_secs_f64(file.poll_secs.unwrap_or(1.0)),
            grace: secs(file.grace_secs, 10),
            max_lost_attempts: file
                .max_lost_attempts
                .unwrap_or(crate::state::DEFAULT_MAX_LOST_ATTEMPTS),
            executor: {
                let d = crate::executor::ExecutorSettings::default();
                crate::executor::ExecutorSettings {
                    file_monitor_recheck: file
                        .file_monitor_recheck_secs
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(Duration::from_secs_f64)
                        .unwrap_or(d.file_monitor_recheck),
                    transfer_batch_rows: file
                        .transfer_batch_rows
                        .unwrap_or(d.transfer_batch_rows)
                        .max(1),
                    sql_clients: sql_clients(file.sql_clients.unwrap_or_default())?,
                }
            },
            smtp: file
                .smtp
                .map(|s| smtp_settings(s, env("AKKAFLOW_SMTP_PASSWORD"))),
            alerts: AlertPolicy::default(),
            public_url: env("AKKAFLOW_PUBLIC_URL").or(file.public_url),
            channels: Vec::new(),
            retention: None,
            worker_metric_every: Duration::from_secs(file.worker_metric_secs.unwrap_or(60).max(1)),
            worker_metric_retention: Duration::from_secs(
                file.worker_metric_days
                    .unwrap_or(7)
                    .max(1)
                    .saturating_mul(86_400),
            ),
            pool_history_every: Duration::from_secs(file.pool_history_secs.unwrap_or(60).max(1)),
            pool: PoolSettings::default(),
            database: DatabaseSettings::default(),
        };
        let pool = file.pool.unwrap_or_default();
        let listen_asked = pool.listen;
        cfg.pool = pool_settings(pool)?;
        cfg.database = database_settings(
            file.database.unwrap_or_default(),
            env("AKKAFLOW_DATABASE_PGBOUNCER"),
            env("AKKAFLOW_DATABASE_LOCK_URL"),
            &cfg.database_url,
            &mut cfg.pool,
            listen_asked,
        )?;
        let retention_days = match env("AKKAFLOW_RETENTION_DAYS") {
            Some(v) => v.parse::<u64>().map_err(|_| {
                Error::Config(format!(
                    "AKKAFLOW_RETENTION_DAYS must be a whole number of days, not `{v}`"
                ))
            })?,
            None => file.retention_days.unwrap_or(30),
        };
        cfg.retention = (retention_days > 0)
            .then(|| Duration::from_secs(retention_days.saturating_mul(86_400)));
        let mut alerts = file.alerts.unwrap_or_default();
        cfg.channels = crate::alert::resolve_channels(std::mem::take(&mut alerts.channels))?;
        cfg.alerts = alert_policy(alerts)?;
        cfg.alerts.routes = cfg.channels.iter().map(|c| c.route.clone()).collect();
        if let Some(smtp) = &cfg.smtp {
            smtp.from_mailbox()?;
        }
        if cfg.max_lost_attempts == 0 {
            return Err(Error::Config(
                "max_lost_attempts must be at least 1 (the loss that fails the task)".into(),
            ));
        }
        if cfg.heartbeat >= cfg.lease_ttl {
            return Err(Error::Config(
                "heartbeat_secs must be shorter than lease_ttl_secs".into(),
            ));
        }
        Ok(cfg)
    }
}

fn sql_clients(
    clients: std::collections::BTreeMap<crate::definition::DbKind, String>,
) -> Result<std::collections::BTreeMap<crate::definition::DbKind, String>> {
    use crate::definition::DbKind;
    for (kind, line) in &clients {
        if !matches!(kind, DbKind::Oracle | DbKind::Hive) {
            return Err(Error::Config(format!(
                "[sql_clients] {}: this build has its own driver for {} links; only ORACLE and HIVE take a client",
                kind.as_str(),
                kind.as_str()
            )));
        }
        if line.trim().is_empty() {
            return Err(Error::Config(format!(
                "[sql_clients] {} is empty",
                kind.as_str()
            )));
        }
    }
    Ok(clients)
}

fn smtp_settings(f: SmtpFile, env_password: Option<String>) -> SmtpSettings {
    let tls = f.tls.unwrap_or(TlsMode::None);
    SmtpSettings {
        port: f.port.unwrap_or(match tls {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }),
        from: f
            .from
            .unwrap_or_else(|| format!("akkaflow <akkaflow@{}>", f.host)),
        host: f.host,
        tls,
        username: f.username.filter(|u| !u.is_empty()),
        password: env_password.or(f.password),
        ca_file: f.ca_file,
        timeout: Duration::from_secs(f.timeout_secs.unwrap_or(30).max(1)),
    }
}

fn alert_policy(f: AlertsFile) -> Result<AlertPolicy> {
    let d = AlertPolicy::default();
    let secs = |v: Option<f64>, name: &str, default: Duration| match v {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(Error::Config(format!(
            "[alerts] {name} must be a positive number of seconds, not {s}"
        ))),
    };
    Ok(AlertPolicy {
        retry_failure_threshold: f
            .retry_failure_threshold
            .unwrap_or(d.retry_failure_threshold)
            .max(0),
        log_tail_lines: f.log_tail_lines.unwrap_or(d.log_tail_lines).clamp(0, 1000),
        max_attempts: f.max_attempts.unwrap_or(d.max_attempts).max(1),
        backoff_initial: secs(
            f.backoff_initial_secs,
            "backoff_initial_secs",
            d.backoff_initial,
        )?,
        backoff_max: secs(f.backoff_max_secs, "backoff_max_secs", d.backoff_max)?,
        deliver_interval: secs(
            f.deliver_interval_secs,
            "deliver_interval_secs",
            d.deliver_interval,
        )?,
        routes: Vec::new(),
    })
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        context: format!("reading {}", path.display()),
        source: e,
    })?;
    toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG: &str = "postgres://u:p@bouncer:6432/akkaflow";

    fn resolve(
        f: DatabaseFile,
        env: (Option<&str>, Option<&str>),
        url: &str,
        listen: Option<bool>,
    ) -> Result<(DatabaseSettings, bool)> {
        let mut pool = PoolSettings::default();
        let d = database_settings(
            f,
            env.0.map(String::from),
            env.1.map(String::from),
            url,
            &mut pool,
            listen,
        )?;
        Ok((d, pool.listen))
    }

    #[test]
    fn pgbouncer_implies_polling_and_takes_a_lock_url() {
        let f = DatabaseFile {
            pgbouncer: Some(true),
            lock_url: Some("postgres://u:p@db:5432/akkaflow".into()),
        };
        let (d, listen) = resolve(f, (None, None), PG, None).unwrap();
        assert!(d.pgbouncer && !listen);
        assert_eq!(
            d.lock_url.as_deref(),
            Some("postgres://u:p@db:5432/akkaflow")
        );
        // the environment wins over the file
        let f = DatabaseFile {
            pgbouncer: Some(true),
            lock_url: Some("postgres://file/x".into()),
        };
        let (d, listen) = resolve(f, (Some("false"), Some("postgres://env/x")), PG, None).unwrap();
        assert!(!d.pgbouncer && listen);
        assert_eq!(d.lock_url.as_deref(), Some("postgres://env/x"));
        // without a pooler nothing changes
        let (d, listen) = resolve(DatabaseFile::default(), (None, None), PG, None).unwrap();
        assert_eq!(d, DatabaseSettings::default());
        assert!(listen);
    }

    #[test]
    fn pgbouncer_settings_that_cannot_work_are_refused() {
        let bouncer = || DatabaseFile {
            pgbouncer: Some(true),
            lock_url: None,
        };
        let err = resolve(bouncer(), (None, None), PG, Some(true)).unwrap_err();
        assert!(err.to_string().contains("listen = true"), "{err}");
        let err = resolve(bouncer(), (None, None), "mysql://u:p@h/db", None).unwrap_err();
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
        let err = resolve(bouncer(), (Some("yes"), None), PG, None).unwrap_err();
        assert!(
            err.to_string().contains("AKKAFLOW_DATABASE_PGBOUNCER"),
            "{err}"
        );
        let f = DatabaseFile {
            pgbouncer: None,
            lock_url: Some("mysql://u:secret@h/db".into()),
        };
        let err = resolve(f, (None, None), PG, None).unwrap_err().to_string();
        assert!(
            err.contains("postgres://") && !err.contains("secret"),
            "{err}"
        );
    }
}
