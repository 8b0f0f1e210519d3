//! Instance operations: create (with `instance-limit`), start, start the next pending one, kill,
//! rerun (with recover), and a blood run's downstream.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::advance::{born_started_plan, states, Effect};
use super::dag;
use super::state::{
    BackfillId, InstanceId, InstanceStatus, TaskId, TaskStatus, TriggerKind, DEFAULT_QUEUE,
};
use super::{Advance, Engine};
use crate::definition::template::evaluate_params_leniently;
use crate::definition::{NodeKind, Param, Workflow};
use crate::error::{Error, Result};
use crate::store::{InstanceTransition, NewEvent, NewInstance, NewTask, TaskTransition};

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

/// The backfill an instance is created for: its id (part of the slot key) and the priority its
/// tasks get (`None`: each task's own priority minus [`BACKFILL_PRIORITY_DROP`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackfillLink {
    pub id: BackfillId,
    pub priority: Option<i64>,
}

/// How far below its scheduled runs a backfill's task is ranked unless the backfill names a
/// priority: past slots wait for today's.
pub const BACKFILL_PRIORITY_DROP: i64 = 1;

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
        self.create_instance_at(req, None).await
    }

    /// [`Engine::create_instance`] running stored version `version` of the workflow (`None`: the
    /// current one), for `workflow run --version`: the instance records the version it runs.
    pub async fn create_instance_at(
        &self,
        req: &CreateInstance,
        version: Option<i64>,
    ) -> Result<Created> {
        self.advance(&req.actor, |adv: &mut Advance<'_>| {
            Box::pin(async move {
                let now = adv.now().await?;
                let (created, start) = adv.create_rows_at(req, now, version).await?;
                if let Some(start) = start {
                    adv.push(start);
                    adv.drain().await?;
                }
                Ok(created)
            })
        })
        .await
    }

    /// The master's safety net for `instance-limit`: starts what can start, for every waiting workflow.
    pub async fn start_pending_all(&self, actor: &str) -> Result<usize> {
        let mut started = 0;
        for workflow in self.store.instance_pending_workflows(1000).await? {
            let workflow = &workflow;
            started += self
                .advance(actor, |adv: &mut Advance<'_>| {
                    Box::pin(async move {
                        let before = adv.tx().instance_count_running(workflow).await?;
                        adv.push(Effect::StartPending {
                            workflow: workflow.clone(),
                        });
                        adv.drain().await?;
                        let after = adv.tx().instance_count_running(workflow).await?;
                        Ok((after - before).max(0) as usize)
                    })
                })
                .await?;
        }
        Ok(started)
    }

    /// Kills a pending or running instance: running tasks are killed, waiting ones skipped.
    pub async fn kill_instance(&self, id: InstanceId, actor: &str) -> Result<()> {
        self.advance(actor, |adv: &mut Advance<'_>| {
            Box::pin(async move {
                let held = adv
                    .lock(id)
                    .await?
                    .ok_or_else(|| Error::refused(format!("no instance {id}")))?;
                if held.inst.status.is_terminal() {
                    return Err(Error::refused(format!(
                        "instance {id} has already ended ({})",
                        held.inst.status
                    )));
                }
                let (workflow, version) = (held.inst.workflow.clone(), held.inst.workflow_version);
                let def = adv.definition(&workflow, version).await?;
                let plan = dag::end_instance(
                    &def,
                    &states(&adv.held(id).tasks),
                    InstanceStatus::Killed,
                    format!("killed by {actor}"),
                );
                adv.push(Effect::Plan { instance: id, plan });
                Ok(())
            })
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
        self.advance(actor, |adv: &mut Advance<'_>| {
            Box::pin(async move {
                adv.wake_workers();
                adv.rerun(id, recover).await
            })
        })
        .await
    }
}

/// The workflow `found` under `name` if instances can be created of it: it exists and is enabled.
pub(crate) fn runnable<W>(
    name: &str,
    found: Option<W>,
    enabled: impl FnOnce(&W) -> bool,
) -> Result<W> {
    let workflow = found.ok_or_else(|| Error::refused(format!("unknown workflow `{name}`")))?;
    if !enabled(&workflow) {
        return Err(Error::refused(format!("workflow `{name}` is disabled")));
    }
    Ok(workflow)
}

