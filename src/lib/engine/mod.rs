//! The engine: every run-state operation, written once and used by the CLI, the scheduler, the
//! worker and the HTTP API alike.
//!
//! Each operation is one transaction that locks the instance row first (then, when needed, the
//! workflow row), applies guarded updates, writes an `event` row per change, and commits; the DAG
//! advance ([`crate::dag`]) happens inside the transaction that records a task's result. Deadlocks
//! and lock timeouts retry the whole operation a bounded number of times.

mod alerts;
mod instance;
mod sub_workflow;
mod task;
mod workflow;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::Notify;

use crate::dag::Plan;
use crate::definition::Workflow;
use crate::error::{Error, Result};
use crate::state::{InstanceStatus, TaskStatus};
use crate::store::{
    AttemptRow, InstanceRow, InstanceTransition, NewEvent, Store, StoreTx, TaskRow, TaskTransition,
};

pub use instance::{CreateInstance, Created};

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Shared handle on the store plus what every operation needs.
#[derive(Clone)]
pub struct Engine {
    pub store: Arc<dyn Store>,
    defs: Arc<DefinitionCache>,
    /// Fired when this process made tasks ready, so a local worker claims at once.
    pub wake: Arc<Notify>,
    /// Zone for coordinator-less workflows' time expressions.
    pub timezone: Tz,
    /// When state changes write alerts.
    pub alerts: crate::alert::AlertPolicy,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, timezone: Tz) -> Self {
        Engine {
            store,
            defs: Arc::new(DefinitionCache::default()),
            wake: Arc::new(Notify::new()),
            timezone,
            alerts: crate::alert::AlertPolicy::default(),
        }
    }

    /// An engine with the configuration's zone and alert policy: what every role and command uses.
    pub fn for_config(store: Arc<dyn Store>, cfg: &crate::config::Config) -> Self {
        Engine {
            alerts: cfg.alerts.clone(),
            ..Engine::new(store, cfg.timezone)
        }
    }

    /// The zone an instance of `def` evaluates `${time..}` in: its coordinator's, else the server's.
    pub fn zone_of(&self, def: &Workflow) -> Tz {
        def.coordinator
            .as_ref()
            .and_then(|c| c.timezone.as_deref())
            .and_then(|z| z.parse().ok())
            .unwrap_or(self.timezone)
    }

    /// The definition an instance runs (immutable per version, so cached forever).
    pub async fn definition(&self, workflow: &str, version: i64) -> Result<Arc<Workflow>> {
        if let Some(def) = self.defs.get(workflow, version) {
            return Ok(def);
        }
        let json = self
            .store
            .workflow_definition(workflow, version)
            .await?
            .ok_or_else(|| {
                Error::refused(format!("workflow `{workflow}` has no version {version}"))
            })?;
        let def: Workflow = serde_json::from_str(&json).map_err(|e| {
            Error::Store(crate::store::StoreError::Corrupt {
                table: "workflow_version",
                column: "definition",
                value: format!("{workflow} v{version}: {e}"),
            })
        })?;
        Ok(self.defs.put(workflow, version, def))
    }

    /// Runs `op` again when the database reports a deadlock or lock timeout (MySQL 1213/1205, SQLite busy).
    pub(crate) async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Err(e) if e.is_retryable() && attempt < 8 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "transaction conflict; retrying");
                    let backoff = 5 * u64::from(attempt) + fastrand::u64(0..10);
                    tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
                }
                other => return other,
            }
        }
    }

    /// Applies a DAG plan to an instance's rows inside `tx`, and ends the instance if the plan says so.
    /// A sub-workflow node that becomes ready starts its child instance here and waits `running`.
    pub(crate) fn apply_plan<'a>(
        &'a self,
        tx: &'a mut dyn StoreTx,
        inst: &'a InstanceRow,
        tasks: &'a BTreeMap<String, TaskRow>,
        plan: &'a Plan,
        now: DateTime<Utc>,
        actor: &'a str,
    ) -> BoxFut<'a, ()> {
        Box::pin(async move {
            let mut events = Vec::new();
            let mut engine_runs = Vec::new();
            let mut children_to_kill = Vec::new();
            let mut changes = Vec::with_capacity(plan.updates.len());
            for u in &plan.updates {
                let Some(task) = tasks.get(&u.node) else {
                    continue;
                };
                let sub_workflow = task.kind == sub_workflow::KIND;
                // nodes the engine itself runs when reached: they never wait for a worker
                let engine_run = sub_workflow || task.kind == crate::alert::EMAIL_KIND;
                let to = if engine_run && u.to == TaskStatus::Ready {
                    TaskStatus::Running
                } else {
                    u.to
                };
                // Guard on the state this plan was computed from, not on every state the plan
                // allows: a kill's `from` is `[ready, running]`, and a claim that commits between
                // our read and this update would otherwise be overwritten as if it had never run
                // (its attempt counted, no attempt row written). Stale means "retry it all".
                let from = if u.from.contains(&task.status) {
                    vec![task.status]
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
                changes.push((task, u, to, t));
            }
            apply_grouped(tx, &changes).await?;
            for (task, u, to, _) in changes {
                let sub_workflow = task.kind == sub_workflow::KIND;
                let was_running =
                    task.status == TaskStatus::Running || engine_runs.contains(&task.id);
                if to == TaskStatus::Running {
                    engine_runs.push(task.id);
                } else if to == TaskStatus::Killed && was_running && sub_workflow {
                    children_to_kill.push(task.id);
                } else if to == TaskStatus::Killed && task.status == TaskStatus::Running {
                    tx.task_attempt_insert(&AttemptRow {
                        task_id: task.id,
                        attempt: task.attempt,
                        worker_id: task.worker_id.clone(),
                        outcome: crate::state::AttemptOutcome::Killed,
                        exit_code: None,
                        error: u.note.clone(),
                        started_at: task.started_at,
                        ended_at: now,
                    })
                    .await?;
                }
                events.push(NewEvent {
                    workflow: Some(inst.workflow.clone()),
                    instance_id: Some(inst.id),
                    task_id: Some(task.id),
                    node: Some(u.node.clone()),
                    kind: "task_transition",
                    from_status: Some(task.status.as_str()),
                    to_status: Some(to.as_str()),
                    message: u.note.clone().unwrap_or_else(|| transition_message(to)),
                    actor: actor.to_string(),
                });
            }
            tx.event_insert_many(&events).await?;
            if plan.made_ready().next().is_some() {
                tx.notify_ready().await?;
            }
            let mut finished_at_once = Vec::new();
            for task_id in engine_runs
                .iter()
                .filter(|id| !children_to_kill.contains(id))
            {
                let task = tasks
                    .values()
                    .find(|t| t.id == *task_id)
                    .expect("from this map");
                let done = if task.kind == crate::alert::EMAIL_KIND {
                    let (to, message) = self.queue_email_node(tx, inst, task).await?;
                    Some(
                        self.finish_at_once(tx, inst, task, to, message, now, actor)
                            .await?,
                    )
                } else {
                    self.start_child(tx, inst, task, now, actor).await?
                };
                if let Some(done) = done {
                    finished_at_once.push((task.node.clone(), done));
                }
            }
            for task_id in &children_to_kill {
                self.kill_children(
                    tx,
                    inst,
                    *task_id,
                    &format!("its parent instance {} ended", inst.id),
                    actor,
                )
                .await?;
            }
            if let Some(end) = &plan.end {
                return self.end_instance(tx, inst, end, now, actor).await;
            }
            for (node, status) in finished_at_once {
                // a node that finished inside this plan (a sub-workflow that does not wait) moves on
                let mut tasks = by_node(tx.task_list(inst.id).await?);
                tasks.get_mut(&node).expect("the node has a row").status = status;
                let def = self
                    .definition(&inst.workflow, inst.workflow_version)
                    .await?;
                let next = crate::dag::after_node(&def, &states(&tasks), &node);
                self.apply_plan(tx, inst, &tasks, &next, now, actor).await?;
            }
            Ok(())
        })
    }

    /// Marks the instance ended and does what follows from it: dependency progress, a blood run's
    /// downstream, the next pending instance of the same workflow.
    async fn end_instance(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        end: &crate::dag::InstanceEnd,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<()> {
        let (status, reason) = (end.status, end.reason.as_str());
        let cas = tx
            .instance_transition(&InstanceTransition {
                id: inst.id,
                from: vec![InstanceStatus::Running, InstanceStatus::Pending],
                to: status,
                started_at: None,
                ended_at: Some(now),
                error: (status != InstanceStatus::Succeeded).then(|| reason.to_string()),
            })
            .await?;
        if !cas.applied() {
            return Ok(());
        }
        tx.event_insert_many(&[NewEvent {
            workflow: Some(inst.workflow.clone()),
            instance_id: Some(inst.id),
            kind: "instance_transition",
            from_status: Some(inst.status.as_str()),
            to_status: Some(status.as_str()),
            message: reason.to_string(),
            actor: actor.to_string(),
            ..Default::default()
        }])
        .await?;
        tracing::info!(workflow = %inst.workflow, instance_id = %inst.id, status = %status, "{reason}");
        self.alert_instance_end(tx, inst, end, now).await?;
        if let (Some(parent), Some(task)) = (inst.parent_instance_id, inst.parent_task_id) {
            self.report_to_parent(tx, parent, task, inst, status, reason, actor)
                .await?;
        }
        if status == InstanceStatus::Succeeded {
            if inst.trigger_kind.propagates() {
                tx.coordinator_depend_satisfy(&inst.workflow, inst.id)
                    .await?;
            }
            if inst.trigger_kind == crate::state::TriggerKind::Blood {
                self.start_blood_downstream(tx, inst, actor).await?;
            }
        }
        // Locking the workflow row to start a waiting instance would make every instance end of a
        // workflow wait on that one row; most ends have nothing waiting. One created while this
        // end commits is started by the master's next cycle.
        if tx
            .instance_pending_oldest(&inst.workflow, 1)
            .await?
            .is_empty()
        {
            return Ok(());
        }
        self.start_pending(tx, &inst.workflow, now, actor).await
    }
}

