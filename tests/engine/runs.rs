//! A run's nodes and attempts: the DAG, retries, timeouts, attempt directories, actions on named workers, output.

use super::*;

pub async fn fork_join_runs_both_branches_and_joins_once(env: &mut Env) {
    env.sync(&[(
        "fj.xml",
        r#"<work-flow name="fj">
  <start name="start" to="split"/>
  <fork name="split"><path to="a"/><path to="b"/></fork>
  <action name="a"><shell><command>sleep 0.3; echo a</command></shell><ok to="j"/></action>
  <action name="b"><shell><command>echo b</command></shell><ok to="j"/></action>
  <join name="j" to="c"/>
  <action name="c"><shell><command>echo c</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
    )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "fj");
    let inst = ended(&*store, id).await;
    assert_eq!(inst.status, InstanceStatus::Succeeded, "{inst:?}");
    for node in ["a", "b", "c", "j", "split"] {
        assert_eq!(
            task(&*store, id, node).await.status,
            TaskStatus::Succeeded,
            "{node}"
        );
    }
    let events = store
        .event_list(&akkaflow::store::EventFilter {
            instance_id: Some(id),
            after_id: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let join_fired = events
        .iter()
        .filter(|e| e.node.as_deref() == Some("j") && e.to_status.as_deref() == Some("succeeded"))
        .count();
    assert_eq!(join_fired, 1, "the join fires exactly once");
    let logs = env.ok(&["logs", &id.to_string()]);
    assert!(
        logs.contains("[a#1] a") && logs.contains("[c#1] c"),
        "{logs}"
    );
}

pub async fn failure_follows_the_error_path(env: &mut Env) {
    env.sync(&[(
            "ep.xml",
            &linear(
                "ep",
                r#"<action name="a"><shell><command><![CDATA[echo broken >&2; exit 2]]></command></shell><ok to="end"/><error to="b"/></action>
  <action name="b"><shell><command>echo recovering</command></shell><ok to="end"/></action>"#,
            ),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "ep");
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
    let a = task(&*store, id, "a").await;
    assert_eq!((a.status, a.exit_code), (TaskStatus::Failed, Some(2)));
    assert_eq!(task(&*store, id, "b").await.status, TaskStatus::Succeeded);
    let logs = env.ok(&["logs", &id.to_string()]);
    assert!(logs.contains("[a#1 stderr] broken"), "{logs}");
}

pub async fn retry_then_success_counts_two_attempts(env: &mut Env) {
    let marker = env.path().join("marker");
    env.sync(&[(
            "rt.xml",
            &linear(
                "rt",
                &format!(
                    r#"<action name="a" retry-times="2" interval="1"><shell><command>if [ -e {m} ]; then echo ok; else touch {m}; exit 1; fi</command></shell><ok to="end"/></action>"#,
                    m = marker.display()
                ),
            ),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "rt");
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
    let a = task(&*store, id, "a").await;
    assert_eq!(a.attempt, 2);
    let attempts = store.task_attempt_list(id).await.unwrap();
    let outcomes: Vec<_> = attempts
        .iter()
        .map(|x| (x.attempt, x.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, vec![(1, "failed"), (2, "succeeded")]);
}

/// Each attempt runs in a directory of its own under the work directory (relative by default,
/// resolved once by the worker), made when its action starts; one that cannot be made fails
/// the attempt saying so.
pub async fn each_attempt_runs_in_a_fresh_directory_of_its_own(env: &mut Env) {
    env.config("work_dir = \"runs\"");
    env.sync(&[
            (
                "wd.xml",
                &linear(
                    "wd",
                    r#"<action name="a" retry-times="2" interval="0"><shell><command>pwd; ls -A | wc -l; [ "$AKKAFLOW_WORK_DIR" = "$(pwd)" ] || exit 3; [ -e ../*-1/left-here ] || { touch left-here; exit 1; }</command></shell><ok to="end"/></action>"#,
                ),
            ),
            (
                "nowd.xml",
                &linear(
                    "nowd",
                    r#"<action name="a"><shell><command>echo never</command></shell><ok to="end"/></action>"#,
                ),
            ),
        ]);
    env.spawn("scheduler", &["scheduler"]);
    let worker = env.spawn("worker", &["worker", "--slots", "4", "--name", "w1"]);
    let store = env.store().await;
    let id = trigger(env, "wd");
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
    let a = task(&*store, id, "a").await;
    assert_eq!(a.attempt, 2, "the first attempt found no earlier one");
    let root = std::fs::canonicalize(env.path()).unwrap().join("runs");
    let logs = env.ok(&["logs", &id.to_string()]);
    for n in [1, 2] {
        let dir = root.join(id.to_string()).join(format!("{}-{n}", a.id));
        assert!(
            logs.contains(&format!("[a#{n}] {}\n", dir.display()))
                && logs.contains(&format!("[a#{n}] 0\n")),
            "attempt {n} runs in {}, empty at its start: {logs}",
            dir.display()
        );
    }

    // a work directory that cannot be made (a file is in the way) fails the attempt, saying why
    env.stop(worker, Signal::SIGTERM);
    std::fs::write(root.join("blocked"), "").unwrap();
    env.vars.push((
        "AKKAFLOW_WORK_DIR".into(),
        root.join("blocked").display().to_string(),
    ));
    env.spawn("worker2", &["worker", "--slots", "1", "--name", "w2"]);
    let id = trigger(env, "nowd");
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
    let a = task(&*store, id, "a").await;
    assert!(
        a.error
            .as_deref()
            .is_some_and(|e| e.starts_with("cannot create working directory")),
        "{:?}",
        a.error
    );
}

pub async fn a_task_running_again_shows_its_last_error_only_as_an_attempt(env: &mut Env) {
    let marker = env.path().join("marker");
    env.sync(&[(
            "again.xml",
            &linear(
                "again",
                &format!(
                    r#"<action name="a" retry-times="2" interval="0"><shell><command>if [ -e {m} ]; then sleep 60; else touch {m}; exit 7; fi</command></shell><ok to="end"/></action>"#,
                    m = marker.display()
                ),
            ),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "again");
    wait_for(LONG, "the second attempt to run", || async {
        let a = task(&*store, id, "a").await;
        match (a.status, a.attempt) {
            (TaskStatus::Running, 2) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // the first attempt's error is kept in the task row, but it is not the task's state now:
    // `instance info` lists it with its attempt and leaves the running task's error empty
    let info = env.ok(&["instance", "info", &id.to_string()]);
    assert_eq!(
        info.matches("exited with code 7").count(),
        1,
        "once, in the attempts: {info}"
    );
    assert!(info.contains("1 failed"), "{info}");
    env.ok(&["instance", "kill", &id.to_string()]);
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Killed);
}

pub async fn timeout_kills_the_attempt_and_fails(env: &mut Env) {
    let pidfile = env.path().join("pid");
    env.sync(&[(
            "to.xml",
            &linear(
                "to",
                &format!(r#"<action name="a" timeout="1"><shell><command>echo $$ > {}; sleep 30</command></shell><ok to="end"/></action>"#, pidfile.display()),
            ),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "to");
    let inst = ended(&*store, id).await;
    assert_eq!(inst.status, InstanceStatus::Failed);
    let a = task(&*store, id, "a").await;
    assert!(
        a.error
            .as_deref()
            .unwrap_or("")
            .contains("timed out after 1s"),
        "{a:?}"
    );
    let attempts = store.task_attempt_list(id).await.unwrap();
    assert_eq!(attempts[0].outcome.as_str(), "timed_out");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the timed-out process group is gone"
    );
}

pub async fn ignored_action_succeeds_without_running(env: &mut Env) {
    env.sync(&[(
            "ig.xml",
            &linear(
                "ig",
                r#"<action name="a" is-ignore="true"><shell><command>exit 1</command></shell><ok to="b"/></action>
  <action name="b"><shell><command>echo b</command></shell><ok to="end"/></action>"#,
            ),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "ig");
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
    let a = task(&*store, id, "a").await;
    assert_eq!((a.status, a.attempt), (TaskStatus::Succeeded, 0));
}

pub async fn kill_node_kills_the_instance_with_its_message(env: &mut Env) {
    env.sync(&[(
            "kn.xml",
            &linear(
                "kn",
                r#"<action name="a"><shell><command>exit 1</command></shell><ok to="end"/><error to="stop"/></action>
  <kill name="stop"><message>source data missing</message></kill>"#,
            ),
        )]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "kn");
    let inst = ended(&*store, id).await;
    assert_eq!(inst.status, InstanceStatus::Killed);
    assert!(
        inst.error
            .as_deref()
            .unwrap_or("")
            .contains("source data missing"),
        "{inst:?}"
    );
    assert_eq!(task(&*store, id, "end").await.status, TaskStatus::Skipped);
}

pub async fn instance_limit_holds_extra_instances_pending(env: &mut Env) {
    env.sync(&[(
        "il.xml",
        r#"<work-flow name="il" instance-limit="1">
  <start name="start" to="a"/>
  <action name="a"><shell><command>sleep 1</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
    )]);
    let store = env.store().await;
    let first = trigger(env, "il");
    let second = trigger(env, "il");
    assert_eq!(
        store.instance_get(first).await.unwrap().unwrap().status,
        InstanceStatus::Running
    );
    assert_eq!(
        store.instance_get(second).await.unwrap().unwrap().status,
        InstanceStatus::Pending
    );
    let info = env.ok(&["instance", "info", &second.to_string()]);
    assert!(
            info.contains(&format!(
                "waiting    for a free slot: instance-limit 1 of `il` is taken by running instance(s) {first}"
            )),
            "a pending instance says why:\n{info}"
        );
    fleet(env);
    let a = ended(&*store, first).await;
    let b = ended(&*store, second).await;
    assert_eq!(
        (a.status, b.status),
        (InstanceStatus::Succeeded, InstanceStatus::Succeeded)
    );
    assert!(
        b.started_at.unwrap() >= a.ended_at.unwrap(),
        "the second started after the first ended"
    );
}

pub async fn host_pins_an_action_to_a_named_worker(env: &mut Env) {
    env.sync(&[(
        "hp.xml",
        r#"<work-flow name="hp" instance-limit="10"><start name="start" to="a"/>
  <action name="a" host="special"><shell><command>echo pinned</command></shell><ok to="b"/></action>
  <action name="b"><shell><command>echo anywhere</command></shell><ok to="end"/></action>
  <end name="end"/></work-flow>"#,
    )]);
    env.spawn("scheduler", &["scheduler"]);
    env.spawn("w1", &["worker", "--name", "plain"]);
    env.spawn("w2", &["worker", "--name", "special", "--slots", "1"]);
    let store = env.store().await;
    let ids: Vec<_> = (0..4).map(|_| trigger(env, "hp")).collect();
    for id in ids {
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
        let a = task(&*store, id, "a").await;
        let attempts = store.task_attempt_list(id).await.unwrap();
        let worker = attempts
            .iter()
            .find(|x| x.task_id == a.id)
            .and_then(|x| x.worker_id.clone())
            .unwrap();
        assert!(
            worker.starts_with("special-"),
            "pinned action ran on {worker}"
        );
    }
}

pub async fn script_runs_with_shebang_arguments_attachments_and_parameters(env: &mut Env) {
    env.write("xmlconfig/data.txt", "attached data\n");
    env.sync(&[(
            "sc.xml",
            r#"<work-flow name="sc">
  <param-list><param name="who"/><param name="greeting" value="hello"/></param-list>
  <start name="start" to="py"/>
  <action name="py">
    <script>
      <code><![CDATA[
        #!/usr/bin/env python3
        import os, sys
        print("args", sys.argv[1:])
        print("env", os.environ["AKKAFLOW_PARAM_who"], "${param:greeting}")
        if True:
            print(open("data.txt").read().strip())
      ]]></code>
      <param-line>one "two words"</param-line>
      <attach-list><file>data.txt</file></attach-list>
    </script>
    <ok to="sh"/>
  </action>
  <action name="sh"><script><code>echo "bash by default: $BASH_VERSION" | cut -c1-16; echo "${param:who}"</code></script><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
        )]);
    fleet(env);
    let store = env.store().await;
    let id = InstanceId(
        env.ok(&["workflow", "run", "sc", "--param", "who=akka"])
            .trim()
            .parse()
            .unwrap(),
    );
    let inst = ended(&*store, id).await;
    let logs = env.ok(&["logs", &id.to_string()]);
    assert_eq!(inst.status, InstanceStatus::Succeeded, "{logs}");
    assert!(logs.contains("[py#1] args ['one', 'two words']"), "{logs}");
    assert!(logs.contains("[py#1] env akka hello"), "{logs}");
    assert!(logs.contains("[py#1] attached data"), "{logs}");
    assert!(logs.contains("[sh#1] bash by default:"), "{logs}");
    assert!(logs.contains("[sh#1] akka"), "{logs}");
    let missing = env.run(&["workflow", "run", "sc"]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "a run without a required parameter is refused"
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("who"),
        "names it: {}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

pub async fn output_past_the_cap_is_truncated_with_a_marker(env: &mut Env) {
    env.write(
        "akkaflow.toml",
        &format!("{}log_max_lines = 5\n", common::TEST_CONFIG),
    );
    env.sync(&[("lc.xml", &linear("lc", r#"<action name="a"><shell><command>seq 1 100</command></shell><ok to="end"/></action>"#))]);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, "lc");
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
    let logs = env.ok(&["logs", &id.to_string()]);
    assert!(logs.contains("output truncated after 5 lines"), "{logs}");
    assert!(!logs.contains("[a#1] 50"), "{logs}");
    assert!(logs.lines().count() < 10, "{logs}");
}
