//! The end-to-end harness: a temporary directory, a fresh database, and the real `akkaflow` binary
//! started as separate processes (schedulers, workers) or run as one-shot commands.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use akkaflow::state::InstanceId;
use akkaflow::store::{self, ConnectOptions, InstanceRow, Store, TaskRow};

pub mod private;

pub const BIN: &str = env!("CARGO_BIN_EXE_akkaflow");

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Mysql,
    Postgres,
}

/// Settings that make leases and polls short enough for tests (never timing assertions).
pub const TEST_CONFIG: &str =
    "lease_ttl_secs = 3\nheartbeat_secs = 1\npoll_secs = 0.2\ngrace_secs = 3\n";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub db: Db,
    /// Where the processes connect, when it is not `url` (a proxy in front of the database).
    pub fleet_url: Option<String>,
    /// Environment variables every command and role gets (secrets passed the way operators do).
    pub vars: Vec<(String, String)>,
    children: Vec<Option<Child>>,
}

impl Env {
    /// A fresh environment, or `None` when the backend is not configured (the testkit says why).
    pub async fn new(db: Db, name: &str) -> Option<Env> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match db {
            Db::Sqlite => format!("sqlite://{}", dir.path().join("akkaflow.db").display()),
            Db::Mysql => akkaflow::testkit::fresh_database_url(store::Backend::Mysql, name).await?,
            Db::Postgres => {
                akkaflow::testkit::fresh_database_url(store::Backend::Postgres, name).await?
            }
        };
        Some(Env::in_dir(dir, db, url))
    }

    /// An environment on a database the test provides itself (a private server it restarts).
    pub fn at(db: Db, url: String) -> Env {
        Env::in_dir(tempfile::tempdir().expect("temp dir"), db, url)
    }

    fn in_dir(dir: tempfile::TempDir, db: Db, url: String) -> Env {
        std::fs::write(dir.path().join("akkaflow.toml"), TEST_CONFIG).expect("write config");
        std::fs::create_dir_all(dir.path().join("xmlconfig")).expect("mkdir");
        Env {
            dir,
            url,
            db,
            fleet_url: None,
            vars: Vec::new(),
            children: Vec::new(),
        }
    }

    /// An environment on a database the test made itself (a private server).
    pub fn with_url(db: Db, url: String) -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("akkaflow.toml"), TEST_CONFIG).expect("write config");
        std::fs::create_dir_all(dir.path().join("xmlconfig")).expect("mkdir");
        Env {
            dir,
            url,
            db,
            fleet_url: None,
            vars: Vec::new(),
            children: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds settings to the environment's `akkaflow.toml` (before roles start).
    pub fn config(&self, extra: &str) {
        let p = self.path().join("akkaflow.toml");
        let mut text = std::fs::read_to_string(&p).expect("read config");
        text.push_str(extra);
        text.push('\n');
        std::fs::write(&p, text).expect("write config");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(self.path())
            .env(
                "AKKAFLOW_DATABASE_URL",
                self.fleet_url.as_deref().unwrap_or(&self.url),
            )
            .env("AKKAFLOW_LOG", "info")
            .env_remove("AKKAFLOW_CONFIG")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    /// Runs a one-shot command to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run akkaflow")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "akkaflow {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running role; its output goes to `<dir>/<label>.log`.
    pub fn spawn(&mut self, label: &str, args: &[&str]) -> usize {
        let url = self.fleet_url.clone().unwrap_or_else(|| self.url.clone());
        self.spawn_as(label, args, &url)
    }

    /// Starts the http role with auth off on a free loopback port (label `http`); its port.
    pub fn spawn_http(&mut self) -> u16 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        self.spawn("http", &["http", "--no-auth", "--listen", &listen]);
        port
    }

    /// Starts a long-running role connecting with `url` (another database user, say).
    pub fn spawn_as(&mut self, label: &str, args: &[&str], url: &str) -> usize {
        let log =
            std::fs::File::create(self.path().join(format!("{label}.log"))).expect("log file");
        let child = self
            .command(args)
            .env("AKKAFLOW_DATABASE_URL", url)
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn akkaflow");
        self.children.push(Some(child));
        self.children.len() - 1
    }

    pub fn pid(&self, idx: usize) -> i32 {
        self.children[idx].as_ref().expect("alive").id() as i32
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop(&mut self, idx: usize, signal: nix::sys::signal::Signal) {
        if let Some(mut child) = self.children[idx].take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
            let _ = child.wait();
        }
    }

    pub fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.path().join(format!("{label}.log"))).unwrap_or_default()
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        p
    }

    /// Writes workflow files under `xmlconfig/` and syncs them.
    pub fn sync(&self, files: &[(&str, &str)]) {
        for (name, xml) in files {
            self.write(&format!("xmlconfig/{name}"), xml);
        }
        self.ok(&["sync", "xmlconfig"]);
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        store::connect(&ConnectOptions::new(self.url.clone()))
            .await
            .expect("connect to the test database")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 50 ms until it returns `Some`; on timeout panics with the last state seen.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(state) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last state: {state}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A fork/join workflow: `<work-flow {head}>` forks into `width` shell actions `t0`, `t1`, … (each
/// with the attributes `attrs` and the command `command(i)`), joins them, then runs the action
/// `last` with that command when given, and ends.
pub fn fork_join_xml(
    head: &str,
    width: usize,
    attrs: &str,
    command: impl Fn(usize) -> String,
    last: Option<&str>,
) -> String {
    let mut xml = format!(r#"<work-flow {head}><start name="start" to="f"/><fork name="f">"#);
    for i in 0..width {
        xml.push_str(&format!(r#"<path to="t{i}"/>"#));
    }
    xml.push_str("</fork>");
    for i in 0..width {
        xml.push_str(&format!(
            r#"<action name="t{i}" {attrs}><shell><command>{}</command></shell><ok to="j"/></action>"#,
            command(i)
        ));
    }
    match last {
        Some(cmd) => xml.push_str(&format!(
            r#"<join name="j" to="last"/><action name="last"><shell><command>{cmd}</command></shell><ok to="end"/></action>"#
        )),
        None => xml.push_str(r#"<join name="j" to="end"/>"#),
    }
    xml.push_str(r#"<end name="end"/></work-flow>"#);
    xml
}

/// A TCP port free on loopback now (for a server the test starts). Drawn below Linux's ephemeral
/// range (32768–60999): a port that `bind(:0)` hands out comes from that range, where the tests'
/// own outgoing connections to the databases may take it before the server binds it.
pub fn free_port() -> u16 {
    loop {
        let port = fastrand::u16(20_000..32_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Triggers a workflow by hand; returns the new instance's id.
pub fn trigger(env: &Env, workflow: &str) -> InstanceId {
    InstanceId(
        env.ok(&["workflow", "trigger", workflow])
            .trim()
            .parse()
            .expect("instance id"),
    )
}

/// The workflow's latest instances (newest first, up to 100); the error as text, for `wait_for`.
pub async fn instances_of(store: &dyn Store, workflow: &str) -> Result<Vec<InstanceRow>, String> {
    store
        .instance_list(&store::InstanceFilter {
            workflow: Some(workflow.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())
}

/// Waits (up to 90 s) for the instance to reach a final state and returns its row.
pub async fn ended(store: &dyn Store, id: InstanceId) -> InstanceRow {
    wait_for(
        Duration::from_secs(90),
        &format!("instance {id} to end"),
        || async {
            let i = store
                .instance_get(id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("missing")?;
            if i.status.is_terminal() {
                Ok(i)
            } else {
                // the tasks' states and errors make a timeout explain itself
                let tasks = store.task_list(id).await.map_err(|e| e.to_string())?;
                let tasks: Vec<_> = tasks
                    .iter()
                    .map(|t| {
                        (
                            t.node.clone(),
                            t.status,
                            t.attempt,
                            t.worker_id.clone(),
                            t.error.clone(),
                        )
                    })
                    .collect();
                Err(format!("{:?}; tasks {tasks:?}", i.status))
            }
        },
    )
    .await
}

/// The task row of `node` in instance `id`.
pub async fn task(store: &dyn Store, id: InstanceId, node: &str) -> TaskRow {
    store
        .task_list(id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.node == node)
        .expect("task row")
}

/// Stamps one test per backend for each case: `e2e!(case_a, case_b)` where each case is
/// `async fn case(env: &mut Env)` in a `cases` module.
#[macro_export]
macro_rules! e2e {
    ($($case:ident),+ $(,)?) => {
        mod sqlite { $crate::e2e_backend!(Sqlite; $($case),+); }
        mod mysql { $crate::e2e_backend!(Mysql; $($case),+); }
        mod postgres { $crate::e2e_backend!(Postgres; $($case),+); }
    };
}

#[macro_export]
macro_rules! e2e_backend {
    ($db:ident; $($case:ident),+) => { $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(mut env) = $crate::common::Env::new($crate::common::Db::$db, stringify!($case)).await else { return };
            super::cases::$case(&mut env).await;
            $crate::common::assert_invariants(&env).await;
        }
    )+ };
}

/// A pool on the test's SQLite file that waits for the fleet's writers as the product's own store
/// does (sqlx's default of 5 s ran out on a loaded CI machine: "database is locked").
pub async fn sqlite_pool(url: &str) -> sqlx::SqlitePool {
    use std::str::FromStr;
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .unwrap()
        .busy_timeout(Duration::from_secs(30));
    sqlx::SqlitePool::connect_with(opts).await.unwrap()
}

/// Sets a coordinator's `next_fire_at` directly, as a slot that came due would be.
pub async fn set_next_fire_at(env: &Env, workflow: &str, at: chrono::DateTime<chrono::Utc>) {
    match env.db {
        Db::Sqlite => {
            let pool = sqlite_pool(&env.url).await;
            sqlx::query("UPDATE coordinator SET next_fire_at = ? WHERE workflow = ?")
                .bind(at.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .bind(workflow)
                .execute(&pool)
                .await
                .unwrap();
        }
        Db::Mysql => {
            let pool = sqlx::MySqlPool::connect(&env.url).await.unwrap();
            sqlx::query("UPDATE coordinator SET next_fire_at = ? WHERE workflow = ?")
                .bind(at.naive_utc())
                .bind(workflow)
                .execute(&pool)
                .await
                .unwrap();
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&env.url).await.unwrap();
            sqlx::query("UPDATE coordinator SET next_fire_at = $1 WHERE workflow = $2")
                .bind(at)
                .bind(workflow)
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}

/// Every end-to-end case ends with the invariant checker finding nothing.
pub async fn assert_invariants(env: &Env) {
    let store = env.store().await;
    let cutoff = store.now().await.unwrap() - chrono::Duration::seconds(30);
    let found = store.invariant_check(cutoff).await.unwrap();
    assert!(found.is_empty(), "invariants broken: {found:?}");
}

/// Runs a statement without parameters directly on the test database (to simulate damage).
pub async fn exec_sql(env: &Env, sql: &str) {
    match env.db {
        Db::Sqlite => {
            let pool = sqlite_pool(&env.url).await;
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        Db::Mysql => {
            let pool = sqlx::MySqlPool::connect(&env.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&env.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
    }
}

/// A TCP proxy in front of the database: `cut` drops every connection and refuses new ones, as a
/// stopped server would; `restore` lets them through again. Only this test's fleet goes through it,
/// so a database outage can be simulated without stopping the server other tests share.
pub struct Proxy {
    pub port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let generation = Arc::new(std::sync::Mutex::new(
            tokio_util::sync::CancellationToken::new(),
        ));
        let stop = tokio_util::sync::CancellationToken::new();
        let (up2, gen2, stop2) = (up.clone(), generation.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop2.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let cut = gen2.lock().unwrap().clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Proxy {
            port,
            up,
            generation,
            stop,
        }
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut g = self.generation.lock().unwrap();
        g.cancel();
        *g = tokio_util::sync::CancellationToken::new();
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.generation.lock().unwrap().cancel();
    }
}

impl Env {
    /// Routes the fleet's (not the test's) database connections through a proxy; returns it.
    pub async fn proxied(&mut self) -> Proxy {
        let (proxy, url) = self.proxy().await;
        self.fleet_url = Some(url);
        proxy
    }

    /// A proxy in front of the database and the URL through it, for the roles started with it
    /// (`spawn_as`) alone: one worker's partition.
    pub async fn proxy(&self) -> (Proxy, String) {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let (auth, after) = rest
            .rsplit_once('@')
            .expect("a server URL with credentials");
        let (hostport, path) = after.split_once('/').expect("a database name");
        let proxy = Proxy::start(hostport.to_string()).await;
        let url = format!("{scheme}://{auth}@127.0.0.1:{}/{path}", proxy.port);
        (proxy, url)
    }
}
