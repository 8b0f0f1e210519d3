//! Backfills: create one for a workflow (or plan it dry), list them with their progress, read one
//! with its slots, cancel one: the same operations as `akkaflow workflow backfill` and `akkaflow
//! backfill list / info / cancel`.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::workflows::check_reach;
use super::{sees_workflow, visible_workflow};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::AppState;
use crate::scheduler::backfill::{
    self, BackfillInfo, BackfillPlan, BackfillRequest, BackfillSummary, CancelReport,
};
use crate::state::{BackfillId, Reprocess};
use crate::store::TokenRole;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackfillBody {
    /// First slot time, `YYYY-MM-DD` or `YYYY-MM-DD HH:MM`, in the coordinator's zone
    pub from: String,
    /// Last slot time, included: `YYYY-MM-DD` (the whole day) or `YYYY-MM-DD HH:MM`
    pub to: String,
    /// At most this many instances of the backfill at once (default 1)
    #[serde(default = "one")]
    pub parallel: i64,
    /// `missing` (default), `failed` or `all`
    #[serde(default = "missing")]
    pub reprocess: Reprocess,
    /// Newest slot first
    #[serde(default)]
    pub reverse: bool,
    /// Each slot's success also runs its downstream workflows for that slot
    #[serde(default)]
    pub blood: bool,
    /// Parameter overrides for every slot
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Every task's priority (default: each task's own minus one)
    #[serde(default)]
    pub priority: Option<i64>,
    /// Plan only: answer what each slot would do, create nothing
    #[serde(default)]
    pub dry_run: bool,
}

fn one() -> i64 {
    1
}

fn missing() -> Reprocess {
    Reprocess::Missing
}

/// Backfill a range of the workflow's cron slots (201 with the plan and its id; 200 for a dry run)
#[utoipa::path(post, path = "/api/v1/workflows/{name}/backfill", tag = "backfills",
    params(("name" = String, Path)), request_body = BackfillBody,
    responses((status = 201, body = BackfillPlan), (status = 200, body = BackfillPlan),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<BackfillBody>,
) -> ApiResult<(StatusCode, Json<BackfillPlan>)> {
    caller.require(TokenRole::Operator)?;
    let w = visible_workflow(&state, &caller, &name).await?;
    check_reach(&state, &caller, &w.name, body.blood).await?;
    let req = BackfillRequest {
        workflow: w.name,
        from: body.from,
        to: body.to,
        reprocess: body.reprocess,
        parallel: body.parallel,
        reverse: body.reverse,
        blood: body.blood,
        params: body.params,
        priority: body.priority,
        dry_run: body.dry_run,
        actor: caller.actor(),
    };
    let plan = backfill::plan(&state.engine, &req)
        .await
        .map_err(|e| match e {
            crate::Error::Refused(m) => ApiError::bad_request(m),
            other => other.into(),
        })?;
    let status = if plan.id.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(plan)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct BackfillQuery {
    /// Only backfills of this workflow
    pub workflow: Option<String>,
    /// At most this many, newest first (default 50)
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BackfillList {
    /// Newest first
    pub backfills: Vec<BackfillSummary>,
}

/// Backfills the caller may see, newest first, with their progress
#[utoipa::path(get, path = "/api/v1/backfills", tag = "backfills", params(BackfillQuery),
    responses((status = 200, body = BackfillList), (status = 401, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<BackfillQuery>,
) -> ApiResult<Json<BackfillList>> {
    Ok(Json(BackfillList {
        backfills: summaries(
            &state,
            &caller,
            q.workflow,
            q.limit.unwrap_or(50).clamp(1, 500),
        )
        .await?,
    }))
}

/// The caller's visible backfills (of one workflow, or all) with their progress.
pub(crate) async fn summaries(
    state: &AppState,
    caller: &Caller,
    workflow: Option<String>,
    limit: i64,
) -> ApiResult<Vec<BackfillSummary>> {
    let mut out = Vec::new();
    for s in backfill::summaries(&state.engine, workflow, limit).await? {
        if sees_workflow(state, caller, &s.backfill.workflow).await? {
            out.push(s);
        }
    }
    Ok(out)
}

async fn visible(state: &AppState, caller: &Caller, id: i64) -> ApiResult<BackfillInfo> {
    let missing = || ApiError::not_found(format!("no backfill {id}"));
    let info = match backfill::info(&state.engine, BackfillId(id)).await {
        Ok(i) => i,
        Err(crate::Error::Refused(_)) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    if !sees_workflow(state, caller, &info.backfill.workflow).await? {
        return Err(missing());
    }
    Ok(info)
}

/// A backfill with every slot, its instance and state
#[utoipa::path(get, path = "/api/v1/backfills/{id}", tag = "backfills",
    params(("id" = i64, Path)),
    responses((status = 200, body = BackfillInfo), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<BackfillInfo>> {
    Ok(Json(visible(&state, &caller, id).await?))
}

/// Cancel a running backfill: it creates no more instances, and those that run are killed
#[utoipa::path(post, path = "/api/v1/backfills/{id}/cancel", tag = "backfills",
    params(("id" = i64, Path)),
    responses((status = 200, body = CancelReport), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CancelReport>> {
    caller.require(TokenRole::Operator)?;
    visible(&state, &caller, id).await?;
    Ok(Json(
        backfill::cancel(&state.engine, BackfillId(id), &caller.actor()).await?,
    ))
}
