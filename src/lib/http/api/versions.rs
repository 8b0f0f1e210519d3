//! A workflow's stored versions and the diff between two of them (what `workflow history` and
//! `workflow diff` print).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::visible_workflow;
use crate::definition::diff;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionView {
    pub version: i64,
    /// When `sync` stored it
    pub created_at: DateTime<Utc>,
    pub content_hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionList {
    pub workflow: String,
    /// The version new instances run
    pub current: i64,
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
    let w = visible_workflow(&state, &caller, &name).await?;
    let versions = state.engine.store.workflow_versions(&w.name).await?;
    Ok(Json(VersionList {
        current: w.version,
        versions: versions
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                created_at: v.created_at,
                content_hash: v.content_hash,
            })
            .collect(),
        workflow: w.name,
    }))
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
    let w = visible_workflow(&state, &caller, &name).await?;
    let versions = state.engine.store.workflow_versions(&w.name).await?;
    let to = q.to.unwrap_or(w.version);
    let sources: Vec<(i64, &str)> = versions
        .iter()
        .map(|r| (r.version, r.source_xml.as_str()))
        .collect();
    let diff = diff::between(&w.name, &sources, q.from, to)
        .map_err(|v| ApiError::not_found(format!("workflow `{}` has no version {v}", w.name)))?;
    Ok(Json(VersionDiff {
        diff,
        from: q.from,
        to,
    }))
}
