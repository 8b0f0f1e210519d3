//! Moving a run forward, in one place (the "functional core, imperative shell" shape).
//!
//! Every operation that changes run state opens one [`Advance`] through [`Engine::advance`]: a
//! transaction, the instances it has locked (with their task rows as this transaction has left
//! them), and a queue of [`Effect`]s. An operation records its own change (an attempt's end, a kill,
//! a rerun's reset), then hands the consequence to the queue: a node reached a state, an instance
//! must start or end. [`Advance::drain`] is the one loop that applies effects: the pure DAG step
//! ([`super::dag`]) turns a node's new state into a [`Plan`], the plan's writes are applied, and what
//! they cause (a child to start, an email node to queue, the instance to end, the parent to report
//! to, pending instances to start, downstream coordinators to satisfy, children to kill) is pushed
//! back as further effects. The queue is depth first: what an effect causes runs before the effects
//! queued after it, which keeps the order the events are written in.
//!
//! Writes: the DAG step, a plan's task changes and an instance's end only read the held rows, and
//! their writes are deferred (each is guarded on a row read under the instance lock); the
//! deferred changes go out together, one statement per run of identical ones, before any effect
//! that reads, locks or writes a row directly, and when the queue runs dry. A batch of reports thus
//! writes its tasks' ends, its plans' changes and its instances' ends in a statement each, and asks
//! once, for all the workflows whose instances ended, which have pending instances to start.
//! Events and attempt rows are buffered by the transaction itself and inserted at commit.
//!
//! Lock order: instance rows are locked in ascending id order within a transaction (batched reports
//! sort by id, a child's id is above its parent's). Locking an existing instance below one already
//! held (a child's end reporting to its parent, a pending instance older than the one that ended)
//! would invert that order against another transaction, so [`Advance::lock`] refuses with
//! [`Error::LockOrder`]; [`Engine::advance`] then rolls back and runs the operation again with that
//! instance locked first. Instances created in this transaction are invisible to others and exempt.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

use super::dag::{InstanceEnd, Plan};
use super::state::{InstanceId, InstanceStatus, TaskId, TaskStatus};
use super::Engine;
use crate::error::{Error, Result};
use crate::store::{
    Changes, InstanceRow, InstanceTransition, NewEvent, StoreTx, TaskRow, TaskTransition,
    WorkflowHead,
};

mod effects;

pub(crate) use effects::born_started_plan;

/// `task.kind` of a sub-workflow node: the engine starts its child when the node is reached, and
/// the child's end finishes the node.
pub(crate) const SUB_WORKFLOW_KIND: &str = "sub-workflow";

/// Whether the engine itself runs a node of this `task.kind` when it is reached (it never waits
/// for a worker).
pub(crate) fn is_engine_run(kind: &str) -> bool {
    kind == SUB_WORKFLOW_KIND || kind == crate::alert::EMAIL_KIND
}

/// What an operation run by [`Engine::advance`] returns: its future, boxed once per try (a
/// closure's future borrowing its argument cannot be named otherwise).
pub(crate) type Step<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// At most this many instances are added to a transaction's lock-first list before it gives up.
const MAX_PRELOCK: usize = 64;

/// An instance locked in the current transaction, the database time read with the lock, and its
/// tasks as this transaction has left them.
pub(crate) struct Held {
    pub inst: InstanceRow,
    pub now: DateTime<Utc>,
    pub tasks: BTreeMap<String, TaskRow>,
}

impl Held {
    pub(crate) fn task_by_id(&self, id: TaskId) -> Option<&TaskRow> {
        self.tasks.values().find(|t| t.id == id)
    }
}

