//! The original akkaflow's HTTP routes, so existing scripts keep working, with its envelope
//! `{"result": "success"|"error", "msg": ..., "data": ...}`:
//!
//! | route | action | does (same operation as) |
//! |---|---|---|
//! | `GET /akkaflow/workflow/{name}` | `del` | disable the workflow (history is kept; `workflow disable`) |
//! | | `run` | start an instance with run-time defaults only (`workflow run`) |
//! | | `trigger` | start with the coordinator's parameters (`workflow trigger`) |
//! | | `trigger-blood` | trigger and then the whole downstream chain (`workflow trigger --blood`) |
//! | | `reset` | rerun the workflow's newest finished instance from the start (`instance rerun`) |
//! | `POST /akkaflow/workflow` | `add` | upload the XML body (`POST /api/v1/definitions`) |
//! | | `check` | validate the XML body, nothing written |
//! | `GET /akkaflow/workflow/instance/{id}` | `rerun` | rerun a finished instance (`instance rerun`) |
//! | | `kill` | kill a pending or running instance (`instance kill`) |
//! | | `del` | refused: history is never deleted; a running instance is killed with `kill` |
//! | `GET /akkaflow/cluster` | `get` | schedulers, workers and queue depth |
//!
//! Errors keep the envelope with `result: "error"` and a proper HTTP status. These routes act only on
//! bearer tokens, never on a browser's session cookie: they change things on GET.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{admin, visible_instance, visible_workflow, workflows};
use super::auth::Caller;
use super::error::{ApiError, InternalCause};
use super::extract::{ApiPath, ApiQuery, XmlBody};
use super::AppState;
use crate::state::{InstanceStatus, TriggerKind};
use crate::store::{InstanceFilter, TokenRole};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workflow", get(missing_action).post(workflow_post))
        .route("/workflow/{name}", get(workflow_get))
        .route("/workflow/instance/{id}", get(instance_get))
        .route("/cluster", get(cluster))
}

/// An error in the original's envelope.
pub(crate) struct LegacyError(ApiError);

impl From<ApiError> for LegacyError {
    fn from(e: ApiError) -> Self {
        LegacyError(e)
    }
}

