//! Task operations: record an attempt's end (alone or batched), rescue a lost lease, hand a task
//! back on graceful stop, and the operator's retry and kill. Each records its own change and hands
//! the consequence (the node reached a state) to the advance loop ([`super::advance`]).

use std::time::Duration;

use super::advance::{Effect, SUB_WORKFLOW_KIND};
use super::state::{
    after_attempt, after_lost, lost_budget_error, AfterAttempt, AfterLost, AttemptEnd,
    AttemptOutcome, InstanceId, InstanceStatus, RetryFacts, TaskId, TaskStatus,
};
use super::{Advance, Engine};
use crate::error::{Error, Result};
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
        let fence = &fence;
        self.advance(&actor, |adv: &mut Advance<'_>| {
            Box::pin(async move {
                let cas = adv.finish_attempt(claimed, fence, end, false).await?;
                if !cas.applied() {
                    adv.abandon();
                }
                Ok(cas)
            })
        })
        .await
    }

    /// Records several attempts' ends in one transaction (a worker's results that finished while
    /// its previous report committed): one commit instead of one per task. Instances are locked in
    /// id order, so two workers' batches cannot deadlock each other; siblings of one instance share
    /// its lock and one read of its tasks, and results that change nothing but their own task (fork
    /// branches ending before their join) are written together. When the batch fails for a reason
    /// other than the database being away, each result is recorded on its own, so one bad result
    /// cannot hold back the others.
    /// `logs` (the worker's output lines not yet written) are inserted in the same transaction.
    ///
    /// An instance another transaction holds (the other worker's report on the same fork) is not
    /// waited for: its results come back as `None`, to be handed in again with the next batch,
    /// while the rest are recorded now. The instances in `put_off` (results handed back before)
    /// are waited for, so no result is put off twice; so is everything when nothing could be
    /// locked without waiting.
    pub async fn complete_attempts(
        &self,
        worker_id: &str,
        batch: &[(ClaimedTask, AttemptEnd)],
        logs: &[LogLine],
        put_off: &[InstanceId],
    ) -> Result<Vec<Option<Cas>>> {
        if logs.is_empty() {
            if let [(claimed, end)] = batch {
                return Ok(vec![Some(
                    self.complete_attempt(claimed, worker_id, end).await?,
                )]);
            }
        }
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_key(|&i| (batch[i].0.instance_id.0, batch[i].0.id.0));
        let actor = format!("worker:{worker_id}");
        let order = &order;
        let together = self
            .advance(&actor, |adv: &mut Advance<'_>| {
                Box::pin(async move {
                    // before any instance lock, so the locks are held no longer than the DAG needs
                    adv.tx().task_log_insert_many(logs).await?;
                    let (patient, rest): (Vec<InstanceId>, Vec<InstanceId>) = order
                        .iter()
                        .map(|&i| batch[i].0.instance_id)
                        .partition(|id| put_off.contains(id));
                    adv.lock_all(&patient).await?;
                    let mut busy = adv.lock_free(&rest).await?;
                    // nothing could be taken without waiting: wait, as a lone report would
                    if patient.is_empty() && rest.iter().all(|id| busy.contains(id)) {
                        adv.lock_all(&busy).await?;
                        busy.clear();
                    }
                    let mut cas = vec![None; batch.len()];
                    for &i in order {
                        let (claimed, end) = &batch[i];
                        if busy.contains(&claimed.instance_id) {
                            continue;
                        }
                        let fence = Fence {
                            worker_id: worker_id.to_string(),
                            attempt: claimed.attempt,
                        };
                        cas[i] = Some(adv.finish_attempt(claimed, &fence, end, true).await?);
                    }
                    adv.drain().await?;
                    Ok(cas)
                })
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
                    out.push(Some(self.complete_attempt(claimed, worker_id, end).await?));
                }
                Ok(out)
            }
            other => other,
        }
    }

    /// Brings back a task whose lease ran out: a lost attempt, which does not spend the retry budget
    /// but counts against the lost budget; back to `ready`, or failed when that budget is spent.
    pub async fn rescue_task(&self, lost: &TaskRow, actor: &str) -> Result<Cas> {
        let Some(worker_id) = lost.worker_id.clone() else {
            return Ok(Cas::Stale);
        };
        let fence = Fence {
            worker_id,
            attempt: lost.attempt,
        };
        let fence = &fence;
        self.advance(actor, |adv: &mut Advance<'_>| {
            Box::pin(async move {
                let cas = adv.rescue(lost, fence).await?;
                if !cas.applied() {
                    adv.abandon();
                }
                Ok(cas)
            })
        })
        .await
    }

    /// Rescues a batch of lost attempts in one transaction (instances locked in id order); like
    /// [`Self::complete_attempts`], a batch that fails for a reason other than the database being
    /// away is done again one task at a time.
    pub async fn rescue_tasks(&self, lost: &[TaskRow], actor: &str) -> Result<Vec<Cas>> {
        if let [one] = lost {
            return Ok(vec![self.rescue_task(one, actor).await?]);
        }
        let mut order: Vec<usize> = (0..lost.len()).collect();
        order.sort_by_key(|&i| (lost[i].instance_id.0, lost[i].id.0));
        let order = &order;
        let together = self
            .advance(actor, |adv: &mut Advance<'_>| {
                Box::pin(async move {
                    let instances: Vec<InstanceId> =
                        order.iter().map(|&i| lost[i].instance_id).collect();
                    adv.lock_all(&instances).await?;
                    let mut cas = vec![Cas::Stale; lost.len()];
                    for &i in order {
                        let Some(worker_id) = lost[i].worker_id.clone() else {
                            continue;
                        };
                        let fence = Fence {
                            worker_id,
                            attempt: lost[i].attempt,
                        };
                        cas[i] = adv.rescue(&lost[i], &fence).await?;
                    }
                    Ok(cas)
                })
            })
            .await;
        match together {
            Err(e) if !matches!(&e, Error::Store(s) if s.is_connection()) => {
                tracing::debug!(error = %e, n = lost.len(), "batched rescue failed; rescuing one by one");
                let mut out = Vec::with_capacity(lost.len());
                for task in lost {
                    out.push(self.rescue_task(task, actor).await?);
                }
                Ok(out)
            }
            other => other,
        }
    }

    /// Graceful stop: gives a running task back to `ready`; the attempt keeps its number (and its
    /// log) but does not count against the retry budget.
    pub async fn hand_back(&self, claimed: &ClaimedTask, worker_id: &str) -> Result<Cas> {
        let fence = Fence {
            worker_id: worker_id.to_string(),
            attempt: claimed.attempt,
        };
        let actor = &format!("worker:{worker_id}");
        let fence = &fence;
        self.advance(actor, |adv: &mut Advance<'_>| {
            Box::pin(async move {
                let Some(held) = adv.lock(claimed.instance_id).await? else {
                    adv.abandon();
                    return Ok(Cas::Stale);
                };
                let (inst, now) = (held.inst.clone(), held.now);
                let Some(task) = fenced(&held.tasks, &claimed.node, fence).cloned() else {
                    adv.abandon();
                    return Ok(Cas::Stale);
                };
                let reason = format!(
                    "handed back by stopping worker {worker_id}; not counted as an attempt"
                );
                let mut t =
                    TaskTransition::new(task.id, vec![TaskStatus::Running], TaskStatus::Ready);
                t.fence = Some(fence.clone());
                t.run_at = Some(now);
                t.max_attempts = Some(task.max_attempts + 1);
                t.error = Some(reason.clone());
                if !adv.transition(inst.id, &t).await? {
                    adv.abandon();
                    return Ok(Cas::Stale);
                }
                adv.tasks_made_ready();
                record_attempt_end(
                    adv.tx(),
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
                        actor,
                        now,
                    },
                )
                .await?;
                Ok(Cas::Applied)
            })
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
        let task = &task;
        self.advance(actor, |adv: &mut Advance<'_>| {
            Box::pin(async move {
                let held = adv
                    .lock(task.instance_id)
                    .await?
                    .ok_or_else(|| Error::refused(format!("no instance {}", task.instance_id)))?;
                let (inst, now) = (held.inst.clone(), held.now);
                let current = held
                    .tasks
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
                match current.status {
                    TaskStatus::Running if current.kind == SUB_WORKFLOW_KIND => {
                        // no process to stop: killing its child ends the node through the child's end
                        adv.push(Effect::KillChildren {
                            parent: inst.id,
                            task: id,
                            reason: format!("its node was killed by {actor}"),
                        });
                        adv.drain().await?;
                        adv.tx()
                            .event_insert_many(&[event("killed", format!("killed by {actor}"))])
                            .await?;
                        Ok(TaskStatus::Killed)
                    }
                    TaskStatus::Running => {
                        if !adv.tx().task_request_kill(id).await?.applied() {
                            return Err(Error::Conflict(format!("task {id} changed")));
                        }
                        let msg = format!(
                            "kill requested by {actor}; its worker stops it within a heartbeat"
                        );
                        adv.tx().event_insert_many(&[event("running", msg)]).await?;
                        Ok(TaskStatus::Running)
                    }
                    TaskStatus::Waiting | TaskStatus::Ready => {
                        let mut t =
                            TaskTransition::new(id, vec![current.status], TaskStatus::Killed);
                        t.kill_requested = true;
                        t.error = Some(format!("killed by {actor}"));
                        t.ended_at = Some(now);
                        if !adv.transition(inst.id, &t).await? {
                            return Err(Error::Conflict(format!("task {id} changed")));
                        }
                        adv.tx()
                            .event_insert_many(&[event("killed", format!("killed by {actor}"))])
                            .await?;
                        adv.push(Effect::NodeEnded {
                            instance: inst.id,
                            node: current.node.clone(),
                        });
                        Ok(TaskStatus::Killed)
                    }
                    other => Err(Error::refused(format!(
                        "task {id} has already ended ({other})"
                    ))),
                }
            })
        })
        .await
    }
}