/// One consequence still to apply. Each names the instance it touches; the loop locks it.
#[derive(Debug)]
pub(crate) enum Effect {
    /// A node of a held instance reached its final status (written, and in the held rows): take
    /// the DAG step after it.
    NodeEnded { instance: InstanceId, node: String },
    /// Write a DAG plan's task changes and queue what follows from them.
    Plan { instance: InstanceId, plan: Plan },
    /// `pending → running`, then the DAG from the start node. `not_before` keeps the start time
    /// from going back when the instance was locked before the clock read of the caller.
    Start {
        instance: InstanceId,
        not_before: Option<DateTime<Utc>>,
    },
    /// An `<email>` node reached `running`: queue its mail and finish it.
    QueueEmail { instance: InstanceId, task: TaskId },
    /// A `<sub-workflow>` node reached `running`: start its child.
    StartChild { instance: InstanceId, task: TaskId },
    /// After the child of a sub-workflow node was created (and its start applied): say the node
    /// waits, or finish it when it does not wait.
    ChildStarted {
        instance: InstanceId,
        task: TaskId,
        message: String,
        wait: bool,
    },
    /// The engine-run nodes of one plan are done: advance those that finished at once.
    AfterEngineRuns {
        instance: InstanceId,
        tasks: Vec<TaskId>,
    },
    /// Kill the live children a sub-workflow task started.
    KillChildren {
        parent: InstanceId,
        task: TaskId,
        reason: String,
    },
    /// The plan ended the instance.
    EndInstance {
        instance: InstanceId,
        end: InstanceEnd,
    },
    /// A child ended: finish its parent's waiting node.
    ReportToParent {
        parent: InstanceId,
        task: TaskId,
        child: InstanceRow,
        status: InstanceStatus,
        reason: String,
    },
    /// A successful run counts for the coordinators that depend on its workflow.
    SatisfyDownstream { instance: InstanceId },
    /// A blood run that succeeded starts each downstream workflow for the same slot.
    StartDownstream { instance: InstanceId },
    /// Start the oldest pending instances of a workflow while its `instance-limit` allows.
    StartPending { workflow: String },
}

impl Effect {
    /// Whether applying it only reads held rows and defers its task and instance writes.
    fn defers_writes(&self) -> bool {
        matches!(
            self,
            Effect::NodeEnded { .. }
                | Effect::Plan { .. }
                | Effect::EndInstance { .. }
                | Effect::SatisfyDownstream { .. }
        )
    }
}

/// A transaction moving runs forward. See the module doc.
pub(crate) struct Advance<'e> {
    pub(crate) engine: &'e Engine,
    tx: Box<dyn StoreTx>,
    pub(crate) actor: String,
    /// Instances to lock before any instance with a higher id (learned from an earlier try).
    prelock: Vec<InstanceId>,
    held: BTreeMap<InstanceId, Held>,
    /// Instances created in this transaction: invisible to others, so outside the lock order.
    fresh: HashSet<InstanceId>,
    /// Task changes known to apply, written together before anything reads or locks again.
    deferred: Vec<TaskTransition>,
    /// Instance ends known to apply (the row is held), likewise: a batch's ends in one statement.
    deferred_ends: Vec<InstanceTransition>,
    /// Workflows an end of this transaction may let a pending instance start in: checked together
    /// when the queue runs dry.
    pending_checks: Vec<String>,
    /// Successful ends that count for the coordinators depending on their workflow, likewise.
    satisfied: Vec<(String, InstanceId)>,
    /// Workflow rows this transaction locked, by name: a group of fires locks them in one
    /// statement ([`Advance::lock_workflows`]), and each creation then reads none again.
    workflows: HashMap<String, WorkflowHead>,
    /// Running instances of those workflows as this transaction has left them, while known: a
    /// start or end in this transaction forgets its workflow's, to be counted again.
    running: HashMap<String, i64>,
    queue: VecDeque<Effect>,
    /// Engine-run nodes that finished inside this transaction and are still to be advanced.
    finished_at_once: HashSet<TaskId>,
    made_ready: bool,
    wake: bool,
    abandoned: bool,
}

impl Engine {
    /// Runs `op` in one transaction with an [`Advance`], and commits unless it failed or
    /// [`Advance::abandon`]ed. Deadlocks and lock timeouts run it again (bounded, with back-off); a
    /// lock-order refusal runs it again at once with the instance it named locked first.
    pub(crate) async fn advance<'e, T>(
        &'e self,
        actor: &str,
        mut op: impl for<'a> FnMut(&'a mut Advance<'e>) -> Step<'a, T>,
    ) -> Result<T> {
        let mut prelock: Vec<InstanceId> = Vec::new();
        let mut attempt = 0;
        loop {
            let result = async {
                let tx = self.store.begin().await?;
                let mut adv = Advance::new(self, tx, actor, prelock.clone());
                match op(&mut adv).await {
                    Ok(v) => adv.finish().await.map(|()| v),
                    Err(e) => {
                        adv.tx.rollback().await.ok();
                        Err(e)
                    }
                }
            }
            .await;
            match result {
                Err(Error::LockOrder(id)) if prelock.len() < MAX_PRELOCK => {
                    tracing::debug!(instance_id = %id, "locking instance {id} first and running again");
                    if let Err(at) = prelock.binary_search(&id) {
                        prelock.insert(at, id);
                    }
                }
                Err(e) if e.is_retryable() => match crate::store::retry::ENGINE.backoff(attempt) {
                    Some(pause) => {
                        attempt += 1;
                        tracing::debug!(error = %e, attempt, "transaction conflict; retrying");
                        tokio::time::sleep(pause).await;
                    }
                    None => return Err(e),
                },
                other => return other,
            }
        }
    }
}

