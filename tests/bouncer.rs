//! PostgreSQL through PgBouncer in transaction pooling mode: a PgBouncer (1.21 or later, for
//! `max_prepared_statements`) started on a free port in front of the test server, and a real fleet
//! whose workers, HTTP role and commands go through it while the scheduler's master lock connects
//! directly (`[database] lock_url`).
//!
//! The binary is `AKKAFLOW_PGBOUNCER` or `pgbouncer` on PATH (`.ci/run` builds 1.24.1 into
//! `/var/cache/akkaflow-ci`); without one, or without `AKKAFLOW_TEST_POSTGRES_URL`, the tests print
//! a skip line, and `AKKAFLOW_REQUIRE_PGBOUNCER=1` turns the missing binary into a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use akkaflow::store::Store;
use sqlx::Connection;

/// Server connections the bouncer opens per database and user: the fleet's whole share.
const POOL_SIZE: u32 = 2;

/// The pgbouncer binary, when there is a usable one.
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("AKKAFLOW_PGBOUNCER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("pgbouncer"));
    let version = Command::new(&path).arg("--version").output();
    let missing = |why: String| {
        if std::env::var("AKKAFLOW_REQUIRE_PGBOUNCER").as_deref() == Ok("1") {
            panic!("AKKAFLOW_REQUIRE_PGBOUNCER=1 but {why} (.ci/run builds PgBouncer 1.24.1 into /var/cache/akkaflow-ci and sets AKKAFLOW_PGBOUNCER)");
        }
        println!("skipped: {why}");
        None
    };
    let out = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => return missing(format!("{} cannot run", path.display())),
    };
    // "PgBouncer 1.24.1": named prepared statements survive transaction pooling from 1.21 on
    let v: Vec<u32> = out
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    if v.len() < 2 || (v[0], v[1]) < (1, 21) {
        return missing(format!(
            "{} is `{}`, older than 1.21 (no max_prepared_statements)",
            path.display(),
            out.lines().next().unwrap_or("")
        ));
    }
    Some(path)
}

