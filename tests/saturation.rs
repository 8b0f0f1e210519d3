//! A database server at its `max_connections`: a private MariaDB or PostgreSQL with a low limit is
//! filled up while a fleet runs a fork. The CLI is refused with exit code 2 and says why; every role
//! backs off and logs one line for the episode; running tasks finish and report once connections
//! free up; nothing is lost or run twice.

mod common;

use std::time::Duration;

use common::private::PrivateServer;
use common::{wait_for, Db, Env};
use sqlx::{Connection, Executor, MySqlConnection, PgConnection};

const LONG: Duration = Duration::from_secs(90);

/// The server's limit: room for the fleet of the test, little more.
const MAX_CONNECTIONS: u32 = 16;

/// Connections the test holds to keep the server full (as the limited user).
enum Fillers {
    Mysql(Vec<MySqlConnection>),
    Postgres(Vec<PgConnection>),
}

fn is_too_many(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("08004") | Some("53300"))
        || d.message().contains("Too many connections"))
}

impl Fillers {
    /// Opens connections until the server refuses the next one.
    async fn fill(&mut self, url: &str) {
        loop {
            let opened = match self {
                Fillers::Mysql(v) => MySqlConnection::connect(url).await.map(|c| v.push(c)),
                Fillers::Postgres(v) => PgConnection::connect(url).await.map(|c| v.push(c)),
            };
            match opened {
                Ok(()) => {}
                Err(e) if is_too_many(&e) => return,
                Err(e) => panic!("filling the server: {e}"),
            }
        }
    }

    /// The server's ids of the filler connections.
    async fn ids(&mut self) -> Vec<i64> {
        let mut ids = Vec::new();
        match self {
            Fillers::Mysql(v) => {
                for c in v {
                    let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
                        .fetch_one(c)
                        .await
                        .expect("filler id");
                    ids.push(id as i64);
                }
            }
            Fillers::Postgres(v) => {
                for c in v {
                    let id: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                        .fetch_one(c)
                        .await
                        .expect("filler id");
                    ids.push(id.into());
                }
            }
        }
        ids
    }
}