impl<'e> Advance<'e> {
    fn new(
        engine: &'e Engine,
        tx: Box<dyn StoreTx>,
        actor: &str,
        prelock: Vec<InstanceId>,
    ) -> Self {
        Advance {
            engine,
            tx,
            actor: actor.to_string(),
            prelock,
            held: BTreeMap::new(),
            fresh: HashSet::new(),
            deferred: Vec::new(),
            deferred_ends: Vec::new(),
            pending_checks: Vec::new(),
            satisfied: Vec::new(),
            workflows: HashMap::new(),
            running: HashMap::new(),
            queue: VecDeque::new(),
            finished_at_once: HashSet::new(),
            made_ready: false,
            wake: false,
            abandoned: false,
        }
    }

    /// The transaction, for an operation's own writes.
    pub(crate) fn tx(&mut self) -> &mut dyn StoreTx {
        &mut *self.tx
    }

    /// The definition an instance runs, read in this transaction when not cached.
    pub(crate) async fn definition(
        &mut self,
        workflow: &str,
        version: i64,
    ) -> Result<std::sync::Arc<crate::definition::Workflow>> {
        self.engine
            .definition_in(&mut *self.tx, workflow, version)
            .await
    }

    /// The database's clock, read in this transaction.
    pub(crate) async fn now(&mut self) -> Result<DateTime<Utc>> {
        Ok(self.tx.now().await?)
    }

    /// Rolls the transaction back instead of committing it when the operation returns.
    pub(crate) fn abandon(&mut self) {
        self.abandoned = true;
    }

    /// Wakes this process's worker after commit (tasks became ready some other way).
    pub(crate) fn wake_workers(&mut self) {
        self.wake = true;
    }

    /// Tasks became ready outside a plan (a retry, a hand-back): tell the workers at commit.
    pub(crate) fn tasks_made_ready(&mut self) {
        self.made_ready = true;
    }

    async fn finish(mut self) -> Result<()> {
        if self.abandoned {
            self.tx.rollback().await?;
            return Ok(());
        }
        self.drain().await?;
        self.flush().await?;
        if self.made_ready {
            self.tx.notify_ready().await?;
        }
        self.tx.commit().await?;
        if self.made_ready || self.wake {
            self.engine.wake.notify_one();
        }
        Ok(())
    }

    /// Locks instance `id` (once per transaction) and reads its tasks; `None` when it is gone. See
    /// the module doc for the order.
    pub(crate) async fn lock(&mut self, id: InstanceId) -> Result<Option<&mut Held>> {
        self.lock_all(&[id]).await?;
        Ok(self.held.get_mut(&id))
    }

    /// [`Advance::lock`] for several instances (a batch of reports) in two statements, not two
    /// per instance: every one not yet held is locked by one statement, in id order, and their
    /// tasks are read by one more.
    pub(crate) async fn lock_all(&mut self, ids: &[InstanceId]) -> Result<()> {
        let mut wanted = self.unheld(ids);
        let Some(&highest_wanted) = wanted.iter().max() else {
            return Ok(());
        };
        let highest_held = self
            .held
            .keys()
            .rev()
            .find(|h| !self.fresh.contains(h))
            .copied();
        if let Some(below) = wanted
            .iter()
            .filter(|w| highest_held.is_some_and(|h| h > **w) && !self.fresh.contains(w))
            .min()
        {
            return Err(Error::LockOrder(*below));
        }
        self.flush().await?;
        // instances learned to come first join the statement, which locks in id order (one that
        // is gone is simply not found)
        wanted.extend(
            self.prelock
                .iter()
                .filter(|p| **p < highest_wanted && !self.held.contains_key(p)),
        );
        wanted.sort_unstable();
        wanted.dedup();
        let locked = self.tx.instance_lock_many(&wanted).await?;
        self.hold(locked).await
    }

