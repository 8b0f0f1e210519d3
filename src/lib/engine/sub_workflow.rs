//! Sub-workflows: a `<sub-workflow>` node starts a child instance with its instance's parameters
//! inside the transaction that reaches it, then waits `running` (no worker, no lease) until the child
//! ends; the child's end, in its own transaction, finishes the node and advances the parent. Killing
//! the parent (or the node) kills the child.

use chrono::{DateTime, Utc};

use super::{by_node, states, BoxFut, CreateInstance, Engine};
use crate::definition::{ActionKind, NodeKind};
use crate::error::{Error, Result};
use crate::state::{InstanceId, InstanceStatus, TaskId, TaskStatus, TriggerKind};
use crate::store::{InstanceRow, NewEvent, StoreTx, TaskRow, TaskTransition};

/// `task.kind` of a sub-workflow node.
pub(crate) const KIND: &str = "sub-workflow";

impl Engine {
    /// Starts the child of a sub-workflow node that just became `running`. Returns the node's final
    /// status when it is already done: `wait="false"`, or a child that cannot start.
    pub(super) async fn start_child(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        task: &TaskRow,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<Option<TaskStatus>> {
        let def = self
            .definition(&inst.workflow, inst.workflow_version)
            .await?;
        let Some(NodeKind::Action(action)) = def.node(&task.node).map(|n| &n.kind) else {
            return Ok(None);
        };
        let ActionKind::SubWorkflow { workflow, wait } = &action.kind else {
            return Ok(None);
        };
        let req = CreateInstance {
            workflow: workflow.clone(),
            trigger: TriggerKind::SubWorkflow,
            scheduled_for: None,
            params: serde_json::from_str(&inst.params).unwrap_or_default(),
            coordinator_params: false,
            parent: Some((inst.id, task.id)),
            actor: actor.to_string(),
        };
        let (to, message) = match self.create_in_tx(tx, &req, now).await {
            Ok(created) => {
                let child = created.id.map(|i| i.to_string()).unwrap_or_default();
                if *wait {
                    self.node_event(
                        tx,
                        inst,
                        task,
                        None,
                        format!(
                            "started sub-workflow `{workflow}` instance {child}; waiting for it"
                        ),
                        actor,
                    )
                    .await?;
                    return Ok(None);
                }
                (
                    TaskStatus::Succeeded,
                    format!("started sub-workflow `{workflow}` instance {child} (not waiting)"),
                )
            }
            Err(Error::Refused(why)) => (
                TaskStatus::Failed,
                format!("cannot start sub-workflow: {why}"),
            ),
            Err(e) => return Err(e),
        };
        self.finish_at_once(tx, inst, task, to, message, now, actor)
            .await
            .map(Some)
    }

    /// Ends a node the engine ran inside this transaction (`running` → `to`): a sub-workflow that
    /// does not wait or cannot start, an email node.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish_at_once(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        task: &TaskRow,
        to: TaskStatus,
        message: String,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<TaskStatus> {
        let mut t = TaskTransition::new(task.id, vec![TaskStatus::Running], to);
        t.ended_at = Some(now);
        t.error = (to != TaskStatus::Succeeded).then(|| message.clone());
        if !tx.task_transition(&t).await?.applied() {
            return Err(Error::Conflict(format!(
                "{} task {} changed",
                task.kind, task.id
            )));
        }
        self.node_event(tx, inst, task, Some(to), message, actor)
            .await?;
        Ok(to)
    }

    /// Kills the live children that the sub-workflow task `task` of `parent` started.
    pub(super) fn kill_children<'a>(
        &'a self,
        tx: &'a mut dyn StoreTx,
        parent: &'a InstanceRow,
        task: TaskId,
        reason: &'a str,
        actor: &'a str,
    ) -> BoxFut<'a, ()> {
        Box::pin(async move {
            for child in tx.instance_children_active(parent.id).await? {
                let Some((row, now)) = tx.instance_lock(child).await? else {
                    continue;
                };
                if row.parent_task_id != Some(task) || row.status.is_terminal() {
                    continue;
                }
                let def = self.definition(&row.workflow, row.workflow_version).await?;
                let tasks = by_node(tx.task_list(child).await?);
                let plan = crate::dag::end_instance(
                    &def,
                    &states(&tasks),
                    InstanceStatus::Killed,
                    reason.to_string(),
                );
                self.apply_plan(tx, &row, &tasks, &plan, now, actor).await?;
            }
            Ok(())
        })
    }

    /// A child ended: finish its parent's waiting node with the child's result and advance the parent.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn report_to_parent<'a>(
        &'a self,
        tx: &'a mut dyn StoreTx,
        parent: InstanceId,
        task_id: TaskId,
        child: &'a InstanceRow,
        status: InstanceStatus,
        reason: &'a str,
        actor: &'a str,
    ) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let Some((pinst, now)) = tx.instance_lock(parent).await? else {
                return Ok(());
            };
            if pinst.status != InstanceStatus::Running {
                return Ok(());
            }
            let mut tasks = by_node(tx.task_list(parent).await?);
            let Some(task) = tasks
                .values()
                .find(|t| t.id == task_id && t.status == TaskStatus::Running)
                .cloned()
            else {
                return Ok(()); // already killed with its parent, or rerun since
            };
            let to = match status {
                InstanceStatus::Succeeded => TaskStatus::Succeeded,
                InstanceStatus::Killed => TaskStatus::Killed,
                _ => TaskStatus::Failed,
            };
            let message = format!(
                "sub-workflow `{}` instance {} {status}: {reason}",
                child.workflow, child.id
            );
            let mut t = TaskTransition::new(task.id, vec![TaskStatus::Running], to);
            t.ended_at = Some(now);
            t.kill_requested = to == TaskStatus::Killed;
            t.error = (to != TaskStatus::Succeeded).then(|| message.clone());
            if !tx.task_transition(&t).await?.applied() {
                return Err(Error::Conflict(format!(
                    "sub-workflow task {} changed",
                    task.id
                )));
            }
            self.node_event(tx, &pinst, &task, Some(to), message, actor)
                .await?;
            tasks.get_mut(&task.node).expect("from this map").status = to;
            let def = self
                .definition(&pinst.workflow, pinst.workflow_version)
                .await?;
            let plan = crate::dag::after_node(&def, &states(&tasks), &task.node);
            self.apply_plan(tx, &pinst, &tasks, &plan, now, actor).await
        })
    }

    async fn node_event(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        task: &TaskRow,
        to: Option<TaskStatus>,
        message: String,
        actor: &str,
    ) -> Result<()> {
        tx.event_insert_many(&[NewEvent {
            workflow: Some(inst.workflow.clone()),
            instance_id: Some(inst.id),
            task_id: Some(task.id),
            node: Some(task.node.clone()),
            kind: if task.kind == KIND {
                "sub_workflow"
            } else {
                "task_transition"
            },
            from_status: to.map(|_| TaskStatus::Running.as_str()),
            to_status: to.map(TaskStatus::as_str),
            message,
            actor: actor.to_string(),
        }])
        .await?;
        Ok(())
    }
}
