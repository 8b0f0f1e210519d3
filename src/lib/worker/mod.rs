//! Worker: claims ready tasks, runs them under a lease it keeps alive, streams their logs into the
//! database, and reports each attempt's end.
//!
//! ```text
//!            claim (SKIP LOCKED, up to free slots)
//!  ready ──────────────────────────────────────────> running ──complete──> succeeded | failed | killed
//!    ^                                                 │  │                 (DAG advance, same tx)
//!    └──── hand back on graceful stop (not counted) ───┘  └─ heartbeat: one UPDATE extends every lease
//! ```
//! A worker that dies simply stops heartbeating; the master rescues its tasks when their leases run
//! out. A result finished while the database is away is reported once it is back.

mod heartbeat;
mod host;
mod log_writer;
mod reporter;
mod runner;
mod work_dir_pruner;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::error::Result;
use crate::state::TaskId;
use crate::store::{TaskClaimParams, WorkerRegistration};

/// How long a busy worker with less than half its slots free waits for more to free before claiming.
const CLAIM_GATHER: Duration = Duration::from_millis(5);

/// How often a worker reads the pool names its claims may take from: a new pool's tasks wait at
/// most this long for their first claim. Read only when a claim follows (an idle worker whose
/// queues hold nothing ready reads none); without pools, claims never read the pool table.
const POOL_NAMES_EVERY: Duration = Duration::from_secs(5);

pub use crate::state::DEFAULT_QUEUE;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The name `host` attributes pin to (default: the host name).
    pub name: String,
    /// Queues (labels) served besides the worker's own name; default `["default"]`.
    pub queues: Vec<String>,
    pub slots: usize,
    pub lease_ttl: Duration,
    pub heartbeat: Duration,
    /// How often the heartbeat's host sample also goes into the history (`worker_metric`).
    pub metric_every: Duration,
    /// The longest idle wait between claims.
    pub poll: Duration,
    /// How long running tasks may finish after a stop request before they are handed back.
    pub grace: Duration,
    pub work_dir: PathBuf,
    /// Instance directories in `work_dir` untouched this long are removed (`retention_days`);
    /// `None` keeps them.
    pub work_dir_keep: Option<Duration>,
    pub log_max_lines: u64,
    pub executor: crate::executor::ExecutorSettings,
    /// `akkaflow bench` only (a hidden flag): attempts succeed at once without running their action,
    /// so the benchmark measures the engine's own cost.
    pub bench_noop: bool,
    /// Wait for ready tasks on a LISTEN connection where the database has one (PostgreSQL);
    /// false polls only (`[pool] listen = false`, e.g. behind a transaction-pooling PgBouncer).
    pub listen: bool,
}

/// Why a running attempt is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Killed by an operator or because its instance ended: the attempt counts as killed.
    Killed,
    /// The worker is shutting down: the task goes back to `ready`, attempt not counted.
    Shutdown,
}

/// An attempt this worker claimed and has not yet reported: its lease is kept alive until then.
pub(crate) struct Running {
    pub stop: CancellationToken,
    pub reason: Arc<Mutex<Option<StopReason>>>,
    /// Its action has ended and its result waits for the reporter: it no longer takes a slot.
    pub ended: bool,
}

impl Running {
    pub(crate) fn stop_with(&self, reason: StopReason) {
        self.reason
            .lock()
            .expect("never poisoned")
            .get_or_insert(reason);
        self.stop.cancel();
    }
}

pub(crate) type RunningMap = Arc<Mutex<HashMap<TaskId, Running>>>;

/// The slots in use: tasks whose action still runs (not those waiting for their report).
pub(crate) fn acting(running: &HashMap<TaskId, Running>) -> usize {
    running.values().filter(|r| !r.ended).count()
}

/// Slots free for a claim. A slot runs one action and frees when the action ends, so the next
/// claim overlaps the report of the results before it (a worker of short tasks would otherwise
/// wait idle for every report's commit). The results waiting to be recorded count against
/// `waiting_slots` more: with the database slow to take reports, the worker claims no faster than
/// they are recorded; with none, a slot frees only once its result is recorded.
fn free_slots(slots: usize, waiting_slots: usize, running: &HashMap<TaskId, Running>) -> usize {
    let acting = acting(running);
    slots
        .saturating_sub(acting)
        .min((slots + waiting_slots).saturating_sub(running.len()))
}

