//! Retention through the real binary, on each backend: `akkaflow prune` deletes ended instance
//! trees with every row they own, keeps what has not ended, reports per table, and the scheduler
//! carries on (dependencies fire again) after its history is gone.

mod common;

use std::time::Duration;

use akkaflow::state::{InstanceId, InstanceStatus, TaskStatus};
use akkaflow::store::{EventFilter, LogQuery, Store};
use common::{ended, wait_for, Env};

const LONG: Duration = Duration::from_secs(60);

const CHILD: &str = r#"<work-flow name="child" instance-limit="10">
  <start name="start" to="c"/>
  <action name="c"><shell><command>echo child line</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;

const PARENT: &str = r#"<work-flow name="parent" instance-limit="10" retention-days="400">
  <start name="start" to="sub"/>
  <action name="sub"><sub-workflow name="child"/><ok to="after"/></action>
  <action name="after"><shell><command>echo parent line</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;

const DOWN: &str = r#"<work-flow name="down">
  <coordinator><depend-list><workflow name="parent"/></depend-list></coordinator>
  <start name="start" to="d"/>
  <action name="d"><shell><command>echo down line</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;

const SLOW: &str = r#"<work-flow name="slow">
  <start name="start" to="s"/>
  <action name="s"><shell><command>sleep 300</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;

const PARKED: &str = r#"<work-flow name="parked">
  <start name="start" to="p"/>
  <action name="p" host="nobody"><shell><command>echo never</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;

fn id(text: String) -> InstanceId {
    InstanceId(text.trim().parse().expect("an instance id"))
}

async fn only_instance(store: &dyn Store, workflow: &str) -> Result<InstanceId, String> {
    let list = common::instances_of(store, workflow).await?;
    match list.as_slice() {
        [one] if one.status.is_terminal() => Ok(one.id),
        other => Err(format!("{other:?}")),
    }
}

fn prune_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["prune", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&env.ok(&all)).expect("prune --json prints JSON")
}

mod cases {
    use super::*;