    /// Locks those of `ids` that no other transaction holds, without waiting (`SKIP LOCKED`), and
    /// reads their tasks; returns those it did not lock (held elsewhere, or gone). A batch of
    /// reports takes what it can this way, so that the results of an instance another report is
    /// advancing wait for the next batch instead of holding this batch's other instances while
    /// it waits. It cannot close a deadlock: it never waits, and every later wait of this
    /// transaction is checked against all it holds, these included.
    pub(crate) async fn lock_free(&mut self, ids: &[InstanceId]) -> Result<Vec<InstanceId>> {
        // instances an earlier try learned must come first are waited for, as `lock_all` would
        let first = self.unheld(&self.prelock);
        self.lock_all(&first).await?;
        let mut wanted = self.unheld(ids);
        if wanted.is_empty() {
            return Ok(wanted);
        }
        self.flush().await?;
        let locked = self.tx.instance_lock_free(&wanted).await?;
        self.hold(locked).await?;
        wanted.retain(|id| !self.held.contains_key(id));
        Ok(wanted)
    }

    /// Those of `ids` this transaction does not hold yet, ascending and without repeats.
    fn unheld(&self, ids: &[InstanceId]) -> Vec<InstanceId> {
        let mut out: Vec<InstanceId> = ids
            .iter()
            .copied()
            .filter(|id| !self.held.contains_key(id))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Reads the tasks of instances just locked and holds them.
    async fn hold(&mut self, locked: Vec<(InstanceRow, DateTime<Utc>)>) -> Result<()> {
        // one time for the instances one statement locked (its last lock's, so after every
        // wait): their changes are then the same and are written in one statement, not one
        // per instance
        let Some(now) = locked.iter().map(|(_, now)| *now).max() else {
            return Ok(());
        };
        let found: Vec<InstanceId> = locked.iter().map(|(inst, _)| inst.id).collect();
        let mut tasks: BTreeMap<InstanceId, BTreeMap<String, TaskRow>> = BTreeMap::new();
        for t in self.tx.task_list_many(&found).await? {
            tasks
                .entry(t.instance_id)
                .or_default()
                .insert(t.node.clone(), t);
        }
        for (inst, _) in locked {
            let tasks = tasks.remove(&inst.id).unwrap_or_default();
            self.held.insert(inst.id, Held { inst, now, tasks });
        }
        Ok(())
    }

    /// Locks the rows of `names` not locked yet (one statement, in name order) and counts their
    /// running instances (one more): a group of fires creates its instances without a lock or a
    /// count per fire.
    pub(crate) async fn lock_workflows(&mut self, names: &[String]) -> Result<()> {
        let mut wanted: Vec<String> = names
            .iter()
            .filter(|n| !self.workflows.contains_key(*n))
            .cloned()
            .collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        for head in self.tx.workflow_lock_many(&wanted).await? {
            self.workflows.insert(head.name.clone(), head);
        }
        let counts: HashMap<String, i64> = self
            .tx
            .instance_count_running_many(&wanted)
            .await?
            .into_iter()
            .collect();
        for name in wanted {
            let n = counts.get(&name).copied().unwrap_or(0);
            self.running.insert(name, n);
        }
        Ok(())
    }

    /// The row of workflow `name`, locked in this transaction (once); `None` when it is gone.
    pub(crate) async fn workflow(&mut self, name: &str) -> Result<Option<WorkflowHead>> {
        if let Some(head) = self.workflows.get(name) {
            return Ok(Some(head.clone()));
        }
        let head = self.tx.workflow_lock(name).await?;
        if let Some(h) = &head {
            self.workflows.insert(h.name.clone(), h.clone());
        }
        Ok(head)
    }

    /// The running instances of workflow `name` (its row locked by this transaction).
    pub(crate) async fn running_count(&mut self, name: &str) -> Result<i64> {
        if let Some(n) = self.running.get(name) {
            return Ok(*n);
        }
        let n = self.tx.instance_count_running(name).await?;
        self.running.insert(name.to_string(), n);
        Ok(n)
    }

    /// An instance of workflow `name` was created running: the count follows.
    pub(crate) fn one_more_running(&mut self, name: &str) {
        if let Some(n) = self.running.get_mut(name) {
            *n += 1;
        }
    }

    /// An instance of workflow `name` started or ended some other way: count again when asked.
    pub(crate) fn forget_running(&mut self, name: &str) {
        self.running.remove(name);
    }

    /// An instance this transaction holds.
    pub(crate) fn held(&mut self, id: InstanceId) -> &mut Held {
        self.held
            .get_mut(&id)
            .expect("effects name instances this transaction locked")
    }

    /// Marks `id` as created in this transaction.
    pub(crate) fn created(&mut self, id: InstanceId) {
        self.fresh.insert(id);
    }

    /// Leaves a task change that cannot miss (its row was read under the instance lock) to be
    /// written with its neighbours, one statement per run of identical changes.
    pub(crate) fn defer(&mut self, t: TaskTransition) {
        self.deferred.push(t);
    }

    /// Leaves the end of a held instance to be written with its neighbours (its status was read
    /// under the lock, so the write cannot miss).
    pub(crate) fn defer_end(&mut self, t: InstanceTransition) {
        self.deferred_ends.push(t);
    }

    /// Writes the deferred task changes, instance ends and dependency progress.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        self.flush_and_check(Vec::new()).await.map(drop)
    }

