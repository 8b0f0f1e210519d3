//! Pool occupancy history: while master, once per interval (a minute by default,
//! `pool_history_secs`), one statement records every pool's slots, slots in use and waiting tasks
//! into `pool_sample`, for the pools page's chart of the last hours. The interval's start is taken
//! by the database clock and the table's key makes a second sample of the same interval (another
//! master's, a restart's) a no-op. Without pools the statement writes nothing. Pruned with the
//! workers' host history (`worker_metric_days`).

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::store::Store;

/// Tunables of the pool history.
#[derive(Clone, Debug)]
pub struct PoolHistoryConfig {
    /// How often a sample is taken. Default 60 s (`pool_history_secs`).
    pub interval: Duration,
}

impl Default for PoolHistoryConfig {
    fn default() -> Self {
        PoolHistoryConfig {
            interval: Duration::from_secs(60),
        }
    }
}

pub struct PoolHistory {
    cfg: PoolHistoryConfig,
    /// When this process last recorded a sample (the interval itself is the database's).
    last: Option<Instant>,
}

impl PoolHistory {
    pub fn new(cfg: PoolHistoryConfig) -> Result<Self> {
        if cfg.interval.is_zero() {
            return Err(Error::Config(
                "pool history: interval must not be zero".into(),
            ));
        }
        Ok(PoolHistory { cfg, last: None })
    }

    /// Records a sample when an interval has passed since the last one; returns the rows written.
    pub async fn run_once(&mut self, store: &dyn Store) -> Result<u64> {
        if self.last.is_some_and(|t| t.elapsed() < self.cfg.interval) {
            return Ok(0);
        }
        let n = store.pool_sample_record(self.cfg.interval).await?;
        self.last = Some(Instant::now());
        Ok(n)
    }
}
