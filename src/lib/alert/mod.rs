//! Alerts: what mails exist (composed from run facts), the SMTP settings, and the outbox deliverer.
//!
//! An alert is an `alert` row written in the same transaction as the state change that causes it
//! (see [`crate::engine`]); the master's [`Deliverer`] sends due rows with retries and backoff, so an
//! SMTP outage delays mail but loses none. Delivery is at least once: a master that dies between the
//! SMTP "250 OK" and marking the row sent sends that mail again after the retry delay.

mod channel;
mod compose;
mod deliver;
mod http_post;
mod smtp;

use std::time::Duration;

pub use channel::{
    dingtalk_sign, feishu_sign, instance_link, resolve_channels, Channel, ChannelFile, ChannelKind,
    ChannelRoute, ChannelSettings, RobotChannel, SendError, EVENTS,
};
pub use compose::{
    completion, deadline, email_node, first_line, for_channel, kill_node, late_done, lost,
    recovery, retry_failure, timeout, DeadlineFacts, InstanceFacts, TaskFacts,
};
pub use deliver::{run as run_deliverer, Deliverer};
pub use smtp::{SmtpSettings, TlsMode};

/// `task.kind` of an email node: sent by the engine when reached, like a control node.
pub const EMAIL_KIND: &str = "email";

/// When alerts are written and how the outbox retries (`[alerts]` in `akkaflow.toml`).
#[derive(Clone, Debug)]
pub struct AlertPolicy {
    /// Consecutive failed attempts of a task that still has retries left before a retry-failure
    /// mail; a later success then sends a recovery mail.
    pub retry_failure_threshold: i64,
    /// Log lines of each failed task quoted in the completion mail.
    pub log_tail_lines: i64,
    /// Delivery attempts before an alert is marked `failed`.
    pub max_attempts: i64,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How often the master looks for due alerts.
    pub deliver_interval: Duration,
    /// Which alerts each configured channel takes (`[[alerts.channels]]`, without URLs or secrets).
    pub routes: Vec<ChannelRoute>,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            retry_failure_threshold: 1,
            log_tail_lines: 20,
            max_attempts: 10,
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(600),
            deliver_interval: Duration::from_secs(5),
            routes: Vec::new(),
        }
    }
}

impl AlertPolicy {
    /// Delay before delivery attempt `attempts + 1`: doubling from the initial delay, capped.
    pub fn backoff(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.backoff_initial
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_max)
    }
}

/// Addresses from comma (or semicolon) lists, trimmed and deduplicated in first-seen order.
pub fn merge_recipients<'a>(lists: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for list in lists {
        let list = list.trim().trim_start_matches('[').trim_end_matches(']');
        for addr in list.split([',', ';']) {
            let addr = addr.trim().trim_matches('"').trim();
            if !addr.is_empty() && !out.iter().any(|a| a.eq_ignore_ascii_case(addr)) {
                out.push(addr.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_merge_in_order_without_duplicates() {
        let got = merge_recipients(["a@x.org, b@x.org", "B@x.org;c@x.org", "", "[\"d@x.org\"]"]);
        assert_eq!(got, ["a@x.org", "b@x.org", "c@x.org", "d@x.org"]);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = AlertPolicy {
            backoff_initial: Duration::from_secs(2),
            backoff_max: Duration::from_secs(10),
            ..AlertPolicy::default()
        };
        let got: Vec<u64> = (1..=5).map(|a| p.backoff(a).as_secs()).collect();
        assert_eq!(got, [2, 4, 8, 10, 10]);
    }
}