impl Advance<'_> {
    /// Creates (and maybe starts) an instance in this transaction, and applies its start.
    pub(crate) async fn create(
        &mut self,
        req: &CreateInstance,
        now: DateTime<Utc>,
    ) -> Result<Created> {
        self.create_for(req, None, now).await
    }

    /// [`Advance::create`] of an instance a backfill (`backfill`) runs.
    pub(crate) async fn create_for(
        &mut self,
        req: &CreateInstance,
        backfill: Option<BackfillLink>,
        now: DateTime<Utc>,
    ) -> Result<Created> {
        let (created, start) = self.create_rows_for(req, backfill, now).await?;
        if let Some(start) = start {
            self.push(start);
            self.drain().await?;
        }
        Ok(created)
    }

    /// Inserts an instance and its tasks; the start to apply when its `instance-limit` allows.
    pub(crate) async fn create_rows(
        &mut self,
        req: &CreateInstance,
        now: DateTime<Utc>,
    ) -> Result<(Created, Option<Effect>)> {
        self.create_rows_full(req, None, now, None).await
    }

    /// [`Advance::create_rows`] of stored version `version` (`None`: the current one).
    async fn create_rows_at(
        &mut self,
        req: &CreateInstance,
        now: DateTime<Utc>,
        version: Option<i64>,
    ) -> Result<(Created, Option<Effect>)> {
        self.create_rows_full(req, None, now, version).await
    }

    /// [`Advance::create_rows`], for a backfill when `backfill` says which.
    pub(crate) async fn create_rows_for(
        &mut self,
        req: &CreateInstance,
        backfill: Option<BackfillLink>,
        now: DateTime<Utc>,
    ) -> Result<(Created, Option<Effect>)> {
        self.create_rows_full(req, backfill, now, None).await
    }

    /// The one instance creation: for a backfill when `backfill` says which, of stored version
    /// `version` (`None`: the current one).
    async fn create_rows_full(
        &mut self,
        req: &CreateInstance,
        backfill: Option<BackfillLink>,
        now: DateTime<Utc>,
        version: Option<i64>,
    ) -> Result<(Created, Option<Effect>)> {
        let mut new = self.prepare(req, backfill, now, version).await?;
        let manual = req.scheduled_for.is_none();
        let mut tries = 0;
        let id = loop {
            match self.tx().instance_insert(&new.row).await? {
                Some(id) => break id,
                // two manual triggers in the same millisecond: take the next one
                None if manual && tries < 100 => {
                    tries += 1;
                    new.row.scheduled_for += chrono::Duration::milliseconds(1);
                }
                None => {
                    // prepare counted it running: nothing was inserted, so count again when asked
                    if new.starts {
                        self.forget_running(&new.row.workflow);
                    }
                    let created = Created {
                        id: None,
                        status: InstanceStatus::Pending,
                    };
                    return Ok((created, None));
                }
            }
        };
        let tasks = new.tasks(id);
        let task_ids = self.tx().task_insert_many(&tasks).await?;
        self.inserted(new, id, &tasks, &task_ids).await
    }

    /// Creates the instances `reqs` (cron slots, each its own) in this transaction with one
    /// statement for their rows and one for their tasks, and applies their starts. `None` when a
    /// slot was fired already: the transaction must then be rolled back.
    pub(crate) async fn create_many(
        &mut self,
        reqs: &[CreateInstance],
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Created>>> {
        let mut created = Vec::with_capacity(reqs.len());
        for reqs in reqs.chunks(INSTANCES_PER_INSERT) {
            let mut news = Vec::with_capacity(reqs.len());
            for req in reqs {
                news.push(self.prepare(req, None, now, None).await?);
            }
            let rows: Vec<NewInstance> = news.iter().map(|n| n.row.clone()).collect();
            let Some(ids) = self.tx().instance_insert_many(&rows).await? else {
                return Ok(None);
            };
            // every instance's tasks in one list, each instance's at its span
            let mut tasks = Vec::new();
            let mut spans = Vec::with_capacity(news.len());
            for (new, &id) in news.iter().zip(&ids) {
                let start = tasks.len();
                tasks.extend(new.tasks(id));
                spans.push(start..tasks.len());
            }
            let mut task_ids = Vec::with_capacity(tasks.len());
            for some in tasks.chunks(TASKS_PER_INSERT) {
                task_ids.extend(self.tx().task_insert_many(some).await?);
            }
            for ((new, id), span) in news.into_iter().zip(ids).zip(spans) {
                let (c, start) = self
                    .inserted(new, id, &tasks[span.clone()], &task_ids[span])
                    .await?;
                if let Some(start) = start {
                    self.push(start);
                }
                created.push(c);
            }
        }
        self.drain().await?;
        Ok(Some(created))
    }

    /// Everything a creation decides before its insert: the version, the parameters, whether it
    /// starts (counted as running from here: the workflow row's lock keeps the count true until
    /// commit) and how.
    async fn prepare(
        &mut self,
        req: &CreateInstance,
        backfill: Option<BackfillLink>,
        now: DateTime<Utc>,
        version: Option<i64>,
    ) -> Result<Prepared> {
        let found = self.workflow(&req.workflow).await?;
        let head = runnable(&req.workflow, found, |h| h.enabled)?;
        let version = version.unwrap_or(head.version);
        if !(1..=head.version).contains(&version) {
            return Err(Error::refused(format!(
                "workflow `{}` has no version {version} (it has 1 to {})",
                head.name, head.version
            )));
        }
        let def = self.definition(&head.name, version).await?;
        let scheduled_for = req.scheduled_for.unwrap_or(now);
        let (params, missing) = evaluate(self.engine.timezone, &def, req, scheduled_for)?;
        // a fire nobody is waiting on records its failure as an instance; a caller is refused
        let failure = match missing.is_empty() {
            true => None,
            false if req.trigger.is_automatic() => Some(missing_message(&def, &missing)),
            false => return Err(Error::refused(missing_message(&def, &missing))),
        };
        // counted before the insert (the new row is not running either way)
        let starts =
            failure.is_none() && self.running_count(&head.name).await? < head.instance_limit;
        if starts {
            self.one_more_running(&head.name);
        }
        // most instances are written started: no lock, read or update of their rows after the insert
        let born = starts.then(|| born_started_plan(&def)).flatten();
        let row = NewInstance {
            workflow: head.name.clone(),
            workflow_version: version,
            params: serde_json::to_string(&params).expect("string map serialises"),
            trigger_kind: req.trigger,
            scheduled_for,
            parent_instance_id: req.parent.map(|p| p.0),
            parent_task_id: req.parent.map(|p| p.1),
            created_by: req.actor.clone(),
            backfill_id: backfill.map_or(BackfillId(0), |b| b.id),
            started: born.is_some(),
        };
        Ok(Prepared {
            row,
            current_version: head.version,
            def,
            failure,
            starts,
            born,
            backfill,
        })
    }

    /// What follows an instance's insert (`id`, its `tasks` inserted as `task_ids`): its event,
    /// and its end (a failure), its start as it was born, or the start to apply.
    async fn inserted(
        &mut self,
        new: Prepared,
        id: InstanceId,
        tasks: &[NewTask],
        task_ids: &[TaskId],
    ) -> Result<(Created, Option<Effect>)> {
        let Prepared {
            row,
            current_version,
            def,
            failure,
            starts,
            born,
            ..
        } = new;
        self.created(id);
        let actor = row.created_by.clone();
        self.tx()
            .event_insert_many(&[NewEvent {
                workflow: Some(row.workflow.clone()),
                instance_id: Some(id),
                kind: "instance_created",
                to_status: Some(InstanceStatus::Pending.as_str()),
                message: format!(
                    "{} instance for {}{}",
                    row.trigger_kind,
                    row.scheduled_for.format("%Y-%m-%d %H:%M:%S UTC"),
                    if row.workflow_version == current_version {
                        String::new()
                    } else {
                        format!(
                            " running old version {} (current: {current_version})",
                            row.workflow_version
                        )
                    }
                ),
                actor,
                ..Default::default()
            }])
            .await?;
        if let Some(why) = failure {
            // ends at once, failed, with every node skipped: the mail and the event name the
            // parameters, and the slot counts as fired
            self.lock(id).await?;
            let plan = dag::end_instance(
                &def,
                &states(&self.held(id).tasks),
                InstanceStatus::Failed,
                why,
            );
            let created = Created {
                id: Some(id),
                status: InstanceStatus::Failed,
            };
            return Ok((created, Some(Effect::Plan { instance: id, plan })));
        }
        let status = match starts {
            true => InstanceStatus::Running,
            false => InstanceStatus::Pending,
        };
        let created = Created {
            id: Some(id),
            status,
        };
        if let Some(plan) = &born {
            self.born_started(&row.workflow, id, plan, tasks, task_ids)
                .await?;
            return Ok((created, None));
        }
        Ok((created, starts.then(|| Advance::start_effect(id))))
    }

    /// Resets a finished instance's tasks for a rerun and starts it when its `instance-limit`
    /// allows; its status afterwards.
    pub(crate) async fn rerun(&mut self, id: InstanceId, recover: bool) -> Result<InstanceStatus> {
        let held = self
            .lock(id)
            .await?
            .ok_or_else(|| Error::refused(format!("no instance {id}")))?;
        let inst = held.inst.clone();
        if !inst.status.is_terminal() {
            return Err(Error::refused(format!(
                "instance {id} is {}; only a finished instance can be rerun",
                inst.status
            )));
        }
        let def = self
            .definition(&inst.workflow, inst.workflow_version)
            .await?;
        let tasks = self.held(id).tasks.clone();
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
                // a rerun gets the full retry policy and lost budget again; attempt numbers keep
                // counting up
                t.max_attempts = Some(task.attempt + i64::from(a.retry_times) + 1);
                t.lost_attempts = Some(0);
            }
            if !self.transition(id, &t).await? {
                return Err(Error::Conflict(format!(
                    "task {} changed during rerun",
                    task.id
                )));
            }
        }
        let cas = self
            .tx()
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
        self.held(id).inst.status = InstanceStatus::Pending;
        let actor = self.actor.clone();
        self.tx()
            .event_insert_many(&[NewEvent {
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
                actor,
                ..Default::default()
            }])
            .await?;
        self.push(Effect::StartPending {
            workflow: inst.workflow.clone(),
        });
        self.drain().await?;
        Ok(self.status_of(id).unwrap_or(InstanceStatus::Pending))
    }
}

