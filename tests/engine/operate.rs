//! What operators do and what goes wrong: task retry and kill, rerun, the invariant checker, lost workers and their rescue.

use super::*;

pub async fn task_retry_reruns_a_failed_task_and_the_instance_continues(env: &mut Env) {
    let marker = env.path().join("fixed");
    env.sync(&[(
            "tr.xml",
            &linear(
                "tr",
                &format!(
                    r#"<action name="a"><shell><command>test -e {}</command></shell><ok to="b"/></action>
  <action name="b"><shell><command>echo b</command></shell><ok to="end"/></action>"#,
                    marker.display()
                ),
            ),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "tr");
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
    let a = task(&*store, id, "a").await;
    let refused = env.run(&[
        "task",
        "retry",
        &task(&*store, id, "b").await.id.to_string(),
    ]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "retrying a skipped task is refused"
    );
    let first = store.instance_get(id).await.unwrap().unwrap();
    std::fs::write(&marker, "").unwrap();
    env.ok(&["task", "retry", &a.id.to_string()]);
    let retried = ended(&*store, id).await;
    assert_eq!(retried.status, InstanceStatus::Succeeded);
    assert_eq!(
        retried.started_at, first.started_at,
        "a retry does not move the instance's start"
    );
    assert!(retried.ended_at > first.ended_at);
    let a = task(&*store, id, "a").await;
    assert_eq!((a.status, a.attempt), (TaskStatus::Succeeded, 2));
    assert_eq!(task(&*store, id, "b").await.status, TaskStatus::Succeeded);
}

pub async fn task_kill_stops_a_sleeping_shell_task(env: &mut Env) {
    let pidfile = env.path().join("pid");
    env.sync(&[(
            "tk.xml",
            &linear("tk", &format!(r#"<action name="a"><shell><command>echo $$ > {}; sleep 60</command></shell><ok to="end"/></action>"#, pidfile.display())),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "tk");
    let a = wait_for(LONG, "a to run", || async {
        let t = task(&*store, id, "a").await;
        if t.status == TaskStatus::Running && pidfile.exists() {
            Ok(t)
        } else {
            Err(format!("{:?}", t.status))
        }
    })
    .await;
    env.ok(&["task", "kill", &a.id.to_string()]);
    let inst = ended(&*store, id).await;
    assert_eq!(inst.status, InstanceStatus::Killed);
    assert_eq!(task(&*store, id, "a").await.status, TaskStatus::Killed);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the killed process is gone"
    );
    let again = env.run(&["task", "kill", &a.id.to_string()]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "killing a finished task is refused"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already ended"));
}

pub async fn rerun_recover_keeps_succeeded_nodes(env: &mut Env) {
    let runs = env.path().join("runs");
    let marker = env.path().join("fixed");
    env.sync(&[(
            "rr.xml",
            &linear(
                "rr",
                &format!(
                    r#"<action name="a"><shell><command>echo run >> {r}</command></shell><ok to="b"/></action>
  <action name="b"><shell><command>test -e {m}</command></shell><ok to="end"/></action>"#,
                    r = runs.display(),
                    m = marker.display()
                ),
            ),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "rr");
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
    let running = env.run(&["instance", "kill", &id.to_string()]);
    assert_eq!(
        running.status.code(),
        Some(1),
        "killing a finished instance is refused"
    );
    std::fs::write(&marker, "").unwrap();
    env.ok(&["instance", "rerun", &id.to_string(), "--recover"]);
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap().lines().count(),
        1,
        "a ran once"
    );
}

pub async fn invariant_checker_reports_damage(env: &mut Env) {
    env.sync(&[(
        "ic.xml",
        &linear(
            "ic",
            r#"<action name="a"><shell><command>true</command></shell><ok to="end"/></action>"#,
        ),
    )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "ic");
    ended(&*store, id).await;
    assert_eq!(env.run(&["check"]).status.code(), Some(0));
    common::exec_sql(
        env,
        &format!("UPDATE workflow_instance SET status = 'running' WHERE id = {id}"),
    )
    .await;
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("instance running although all its tasks ended"));
    common::exec_sql(
        env,
        &format!("UPDATE workflow_instance SET status = 'succeeded' WHERE id = {id}"),
    )
    .await;
}

pub async fn sigkilled_workers_task_is_rescued_and_completes(env: &mut Env) {
    let started = env.path().join("started");
    env.sync(&[(
            "sk.xml",
            &linear(
                "sk",
                &format!(r#"<action name="a" retry-times="1"><shell><command>echo $AKKAFLOW_ATTEMPT >> {}; sleep 2</command></shell><ok to="end"/></action>"#, started.display()),
            ),
        )]);
    env.spawn("scheduler", &["scheduler"]);
    let w1 = env.spawn("worker1", &["worker", "--name", "w1"]);
    let store = env.store().await;
    let id = trigger(env, "sk");
    wait_for(LONG, "the first attempt to start", || async {
        if started.exists() {
            Ok(())
        } else {
            Err("not started".to_string())
        }
    })
    .await;
    env.stop(w1, Signal::SIGKILL);
    let killed_at = chrono::Utc::now();
    env.spawn("worker2", &["worker", "--name", "w2"]);
    let inst = ended(&*store, id).await;
    assert_eq!(inst.status, InstanceStatus::Succeeded);
    let attempts = store.task_attempt_list(id).await.unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|x| (x.attempt, x.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, vec![(1, "lost"), (2, "succeeded")]);
    assert!(attempts[0]
        .error
        .as_deref()
        .unwrap()
        .contains("lease expired"));
    let rescued_after = (attempts[0].ended_at - killed_at).num_milliseconds() as f64 / 1000.0;
    println!("rescue: the task was back in the queue {rescued_after:.1}s after its worker was SIGKILLed (lease 3 s)");
}

pub async fn rescuer_works_through_lost_leases_in_batches(env: &mut Env) {
    env.sync(&[(
        "lost.xml",
        r#"<work-flow name="lost">
  <start name="start" to="split"/>
  <fork name="split"><path to="a"/><path to="b"/><path to="c"/><path to="d"/><path to="e"/></fork>
  <action name="a" retry-times="1"><shell><command>true</command></shell><ok to="j"/></action>
  <action name="b" retry-times="1"><shell><command>true</command></shell><ok to="j"/></action>
  <action name="c" retry-times="1"><shell><command>true</command></shell><ok to="j"/></action>
  <action name="d" retry-times="1"><shell><command>true</command></shell><ok to="j"/></action>
  <action name="e" retry-times="1"><shell><command>true</command></shell><ok to="j"/></action>
  <join name="j" to="end"/>
  <end name="end"/>
</work-flow>"#,
    )]);
    let store = env.store().await;
    let id = trigger(env, "lost");
    // a worker that claims all five branches and dies: nobody heartbeats their leases
    let claimed = store
        .task_claim(&akkaflow::store::TaskClaimParams {
            worker_id: "ghost".into(),
            queues: vec!["default".into()],
            limit: 10,
            lease_ttl: Duration::from_secs(1),
            pools: vec![],
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5, "{claimed:?}");
    wait_for(LONG, "the five leases to expire", || async {
        let lost = store
            .task_lease_expired(10)
            .await
            .map_err(|e| e.to_string())?;
        if lost.len() == 5 {
            Ok(())
        } else {
            Err(format!("{} expired", lost.len()))
        }
    })
    .await;
    let engine = akkaflow::engine::Engine::new(store.clone(), chrono_tz::UTC);
    let cfg = akkaflow::scheduler::RescuerConfig {
        batch_size: 2,
        batch_pause: Duration::from_millis(1),
        max_batches: 10,
    };
    let rescuer = akkaflow::scheduler::Rescuer::new(engine, "test".into(), cfg).unwrap();
    let report = rescuer.run_once().await.unwrap();
    assert_eq!((report.rescued, report.batches), (5, 3), "{report:?}");
    // back to ready; the lost attempt spends no retry (max_attempts 2 + 1) but is counted lost
    for node in ["a", "b", "c", "d", "e"] {
        let t = task(&*store, id, node).await;
        assert_eq!(
            (t.status, t.attempt, t.max_attempts, t.lost_attempts),
            (TaskStatus::Ready, 1, 3, 1),
            "{node}"
        );
    }
    let lost = store.task_attempt_list(id).await.unwrap();
    assert_eq!(lost.len(), 5);
    assert!(
        lost.iter().all(|a| a.outcome.as_str() == "lost"),
        "{lost:?}"
    );
    let again = rescuer.run_once().await.unwrap();
    assert!(
        again.is_empty(),
        "a rescued task is not rescued twice: {again:?}"
    );
}

/// A task whose worker keeps dying (a claim by a "ghost" worker that never heartbeats) is run
/// again without spending retry-times, until its lost budget (`lost-times`) is spent: then it
/// fails saying so, with an event and a `lost` alert. A rerun gets the budget back.
pub async fn a_task_lost_past_its_budget_fails_with_an_event_and_an_alert(env: &mut Env) {
    env.sync(&[(
        "poison.xml",
        r#"<work-flow name="poison" mail-receivers="oncall@example.com" lost-times="5">
  <start name="start" to="a"/>
  <action name="a" lost-times="2"><shell><command>true</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
    )]);
    let store = env.store().await;
    let id = trigger(env, "poison");
    let engine = akkaflow::engine::Engine::new(store.clone(), chrono_tz::UTC);
    let rescuer = akkaflow::scheduler::Rescuer::new(
        engine,
        "test".into(),
        akkaflow::scheduler::RescuerConfig::default(),
    )
    .unwrap();
    // lose it twice: the action's lost-times (2) wins over the workflow's (5)
    for n in 1..=2i64 {
        let claimed = wait_for(LONG, "the task to be claimable", || async {
            let c = store
                .task_claim(&akkaflow::store::TaskClaimParams {
                    worker_id: format!("ghost{n}"),
                    queues: vec!["default".into()],
                    limit: 1,
                    lease_ttl: Duration::from_millis(200),
                    pools: vec![],
                })
                .await
                .map_err(|e| e.to_string())?;
            if c.is_empty() {
                Err("nothing to claim".to_string())
            } else {
                Ok(c)
            }
        })
        .await;
        assert_eq!(claimed[0].attempt, n);
        wait_for(LONG, "the lease to expire", || async {
            let r = rescuer.run_once().await.map_err(|e| e.to_string())?;
            if r.rescued == 1 {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        })
        .await;
        let t = task(&*store, id, "a").await;
        assert_eq!(t.lost_attempts, n, "{t:?}");
        if n == 1 {
            // not counted against retry-times (0): the attempt's place is given back
            assert_eq!((t.status, t.max_attempts), (TaskStatus::Ready, 2), "{t:?}");
        }
    }
    let t = task(&*store, id, "a").await;
    assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
    let error = t.error.clone().unwrap_or_default();
    assert!(
        error.starts_with("lost 2 times: the task may be killing its worker"),
        "{error}"
    );
    let inst = ended(&*store, id).await;
    assert_eq!(inst.status, InstanceStatus::Failed);
    let outcomes: Vec<_> = store
        .task_attempt_list(id)
        .await
        .unwrap()
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, vec![(1, "lost"), (2, "lost")]);
    let events = store
        .event_list(&akkaflow::store::EventFilter {
            instance_id: Some(id),
            after_id: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.kind == "task_rescued"
            && e.to_status.as_deref() == Some("failed")
            && e.message.starts_with("lost 2 times")),
        "{events:?}"
    );
    let alerts = store.alert_list(100).await.unwrap();
    let lost: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind.as_str() == "lost" && a.instance_id == Some(id))
        .collect();
    assert_eq!(lost.len(), 1, "{alerts:?}");
    assert!(
        lost[0].subject.contains("lost 2 times"),
        "{}",
        lost[0].subject
    );
    // instance info shows the lost attempts apart from failed ones
    let info = env.ok(&["instance", "info", &id.to_string()]);
    assert!(info.contains("(2 lost)"), "{info}");
    assert!(info.contains("0 failed, 2 lost"), "{info}");
    // a retry gets the lost budget back
    env.ok(&["task", "retry", &t.id.to_string()]);
    let t = task(&*store, id, "a").await;
    assert_eq!((t.status, t.lost_attempts), (TaskStatus::Ready, 0), "{t:?}");
    env.ok(&["instance", "kill", &id.to_string()]);
}
