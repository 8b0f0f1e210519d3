//! Instances and tasks: list, get with tasks and attempts, kill, rerun, retry.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{visible_instance, visible_task};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiPath, ApiQuery, OptJson};
use crate::http::AppState;
use crate::state::{InstanceId, InstanceStatus, TaskId, TaskStatus, TriggerKind};
use crate::store::{AttemptRow, InstanceRow, InstanceSearch, TaskRow, TokenRole};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InstanceQuery {
    pub workflow: Option<String>,
    pub status: Option<InstanceStatus>,
    /// Why the instances exist: cron, dependency, trigger, blood, run, rerun, sub_workflow…
    pub trigger: Option<TriggerKind>,
    /// Only workflows whose dir is this prefix or below it
    pub dir: Option<String>,
    /// Created at or after: RFC 3339, `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS` (UTC)
    pub since: Option<String>,
    /// Created before: same forms as `since` (a date alone means its midnight, UTC)
    pub until: Option<String>,
    /// Paging: only ids below this one (pass the previous page's `next_before_id`)
    pub before_id: Option<i64>,
    /// 1 to 500, default 50
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstancePage {
    /// Newest first
    pub instances: Vec<InstanceRow>,
    /// Pass as `before_id` for the next page; absent on the last page
    pub next_before_id: Option<InstanceId>,
    /// How many instances match the filters in all (paging aside), counted up to 10,000
    pub total: i64,
    /// `total` reached the 10,000 the count stops at: there are at least that many
    pub total_is_lower_bound: bool,
}

/// Where the instances list's count stops: counting further would read the whole index of a big
/// history for a number nobody pages through.
pub(crate) const COUNT_UP_TO: i64 = 10_000;

pub(crate) fn parse_since(s: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc()))
        .or_else(|_| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        })
        .map_err(|_| {
            ApiError::bad_request(format!(
                "bad `since` value `{s}`: expected RFC 3339, YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"
            ))
        })
}

pub(crate) fn limit(l: Option<i64>, default: i64, max: i64) -> ApiResult<i64> {
    match l {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "bad limit {n}: expected 1 to {max}"
        ))),
    }
}

pub(crate) async fn page(
    state: &AppState,
    caller: &Caller,
    q: &InstanceQuery,
) -> ApiResult<InstancePage> {
    let limit = limit(q.limit, 50, 500)?;
    let since = q.since.as_deref().map(parse_since).transpose()?;
    let until = q
        .until
        .as_deref()
        .map(|u| {
            parse_since(u).map_err(|_| {
                ApiError::bad_request(format!(
                    "bad `until` value `{u}`: expected RFC 3339, YYYY-MM-DD or YYYY-MM-DD HH:MM:SS"
                ))
            })
        })
        .transpose()?;
    let Some(dir) = caller.narrow(q.dir.as_deref()) else {
        return Ok(InstancePage {
            instances: vec![],
            next_before_id: None,
            total: 0,
            total_is_lower_bound: false,
        });
    };
    let found = state
        .engine
        .store
        .instance_search(&InstanceSearch {
            workflow: q.workflow.clone(),
            status: q.status,
            trigger: q.trigger,
            created_from: since,
            created_to: until,
            before_id: q.before_id.map(InstanceId),
            dir_prefix: dir,
            limit,
            count_up_to: COUNT_UP_TO,
        })
        .await?;
    let (instances, total) = (found.rows, found.total);
    let next_before_id = (instances.len() as i64 == limit)
        .then(|| instances.last().map(|i| i.id))
        .flatten();
    let mut shown = Vec::with_capacity(instances.len());
    for i in instances {
        shown.push(super::hide_foreign_parent(state, caller, i).await?);
    }
    let instances = shown;
    Ok(InstancePage {
        instances,
        next_before_id,
        total,
        total_is_lower_bound: total >= COUNT_UP_TO,
    })
}

/// List instances, newest first
#[utoipa::path(get, path = "/api/v1/instances", tag = "instances", params(InstanceQuery),
    responses((status = 200, body = InstancePage), (status = 400, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<InstanceQuery>,
) -> ApiResult<Json<InstancePage>> {
    Ok(Json(page(&state, &caller, &q).await?))
}

/// A task with its finished attempts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskView {
    #[serde(flatten)]
    pub task: TaskRow,
    pub attempts: Vec<AttemptRow>,
    /// Why a ready task has not started, when its pool holds it back ("waiting for pool
    /// warehouse: 4 of 4 slots in use")
    pub waiting: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstanceDetail {
    pub instance: InstanceRow,
    pub tasks: Vec<TaskView>,
    /// Why a pending instance has not started yet (null once it has)
    pub waiting: Option<String>,
}

pub(crate) async fn detail(
    state: &AppState,
    caller: &Caller,
    id: i64,
) -> ApiResult<InstanceDetail> {
    let instance = visible_instance(state, caller, id).await?;
    let store = &state.engine.store;
    let tasks = store.task_list(instance.id).await?;
    let mut attempts = store.task_attempt_list(instance.id).await?;
    // the pools are read only when a ready task of this instance is in one
    let pools = if tasks
        .iter()
        .any(|t| t.status == crate::state::TaskStatus::Ready && !t.pool.is_empty())
    {
        store.pool_list().await?
    } else {
        vec![]
    };
    let tasks = tasks
        .into_iter()
        .map(|task| {
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut attempts)
                .into_iter()
                .partition(|a| a.task_id == task.id);
            attempts = rest;
            TaskView {
                waiting: crate::engine::pool::pool_wait_reason(&task, &pools),
                task,
                attempts: mine,
            }
        })
        .collect();
    let waiting = match instance.status {
        InstanceStatus::Pending => Some(crate::engine::why::pending(&**store, &instance).await?),
        _ => None,
    };
    Ok(InstanceDetail {
        instance,
        tasks,
        waiting,
    })
}