/// Rows of one multi-row insert when many instances are created together: far below every
/// backend's limit on bound parameters (MySQL's 65,535; an instance binds 9, a task 11).
const INSTANCES_PER_INSERT: usize = 1_000;
const TASKS_PER_INSERT: usize = 1_000;

/// An instance decided, not yet inserted.
struct Prepared {
    row: NewInstance,
    /// The workflow's current version (the row may run an older one).
    current_version: i64,
    def: std::sync::Arc<Workflow>,
    /// Why it ends failed at once (parameters missing), for an automatic fire.
    failure: Option<String>,
    starts: bool,
    /// Its start, written with its rows.
    born: Option<dag::Plan>,
    backfill: Option<BackfillLink>,
}

impl Prepared {
    /// Its tasks, as instance `id`'s: waiting, or as its start leaves them when born started.
    fn tasks(&self, id: InstanceId) -> Vec<NewTask> {
        let mut tasks = new_tasks(&self.def, id);
        if let Some(b) = self.backfill {
            for t in &mut tasks {
                t.priority = b
                    .priority
                    .unwrap_or(t.priority.saturating_sub(BACKFILL_PRIORITY_DROP));
            }
        }
        if let Some(plan) = &self.born {
            for u in &plan.updates {
                if let Some(t) = tasks.iter_mut().find(|t| t.node == u.node) {
                    t.status = u.to;
                }
            }
        }
        tasks
    }
}