/// Runs a worker until `stop` is cancelled, then drains it gracefully.
pub async fn run(engine: Engine, cfg: WorkerConfig, stop: CancellationToken) -> Result<()> {
    let cfg = WorkerConfig {
        work_dir: absolute_work_dir(&cfg.work_dir).await,
        ..cfg
    };
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let id = format!(
        "{}-{}-{:04x}",
        cfg.name,
        std::process::id(),
        fastrand::u16(..)
    );
    let mut queues = cfg.queues.clone();
    if !queues.contains(&cfg.name) {
        queues.push(cfg.name.clone());
    }
    let registration = WorkerRegistration {
        id: id.clone(),
        name: cfg.name.clone(),
        host,
        pid: i64::from(std::process::id()),
        queues: serde_json::to_string(&queues).expect("names serialise"),
        slots: cfg.slots as i64,
    };
    engine.store.worker_register(&registration).await?;
    tracing::info!(worker_id = %id, slots = cfg.slots, queues = ?queues, "worker started");

    let running: RunningMap = Arc::default();
    // with one writer a claim beside a report only waits for its lock (measured on SQLite: noop
    // burn-down 3,130-3,340 -> 2,380-2,460 tasks/s), so there a slot frees once its result is in
    let waiting_slots = if engine.store.backend().has_one_writer() {
        0
    } else {
        cfg.slots
    };
    let slot_freed = Arc::new(Notify::new());
    // a slot frees as its action ends only while the last claim took all it asked for (more may
    // be ready); otherwise the result's report may be what makes the next task ready (a chain),
    // a claim before it would come back empty and push the idle back-off on, so the slot frees
    // once the result is recorded
    let frees_early = Arc::new(AtomicBool::new(false));
    let (log_tx, log_rx) = tokio::sync::mpsc::channel(10_000);
    let services = CancellationToken::new();
    let mut owned = JoinSet::new();
    owned.spawn(log_writer::run(engine.store.clone(), log_rx));
    let (report_tx, report_rx) = tokio::sync::mpsc::channel(1024);
    owned.spawn(reporter::run(
        engine.clone(),
        id.clone(),
        report_rx,
        log_tx.clone(),
    ));
    // with notifications, polling only catches what nobody announces (a retry's run_at coming due,
    // a notification lost while the listener reconnects), so an idle worker may poll less often
    let mut idle_max = cfg.poll;
    let listener = if cfg.listen {
        engine.store.ready_listener().await
    } else {
        Ok(None)
    };
    match listener {
        Ok(Some(listener)) => {
            owned.spawn(listen(listener, engine.wake.clone(), services.clone()));
            idle_max = cfg.poll * 3;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "no LISTEN connection; relying on polling"),
    }
    if let Some(keep) = cfg.work_dir_keep {
        owned.spawn(work_dir_pruner::run(
            work_dir_pruner::WorkDirPrunerConfig {
                root: cfg.work_dir.clone(),
                keep,
                every: work_dir_pruner::WorkDirPrunerConfig::EVERY,
            },
            running.clone(),
            services.clone(),
        ));
    }
    owned.spawn(heartbeat::run(
        engine.clone(),
        id.clone(),
        registration,
        running.clone(),
        cfg.clone(),
        services.clone(),
    ));

    let mut attempts = JoinSet::new();
    let claim = TaskClaimParams {
        worker_id: id.clone(),
        queues,
        limit: 0,
        lease_ttl: cfg.lease_ttl,
        pools: vec![],
    };
    let mut pools: Vec<String> = vec![];
    let mut pools_read: Option<std::time::Instant> = None;
    let mut idle = IdleBackoff::new(idle_max);
    let mut outage = crate::store::OutageLog::new("worker");
    let mut busy = false;
    // a notification said work is ready: claim without asking first
    let mut woken = false;
    while !stop.is_cancelled() {
        while attempts.try_join_next().is_some() {}
        let waiting_now = if frees_early.load(Ordering::Relaxed) {
            waiting_slots
        } else {
            0
        };
        let count_free = || {
            free_slots(
                cfg.slots,
                waiting_now,
                &running.lock().expect("never poisoned"),
            )
        };
        let mut free = count_free();
        if busy && free > 0 && free * 2 < cfg.slots {
            // slots of a busy worker free one by one: claiming each alone costs a claim
            // transaction per task; a moment's wait lets a few more free for the same claim. A
            // report frees its batch's slots together, so the wait ends once every slot is free.
            let gather = tokio::time::sleep(CLAIM_GATHER);
            tokio::pin!(gather);
            while free < cfg.slots {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = &mut gather => break,
                    _ = slot_freed.notified() => {}
                }
                while attempts.try_join_next().is_some() {}
                free = count_free();
            }
        }
        let mut delay = idle.current();
        // an idle worker first asks whether anything is ready in its queues: one read per poll,
        // not a claim transaction and, every few seconds, the pool names
        if free > 0 && !busy && !std::mem::take(&mut woken) {
            match engine.store.ready_tasks_due(&claim.queues).await {
                Ok(true) => outage.recovered(),
                Ok(false) => {
                    outage.recovered();
                    free = 0;
                    delay = idle.next();
                }
                Err(e) => {
                    outage.failed(&e);
                    free = 0;
                    delay = idle.next();
                }
            }
        }
        if free > 0 && pools_read.is_none_or(|t| t.elapsed() >= POOL_NAMES_EVERY) {
            match engine.store.pool_names().await {
                Ok(names) => {
                    pools = names;
                    pools_read = Some(std::time::Instant::now());
                }
                Err(e) => tracing::debug!(error = %e, "could not read the pool names"),
            }
        }
        if free > 0 {
            match engine
                .store
                .task_claim(&TaskClaimParams {
                    limit: free as i64,
                    pools: pools.clone(),
                    ..claim.clone()
                })
                .await
            {
                Ok(tasks) => {
                    outage.recovered();
                    tracing::debug!(free, claimed = tasks.len(), "claimed");
                    busy = !tasks.is_empty();
                    frees_early.store(waiting_slots > 0 && tasks.len() == free, Ordering::Relaxed);
                    // tasks of many workflows (coordinators due together): the definitions this
                    // process has not seen yet in one read, not one per attempt
                    let workflows: Vec<String> = tasks.iter().map(|t| t.workflow.clone()).collect();
                    engine.warm_definitions(&workflows).await;
                    delay = if tasks.len() == free {
                        Duration::ZERO
                    } else if tasks.is_empty() {
                        idle.next()
                    } else {
                        idle.reset()
                    };
                    for task in tasks {
                        let r = Running {
                            stop: CancellationToken::new(),
                            reason: Arc::default(),
                            ended: false,
                        };
                        let ctx = runner::Runner {
                            engine: engine.clone(),
                            worker_id: id.clone(),
                            cfg: cfg.clone(),
                            stop: r.stop.clone(),
                            reason: r.reason.clone(),
                            log_tx: log_tx.clone(),
                            running: running.clone(),
                            slot_freed: slot_freed.clone(),
                            frees_early: frees_early.clone(),
                            report_tx: report_tx.clone(),
                        };
                        running.lock().expect("never poisoned").insert(task.id, r);
                        attempts.spawn(ctx.run(task));
                    }
                }
                Err(e) => {
                    outage.failed(&e);
                    frees_early.store(false, Ordering::Relaxed);
                    delay = idle.next();
                }
            }
        }
        if delay.is_zero() {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
            _ = engine.wake.notified() => {
                idle.reset_quiet();
                woken = true;
            }
            _ = slot_freed.notified() => {}
        }
    }

    let n = running.lock().expect("never poisoned").len();
    if n > 0 {
        tracing::info!(worker_id = %id, running = n, grace_s = cfg.grace.as_secs(), "stopping: letting running tasks finish");
    }
    if tokio::time::timeout(cfg.grace, async {
        while attempts.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        for r in running.lock().expect("never poisoned").values() {
            r.stop_with(StopReason::Shutdown);
        }
        while attempts.join_next().await.is_some() {}
    }
    drop(log_tx);
    drop(report_tx);
    services.cancel();
    while owned.join_next().await.is_some() {}
    if let Err(e) = engine.store.worker_deregister(&id).await {
        tracing::warn!(worker_id = %id, error = %e, "could not mark the worker stopped");
    }
    tracing::info!(worker_id = %id, "worker stopped");
    Ok(())
}

