//! The connection budget, counted by the server: an idle worker settles on one pooled connection
//! (plus its LISTEN connection on PostgreSQL) and never holds more than its `--pool-max`, while it
//! still runs a fork of tasks on that one connection.

mod common;

use std::time::Duration;

use common::{Db, Env};
use sqlx::Connection;

const LONG: Duration = Duration::from_secs(90);

/// The workflow: four shell tasks at once, then one more.
fn fork_xml() -> String {
    let mut xml =
        String::from(r#"<work-flow name="fan"><start name="start" to="f"/><fork name="f">"#);
    for i in 0..4 {
        xml.push_str(&format!(r#"<path to="t{i}"/>"#));
    }
    xml.push_str("</fork>");
    for i in 0..4 {
        xml.push_str(&format!(
            r#"<action name="t{i}"><shell><command>sleep 0.5; echo {i}</command></shell><ok to="j"/></action>"#
        ));
    }
    xml.push_str(r#"<join name="j" to="last"/><action name="last"><shell><command>echo last</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#);
    xml
}

/// Counts the server's connections to the environment's database, from an admin connection to
/// another database (so the counter is not counted).
struct Counter {
    db: Db,
    name: String,
    mysql: Option<sqlx::MySqlConnection>,
    pg: Option<sqlx::PgConnection>,
}

impl Counter {
    async fn new(env: &Env) -> Counter {
        let name = env
            .url
            .rsplit('/')
            .next()
            .and_then(|s| s.split('?').next())
            .expect("database name")
            .to_string();
        let admin = |var: &str| std::env::var(var).expect("backend URL in the environment");
        let (mut mysql, mut pg) = (None, None);
        match env.db {
            Db::Mysql => {
                mysql = Some(
                    sqlx::MySqlConnection::connect(&admin("AKKAFLOW_TEST_MYSQL_URL"))
                        .await
                        .expect("admin connection"),
                )
            }
            Db::Postgres => {
                pg = Some(
                    sqlx::PgConnection::connect(&admin("AKKAFLOW_TEST_POSTGRES_URL"))
                        .await
                        .expect("admin connection"),
                )
            }
            Db::Sqlite => unreachable!("SQLite has no server"),
        }
        Counter {
            db: env.db,
            name,
            mysql,
            pg,
        }
    }

    async fn count(&mut self) -> i64 {
        match self.db {
            Db::Mysql => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.processlist WHERE db = ?",
            )
            .bind(&self.name)
            .fetch_one(self.mysql.as_mut().expect("mysql"))
            .await
            .expect("count"),
            _ => sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(&self.name)
                .fetch_one(self.pg.as_mut().expect("pg"))
                .await
                .expect("count"),
        }
    }

    /// Waits until the count is `want` (the processes finished starting or trimming).
    async fn settles_at(&mut self, want: i64, what: &str) {
        let mut last = -1;
        let deadline = tokio::time::Instant::now() + LONG;
        while tokio::time::Instant::now() < deadline {
            last = self.count().await;
            if last == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{what}: the database's connections stayed at {last}, never {want}");
    }
}

/// Runs a command that must succeed while counting the connections; returns the peak.
fn run_counting(env: &Env, counter: &mut Counter, args: &[&str]) -> i64 {
    tokio::task::block_in_place(|| {
        let rt = tokio::runtime::Handle::current();
        std::thread::scope(|s| {
            let cmd = s.spawn(|| env.run(args));
            let mut peak = 0;
            while !cmd.is_finished() {
                peak = peak.max(rt.block_on(counter.count()));
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = cmd.join().expect("command thread");
            assert!(
                out.status.success(),
                "akkaflow {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            peak
        })
    })
}

mod cases {
    use super::*;

    pub async fn an_idle_worker_holds_one_pooled_connection(env: &mut Env) {
        if env.db == Db::Sqlite {
            println!("not applicable: SQLite has no server connections");
            return;
        }
        // PostgreSQL workers also LISTEN for ready tasks, on a connection of their own
        let listen = i64::from(env.db == Db::Postgres);
        env.config("[pool]\nidle_timeout_secs = 1");
        env.sync(&[("fan.xml", &fork_xml())]);
        let mut counter = Counter::new(env).await;
        counter.settles_at(0, "before any role starts").await;

        // a worker capped at one pooled connection: never more, and four tasks at once still run
        let capped = env.spawn("capped", &["worker", "--slots", "4", "--pool-max", "1"]);
        counter
            .settles_at(1 + listen, "the capped worker idle")
            .await;
        // the command's own connections count too: at most its cli_max (2)
        let peak = run_counting(env, &mut counter, &["workflow", "trigger", "fan", "--wait"]);
        assert!(
            peak <= 1 + listen + 2,
            "the capped worker went over its one connection: {peak} in all"
        );
        counter
            .settles_at(1 + listen, "the capped worker idle again")
            .await;
        for _ in 0..20 {
            let n = counter.count().await;
            assert!(
                n <= 1 + listen,
                "an idle capped worker holds {n} connections"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        env.stop(capped, nix::sys::signal::Signal::SIGTERM);
        counter.settles_at(0, "the capped worker gone").await;

        // with the default budget a busy worker opens more, and closes them again once idle:
        // sqlx's first-in first-out idle queue alone would keep them all alive
        env.spawn("worker", &["worker", "--slots", "4"]);
        counter.settles_at(1 + listen, "the worker idle").await;
        let peak = run_counting(env, &mut counter, &["workflow", "trigger", "fan", "--wait"]);
        println!("connections during the run (worker and CLI): peak {peak}");
        counter
            .settles_at(1 + listen, "the worker idle again")
            .await;
    }
}

e2e!(an_idle_worker_holds_one_pooled_connection);