/// A PgBouncer in transaction pooling mode in front of the server of `url`, in its own directory.
struct Bouncer {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Bouncer {
    /// Starts one in front of the server `url` names (`postgres://user:pass@host:port/db`).
    async fn start(bin: &Path, url: &str) -> Bouncer {
        let u = url::Url::parse(url).expect("a URL");
        let (user, pass) = (
            u.username().to_string(),
            u.password().unwrap_or("").to_string(),
        );
        let (host, server_port) = (u.host_str().expect("host"), u.port().unwrap_or(5432));
        let dir = tempfile::tempdir().expect("temp dir");
        let port = common::free_port();
        std::fs::write(
            dir.path().join("userlist.txt"),
            format!("\"{user}\" \"{pass}\"\n"),
        )
        .unwrap();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={server_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = plain\n\
             auth_file = {auth}\n\
             admin_users = {user}\n\
             pool_mode = transaction\n\
             default_pool_size = {POOL_SIZE}\n\
             min_pool_size = 0\n\
             reserve_pool_size = 0\n\
             max_client_conn = 500\n\
             max_prepared_statements = 200\n\
             server_reset_query =\n",
            auth = dir.path().join("userlist.txt").display(),
        );
        let ini_path = dir.path().join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).unwrap();
        let mut cmd = Command::new(bin);
        if nix::unistd::geteuid().is_root() {
            // PgBouncer refuses to run as root: it drops to `nobody`, which must read its files
            use std::os::unix::fs::PermissionsExt;
            for p in [dir.path(), &dir.path().join("userlist.txt"), &ini_path] {
                let mode = if p.is_dir() { 0o755 } else { 0o644 };
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            cmd.args(["-u", "nobody"]);
        }
        let log = std::fs::File::create(dir.path().join("pgbouncer.log")).unwrap();
        let child = cmd
            .arg(&ini_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pgbouncer");
        let mut b = Bouncer { port, child, dir };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = b.child.try_wait() {
                panic!("pgbouncer exited ({st}):\n{}", b.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer did not listen on {port}:\n{}",
                b.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        b
    }

    /// `url` with the bouncer's address in place of the server's.
    fn url_for(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh database and a bouncer in front of its server, or `None` (skip) when either is missing.
async fn setup(name: &str) -> Option<(String, Bouncer)> {
    let url =
        akkaflow::testkit::fresh_database_url(akkaflow::store::Backend::Postgres, name).await?;
    let bin = binary()?;
    let bouncer = Bouncer::start(&bin, &url).await;
    Some((url, bouncer))
}

/// A store through the bouncer, as the fleet's processes open theirs (`[database] pgbouncer`,
/// migrations over `lock_url`).
async fn store_through(bouncer: &Bouncer, url: &str, lock_url: &str) -> Arc<dyn Store> {
    akkaflow::store::connect(&akkaflow::store::ConnectOptions {
        pgbouncer: true,
        lock_url: Some(lock_url.to_string()),
        ..akkaflow::store::ConnectOptions::new(bouncer.url_for(url))
    })
    .await
    .expect("the store through the bouncer")
}

/// sqlx prepares every parameterised statement as a named one (Parse+Describe+Sync, then
/// Bind+Execute+Sync): between the two syncs a transaction-pooling bouncer may hand the client
/// another server. Many clients on two server connections must still each get their own answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_statements_survive_transaction_pooling() {
    let Some((url, bouncer)) = setup("bouncer_named_statements").await else {
        return;
    };
    let through = bouncer.url_for(&url);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..8i64 {
        let through = through.clone();
        tasks.spawn(async move {
            let opts: sqlx::postgres::PgConnectOptions = through.parse().unwrap();
            let mut conn = sqlx::PgConnection::connect_with(&opts.extra_float_digits(None))
                .await
                .unwrap();
            for i in 0..200i64 {
                // statements of different shapes, so a mix-up shows as a wrong answer or an error
                let got: i64 = if i % 2 == 0 {
                    sqlx::query_scalar("SELECT $1::bigint * 1000 + $2::bigint")
                        .bind(client)
                        .bind(i)
                        .fetch_one(&mut conn)
                        .await
                        .map_err(|e| format!("client {client} query {i}: {e}"))?
                } else {
                    let (a, b): (i64, String) =
                        sqlx::query_as("SELECT $2::bigint * 1000 + $1::bigint, $3::text")
                            .bind(i)
                            .bind(client)
                            .bind("x")
                            .fetch_one(&mut conn)
                            .await
                            .map_err(|e| format!("client {client} query {i}: {e}"))?;
                    assert_eq!(b, "x");
                    a
                };
                assert_eq!(got, client * 1000 + i, "client {client} query {i}");
            }
            Ok::<(), String>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r.unwrap() {
            panic!("through the bouncer: {e}\n{}", bouncer.log());
        }
    }
}

/// Connections to the test database other than this one and the schedulers' lock sessions (their
/// URL names `application_name=akkaflow-lock`): the bouncer's server connections.
async fn server_connections(observer: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND application_name <> 'akkaflow-lock'",
    )
    .fetch_one(observer)
    .await
    .unwrap()
}

/// The bouncer's client connections to the test database (its admin console's `SHOW POOLS`).
async fn bouncer_clients(admin: &mut sqlx::PgConnection, database: &str) -> i64 {
    use sqlx::Row;
    let rows = sqlx::raw_sql("SHOW POOLS").fetch_all(admin).await.unwrap();
    rows.iter()
        .filter(|r| r.try_get::<String, _>("database").expect("database") == database)
        .map(|r| {
            let n = |c: &str| i64::from(r.try_get::<i32, _>(c).expect("a count"));
            n("cl_active") + n("cl_waiting")
        })
        .sum()
}

/// Two schedulers (their master lock direct), four workers, the HTTP role and every command
/// through a bouncer of two server connections run fork/join workflows to success; the server
/// never sees more than the bouncer's pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_runs_through_pgbouncer_in_transaction_mode() {
    use akkaflow::state::InstanceStatus;
    let Some((url, bouncer)) = setup("bouncer_fleet").await else {
        return;
    };
    let through = bouncer.url_for(&url);
    let mut lock_url = url::Url::parse(&url).unwrap();
    lock_url.set_query(Some("application_name=akkaflow-lock"));
    let mut env = common::Env::at(common::Db::Postgres, url.clone());
    env.fleet_url = Some(through.clone());
    env.config("[database]\npgbouncer = true");
    env.vars
        .push(("AKKAFLOW_DATABASE_LOCK_URL".into(), lock_url.to_string()));
    let workflows = ["fj_a", "fj_b", "fj_c"];
    let files: Vec<(String, String)> = workflows
        .iter()
        .map(|w| {
            let xml = common::fork_join_xml(
                &format!(r#"name="{w}""#),
                4,
                "",
                |i| format!("echo {w} {i}"),
                Some("echo joined"),
            );
            (format!("{w}.xml"), xml)
        })
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, x)| (n.as_str(), x.as_str()))
        .collect();
    // the first command migrates the fresh database, over the lock URL (a session)
    env.sync(&files);
    let mut observer = sqlx::PgConnection::connect(&url).await.unwrap();
    // the test's own store goes through the bouncer too, so every other connection is the bouncer's
    let store = store_through(&bouncer, &url, lock_url.as_str()).await;

    env.spawn("scheduler-1", &["scheduler"]);
    env.spawn("scheduler-2", &["scheduler"]);
    for w in 1..=4 {
        env.spawn(
            &format!("worker-{w}"),
            &["worker", "--name", &format!("w{w}"), "--slots", "4"],
        );
    }
    let port = env.spawn_http();

    let mut ids = Vec::new();
    for round in 0..4 {
        for w in workflows {
            ids.push(common::trigger(&env, w));
        }
        // the HTTP role writes through the bouncer too
        let started: serde_json::Value = common::wait_for(
            Duration::from_secs(60),
            "the HTTP role to trigger",
            || async {
                let mut resp = ureq::post(&format!(
                    "http://127.0.0.1:{port}/api/v1/workflows/fj_a/trigger"
                ))
                .header("Content-Type", "application/json")
                .send("{}")
                .map_err(|e| e.to_string())?;
                resp.body_mut()
                    .read_json::<serde_json::Value>()
                    .map_err(|e| e.to_string())
            },
        )
        .await;
        let id = started["instance_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("round {round}: {started}"));
        ids.push(akkaflow::state::InstanceId(id));
    }

    // sample the server's view while the fleet works, and the bouncer's
    let database = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin_opts: sqlx::postgres::PgConnectOptions = bouncer.url_for(&url).parse().unwrap();
    let mut admin = sqlx::PgConnection::connect_with(
        &admin_opts.database("pgbouncer").extra_float_digits(None),
    )
    .await
    .unwrap();
    let (mut peak, mut clients) = (0, 0);
    for id in &ids {
        loop {
            peak = peak.max(server_connections(&mut observer).await);
            clients = clients.max(bouncer_clients(&mut admin, &database).await);
            let i = store.instance_get(*id).await.unwrap().expect("instance");
            if i.status.is_terminal() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for id in &ids {
        let i = common::ended(&*store, *id).await;
        assert_eq!(
            i.status,
            InstanceStatus::Succeeded,
            "instance {id}: {:?}\n{}",
            i.error,
            env.log("worker-1")
        );
    }
    let masters = store
        .scheduler_list()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.state == "master")
        .count();
    assert_eq!(
        masters, 1,
        "one master, elected over the direct lock sessions"
    );
    let check = env.ok(&["check"]);
    println!("akkaflow check: {check}");
    println!(
        "through the bouncer: at most {clients} client connections, {peak} server connections (pool size {POOL_SIZE})"
    );
    assert!(
        clients > POOL_SIZE as i64,
        "the fleet had {clients} client connections"
    );
    assert!(
        peak >= 1 && peak <= POOL_SIZE as i64,
        "the server saw {peak} connections from a bouncer whose pool is {POOL_SIZE}"
    );
    let invariants = store
        .invariant_check(store.now().await.unwrap() - chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert!(invariants.is_empty(), "invariants broken: {invariants:?}");
    for label in ["scheduler-1", "scheduler-2", "worker-1", "http"] {
        let log = env.log(label);
        assert!(
            !log.contains("prepared statement"),
            "{label} met a prepared statement error:\n{log}"
        );
    }
}

/// What needs a session says so instead of misbehaving: migrations and the master lock refuse to
/// run through a transaction-pooling bouncer without a `lock_url`; everything else needs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_master_lock_and_migrations_need_a_lock_url() {
    let Some((url, bouncer)) = setup("bouncer_lock_url").await else {
        return;
    };
    let mut env = common::Env::at(common::Db::Postgres, url.clone());
    env.fleet_url = Some(bouncer.url_for(&url));
    env.config("[database]\npgbouncer = true");
    env.write(
        "xmlconfig/one.xml",
        &common::fork_join_xml(r#"name="one""#, 2, "", |i| format!("echo {i}"), None),
    );
    // a fresh database needs migrations: not through the bouncer
    let out = env.run(&["sync", "xmlconfig"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("lock_url"), "{err}");
    // with a lock URL the command migrates over it
    env.vars
        .push(("AKKAFLOW_DATABASE_LOCK_URL".into(), url.clone()));
    env.ok(&["sync", "xmlconfig"]);
    env.vars.clear();
    // migrated: commands and workers need no session
    let id = common::trigger(&env, "one");
    let w = env.spawn("worker", &["worker"]);
    let store = env.store().await;
    let i = common::ended(&*store, id).await;
    assert_eq!(i.status, akkaflow::state::InstanceStatus::Succeeded);
    env.stop(w, nix::sys::signal::Signal::SIGTERM);
    // a scheduler without one stops at once, naming the setting
    let mut scheduler = Command::new(common::BIN)
        .arg("scheduler")
        .current_dir(env.path())
        .env("AKKAFLOW_DATABASE_URL", bouncer.url_for(&url))
        .env_remove("AKKAFLOW_DATABASE_LOCK_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = scheduler.try_wait().unwrap() {
            break st;
        }
        if std::time::Instant::now() > deadline {
            let _ = scheduler.kill();
            panic!(
                "a scheduler without a lock_url kept running through a transaction-pooling bouncer"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut scheduler.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("lock_url"), "{err}");
}

/// Processes killed mid-work leave the bouncer's server connections usable: with the master
/// scheduler and a worker running tasks both SIGKILLed, the standby takes the lock over its own
/// session, the lost tasks are rescued and run elsewhere, and every instance succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_and_worker_through_pgbouncer_lose_nothing() {
    use akkaflow::state::{InstanceStatus, TaskStatus};
    use nix::sys::signal::Signal;
    let Some((url, bouncer)) = setup("bouncer_kills").await else {
        return;
    };
    let through = bouncer.url_for(&url);
    let mut env = common::Env::at(common::Db::Postgres, url.clone());
    env.fleet_url = Some(through.clone());
    env.config("[database]\npgbouncer = true");
    env.vars
        .push(("AKKAFLOW_DATABASE_LOCK_URL".into(), url.clone()));
    let xml = common::fork_join_xml(
        r#"name="kj""#,
        4,
        "",
        |i| format!("sleep 2; echo {i}"),
        Some("echo joined"),
    );
    env.sync(&[("kj.xml", &xml)]);
    let store = store_through(&bouncer, &url, &url).await;
    let schedulers = [
        env.spawn("scheduler-1", &["scheduler"]),
        env.spawn("scheduler-2", &["scheduler"]),
    ];
    let w1 = env.spawn("worker-1", &["worker", "--name", "w1", "--slots", "4"]);
    let ids: Vec<_> = (0..3).map(|_| common::trigger(&env, "kj")).collect();
    let master = |not: Option<i64>| {
        let store = store.clone();
        async move {
            let rows = store.scheduler_list().await.map_err(|e| e.to_string())?;
            rows.iter()
                .find(|r| r.state == "master" && Some(r.pid) != not)
                .map(|r| r.pid)
                .ok_or_else(|| format!("{rows:?}"))
        }
    };
    let first = common::wait_for(Duration::from_secs(90), "a master", || master(None)).await;
    common::wait_for(Duration::from_secs(90), "w1 to run tasks", || async {
        let mut running = 0;
        for id in &ids {
            running += store
                .task_list(*id)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .filter(|t| t.status == TaskStatus::Running)
                .count();
        }
        if running > 0 {
            Ok(())
        } else {
            Err("none running".to_string())
        }
    })
    .await;
    let victim = schedulers
        .into_iter()
        .find(|&i| i64::from(env.pid(i)) == first)
        .expect("the master is one of ours");
    env.stop(victim, Signal::SIGKILL);
    env.stop(w1, Signal::SIGKILL);
    env.spawn("worker-2", &["worker", "--name", "w2", "--slots", "4"]);
    let second = common::wait_for(Duration::from_secs(90), "a new master", || {
        master(Some(first))
    })
    .await;
    assert_ne!(first, second);
    for id in &ids {
        let i = common::ended(&*store, *id).await;
        assert_eq!(
            i.status,
            InstanceStatus::Succeeded,
            "instance {id}: {:?}",
            i.error
        );
    }
    env.ok(&["check"]);
}
