//! The rescuer: tasks whose lease ran out (their worker died or lost the database) go back to
//! `ready` (the attempt counts) or fail when attempts are spent, each with an event saying why.
//!
//! A maintenance service in the shape of River's job rescuer: a [`RescuerConfig`] with documented
//! defaults, validated when built; [`Rescuer::run_once`] is one pass (what the master's duty cycle
//! and tests call). A pass reads expired leases a batch at a time and rescues each batch in one
//! transaction ([`Engine::rescue_tasks`]); after a full batch it pauses briefly, so a mass rescue
//! (a rack of workers lost at once) leaves room for the other writers, and stops after
//! `max_batches`, leaving the rest to the next pass.

use std::time::Duration;

use crate::engine::Engine;
use crate::error::{Error, Result};

/// Tunables of the rescuer.
#[derive(Clone, Debug)]
pub struct RescuerConfig {
    /// Expired leases read, and rescued in one transaction, per batch. Default 200.
    pub batch_size: i64,
    /// Pause after a full batch before reading the next, jittered up to twice as long. Default 50 ms.
    pub batch_pause: Duration,
    /// Batches one pass works through at most. Default 10.
    pub max_batches: usize,
}

impl Default for RescuerConfig {
    fn default() -> Self {
        RescuerConfig {
            batch_size: 200,
            batch_pause: Duration::from_millis(50),
            max_batches: 10,
        }
    }
}

impl RescuerConfig {
    fn validate(&self) -> Result<()> {
        if self.batch_size < 1 || self.max_batches < 1 {
            return Err(Error::Config(format!(
                "rescuer: batch_size ({}) and max_batches ({}) must be at least 1",
                self.batch_size, self.max_batches
            )));
        }
        Ok(())
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Tasks brought back (retried, failed or killed by their policy).
    pub rescued: usize,
    /// Expired leases read that were no longer lost when locked (a heartbeat won the race).
    pub stale: usize,
    /// Batches read.
    pub batches: usize,
}

impl RescueReport {
    pub fn is_empty(&self) -> bool {
        self.rescued == 0
    }
}

pub struct Rescuer {
    engine: Engine,
    actor: String,
    cfg: RescuerConfig,
}

impl Rescuer {
    pub fn new(engine: Engine, actor: String, cfg: RescuerConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Rescuer { engine, actor, cfg })
    }

    /// One pass: rescues expired leases a batch (one transaction) at a time.
    pub async fn run_once(&self) -> Result<RescueReport> {
        let mut report = RescueReport::default();
        while report.batches < self.cfg.max_batches {
            let lost = self
                .engine
                .store
                .task_lease_expired(self.cfg.batch_size)
                .await?;
            if lost.is_empty() {
                break;
            }
            report.batches += 1;
            let results = self.engine.rescue_tasks(&lost, &self.actor).await?;
            let mut applied = 0;
            for (task, cas) in lost.iter().zip(&results) {
                if cas.applied() {
                    applied += 1;
                    tracing::info!(task_id = %task.id, instance_id = %task.instance_id, node = %task.node,
                        worker_id = task.worker_id.as_deref().unwrap_or("?"), "rescued a task whose lease expired");
                }
            }
            report.rescued += applied;
            report.stale += lost.len() - applied;
            // a short batch was the last; a batch that rescued nothing would be read again as is
            if (lost.len() as i64) < self.cfg.batch_size || applied == 0 {
                break;
            }
            let pause = self.cfg.batch_pause;
            tokio::time::sleep(pause + pause.mul_f64(fastrand::f64())).await;
        }
        Ok(report)
    }
}
