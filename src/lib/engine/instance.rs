//! Instance operations: create (with `instance-limit`), start, start the next pending one, kill,
//! rerun (with recover), and a blood run's downstream.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{by_node, states, BoxFut, Engine};
use crate::dag;
use crate::definition::template::evaluate_params;
use crate::definition::{NodeKind, Param, Workflow};
use crate::error::{Error, Result};
use crate::state::{InstanceId, InstanceStatus, TaskId, TaskStatus, TriggerKind};
use crate::store::{
    InstanceRow, InstanceTransition, NewEvent, NewInstance, NewTask, StoreTx, TaskTransition,
};

/// A request for a new instance.
#[derive(Clone, Debug)]
pub struct CreateInstance {
    pub workflow: String,
    pub trigger: TriggerKind,
    /// The slot this instance is for; `None` means now (manual triggers).
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Values given explicitly; they win over evaluated ones.
    pub params: BTreeMap<String, String>,
    /// Evaluate the coordinator's `<param-list>` (trigger, cron, dependency) rather than only the
    /// run-time parameter defaults (`run`).
    pub coordinator_params: bool,
    /// The parent instance and its sub-workflow task, for a child instance.
    pub parent: Option<(InstanceId, TaskId)>,
    pub actor: String,
}

/// What a create did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Created {
    /// `None` when the slot was already fired (by another master, or before a restart).
    pub id: Option<InstanceId>,
    pub status: InstanceStatus,
}

impl Engine {
    /// Creates an instance and starts it if its workflow's `instance-limit` allows; else it waits `pending`.
    pub async fn create_instance(&self, req: &CreateInstance) -> Result<Created> {
        self.retrying(|| async {
            let now = self.store.now().await?;
            let mut tx = self.store.begin().await?;
            let created = self.create_in_tx(&mut *tx, req, now).await?;
            tx.commit().await?;
            if created.status == InstanceStatus::Running {
                self.wake.notify_one();
            }
            Ok(created)
        })
        .await
    }