    pub async fn prune_deletes_ended_trees_with_their_rows_and_keeps_the_rest(env: &mut Env) {
        env.sync(&[
            ("child.xml", CHILD),
            ("parent.xml", PARENT),
            ("down.xml", DOWN),
            ("slow.xml", SLOW),
        ]);
        env.spawn("scheduler", &["scheduler"]);
        env.spawn("worker", &["worker", "--slots", "4", "--name", "w1"]);
        let store = env.store().await;
        let parent = id(env.ok(&["workflow", "trigger", "parent"]));
        assert_eq!(
            ended(&*store, parent).await.status,
            InstanceStatus::Succeeded
        );
        let child = wait_for(LONG, "the child", || only_instance(&*store, "child")).await;
        // the dependency on `parent` fires `down`
        let down = wait_for(LONG, "down to fire and end", || {
            only_instance(&*store, "down")
        })
        .await;
        let slow = id(env.ok(&["workflow", "run", "slow"]));
        wait_for(LONG, "slow's task to run", || async {
            match store
                .task_list(slow)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .find(|t| t.node == "s")
            {
                Some(t) if t.status == TaskStatus::Running => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        let mut old_tasks = Vec::new();
        for i in [parent, child, down] {
            old_tasks.extend(store.task_list(i).await.unwrap().iter().map(|t| t.id));
        }
        let lines = LogQuery {
            task_ids: old_tasks.clone(),
            after: None,
            limit: 1000,
            contains: None,
        };
        assert!(store.task_log_read(&lines).await.unwrap().len() >= 3);

        // the configured 30 days have not passed
        let none = prune_json(env, &["--dry-run"]);
        assert_eq!(none["instances"], 0, "{none}");
        assert_eq!(none["deleted"]["workflow_instance"], 0, "{none}");
        // every ended instance: the parent's tree (parent, child) and down; never slow
        let dry = prune_json(env, &["--older-than", "0s", "--dry-run"]);
        assert_eq!(dry["instances"], 2, "{dry}");
        assert_eq!(dry["deleted"]["workflow_instance"], 3, "{dry}");
        assert!(dry["deleted"]["task_log"].as_u64().unwrap() >= 3, "{dry}");
        assert!(
            store.instance_get(parent).await.unwrap().is_some(),
            "a dry run deletes nothing"
        );

        let out = env.ok(&["prune", "--older-than", "0s"]);
        assert!(
            out.contains("task_log") && out.contains("pruned 2 instances"),
            "{out}"
        );
        for gone in [parent, child, down] {
            assert!(
                store.instance_get(gone).await.unwrap().is_none(),
                "{gone} pruned"
            );
            assert!(store.task_list(gone).await.unwrap().is_empty());
            let events = store
                .event_list(&EventFilter {
                    instance_id: Some(gone),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(events.is_empty(), "{events:?}");
            assert!(store.task_attempt_list(gone).await.unwrap().is_empty());
        }
        assert!(store.task_log_read(&lines).await.unwrap().is_empty());
        let running = store
            .instance_get(slow)
            .await
            .unwrap()
            .expect("slow is kept");
        assert!(!running.status.is_terminal());
        assert_eq!(store.task_list(slow).await.unwrap().len(), 3);

        // nothing the scheduler needs was pruned: the next parent fires down again
        let again = id(env.ok(&["workflow", "trigger", "parent"]));
        assert_eq!(
            ended(&*store, again).await.status,
            InstanceStatus::Succeeded
        );
        let down2 = wait_for(LONG, "down to fire again", || {
            only_instance(&*store, "down")
        })
        .await;
        assert_ne!(down2, down);
        // pruning again finds nothing new that is 30 days old
        let after = prune_json(env, &[]);
        assert_eq!(after["deleted"]["workflow_instance"], 0, "{after}");
        env.ok(&["check"]);
    }

    pub async fn a_new_master_prunes_at_the_start_of_its_term(env: &mut Env) {
        env.sync(&[("child.xml", CHILD)]);
        let sched = env.spawn("scheduler", &["scheduler"]);
        env.spawn("worker", &["worker", "--slots", "2", "--name", "w1"]);
        let store = env.store().await;
        let old = id(env.ok(&["workflow", "trigger", "child"]));
        assert_eq!(ended(&*store, old).await.status, InstanceStatus::Succeeded);
        let kept = id(env.ok(&["workflow", "trigger", "child"]));
        assert_eq!(ended(&*store, kept).await.status, InstanceStatus::Succeeded);
        env.stop(sched, nix::sys::signal::Signal::SIGTERM);
        // the first instance ended 60 days ago, past the default retention of 30 days
        let ago = match env.db {
            common::Db::Sqlite => "strftime('%Y-%m-%d %H:%M:%f','now','-60 days')",
            common::Db::Mysql => "(NOW(6) - INTERVAL 60 DAY)",
            common::Db::Postgres => "(now() - interval '60 days')",
        };
        common::exec_sql(
            env,
            &format!(
                "UPDATE workflow_instance SET created_at = {ago}, started_at = {ago}, ended_at = {ago} WHERE id = {}",
                old.0
            ),
        )
        .await;
        // the pass interval is 10 minutes: only a pass at the start of the term meets the wait
        env.spawn("scheduler2", &["scheduler"]);
        wait_for(LONG, "the new master to prune the old instance", || async {
            match store.instance_get(old).await.map_err(|e| e.to_string())? {
                None => Ok(()),
                Some(i) => Err(format!("still there: {:?}", i.status)),
            }
        })
        .await;
        assert!(
            store.instance_get(kept).await.unwrap().is_some(),
            "a recent instance is kept"
        );
        assert!(
            store.task_list(old).await.unwrap().is_empty(),
            "its tasks went with it"
        );
    }

    pub async fn a_prune_pass_goes_gently_while_ready_tasks_wait(env: &mut Env) {
        env.sync(&[("child.xml", CHILD), ("parked.xml", PARKED)]);
        env.spawn("scheduler", &["scheduler"]);
        env.spawn("worker", &["worker", "--slots", "2", "--name", "w1"]);
        let store = env.store().await;
        let old = id(env.ok(&["workflow", "trigger", "child"]));
        assert_eq!(ended(&*store, old).await.status, InstanceStatus::Succeeded);
        // a task no worker serves: ready and due, as in a fleet with a queue to drain
        let parked = id(env.ok(&["workflow", "trigger", "parked"]));
        wait_for(LONG, "parked's task to be ready", || async {
            match store
                .task_list(parked)
                .await
                .map_err(|e| e.to_string())?
                .iter()
                .find(|t| t.node == "p")
            {
                Some(t) if t.status == TaskStatus::Ready => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        let busy = prune_json(env, &["--older-than", "0s"]);
        assert_eq!(busy["instances"], 1, "{busy}");
        assert!(busy["transactions"].as_u64().unwrap() >= 1, "{busy}");
        assert_eq!(busy["busy_transactions"], busy["transactions"], "{busy}");
        assert!(store.instance_get(old).await.unwrap().is_none());

        // the queue drained: the full pace again
        env.ok(&["instance", "kill", &parked.to_string()]);
        assert_eq!(ended(&*store, parked).await.status, InstanceStatus::Killed);
        let idle = prune_json(env, &["--older-than", "0s"]);
        assert_eq!(idle["instances"], 1, "{idle}");
        assert!(idle["transactions"].as_u64().unwrap() >= 1, "{idle}");
        assert_eq!(idle["busy_transactions"], 0, "{idle}");
    }

    pub async fn prune_refuses_a_bad_duration_and_changes_nothing(env: &mut Env) {
        let out = env.run(&["prune", "--older-than", "3 days"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("expected a number and a unit"), "{err}");
    }
}

e2e!(
    prune_deletes_ended_trees_with_their_rows_and_keeps_the_rest,
    a_new_master_prunes_at_the_start_of_its_term,
    a_prune_pass_goes_gently_while_ready_tasks_wait,
    prune_refuses_a_bad_duration_and_changes_nothing,
);
