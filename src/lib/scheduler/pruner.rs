//! The pruner: ended instances older than their retention go, with every row they own (tasks,
//! attempts, logs, events, alerts, data-monitor checks) and their sub-workflow instances; so do
//! events and sent alerts of no instance, dead workers and schedulers, and the workers' host
//! history older than its own retention (`worker_metric_days`). The tables stay bounded.
//!
//! A maintenance service in the shape of River's job cleaner: a [`PrunerConfig`] with documented
//! defaults, validated when built; [`Pruner::run_once`] is one pass (what the master and tests
//! call), [`Pruner::prune`] one pass with `akkaflow prune`'s options. A pass pages through
//! top-level instances by id, a batch at a time, and deletes each batch in transactions of at most
//! `rows_per_tx` rows, pausing after each, so claims and completions are never stalled behind it.
//! While ready tasks wait for a worker (the fleet is claiming) it takes `busy_rows_per_tx` rows at
//! a time with `busy_pause` between: on a busy server its deletes would otherwise take CPU and I/O
//! from the claims; it still advances, and goes at full pace again once the queue drains.
//!
//! What is never deleted: an instance that has not ended, or any instance of a tree (a top-level
//! instance and its sub-workflow instances) in which one has not; a tree whose instance runs again
//! (a retried task) between the pass reading it and deleting it is kept (the delete locks the
//! instances and checks they are still ended). Nothing the scheduler decides with reads a pruned
//! row: cron state is `coordinator.next_fire_at`, dependency progress is `coordinator_depend`
//! (whose `satisfied_instance_id` is only a note for people), `instance-limit` counts running
//! instances. A pass stopped half-way (a crash, a lost term) leaves an old instance with part of
//! its rows; the next pass finishes it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::state::InstanceId;
use crate::store::{
    OutageLog, RetentionCounts, RetentionDelete, RetentionLoose, RetentionScan, Store,
};

/// Tunables of the pruner.
#[derive(Clone, Debug)]
pub struct PrunerConfig {
    /// Ended instances older than this go, unless their workflow says `retention-days`. Default
    /// 30 days (`retention_days` in the configuration).
    pub retention: Duration,
    /// The workers' host history (`worker_metric`) older than this goes. Default 7 days
    /// (`worker_metric_days`); `akkaflow prune --older-than` with a shorter age takes that.
    pub metric_retention: Duration,
    /// How often the master runs a pass. Default 10 minutes.
    pub interval: Duration,
    /// Top-level instances read per batch. Default 50.
    pub instances_per_batch: i64,
    /// Rows deleted in one transaction at most. Default 2,000.
    pub rows_per_tx: i64,
    /// Pause after each transaction, jittered up to twice as long. Default 50 ms.
    pub pause: Duration,
    /// Rows per transaction while ready tasks wait for a worker. Default 500.
    pub busy_rows_per_tx: i64,
    /// Pause after each transaction while ready tasks wait, jittered like `pause`. Default 1 s.
    pub busy_pause: Duration,
    /// Transactions one pass runs at most; the rest waits for the next pass. Default 1,000.
    pub max_transactions: usize,
}

impl Default for PrunerConfig {
    fn default() -> Self {
        PrunerConfig {
            retention: Duration::from_secs(30 * 86_400),
            metric_retention: Duration::from_secs(7 * 86_400),
            interval: Duration::from_secs(600),
            instances_per_batch: 50,
            rows_per_tx: 2_000,
            pause: Duration::from_millis(50),
            busy_rows_per_tx: 500,
            busy_pause: Duration::from_secs(1),
            max_transactions: 1_000,
        }
    }
}

impl PrunerConfig {
    fn validate(&self) -> Result<()> {
        if self.instances_per_batch < 1
            || self.rows_per_tx < 1
            || self.busy_rows_per_tx < 1
            || self.max_transactions < 1
        {
            return Err(Error::Config(format!(
                "pruner: instances_per_batch ({}), rows_per_tx ({}), busy_rows_per_tx ({}) and max_transactions ({}) must be at least 1",
                self.instances_per_batch, self.rows_per_tx, self.busy_rows_per_tx, self.max_transactions
            )));
        }
        if self.interval.is_zero() {
            return Err(Error::Config("pruner: interval must not be zero".into()));
        }
        Ok(())
    }
}

/// What `akkaflow prune` asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct PruneOptions {
    /// One age for every workflow (their `retention-days` ignored); `None`: the configured
    /// retention and each workflow's own.
    pub older_than: Option<Duration>,
    /// Count what would go, delete nothing.
    pub dry_run: bool,
}

