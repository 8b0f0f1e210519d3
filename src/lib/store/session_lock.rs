//! The master lock where the server has session locks (MySQL `GET_LOCK`, PostgreSQL advisory locks):
//! the protocol once, the SQL per backend.
//!
//! ```text
//!  not held ──try_acquire: take ok, epoch bumped──> held ──still_held: session holds it──> held
//!     ^                                               │
//!     └── release | lost | any error on the connection (the connection is dropped) ┘
//! ```
//! The lock lives on a connection opened outside the pool, so it is never recycled, idle-closed or
//! handed to other work. Both servers count re-entrant takes, so the lock is taken once per
//! connection, never again while held. Any error on that connection means "not master": the
//! connection is dropped, which ends the session and so releases the lock on the server.

use async_trait::async_trait;

use super::{MasterLock, Result};

/// What differs between backends.
#[async_trait]
pub(crate) trait SessionLock: Send + Sync {
    type Conn: Send;
    /// Opens the lock's own connection, outside the pool.
    async fn connect(&self) -> Result<Self::Conn>;
    /// Tries to take the lock on `conn` without waiting.
    async fn take(&self, conn: &mut Self::Conn) -> Result<bool>;
    /// Whether the session on `conn` holds the lock.
    async fn holds(&self, conn: &mut Self::Conn) -> Result<bool>;
    async fn unlock(&self, conn: &mut Self::Conn) -> Result<()>;
    /// Starts a term: bumps `master_lease.epoch`, records `holder`, and returns the new epoch.
    async fn bump_epoch(&self, holder: &str) -> Result<i64>;
    /// Clears `master_lease.holder` if it still names `holder` (informational only).
    async fn clear_holder(&self, holder: &str) -> Result<()>;
}

pub(crate) struct SessionMaster<L: SessionLock> {
    lock: L,
    holder: String,
    conn: Option<L::Conn>,
    held: bool,
}

impl<L: SessionLock> SessionMaster<L> {
    pub(crate) fn new(lock: L, holder: &str) -> Self {
        SessionMaster {
            lock,
            holder: holder.to_string(),
            conn: None,
            held: false,
        }
    }

    /// Drops the connection: the server ends the session and releases whatever it held.
    fn disconnect(&mut self) {
        self.conn = None;
        self.held = false;
    }

    async fn take(&mut self) -> Result<bool> {
        if self.conn.is_none() {
            self.conn = Some(self.lock.connect().await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        self.lock.take(conn).await
    }
}

#[async_trait]
impl<L: SessionLock> MasterLock for SessionMaster<L> {
    async fn try_acquire(&mut self) -> Result<Option<i64>> {
        let held = if self.held {
            self.still_held().await?
        } else {
            match self.take().await {
                Ok(got) => got,
                Err(e) => {
                    self.disconnect();
                    return Err(e);
                }
            }
        };
        if !held {
            return Ok(None);
        }
        self.held = true;
        match self.lock.bump_epoch(&self.holder).await {
            Ok(epoch) => Ok(Some(epoch)),
            Err(e) => {
                // A lock held without a term would block every other scheduler: give it up.
                self.disconnect();
                Err(e)
            }
        }
    }

    async fn still_held(&mut self) -> Result<bool> {
        let (true, Some(conn)) = (self.held, self.conn.as_mut()) else {
            return Ok(false);
        };
        match self.lock.holds(conn).await {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.held = false;
                Ok(false)
            }
            Err(e) => {
                tracing::warn!(error = %e, "master lock connection failed; stepping down");
                self.disconnect();
                Ok(false)
            }
        }
    }

    async fn release(&mut self) -> Result<()> {
        if !self.held {
            return Ok(());
        }
        self.held = false;
        if let Some(conn) = self.conn.as_mut() {
            if self.lock.unlock(conn).await.is_err() {
                // Ending the session releases the lock just as well.
                self.disconnect();
            }
        }
        self.lock.clear_holder(&self.holder).await
    }
}
