//! The master election: contends for the master lock, holds a term (identified by its epoch) while
//! the lock is held, and steps down on a lost lock or any error on the lock's connection. Publishes
//! "am I master" on a `watch` channel (the alert deliverer runs only while it is true) and keeps
//! this scheduler's row in `scheduler` fresh, with its state and epoch.
//!
//! ```text
//!  standby ──try_acquire ok──> master ──still_held false / any lock error──> standby
//!     ^  └── every step ──┘      │ each step: still_held?
//!     └──────────────────────────┘
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::Result;
use crate::store::{MasterLock, OutageLog, SchedulerBeat, Store};

pub(super) struct Elector {
    store: Arc<dyn Store>,
    id: String,
    host: String,
    lock: Box<dyn MasterLock>,
    epoch: Option<i64>,
    /// Since when this process has reached the database without an error on the lock connection.
    connected_since: Instant,
    last_beat: Option<Instant>,
    last_step: Option<Instant>,
    heartbeat: Duration,
    is_master: watch::Sender<bool>,
}

impl Elector {
    /// A standby contending as `id`; the receiver says whether it is master.
    pub(super) async fn new(
        store: Arc<dyn Store>,
        id: String,
        host: String,
        heartbeat: Duration,
    ) -> Result<(Self, watch::Receiver<bool>)> {
        let lock = store.master_lock(&id).await?;
        let (is_master, rx) = watch::channel(false);
        let elector = Elector {
            store,
            id,
            host,
            lock,
            epoch: None,
            connected_since: Instant::now(),
            last_beat: None,
            last_step: None,
            heartbeat,
            is_master,
        };
        Ok((elector, rx))
    }

    /// The current term's epoch, `None` while standby.
    pub(super) fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    /// Whether a master must step now to keep a lock that is a lease, whatever else it has to do.
    pub(super) fn renewal_due(&self) -> bool {
        self.lock
            .renew_every()
            .is_some_and(|every| self.last_step.is_none_or(|t| t.elapsed() >= every))
    }

    /// How long the lock connection has reached the database without an error.
    pub(super) fn connected_for(&self) -> Duration {
        self.connected_since.elapsed()
    }

    /// One election step: take the lock when standby, check it is still held when master; then
    /// publish a change and refresh the `scheduler` row when due. Returns the term's epoch.
    pub(super) async fn step(&mut self, outage: &mut OutageLog) -> Option<i64> {
        self.last_step = Some(Instant::now());
        let was = self.epoch;
        // an answer, lock or not, is the database reachable (a standby has no duty cycle to say so)
        self.epoch = match self.epoch {
            None => match self.lock.try_acquire().await {
                Ok(epoch) => {
                    outage.recovered();
                    epoch
                }
                Err(e) => {
                    self.connected_since = Instant::now();
                    outage.failed(&e);
                    None
                }
            },
            Some(e) => match self.lock.still_held().await {
                Ok(held) => {
                    outage.recovered();
                    held.then_some(e)
                }
                Err(err) => {
                    self.connected_since = Instant::now();
                    outage.failed(&err);
                    None
                }
            },
        };
        let master = self.epoch.is_some();
        self.is_master
            .send_if_modified(|m| std::mem::replace(m, master) != master);
        match (was, self.epoch) {
            (None, Some(e)) => tracing::info!(scheduler_id = %self.id, epoch = e, "elected master"),
            (Some(_), None) => {
                tracing::warn!(scheduler_id = %self.id, "lost the master lock; stepping down")
            }
            _ => {}
        }
        if self.last_beat.is_none_or(|t| t.elapsed() >= self.heartbeat) || was != self.epoch {
            let state = if master { "master" } else { "standby" };
            if self.beat(state).await.is_ok() {
                self.last_beat = Some(Instant::now());
            }
        }
        self.epoch
    }

    /// Gives the lock up (when held) and marks this scheduler stopped.
    pub(super) async fn stop(mut self) {
        if self.epoch.is_some() {
            let _ = self.lock.release().await;
        }
        self.epoch = None;
        let _ = self.beat("stopped").await;
    }

    async fn beat(&mut self, state: &'static str) -> crate::store::Result<()> {
        let beat = SchedulerBeat {
            id: self.id.clone(),
            host: self.host.clone(),
            pid: i64::from(std::process::id()),
            state,
            epoch: self.epoch,
        };
        self.store.scheduler_heartbeat(&beat).await
    }
}
