//! Task operations: record an attempt's end (and advance the DAG), rescue a lost lease, hand a task
//! back on graceful stop, and the operator's retry and kill.

use std::time::Duration;

use super::{by_node, states, Engine};
use crate::dag;
use crate::error::{Error, Result};
use crate::state::{
    after_attempt, after_lost_or_failed, AfterAttempt, AttemptEnd, AttemptOutcome, InstanceStatus,
    RetryFacts, TaskId, TaskStatus,
};
use crate::store::{
    AttemptRow, Cas, ClaimedTask, Fence, InstanceRow, LogLine, NewEvent, StoreTx, TaskRow,
    TaskTransition,
};

fn facts(t: &TaskRow) -> RetryFacts {
    RetryFacts {
        attempt: t.attempt,
        max_attempts: t.max_attempts,
        retry_interval: Duration::from_secs(t.retry_interval_s.max(0) as u64),
        kill_requested: t.kill_requested,
    }
}

/// The task row of `node` in `tasks`, checked to be the attempt `fence` describes.
fn fenced<'a>(
    tasks: &'a std::collections::BTreeMap<String, TaskRow>,
    node: &str,
    fence: &Fence,
) -> Option<&'a TaskRow> {
    tasks.get(node).filter(|t| {
        t.status == TaskStatus::Running
            && t.worker_id.as_deref() == Some(&fence.worker_id)
            && t.attempt == fence.attempt
    })
}

/// An instance locked in the current transaction, the database time read with the lock, and its
/// tasks as this transaction has left them.
struct Locked {
    inst: InstanceRow,
    now: chrono::DateTime<chrono::Utc>,
    tasks: std::collections::BTreeMap<String, TaskRow>,
}

impl Locked {
    /// Locks the instance and reads its tasks; `None` when the instance is gone.
    async fn read(tx: &mut dyn StoreTx, id: crate::state::InstanceId) -> Result<Option<Locked>> {
        let Some((inst, now)) = tx.instance_lock(id).await? else {
            return Ok(None);
        };
        let tasks = by_node(tx.task_list(id).await?);
        Ok(Some(Locked { inst, now, tasks }))
    }
}

/// What every end of a running attempt writes besides the task row: its `task_attempt` row and the
/// `event` saying what happened.
struct AttemptEndRecord<'a> {
    inst: &'a InstanceRow,
    task: &'a TaskRow,
    worker_id: &'a str,
    outcome: AttemptOutcome,
    exit_code: Option<i64>,
    error: Option<String>,
    to: TaskStatus,
    kind: &'static str,
    message: String,
    actor: &'a str,
    now: chrono::DateTime<chrono::Utc>,
}

async fn record_attempt_end(tx: &mut dyn StoreTx, r: AttemptEndRecord<'_>) -> Result<()> {
    tx.task_attempt_insert(&AttemptRow {
        task_id: r.task.id,
        attempt: r.task.attempt,
        worker_id: Some(r.worker_id.to_string()),
        outcome: r.outcome,
        exit_code: r.exit_code,
        error: r.error,
        started_at: r.task.started_at,
        ended_at: r.now,
    })
    .await?;
    tx.event_insert_many(&[NewEvent {
        workflow: Some(r.inst.workflow.clone()),
        instance_id: Some(r.inst.id),
        task_id: Some(r.task.id),
        node: Some(r.task.node.clone()),
        kind: r.kind,
        from_status: Some(TaskStatus::Running.as_str()),
        to_status: Some(r.to.as_str()),
        message: r.message,
        actor: r.actor.to_string(),
    }])
    .await?;
    Ok(())
}

/// Attempt ends of a batch not written yet: results that change nothing but their own task (fork
/// branches ending before their join) go out together, one UPDATE per run of identical changes,
/// before the batch reads another instance, before a DAG step, and before commit.
#[derive(Default)]
struct Deferred(Vec<TaskTransition>);

impl Deferred {
    async fn write(&mut self, tx: &mut dyn StoreTx) -> Result<()> {
        let pending = std::mem::take(&mut self.0);
        let refs: Vec<&TaskTransition> = pending.iter().collect();
        if super::write_runs(tx, &refs).await?.is_err() {
            // the whole batch runs again (or one by one): never a result recorded half
            return Err(Error::Conflict(
                "an attempt's task changed under the instance lock".into(),
            ));
        }
        Ok(())
    }
}