    /// Creates (and maybe starts) an instance inside the caller's transaction.
    pub fn create_in_tx<'a>(
        &'a self,
        tx: &'a mut dyn StoreTx,
        req: &'a CreateInstance,
        now: DateTime<Utc>,
    ) -> BoxFut<'a, Created> {
        Box::pin(async move {
            let head = tx
                .workflow_lock(&req.workflow)
                .await?
                .ok_or_else(|| Error::refused(format!("unknown workflow `{}`", req.workflow)))?;
            if !head.enabled {
                return Err(Error::refused(format!(
                    "workflow `{}` is disabled",
                    req.workflow
                )));
            }
            let def = self.definition(&head.name, head.version).await?;
            let mut scheduled_for = req.scheduled_for.unwrap_or(now);
            let params = self.evaluate(&def, req, scheduled_for)?;
            let manual = req.scheduled_for.is_none();
            let mut tries = 0;
            let id = loop {
                let new = NewInstance {
                    workflow: head.name.clone(),
                    workflow_version: head.version,
                    params: serde_json::to_string(&params).expect("string map serialises"),
                    trigger_kind: req.trigger,
                    scheduled_for,
                    parent_instance_id: req.parent.map(|p| p.0),
                    parent_task_id: req.parent.map(|p| p.1),
                    created_by: req.actor.clone(),
                };
                match tx.instance_insert(&new).await? {
                    Some(id) => break id,
                    // two manual triggers in the same millisecond: take the next one
                    None if manual && tries < 100 => {
                        tries += 1;
                        scheduled_for += chrono::Duration::milliseconds(1);
                    }
                    None => {
                        return Ok(Created {
                            id: None,
                            status: InstanceStatus::Pending,
                        })
                    }
                }
            };
            tx.task_insert_many(&new_tasks(&def, id)).await?;
            tx.event_insert_many(&[NewEvent {
                workflow: Some(head.name.clone()),
                instance_id: Some(id),
                kind: "instance_created",
                to_status: Some(InstanceStatus::Pending.as_str()),
                message: format!(
                    "{} instance for {}",
                    req.trigger,
                    scheduled_for.format("%Y-%m-%d %H:%M:%S UTC")
                ),
                actor: req.actor.clone(),
                ..Default::default()
            }])
            .await?;
            let running = tx.instance_count_running(&head.name).await?;
            if running >= head.instance_limit {
                return Ok(Created {
                    id: Some(id),
                    status: InstanceStatus::Pending,
                });
            }
            let (inst, now) = tx
                .instance_lock(id)
                .await?
                .ok_or_else(|| Error::Conflict(format!("instance {id} vanished")))?;
            self.start_in_tx(tx, &inst, &def, now, &req.actor).await?;
            Ok(Created {
                id: Some(id),
                status: InstanceStatus::Running,
            })
        })
    }

    fn evaluate(
        &self,
        def: &Workflow,
        req: &CreateInstance,
        at: DateTime<Utc>,
    ) -> Result<BTreeMap<String, String>> {
        if req.parent.is_none() {
            // a child gets its parent's parameters; anything else was given by a caller
            def.check_given_params(req.params.keys())
                .map_err(Error::refused)?;
        }
        let coordinator = def.coordinator.as_ref();
        let tz: Tz = coordinator
            .and_then(|c| c.timezone.as_deref())
            .and_then(|z| z.parse().ok())
            .unwrap_or(self.timezone);
        let mut list: Vec<Param> = def
            .params
            .iter()
            .filter_map(|p| {
                p.default.clone().map(|value| Param {
                    name: p.name.clone(),
                    value,
                })
            })
            .collect();
        if req.coordinator_params {
            list.extend(coordinator.map(|c| c.params.clone()).unwrap_or_default());
        }
        let params = evaluate_params(&list, &req.params, at.with_timezone(&tz))
            .map_err(|e| Error::refused(format!("workflow `{}`: {e}", def.name)))?;
        let missing: Vec<String> = def
            .param_refs()
            .into_iter()
            .filter(|p| !params.contains_key(p))
            .collect();
        if !missing.is_empty() {
            return Err(Error::refused(format!(
                "workflow `{}` needs parameter(s) {}: give them with --param NAME=VALUE",
                def.name,
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(params)
    }

    /// `pending -> running`, then the DAG from its start node.
    pub(crate) async fn start_in_tx(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        def: &Workflow,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<()> {
        let cas = tx
            .instance_transition(&InstanceTransition {
                id: inst.id,
                from: vec![InstanceStatus::Pending],
                to: InstanceStatus::Running,
                started_at: Some(now),
                ended_at: None,
                error: None,
            })
            .await?;
        if !cas.applied() {
            return Err(Error::Conflict(format!(
                "instance {} is no longer pending",
                inst.id
            )));
        }
        tx.event_insert_many(&[NewEvent {
            workflow: Some(inst.workflow.clone()),
            instance_id: Some(inst.id),
            kind: "instance_transition",
            from_status: Some(InstanceStatus::Pending.as_str()),
            to_status: Some(InstanceStatus::Running.as_str()),
            message: "started".into(),
            actor: actor.to_string(),
            ..Default::default()
        }])
        .await?;
        let running = InstanceRow {
            status: InstanceStatus::Running,
            ..inst.clone()
        };
        let tasks = by_node(tx.task_list(inst.id).await?);
        let plan = dag::start(def, &states(&tasks));
        self.apply_plan(tx, &running, &tasks, &plan, now, actor)
            .await
    }

    /// Starts the oldest pending instances of `workflow` while its `instance-limit` allows.
    pub(crate) fn start_pending<'a>(
        &'a self,
        tx: &'a mut dyn StoreTx,
        workflow: &'a str,
        now: DateTime<Utc>,
        actor: &'a str,
    ) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let Some(head) = tx.workflow_lock(workflow).await? else {
                return Ok(());
            };
            let running = tx.instance_count_running(workflow).await?;
            let free = head.instance_limit - running;
            if free <= 0 {
                return Ok(());
            }
            for id in tx.instance_pending_oldest(workflow, free).await? {
                let Some((inst, now_locked)) = tx.instance_lock(id).await? else {
                    continue;
                };
                if inst.status != InstanceStatus::Pending {
                    continue;
                }
                let def = self
                    .definition(&inst.workflow, inst.workflow_version)
                    .await?;
                self.start_in_tx(tx, &inst, &def, now_locked.max(now), actor)
                    .await?;
            }
            Ok(())
        })
    }

    /// The master's safety net for `instance-limit`: starts what can start, for every waiting workflow.
    pub async fn start_pending_all(&self, actor: &str) -> Result<usize> {
        let mut started = 0;
        for workflow in self.store.instance_pending_workflows(1000).await? {
            started += self
                .retrying(|| async {
                    let now = self.store.now().await?;
                    let mut tx = self.store.begin().await?;
                    let before = tx.instance_count_running(&workflow).await?;
                    self.start_pending(&mut *tx, &workflow, now, actor).await?;
                    let after = tx.instance_count_running(&workflow).await?;
                    tx.commit().await?;
                    Ok((after - before).max(0) as usize)
                })
                .await?;
        }
        if started > 0 {
            self.wake.notify_one();
        }
        Ok(started)
    }

    /// A blood run that succeeded starts each downstream workflow, for the same slot (so a diamond
    /// runs its bottom once).
    pub(crate) async fn start_blood_downstream(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        actor: &str,
    ) -> Result<()> {
        let now = self.store.now().await?;
        for downstream in self.store.coordinator_downstream(&inst.workflow).await? {
            let req = CreateInstance {
                workflow: downstream.clone(),
                trigger: TriggerKind::Blood,
                scheduled_for: Some(inst.scheduled_for),
                params: BTreeMap::new(),
                coordinator_params: true,
                parent: None,
                actor: actor.to_string(),
            };
            match self.create_in_tx(tx, &req, now).await {
                Ok(_) => {}
                Err(Error::Refused(why)) => {
                    tracing::warn!(workflow = %downstream, "blood run skipped: {why}")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Kills a pending or running instance: running tasks are killed, waiting ones skipped.
    pub async fn kill_instance(&self, id: InstanceId, actor: &str) -> Result<()> {
        self.retrying(|| async {
            let mut tx = self.store.begin().await?;
            let (inst, now) = tx
                .instance_lock(id)
                .await?
                .ok_or_else(|| Error::refused(format!("no instance {id}")))?;
            if inst.status.is_terminal() {
                return Err(Error::refused(format!(
                    "instance {id} has already ended ({})",
                    inst.status
                )));
            }
            let def = self
                .definition(&inst.workflow, inst.workflow_version)
                .await?;
            let tasks = by_node(tx.task_list(id).await?);
            let plan = dag::end_instance(
                &def,
                &states(&tasks),
                InstanceStatus::Killed,
                format!("killed by {actor}"),
            );
            self.apply_plan(&mut *tx, &inst, &tasks, &plan, now, actor)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    /// Runs a finished instance again in place; with `recover`, succeeded actions are kept.
    pub async fn rerun_instance(
        &self,
        id: InstanceId,
        recover: bool,
        actor: &str,
    ) -> Result<InstanceStatus> {
        self.retrying(|| async {
            let mut tx = self.store.begin().await?;
            let status = self.rerun_in_tx(&mut *tx, id, recover, actor).await?;
            tx.commit().await?;
            self.wake.notify_one();
            Ok(status)
        })
        .await
    }

    pub(crate) async fn rerun_in_tx(
        &self,
        tx: &mut dyn StoreTx,
        id: InstanceId,
        recover: bool,
        actor: &str,
    ) -> Result<InstanceStatus> {
        let (inst, now) = tx
            .instance_lock(id)
            .await?
            .ok_or_else(|| Error::refused(format!("no instance {id}")))?;
        if !inst.status.is_terminal() {
            return Err(Error::refused(format!(
                "instance {id} is {}; only a finished instance can be rerun",
                inst.status
            )));
        }
        let def = self
            .definition(&inst.workflow, inst.workflow_version)
            .await?;
        let tasks = by_node(tx.task_list(id).await?);
        let target = dag::rerun_states(&def, &states(&tasks), recover);
        for node in &def.nodes {
            let (Some(task), Some(&to)) = (tasks.get(&node.name), target.get(&node.name)) else {
                continue;
            };
            if task.status == to && to != TaskStatus::Waiting {
                continue;
            }
            let mut t = TaskTransition::new(task.id, vec![task.status], to);
            if let NodeKind::Action(a) = &node.kind {
                // a rerun gets the full retry policy again; attempt numbers keep counting up
                t.max_attempts = Some(task.attempt + i64::from(a.retry_times) + 1);
            }
            if !tx.task_transition(&t).await?.applied() {
                return Err(Error::Conflict(format!(
                    "task {} changed during rerun",
                    task.id
                )));
            }
        }
        let cas = tx
            .instance_transition(&InstanceTransition {
                id,
                from: vec![inst.status],
                to: InstanceStatus::Pending,
                started_at: None,
                ended_at: None,
                error: None,
            })
            .await?;
        if !cas.applied() {
            return Err(Error::Conflict(format!(
                "instance {id} changed during rerun"
            )));
        }
        tx.event_insert_many(&[NewEvent {
            workflow: Some(inst.workflow.clone()),
            instance_id: Some(id),
            kind: "instance_rerun",
            from_status: Some(inst.status.as_str()),
            to_status: Some(InstanceStatus::Pending.as_str()),
            message: if recover {
                "rerun, keeping succeeded nodes".into()
            } else {
                "rerun from the start".into()
            },
            actor: actor.to_string(),
            ..Default::default()
        }])
        .await?;
        self.start_pending(tx, &inst.workflow, now, actor).await?;
        let (after, _) = tx
            .instance_lock(id)
            .await?
            .ok_or_else(|| Error::Conflict(format!("instance {id} vanished")))?;
        Ok(after.status)
    }
}

/// One task row per node: actions carry their retry policy and queue; control nodes complete inline.
fn new_tasks(def: &Workflow, instance: InstanceId) -> Vec<NewTask> {
    def.nodes
        .iter()
        .map(|n| {
            let (max_attempts, interval, timeout, queue) = match &n.kind {
                NodeKind::Action(a) => (
                    i64::from(a.retry_times) + 1,
                    a.interval_secs as i64,
                    a.timeout_secs.map(|t| t as i64),
                    a.host
                        .clone()
                        .unwrap_or_else(|| crate::worker::DEFAULT_QUEUE.to_string()),
                ),
                _ => (1, 0, None, crate::worker::DEFAULT_QUEUE.to_string()),
            };
            NewTask {
                instance_id: instance,
                node: n.name.clone(),
                kind: n.kind.kind_name().to_string(),
                max_attempts,
                retry_interval_s: interval,
                timeout_s: timeout,
                queue,
                priority: 0,
            }
        })
        .collect()
}