/// Fills every free connection slot, then ends the fleet's connections and fills their slots too,
/// until the server holds only the fillers for the limited user and refuses the next one.
async fn saturate(srv: &PrivateServer, db: Db, url: &str, fillers: &mut Fillers) {
    let admin = srv.admin_url();
    // a killed connection leaves the process list before its slot is free: done only after a
    // round that killed nothing and found no slot to fill
    let mut filled = usize::MAX;
    let mut killed_last_round = true;
    for _ in 0..50 {
        fillers.fill(url).await;
        let ours = fillers.ids().await;
        let settled = !killed_last_round && ours.len() == filled;
        filled = ours.len();
        let fleet: Vec<i64> = match db {
            Db::Mysql => {
                let mut root = MySqlConnection::connect(&admin).await.expect("root");
                let ids: Vec<u64> = sqlx::query_scalar(
                    "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist WHERE user = 'af'",
                )
                .fetch_all(&mut root)
                .await
                .expect("processlist");
                let fleet: Vec<i64> = ids
                    .into_iter()
                    .map(|i| i as i64)
                    .filter(|i| !ours.contains(i))
                    .collect();
                for id in &fleet {
                    let _ = root.execute(format!("KILL CONNECTION {id}").as_str()).await;
                }
                fleet
            }
            _ => {
                let mut su = PgConnection::connect(&admin).await.expect("superuser");
                let ids: Vec<i32> = sqlx::query_scalar(
                    "SELECT pid FROM pg_stat_activity WHERE usename = 'af' AND NOT (pid = ANY($1))",
                )
                .bind(ours.iter().map(|i| *i as i32).collect::<Vec<_>>())
                .fetch_all(&mut su)
                .await
                .expect("pg_stat_activity");
                for pid in &ids {
                    let _ = sqlx::query("SELECT pg_terminate_backend($1)")
                        .bind(pid)
                        .execute(&mut su)
                        .await;
                }
                ids.into_iter().map(i64::from).collect()
            }
        };
        if fleet.is_empty() && settled {
            return;
        }
        killed_last_round = !fleet.is_empty();
        if !killed_last_round {
            // (after a kill the next fill must come at once, before the fleet takes the slots)
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    panic!("could not take every connection slot from the fleet");
}

/// The test's own connection to the limited server. The fleet starting (each role's migration
/// check, its pool, the master lock) and the CLI runs before it can hold every slot of so small a
/// server for a moment: wait for one, and name who holds them all if none comes.
async fn observer(
    srv: &PrivateServer,
    db: Db,
    url: &str,
) -> std::sync::Arc<dyn akkaflow::store::Store> {
    wait_for(LONG, "a connection slot for the test", || async {
        match akkaflow::store::connect(&akkaflow::store::ConnectOptions::new(url.to_string())).await
        {
            Ok(store) => Ok(store),
            Err(e) => Err(format!("{e}; connections: {}", holders(srv, db).await)),
        }
    })
    .await
}

/// Who holds the limited user's connections, for a failure message.
async fn holders(srv: &PrivateServer, db: Db) -> String {
    let admin = srv.admin_url();
    let rows: Result<Vec<String>, sqlx::Error> = match db {
        Db::Mysql => match MySqlConnection::connect(&admin).await {
            Ok(mut root) => {
                sqlx::query_scalar(
                    "SELECT CONCAT(id, ' ', user, ' ', COALESCE(command, ''), ' ', time, ' ', \
                     COALESCE(LEFT(info, 60), '')) FROM information_schema.processlist",
                )
                .fetch_all(&mut root)
                .await
            }
            Err(e) => Err(e),
        },
        _ => match PgConnection::connect(&admin).await {
            Ok(mut su) => {
                sqlx::query_scalar(
                    "SELECT pid || ' ' || COALESCE(usename, '') || ' ' || COALESCE(state, '') \
                     || ' ' || LEFT(COALESCE(query, ''), 60) FROM pg_stat_activity",
                )
                .fetch_all(&mut su)
                .await
            }
            Err(e) => Err(e),
        },
    };
    match rows {
        Ok(rows) => format!("{} [{}]", rows.len(), rows.join("; ")),
        Err(e) => format!("unknown ({e})"),
    }
}

async fn running_tasks(
    store: &dyn akkaflow::store::Store,
    id: akkaflow::state::InstanceId,
) -> Result<usize, String> {
    let tasks = store.task_list(id).await.map_err(|e| e.to_string())?;
    Ok(tasks
        .iter()
        .filter(|t| t.status == akkaflow::state::TaskStatus::Running)
        .count())
}

/// What a role logs when the server refuses it: MariaDB's refusal (1040) reaches the role and is
/// named; PostgreSQL's (53300) is retried inside sqlx's pool until the acquire timeout, so a role
/// that had connected sees "pool timed out" and logs the outage without the cause.
fn noticed(db: Db, log: &str) -> bool {
    log.contains("the database refuses new connections")
        || (db == Db::Postgres && log.contains("database unreachable"))
}

fn came_back(db: Db, log: &str) -> bool {
    log.contains("the database accepts new connections again")
        || (db == Db::Postgres && log.contains("database reachable again"))
}

async fn a_full_server_refuses_the_cli_and_the_fleet_waits_without_losing_anything(db: Db) {
    let Some(srv) = PrivateServer::new(db) else {
        return;
    };
    let mut srv = srv.max_connections(MAX_CONNECTIONS);
    srv.start().await;
    let url = srv.limited_url().await;
    let mut env = Env::with_url(db, url.clone());
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
    {
        let store = observer(&srv, db, &url).await;
        wait_for(LONG, "the three branches to run", || async {
            match running_tasks(&*store, id).await? {
                3 => Ok(()),
                n => Err(format!("{n} running")),
            }
        })
        .await;
    }

    let mut fillers = match db {
        Db::Mysql => Fillers::Mysql(Vec::new()),
        _ => Fillers::Postgres(Vec::new()),
    };
    saturate(&srv, db, &url, &mut fillers).await;
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
            if noticed(db, &log) {
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

    let store = observer(&srv, db, &url).await;
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
            if came_back(db, &log) {
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
                && refused.iter().all(|l| l
                    .contains(&format!("max_connections is {MAX_CONNECTIONS}"))
                    && (l.contains("worker_max") || l.contains("scheduler_max"))),
            "{role}: one line per episode, naming the limit and what to raise:\n{log}"
        );
    }
    drop(store);
    common::assert_invariants(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_full_server_refuses_the_cli_and_the_fleet_waits_without_losing_anything() {
    a_full_server_refuses_the_cli_and_the_fleet_waits_without_losing_anything(Db::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_full_server_refuses_the_cli_and_the_fleet_waits_without_losing_anything() {
    a_full_server_refuses_the_cli_and_the_fleet_waits_without_losing_anything(Db::Postgres).await;
}
