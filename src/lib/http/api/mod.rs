//! `/api/v1`: JSON resources. One file per resource family; this file holds the routes and the
//! scoped lookups every handler starts with (missing and out-of-scope both answer 404).

pub(crate) mod admin;
pub(crate) mod alerts;
pub(crate) mod backfills;
pub(crate) mod editor;
pub(crate) mod logs;
pub(crate) mod pools;
pub(crate) mod runs;
pub(crate) mod versions;
pub(crate) mod workflows;

use axum::routing::{delete, get, post};
use axum::Router;

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::state::{InstanceId, TaskId};
use crate::store::{InstanceRow, TaskRow, WorkflowRow};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(admin::whoami))
        .route("/workflows", get(workflows::list))
        .route("/workflows/{name}", get(workflows::get))
        .route("/workflows/{name}/enable", post(workflows::enable))
        .route("/workflows/{name}/disable", post(workflows::disable))
        .route("/workflows/{name}/trigger", post(workflows::trigger))
        .route("/workflows/{name}/run", post(workflows::run))
        .route("/workflows/{name}/backfill", post(backfills::create))
        .route("/workflows/{name}/versions", get(versions::list))
        .route("/workflows/{name}/diff", get(versions::diff))
        .route("/workflows/{name}/rollback", post(versions::rollback))
        .route("/definitions", post(workflows::upload))
        .route("/definitions/validate", post(workflows::validate))
        .route("/instances", get(runs::list))
        .route("/instances/{id}", get(runs::get))
        .route("/instances/{id}/kill", post(runs::kill))
        .route("/instances/{id}/rerun", post(runs::rerun))
        .route("/instances/{id}/logs", get(logs::instance_logs))
        .route("/instances/{id}/logs/follow", get(logs::instance_follow))
        .route(
            "/instances/{id}/logs/download",
            get(logs::instance_download),
        )
        .route("/tasks/{id}", get(runs::task_get))
        .route("/tasks/{id}/retry", post(runs::task_retry))
        .route("/tasks/{id}/kill", post(runs::task_kill))
        .route("/tasks/{id}/logs", get(logs::task_logs))
        .route("/tasks/{id}/logs/follow", get(logs::task_follow))
        .route("/workers", get(admin::workers))
        .route("/schedulers", get(admin::schedulers))
        .route("/cluster", get(admin::cluster))
        .route("/events", get(admin::events))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}/resend", post(alerts::resend))
        .route("/backfills", get(backfills::list))
        .route("/backfills/{id}", get(backfills::get))
        .route("/backfills/{id}/cancel", post(backfills::cancel))
        .route("/pools", get(pools::list))
        .route("/pools/{name}/slots", post(pools::set_slots))
        .route("/links/db", get(admin::db_links))
        .route("/links/file", get(admin::file_links))
        .route("/tokens", get(admin::tokens).post(admin::token_create))
        .route("/tokens/{name}", delete(admin::token_revoke))
}

/// The workflow, if it exists and the caller may see it.
pub(crate) async fn visible_workflow(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<WorkflowRow> {
    match state.engine.store.workflow_get(name).await? {
        Some(w) if caller.sees(&w.dir) => Ok(w),
        _ => Err(ApiError::not_found(format!("no workflow `{name}`"))),
    }
}

/// Every stored workflow's dir, by name: what scope checks over many names look up.
pub(crate) async fn workflow_dirs(
    state: &AppState,
) -> ApiResult<std::collections::HashMap<String, String>> {
    Ok(state
        .engine
        .store
        .workflow_list()
        .await?
        .into_iter()
        .map(|w| (w.name, w.dir))
        .collect())
}

/// Whether the caller may see instances of `workflow` (whose row may be gone: then only an
/// unscoped caller can).
pub(crate) async fn sees_workflow(
    state: &AppState,
    caller: &Caller,
    workflow: &str,
) -> ApiResult<bool> {
    if caller.dir.is_none() {
        return Ok(true);
    }
    Ok(state
        .engine
        .store
        .workflow_get(workflow)
        .await?
        .is_some_and(|w| caller.sees(&w.dir)))
}

pub(crate) async fn visible_instance(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<InstanceRow> {
    let missing = || ApiError::not_found(format!("no instance {id}"));
    let inst = state
        .engine
        .store
        .instance_get(InstanceId(id))
        .await?
        .ok_or_else(missing)?;
    if sees_workflow(state, caller, &inst.workflow).await? {
        hide_foreign_parent(state, caller, inst).await
    } else {
        Err(missing())
    }
}

/// A child instance whose parent lies outside the caller's scope shows neither the parent nor the
/// parent's parameters: only those the child's workflow declares or uses (its own inputs).
pub(crate) async fn hide_foreign_parent(
    state: &AppState,
    caller: &Caller,
    mut inst: InstanceRow,
) -> ApiResult<InstanceRow> {
    let Some(parent) = inst.parent_instance_id else {
        return Ok(inst);
    };
    if caller.dir.is_none() {
        return Ok(inst);
    }
    let parent_seen = match state.engine.store.instance_get(parent).await? {
        Some(p) => sees_workflow(state, caller, &p.workflow).await?,
        None => false,
    };
    if parent_seen {
        return Ok(inst);
    }
    let accepted = state
        .engine
        .definition(&inst.workflow, inst.workflow_version)
        .await?
        .accepted_params();
    let params: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&inst.params).unwrap_or_default();
    let own: std::collections::BTreeMap<String, String> = params
        .into_iter()
        .filter(|(k, _)| accepted.contains(k))
        .collect();
    inst.params = serde_json::to_string(&own).expect("a string map serialises");
    inst.parent_instance_id = None;
    inst.parent_task_id = None;
    Ok(inst)
}

pub(crate) async fn visible_task(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<(TaskRow, InstanceRow)> {
    let missing = || ApiError::not_found(format!("no task {id}"));
    let task = state
        .engine
        .store
        .task_get(TaskId(id))
        .await?
        .ok_or_else(missing)?;
    let inst = visible_instance(state, caller, task.instance_id.0)
        .await
        .map_err(|e| {
            if e.status.as_u16() == 404 {
                missing()
            } else {
                e
            }
        })?;
    Ok((task, inst))
}