/// Writes a plan's task changes, one statement per run of identical changes (a fork making ten
/// branches ready is one UPDATE). Every row must change: the instance row is locked, so only a claim
/// can race us, and then the whole operation retries.
async fn apply_grouped(
    tx: &mut dyn StoreTx,
    changes: &[(
        &TaskRow,
        &crate::dag::NodeUpdate,
        TaskStatus,
        TaskTransition,
    )],
) -> Result<()> {
    let transitions: Vec<&TaskTransition> = changes.iter().map(|c| &c.3).collect();
    if let Err(stale) = write_runs(tx, &transitions).await? {
        let nodes: Vec<&str> = changes[stale].iter().map(|c| c.0.node.as_str()).collect();
        return Err(Error::Conflict(format!(
            "task(s) {nodes:?} changed under the instance lock"
        )));
    }
    Ok(())
}

/// Writes task changes, one statement per run of identical ones (only the ids differ). Every row
/// must change; `Err(range)` names the run where one did not.
pub(crate) async fn write_runs(
    tx: &mut dyn StoreTx,
    transitions: &[&TaskTransition],
) -> Result<std::result::Result<(), std::ops::Range<usize>>> {
    let mut i = 0;
    while i < transitions.len() {
        let head = transitions[i];
        let mut ids = vec![head.id];
        let mut j = i + 1;
        while j < transitions.len()
            && head.same_change(transitions[j])
            && !ids.contains(&transitions[j].id)
        {
            ids.push(transitions[j].id);
            j += 1;
        }
        if tx.task_transition_many(&ids, head).await? != ids.len() as u64 {
            return Ok(Err(i..j));
        }
        i = j;
    }
    Ok(Ok(()))
}

