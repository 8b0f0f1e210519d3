//! Fault tests: real processes killed at awkward moments; the tables must show nothing lost and
//! nothing run twice.

mod common;

use std::time::{Duration, Instant};

use akkaflow::state::{InstanceId, InstanceStatus, TaskStatus};
use akkaflow::store::Store;
use common::{trigger, wait_for, Env};
use nix::sys::signal::Signal;

const LONG: Duration = Duration::from_secs(90);

async fn wait_status(store: &dyn Store, id: InstanceId, want: InstanceStatus) {
    wait_for(LONG, &format!("instance {id} to be {want}"), || async {
        let i = store
            .instance_get(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("missing")?;
        if i.status == want {
            Ok(())
        } else {
            Err(format!("{:?} {:?}", i.status, i.error))
        }
    })
    .await
}

/// The scheduler row that is master now, other than `not_pid`.
async fn master_pid(store: &dyn Store, not_pid: Option<i64>) -> Result<i64, String> {
    let rows = store.scheduler_list().await.map_err(|e| e.to_string())?;
    rows.iter()
        .find(|r| r.state == "master" && Some(r.pid) != not_pid)
        .map(|r| r.pid)
        .ok_or_else(|| {
            format!(
                "{:?}",
                rows.iter()
                    .map(|r| (r.pid, r.state.clone()))
                    .collect::<Vec<_>>()
            )
        })
}

mod cases {
    use super::*;

    pub async fn the_fleet_rides_out_a_database_outage(env: &mut Env) {
        if env.db == common::Db::Sqlite {
            println!("not applicable: SQLite is a file, it has no server to lose");
            return;
        }
        let proxy = env.proxied().await;
        let mut xml =
            String::from(r#"<work-flow name="out"><start name="start" to="f"/><fork name="f">"#);
        for i in 0..3 {
            xml.push_str(&format!(r#"<path to="t{i}"/>"#));
        }
        xml.push_str("</fork>");
        for i in 0..3 {
            xml.push_str(&format!(r#"<action name="t{i}" retry-times="2"><shell><command>sleep 3; echo done {i}</command></shell><ok to="j"/></action>"#));
        }
        xml.push_str(r#"<join name="j" to="last"/><action name="last"><shell><command>echo last</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#);
        env.sync(&[("out.xml", &xml)]);
        let store = env.store().await; // the test itself goes direct, not through the proxy
        env.spawn("scheduler", &["scheduler"]);
        env.spawn("worker", &["worker", "--slots", "4"]);
        let id = trigger(env, "out");
        wait_for(LONG, "the three branches to run", || async {
            let n = store
                .task_list(id)
                .await
                .unwrap()
                .iter()
                .filter(|t| t.status == TaskStatus::Running)
                .count();
            if n == 3 {
                Ok(())
            } else {
                Err(n.to_string())
            }
        })
        .await;
        proxy.cut();
        // the outage outlasts the tasks and their leases: results finish while the database is away
        tokio::time::sleep(Duration::from_secs(15)).await;
        proxy.restore();
        wait_status(&*store, id, InstanceStatus::Succeeded).await;
        let attempts = store.task_attempt_list(id).await.unwrap();
        let outcomes: Vec<_> = attempts
            .iter()
            .map(|a| (a.attempt, a.outcome.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            vec![(1, "succeeded"); 4],
            "nothing ran twice: {attempts:?}"
        );
        for role in ["scheduler", "worker"] {
            // the workers may finish the instance before the scheduler's next duty cycle reconnects
            let log = wait_for(LONG, &format!("the {role} to reconnect"), || async {
                let log = env.log(role);
                if log.contains("database reachable again") {
                    Ok(log)
                } else {
                    Err(log)
                }
            })
            .await;
            let lines = log
                .lines()
                .filter(|l| l.contains("database unreachable"))
                .count();
            assert!(
                (1..=6).contains(&lines),
                "{role}: one line per outage and component, got {lines}:\n{log}"
            );
        }
    }

    pub async fn a_standby_takes_over_when_the_master_is_sigkilled(env: &mut Env) {
        env.sync(&[(
            "fo.xml",
            r#"<work-flow name="fo" instance-limit="10"><coordinator><depend-list cron="* * * * *"/></coordinator>
  <start name="start" to="a"/><action name="a"><shell><command>echo tick</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        )]);
        let store = env.store().await;
        let mut procs = vec![
            env.spawn("s1", &["scheduler"]),
            env.spawn("s2", &["scheduler"]),
            env.spawn("s3", &["scheduler"]),
        ];
        env.spawn("worker", &["worker"]);
        let first = wait_for(LONG, "a master", || master_pid(&*store, None)).await;
        let idx = procs
            .iter()
            .position(|&i| i64::from(env.pid(i)) == first)
            .expect("master is one of ours");
        let victim = procs.remove(idx);
        env.stop(victim, Signal::SIGKILL);
        let killed = Instant::now();
        let second = wait_for(LONG, "a new master", || master_pid(&*store, Some(first))).await;
        println!(
            "failover: {:.2}s from SIGKILL of the master to a new master",
            killed.elapsed().as_secs_f64()
        );
        assert_ne!(first, second);
        // the new master fires: make the next slot due now
        // the first master may have died before it scheduled the coordinator: wait for a slot
        let next = wait_for(LONG, "the coordinator to be scheduled", || async {
            let c = store
                .coordinator_get("fo")
                .await
                .map_err(|e| e.to_string())?;
            c.and_then(|c| c.next_fire_at)
                .ok_or_else(|| "next_fire_at not set yet".to_string())
        })
        .await;
        let due = next - chrono::Duration::minutes(1);
        common::set_next_fire_at(env, "fo", due).await;
        let fired = wait_for(LONG, "the new master to fire the slot", || async {
            let list = common::instances_of(&*store, "fo").await?;
            list.into_iter()
                .find(|i| i.status == InstanceStatus::Succeeded)
                .ok_or_else(|| "not yet".to_string())
        })
        .await;
        assert_eq!(fired.trigger_kind.as_str(), "cron");
    }

    pub async fn sigterm_hands_running_tasks_back_without_counting_an_attempt(env: &mut Env) {
        let runs = env.path().join("runs");
        env.sync(&[(
            "gs.xml",
            &format!(
                r#"<work-flow name="gs"><start name="start" to="a"/>
  <action name="a"><shell><command>echo run >> {}; sleep 30</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
                runs.display()
            ),
        )]);
        let store = env.store().await;
        env.spawn("scheduler", &["scheduler"]);
        let w1 = env.spawn("worker1", &["worker"]);
        let id = trigger(env, "gs");
        wait_for(LONG, "the attempt to start", || async {
            if runs.exists() {
                Ok(())
            } else {
                Err("no".to_string())
            }
        })
        .await;
        env.stop(w1, Signal::SIGTERM); // waits for the worker to exit after its 3 s grace
        let t = store
            .task_list(id)
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.node == "a")
            .unwrap();
        assert_eq!(t.status, TaskStatus::Ready, "handed back: {t:?}");
        assert_eq!(
            t.max_attempts, 2,
            "the handed-back attempt does not use up the retry budget"
        );
        let attempts = store.task_attempt_list(id).await.unwrap();
        assert_eq!(
            attempts
                .iter()
                .map(|a| a.outcome.as_str())
                .collect::<Vec<_>>(),
            vec!["handed_back"]
        );
        assert!(
            env.log("worker1").contains("worker stopped"),
            "{}",
            env.log("worker1")
        );
        // a new worker picks it up; kill that run to finish quickly
        env.spawn("worker2", &["worker"]);
        let running = wait_for(LONG, "the second attempt", || async {
            let t = store
                .task_list(id)
                .await
                .unwrap()
                .into_iter()
                .find(|t| t.node == "a")
                .unwrap();
            if t.status == TaskStatus::Running && t.attempt == 2 {
                Ok(t)
            } else {
                Err(format!("{:?} {}", t.status, t.attempt))
            }
        })
        .await;
        env.ok(&["task", "kill", &running.id.to_string()]);
        wait_status(&*store, id, InstanceStatus::Killed).await;
    }

    pub async fn a_sigkilled_workers_tasks_are_all_rescued(env: &mut Env) {
        let marks = env.path().join("marks");
        std::fs::create_dir_all(&marks).unwrap();
        let mut xml = String::from(
            r#"<work-flow name="many" instance-limit="10"><start name="start" to="f"/><fork name="f">"#,
        );
        for i in 0..4 {
            xml.push_str(&format!(r#"<path to="t{i}"/>"#));
        }
        xml.push_str("</fork>");
        for i in 0..4 {
            xml.push_str(&format!(
                r#"<action name="t{i}" retry-times="1"><shell><command>touch {m}/t{i}-$AKKAFLOW_ATTEMPT; sleep 2</command></shell><ok to="j"/></action>"#,
                m = marks.display()
            ));
        }
        xml.push_str(r#"<join name="j" to="end"/><end name="end"/></work-flow>"#);
        env.sync(&[("many.xml", &xml)]);
        let store = env.store().await;
        env.spawn("scheduler", &["scheduler"]);
        let w1 = env.spawn("worker1", &["worker", "--slots", "4"]);
        let id = trigger(env, "many");
        wait_for(LONG, "all four to start", || async {
            let n = std::fs::read_dir(&marks).unwrap().count();
            if n == 4 {
                Ok(())
            } else {
                Err(n.to_string())
            }
        })
        .await;
        env.stop(w1, Signal::SIGKILL);
        env.spawn("worker2", &["worker", "--slots", "4"]);
        wait_status(&*store, id, InstanceStatus::Succeeded).await;
        let attempts = store.task_attempt_list(id).await.unwrap();
        let lost = attempts
            .iter()
            .filter(|a| a.outcome.as_str() == "lost")
            .count();
        let ok = attempts
            .iter()
            .filter(|a| a.outcome.as_str() == "succeeded" && a.attempt == 2)
            .count();
        assert_eq!((lost, ok), (4, 4), "{attempts:?}");
    }

    /// `akkaflow health` speaks for the role beside it only: a worker by its own heartbeat, a
    /// scheduler by its host's row, whatever the rest of the fleet does.
    pub async fn health_is_about_one_role_only(env: &mut Env) {
        let healthy = |env: &Env, args: &[&str]| {
            let mut all = vec!["health"];
            all.extend_from_slice(args);
            env.run(&all).status.code()
        };
        env.ok(&["migrate"]);
        assert_eq!(
            healthy(env, &["--role", "scheduler"]),
            Some(1),
            "no scheduler yet"
        );
        assert_eq!(healthy(env, &["--role", "worker", "--name", "w1"]), Some(1));
        let w1 = env.spawn("w1", &["worker", "--slots", "1", "--name", "w1"]);
        env.spawn("w2", &["worker", "--slots", "1", "--name", "w2"]);
        for name in ["w1", "w2"] {
            wait_for(LONG, &format!("{name} healthy"), || async {
                match healthy(env, &["--role", "worker", "--name", name]) {
                    Some(0) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            })
            .await;
        }
        assert_eq!(
            healthy(env, &["--role", "scheduler"]),
            Some(1),
            "still no scheduler"
        );
        env.spawn("scheduler", &["scheduler"]);
        wait_for(LONG, "the scheduler healthy", || async {
            match healthy(env, &["--role", "scheduler"]) {
                Some(0) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        // a dead worker turns unhealthy once its heartbeat is older than the limit; the other stays
        env.stop(w1, Signal::SIGKILL);
        wait_for(LONG, "the killed w1 unhealthy", || async {
            match healthy(
                env,
                &["--role", "worker", "--name", "w1", "--max-age-secs", "2"],
            ) {
                Some(1) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(healthy(env, &["--role", "worker", "--name", "w2"]), Some(0));
        // the HTTP role: unhealthy until it serves on its address (checked on loopback)
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("0.0.0.0:{port}");
        assert_eq!(
            healthy(env, &["--role", "http", "--listen", &listen]),
            Some(1)
        );
        env.spawn("http", &["http", "--listen", &format!("127.0.0.1:{port}")]);
        wait_for(LONG, "the HTTP role healthy", || async {
            match healthy(env, &["--role", "http", "--listen", &listen]) {
                Some(0) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
}

e2e!(
    the_fleet_rides_out_a_database_outage,
    a_standby_takes_over_when_the_master_is_sigkilled,
    sigterm_hands_running_tasks_back_without_counting_an_attempt,
    a_sigkilled_workers_tasks_are_all_rescued,
    health_is_about_one_role_only,
);
