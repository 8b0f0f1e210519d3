//! Load: hundreds of fork/join instances across three workers and two schedulers, with the master
//! and a worker SIGKILLed mid-run. Every instance must succeed and the invariant checker find
//! nothing. `AKKAFLOW_SOAK_INSTANCES` sets the size (default 500).

mod common;

use std::time::{Duration, Instant};

use akkaflow::engine::{CreateInstance, Engine};
use akkaflow::state::{InstanceStatus, TriggerKind};
use akkaflow::store::InstanceFilter;
use common::{wait_for, Env};
use nix::sys::signal::Signal;

fn instances() -> usize {
    std::env::var("AKKAFLOW_SOAK_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn fork_join_xml() -> String {
    // no retry-times: a task lost with its worker is run again without one
    common::fork_join_xml(
        r#"name="soak" instance-limit="1000""#,
        9,
        "",
        |_| "true".into(),
        Some("true"),
    )
}

mod cases {
    use super::*;

    pub async fn soak_survives_a_killed_master_and_worker(env: &mut Env) {
        let n = instances();
        env.sync(&[("soak.xml", &fork_join_xml())]);
        let store = env.store().await;
        let s1 = env.spawn("s1", &["scheduler"]);
        let s2 = env.spawn("s2", &["scheduler"]);
        let w1 = env.spawn("w1", &["worker", "--slots", "8", "--name", "w1"]);
        env.spawn("w2", &["worker", "--slots", "8", "--name", "w2"]);
        env.spawn("w3", &["worker", "--slots", "8", "--name", "w3"]);
        let engine = Engine::new(store.clone(), chrono_tz::UTC);
        let started = Instant::now();
        for _ in 0..n {
            let req = CreateInstance {
                workflow: "soak".into(),
                trigger: TriggerKind::Run,
                scheduled_for: None,
                params: Default::default(),
                coordinator_params: false,
                parent: None,
                actor: "soak".into(),
            };
            engine.create_instance(&req).await.unwrap();
        }
        let done = |store: std::sync::Arc<dyn akkaflow::store::Store>| async move {
            store
                .instance_list(&InstanceFilter {
                    status: Some(InstanceStatus::Succeeded),
                    limit: 100_000,
                    ..Default::default()
                })
                .await
                .map(|l| l.len())
                .map_err(|e| e.to_string())
        };
        wait_for(
            Duration::from_secs(600),
            "a fifth of the instances",
            || async {
                let d = done(store.clone()).await?;
                if d >= n / 5 {
                    Ok(())
                } else {
                    Err(d.to_string())
                }
            },
        )
        .await;
        // kill the master (whichever it is) and a worker mid-run
        let master = store
            .scheduler_list()
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.state == "master")
            .map(|r| r.pid);
        let victim = if master == Some(i64::from(env.pid(s1))) {
            s1
        } else {
            s2
        };
        env.stop(victim, Signal::SIGKILL);
        env.stop(w1, Signal::SIGKILL);
        wait_for(
            Duration::from_secs(900),
            "every instance to succeed",
            || async {
                let d = done(store.clone()).await?;
                if d == n {
                    Ok(())
                } else {
                    Err(format!("{d} of {n}"))
                }
            },
        )
        .await;
        let secs = started.elapsed().as_secs_f64();
        let all = store
            .instance_list(&InstanceFilter {
                limit: 100_000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), n);
        assert!(all.iter().all(|i| i.status == InstanceStatus::Succeeded));
        println!(
            "soak ({:?}): {n} instances, {} tasks in {secs:.1}s ({:.0} tasks/s) with a master and a worker SIGKILLed",
            env.db,
            n * 10,
            (n * 10) as f64 / secs
        );
    }
}

e2e!(soak_survives_a_killed_master_and_worker);