impl Advance<'_> {
    /// Records how a claimed attempt ended in the instance's held rows, and queues the DAG step
    /// when the task is done. With `defer` (a batch), the task's own change waits to be written
    /// with its neighbours (the row was read under the instance lock and matched the fence:
    /// nothing else changes a running attempt's status without that lock, so the write cannot
    /// miss), and the caller drains the queue after the batch's last result.
    async fn finish_attempt(
        &mut self,
        claimed: &ClaimedTask,
        fence: &Fence,
        end: &AttemptEnd,
        defer: bool,
    ) -> Result<Cas> {
        let Some(held) = self.lock(claimed.instance_id).await? else {
            return Ok(Cas::Stale);
        };
        let (inst, now) = (held.inst.clone(), held.now);
        let Some(task) = fenced(&held.tasks, &claimed.node, fence).cloned() else {
            return Ok(Cas::Stale);
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
        if defer {
            self.note(inst.id, &t);
            self.defer(t.clone());
        } else if !self.transition(inst.id, &t).await? {
            return Ok(Cas::Stale);
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
        let actor = self.actor.clone();
        record_attempt_end(
            self.tx(),
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
                actor: &actor,
                now,
            },
        )
        .await?;
        self.engine
            .alert_attempt_end(self.tx(), &inst, &task, end, &decision)
            .await?;
        if to.is_terminal() {
            self.push(Effect::NodeEnded {
                instance: inst.id,
                node: task.node.clone(),
            });
            // a batch drains once after its last result, so that its plans' writes and its
            // instances' ends go out together
            if !defer {
                self.drain().await?;
            }
        } else if to == TaskStatus::Ready {
            self.tasks_made_ready();
        }
        Ok(Cas::Applied)
    }

    /// The rescue of one lost attempt, in this transaction. A lost attempt is not the task's
    /// fault: the attempt gets back its place in the retry budget (`max_attempts` + 1, as a
    /// hand-back) and counts in `lost_attempts` instead; the loss that reaches the lost budget
    /// fails the task, with an event and an alert saying it may be killing its worker.
    async fn rescue(&mut self, lost: &TaskRow, fence: &Fence) -> Result<Cas> {
        let Some(held) = self.lock(lost.instance_id).await? else {
            return Ok(Cas::Stale);
        };
        let (inst, now) = (held.inst.clone(), held.now);
        let Some(task) = fenced(&held.tasks, &lost.node, fence).cloned() else {
            return Ok(Cas::Stale);
        };
        if task.lease_until.is_some_and(|l| l >= now) {
            return Ok(Cas::Stale); // heartbeat arrived meanwhile
        }
        let budget = self
            .engine
            .lost_budget(self.tx(), &inst, &task.node)
            .await?;
        let decision = after_lost(facts(&task), task.lost_attempts, budget);
        let lease = format!(
            "lease expired: worker {} stopped heartbeating during attempt {}",
            fence.worker_id, task.attempt
        );
        let lost_now = task.lost_attempts + 1;
        let (to, error) = match decision {
            AfterLost::Retry => (
                TaskStatus::Ready,
                format!(
                    "{lease}; lost {lost_now} of {budget} times, running it again (not counted against retry-times)"
                ),
            ),
            AfterLost::Kill => (TaskStatus::Killed, format!("{lease}; it was to be killed")),
            AfterLost::Fail { lost } => (
                TaskStatus::Failed,
                format!("{} (last: {lease})", lost_budget_error(lost)),
            ),
        };
        let mut t = TaskTransition::new(task.id, vec![TaskStatus::Running], to);
        t.fence = Some(fence.clone());
        t.run_at = (to == TaskStatus::Ready).then_some(now);
        t.error = Some(error.clone());
        t.kill_requested = to == TaskStatus::Killed;
        t.ended_at = to.is_terminal().then_some(now);
        t.lost_attempts = Some(lost_now);
        if decision == AfterLost::Retry {
            t.max_attempts = Some(task.max_attempts + 1);
        }
        if !self.transition(inst.id, &t).await? {
            return Ok(Cas::Stale);
        }
        let actor = self.actor.clone();
        record_attempt_end(
            self.tx(),
            AttemptEndRecord {
                inst: &inst,
                task: &task,
                worker_id: &fence.worker_id,
                outcome: AttemptOutcome::Lost,
                exit_code: None,
                error: Some(error.clone()),
                to,
                kind: "task_rescued",
                message: error.clone(),
                actor: &actor,
                now,
            },
        )
        .await?;
        if let AfterLost::Fail { lost } = decision {
            let failed = TaskRow {
                status: to,
                lost_attempts: lost_now,
                error: Some(error.clone()),
                ended_at: Some(now),
                ..task.clone()
            };
            self.engine
                .alert_lost_budget(self.tx(), &inst, &failed, lost, &error)
                .await?;
        }
        if to.is_terminal() {
            self.push(Effect::NodeEnded {
                instance: inst.id,
                node: task.node.clone(),
            });
            self.drain().await?;
        }
        self.wake_workers();
        Ok(Cas::Applied)
    }
}
