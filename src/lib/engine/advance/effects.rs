//! What each effect does: the DAG step after a node ended and the writes of its plan, an
//! instance's start and end, a sub-workflow child's start and its report to the parent, the email
//! node's queueing, killing children, and the instances that an end lets start (pending ones,
//! downstream coordinators). [`super::Advance::apply`] dispatches here; each returns the effects it
//! causes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{
    is_engine_run, node_event, states, transition_message, Advance, Effect, SUB_WORKFLOW_KIND,
};
use crate::definition::{NodeKind, Workflow};
use crate::engine::dag::{self, InstanceEnd, Plan};
use crate::engine::state::{
    AttemptOutcome, InstanceId, InstanceStatus, TaskId, TaskStatus, TriggerKind,
};
use crate::engine::CreateInstance;
use crate::error::{Error, Result};
use crate::store::{
    AttemptRow, InstanceRow, InstanceTransition, NewEvent, NewTask, TaskRow, TaskTransition,
};

impl Advance<'_> {
    /// The DAG step after `node` reached its final status.
    pub(super) async fn node_ended(
        &mut self,
        instance: InstanceId,
        node: &str,
    ) -> Result<Vec<Effect>> {
        let held = self.held(instance);
        if held.inst.status != InstanceStatus::Running {
            return Ok(vec![]);
        }
        let (workflow, version) = (held.inst.workflow.clone(), held.inst.workflow_version);
        let def = self.definition(&workflow, version).await?;
        let plan = dag::after_node(&def, &states(&self.held(instance).tasks), node);
        if plan.updates.is_empty() && plan.end.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![Effect::Plan { instance, plan }])
    }

    /// Writes a plan's task changes with their events; queues the engine-run nodes it reached, or
    /// the children to kill and the instance's end.
    pub(super) async fn apply_plan(
        &mut self,
        instance: InstanceId,
        plan: &Plan,
    ) -> Result<Vec<Effect>> {
        let held = self.held(instance);
        let (inst, now) = (held.inst.clone(), held.now);
        // the state each node ends this plan in: a node readied and killed in one plan never runs
        let mut last: BTreeMap<&str, TaskStatus> = BTreeMap::new();
        for u in &plan.updates {
            last.insert(&u.node, u.to);
        }
        let mut changes: Vec<(TaskRow, TaskStatus, TaskTransition, Option<String>)> =
            Vec::with_capacity(plan.updates.len());
        let mut current: BTreeMap<String, TaskStatus> = BTreeMap::new();
        for u in &plan.updates {
            let Some(task) = held.tasks.get(&u.node) else {
                continue;
            };
            // nodes the engine itself runs when reached: they never wait for a worker
            let engine_run = is_engine_run(&task.kind);
            let to = if engine_run && u.to == TaskStatus::Ready {
                TaskStatus::Running
            } else {
                u.to
            };
            let status = current.get(&u.node).copied().unwrap_or(task.status);
            // Guard on the state this plan was computed from, not on every state the plan
            // allows: a kill's `from` is `[ready, running]`, and a claim that commits between
            // our read and this update would otherwise be overwritten as if it had never run
            // (its attempt counted, no attempt row written). Stale means "retry it all".
            let from = if u.from.contains(&status) {
                vec![status]
            } else {
                u.from.clone()
            };
            let mut t = TaskTransition::new(task.id, from, to);
            t.error = u.note.clone();
            t.kill_requested = to == TaskStatus::Killed;
            match to {
                TaskStatus::Ready => t.run_at = Some(now),
                s if s.is_terminal() => t.ended_at = Some(now),
                _ => {}
            }
            current.insert(u.node.clone(), to);
            changes.push((task.clone(), to, t, u.note.clone()));
        }
        // guarded on the rows read under the instance lock: written with the batch's other changes
        // before anything reads or locks again (a claim racing a kill of a ready node makes that
        // write miss, and the whole operation runs again)
        for (_, _, t, _) in &changes {
            self.defer(t.clone());
        }
        let mut events = Vec::with_capacity(changes.len());
        let mut engine_runs = Vec::new();
        let mut children_to_kill = Vec::new();
        let mut seen_status: BTreeMap<TaskId, TaskStatus> = BTreeMap::new();
        for (task, to, t, note) in &changes {
            let before = seen_status.get(&task.id).copied().unwrap_or(task.status);
            seen_status.insert(task.id, *to);
            self.note(instance, t);
            let is_sub_workflow = task.kind == SUB_WORKFLOW_KIND;
            if *to == TaskStatus::Running
                && last.get(task.node.as_str()) == Some(&TaskStatus::Ready)
            {
                engine_runs.push(task.clone());
            } else if *to == TaskStatus::Killed && task.status == TaskStatus::Running {
                if is_sub_workflow {
                    children_to_kill.push(task.id);
                } else {
                    self.tx
                        .task_attempt_insert(&AttemptRow {
                            task_id: task.id,
                            attempt: task.attempt,
                            worker_id: task.worker_id.clone(),
                            outcome: AttemptOutcome::Killed,
                            exit_code: None,
                            error: note.clone(),
                            started_at: task.started_at,
                            ended_at: now,
                        })
                        .await?;
                }
            }
            events.push(task_transition_event(
                (&inst.workflow, inst.id),
                (task.id, &task.node),
                (before, *to),
                note.clone(),
                &self.actor,
            ));
        }
        self.tx.event_insert_many(&events).await?;
        if plan.made_ready().next().is_some() {
            self.made_ready = true;
        }
        let mut caused = Vec::new();
        for task in &engine_runs {
            caused.push(if task.kind == crate::alert::EMAIL_KIND {
                Effect::QueueEmail {
                    instance,
                    task: task.id,
                }
            } else {
                Effect::StartChild {
                    instance,
                    task: task.id,
                }
            });
        }
        let reason = format!("its parent instance {} ended", inst.id);
        for task in children_to_kill {
            caused.push(Effect::KillChildren {
                parent: instance,
                task,
                reason: reason.clone(),
            });
        }
        match &plan.end {
            Some(end) => caused.push(Effect::EndInstance {
                instance,
                end: end.clone(),
            }),
            None if !engine_runs.is_empty() => caused.push(Effect::AfterEngineRuns {
                instance,
                tasks: engine_runs.iter().map(|t| t.id).collect(),
            }),
            None => {}
        }
        Ok(caused)
    }

    /// `pending → running`, then the DAG from its start node.
    pub(super) async fn start(
        &mut self,
        instance: InstanceId,
        not_before: Option<DateTime<Utc>>,
    ) -> Result<Vec<Effect>> {
        let Some(held) = self.lock(instance).await? else {
            return Ok(vec![]);
        };
        if held.inst.status != InstanceStatus::Pending {
            return Ok(vec![]);
        }
        if let Some(t) = not_before {
            held.now = held.now.max(t);
        }
        let (inst, now) = (held.inst.clone(), held.now);
        let cas = self
            .tx
            .instance_transition(&InstanceTransition {
                id: inst.id,
                from: vec![InstanceStatus::Pending],
                to: InstanceStatus::Running,
                // its first start: a rerun or `task retry` does not move it (the events say when
                // those happened), so the instance's duration covers the whole run
                started_at: inst.started_at.is_none().then_some(now),
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
        self.held(instance).inst.status = InstanceStatus::Running;
        self.forget_running(&inst.workflow);
        let event = started_event(&inst.workflow, inst.id, &self.actor);
        self.tx.event_insert_many(&[event]).await?;
        let def = self
            .definition(&inst.workflow, inst.workflow_version)
            .await?;
        let plan = dag::start(&def, &states(&self.held(instance).tasks));
        Ok(vec![Effect::Plan { instance, plan }])
    }

    /// Records the start of instance `id` of `workflow`, created by this transaction with its rows
    /// already as `plan` (from [`born_started_plan`]) leaves them: the events [`Advance::start`]
    /// and the plan's writes would have recorded, and the workers' wake-up. `tasks` are the
    /// inserted rows and `ids` their ids, in the same order.
    pub(crate) async fn born_started(
        &mut self,
        workflow: &str,
        id: InstanceId,
        plan: &Plan,
        tasks: &[NewTask],
        ids: &[TaskId],
    ) -> Result<()> {
        let mut events = vec![started_event(workflow, id, &self.actor)];
        for u in &plan.updates {
            let Some((_, &task_id)) = tasks.iter().zip(ids).find(|(t, _)| t.node == u.node) else {
                continue;
            };
            events.push(task_transition_event(
                (workflow, id),
                (task_id, &u.node),
                (TaskStatus::Waiting, u.to),
                u.note.clone(),
                &self.actor,
            ));
        }
        self.tx.event_insert_many(&events).await?;
        if plan.made_ready().next().is_some() {
            self.made_ready = true;
        }
        Ok(())
    }

    /// Queues an `<email>` node's mail and finishes the node.
    pub(super) async fn queue_email(
        &mut self,
        instance: InstanceId,
        task: TaskId,
    ) -> Result<Vec<Effect>> {
        let held = self.held(instance);
        let inst = held.inst.clone();
        let Some(row) = held.task_by_id(task).cloned() else {
            return Ok(vec![]);
        };
        let (to, message) = self
            .engine
            .queue_email_node(&mut *self.tx, &inst, &row)
            .await?;
        self.finish_at_once(instance, task, to, message).await?;
        Ok(vec![])
    }

    /// Starts the child of a sub-workflow node that just became `running`.
    pub(super) async fn start_child(
        &mut self,
        instance: InstanceId,
        task: TaskId,
    ) -> Result<Vec<Effect>> {
        let held = self.held(instance);
        let inst = held.inst.clone();
        let Some(row) = held.task_by_id(task).cloned() else {
            return Ok(vec![]);
        };
        let def = self
            .definition(&inst.workflow, inst.workflow_version)
            .await?;
        let Some(crate::definition::NodeKind::Action(action)) =
            def.node(&row.node).map(|n| &n.kind)
        else {
            return Ok(vec![]);
        };
        let crate::definition::ActionKind::SubWorkflow { workflow, wait } = &action.kind else {
            return Ok(vec![]);
        };
        let req = CreateInstance {
            workflow: workflow.clone(),
            trigger: TriggerKind::SubWorkflow,
            scheduled_for: None,
            params: serde_json::from_str(&inst.params).unwrap_or_default(),
            coordinator_params: false,
            parent: Some((inst.id, task)),
            actor: self.actor.clone(),
        };
        let now = self.held(instance).now;
        match self.create_rows(&req, now).await {
            Ok((created, start)) => {
                let child = created.id.map(|i| i.to_string()).unwrap_or_default();
                let message = if *wait {
                    format!("started sub-workflow `{workflow}` instance {child}; waiting for it")
                } else {
                    format!("started sub-workflow `{workflow}` instance {child} (not waiting)")
                };
                let mut caused: Vec<Effect> = start.into_iter().collect();
                caused.push(Effect::ChildStarted {
                    instance,
                    task,
                    message,
                    wait: *wait,
                });
                Ok(caused)
            }
            Err(Error::Refused(why)) => {
                let message = format!("cannot start sub-workflow: {why}");
                self.finish_at_once(instance, task, TaskStatus::Failed, message)
                    .await?;
                Ok(vec![])
            }
            Err(e) => Err(e),
        }
    }

    /// Ends a node the engine ran inside this transaction (`running` → `to`): a sub-workflow that
    /// does not wait or cannot start, an email node. It is advanced once its plan's other
    /// engine-run nodes are done.
    pub(super) async fn finish_at_once(
        &mut self,
        instance: InstanceId,
        task: TaskId,
        to: TaskStatus,
        message: String,
    ) -> Result<()> {
        let held = self.held(instance);
        let (inst, now) = (held.inst.clone(), held.now);
        let Some(row) = held.task_by_id(task).cloned() else {
            return Ok(());
        };
        let mut t = TaskTransition::new(task, vec![TaskStatus::Running], to);
        t.ended_at = Some(now);
        t.error = (to != TaskStatus::Succeeded).then(|| message.clone());
        if !self.transition(instance, &t).await? {
            return Err(Error::Conflict(format!(
                "{} task {} changed",
                row.kind, task
            )));
        }
        node_event(&mut *self.tx, &inst, &row, Some(to), message, &self.actor).await?;
        self.finished_at_once.insert(task);
        Ok(())
    }

    /// Kills the live children that the sub-workflow task `task` of `parent` started.
    pub(super) async fn kill_children(
        &mut self,
        parent: InstanceId,
        task: TaskId,
        reason: String,
    ) -> Result<Vec<Effect>> {
        let mut caused = Vec::new();
        for child in self.tx.instance_children_active(parent).await? {
            let Some(held) = self.lock(child).await? else {
                continue;
            };
            if held.inst.parent_task_id != Some(task) || held.inst.status.is_terminal() {
                continue;
            }
            let (workflow, version) = (held.inst.workflow.clone(), held.inst.workflow_version);
            let def = self.definition(&workflow, version).await?;
            let plan = dag::end_instance(
                &def,
                &states(&self.held(child).tasks),
                InstanceStatus::Killed,
                reason.clone(),
            );
            caused.push(Effect::Plan {
                instance: child,
                plan,
            });
        }
        Ok(caused)
    }

    /// Marks the instance ended and queues what follows from it: the parent's node, dependency
    /// progress, a blood run's downstream, the next pending instance of the same workflow.
    pub(super) async fn end_instance(
        &mut self,
        instance: InstanceId,
        end: InstanceEnd,
    ) -> Result<Vec<Effect>> {
        let held = self.held(instance);
        let (inst, now) = (held.inst.clone(), held.now);
        let (status, reason) = (end.status, end.reason.as_str());
        let from = vec![InstanceStatus::Running, InstanceStatus::Pending];
        if !from.contains(&inst.status) {
            return Ok(vec![]);
        }
        self.defer_end(InstanceTransition {
            id: inst.id,
            from,
            to: status,
            started_at: None,
            ended_at: Some(now),
            error: (status != InstanceStatus::Succeeded).then(|| reason.to_string()),
        });
        self.held(instance).inst.status = status;
        self.forget_running(&inst.workflow);
        self.tx
            .event_insert_many(&[NewEvent {
                workflow: Some(inst.workflow.clone()),
                instance_id: Some(inst.id),
                kind: "instance_transition",
                from_status: Some(inst.status.as_str()),
                to_status: Some(status.as_str()),
                message: reason.to_string(),
                actor: self.actor.clone(),
                ..Default::default()
            }])
            .await?;
        tracing::info!(workflow = %inst.workflow, instance_id = %inst.id, status = %status, "{reason}");
        let def = self
            .definition(&inst.workflow, inst.workflow_version)
            .await?;
        let alert = self.engine.instance_end_alerts(&def, &end);
        if alert.sends() {
            // the mail reads the instance's tasks as this transaction leaves them
            self.flush().await?;
            self.engine
                .alert_instance_end(&mut *self.tx, (&inst, &def), &end, alert, now)
                .await?;
        }
        let mut caused = Vec::new();
        if let (Some(parent), Some(task)) = (inst.parent_instance_id, inst.parent_task_id) {
            caused.push(Effect::ReportToParent {
                parent,
                task,
                child: inst.clone(),
                status,
                reason: reason.to_string(),
            });
        }
        if status == InstanceStatus::Succeeded {
            if inst.trigger_kind.propagates() {
                caused.push(Effect::SatisfyDownstream { instance });
            }
            if inst.trigger_kind == TriggerKind::Blood || inst.backfill().is_some() {
                caused.push(Effect::StartDownstream { instance });
            }
        }
        // Locking the workflow row to start a waiting instance would make every instance end of a
        // workflow wait on that one row; most ends have nothing waiting, so the drain asks once
        // for all its ends which workflows have. One created while this end commits is started by
        // the master's next cycle.
        self.pending_checks.push(inst.workflow.clone());
        Ok(caused)
    }

    /// A child ended: finish its parent's waiting node with the child's result.
    pub(super) async fn report_to_parent(
        &mut self,
        parent: InstanceId,
        task: TaskId,
        child: &InstanceRow,
        status: InstanceStatus,
        reason: &str,
    ) -> Result<Vec<Effect>> {
        let Some(held) = self.lock(parent).await? else {
            return Ok(vec![]);
        };
        if held.inst.status != InstanceStatus::Running {
            return Ok(vec![]);
        }
        let (pinst, now) = (held.inst.clone(), held.now);
        let Some(row) = held
            .task_by_id(task)
            .filter(|t| t.status == TaskStatus::Running)
            .cloned()
        else {
            return Ok(vec![]); // already killed with its parent, or rerun since
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
        let mut t = TaskTransition::new(task, vec![TaskStatus::Running], to);
        t.ended_at = Some(now);
        t.kill_requested = to == TaskStatus::Killed;
        t.error = (to != TaskStatus::Succeeded).then(|| message.clone());
        if !self.transition(parent, &t).await? {
            return Err(Error::Conflict(format!("sub-workflow task {task} changed")));
        }
        node_event(&mut *self.tx, &pinst, &row, Some(to), message, &self.actor).await?;
        Ok(vec![Effect::NodeEnded {
            instance: parent,
            node: row.node,
        }])
    }

    /// A blood run that succeeded starts each downstream workflow, for the same slot (so a diamond
    /// runs its bottom once); so does an instance of a `--blood` backfill, as that backfill's.
    pub(super) async fn start_downstream(&mut self, instance: InstanceId) -> Result<Vec<Effect>> {
        let held = self.held(instance);
        let (inst, now) = (held.inst.clone(), held.now);
        let link = match inst.backfill() {
            None => None,
            Some(id) => match self.tx.backfill_get(id).await? {
                Some(b) if b.blood => Some(crate::engine::BackfillLink {
                    id,
                    priority: b.priority,
                }),
                _ => return Ok(vec![]),
            },
        };
        let mut caused = Vec::new();
        for downstream in self.tx.coordinator_downstream(&inst.workflow).await? {
            let req = CreateInstance {
                workflow: downstream.clone(),
                trigger: inst.trigger_kind,
                scheduled_for: Some(inst.scheduled_for),
                params: BTreeMap::new(),
                coordinator_params: true,
                parent: None,
                actor: self.actor.clone(),
            };
            match self.create_rows_for(&req, link, now).await {
                Ok((_, start)) => caused.extend(start),
                Err(Error::Refused(why)) => {
                    tracing::warn!(workflow = %downstream, "blood run skipped: {why}")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(caused)
    }

    /// Starts the oldest pending instances of `workflow` while its `instance-limit` allows.
    pub(super) async fn start_pending(&mut self, workflow: &str) -> Result<Vec<Effect>> {
        let Some(head) = self.workflow(workflow).await? else {
            return Ok(vec![]);
        };
        // counted afresh: the ends that queued this were written just before (each start below
        // forgets the count this transaction keeps)
        let running = self.tx.instance_count_running(workflow).await?;
        let free = head.instance_limit - running;
        if free <= 0 {
            return Ok(vec![]);
        }
        let now = self.held.values().map(|h| h.now).max();
        let ids = self.tx.instance_pending_oldest(workflow, free).await?;
        Ok(ids
            .into_iter()
            .map(|instance| Effect::Start {
                instance,
                not_before: now,
            })
            .collect())
    }
}

/// The event of a task's status change written by a plan: its note, or what the change means.
fn task_transition_event(
    (workflow, instance): (&str, InstanceId),
    (task, node): (TaskId, &str),
    (from, to): (TaskStatus, TaskStatus),
    note: Option<String>,
    actor: &str,
) -> NewEvent {
    NewEvent {
        workflow: Some(workflow.to_string()),
        instance_id: Some(instance),
        task_id: Some(task),
        node: Some(node.to_string()),
        kind: "task_transition",
        from_status: Some(from.as_str()),
        to_status: Some(to.as_str()),
        message: note.unwrap_or_else(|| transition_message(to)),
        actor: actor.to_string(),
    }
}

/// The event of an instance's start.
fn started_event(workflow: &str, id: InstanceId, actor: &str) -> NewEvent {
    NewEvent {
        workflow: Some(workflow.to_string()),
        instance_id: Some(id),
        kind: "instance_transition",
        from_status: Some(InstanceStatus::Pending.as_str()),
        to_status: Some(InstanceStatus::Running.as_str()),
        message: "started".into(),
        actor: actor.to_string(),
        ..Default::default()
    }
}

/// The start plan of a new instance of `def`, when its task rows can be inserted as the plan
/// leaves them, started by the transaction that creates it (no lock, read or update of its rows
/// after the insert): every change finishes a control node or makes ready a node a worker runs,
/// once, and the instance goes on. Else `None`, and the instance starts through [`Effect::Start`].
pub(crate) fn born_started_plan(def: &Workflow) -> Option<Plan> {
    let waiting: BTreeMap<String, TaskStatus> = def
        .nodes
        .iter()
        .map(|n| (n.name.clone(), TaskStatus::Waiting))
        .collect();
    let plan = dag::start(def, &waiting);
    let mut seen = std::collections::HashSet::new();
    let simple = plan.end.is_none()
        && plan.updates.iter().all(|u| {
            let Some(node) = def.node(&u.node) else {
                return false;
            };
            let worker_runs = !is_engine_run(node.kind.kind_name());
            seen.insert(u.node.as_str())
                && u.note.is_none()
                && u.from.contains(&TaskStatus::Waiting)
                && match u.to {
                    TaskStatus::Ready => worker_runs,
                    TaskStatus::Succeeded => !matches!(node.kind, NodeKind::Action(_)),
                    _ => false,
                }
        });
    simple.then_some(plan)
}