impl IntoResponse for LegacyError {
    fn into_response(self) -> Response {
        let e = self.0;
        let internal = e.status.is_server_error();
        let cause = e
            .details
            .as_ref()
            .and_then(|d| d.as_str().map(str::to_string));
        let msg = if internal {
            "internal error; the server log has the cause".to_string()
        } else {
            e.message
        };
        let data = if e.code == "invalid_definition" {
            e.details.unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        let body = json!({ "result": "error", "msg": msg, "data": data });
        let mut resp = (e.status, Json(body)).into_response();
        if let (true, Some(c)) = (internal, cause) {
            // logged once, by the log_failures middleware
            resp.extensions_mut().insert(InternalCause(c));
        }
        resp
    }
}

type LegacyResult = Result<Json<Value>, LegacyError>;

fn success(msg: impl Into<String>, data: Value) -> LegacyResult {
    Ok(Json(
        json!({ "result": "success", "msg": msg.into(), "data": data }),
    ))
}

#[derive(Debug, Deserialize)]
struct ActionQuery {
    action: Option<String>,
}

fn action(q: &ActionQuery, allowed: &[&str]) -> Result<String, LegacyError> {
    match q.action.as_deref() {
        Some(a) if allowed.contains(&a) => Ok(a.to_string()),
        Some(a) => Err(ApiError::bad_request(format!(
            "unknown action `{a}`: expected one of {}",
            allowed.join(", ")
        ))
        .into()),
        None => Err(ApiError::bad_request(format!(
            "missing ?action=: expected one of {}",
            allowed.join(", ")
        ))
        .into()),
    }
}

async fn missing_action(BearerCaller(_): BearerCaller) -> LegacyResult {
    Err(ApiError::bad_request(
        "GET /akkaflow/workflow needs a name: /akkaflow/workflow/{name}?action=...",
    )
    .into())
}

async fn workflow_get(
    State(state): State<AppState>,
    BearerCaller(caller): BearerCaller,
    name: Result<ApiPath<String>, ApiError>,
    q: Result<ApiQuery<ActionQuery>, ApiError>,
) -> LegacyResult {
    let (ApiPath(name), ApiQuery(q)) = (name?, q?);
    let act = action(&q, &["del", "run", "reset", "trigger", "trigger-blood"])?;
    let started = |kind| start(&state, &caller, &name, kind);
    match act.as_str() {
        "run" => started(TriggerKind::Run).await,
        "trigger" => started(TriggerKind::Trigger).await,
        "trigger-blood" => started(TriggerKind::Blood).await,
        "del" => {
            caller.require(TokenRole::Operator)?;
            visible_workflow(&state, &caller, &name).await?;
            let cas = state
                .engine
                .set_workflow_enabled(&name, false, &caller.actor())
                .await
                .map_err(ApiError::from)?;
            let already = if cas.applied() {
                ""
            } else {
                " (it already was)"
            };
            success(
                format!("workflow {name} disabled{already}; its history is kept"),
                json!({ "workflow": name, "enabled": false }),
            )
        }
        _ => {
            caller.require(TokenRole::Operator)?;
            visible_workflow(&state, &caller, &name).await?;
            let last = state
                .engine
                .store
                .instance_list(&InstanceFilter {
                    workflow: Some(name.clone()),
                    limit: 50,
                    ..Default::default()
                })
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .find(|i| i.status.is_terminal())
                .ok_or_else(|| {
                    ApiError::conflict(format!("workflow {name} has no finished instance to reset"))
                })?;
            let blood = last.trigger_kind == TriggerKind::Blood;
            workflows::check_reach(&state, &caller, &name, blood).await?;
            let status = state
                .engine
                .rerun_instance(last.id, false, &caller.actor())
                .await
                .map_err(ApiError::from)?;
            success(
                format!("instance {} of {name} rerun", last.id),
                json!({ "id": last.id, "status": status, "status_code": status.legacy_code() }),
            )
        }
    }
}

async fn start(state: &AppState, caller: &Caller, name: &str, kind: TriggerKind) -> LegacyResult {
    let s = workflows::start(state, caller, name, kind, Default::default()).await?;
    success(
        format!(
            "instance {} of {name} started ({})",
            s.instance_id, s.status
        ),
        json!({ "id": s.instance_id, "status": s.status, "status_code": s.status.legacy_code() }),
    )
}

#[derive(Debug, Deserialize)]
struct PostQuery {
    action: Option<String>,
    file: Option<String>,
}

async fn workflow_post(
    State(state): State<AppState>,
    BearerCaller(caller): BearerCaller,
    q: Result<ApiQuery<PostQuery>, ApiError>,
    xml: Result<XmlBody, ApiError>,
) -> LegacyResult {
    let (ApiQuery(q), XmlBody(xml)) = (q?, xml?);
    let act = action(
        &ActionQuery {
            action: q.action.clone(),
        },
        &["add", "check"],
    )?;
    let file = workflows::posted_file(q.file.as_deref(), &xml)?;
    if act == "add" {
        caller.require(TokenRole::Admin)?;
        let (report, workflows) = workflows::upload_xml(&state, &caller, &file, xml).await?;
        return success(
            format!("definition stored: {report}"),
            json!({ "report": report, "workflows": workflows }),
        );
    }
    match crate::sync::prepare_upload(&state.engine.store, &file, xml).await {
        Ok(p) => {
            workflows::check_scope(&state, &caller, &p).await?;
            success(
                "the definition is valid",
                json!({ "workflows": p.workflows, "warnings": p.set.warnings.iter().map(|d| d.to_string()).collect::<Vec<_>>() }),
            )
        }
        Err(e) => Err(workflows::invalid_for(&state, &caller, e).await.into()),
    }
}

async fn instance_get(
    State(state): State<AppState>,
    BearerCaller(caller): BearerCaller,
    id: Result<ApiPath<i64>, ApiError>,
    q: Result<ApiQuery<ActionQuery>, ApiError>,
) -> LegacyResult {
    let (ApiPath(id), ApiQuery(q)) = (id?, q?);
    let act = action(&q, &["rerun", "kill", "del"])?;
    caller.require(TokenRole::Operator)?;
    let inst = visible_instance(&state, &caller, id).await?;
    match act.as_str() {
        "kill" => {
            state
                .engine
                .kill_instance(inst.id, &caller.actor())
                .await
                .map_err(ApiError::from)?;
            success(
                format!("instance {id} killed"),
                json!({ "id": inst.id, "status": InstanceStatus::Killed, "status_code": InstanceStatus::Killed.legacy_code() }),
            )
        }
        "rerun" => {
            let blood = inst.trigger_kind == TriggerKind::Blood;
            workflows::check_reach(&state, &caller, &inst.workflow, blood).await?;
            let status = state
                .engine
                .rerun_instance(inst.id, false, &caller.actor())
                .await
                .map_err(ApiError::from)?;
            success(
                format!("instance {id} rerun"),
                json!({ "id": inst.id, "status": status, "status_code": status.legacy_code() }),
            )
        }
        _ => Err(ApiError::new(
            StatusCode::CONFLICT,
            "refused",
            if inst.status.is_terminal() {
                format!("instance {id} is not deleted: akkaflow keeps the history of every run")
            } else {
                format!(
                    "instance {id} is {}: kill it with action=kill; history is never deleted",
                    inst.status
                )
            },
        )
        .into()),
    }
}

async fn cluster(
    State(state): State<AppState>,
    BearerCaller(caller): BearerCaller,
    q: Result<ApiQuery<ActionQuery>, ApiError>,
) -> LegacyResult {
    let ApiQuery(q) = q?;
    action(&q, &["get"])?;
    let c = admin::cluster_status(&state, &caller).await?;
    success(
        "cluster status",
        serde_json::to_value(c).expect("cluster status serialises"),
    )
}

/// A caller that authenticated with a bearer token (or auth is off): the legacy GET routes change
/// things, so they never act on a browser's cookie.
pub(crate) struct BearerCaller(pub Caller);

impl FromRequestParts<AppState> for BearerCaller {
    /// Refusals keep the original's envelope.
    type Rejection = LegacyError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<BearerCaller, Self::Rejection> {
        if state.auth && super::auth::bearer(parts).is_none() {
            return Err(ApiError::unauthorized(
                "the /akkaflow routes take `Authorization: Bearer <token>` only",
            )
            .into());
        }
        Ok(BearerCaller(
            Caller::from_request_parts(parts, state).await?,
        ))
    }
}