/// What one pass did (or, in a dry run, would do).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Rows per table.
    pub deleted: RetentionCounts,
    /// Top-level instances pruned (their sub-workflow instances are in `deleted`).
    pub instances: usize,
    /// Old top-level instances kept because one of their tree has not ended (or runs again).
    pub kept: usize,
    /// Transactions the deletes took.
    pub transactions: usize,
    /// Of those, the ones taken at the busy pace (ready tasks were waiting).
    pub busy_transactions: usize,
    /// The pass went through everything that was due (false: it stopped at `max_transactions` or
    /// lost the master role; the next pass continues).
    pub complete: bool,
}

impl PruneReport {
    pub fn is_empty(&self) -> bool {
        self.deleted.total() == 0
    }
}

pub struct Pruner {
    store: Arc<dyn Store>,
    cfg: PrunerConfig,
    /// While master (`None`: always, for `akkaflow prune`); a pass stops when the term ends.
    is_master: Option<watch::Receiver<bool>>,
}

/// Sub-workflow nesting followed at most (a guard against a corrupt parent cycle).
const MAX_DEPTH: usize = 64;

impl Pruner {
    pub fn new(store: Arc<dyn Store>, cfg: PrunerConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Pruner {
            store,
            cfg,
            is_master: None,
        })
    }

    /// A pruner that works only while `is_master` says so.
    pub fn while_master(mut self, is_master: watch::Receiver<bool>) -> Self {
        self.is_master = Some(is_master);
        self
    }

    pub fn config(&self) -> &PrunerConfig {
        &self.cfg
    }

    fn may_continue(&self) -> bool {
        self.is_master.as_ref().is_none_or(|m| *m.borrow())
    }

    /// One pass with the configured retention.
    pub async fn run_once(&self) -> Result<PruneReport> {
        self.prune(PruneOptions::default()).await
    }

    /// One pass: old instance trees a batch at a time, then rows of no instance.
    pub async fn prune(&self, opts: PruneOptions) -> Result<PruneReport> {
        let mut report = PruneReport {
            complete: true,
            ..Default::default()
        };
        let now = self.store.now().await?;
        let (age, uniform) = match opts.older_than {
            Some(d) => (d, true),
            None => (self.cfg.retention, false),
        };
        let mut after = InstanceId(0);
        'batches: loop {
            if !self.may_continue() || report.transactions >= self.cfg.max_transactions {
                report.complete = false;
                break;
            }
            let roots = self
                .store
                .retention_candidates(&RetentionScan {
                    now,
                    age,
                    uniform,
                    after,
                    limit: self.cfg.instances_per_batch,
                })
                .await?;
            let Some(last) = roots.last() else { break };
            after = *last;
            let (trees, kept) = self.trees(&roots).await?;
            report.kept += kept;
            if trees.is_empty() {
                continue;
            }
            let ids: Vec<InstanceId> = trees.iter().flatten().copied().collect();
            if opts.dry_run {
                report.deleted.add(&self.store.retention_count(&ids).await?);
                report.instances += trees.len();
                continue;
            }
            let mut delete = RetentionDelete {
                instances: ids,
                limit: self.cfg.rows_per_tx,
            };
            loop {
                let pace = self.pace(&mut report).await?;
                delete.limit = pace.rows;
                let step = self.store.retention_delete(&delete).await?;
                report.transactions += 1;
                report.deleted.add(&step.deleted);
                sleep_jittered(pace.pause).await;
                if step.done {
                    if step.deleted.workflow_instance > 0 {
                        report.instances += trees.len();
                    } else {
                        report.kept += trees.len();
                    }
                    break;
                }
                if !self.may_continue() || report.transactions >= self.cfg.max_transactions {
                    report.complete = false;
                    break 'batches;
                }
            }
        }
        self.prune_loose(now, age, opts.dry_run, &mut report)
            .await?;
        Ok(report)
    }

    /// Each root with its sub-workflow instances, for roots whose whole tree has ended; and how many
    /// roots were left out because some instance of theirs has not.
    async fn trees(&self, roots: &[InstanceId]) -> Result<(Vec<Vec<InstanceId>>, usize)> {
        let mut root_of: HashMap<InstanceId, InstanceId> = roots.iter().map(|r| (*r, *r)).collect();
        let mut open = std::collections::HashSet::new();
        let mut frontier = roots.to_vec();
        for _ in 0..MAX_DEPTH {
            if frontier.is_empty() {
                break;
            }
            let children = self.store.instance_children(&frontier).await?;
            frontier.clear();
            for (child, parent, status) in children {
                let Some(root) = root_of.get(&parent).copied() else {
                    continue;
                };
                if root_of.insert(child, root).is_none() {
                    frontier.push(child);
                }
                if !status.is_terminal() {
                    open.insert(root);
                }
            }
        }
        let mut trees: HashMap<InstanceId, Vec<InstanceId>> = HashMap::new();
        for (id, root) in &root_of {
            if !open.contains(root) {
                trees.entry(*root).or_default().push(*id);
            }
        }
        let mut trees: Vec<Vec<InstanceId>> = trees.into_values().collect();
        for t in &mut trees {
            t.sort();
        }
        trees.sort();
        Ok((trees, open.len()))
    }

    /// Events and alerts of no instance, dead workers and schedulers: a bounded delete at a time.
    async fn prune_loose(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        age: Duration,
        dry_run: bool,
        report: &mut PruneReport,
    ) -> Result<()> {
        let ago =
            |d: Duration| now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let before = ago(age);
        // a live process heartbeats every few seconds: a day of silence is death, whatever the age
        let dead_before = before.min(now - chrono::Duration::days(1));
        let mut p = RetentionLoose {
            before,
            dead_before,
            metrics_before: ago(age.min(self.cfg.metric_retention)),
            limit: self.cfg.rows_per_tx,
            dry_run,
        };
        loop {
            if !dry_run
                && (!self.may_continue() || report.transactions >= self.cfg.max_transactions)
            {
                report.complete = false;
                return Ok(());
            }
            let pace = if dry_run {
                Pace {
                    rows: p.limit,
                    pause: Duration::ZERO,
                }
            } else {
                self.pace(report).await?
            };
            p.limit = pace.rows;
            let n = self.store.retention_loose(&p).await?;
            report.deleted.add(&n);
            if dry_run {
                return Ok(());
            }
            report.transactions += 1;
            let full = [n.event, n.alert, n.worker, n.scheduler, n.worker_metric]
                .iter()
                .any(|c| *c as i64 >= p.limit);
            if !full {
                return Ok(());
            }
            sleep_jittered(pace.pause).await;
        }
    }

    /// The next transaction's size and the pause after it: the busy pace while ready tasks wait.
    async fn pace(&self, report: &mut PruneReport) -> Result<Pace> {
        if self.store.ready_tasks_due(&[]).await? {
            report.busy_transactions += 1;
            Ok(Pace {
                rows: self.cfg.busy_rows_per_tx,
                pause: self.cfg.busy_pause,
            })
        } else {
            Ok(Pace {
                rows: self.cfg.rows_per_tx,
                pause: self.cfg.pause,
            })
        }
    }
}

