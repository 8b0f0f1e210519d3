//! The heartbeat: every few seconds one UPDATE for the worker row, carrying a sample of its host,
//! and one that extends the lease of every task this worker runs; then it stops the attempts that
//! were killed or taken away. A worker running nothing beats every third of the lease instead.
//! Once per interval of `metric_every` (a minute by default) the sample also goes into the host
//! history: one more statement per interval, none per beat.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::host::HostProbe;
use super::{RunningMap, StopReason, WorkerConfig};
use crate::engine::Engine;
use crate::state::TaskId;
use crate::store::{HostSample, OutageLog, WorkerMetricInsert, WorkerRegistration};

pub(super) async fn run(
    engine: Engine,
    id: String,
    registration: WorkerRegistration,
    running: RunningMap,
    cfg: WorkerConfig,
    stop: CancellationToken,
) {
    // running nothing, a worker has no lease to extend and no attempt to stop: it beats only
    // to show it is alive, well inside the lease others judge that by
    let idle_beat = cfg.heartbeat.max(cfg.lease_ttl / 3);
    let mut outage = OutageLog::new("worker heartbeat");
    let mut probe = HostProbe::new(&cfg.work_dir);
    let mut recorded: Option<u64> = None;
    let mut warned = false;
    // the first beat at once: the row's host sample is there from the start
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        // every task held keeps its lease, a result waiting for its report too; the slots in
        // use are the actions still running
        let (tasks, acting) = {
            let running = running.lock().expect("never poisoned");
            (running.len(), super::acting(&running))
        };
        wait = if tasks == 0 { idle_beat } else { cfg.heartbeat };
        let host = probe.sample(acting);
        match beat(&engine, &id, &registration, &running, cfg.lease_ttl, &host).await {
            Ok(()) => {
                tracing::debug!(
                    tasks,
                    "heartbeat renewed the worker row and its running tasks' leases"
                );
                outage.recovered()
            }
            Err(e) => {
                // the outage line is logged once per process; this says which loop still waits
                tracing::debug!(error = %e, tasks, "heartbeat failed");
                outage.failed(&e);
                continue;
            }
        }
        // once per interval of the clock (the database's decides the row; they agree but near a
        // boundary), from the first full sample on (the CPU share needs two readings)
        let interval = interval_of(SystemTime::now(), cfg.metric_every);
        if recorded != Some(interval) && host.cpu_percent.is_some() {
            let row = WorkerMetricInsert {
                worker_id: &id,
                every: cfg.metric_every,
                host: &host,
            };
            match engine.store.worker_metric_insert(&row).await {
                Ok(_) => recorded = Some(interval),
                // an outage is the heartbeat's to log; anything else (a missing grant) once
                Err(e) if e.is_connection() || std::mem::replace(&mut warned, true) => {
                    tracing::debug!(error = %e, "could not record the host history")
                }
                Err(e) => tracing::warn!(error = %e, "could not record the host history"),
            }
        }
    }
}

/// The number of the history interval `t` falls in.
fn interval_of(t: SystemTime, every: Duration) -> u64 {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    secs / every.as_secs().max(1)
}

async fn beat(
    engine: &Engine,
    id: &str,
    registration: &WorkerRegistration,
    running: &RunningMap,
    ttl: Duration,
    host: &HostSample,
) -> crate::store::Result<()> {
    if !engine.store.worker_heartbeat(id, host).await?.applied() {
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