impl Engine {
    /// Records how a claimed attempt ended. `Stale` when the task is no longer this worker's attempt
    /// (rescued, killed with its instance): then nothing is written.
    pub async fn complete_attempt(
        &self,
        claimed: &ClaimedTask,
        worker_id: &str,
        end: &AttemptEnd,
    ) -> Result<Cas> {
        let fence = Fence {
            worker_id: worker_id.to_string(),
            attempt: claimed.attempt,
        };
        let actor = format!("worker:{worker_id}");
        let cas = self
            .retrying(|| async {
                let mut tx = self.store.begin().await?;
                let cas = self
                    .finish_attempt(&mut *tx, claimed, &fence, end, &actor)
                    .await?;
                if cas.applied() {
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                Ok(cas)
            })
            .await?;
        Ok(cas)
    }

    /// Records several attempts' ends in one transaction (a worker's results that finished while
    /// its previous report committed): one commit instead of one per task. Instances are locked in
    /// id order, so two workers' batches cannot deadlock each other. When the batch fails for a
    /// reason other than the database being away, each result is recorded on its own, so one bad
    /// result cannot hold back the others.
    /// `logs` (the worker's output lines not yet written) are inserted in the same transaction.
    pub async fn complete_attempts(
        &self,
        worker_id: &str,
        batch: &[(ClaimedTask, AttemptEnd)],
        logs: &[LogLine],
    ) -> Result<Vec<Cas>> {
        if logs.is_empty() {
            if let [(claimed, end)] = batch {
                return Ok(vec![self.complete_attempt(claimed, worker_id, end).await?]);
            }
        }
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&i| (batch[i].0.instance_id.0, batch[i].0.id.0));
        let actor = format!("worker:{worker_id}");
        let together = self
            .retrying(|| async {
                let mut tx = self.store.begin().await?;
                // before any instance lock, so the locks are held no longer than the DAG needs
                tx.task_log_insert_many(logs).await?;
                let mut cas = vec![Cas::Stale; batch.len()];
                // siblings of one instance in a batch share its lock and one read of its tasks
                let mut reuse: Option<Locked> = None;
                let mut deferred = Deferred::default();
                for &i in &order {
                    let (claimed, end) = &batch[i];
                    let fence = Fence {
                        worker_id: worker_id.to_string(),
                        attempt: claimed.attempt,
                    };
                    let locked = match reuse.take() {
                        Some(l) if l.inst.id == claimed.instance_id => l,
                        _ => {
                            deferred.write(&mut *tx).await?;
                            match Locked::read(&mut *tx, claimed.instance_id).await? {
                                Some(l) => l,
                                None => continue,
                            }
                        }
                    };
                    let (c, back) = self
                        .finish_locked(
                            &mut *tx,
                            locked,
                            claimed,
                            &fence,
                            end,
                            &actor,
                            Some(&mut deferred),
                        )
                        .await?;
                    cas[i] = c;
                    reuse = back;
                }
                deferred.write(&mut *tx).await?;
                tx.commit().await?;
                Ok(cas)
            })
            .await;
        match together {
            Err(e) if !matches!(&e, Error::Store(s) if s.is_connection()) => {
                tracing::debug!(error = %e, n = batch.len(), "batched report failed; reporting one by one");
                // output must not hold back results: a log that cannot be written is given up
                if let Err(e) = self.store.task_log_insert_many(logs).await {
                    tracing::warn!(error = %e, lines = logs.len(), "could not write attempt output");
                }
                let mut out = Vec::with_capacity(batch.len());
                for (claimed, end) in batch {
                    out.push(self.complete_attempt(claimed, worker_id, end).await?);
                }
                Ok(out)
            }
            other => other,
        }
    }

    async fn finish_attempt(
        &self,
        tx: &mut dyn StoreTx,
        claimed: &ClaimedTask,
        fence: &Fence,
        end: &AttemptEnd,
        actor: &str,
    ) -> Result<Cas> {
        let Some(locked) = Locked::read(tx, claimed.instance_id).await? else {
            return Ok(Cas::Stale);
        };
        Ok(self
            .finish_locked(tx, locked, claimed, fence, end, actor, None)
            .await?
            .0)
    }

