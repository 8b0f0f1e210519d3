//! Scheduler: contends for the master lock (`elector`); the holder runs the master services
//! (`trigger`, `rescuer`, the pending-instance starter, the `backfill` driver, the alert deliverer,
//! the `pruner`, the `pool_history` sampler), the others wait as hot
//! standbys. This file is the duty cycle: each tick, one election step, then, while master, a
//! trigger pass and (every `maintenance`) a rescue pass and the pending starts. A quiet master
//! skips the ticks between full cycles unless a cron slot comes due in them.
//!
//! Everything the master writes is conditional (CAS on `next_fire_at`, unique fire slots, fenced task
//! updates), so two masters overlapping for a moment cannot duplicate or lose work.

pub mod backfill;
mod deadline;
mod elector;
mod pool_history;
mod pruner;
mod rescuer;
mod trigger;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::error::Result;
use crate::store::OutageLog;

pub use backfill::{BackfillConfig, BackfillReport, Backfiller};
pub use deadline::{DeadlineConfig, DeadlineReport, DeadlineWatch};
use elector::Elector;
pub use pool_history::{PoolHistory, PoolHistoryConfig};
pub use pruner::{PruneOptions, PruneReport, Pruner, PrunerConfig};
pub use rescuer::{RescueReport, Rescuer, RescuerConfig};
pub use trigger::{fire_concurrency_for, Trigger, TriggerReport};

#[derive(Clone)]
pub struct SchedulerConfig {
    /// How often the master runs its duty cycle and a standby tries to take over.
    pub tick: Duration,
    /// How often the `scheduler` row is refreshed.
    pub heartbeat: Duration,
    /// The workers' lease length. Lease expiry is only evidence of a dead worker once this master
    /// has itself reached the database for two such periods: during an outage nobody could heartbeat.
    pub lease_ttl: Duration,
    /// Sends the alert outbox while this process is master; `None` without `[smtp]`.
    pub deliverer: Option<std::sync::Arc<crate::alert::Deliverer>>,
    /// How often an idle master runs its full duty cycle (new coordinators' first slot, dependency
    /// fires, rescue, pending starts); at most a third of the lease. Between full cycles a quiet
    /// master wakes only when the earliest cron slot its last full cycle saw comes due, so an
    /// idle fleet costs a few statements per `maintenance`, not per tick.
    pub maintenance: Duration,
    /// The rescuer's batches.
    pub rescuer: RescuerConfig,
    /// The deadline watch's bounds.
    pub deadlines: DeadlineConfig,
    /// The backfill driver's bounds.
    pub backfills: BackfillConfig,
    /// Retention: what the master prunes, and how gently; `None` keeps everything.
    pub pruner: Option<PrunerConfig>,
    /// How often the pools' occupancy is recorded.
    pub pool_history: PoolHistoryConfig,
    /// Due-slot fire transactions at once ([`fire_concurrency_for`] the process's pool).
    pub fire_concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            tick: Duration::from_secs(1),
            heartbeat: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(15),
            deliverer: None,
            maintenance: Duration::from_secs(5),
            rescuer: RescuerConfig::default(),
            deadlines: DeadlineConfig::default(),
            backfills: BackfillConfig::default(),
            pruner: Some(PrunerConfig::default()),
            pool_history: PoolHistoryConfig::default(),
            fire_concurrency: Trigger::FIRE_CONCURRENCY,
        }
    }
}

