//! The outbox deliverer: the master sends due alerts, one compare-and-set per step.
//!
//! ```text
//! pending --claim (attempts+1, next try pushed out)--> send --ok--> sent
//!                                                         └--error--> pending (backoff) | failed (max attempts)
//! ```
//! The claim comes first so a master that dies mid-send leaves the row pending, retried after the
//! backoff; the CAS on `attempts` keeps two overlapping masters from sending the same attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::channel::{Channel, ChannelKind, ChannelSettings, RobotChannel, SendError};
use super::smtp::MailChannel;
use super::{AlertPolicy, SmtpSettings};
use crate::error::{Error, Result};
use crate::state::AlertStatus;
use crate::store::{AlertRow, AlertTransition, OutageLog, Store};

/// Alerts handled per pass.
const BATCH: i64 = 20;
/// How long one POST to a chat channel may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Deliverer {
    store: Arc<dyn Store>,
    /// The mail to each alert's receivers; `None` without `[smtp]` (those rows wait).
    mail: Option<MailChannel>,
    /// The configured channels by name.
    channels: HashMap<String, Box<dyn Channel>>,
    policy: AlertPolicy,
    /// How long one send may take (the claim pushes the next try past it).
    send_timeout: Duration,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        smtp: Option<&SmtpSettings>,
        channels: &[ChannelSettings],
        public_url: Option<String>,
        policy: AlertPolicy,
    ) -> Result<Self> {
        let mut by_name: HashMap<String, Box<dyn Channel>> = HashMap::new();
        for c in channels {
            let channel: Box<dyn Channel> = match c.route.kind {
                ChannelKind::Email => {
                    let smtp = smtp.ok_or_else(|| {
                        Error::Config(format!(
                            "[[alerts.channels]] `{}` is an email channel but there is no [smtp]",
                            c.route.name
                        ))
                    })?;
                    Box::new(MailChannel::new(smtp, Some(&c.url))?)
                }
                _ => Box::new(RobotChannel::new(c, public_url.clone(), HTTP_TIMEOUT)),
            };
            by_name.insert(c.route.name.clone(), channel);
        }
        Ok(Deliverer {
            store,
            mail: smtp.map(|s| MailChannel::new(s, None)).transpose()?,
            channels: by_name,
            policy,
            send_timeout: smtp.map_or(HTTP_TIMEOUT, |s| s.timeout.max(HTTP_TIMEOUT)),
        })
    }

    pub fn interval(&self) -> Duration {
        self.policy.deliver_interval
    }

    /// Sends what is due; returns how many were delivered.
    pub async fn run_once(&self) -> Result<usize> {
        let mut sent = 0;
        for alert in self.store.alert_due(BATCH, self.mail.is_some()).await? {
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
            let channel = alert.channel.as_deref().unwrap_or("mail");
            match (&to, &error) {
                (AlertStatus::Sent, _) => {
                    tracing::info!(alert_id = alert.id, kind = %alert.kind, channel, recipients = %alert.recipients, "alert sent");
                    sent += 1;
                }
                (_, Some(e)) => {
                    tracing::warn!(alert_id = alert.id, kind = %alert.kind, channel, attempt = attempts,
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
        match &alert.channel {
            None => match &self.mail {
                Some(mail) => mail.send(alert).await,
                None => Err(SendError::Transient("no [smtp] configured".into())),
            },
            Some(name) => match self.channels.get(name) {
                Some(channel) => channel.send(alert).await,
                None => Err(SendError::Permanent(format!(
                    "channel `{name}` is not configured on this master"
                ))),
            },
        }
    }
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
