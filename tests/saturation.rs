//! A database server at its `max_connections`: a private MariaDB with a low limit is filled up
//! while a fleet runs a fork. The CLI is refused with exit code 2 and says why; every role backs off
//! and logs one line for the episode; running tasks finish and report once connections free up;
//! nothing is lost or run twice.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{wait_for, Db, Env};
use sqlx::{Connection, Executor, MySqlConnection};

const LONG: Duration = Duration::from_secs(90);

/// A MariaDB server of the test's own: a data directory in a temp dir, a free port and socket.
/// The shared servers are never reconfigured.
struct PrivateMariadb {
    dir: tempfile::TempDir,
    port: u16,
    server: Child,
}

impl PrivateMariadb {
    /// `None` (with the reason printed) when MariaDB is not installed and CI does not require it.
    async fn start(max_connections: u32) -> Option<PrivateMariadb> {
        if Command::new("mariadbd").arg("--version").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "mariadbd is not installed"
            );
            println!("skipped: mariadbd is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--user=root", "--skip-test-db"])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("addr")
            .port();
        let server = Command::new("mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=32M"])
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!(
                "--log-error={}",
                dir.path().join("err.log").display()
            ))
            .arg(format!("--port={port}"))
            .arg(format!("--max-connections={max_connections}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        let srv = PrivateMariadb { dir, port, server };
        let sock = srv.socket();
        wait_for(
            LONG,
            "the private MariaDB to accept connections",
            || async { srv.root(&sock).await.map(|_| ()).map_err(|e| e.to_string()) },
        )
        .await;
        Some(srv)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// root over the socket: root has SUPER, which MariaDB lets in one beyond max_connections.
    async fn root(&self, sock: &Path) -> Result<MySqlConnection, sqlx::Error> {
        MySqlConnection::connect(&format!(
            "mysql://root@localhost/mysql?socket={}",
            sock.display()
        ))
        .await
    }

    /// A user without SUPER, who gets no connection beyond max_connections, and its database.
    async fn app_url(&self) -> String {
        let mut root = self.root(&self.socket()).await.expect("root");
        for sql in [
            "CREATE DATABASE akkaflow",
            "CREATE USER 'af'@'127.0.0.1' IDENTIFIED BY 'af'",
            "GRANT ALL ON akkaflow.* TO 'af'@'127.0.0.1'",
        ] {
            root.execute(sql).await.expect(sql);
        }
        format!("mysql://af:af@127.0.0.1:{}/akkaflow", self.port)
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

fn is_too_many(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("08004") || d.message().contains("Too many connections"))
}

/// Fills every free connection slot, then kills the fleet's connections and fills their slots too,
/// until the server holds only `fillers` for the app user and refuses the next one.
async fn saturate(root: &mut MySqlConnection, url: &str, fillers: &mut Vec<MySqlConnection>) {
    for _ in 0..50 {
        loop {
            match MySqlConnection::connect(url).await {
                Ok(c) => fillers.push(c),
                Err(e) if is_too_many(&e) => break,
                Err(e) => panic!("filling the server: {e}"),
            }
        }
        let mut ours = Vec::new();
        for f in fillers.iter_mut() {
            let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
                .fetch_one(&mut *f)
                .await
                .expect("filler id");
            ours.push(id);
        }
        let fleet: Vec<u64> = sqlx::query_scalar(
            "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist WHERE user = 'af'",
        )
        .fetch_all(&mut *root)
        .await
        .expect("processlist")
        .into_iter()
        .filter(|id| !ours.contains(id))
        .collect();
        if fleet.is_empty() {
            return;
        }
        for id in fleet {
            let _ = root.execute(format!("KILL CONNECTION {id}").as_str()).await;
        }
    }
    panic!("could not take every connection slot from the fleet");
}

async fn running_tasks(url: &str) -> Result<i64, String> {
    let mut c = MySqlConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query_scalar("SELECT COUNT(*) FROM task WHERE status = 'running'")
        .fetch_one(&mut c)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_refuses_the_cli_and_the_fleet_waits_without_losing_anything() {
    let Some(srv) = PrivateMariadb::start(16).await else {
        return;
    };
    let url = srv.app_url().await;
    let mut root = srv.root(&srv.socket()).await.expect("root");
    let mut env = Env::with_url(Db::Mysql, url.clone());
    env.config("[pool]\nidle_timeout_secs = 1");
    let mut xml =
        String::from(r#"<work-flow name="sat"><start name="start" to="f"/><fork name="f">"#);
    for i in 0..3 {
        xml.push_str(&format!(r#"<path to="t{i}"/>"#));
    }
    xml.push_str("</fork>");
    for i in 0..3 {
        xml.push_str(&format!(
            r#"<action name="t{i}"><shell><command>sleep 4; echo done {i}</command></shell><ok to="j"/></action>"#
        ));
    }
    xml.push_str(r#"<join name="j" to="last"/><action name="last"><shell><command>echo last</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#);
    env.sync(&[("sat.xml", &xml)]);
    env.spawn("scheduler", &["scheduler"]);
    env.spawn("worker1", &["worker", "--slots", "2"]);
    env.spawn("worker2", &["worker", "--slots", "2"]);
    let id = common::trigger(&env, "sat");
    wait_for(LONG, "the three branches to run", || async {
        match running_tasks(&url).await? {
            3 => Ok(()),
            n => Err(format!("{n} running")),
        }
    })
    .await;

    let mut fillers = Vec::new();
    saturate(&mut root, &url, &mut fillers).await;
    let out = env.run(&["workflow", "trigger", "sat"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "refused CLI: {stderr}");
    assert!(
        stderr.contains("the database refuses new connections: too many"),
        "the CLI names the cause: {stderr}"
    );
    // the fleet lost its connections and cannot open new ones; the tasks finish meanwhile
    for role in ["scheduler", "worker1", "worker2"] {
        wait_for(LONG, &format!("the {role} to notice"), || async {
            let log = env.log(role);
            if log.contains("the database refuses new connections") {
                Ok(())
            } else {
                Err(log)
            }
        })
        .await;
    }
    // keep the server full past the tasks' end: their results wait, the fleet keeps retrying
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(fillers);

    let store = env.store().await;
    wait_for(LONG, "the instance to succeed", || async {
        let i = store
            .instance_get(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("missing")?;
        if i.status == akkaflow::state::InstanceStatus::Succeeded {
            Ok(())
        } else {
            Err(format!("{:?} {:?}", i.status, i.error))
        }
    })
    .await;
    let attempts = store.task_attempt_list(id).await.expect("attempts");
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, vec![(1, "succeeded"); 4], "nothing ran twice");
    for role in ["scheduler", "worker1", "worker2"] {
        let log = wait_for(LONG, &format!("the {role} to connect again"), || async {
            let log = env.log(role);
            if log.contains("the database accepts new connections again") {
                Ok(log)
            } else {
                Err(log)
            }
        })
        .await;
        let refused: Vec<_> = log
            .lines()
            .filter(|l| l.contains("refuses new connections"))
            .collect();
        println!("{role}: {refused:?}");
        let again = log
            .lines()
            .filter(|l| l.contains("accepts new connections again"))
            .count();
        // a fleet connection may slip into a slot the test freed while taking them all: an
        // episode that ends and starts again; each says so once
        assert!(
            refused.len() == again
                && refused.iter().all(|l| l.contains("max_connections is 16")
                    && (l.contains("worker_max") || l.contains("scheduler_max"))),
            "{role}: one line per episode, naming the limit and what to raise:\n{log}"
        );
    }
    drop(store);
    common::assert_invariants(&env).await;
}