/// Runs a scheduler until `stop` is cancelled.
pub async fn run(engine: Engine, cfg: SchedulerConfig, stop: CancellationToken) -> Result<()> {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let id = format!("{host}-{}-{:04x}", std::process::id(), fastrand::u16(..));
    let actor = format!("scheduler:{id}");
    let trigger =
        Trigger::new(engine.clone(), actor.clone()).with_fire_concurrency(cfg.fire_concurrency);
    let rescuer = Rescuer::new(engine.clone(), actor.clone(), cfg.rescuer.clone())?;
    let deadlines = DeadlineWatch::new(engine.clone(), cfg.deadlines.clone())?;
    let mut pool_history = PoolHistory::new(cfg.pool_history.clone())?;
    let backfiller = Backfiller::new(engine.clone(), actor.clone(), cfg.backfills.clone())?;
    // a running backfill is driven every tick (its next slot starts as soon as one ends); with
    // none, only on full cycles, so an idle fleet pays nothing for it
    let mut backfilling = true;
    let (mut elector, master_rx) =
        Elector::new(engine.store.clone(), id.clone(), host, cfg.heartbeat).await?;
    let mut outage = OutageLog::new("scheduler");
    // an idle fleet's traffic is mostly this loop: see `maintenance`
    let maintenance = cfg.maintenance.min(cfg.lease_ttl / 3).max(cfg.tick);
    let mut last_full: Option<tokio::time::Instant> = None;
    let mut quiet = false;
    // the earliest cron slot coming due, as the last full cycle saw it
    let mut next_slot: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(cfg.tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(scheduler_id = %id, "scheduler started as standby");
    // owned by this function: cancelled and awaited below, so no send outlives the master role
    let delivering = stop.child_token();
    let pruning = match cfg.pruner.clone() {
        Some(p) => Some(tokio::spawn(pruner::run(
            Pruner::new(engine.store.clone(), p)?.while_master(master_rx.clone()),
            delivering.clone(),
        ))),
        None => None,
    };
    let deliverer = cfg.deliverer.clone().map(|d| {
        tokio::spawn(crate::alert::run_deliverer(
            d,
            master_rx,
            delivering.clone(),
        ))
    });
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let full = !quiet || last_full.is_none_or(|t| t.elapsed() >= maintenance);
        let slot_due = next_slot.is_some_and(|t| tokio::time::Instant::now() >= t);
        // a standby steps every tick: it is contending for the lock
        let idle_tick = elector.epoch().is_some() && quiet && !full && !slot_due;
        if idle_tick && !elector.renewal_due() {
            continue;
        }
        if elector.step(&mut outage).await.is_none() || idle_tick {
            continue; // an idle tick's step only kept the lock's lease
        }
        // two lease periods: one for workers to reconnect and heartbeat, one for slack
        let trust_leases = elector.connected_for() >= cfg.lease_ttl * 2;
        let cycle = async {
            let fired = trigger.run_pass(full).await?;
            let rescued = if trust_leases && full {
                rescuer.run_once().await?.rescued
            } else {
                0
            };
            let started = if full {
                engine.start_pending_all(&actor).await?
            } else {
                0
            };
            // after the fires and starts of this cycle, so a slot that just made it is not late
            let late = if full {
                deadlines.run_once().await?
            } else {
                DeadlineReport::default()
            };
            if full {
                pool_history.run_once(&*engine.store).await?;
            }
            if late.missed > 0 || late.late_done > 0 {
                tracing::debug!(
                    missed = late.missed,
                    late_done = late.late_done,
                    "deadline watch"
                );
            }
            let backfilled = if full || backfilling {
                backfiller.run_once().await?
            } else {
                BackfillReport::default()
            };
            Ok::<_, crate::Error>((fired, rescued, started, backfilled))
        };
        match cycle.await {
            Ok((fired, rescued, started, backfilled)) => {
                backfilling = backfilled.running > 0 || !backfilled.is_empty();
                outage.recovered();
                if full {
                    last_full = Some(tokio::time::Instant::now());
                    next_slot = fired.next_slot_in.map(|d| tokio::time::Instant::now() + d);
                }
                quiet = fired.is_empty() && rescued == 0 && started == 0 && backfilled.is_empty();
                if !fired.is_empty() || rescued > 0 || started > 0 {
                    tracing::debug!(fired = fired.fired, rescued, started, "duty cycle");
                }
            }
            Err(e) if matches!(&e, crate::Error::Store(s) if s.is_connection()) => {
                outage.failed(&e)
            }
            Err(e) => tracing::warn!(error = %e, "duty cycle failed; retrying next tick"),
        }
    }
    delivering.cancel();
    if let Some(d) = deliverer {
        let _ = d.await;
    }
    if let Some(p) = pruning {
        let _ = p.await;
    }
    elector.stop().await;
    tracing::info!(scheduler_id = %id, "scheduler stopped");
    Ok(())
}