    /// [`Self::finish_attempt`] on an instance already locked and read in this transaction. Returns
    /// the locked state back when this result changed nothing but its own task (a branch ending
    /// before its join), so the next result of the same instance in a batch needs no second read.
    /// With `deferred`, the task's own change is left there for the caller to write, unless a DAG
    /// step follows (it is written first then).
    #[allow(clippy::too_many_arguments)]
    async fn finish_locked(
        &self,
        tx: &mut dyn StoreTx,
        locked: Locked,
        claimed: &ClaimedTask,
        fence: &Fence,
        end: &AttemptEnd,
        actor: &str,
        mut deferred: Option<&mut Deferred>,
    ) -> Result<(Cas, Option<Locked>)> {
        let Locked {
            inst,
            now,
            mut tasks,
        } = locked;
        let Some(task) = fenced(&tasks, &claimed.node, fence).cloned() else {
            return Ok((Cas::Stale, Some(Locked { inst, now, tasks })));
        };
        let decision = after_attempt(facts(&task), end);
        let (to, run_at) = match decision {
            AfterAttempt::Succeed => (TaskStatus::Succeeded, None),
            AfterAttempt::Retry { after } => (
                TaskStatus::Ready,
                Some(now + chrono::Duration::from_std(after).unwrap_or_default()),
            ),
            AfterAttempt::Fail => (TaskStatus::Failed, None),
            AfterAttempt::Kill => (TaskStatus::Killed, None),
        };
        let mut t = TaskTransition::new(task.id, vec![TaskStatus::Running], to);
        t.fence = Some(fence.clone());
        t.run_at = run_at;
        t.exit_code = end.exit_code().map(i64::from);
        t.error = end.error();
        t.kill_requested = to == TaskStatus::Killed;
        t.ended_at = to.is_terminal().then_some(now);
        match deferred.as_deref_mut() {
            // the row was read under the instance lock and matched the fence: nothing else
            // changes a running attempt's status without that lock, so the write cannot miss
            Some(d) => d.0.push(t.clone()),
            None => {
                if !tx.task_transition(&t).await?.applied() {
                    return Ok((Cas::Stale, None));
                }
            }
        }
        let message = match (&decision, end.error()) {
            (AfterAttempt::Retry { after }, Some(e)) => {
                format!(
                    "attempt {} of {}: {e}; retrying in {}s",
                    task.attempt,
                    task.max_attempts,
                    after.as_secs()
                )
            }
            (_, Some(e)) => format!("attempt {}: {e}", task.attempt),
            (_, None) => format!("attempt {} succeeded", task.attempt),
        };
        record_attempt_end(
            tx,
            AttemptEndRecord {
                inst: &inst,
                task: &task,
                worker_id: &fence.worker_id,
                outcome: end.outcome(),
                exit_code: t.exit_code,
                error: t.error.clone(),
                to,
                kind: "task_transition",
                message,
                actor,
                now,
            },
        )
        .await?;
        self.alert_attempt_end(tx, &inst, &task, end, &decision)
            .await?;
        if to.is_terminal() && inst.status == InstanceStatus::Running {
            let row = tasks
                .get_mut(&task.node)
                .expect("the task came from this map");
            row.status = to;
            row.worker_id = None;
            row.ended_at = Some(now);
            let def = self
                .definition(&inst.workflow, inst.workflow_version)
                .await?;
            let plan = dag::after_node(&def, &states(&tasks), &task.node);
            if plan.updates.is_empty() && plan.end.is_none() {
                return Ok((Cas::Applied, Some(Locked { inst, now, tasks })));
            }
            if let Some(d) = deferred {
                d.write(tx).await?;
            }
            self.apply_plan(tx, &inst, &tasks, &plan, now, actor)
                .await?;
            if plan.made_ready().next().is_some() {
                self.wake.notify_one();
            }
        } else if to == TaskStatus::Ready {
            tx.notify_ready().await?;
            self.wake.notify_one();
        }
        Ok((Cas::Applied, None))
    }