/// An instance's parameters, and the names it needs that nothing gave (run-time parameters declared
/// nowhere, or a coordinator parameter built from one).
fn evaluate(
    server_zone: Tz,
    def: &Workflow,
    req: &CreateInstance,
    at: DateTime<Utc>,
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    if req.parent.is_none() {
        // a child gets its parent's parameters; anything else was given by a caller
        def.check_given_params(req.params.keys())
            .map_err(Error::refused)?;
    }
    let coordinator = def.coordinator.as_ref();
    let tz: Tz = coordinator
        .and_then(|c| c.timezone.as_deref())
        .and_then(|z| z.parse().ok())
        .unwrap_or(server_zone);
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
    let calendar = coordinator.and_then(|c| c.business_days.as_ref());
    let (params, mut missing) =
        evaluate_params_leniently(&list, &req.params, at.with_timezone(&tz), calendar)
            .map_err(|e| Error::refused(format!("workflow `{}`: {e}", def.name)))?;
    for p in def.param_refs() {
        if !params.contains_key(&p) && !missing.contains(&p) && !list.iter().any(|l| l.name == p) {
            missing.push(p);
        }
    }
    Ok((params, missing))
}

/// The refusal (or, for a fire nobody watches, the failure) of a start that leaves parameters
/// undefined: it names each.
fn missing_message(def: &Workflow, missing: &[String]) -> String {
    format!(
        "workflow `{}` needs parameter(s) {}: give them with --param NAME=VALUE",
        def.name,
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
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
                    a.host.clone().unwrap_or_else(|| DEFAULT_QUEUE.to_string()),
                ),
                _ => (1, 0, None, DEFAULT_QUEUE.to_string()),
            };
            // control nodes complete inside the advancing transaction: never in a pool
            let (pool, pool_slots, priority) = match &n.kind {
                NodeKind::Action(a) => (
                    a.pool.clone().unwrap_or_default(),
                    i64::from(a.pool_slots.max(1)),
                    a.priority.unwrap_or(def.priority),
                ),
                _ => (String::new(), 1, def.priority),
            };
            NewTask {
                instance_id: instance,
                node: n.name.clone(),
                kind: n.kind.kind_name().to_string(),
                max_attempts,
                retry_interval_s: interval,
                timeout_s: timeout,
                queue,
                priority,
                pool,
                pool_slots,
                status: TaskStatus::Waiting,
            }
        })
        .collect()
}
