//! The alert outbox: every mail and channel message with where it stands; an operator may send a
//! failed one again. Channel URLs and secrets are configuration and never appear here.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::runs::limit;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::AppState;
use crate::state::AlertStatus;
use crate::store::{dir_in_scope, AlertRow, TokenRole};

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct AlertQuery {
    /// At most this many, newest first (default 100, at most 1000)
    pub limit: Option<i64>,
}

/// One outbox row.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertView {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    /// The configured channel's name, or `mail` for the mail to the workflow's receivers
    pub channel: String,
    /// What happened: failed, killed, timeout, retry_failure, recovery, deadline, late_done, email...
    pub kind: String,
    pub workflow: Option<String>,
    pub instance_id: Option<i64>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub subject: String,
    pub status: AlertStatus,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<AlertRow> for AlertView {
    fn from(a: AlertRow) -> Self {
        AlertView {
            id: a.id,
            created_at: a.created_at,
            channel: a.channel.unwrap_or_else(|| "mail".into()),
            kind: if a.event.is_empty() {
                a.kind.to_string()
            } else {
                a.event
            },
            workflow: a.workflow,
            instance_id: a.instance_id.map(|i| i.0),
            scheduled_for: a.scheduled_for,
            subject: a.subject,
            status: a.status,
            attempts: a.attempts,
            next_attempt_at: a.next_attempt_at,
            last_error: a.last_error,
            sent_at: a.sent_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertList {
    /// Newest first
    pub alerts: Vec<AlertView>,
}

/// The alerts the caller may see, newest first.
pub(crate) async fn visible_alerts(
    state: &AppState,
    caller: &Caller,
    limit: i64,
) -> ApiResult<Vec<AlertView>> {
    let rows = state.engine.store.alert_list(limit).await?;
    let dirs: std::collections::HashMap<String, String> = if caller.dir.is_none() {
        Default::default()
    } else {
        state
            .engine
            .store
            .workflow_list()
            .await?
            .into_iter()
            .map(|w| (w.name, w.dir))
            .collect()
    };
    Ok(rows
        .into_iter()
        .filter(|a| {
            caller.dir.is_none()
                || a.workflow
                    .as_ref()
                    .and_then(|w| dirs.get(w))
                    .is_some_and(|d| dir_in_scope(d, caller.dir.as_deref()))
        })
        .map(AlertView::from)
        .collect())
}

/// The alert outbox: mails and channel messages, with status, attempts and the last error
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> ApiResult<Json<AlertList>> {
    let limit = limit(q.limit, 100, 1000)?;
    Ok(Json(AlertList {
        alerts: visible_alerts(&state, &caller, limit).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertResent {
    pub id: i64,
    pub status: AlertStatus,
}

/// Send a failed alert again (operator): it goes back to pending with its attempts counted afresh
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resend", tag = "alerts",
    params(("id" = i64, Path)),
    responses((status = 200, body = AlertResent), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AlertResent>> {
    caller.require(TokenRole::Operator)?;
    resend_alert(&state, &caller, id).await?;
    Ok(Json(AlertResent {
        id,
        status: AlertStatus::Pending,
    }))
}

/// Makes a visible failed alert pending again; 404 when not visible, 409 when not failed.
pub(crate) async fn resend_alert(state: &AppState, caller: &Caller, id: i64) -> ApiResult<()> {
    let visible = visible_alerts(state, caller, 1000).await?;
    let Some(alert) = visible.iter().find(|a| a.id == id) else {
        return Err(ApiError::not_found(format!("no alert {id}")));
    };
    if alert.status != AlertStatus::Failed {
        return Err(ApiError::conflict(format!(
            "alert {id} is {}: only a failed alert is sent again",
            alert.status
        )));
    }
    if !state.engine.store.alert_resend(id).await?.applied() {
        return Err(ApiError::conflict(format!("alert {id} changed meanwhile")));
    }
    Ok(())
}
