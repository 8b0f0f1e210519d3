//! Reports attempt results in batches: whatever finished while the previous report was committing
//! goes into the next transaction together, so a busy worker pays one commit for many results and an
//! idle one reports a lone result at once (no batching delay). The log lines not yet written go in
//! the same transaction, so a result never becomes visible before its attempt's output.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::engine::Engine;
use crate::executor::LogMsg;
use crate::state::{AttemptEnd, InstanceId};
use crate::store::{Cas, ClaimedTask};

/// Results per transaction at most: bounds how long one report holds its instance locks.
const MAX_BATCH: usize = 64;

/// One result to record; `done` fires once it is recorded (or given up on).
pub(super) struct Report {
    pub task: ClaimedTask,
    pub end: AttemptEnd,
    /// Stopped by the worker's shutdown: hand the task back instead (attempt not counted).
    pub hand_back: bool,
    /// Handed back once by a report (its instance was held by another): waited for next time.
    pub put_off: bool,
    pub done: oneshot::Sender<()>,
}

/// Runs until every sender is gone and the queue is drained.
pub(super) async fn run(
    engine: Engine,
    worker_id: String,
    mut rx: mpsc::Receiver<Report>,
    log_tx: mpsc::Sender<LogMsg>,
) {
    // results the last report put off (their instance was held by another report): they lead
    // the next batch, which waits for their instances
    let mut put_off: Vec<Report> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut put_off);
        if batch.is_empty() {
            match rx.recv().await {
                Some(first) => batch.push(first),
                None => break,
            }
        }
        // attempts that ended together (a claim's batch of short tasks) send their results a
        // moment apart: letting the runtime run them once more before the transaction puts
        // them in this report, not the next (no timed wait: a lone result goes at once)
        loop {
            tokio::task::yield_now().await;
            let before = batch.len();
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.len() == before || batch.len() >= MAX_BATCH {
                break;
            }
        }
        let logs = super::log_writer::take(&log_tx).await;
        let patient: Vec<InstanceId> = batch
            .iter()
            .filter(|r| r.put_off)
            .map(|r| r.task.instance_id)
            .collect();
        let mut items = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut hand_backs = Vec::new();
        for r in batch {
            if r.hand_back {
                hand_backs.push(r);
            } else {
                items.push((r.task, r.end));
                acks.push(r.done);
            }
        }
        if items.is_empty() {
            until_reachable(|| async {
                Ok::<_, crate::Error>(engine.store.task_log_insert_many(&logs).await?)
            })
            .await;
        } else if let Some(recorded) =
            until_reachable(|| engine.complete_attempts(&worker_id, &items, &logs, &patient)).await
        {
            tracing::debug!(results = items.len(), "results recorded");
            for (((task, end), done), cas) in items.into_iter().zip(acks).zip(recorded) {
                match cas {
                    Some(cas) => {
                        refused(&task, cas);
                        let _ = done.send(());
                    }
                    None => put_off.push(Report {
                        task,
                        end,
                        hand_back: false,
                        put_off: true,
                        done,
                    }),
                }
            }
        } else {
            for done in acks {
                let _ = done.send(());
            }
        }
        for r in hand_backs {
            if let Some(cas) = until_reachable(|| engine.hand_back(&r.task, &worker_id)).await {
                refused(&r.task, cas);
            }
            let _ = r.done.send(());
        }
    }
}

/// Says so when a result was refused by the fencing: the attempt is no longer this worker's (its
/// lease ran out while the worker was cut off, and the task was rescued; or its instance ended).
fn refused(task: &ClaimedTask, cas: Cas) {
    if !cas.applied() {
        tracing::info!(task_id = %task.id, attempt = task.attempt, node = %task.node,
            "result refused: the attempt is no longer this worker's (rescued or ended meanwhile); nothing recorded");
    }
}

/// Runs a report until it is recorded, waiting out a database outage: a finished result is never
/// dropped for it; `None` when it failed for another reason (logged). A stale result (rescued or
/// ended meanwhile) is fine: nothing to record.
async fn until_reachable<T, F, Fut>(mut report: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<T>>,
{
    // the claim loop and the heartbeat already log the outage once; one line per waiting
    // result would be a flood with many tasks running
    let mut backoff = Duration::from_millis(200);
    loop {
        match report().await {
            Ok(v) => return Some(v),
            Err(e) if matches!(&e, crate::Error::Store(s) if s.is_connection()) => {
                tracing::debug!(error = %e, "results wait for the database");
                tokio::time::sleep(super::jitter(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(error = %e, "could not record an attempt's result");
                return None;
            }
        }
    }
}