/// Get an instance with its tasks and their attempts
#[utoipa::path(get, path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = i64, Path)),
    responses((status = 200, body = InstanceDetail), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<InstanceDetail>> {
    Ok(Json(detail(&state, &caller, id).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstanceState {
    pub instance_id: InstanceId,
    pub status: InstanceStatus,
}

/// Kill a pending or running instance
#[utoipa::path(post, path = "/api/v1/instances/{id}/kill", tag = "instances",
    params(("id" = i64, Path)),
    responses((status = 200, body = InstanceState), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "already ended", body = ErrorBody)))]
pub(crate) async fn kill(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<InstanceState>> {
    caller.require(TokenRole::Operator)?;
    let inst = visible_instance(&state, &caller, id).await?;
    state.engine.kill_instance(inst.id, &caller.actor()).await?;
    Ok(Json(InstanceState {
        instance_id: inst.id,
        status: InstanceStatus::Killed,
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RerunRequest {
    /// Keep the nodes that succeeded
    #[serde(default)]
    pub recover: bool,
}

/// Run a finished instance again in place
#[utoipa::path(post, path = "/api/v1/instances/{id}/rerun", tag = "instances",
    params(("id" = i64, Path)), request_body(content = Option<RerunRequest>),
    responses((status = 200, body = InstanceState), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not finished", body = ErrorBody)))]
pub(crate) async fn rerun(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    OptJson(body): OptJson<RerunRequest>,
) -> ApiResult<Json<InstanceState>> {
    caller.require(TokenRole::Operator)?;
    let inst = visible_instance(&state, &caller, id).await?;
    let blood = inst.trigger_kind == crate::state::TriggerKind::Blood;
    super::workflows::check_reach(&state, &caller, &inst.workflow, blood).await?;
    let status = state
        .engine
        .rerun_instance(inst.id, body.recover, &caller.actor())
        .await?;
    Ok(Json(InstanceState {
        instance_id: inst.id,
        status,
    }))
}

/// Get a task with its attempts
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = i64, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody)))]
pub(crate) async fn task_get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TaskView>> {
    let (task, inst) = visible_task(&state, &caller, id).await?;
    let attempts = state
        .engine
        .store
        .task_attempt_list(inst.id)
        .await?
        .into_iter()
        .filter(|a| a.task_id == task.id)
        .collect();
    let waiting = if task.status == crate::state::TaskStatus::Ready && !task.pool.is_empty() {
        crate::engine::pool::pool_wait_reason(&task, &state.engine.store.pool_list().await?)
    } else {
        None
    };
    Ok(Json(TaskView {
        task,
        attempts,
        waiting,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskRetried {
    pub task_id: TaskId,
    /// The instance's status after the retry started it again
    pub instance_status: InstanceStatus,
}

/// Run a failed or killed task again; its finished instance continues from there
#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", tag = "tasks",
    params(("id" = i64, Path)),
    responses((status = 200, body = TaskRetried), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn task_retry(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TaskRetried>> {
    caller.require(TokenRole::Operator)?;
    let (task, inst) = visible_task(&state, &caller, id).await?;
    // the instance continues from the retried task: it may yet reach its sub-workflows
    super::workflows::check_reach(&state, &caller, &inst.workflow, false).await?;
    let instance_status = state.engine.retry_task(task.id, &caller.actor()).await?;
    Ok(Json(TaskRetried {
        task_id: task.id,
        instance_status,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TaskKilled {
    pub task_id: TaskId,
    /// `killed`, or `running` while its worker stops it (within a heartbeat)
    pub status: TaskStatus,
    pub message: String,
}

/// Kill a task (a running one through its worker, within a heartbeat)
#[utoipa::path(post, path = "/api/v1/tasks/{id}/kill", tag = "tasks",
    params(("id" = i64, Path)),
    responses((status = 200, body = TaskKilled), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn task_kill(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TaskKilled>> {
    caller.require(TokenRole::Operator)?;
    let (task, _) = visible_task(&state, &caller, id).await?;
    let status = state.engine.kill_task(task.id, &caller.actor()).await?;
    let message = if status == TaskStatus::Running {
        "kill requested; its worker stops it within a heartbeat".to_string()
    } else {
        format!("task {status}")
    };
    Ok(Json(TaskKilled {
        task_id: task.id,
        status,
        message,
    }))
}