/// The work directory made and resolved once (a relative one against the worker's directory, a
/// link followed), so each attempt's directory is a join, not a `realpath`. When it cannot be
/// made, it stays as configured: each attempt then fails saying why, as before.
async fn absolute_work_dir(dir: &std::path::Path) -> PathBuf {
    if let Err(e) = tokio::fs::create_dir_all(dir).await {
        tracing::warn!(work_dir = %dir.display(), error = %e, "cannot create the work directory; attempts will fail until it can be");
        return dir.to_path_buf();
    }
    tokio::fs::canonicalize(dir)
        .await
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// Turns database notifications into in-process wake-ups of the claim loop.
async fn listen(
    mut listener: Box<dyn crate::store::ReadyListener>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut outage = crate::store::OutageLog::new("worker listener");
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            got = listener.recv() => match got {
                Ok(()) => {
                    outage.recovered();
                    wake.notify_one();
                }
                Err(e) => {
                    outage.failed(&e);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
    }
}

/// Idle polling: back off from 50 ms to the poll interval with jitter; reset when work shows up.
struct IdleBackoff {
    max: Duration,
    current: Duration,
}

impl IdleBackoff {
    const MIN: Duration = Duration::from_millis(50);

    fn new(max: Duration) -> Self {
        IdleBackoff {
            max,
            current: Self::MIN,
        }
    }

    fn current(&self) -> Duration {
        self.current
    }

    fn next(&mut self) -> Duration {
        self.current = (self.current * 2).min(self.max);
        jitter(self.current)
    }

    fn reset(&mut self) -> Duration {
        self.current = Self::MIN;
        self.current
    }

    fn reset_quiet(&mut self) {
        self.current = Self::MIN;
    }
}

/// ±20 % so a fleet's pollers do not fall into step.
pub(crate) fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.8 + fastrand::f64() * 0.4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(acting: usize, ended: usize) -> HashMap<TaskId, Running> {
        (0..acting + ended)
            .map(|i| {
                let r = Running {
                    stop: CancellationToken::new(),
                    reason: Arc::default(),
                    ended: i >= acting,
                };
                (TaskId(i as i64), r)
            })
            .collect()
    }

    #[test]
    fn a_slot_frees_when_its_action_ends_while_results_wait_within_the_slots() {
        assert_eq!(free_slots(4, 4, &claimed(0, 0)), 4);
        assert_eq!(free_slots(4, 4, &claimed(3, 0)), 1);
        // three actions ended, their results not yet recorded: their slots take the next claim
        assert_eq!(free_slots(4, 4, &claimed(1, 3)), 3);
        assert_eq!(free_slots(4, 4, &claimed(0, 4)), 4);
        // results waiting count against the waiting slots: the claimed never pass both sets, so a
        // worker whose reports lag stops claiming
        assert_eq!(free_slots(4, 4, &claimed(2, 4)), 2);
        assert_eq!(free_slots(4, 4, &claimed(1, 6)), 1);
        assert_eq!(free_slots(4, 4, &claimed(0, 8)), 0);
        assert_eq!(free_slots(4, 4, &claimed(4, 4)), 0);
        // without waiting slots (one writer) a slot frees only once its result is recorded
        assert_eq!(free_slots(4, 0, &claimed(1, 3)), 0);
        assert_eq!(free_slots(4, 0, &claimed(1, 1)), 2);
        assert_eq!(free_slots(4, 0, &claimed(0, 0)), 4);
    }

    #[test]
    fn idle_backoff_doubles_to_the_poll_interval_and_resets() {
        let mut b = IdleBackoff::new(Duration::from_secs(1));
        let mut last = Duration::ZERO;
        for _ in 0..10 {
            last = b.next();
        }
        assert!(
            last <= Duration::from_millis(1200) && last >= Duration::from_millis(800),
            "{last:?}"
        );
        assert_eq!(b.reset(), Duration::from_millis(50));
    }
}
