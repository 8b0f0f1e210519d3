//! Test helpers: a fresh store per test on every backend, and `wait_for`. Not part of the API.
//!
//! Each test gets a database of its own: a new SQLite file, or a new MySQL/PostgreSQL database named
//! `akkaflow_t_<name>_<pid>_<n>` created on the server that `AKKAFLOW_TEST_MYSQL_URL` /
//! `AKKAFLOW_TEST_POSTGRES_URL` name (a user allowed to create databases). A missing URL skips that
//! backend with one printed line, unless `AKKAFLOW_REQUIRE_BACKENDS` (comma list: `mysql,postgres`)
//! names it; a URL whose server cannot be reached always fails the test, never skips it.
//!
//! Databases and files are left behind for inspection while their test process lives; the first test
//! of a later process drops those whose process is gone.

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor};
use tokio::sync::OnceCell;

use crate::store::{self, redact_url, Backend, Store};

/// Prefix of every database and file the testkit creates.
const PREFIX: &str = "akkaflow_t_";
/// MySQL allows 64 characters in a database name and PostgreSQL 63: keep the test name part short.
const NAME_MAX: usize = 32;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static REAPED_MYSQL: OnceCell<()> = OnceCell::const_new();
static REAPED_POSTGRES: OnceCell<()> = OnceCell::const_new();
static REAPED_SQLITE: OnceCell<()> = OnceCell::const_new();

/// A store on a new SQLite file (never `:memory:`: each pooled connection would get its own empty
/// database). Always available.
pub async fn open_sqlite(name: &str) -> Option<Arc<dyn Store>> {
    open(Backend::Sqlite, name).await
}

/// A store on a new MySQL/MariaDB database, or `None` (with a printed line) when the backend is not
/// configured and not required.
pub async fn open_mysql(name: &str) -> Option<Arc<dyn Store>> {
    open(Backend::Mysql, name).await
}

/// A store on a new PostgreSQL database, or `None` (with a printed line) when the backend is not
/// configured and not required.
pub async fn open_postgres(name: &str) -> Option<Arc<dyn Store>> {
    open(Backend::Postgres, name).await
}

async fn open(backend: Backend, name: &str) -> Option<Arc<dyn Store>> {
    let url = fresh_database_url(backend, name).await?;
    let store = store::connect(&store::ConnectOptions::new(url.clone()))
        .await
        .unwrap_or_else(|e| panic!("cannot open the test store at {}: {e}", redact_url(&url)));
    Some(store)
}

/// Creates a fresh, empty database for `backend` and returns its URL, for tests that start the real
/// binary as separate processes. `None` (with a printed line) when the backend is not configured and
/// not required.
pub async fn fresh_database_url(backend: Backend, name: &str) -> Option<String> {
    let db = database_name(name);
    match backend {
        Backend::Sqlite => {
            REAPED_SQLITE.get_or_init(reap_sqlite).await;
            let dir = sqlite_dir(std::process::id());
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            let file = dir.join(format!("{db}.db"));
            let _ = std::fs::remove_file(&file);
            Some(format!("sqlite://{}", file.display()))
        }
        Backend::Mysql => {
            let server = server_url(backend)?;
            let mut admin = admin::<MySqlConnectOptions>(backend, &server).await;
            let conn = &mut admin;
            REAPED_MYSQL.get_or_init(move || reap_mysql(conn)).await;
            drop_mysql(&mut admin, &db).await;
            admin
                .execute(
                    format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                        .as_str(),
                )
                .await
                .unwrap_or_else(|e| panic!("cannot create database {db}: {e}"));
            let _ = admin.close().await;
            Some(with_database(&server, &db))
        }
        Backend::Postgres => {
            let server = server_url(backend)?;
            let mut admin = admin::<PgConnectOptions>(backend, &server).await;
            let conn = &mut admin;
            REAPED_POSTGRES
                .get_or_init(move || reap_postgres(conn))
                .await;
            drop_postgres(&mut admin, &db).await;
            admin
                .execute(format!("CREATE DATABASE \"{db}\"").as_str())
                .await
                .unwrap_or_else(|e| panic!("cannot create database {db}: {e}"));
            let _ = admin.close().await;
            Some(with_database(&server, &db))
        }
    }
}

