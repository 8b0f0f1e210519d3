//! Records: events, tokens and sessions, daily counts, data-monitor checks, alerts and deadlines.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::{InstanceId, InstanceStatus, TaskId};

use super::*;

/// An audit row: what changed, why, and who did it.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    pub workflow: Option<String>,
    pub instance_id: Option<InstanceId>,
    pub task_id: Option<TaskId>,
    pub node: Option<String>,
    pub kind: &'static str,
    pub from_status: Option<&'static str>,
    pub to_status: Option<&'static str>,
    pub message: String,
    pub actor: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct EventRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub workflow: Option<String>,
    pub instance_id: Option<i64>,
    pub task_id: Option<i64>,
    pub node: Option<String>,
    pub kind: String,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub message: String,
    pub actor: String,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub instance_id: Option<InstanceId>,
    pub after_id: Option<i64>,
    pub limit: i64,
}

/// An `api_token` row; the secret's hash never leaves the store.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: TokenRole,
    /// The `dir` prefix this token is confined to; `None` sees everything.
    pub dir_prefix: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewToken {
    pub name: String,
    pub role: TokenRole,
    pub dir_prefix: Option<String>,
    /// sha256 hex of the secret.
    pub secret_hash: String,
    pub created_by: String,
}

/// A live UI session with the token it stands for.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    #[sqlx(flatten)]
    pub token: TokenRow,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct NewSession {
    /// sha256 hex of the cookie's value.
    pub id_hash: String,
    pub token_id: i64,
    pub csrf: String,
    pub ttl: Duration,
}

/// How many instances ended (or, unfinished, were created) on one UTC day with one status.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct DayCount {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub status: InstanceStatus,
    pub count: i64,
}

/// One data-monitor check, recorded in `data_monitor` whether it passed or not.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDataMonitorCheck {
    pub workflow: String,
    pub instance_id: InstanceId,
    pub task_id: TaskId,
    pub node: String,
    pub category: Option<String>,
    pub source_name: Option<String>,
    pub time_mark: Option<String>,
    /// `None` when the source could not be evaluated (the message says why).
    pub value: Option<f64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub passed: bool,
    pub message: String,
}

/// A `data_monitor` row: one recorded check.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, Serialize)]
pub struct DataMonitorRow {
    pub id: i64,
    pub checked_at: DateTime<Utc>,
    pub workflow: String,
    pub instance_id: InstanceId,
    pub task_id: TaskId,
    pub node: String,
    pub category: Option<String>,
    pub source_name: Option<String>,
    pub time_mark: Option<String>,
    pub value: Option<f64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub passed: bool,
    pub message: String,
}

/// An alert to put in the outbox, in the transaction of the change that causes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    pub kind: crate::state::AlertKind,
    pub workflow: Option<String>,
    pub instance_id: Option<InstanceId>,
    pub task_id: Option<TaskId>,
    /// Deduplicated addresses, in order.
    pub recipients: Vec<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    /// The configured channel this row goes to; `None`: the mail to `recipients`.
    pub channel: Option<String>,
    /// What happened, as a channel's `kinds` names it (`failed`, `deadline`, ...).
    pub event: String,
    /// The run's state when the alert was written (`failed`, `running`, ...).
    pub state: String,
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// An `alert` row: one message in the outbox (a mail, or one alert to one channel).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub kind: crate::state::AlertKind,
    pub workflow: Option<String>,
    pub instance_id: Option<InstanceId>,
    pub task_id: Option<TaskId>,
    /// Comma-separated addresses.
    pub recipients: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub status: crate::state::AlertStatus,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub channel: Option<String>,
    pub event: String,
    pub state: String,
    pub scheduled_for: Option<DateTime<Utc>>,
}

impl AlertRow {
    pub fn recipient_list(&self) -> Vec<&str> {
        self.recipients
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect()
    }
}

/// A compare-and-set on one alert: applies only while it is `pending` with `attempts` unchanged, so a
/// deposed master and its successor cannot both deliver the same attempt.
#[derive(Clone, Debug)]
pub struct AlertTransition {
    pub id: i64,
    pub expected_attempts: i64,
    pub to: crate::state::AlertStatus,
    pub attempts: i64,
    /// For `pending`: when to try again, from the database's now.
    pub retry_in: Duration,
    pub last_error: Option<String>,
}

/// A coordinator with a deadline, as the deadline watch reads it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadlineWatch {
    #[sqlx(flatten)]
    pub coordinator: CoordinatorRow,
    /// As written: `07:00` or `+2h`.
    pub deadline: String,
    /// Slots whose deadline is at or before this have been checked; `None`: not watched yet.
    pub checked_through: Option<DateTime<Utc>>,
}

/// A `deadline_miss` row: a slot whose run had not succeeded by its deadline.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct DeadlineMissRow {
    pub id: i64,
    pub workflow: String,
    pub scheduled_for: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub detected_at: DateTime<Utc>,
    /// Why it was late, when it was found late.
    pub reason: String,
    /// The slot's instance when it was found late, if it had one.
    pub instance_id: Option<InstanceId>,
    /// When the slot's instance succeeded after all (the `late_done` alert).
    pub done_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct NewDeadlineMiss {
    pub workflow: String,
    pub scheduled_for: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub reason: String,
    pub instance_id: Option<InstanceId>,
    /// Set when the slot had already succeeded, late, when it was checked.
    pub done_at: Option<DateTime<Utc>>,
}

/// An open deadline miss whose slot has since succeeded.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LateDone {
    pub miss_id: i64,
    pub workflow: String,
    pub scheduled_for: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    pub instance_id: InstanceId,
    pub ended_at: DateTime<Utc>,
}
