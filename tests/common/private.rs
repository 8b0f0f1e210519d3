//! A database server of a test's own, for tests that restart a server or change its settings
//! (the shared servers are used by every other test at once and are never restarted or
//! reconfigured). PostgreSQL: `initdb` into a temporary directory and `pg_ctl` on a free port
//! (binaries in `AKKAFLOW_PG_BIN`, default `/usr/lib/postgresql/15/bin`); MariaDB:
//! `mariadb-install-db` and `mariadbd` on a free port and socket. Missing binaries skip with a
//! printed line, unless `AKKAFLOW_REQUIRE_BACKENDS` names the backend.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{free_port, wait_for, Db};

const LONG: Duration = Duration::from_secs(120);

pub fn required(backend: &str) -> bool {
    std::env::var("AKKAFLOW_REQUIRE_BACKENDS")
        .unwrap_or_default()
        .split(',')
        .any(|b| b.trim().eq_ignore_ascii_case(backend))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Runs a command to its end; panics with its output when it fails.
pub fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A database server of this test's own, in a temporary directory, removed when dropped.
pub struct PrivateServer {
    db: Db,
    dir: tempfile::TempDir,
    port: u16,
    /// PostgreSQL's bin directory.
    pg_bin: PathBuf,
    /// The running `mariadbd`.
    mariadbd: Option<Child>,
    restarts: usize,
    /// The server's `max_connections`, when the test sets it.
    max_connections: Option<u32>,
}

impl PrivateServer {
    /// A new, stopped server; `None` (after a printed line) when its binaries are missing.
    pub fn new(db: Db) -> Option<PrivateServer> {
        let dir = tempfile::Builder::new()
            .prefix("akkaflow-private-db")
            .tempdir()
            .expect("temp dir");
        let pg_bin = PathBuf::from(
            std::env::var("AKKAFLOW_PG_BIN")
                .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        let (name, present) = match db {
            Db::Postgres => ("postgres", pg_bin.join("initdb").exists()),
            Db::Mysql => ("mysql", which("mariadbd").is_some()),
            Db::Sqlite => unreachable!("SQLite has no server"),
        };
        if !present {
            assert!(
                !required(name),
                "AKKAFLOW_REQUIRE_BACKENDS names {name} but its server binaries are missing"
            );
            println!("skipped: {name} (no server binaries for a private server)");
            return None;
        }
        let server = PrivateServer {
            db,
            dir,
            port: free_port(),
            pg_bin,
            mariadbd: None,
            restarts: 0,
            max_connections: None,
        };
        server.init();
        Some(server)
    }

    /// Starts the server with this `max_connections`.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `pg_ctl`/`initdb` as the `postgres` user when we are root (PostgreSQL refuses root).
    fn pg(&self, tool: &str) -> Command {
        let bin = self.pg_bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin);
            c
        } else {
            Command::new(bin)
        }
    }

    fn init(&self) {
        match self.db {
            Db::Postgres => {
                if is_root() {
                    let uid = nix::unistd::User::from_name("postgres")
                        .expect("user lookup")
                        .expect("a postgres user");
                    std::os::unix::fs::chown(self.path(), Some(uid.uid.as_raw()), None)
                        .expect("chown the private server's directory");
                }
                run(
                    self.pg("initdb")
                        .args(["-U", "akkaflow", "--auth=trust", "-E", "UTF8", "-D"])
                        .arg(self.path().join("data"))
                        .stdout(Stdio::null()),
                    "initdb",
                );
            }
            Db::Mysql => {
                let mut c = Command::new(which("mariadb-install-db").expect("mariadb-install-db"));
                c.arg("--no-defaults")
                    .arg(format!("--datadir={}", self.path().join("data").display()))
                    .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
                if is_root() {
                    c.arg("--user=root");
                }
                run(c.stdout(Stdio::null()), "mariadb-install-db");
            }
            Db::Sqlite => unreachable!(),
        }
    }

    /// Starts the server and waits until it accepts connections; creates the user and database
    /// on the first start.
    pub async fn start(&mut self) {
        match self.db {
            Db::Postgres => run(
                self.pg("pg_ctl")
                    .arg("-D")
                    .arg(self.path().join("data"))
                    .arg("-o")
                    .arg(format!(
                        "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}",
                        self.port,
                        self.path().display(),
                        self.max_connections
                            .map(|n| format!(" -c max_connections={n}"))
                            .unwrap_or_default()
                    ))
                    .arg("-l")
                    .arg(self.path().join("server.log"))
                    .args(["-w", "start"])
                    .stdout(Stdio::null()),
                "pg_ctl start",
            ),
            Db::Mysql => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.path().join("server.log"))
                    .expect("server log");
                let mut c = Command::new(which("mariadbd").expect("mariadbd"));
                c.arg("--no-defaults")
                    .arg(format!("--datadir={}", self.path().join("data").display()))
                    .arg(format!("--port={}", self.port))
                    .arg(format!(
                        "--socket={}",
                        self.path().join("mysqld.sock").display()
                    ))
                    .arg(format!(
                        "--pid-file={}",
                        self.path().join("mysqld.pid").display()
                    ))
                    .args([
                        "--bind-address=127.0.0.1",
                        "--skip-name-resolve",
                        "--skip-log-bin",
                        "--innodb-buffer-pool-size=64M",
                        "--innodb-flush-log-at-trx-commit=2",
                    ])
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("dup"))
                    .stderr(log);
                if let Some(n) = self.max_connections {
                    c.arg(format!("--max-connections={n}"));
                }
                if is_root() {
                    c.arg("--user=root");
                }
                self.mariadbd = Some(c.spawn().expect("start mariadbd"));
                let root = format!("mysql://root@127.0.0.1:{}/mysql", self.port);
                let mut conn = wait_for(
                    LONG,
                    "the private MariaDB to accept connections",
                    || async {
                        <sqlx::MySqlConnection as sqlx::Connection>::connect(&root)
                            .await
                            .map_err(|e| e.to_string())
                    },
                )
                .await;
                if self.restarts == 0 {
                    for sql in [
                        "CREATE USER IF NOT EXISTS 'akkaflow'@'%' IDENTIFIED BY 'akkaflow'",
                        "GRANT ALL ON *.* TO 'akkaflow'@'%'",
                        "CREATE DATABASE IF NOT EXISTS akkaflow CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                    ] {
                        sqlx::Executor::execute(&mut conn, sql)
                            .await
                            .unwrap_or_else(|e| panic!("{sql}: {e}"));
                    }
                }
                let _ = sqlx::Connection::close(conn).await;
            }
            Db::Sqlite => unreachable!(),
        }
    }

    /// Stops the server hard: PostgreSQL's immediate shutdown (no checkpoint, crash recovery at
    /// the next start); MariaDB SIGKILLed on the first restart, `SHUTDOWN` on the next.
    pub async fn stop(&mut self) {
        match self.db {
            Db::Postgres => run(
                self.pg("pg_ctl")
                    .arg("-D")
                    .arg(self.path().join("data"))
                    .args(["-m", "immediate", "-w", "stop"])
                    .stdout(Stdio::null()),
                "pg_ctl stop -m immediate",
            ),
            Db::Mysql => {
                let mut child = self.mariadbd.take().expect("mariadbd running");
                if self.restarts % 2 == 0 {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(child.id() as i32),
                        Signal::SIGKILL,
                    );
                } else {
                    let root = format!("mysql://root@127.0.0.1:{}/mysql", self.port);
                    let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&root)
                        .await
                        .expect("root connection");
                    let _ = sqlx::Executor::execute(&mut conn, "SHUTDOWN").await;
                }
                let _ = child.wait();
            }
            Db::Sqlite => unreachable!(),
        }
    }

    /// Stops the server, keeps it down for `down`, starts it again; returns how long it was away.
    pub async fn restart(&mut self, down: Duration) -> Duration {
        let t = Instant::now();
        self.stop().await;
        tokio::time::sleep(down).await;
        self.restarts += 1;
        self.start().await;
        t.elapsed()
    }

    /// A superuser's URL (MariaDB root, who gets one connection beyond `max_connections`;
    /// PostgreSQL's initdb user, who may use the slots reserved to superusers).
    pub fn admin_url(&self) -> String {
        match self.db {
            Db::Postgres => format!("postgres://akkaflow@127.0.0.1:{}/postgres", self.port),
            Db::Mysql => format!("mysql://root@127.0.0.1:{}/mysql", self.port),
            Db::Sqlite => unreachable!(),
        }
    }

    /// A user without superuser rights, so without a connection beyond `max_connections`, and a
    /// database of its own; created on the first call.
    pub async fn limited_url(&self) -> String {
        let admin = self.admin_url();
        let statements: &[&str] = match self.db {
            Db::Postgres => &[
                "CREATE ROLE af LOGIN PASSWORD 'af'",
                "CREATE DATABASE af OWNER af",
            ],
            Db::Mysql => &[
                "CREATE DATABASE IF NOT EXISTS af CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                "CREATE USER IF NOT EXISTS 'af'@'%' IDENTIFIED BY 'af'",
                "GRANT ALL ON af.* TO 'af'@'%'",
            ],
            Db::Sqlite => unreachable!(),
        };
        for sql in statements {
            let done = match self.db {
                Db::Postgres => {
                    let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                        .await
                        .expect("admin connection");
                    sqlx::Executor::execute(&mut c, *sql).await.map(drop)
                }
                _ => {
                    let mut c = <sqlx::MySqlConnection as sqlx::Connection>::connect(&admin)
                        .await
                        .expect("admin connection");
                    sqlx::Executor::execute(&mut c, *sql).await.map(drop)
                }
            };
            if let Err(e) = done {
                assert!(e.to_string().contains("already exists"), "{sql}: {e}");
            }
        }
        match self.db {
            Db::Postgres => format!("postgres://af:af@127.0.0.1:{}/af", self.port),
            _ => format!("mysql://af:af@127.0.0.1:{}/af", self.port),
        }
    }

    /// What the fleet connects with.
    pub fn url(&self) -> String {
        match self.db {
            Db::Postgres => format!(
                "postgres://akkaflow:akkaflow@127.0.0.1:{}/postgres",
                self.port
            ),
            Db::Mysql => format!("mysql://akkaflow:akkaflow@127.0.0.1:{}/akkaflow", self.port),
            Db::Sqlite => unreachable!(),
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        match self.db {
            Db::Postgres => {
                let _ = self
                    .pg("pg_ctl")
                    .arg("-D")
                    .arg(self.path().join("data"))
                    .args(["-m", "immediate", "stop"])
                    .output();
            }
            Db::Mysql => {
                if let Some(mut child) = self.mariadbd.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            Db::Sqlite => {}
        }
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join(name))
        .find(|p| p.exists())
}