/// One transaction's row budget and the pause after it.
struct Pace {
    rows: i64,
    pause: Duration,
}

/// Sleeps `pause` plus up to as much again, so two passes never fall into step with the claims.
async fn sleep_jittered(pause: Duration) {
    if !pause.is_zero() {
        tokio::time::sleep(pause + pause.mul_f64(fastrand::f64())).await;
    }
}

/// Prunes every `interval` while this process is master, until `stop`.
pub async fn run(pruner: Pruner, stop: CancellationToken) {
    let mut outage = OutageLog::new("pruner");
    let mut tick = tokio::time::interval(pruner.cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // a scheduler is rarely master at its first tick: a new term starts a pass at once, or a
    // failover (or every start of a small fleet) would defer pruning by a whole interval
    let mut term = pruner.is_master.clone();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            Ok(()) = async {
                match term.as_mut() {
                    Some(t) => t.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if !pruner.may_continue() {
                    continue;
                }
                tick.reset();
            }
        }
        if !pruner.may_continue() {
            continue;
        }
        // the deletes run here, never inside select!: a pass is cut short between transactions
        match pruner.run_once().await {
            Ok(r) if r.is_empty() => {
                outage.recovered();
                tracing::debug!("nothing to prune");
            }
            Ok(r) => {
                outage.recovered();
                let d = &r.deleted;
                tracing::info!(
                    instances = r.instances,
                    tasks = d.task,
                    task_logs = d.task_log,
                    events = d.event,
                    alerts = d.alert,
                    workers = d.worker,
                    worker_metrics = d.worker_metric,
                    transactions = r.transactions,
                    busy_transactions = r.busy_transactions,
                    complete = r.complete,
                    "pruned rows older than their retention"
                );
            }
            Err(Error::Store(e)) if e.is_connection() => outage.failed(&e),
            Err(e) => tracing::warn!(error = %e, "prune pass failed; retrying next interval"),
        }
    }
}
