//! The outbox deliverer: the master sends due alerts, one compare-and-set per step.
//!
//! ```text
//! pending --claim (attempts+1, next try pushed out)--> send --ok--> sent
//!                                                         └--error--> pending (backoff) | failed (max attempts)
//! ```
//! The claim comes first so a master that dies mid-send leaves the row pending, retried after the
//! backoff; the CAS on `attempts` keeps two overlapping masters from sending the same attempt.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{AlertPolicy, SmtpSettings};
use crate::error::Result;
use crate::state::AlertStatus;
use crate::store::{AlertRow, AlertTransition, OutageLog, Store};

/// Alerts handled per pass.
const BATCH: i64 = 20;

pub struct Deliverer {
    store: Arc<dyn Store>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    policy: AlertPolicy,
    /// How long one send may take (the claim pushes the next try past it).
    send_timeout: Duration,
}

impl Deliverer {
    pub fn new(store: Arc<dyn Store>, smtp: &SmtpSettings, policy: AlertPolicy) -> Result<Self> {
        Ok(Deliverer {
            store,
            transport: smtp.transport()?,
            from: smtp.from_mailbox()?,
            policy,
            send_timeout: smtp.timeout,
        })
    }

    pub fn interval(&self) -> Duration {
        self.policy.deliver_interval
    }

    /// Sends what is due; returns how many were delivered.
    pub async fn run_once(&self) -> Result<usize> {
        let mut sent = 0;
        for alert in self.store.alert_due(BATCH).await? {
            let attempts = alert.attempts + 1;
            let claim = AlertTransition {
                id: alert.id,
                expected_attempts: alert.attempts,
                to: AlertStatus::Pending,
                attempts,
                retry_in: self.policy.backoff(attempts) + self.send_timeout * 2,
                last_error: alert.last_error.clone(),
            };
            if !self.store.alert_transition(&claim).await?.applied() {
                continue; // another master took this attempt
            }
            let (to, error) = match self.send(&alert).await {
                Ok(()) => (AlertStatus::Sent, None),
                Err(SendError::Permanent(e)) => (AlertStatus::Failed, Some(e)),
                Err(SendError::Transient(e)) if attempts >= self.policy.max_attempts => {
                    (AlertStatus::Failed, Some(e))
                }
                Err(SendError::Transient(e)) => (AlertStatus::Pending, Some(e)),
            };
            match (&to, &error) {
                (AlertStatus::Sent, _) => {
                    tracing::info!(alert_id = alert.id, kind = %alert.kind, recipients = %alert.recipients, "alert sent");
                    sent += 1;
                }
                (_, Some(e)) => {
                    tracing::warn!(alert_id = alert.id, kind = %alert.kind, attempt = attempts,
                        outcome = %to, error = %e, "alert not delivered")
                }
                _ => {}
            }
            let recorded = self
                .store
                .alert_transition(&AlertTransition {
                    id: alert.id,
                    expected_attempts: attempts,
                    to,
                    attempts,
                    retry_in: self.policy.backoff(attempts),
                    last_error: error,
                })
                .await?;
            if !recorded.applied() {
                tracing::warn!(alert_id = alert.id, "alert changed while it was being sent");
            }
        }
        Ok(sent)
    }

    async fn send(&self, alert: &AlertRow) -> std::result::Result<(), SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(alert.subject.clone());
        let recipients = alert.recipient_list();
        if recipients.is_empty() {
            return Err(SendError::Permanent("the alert has no recipients".into()));
        }
        for r in recipients {
            let mailbox: Mailbox = r
                .parse()
                .map_err(|e| SendError::Permanent(format!("recipient `{r}`: {e}")))?;
            builder = builder.to(mailbox);
        }
        let message = builder
            .multipart(MultiPart::alternative_plain_html(
                alert.body_text.clone(),
                alert.body_html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("cannot build the mail: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::Transient(format!("SMTP: {e}"))),
        }
    }
}

enum SendError {
    /// The server refused this mail for good (5xx) or it cannot be built: retrying cannot help.
    Permanent(String),
    /// Connection, TLS, timeout or 4xx: try again later.
    Transient(String),
}

/// Delivers while `is_master` says this process holds the master lock, until `stop`.
pub async fn run(
    deliverer: Arc<Deliverer>,
    mut is_master: watch::Receiver<bool>,
    stop: CancellationToken,
) {
    let mut outage = OutageLog::new("alert deliverer");
    let mut tick = tokio::time::interval(deliverer.interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
            // a new master delivers at once what piled up meanwhile
            changed = is_master.changed() => if changed.is_err() { return },
        }
        if !*is_master.borrow() {
            continue;
        }
        match deliverer.run_once().await {
            Ok(_) => outage.recovered(),
            Err(e) => outage.failed(&e),
        }
    }
}
