//! The heartbeat: every few seconds one UPDATE for the worker row and one that extends the lease of
//! every task this worker runs; then it stops the attempts that were killed or taken away.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{RunningMap, StopReason, WorkerConfig};
use crate::engine::Engine;
use crate::state::TaskId;
use crate::store::{OutageLog, WorkerRegistration};

pub(super) async fn run(
    engine: Engine,
    id: String,
    registration: WorkerRegistration,
    running: RunningMap,
    cfg: WorkerConfig,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(cfg.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outage = OutageLog::new("worker heartbeat");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match beat(&engine, &id, &registration, &running, cfg.lease_ttl).await {
            Ok(()) => outage.recovered(),
            Err(e) => outage.failed(&e),
        }
    }
}

async fn beat(
    engine: &Engine,
    id: &str,
    registration: &WorkerRegistration,
    running: &RunningMap,
    ttl: Duration,
) -> crate::store::Result<()> {
    if !engine.store.worker_heartbeat(id).await?.applied() {
        // the row was pruned while we were away: register again
        engine.store.worker_register(registration).await?;
    }
    let ids: Vec<TaskId> = running
        .lock()
        .expect("never poisoned")
        .keys()
        .copied()
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    engine.store.lease_extend_many(id, ttl).await?;
    for task in engine.store.task_kill_check(id, &ids).await? {
        if let Some(r) = running.lock().expect("never poisoned").get(&task) {
            tracing::info!(task_id = %task, "stopping attempt: killed or no longer ours");
            r.stop_with(StopReason::Killed);
        }
    }
    Ok(())
}