    /// [`Advance::flush`], and which of `pending_of` have a pending instance (read after the
    /// changes, with them where the backend can).
    async fn flush_and_check(&mut self, pending_of: Vec<String>) -> Result<Vec<String>> {
        let tasks = std::mem::take(&mut self.deferred);
        let ends = std::mem::take(&mut self.deferred_ends);
        let changes = Changes {
            tasks: runs(&tasks, TaskTransition::same_change, |t| t.id),
            instances: runs(&ends, InstanceTransition::same_change, |t| t.id),
            pending_of,
        };
        let mut pending = Vec::new();
        if !changes.is_empty() {
            let written = self.tx.changes_write(&changes).await?;
            // every row must change: a miss runs the whole operation again (or one by one),
            // never a result recorded half
            for ((ids, _), n) in changes.tasks.iter().zip(&written.tasks) {
                if *n != ids.len() as u64 {
                    return Err(Error::Conflict(format!(
                        "task(s) {ids:?} changed under their instance's lock"
                    )));
                }
            }
            for ((ids, _), n) in changes.instances.iter().zip(&written.instances) {
                if *n != ids.len() as u64 {
                    return Err(Error::Conflict(format!(
                        "instance(s) {ids:?} changed under their lock"
                    )));
                }
            }
            pending = written.pending;
        }
        let satisfied = std::mem::take(&mut self.satisfied);
        if !satisfied.is_empty() {
            self.tx.coordinator_depend_satisfy_many(&satisfied).await?;
        }
        Ok(pending)
    }

    /// Writes a task change guarded by its `from` and keeps the held row in step; `Stale` when the
    /// row was not as expected.
    pub(crate) async fn transition(
        &mut self,
        instance: InstanceId,
        t: &TaskTransition,
    ) -> Result<bool> {
        if !self.tx.task_transition(t).await?.applied() {
            return Ok(false);
        }
        self.note(instance, t);
        Ok(true)
    }

    /// Keeps the held row of a written (or deferred) change in step.
    pub(crate) fn note(&mut self, instance: InstanceId, t: &TaskTransition) {
        if let Some(row) = self
            .held
            .get_mut(&instance)
            .and_then(|h| h.tasks.values_mut().find(|r| r.id == t.id))
        {
            row.status = t.to;
            if t.to != TaskStatus::Running {
                row.worker_id = None;
                row.lease_until = None;
            }
            if t.ended_at.is_some() {
                row.ended_at = t.ended_at;
            }
            if t.kill_requested {
                row.kill_requested = true;
            }
            if let Some(m) = t.max_attempts {
                row.max_attempts = m;
            }
            if let Some(n) = t.lost_attempts {
                row.lost_attempts = n;
            }
        }
    }

    /// Queues an effect behind those already queued.
    pub(crate) fn push(&mut self, e: Effect) {
        self.queue.push_back(e);
    }

    /// The one loop: applies queued effects, and what they cause before what was queued after them,
    /// until nothing is left.
    pub(crate) async fn drain(&mut self) -> Result<()> {
        loop {
            while let Some(effect) = self.queue.pop_front() {
                // the DAG step, a plan's writes and an instance's end only read held rows and
                // defer their writes: a batch's changes stay together until something reads or
                // locks rows, or writes one directly
                if !effect.defers_writes() {
                    self.flush().await?;
                }
                let caused = self.apply(effect).await?;
                for e in caused.into_iter().rev() {
                    self.queue.push_front(e);
                }
            }
            // what the caller reads next sees every change; with them, one read for every
            // workflow the ends of this drain may let start
            let mut workflows = std::mem::take(&mut self.pending_checks);
            workflows.sort();
            workflows.dedup();
            let checked = !workflows.is_empty();
            for workflow in self.flush_and_check(workflows).await? {
                self.queue.push_back(Effect::StartPending { workflow });
            }
            if !checked {
                return Ok(());
            }
        }
    }