fn transition_message(to: TaskStatus) -> String {
    match to {
        TaskStatus::Ready => "reached".into(),
        TaskStatus::Skipped => "not reached".into(),
        other => other.as_str().into(),
    }
}

/// Immutable definitions by (workflow, version).
#[derive(Default)]
struct DefinitionCache {
    map: Mutex<HashMap<(String, i64), Arc<Workflow>>>,
}

impl DefinitionCache {
    fn get(&self, workflow: &str, version: i64) -> Option<Arc<Workflow>> {
        self.map
            .lock()
            .expect("cache lock is never poisoned")
            .get(&(workflow.to_string(), version))
            .cloned()
    }

    fn put(&self, workflow: &str, version: i64, def: Workflow) -> Arc<Workflow> {
        let def = Arc::new(def);
        self.map
            .lock()
            .expect("cache lock is never poisoned")
            .insert((workflow.to_string(), version), def.clone());
        def
    }
}

/// Node name → row, the shape the DAG functions want.
pub(crate) fn by_node(tasks: Vec<TaskRow>) -> BTreeMap<String, TaskRow> {
    tasks.into_iter().map(|t| (t.node.clone(), t)).collect()
}

pub(crate) fn states(tasks: &BTreeMap<String, TaskRow>) -> BTreeMap<String, TaskStatus> {
    tasks.iter().map(|(n, t)| (n.clone(), t.status)).collect()
}