/// Polls `check` every 50 ms until it returns `Ok`, and returns that value. `Err(state)` means "not
/// yet"; on timeout this panics with the last state seen.
///
/// ```ignore
/// let task = wait_for(Duration::from_secs(10), || async {
///     let t = store.task_get(id).await.unwrap().unwrap();
///     if t.status == TaskStatus::Succeeded { Ok(t) } else { Err(t.status) }
/// }).await;
/// ```
pub async fn wait_for<T, S, F, Fut>(timeout: Duration, mut check: F) -> T
where
    S: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(state) if Instant::now() >= deadline => {
                panic!("condition not met within {timeout:?}; last state seen: {state:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `akkaflow_t_<name>_<pid>_<n>`, lowercase, safe as an identifier and a file name.
fn database_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(NAME_MAX)
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{clean}_{}_{n}", std::process::id())
}

/// Whether the test process that created `db` has ended (the pid sits second from the right).
fn owner_is_gone(db: &str) -> bool {
    let Some(pid) = db.rsplit('_').nth(1).and_then(|p| p.parse::<i32>().ok()) else {
        return false;
    };
    if pid == std::process::id() as i32 {
        return false;
    }
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// The server URL for `backend`, or `None` after printing why it is skipped; panics when
/// `AKKAFLOW_REQUIRE_BACKENDS` names the backend.
fn server_url(backend: Backend) -> Option<String> {
    let var = match backend {
        Backend::Mysql => "AKKAFLOW_TEST_MYSQL_URL",
        Backend::Postgres => "AKKAFLOW_TEST_POSTGRES_URL",
        Backend::Sqlite => return None,
    };
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ if required(backend) => panic!(
            "AKKAFLOW_REQUIRE_BACKENDS names {} but {var} is not set",
            backend.as_str()
        ),
        _ => {
            println!("skipped: {} (set {var})", backend.as_str());
            None
        }
    }
}

fn required(backend: Backend) -> bool {
    std::env::var("AKKAFLOW_REQUIRE_BACKENDS")
        .unwrap_or_default()
        .split(',')
        .any(|b| b.trim().eq_ignore_ascii_case(backend.as_str()))
}

/// A connection to the test server of `backend`; panics when it cannot be reached, so a configured
/// backend fails instead of skipping.
async fn admin<O>(backend: Backend, server: &str) -> O::Connection
where
    O: sqlx::ConnectOptions,
    O::Connection: Sized,
{
    let name = backend.as_str();
    let opts = O::from_str(server)
        .unwrap_or_else(|e| panic!("bad {name} test URL {}: {e}", redact_url(server)));
    match tokio::time::timeout(CONNECT_TIMEOUT, opts.connect()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "cannot reach the {name} test server {}: {e}",
            redact_url(server)
        ),
        Err(_) => panic!(
            "no answer from the {name} test server {} within {CONNECT_TIMEOUT:?}",
            redact_url(server)
        ),
    }
}

async fn reap_mysql(admin: &mut sqlx::MySqlConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
         WHERE SCHEMA_NAME LIKE 'akkaflow\\_t\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .expect("list test databases");
    for stale in names.iter().filter(|n| owner_is_gone(n)) {
        drop_mysql(admin, stale).await;
    }
}

async fn reap_postgres(admin: &mut sqlx::PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'akkaflow\\_t\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .expect("list test databases");
    for stale in names.iter().filter(|n| owner_is_gone(n)) {
        drop_postgres(admin, stale).await;
    }
}

async fn drop_mysql(admin: &mut sqlx::MySqlConnection, db: &str) {
    admin
        .execute(format!("DROP DATABASE IF EXISTS `{db}`").as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot drop database {db}: {e}"));
}

async fn drop_postgres(admin: &mut sqlx::PgConnection, db: &str) {
    admin
        .execute(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)").as_str())
        .await
        .unwrap_or_else(|e| panic!("cannot drop database {db}: {e}"));
}

/// `url` with its path (the database) replaced by `db`, keeping user, host and query.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

fn sqlite_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("{PREFIX}{pid}"))
}

async fn reap_sqlite() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `akkaflow_t_<pid>`: give it the shape owner_is_gone reads.
        if name.starts_with(PREFIX) && owner_is_gone(&format!("{name}_0")) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let cases = [
            (
                "mysql://u:p@127.0.0.1:3306/mysql",
                "mysql://u:p@127.0.0.1:3306/db",
            ),
            (
                "mysql://u:p@127.0.0.1:3306",
                "mysql://u:p@127.0.0.1:3306/db",
            ),
            (
                "postgres://u:p@h/postgres?sslmode=disable",
                "postgres://u:p@h/db?sslmode=disable",
            ),
            ("postgres://h:5432/", "postgres://h:5432/db"),
        ];
        for (server, want) in cases {
            assert_eq!(with_database(server, "db"), want, "{server}");
        }
    }

    #[test]
    fn database_names_are_short_identifiers() {
        let name = database_name("Stale worker-cannot complete a rescued task, really, truly");
        assert!(name.len() <= 63, "{name}");
        assert!(name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert!(!owner_is_gone(&name), "this process is alive");
    }
}