    async fn apply(&mut self, effect: Effect) -> Result<Vec<Effect>> {
        match effect {
            Effect::NodeEnded { instance, node } => self.node_ended(instance, &node).await,
            Effect::Plan { instance, plan } => self.apply_plan(instance, &plan).await,
            Effect::Start {
                instance,
                not_before,
            } => self.start(instance, not_before).await,
            Effect::QueueEmail { instance, task } => self.queue_email(instance, task).await,
            Effect::StartChild { instance, task } => self.start_child(instance, task).await,
            Effect::ChildStarted {
                instance,
                task,
                message,
                wait,
            } => {
                if wait {
                    let held = self.held(instance);
                    let (inst, row) = (held.inst.clone(), held.task_by_id(task).cloned());
                    if let Some(row) = row {
                        node_event(&mut *self.tx, &inst, &row, None, message, &self.actor).await?;
                    }
                } else {
                    self.finish_at_once(instance, task, TaskStatus::Succeeded, message)
                        .await?;
                }
                Ok(vec![])
            }
            Effect::AfterEngineRuns { instance, tasks } => {
                let mut caused = Vec::new();
                for t in tasks {
                    if !self.finished_at_once.remove(&t) {
                        continue;
                    }
                    if let Some(row) = self.held(instance).task_by_id(t) {
                        let node = row.node.clone();
                        caused.push(Effect::NodeEnded { instance, node });
                    }
                }
                Ok(caused)
            }
            Effect::KillChildren {
                parent,
                task,
                reason,
            } => self.kill_children(parent, task, reason).await,
            Effect::EndInstance { instance, end } => self.end_instance(instance, end).await,
            Effect::ReportToParent {
                parent,
                task,
                child,
                status,
                reason,
            } => {
                self.report_to_parent(parent, task, &child, status, &reason)
                    .await
            }
            Effect::SatisfyDownstream { instance } => {
                let inst = &self.held(instance).inst;
                let satisfied = (inst.workflow.clone(), inst.id);
                self.satisfied.push(satisfied);
                Ok(vec![])
            }
            Effect::StartDownstream { instance } => self.start_downstream(instance).await,
            Effect::StartPending { workflow } => self.start_pending(&workflow).await,
        }
    }

    /// The status of an instance this transaction holds, as it has left it.
    pub(crate) fn status_of(&self, id: InstanceId) -> Option<InstanceStatus> {
        self.held.get(&id).map(|h| h.inst.status)
    }

    /// Marks a pending instance's start to come (used by create).
    pub(crate) fn start_effect(instance: InstanceId) -> Effect {
        Effect::Start {
            instance,
            not_before: None,
        }
    }
}

/// The runs of neighbouring `items` that `same` says change their rows the same way (only the
/// ids differ), no run naming a row twice, each as its ids and its first change: one statement
/// writes each.
fn runs<T: Clone, K: PartialEq>(
    items: &[T],
    same: impl Fn(&T, &T) -> bool,
    id: impl Fn(&T) -> K,
) -> Vec<(Vec<K>, T)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let mut ids = vec![id(&items[i])];
        let mut j = i + 1;
        while j < items.len() && same(&items[i], &items[j]) && !ids.contains(&id(&items[j])) {
            ids.push(id(&items[j]));
            j += 1;
        }
        out.push((ids, items[i].clone()));
        i = j;
    }
    out
}

/// The event of an engine-run node (`to` is `None` while it waits).
async fn node_event(
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
        kind: if task.kind == SUB_WORKFLOW_KIND {
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

fn transition_message(to: TaskStatus) -> String {
    match to {
        TaskStatus::Ready => "reached".into(),
        TaskStatus::Skipped => "not reached".into(),
        other => other.as_str().into(),
    }
}

/// Node name → status, the shape the DAG functions want.
pub(crate) fn states(tasks: &BTreeMap<String, TaskRow>) -> BTreeMap<String, TaskStatus> {
    tasks.iter().map(|(n, t)| (n.clone(), t.status)).collect()
}
