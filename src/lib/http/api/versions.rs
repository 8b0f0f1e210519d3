//! A workflow's stored versions, the diff between two of them and the rollback to one (what
//! `workflow history`, `workflow diff` and `workflow rollback` do).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::visible_workflow;
use crate::definition::diff;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::AppState;
use crate::rollback::RolledBack;
use crate::store::{TokenRole, WorkflowVersionRow};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionView {
    pub version: i64,
    /// When `sync` stored it
    pub created_at: DateTime<Utc>,
    pub content_hash: String,
    /// The oldest earlier version with the same content (a rollback to it, or a file put back)
    pub same_as: Option<i64>,
}

/// Each version with the oldest earlier version of the same content.
pub(crate) fn views(versions: Vec<WorkflowVersionRow>) -> Vec<VersionView> {
    let hashes: Vec<(i64, &str)> = versions
        .iter()
        .map(|v| (v.version, v.content_hash.as_str()))
        .collect();
    let twins = diff::same_as(&hashes);
    versions
        .into_iter()
        .zip(twins)
        .map(|(v, same_as)| VersionView {
            version: v.version,
            created_at: v.created_at,
            content_hash: v.content_hash,
            same_as,
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionList {
    pub workflow: String,
    /// The version new instances run
    pub current: i64,
    /// Set while the current version is a rollback to this version whose file differs (sync keeps
    /// the rollback until the file is updated)
    pub rolled_back_to: Option<i64>,
    /// Oldest first
    pub versions: Vec<VersionView>,
}

/// List a workflow's stored versions
#[utoipa::path(get, path = "/api/v1/workflows/{name}/versions", tag = "workflows",
    params(("name" = String, Path, description = "workflow name")),
    responses((status = 200, body = VersionList), (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<VersionList>> {
    Ok(Json(version_list(&state, &caller, &name).await?))
}

/// The versions of a workflow the caller sees, for the API and the workflow page.
pub(crate) async fn version_list(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<VersionList> {
    let w = visible_workflow(state, caller, name).await?;
    let versions = state.engine.store.workflow_versions(&w.name).await?;
    Ok(VersionList {
        current: w.version,
        rolled_back_to: w.rolled_back_to,
        versions: views(versions),
        workflow: w.name,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct DiffQuery {
    /// The older version
    pub from: i64,
    /// The newer version (default: the current one)
    pub to: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionDiff {
    pub from: i64,
    pub to: i64,
    /// A unified diff of the XML (`diff -u`); empty when the two are the same
    pub diff: String,
}

/// A unified diff of the XML of two stored versions
#[utoipa::path(get, path = "/api/v1/workflows/{name}/diff", tag = "workflows",
    params(("name" = String, Path, description = "workflow name"), DiffQuery),
    responses((status = 200, body = VersionDiff), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult<Json<VersionDiff>> {
    Ok(Json(diff_of(&state, &caller, &name, q.from, q.to).await?))
}

/// The diff between two versions of a workflow the caller sees (`to`: the current one), for the
/// API and the diff page.
pub(crate) async fn diff_of(
    state: &AppState,
    caller: &Caller,
    name: &str,
    from: i64,
    to: Option<i64>,
) -> ApiResult<VersionDiff> {
    let w = visible_workflow(state, caller, name).await?;
    let versions = state.engine.store.workflow_versions(&w.name).await?;
    let to = to.unwrap_or(w.version);
    let sources: Vec<(i64, &str)> = versions
        .iter()
        .map(|r| (r.version, r.source_xml.as_str()))
        .collect();
    let diff = diff::between(&w.name, &sources, from, to)
        .map_err(|v| ApiError::not_found(format!("workflow `{}` has no version {v}", w.name)))?;
    Ok(VersionDiff { diff, from, to })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackRequest {
    /// The version whose content becomes the newest version again
    pub to: i64,
}

/// Roll a workflow back to a stored version (admin): its content becomes a new version; sync then
/// keeps it and reports the workflow's file as differing until the file is updated
#[utoipa::path(post, path = "/api/v1/workflows/{name}/rollback", tag = "workflows",
    params(("name" = String, Path, description = "workflow name")), request_body = RollbackRequest,
    responses((status = 201, body = RolledBack), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<RollbackRequest>,
) -> ApiResult<(StatusCode, Json<RolledBack>)> {
    caller.require(TokenRole::Admin)?;
    let w = visible_workflow(&state, &caller, &name).await?;
    if !(1..=w.version).contains(&body.to) {
        return Err(ApiError::not_found(format!(
            "workflow `{}` has no version {} (it has 1 to {})",
            w.name, body.to, w.version
        )));
    }
    let done = crate::rollback::rollback(
        &state.engine.store,
        &w.name,
        body.to,
        &caller.actor(),
        state.engine.timezone,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(done)))
}