    /// Brings back a task whose lease ran out: counted as an attempt, retried or failed by its policy.
    pub async fn rescue_task(&self, lost: &TaskRow, actor: &str) -> Result<Cas> {
        let Some(worker_id) = lost.worker_id.clone() else {
            return Ok(Cas::Stale);
        };
        let fence = Fence {
            worker_id,
            attempt: lost.attempt,
        };
        self.retrying(|| async {
            let mut tx = self.store.begin().await?;
            let Some(Locked {
                inst,
                now,
                mut tasks,
            }) = Locked::read(&mut *tx, lost.instance_id).await?
            else {
                return Ok(Cas::Stale);
            };
            let Some(task) = fenced(&tasks, &lost.node, &fence).cloned() else {
                return Ok(Cas::Stale);
            };
            if task.lease_until.is_some_and(|l| l >= now) {
                return Ok(Cas::Stale); // heartbeat arrived meanwhile
            }
            let (to, reason) = match after_lost_or_failed(facts(&task)) {
                AfterAttempt::Retry { .. } => (TaskStatus::Ready, "retrying"),
                AfterAttempt::Kill => (TaskStatus::Killed, "it was to be killed"),
                _ => (TaskStatus::Failed, "no attempts left"),
            };
            let error = format!(
                "lease expired: worker {} stopped heartbeating during attempt {}; {reason}",
                fence.worker_id, task.attempt
            );
            let mut t = TaskTransition::new(task.id, vec![TaskStatus::Running], to);
            t.fence = Some(fence.clone());
            t.run_at = (to == TaskStatus::Ready).then_some(now);
            t.error = Some(error.clone());
            t.kill_requested = to == TaskStatus::Killed;
            t.ended_at = to.is_terminal().then_some(now);
            if !tx.task_transition(&t).await?.applied() {
                tx.rollback().await?;
                return Ok(Cas::Stale);
            }
            record_attempt_end(
                &mut *tx,
                AttemptEndRecord {
                    inst: &inst,
                    task: &task,
                    worker_id: &fence.worker_id,
                    outcome: AttemptOutcome::Lost,
                    exit_code: None,
                    error: Some(error.clone()),
                    to,
                    kind: "task_rescued",
                    message: error,
                    actor,
                    now,
                },
            )
            .await?;
            if to.is_terminal() && inst.status == InstanceStatus::Running {
                tasks
                    .get_mut(&task.node)
                    .expect("the task came from this map")
                    .status = to;
                let def = self
                    .definition(&inst.workflow, inst.workflow_version)
                    .await?;
                let plan = dag::after_node(&def, &states(&tasks), &task.node);
                self.apply_plan(&mut *tx, &inst, &tasks, &plan, now, actor)
                    .await?;
            }
            tx.commit().await?;
            self.wake.notify_one();
            Ok(Cas::Applied)
        })
        .await
    }

    /// Graceful stop: gives a running task back to `ready`; the attempt keeps its number (and its
    /// log) but does not count against the retry budget.
    pub async fn hand_back(&self, claimed: &ClaimedTask, worker_id: &str) -> Result<Cas> {
        let fence = Fence {
            worker_id: worker_id.to_string(),
            attempt: claimed.attempt,
        };
        self.retrying(|| async {
            let mut tx = self.store.begin().await?;
            let Some(Locked { inst, now, tasks }) =
                Locked::read(&mut *tx, claimed.instance_id).await?
            else {
                return Ok(Cas::Stale);
            };
            let Some(task) = fenced(&tasks, &claimed.node, &fence).cloned() else {
                return Ok(Cas::Stale);
            };
            let reason =
                format!("handed back by stopping worker {worker_id}; not counted as an attempt");
            let mut t = TaskTransition::new(task.id, vec![TaskStatus::Running], TaskStatus::Ready);
            t.fence = Some(fence.clone());
            t.run_at = Some(now);
            t.max_attempts = Some(task.max_attempts + 1);
            t.error = Some(reason.clone());
            if !tx.task_transition(&t).await?.applied() {
                tx.rollback().await?;
                return Ok(Cas::Stale);
            }
            tx.notify_ready().await?;
            let actor = format!("worker:{worker_id}");
            record_attempt_end(
                &mut *tx,
                AttemptEndRecord {
                    inst: &inst,
                    task: &task,
                    worker_id,
                    outcome: AttemptOutcome::HandedBack,
                    exit_code: None,
                    error: Some(reason.clone()),
                    to: TaskStatus::Ready,
                    kind: "task_handed_back",
                    message: reason,
                    actor: &actor,
                    now,
                },
            )
            .await?;
            tx.commit().await?;
            Ok(Cas::Applied)
        })
        .await
    }

