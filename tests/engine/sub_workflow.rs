//! Sub-workflows: the parent waits for its child (or not), takes its result, and kills it with itself.

use super::*;

const CHILD: &str = r#"<work-flow name="child" instance-limit="10">
  <param-list><param name="who"/><param name="fail" value="no"/><param name="nap" value="0"/></param-list>
  <start name="start" to="c"/>
  <action name="c"><shell><command>echo "child of ${param:who}"; sleep ${param:nap}; test "${param:fail}" = no</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;

fn parent(wait: bool) -> String {
    format!(
        r#"<work-flow name="parent" instance-limit="10">
  <param-list><param name="who" value="the parent"/><param name="nap" value="0"/><param name="fail" value="no"/></param-list>
  <start name="start" to="sub"/>
  <action name="sub"><sub-workflow name="child" wait="{wait}"/><ok to="after"/><error to="handled"/></action>
  <action name="after"><shell><command>echo after</command></shell><ok to="end"/></action>
  <action name="handled"><shell><command>echo handled</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#
    )
}

async fn child_of(store: &dyn Store, parent: InstanceId) -> InstanceRow {
    wait_for(LONG, "the child instance", || async {
        let list = common::instances_of(&*store, "child").await?;
        list.into_iter()
            .find(|i| i.parent_instance_id == Some(parent))
            .ok_or_else(|| "none yet".to_string())
    })
    .await
}

pub async fn sub_workflow_waits_for_its_child_and_takes_its_result(env: &mut Env) {
    env.sync(&[("child.xml", CHILD), ("parent.xml", &parent(true))]);
    fleet(env);
    let store = env.store().await;
    let ok = InstanceId(
        env.ok(&["workflow", "run", "parent"])
            .trim()
            .parse()
            .unwrap(),
    );
    assert_eq!(ended(&*store, ok).await.status, InstanceStatus::Succeeded);
    let child = child_of(&*store, ok).await;
    assert_eq!(
        (child.status, child.trigger_kind.as_str()),
        (InstanceStatus::Succeeded, "sub_workflow")
    );
    assert!(
        env.ok(&["logs", &child.id.to_string()])
            .contains("child of the parent"),
        "the parent's parameters"
    );
    assert_eq!(
        task(&*store, ok, "after").await.status,
        TaskStatus::Succeeded
    );
    let bad = InstanceId(
        env.ok(&["workflow", "run", "parent", "--param", "fail=yes"])
            .trim()
            .parse()
            .unwrap(),
    );
    assert_eq!(
        ended(&*store, bad).await.status,
        InstanceStatus::Succeeded,
        "the error edge handled it"
    );
    let sub = task(&*store, bad, "sub").await;
    assert_eq!(sub.status, TaskStatus::Failed);
    assert!(
        sub.error
            .as_deref()
            .unwrap_or("")
            .contains("sub-workflow `child`"),
        "{sub:?}"
    );
    assert_eq!(
        task(&*store, bad, "handled").await.status,
        TaskStatus::Succeeded
    );
}

pub async fn killing_the_parent_kills_the_child(env: &mut Env) {
    env.sync(&[("child.xml", CHILD), ("parent.xml", &parent(true))]);
    fleet(env);
    let store = env.store().await;
    let id = InstanceId(
        env.ok(&["workflow", "run", "parent", "--param", "nap=60"])
            .trim()
            .parse()
            .unwrap(),
    );
    let child = child_of(&*store, id).await;
    wait_for(LONG, "the child's task to run", || async {
        let t = task(&*store, child.id, "c").await;
        if t.status == TaskStatus::Running {
            Ok(())
        } else {
            Err(format!("{:?}", t.status))
        }
    })
    .await;
    env.ok(&["instance", "kill", &id.to_string()]);
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Killed);
    let child = ended(&*store, child.id).await;
    assert_eq!(child.status, InstanceStatus::Killed);
    assert!(
        child
            .error
            .as_deref()
            .unwrap_or("")
            .contains(&format!("parent instance {id}")),
        "{child:?}"
    );
}

pub async fn sub_workflow_without_wait_moves_on_at_once(env: &mut Env) {
    env.sync(&[("child.xml", CHILD), ("parent.xml", &parent(false))]);
    fleet(env);
    let store = env.store().await;
    let id = InstanceId(
        env.ok(&["workflow", "run", "parent", "--param", "nap=2"])
            .trim()
            .parse()
            .unwrap(),
    );
    let parent = ended(&*store, id).await;
    assert_eq!(parent.status, InstanceStatus::Succeeded);
    let child = child_of(&*store, id).await;
    assert_eq!(
        ended(&*store, child.id).await.status,
        InstanceStatus::Succeeded
    );
    assert!(
        parent.ended_at.unwrap() <= ended(&*store, child.id).await.ended_at.unwrap(),
        "the parent did not wait"
    );
}
