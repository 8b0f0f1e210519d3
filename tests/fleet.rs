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
        // the worker's heartbeats and reports at debug: if a result lands too late again (seen
        // twice on MariaDB, under load), its log says which loop waited and on what
        env.vars
            .push(("AKKAFLOW_LOG".into(), "info,akkaflow::worker=debug".into()));
        let xml = common::fork_join_xml(
            r#"name="out""#,
            3,
            r#"retry-times="2""#,
            |i| format!("sleep 3; echo done {i}"),
            Some("echo last"),
        );
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
            "nothing ran twice: {attempts:?}\nscheduler:\n{}\nworker:\n{}",
            env.log("scheduler"),
            env.log("worker")
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
        let xml = common::fork_join_xml(
            r#"name="many" instance-limit="10""#,
            4,
            r#"retry-times="1""#,
            |i| format!("touch {}/t{i}-$AKKAFLOW_ATTEMPT; sleep 2", marks.display()),
            None,
        );
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

    /// The issue's fleet: two schedulers and three workers run 40 fork/join instances whose actions
    /// set no `retry-times`; the master and a busy worker are SIGKILLed mid-run. Lost attempts spend
    /// no retry, so every instance succeeds.
    pub async fn a_fleet_without_retries_rides_out_a_killed_master_and_worker(env: &mut Env) {
        const N: usize = 40;
        let xml = common::fork_join_xml(
            r#"name="nr" instance-limit="100""#,
            4,
            "",
            // 2 s tasks: the fleet stays busy long enough for a loaded machine's polls to see w1 at
            // work (seen on SQLite in CI: every 1 s instance ended before a poll found w1 busy)
            |_| "sleep 2".into(),
            Some("true"),
        );
        env.sync(&[("nr.xml", &xml)]);
        let store = env.store().await;
        let s1 = env.spawn("s1", &["scheduler"]);
        let s2 = env.spawn("s2", &["scheduler"]);
        let workers: Vec<_> = ["w1", "w2", "w3"]
            .into_iter()
            .map(|name| {
                (
                    name,
                    env.spawn(name, &["worker", "--slots", "4", "--name", name]),
                )
            })
            .collect();
        let engine = akkaflow::engine::Engine::new(store.clone(), chrono_tz::UTC);
        let mut ids = Vec::new();
        for _ in 0..N {
            let req = akkaflow::engine::CreateInstance {
                workflow: "nr".into(),
                trigger: akkaflow::state::TriggerKind::Run,
                scheduled_for: None,
                params: Default::default(),
                coordinator_params: false,
                parent: None,
                actor: "test".into(),
            };
            // the roles are starting (migrating, electing) on a busy machine: a create that
            // times out is rolled back whole and tried again
            let created = wait_for(LONG, "an instance created", || async {
                engine
                    .create_instance(&req)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await;
            ids.push(created.id.expect("a new instance"));
        }
        let master = wait_for(LONG, "a master", || master_pid(&*store, None)).await;
        // mid-run: some instances done, and a worker busy (its running tasks are the ones to be
        // lost); whichever it is: on a loaded machine one of three SQLite workers may claim little
        let busy = wait_for(LONG, "a worker busy after some instances ended", || async {
            let done = common::instances_of(&*store, "nr")
                .await?
                .iter()
                .filter(|i| i.status.is_terminal())
                .count();
            let running: Vec<(String, i64)> = store
                .worker_list()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|w| w.stopped_at.is_none())
                .map(|w| (w.name, w.running_tasks))
                .collect();
            // the busiest, with two tasks at least: one that ends before the kill leaves it
            // holding another
            match running.iter().max_by_key(|(_, n)| *n) {
                Some((name, n)) if done >= 1 && *n >= 2 => Ok(name.clone()),
                _ => Err(format!("{done} ended, running by worker: {running:?}")),
            }
        })
        .await;
        let (victim_name, victim_worker) = *workers
            .iter()
            .find(|(name, _)| *name == busy)
            .expect("a worker of this test");
        let victim = if i64::from(env.pid(s1)) == master {
            s1
        } else {
            s2
        };
        // the worker first: its tasks are the ones that must still be running when it dies
        env.stop(victim_worker, Signal::SIGKILL);
        env.stop(victim, Signal::SIGKILL);
        // what the worker held when it died (a task may have ended between the check above and the
        // kill): nothing changes these rows until their lease expires and they are rescued
        let held: i64 = store
            .worker_list()
            .await
            .unwrap()
            .iter()
            .filter(|w| w.name == victim_name)
            .map(|w| w.running_tasks)
            .sum();
        assert!(held >= 1, "{victim_name} died holding tasks");
        let mut lost = 0;
        let mut failed_attempts = 0;
        for id in &ids {
            // a stalled fleet explains itself with the surviving roles' logs (before `ended` gives up at 90 s)
            let ended =
                tokio::time::timeout(Duration::from_secs(80), common::ended(&*store, *id)).await;
            let Ok(inst) = ended else {
                let logs: Vec<String> = ["s1", "s2", "w1", "w2", "w3"]
                    .iter()
                    .filter(|name| **name != victim_name)
                    .map(|name| format!("{name}:\n{}", env.log(name)))
                    .collect();
                panic!("instance {id} did not end\n{}", logs.join("\n"));
            };
            assert_eq!(inst.status, InstanceStatus::Succeeded, "{inst:?}");
            for a in store.task_attempt_list(*id).await.unwrap() {
                match a.outcome.as_str() {
                    "lost" => lost += 1,
                    "succeeded" => {}
                    _ => failed_attempts += 1,
                }
            }
        }
        assert!(
            lost >= held,
            "{victim_name}'s {held} running tasks were lost and rescued ({lost} lost attempts)"
        );
        assert_eq!(failed_attempts, 0, "no attempt failed");
        println!(
            "fleet ({:?}): {N} instances, 2 kills (master, worker), {lost} lost attempts, {lost} rescued, 0 failed",
            env.db
        );
    }

    /// A task that kills its own worker (`kill -9 $PPID`: the worker runs `bash -c` itself, so the
    /// shell's parent is the worker) is run again on the next worker each time, without spending
    /// its `retry-times`, and fails at its third loss (the default `max_lost_attempts`) saying why.
    pub async fn a_task_that_kills_its_worker_fails_after_the_lost_budget(env: &mut Env) {
        env.sync(&[(
            "oom.xml",
            r#"<work-flow name="oom" mail-receivers="oncall@example.com">
  <start name="start" to="a"/>
  <action name="a" retry-times="1"><shell><command>echo "attempt $AKKAFLOW_ATTEMPT"; kill -9 $PPID; sleep 5</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
        )]);
        let store = env.store().await;
        env.spawn("scheduler", &["scheduler"]);
        let id = trigger(env, "oom");
        for n in 1..=3i64 {
            let w = env.spawn(&format!("w{n}"), &["worker", "--name", &format!("w{n}")]);
            let t = wait_for(LONG, &format!("loss {n} to be rescued"), || async {
                let t = common::task(&*store, id, "a").await;
                if t.lost_attempts == n && t.status != TaskStatus::Running {
                    Ok(t)
                } else {
                    Err(format!("{t:?}"))
                }
            })
            .await;
            env.stop(w, Signal::SIGKILL); // reaps the worker the task killed
            let want = if n < 3 {
                TaskStatus::Ready
            } else {
                TaskStatus::Failed
            };
            assert_eq!(t.status, want, "{t:?}");
        }
        let inst = common::ended(&*store, id).await;
        assert_eq!(inst.status, InstanceStatus::Failed);
        let t = common::task(&*store, id, "a").await;
        assert!(
            t.error
                .as_deref()
                .unwrap_or("")
                .starts_with("lost 3 times: the task may be killing its worker"),
            "{t:?}"
        );
        let outcomes: Vec<_> = store
            .task_attempt_list(id)
            .await
            .unwrap()
            .iter()
            .map(|a| a.outcome.as_str())
            .collect();
        assert_eq!(outcomes, vec!["lost"; 3], "retry-times was not spent");
        let alerts = store.alert_list(100).await.unwrap();
        assert!(
            alerts
                .iter()
                .any(|a| a.kind.as_str() == "lost" && a.instance_id == Some(id)),
            "{alerts:?}"
        );
    }

    /// `akkaflow health` speaks for the role beside it only: a worker by its own heartbeat, a
    /// scheduler by its host's row, whatever the rest of the fleet does.
    pub async fn a_busy_worker_reports_its_host_and_keeps_a_history(env: &mut Env) {
        // a history row a second, so the test need not wait for minutes
        env.config("worker_metric_secs = 1");
        env.sync(&[(
            "spin.xml",
            r#"<work-flow name="spin"><start name="start" to="spin"/><action name="spin"><shell><command>end=$(( $(date +%s) + 8 )); while [ "$(date +%s)" -lt "$end" ]; do :; done; echo spun</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        )]);
        let store = env.store().await;
        env.spawn("scheduler", &["scheduler"]);
        env.spawn("worker", &["worker", "--name", "hostw"]);
        let id = trigger(env, "spin");
        // the CPU share of each heartbeat differs from the last while the task spins; the history
        // gets rows of its own
        let deadline = Instant::now() + LONG;
        let mut cpu_seen: Vec<f64> = Vec::new();
        let (worker, history) = loop {
            let w = store
                .worker_list()
                .await
                .unwrap()
                .into_iter()
                .find(|w| w.name == "hostw" && w.state == "running");
            let history: Vec<_> = match &w {
                Some(w) => store
                    .worker_metric_list(chrono::Utc::now() - chrono::Duration::hours(1), 1000)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|m| m.worker_id == w.id)
                    .collect(),
                None => vec![],
            };
            if let Some(c) = w.as_ref().and_then(|w| w.cpu_percent) {
                if !cpu_seen.contains(&c) {
                    cpu_seen.push(c);
                }
            }
            let full = w.as_ref().is_some_and(|w| {
                w.cpu_percent.is_some()
                    && w.load1.is_some()
                    && w.mem_total_bytes.is_some_and(|t| t > 0)
                    && w.mem_used_bytes.is_some_and(|u| u > 0)
                    && w.disk_free_bytes.is_some_and(|d| d > 0)
            });
            let busy_row = history.iter().any(|m| m.host.running_tasks == 1);
            if full && cpu_seen.len() >= 2 && history.len() >= 2 && busy_row {
                break (w.unwrap(), history);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the host figures: {w:?}, CPU seen {cpu_seen:?}, history {history:?}\n{}",
                env.log("worker")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(
            history
                .iter()
                .all(|m| m.host.mem_total_bytes > 0
                    && m.host.mem_used_bytes <= m.host.mem_total_bytes),
            "{history:?}"
        );
        let mut at: Vec<_> = history.iter().map(|m| m.sampled_at).collect();
        at.dedup();
        assert_eq!(at.len(), history.len(), "one row per interval: {history:?}");
        assert_eq!(
            common::ended(&*store, id).await.status,
            InstanceStatus::Succeeded
        );

        // `status` prints them, `status --json` has them
        let out = env.ok(&["status"]);
        assert!(
            out.contains("CPU") && out.contains("DISK FREE") && out.contains("iB /"),
            "{out}"
        );
        let json: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
        let row = json["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["id"] == worker.id.as_str())
            .cloned()
            .expect("the worker in status --json");
        assert!(row["mem_total_bytes"].as_i64().unwrap() > 0, "{row}");
        assert!(row["disk_free_bytes"].as_i64().unwrap() > 0, "{row}");

        // pruning takes the history older than its age (here: everything up to now)
        let pruned: serde_json::Value =
            serde_json::from_str(&env.ok(&["prune", "--older-than", "0s", "--json"])).unwrap();
        let n = pruned["deleted"]["worker_metric"].as_u64().unwrap();
        assert!(n >= history.len() as u64, "{pruned}");
        let left = store
            .worker_metric_list(chrono::Utc::now() - chrono::Duration::hours(1), 1000)
            .await
            .unwrap();
        assert!(
            left.iter()
                .all(|m| !at.contains(&m.sampled_at) || m.worker_id != worker.id),
            "pruned rows are gone: {left:?}"
        );
    }

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
        let port = common::free_port();
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

    /// A master with nothing due skips its idle ticks, but never so long that a lock which is a
    /// lease (SQLite's, 3 s) lapses: the standby must not take over from a live master.
    pub async fn an_idle_master_keeps_its_term(env: &mut Env) {
        env.sync(&[(
            "yearly.xml",
            r#"<work-flow name="yearly"><coordinator><depend-list cron="0 0 1 1 *"/></coordinator>
  <start name="start" to="a"/><action name="a"><shell><command>true</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        )]);
        // the default lease: with the tests' 3 s one every tick is a full duty cycle
        std::fs::write(
            env.path().join("akkaflow.toml"),
            common::TEST_CONFIG.replace("lease_ttl_secs = 3", "lease_ttl_secs = 15"),
        )
        .unwrap();
        let store = env.store().await;
        env.spawn("s1", &["scheduler"]);
        env.spawn("s2", &["scheduler"]);
        let master = wait_for(LONG, "a master", || master_pid(&*store, None)).await;
        let epoch_of = |rows: &[akkaflow::store::SchedulerRow]| {
            rows.iter()
                .find(|r| r.state == "master")
                .map(|r| (r.pid, r.epoch))
        };
        let before = epoch_of(&store.scheduler_list().await.unwrap());
        // several lease lengths and two full duty cycles of idleness
        tokio::time::sleep(Duration::from_secs(12)).await;
        let rows = store.scheduler_list().await.unwrap();
        assert_eq!(
            rows.iter().filter(|r| r.state == "master").count(),
            1,
            "one master: {rows:?}"
        );
        assert_eq!(epoch_of(&rows), before, "the same term: {rows:?}");
        assert_eq!(before.map(|b| b.0), Some(master));
        assert!(
            !env.log("s1").contains("lost the master lock")
                && !env.log("s2").contains("lost the master lock"),
            "no master stepped down:\n{}\n{}",
            env.log("s1"),
            env.log("s2")
        );
    }
}

e2e!(
    the_fleet_rides_out_a_database_outage,
    an_idle_master_keeps_its_term,
    a_standby_takes_over_when_the_master_is_sigkilled,
    sigterm_hands_running_tasks_back_without_counting_an_attempt,
    a_sigkilled_workers_tasks_are_all_rescued,
    a_fleet_without_retries_rides_out_a_killed_master_and_worker,
    a_task_that_kills_its_worker_fails_after_the_lost_budget,
    health_is_about_one_role_only,
    a_busy_worker_reports_its_host_and_keeps_a_history,
);