    /// A failed or killed task runs again and its (finished) instance continues from there; nodes
    /// that succeeded are kept.
    pub async fn retry_task(&self, id: TaskId, actor: &str) -> Result<InstanceStatus> {
        let task = self
            .store
            .task_get(id)
            .await?
            .ok_or_else(|| Error::refused(format!("no task {id}")))?;
        if !matches!(task.status, TaskStatus::Failed | TaskStatus::Killed) {
            return Err(Error::refused(format!(
                "task {id} is {}; only a failed or killed task can be retried",
                task.status
            )));
        }
        let inst = self
            .store
            .instance_get(task.instance_id)
            .await?
            .ok_or_else(|| Error::refused(format!("no instance {}", task.instance_id)))?;
        if !inst.status.is_terminal() {
            return Err(Error::refused(format!(
                "instance {} of task {id} is still {}; wait for it to end or kill it first",
                inst.id, inst.status
            )));
        }
        self.rerun_instance(task.instance_id, true, actor).await
    }

    /// Kills one task: a running one through its worker (within a heartbeat), a waiting or ready one
    /// at once (its instance then follows the error edge or ends killed).
    pub async fn kill_task(&self, id: TaskId, actor: &str) -> Result<TaskStatus> {
        let task = self
            .store
            .task_get(id)
            .await?
            .ok_or_else(|| Error::refused(format!("no task {id}")))?;
        self.retrying(|| async {
            let mut tx = self.store.begin().await?;
            let (inst, now) = tx
                .instance_lock(task.instance_id)
                .await?
                .ok_or_else(|| Error::refused(format!("no instance {}", task.instance_id)))?;
            let mut tasks = by_node(tx.task_list(task.instance_id).await?);
            let current = tasks
                .get(&task.node)
                .cloned()
                .ok_or_else(|| Error::refused(format!("no task {id}")))?;
            let event = |to: &'static str, message: String| NewEvent {
                workflow: Some(inst.workflow.clone()),
                instance_id: Some(inst.id),
                task_id: Some(id),
                node: Some(current.node.clone()),
                kind: "task_kill",
                from_status: Some(current.status.as_str()),
                to_status: Some(to),
                message,
                actor: actor.to_string(),
            };
            let result = match current.status {
                TaskStatus::Running if current.kind == super::sub_workflow::KIND => {
                    // no process to stop: killing its child ends the node through the child's end
                    self.kill_children(
                        &mut *tx,
                        &inst,
                        id,
                        &format!("its node was killed by {actor}"),
                        actor,
                    )
                    .await?;
                    tx.event_insert_many(&[event("killed", format!("killed by {actor}"))])
                        .await?;
                    TaskStatus::Killed
                }
                TaskStatus::Running => {
                    if !tx.task_request_kill(id).await?.applied() {
                        return Err(Error::Conflict(format!("task {id} changed")));
                    }
                    let msg = format!(
                        "kill requested by {actor}; its worker stops it within a heartbeat"
                    );
                    tx.event_insert_many(&[event("running", msg)]).await?;
                    TaskStatus::Running
                }
                TaskStatus::Waiting | TaskStatus::Ready => {
                    let mut t = TaskTransition::new(id, vec![current.status], TaskStatus::Killed);
                    t.kill_requested = true;
                    t.error = Some(format!("killed by {actor}"));
                    t.ended_at = Some(now);
                    if !tx.task_transition(&t).await?.applied() {
                        return Err(Error::Conflict(format!("task {id} changed")));
                    }
                    tx.event_insert_many(&[event("killed", format!("killed by {actor}"))])
                        .await?;
                    if inst.status == InstanceStatus::Running {
                        tasks.get_mut(&current.node).expect("present").status = TaskStatus::Killed;
                        let def = self
                            .definition(&inst.workflow, inst.workflow_version)
                            .await?;
                        let plan = dag::after_node(&def, &states(&tasks), &current.node);
                        self.apply_plan(&mut *tx, &inst, &tasks, &plan, now, actor)
                            .await?;
                    }
                    TaskStatus::Killed
                }
                other => {
                    return Err(Error::refused(format!(
                        "task {id} has already ended ({other})"
                    )))
                }
            };
            tx.commit().await?;
            Ok(result)
        })
        .await
    }
}
