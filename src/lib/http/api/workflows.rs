//! Workflows and definitions: list, get, enable/disable, trigger/run, validate and upload XML.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{visible_workflow, workflow_dirs};
use crate::engine::{CreateInstance, Created};
use crate::http::auth::Caller;
use crate::http::dag::{self, NodeView};
use crate::http::error::{ApiError, ApiResult, DiagnosticView, ErrorBody};
use crate::http::extract::{ApiPath, ApiQuery, OptJson, XmlBody};
use crate::http::AppState;
use crate::state::{InstanceId, InstanceStatus, TriggerKind};
use crate::store::{
    CoordinatorRow, DeadlineMissRow, DependRow, InstanceFilter, InstanceRow, TokenRole, WorkflowRow,
};
use crate::sync::{self, SyncOptions, SyncReport, UploadedWorkflow};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WorkflowQuery {
    /// Only workflows whose dir is this prefix or below it
    pub dir: Option<String>,
    /// Only workflows whose name contains this text
    pub name: Option<String>,
    pub enabled: Option<bool>,
}

/// A workflow as listed: its schedule and its newest instance.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowSummary {
    pub name: String,
    pub dir: String,
    pub version: i64,
    pub enabled: bool,
    pub description: String,
    pub creator: String,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub coordinator_enabled: Option<bool>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The missed-run policy: `latest`, `all` or `none`.
    pub catchup: Option<String>,
    /// The business calendar the cron follows.
    pub calendar: Option<String>,
    pub depends: Vec<String>,
    pub last_instance: Option<InstanceBrief>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InstanceBrief {
    pub id: InstanceId,
    pub status: InstanceStatus,
    pub created_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<&InstanceRow> for InstanceBrief {
    fn from(i: &InstanceRow) -> Self {
        InstanceBrief {
            id: i.id,
            status: i.status,
            created_at: i.created_at,
            ended_at: i.ended_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowList {
    pub workflows: Vec<WorkflowSummary>,
}

/// Summaries of the workflows the caller sees, filtered as asked.
pub(crate) async fn summaries(
    state: &AppState,
    caller: &Caller,
    q: &WorkflowQuery,
) -> ApiResult<Vec<WorkflowSummary>> {
    let store = &state.engine.store;
    let Some(dir) = caller.narrow(q.dir.as_deref()) else {
        return Ok(vec![]);
    };
    let coordinators: HashMap<String, CoordinatorRow> = store
        .coordinator_list()
        .await?
        .into_iter()
        .map(|c| (c.workflow.clone(), c))
        .collect();
    let latest: HashMap<String, InstanceRow> = store
        .instance_latest_by_workflow()
        .await?
        .into_iter()
        .map(|i| (i.workflow.clone(), i))
        .collect();
    let needle = q.name.as_deref().map(str::to_lowercase);
    let all = store.workflow_list().await?;
    let dirs: HashMap<String, String> = all
        .iter()
        .map(|w| (w.name.clone(), w.dir.clone()))
        .collect();
    Ok(all
        .into_iter()
        .filter(|w| crate::store::dir_in_scope(&w.dir, dir.as_deref()))
        .filter(|w| q.enabled.is_none_or(|e| e == w.enabled))
        .filter(|w| {
            needle
                .as_deref()
                .is_none_or(|n| w.name.to_lowercase().contains(n))
        })
        .map(|w| {
            let c = coordinators.get(&w.name);
            WorkflowSummary {
                cron: c.and_then(|c| c.cron.clone()),
                timezone: c.map(|c| c.timezone.clone()),
                coordinator_enabled: c.map(|c| c.enabled),
                next_fire_at: c.and_then(|c| c.next_fire_at),
                last_fire_at: c.and_then(|c| c.last_fire_at),
                catchup: c.map(|c| c.catchup.clone()),
                calendar: c.and_then(|c| c.calendar.clone()),
                depends: c
                    .and_then(|c| serde_json::from_str::<Vec<String>>(&c.depends).ok())
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|d| caller.dir.is_none() || dirs.get(d).is_some_and(|x| caller.sees(x)))
                    .collect(),
                last_instance: latest.get(&w.name).map(InstanceBrief::from),
                name: w.name,
                dir: w.dir,
                version: w.version,
                enabled: w.enabled,
                description: w.description,
                creator: w.creator,
            }
        })
        .collect())
}

/// List workflows
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(WorkflowQuery),
    responses((status = 200, body = WorkflowList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<WorkflowQuery>,
) -> ApiResult<Json<WorkflowList>> {
    Ok(Json(WorkflowList {
        workflows: summaries(&state, &caller, &q).await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ParamView {
    pub name: String,
    /// The default as written (a template), if any
    pub default: Option<String>,
}

/// A workflow with everything needed to understand it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkflowDetail {
    pub workflow: WorkflowRow,
    pub source_xml: String,
    pub nodes: Vec<NodeView>,
    pub params: Vec<ParamView>,
    pub coordinator: Option<CoordinatorRow>,
    pub upstreams: Vec<DependRow>,
    pub downstreams: Vec<String>,
    /// The 20 newest instances
    pub recent_instances: Vec<InstanceRow>,
    /// The coordinator's deadline as written (`07:00`, `+2h`), if it has one
    pub deadline: Option<String>,
    /// The 20 newest slots that missed the deadline, with why
    pub deadline_misses: Vec<DeadlineMissRow>,
}

/// The names among `names` of workflows the caller may see (all of them for an unscoped caller),
/// in their order: a scoped caller learns nothing about other dirs from a dependency list.
async fn visible_names(
    state: &AppState,
    caller: &Caller,
    names: impl IntoIterator<Item = String>,
) -> ApiResult<Vec<String>> {
    let names: Vec<String> = names.into_iter().collect();
    if caller.dir.is_none() {
        return Ok(names);
    }
    let dirs = workflow_dirs(state).await?;
    Ok(names
        .into_iter()
        .filter(|n| dirs.get(n).is_some_and(|d| caller.sees(d)))
        .collect())
}

pub(crate) async fn detail(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<WorkflowDetail> {
    let w = visible_workflow(state, caller, name).await?;
    let store = &state.engine.store;
    let def = state.engine.definition(&w.name, w.version).await?;
    let recent = store
        .instance_list(&InstanceFilter {
            workflow: Some(w.name.clone()),
            limit: 20,
            ..Default::default()
        })
        .await?;
    Ok(WorkflowDetail {
        source_xml: w.source_xml.clone(),
        nodes: dag::nodes(&def),
        params: def
            .params
            .iter()
            .map(|p| ParamView {
                name: p.name.clone(),
                default: p.default.as_ref().map(|t| t.as_str().to_string()),
            })
            .collect(),
        coordinator: store.coordinator_get(&w.name).await?,
        upstreams: {
            let mut ups = store.coordinator_depend_list(&w.name).await?;
            let seen = visible_names(state, caller, ups.iter().map(|u| u.upstream.clone())).await?;
            ups.retain(|u| seen.contains(&u.upstream));
            ups
        },
        downstreams: visible_names(state, caller, store.coordinator_downstream(&w.name).await?)
            .await?,
        recent_instances: recent,
        deadline: def
            .coordinator
            .as_ref()
            .and_then(|c| c.deadline)
            .map(|d| d.to_string()),
        deadline_misses: store.deadline_miss_list(Some(&w.name), 20).await?,
        workflow: w,
    })
}

/// Get a workflow: nodes, coordinator state, upstreams, downstreams, source XML
#[utoipa::path(get, path = "/api/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "workflow name")),
    responses((status = 200, body = WorkflowDetail), (status = 404, body = ErrorBody)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<WorkflowDetail>> {
    Ok(Json(detail(&state, &caller, &name).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EnabledChange {
    pub workflow: String,
    pub enabled: bool,
    /// false when it already was
    pub changed: bool,
}

async fn set_enabled(
    state: AppState,
    caller: Caller,
    name: String,
    enabled: bool,
) -> ApiResult<Json<EnabledChange>> {
    caller.require(TokenRole::Operator)?;
    visible_workflow(&state, &caller, &name).await?;
    let cas = state
        .engine
        .set_workflow_enabled(&name, enabled, &caller.actor())
        .await?;
    Ok(Json(EnabledChange {
        workflow: name,
        enabled,
        changed: cas.applied(),
    }))
}

/// Enable a workflow (its coordinator fires again)
#[utoipa::path(post, path = "/api/v1/workflows/{name}/enable", tag = "workflows",
    params(("name" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = EnabledChange), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<EnabledChange>> {
    set_enabled(state, caller, name, true).await
}

/// Disable a workflow (no new instances; running ones continue)
#[utoipa::path(post, path = "/api/v1/workflows/{name}/disable", tag = "workflows",
    params(("name" = String, Path)),
    responses((status = 200, body = EnabledChange), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<EnabledChange>> {
    set_enabled(state, caller, name, false).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerRequest {
    /// Parameter overrides
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Then run the whole downstream chain
    #[serde(default)]
    pub blood: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Run this stored version instead of the current one (see `/versions`)
    #[serde(default)]
    pub version: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StartedInstance {
    pub instance_id: InstanceId,
    /// `running`, or `pending` while the workflow's instance-limit is reached
    pub status: InstanceStatus,
}

pub(crate) async fn start(
    state: &AppState,
    caller: &Caller,
    name: &str,
    trigger: TriggerKind,
    params: BTreeMap<String, String>,
) -> ApiResult<StartedInstance> {
    start_at(state, caller, name, trigger, params, None).await
}

/// [`start`] of stored version `version` (`None`: the current one).
pub(crate) async fn start_at(
    state: &AppState,
    caller: &Caller,
    name: &str,
    trigger: TriggerKind,
    params: BTreeMap<String, String>,
    version: Option<i64>,
) -> ApiResult<StartedInstance> {
    caller.require(TokenRole::Operator)?;
    let w = visible_workflow(state, caller, name).await?;
    let requested = version;
    let version = version.unwrap_or(w.version);
    if !(1..=w.version).contains(&version) {
        return Err(ApiError::not_found(format!(
            "workflow `{}` has no version {version} (it has 1 to {})",
            w.name, w.version
        )));
    }
    let def = state.engine.definition(&w.name, version).await?;
    def.check_given_params(params.keys())
        .map_err(ApiError::bad_request)?;
    check_reach(state, caller, &w.name, trigger == TriggerKind::Blood).await?;
    let req = CreateInstance {
        workflow: name.to_string(),
        trigger,
        scheduled_for: None,
        params,
        coordinator_params: trigger != TriggerKind::Run,
        parent: None,
        actor: caller.actor(),
    };
    let Created { id, status } = state.engine.create_instance_at(&req, requested).await?;
    let id = id.ok_or_else(|| ApiError::conflict("the instance slot was taken; try again"))?;
    Ok(StartedInstance {
        instance_id: id,
        status,
    })
}

/// Refuses a start (trigger, run, rerun, retry) by a scoped caller that would start work outside
/// its dirs: through a `<sub-workflow>` node (at any depth), or, for a blood trigger, as a
/// downstream workflow. The message names only what the caller can see.
pub(crate) async fn check_reach(
    state: &AppState,
    caller: &Caller,
    root: &str,
    blood: bool,
) -> ApiResult<()> {
    let Some(scope) = caller.dir.as_deref() else {
        return Ok(());
    };
    let store = &state.engine.store;
    let all: HashMap<String, WorkflowRow> = store
        .workflow_list()
        .await?
        .into_iter()
        .map(|w| (w.name.clone(), w))
        .collect();
    let mut queue = vec![(root.to_string(), String::new())];
    let mut seen = std::collections::HashSet::new();
    while let Some((name, via)) = queue.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(w) = all.get(&name) else { continue };
        if !caller.sees(&w.dir) {
            return Err(ApiError::forbidden(format!(
                "`{root}` would start a workflow outside the token's scope {scope} {via}: ask a \
                 token that covers both dirs"
            )));
        }
        let def = state.engine.definition(&w.name, w.version).await?;
        for (node, target) in def.sub_workflows() {
            queue.push((
                target.to_string(),
                format!("through <sub-workflow> node `{node}` of `{name}`"),
            ));
        }
        if blood {
            for d in store.coordinator_downstream(&name).await? {
                queue.push((d, format!("as a downstream of `{name}` (blood trigger)")));
            }
        }
    }
    Ok(())
}

/// Trigger a workflow with its coordinator's parameters (its success propagates downstream)
#[utoipa::path(post, path = "/api/v1/workflows/{name}/trigger", tag = "workflows",
    params(("name" = String, Path)), request_body(content = Option<TriggerRequest>),
    responses((status = 201, body = StartedInstance), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    OptJson(body): OptJson<TriggerRequest>,
) -> ApiResult<(StatusCode, Json<StartedInstance>)> {
    let kind = if body.blood {
        TriggerKind::Blood
    } else {
        TriggerKind::Trigger
    };
    let s = start(&state, &caller, &name, kind, body.params).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Run a workflow with only the given parameters (no propagation downstream)
#[utoipa::path(post, path = "/api/v1/workflows/{name}/run", tag = "workflows",
    params(("name" = String, Path)), request_body(content = Option<RunRequest>),
    responses((status = 201, body = StartedInstance), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn run(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    OptJson(body): OptJson<RunRequest>,
) -> ApiResult<(StatusCode, Json<StartedInstance>)> {
    let s = start_at(
        &state,
        &caller,
        &name,
        TriggerKind::Run,
        body.params,
        body.version,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(s)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FileQuery {
    /// File name shown in diagnostics and stored for new workflows (default `upload.xml`)
    pub file: Option<String>,
}

/// The checks every posted definition passes before anything reads it: a plain file name, and a
/// document within the nesting and element limits (400: a malformed request, not a definition to
/// fix). Shared with the original's `add` and `check`.
pub(crate) fn posted_file(file: Option<&str>, xml: &str) -> ApiResult<String> {
    let name = file_name(file)?;
    let path = std::path::PathBuf::from(format!("upload/{name}"));
    crate::definition::check_document_limits(&path, xml)
        .map_err(|d| ApiError::new(StatusCode::BAD_REQUEST, "document_limits", d.to_string()))?;
    Ok(name)
}

fn file_name(file: Option<&str>) -> ApiResult<String> {
    let name = file.unwrap_or("upload.xml").to_string();
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name)
    } else {
        Err(ApiError::bad_request(format!(
            "bad file name `{name}`: use letters, digits, `.`, `_` and `-` only"
        )))
    }
}

/// Scope check of a posted file: every workflow it adds or replaces lies within the caller's dir,
/// and none starts a workflow outside it through `<sub-workflow>`. Messages name only what the
/// caller may see (never the dir of a workflow outside its scope).
pub(crate) async fn check_scope(
    state: &AppState,
    caller: &Caller,
    prepared: &sync::PreparedUpload,
) -> ApiResult<()> {
    let Some(scope) = caller.dir.as_deref() else {
        return Ok(());
    };
    for w in &prepared.workflows {
        if !caller.sees(&w.dir) {
            return Err(ApiError::forbidden(format!(
                "workflow `{}` (dir {}) is outside the token's scope {scope}",
                w.name, w.dir
            )));
        }
        if w.replaces_dir.as_deref().is_some_and(|d| !caller.sees(d)) {
            return Err(ApiError::forbidden(format!(
                "a workflow named `{}` already exists outside the token's scope {scope}: choose \
                 another name",
                w.name
            )));
        }
    }
    if prepared.workflows.is_empty() {
        return Err(ApiError::forbidden(
            "links are shared by every dir: only an unscoped admin may upload them",
        ));
    }
    let mut dirs = workflow_dirs(state).await?;
    dirs.extend(
        prepared
            .set
            .workflows
            .iter()
            .map(|w| (w.workflow.name.clone(), w.workflow.dir.clone())),
    );
    for w in &prepared.set.workflows {
        for (node, target) in w.workflow.sub_workflows() {
            if dirs.get(target).is_some_and(|d| !caller.sees(d)) {
                return Err(ApiError::forbidden(format!(
                    "<sub-workflow> node `{node}` of `{}` starts a workflow outside the token's \
                     scope {scope}",
                    w.workflow.name
                )));
            }
        }
    }
    Ok(())
}

/// The error answering a failed `prepare_upload`: for an invalid definition, the 422 with only the
/// diagnostics the caller may see.
pub(crate) async fn invalid_for(state: &AppState, caller: &Caller, e: crate::Error) -> ApiError {
    let crate::Error::Invalid(diags) = e else {
        return e.into();
    };
    let mut err = ApiError::invalid(&diags);
    if caller.dir.is_none() {
        return err;
    }
    let shown = match visible_diagnostics(state, caller, &diags).await {
        Ok(shown) => shown,
        Err(e) => return e,
    };
    if let Some(first) = shown.iter().find(|d| d.severity == "error") {
        err.message = format!(
            "the definition has errors: {}:{}:{}: {}",
            first.file, first.line, first.col, first.message
        );
    }
    err.details = Some(serde_json::to_value(&shown).expect("diagnostics serialise"));
    err
}

/// Diagnostics a scoped caller may see: none about the stored files of workflows outside its
/// scope (their names and dirs are not its business), with a count of what was left out.
pub(crate) async fn visible_diagnostics(
    state: &AppState,
    caller: &Caller,
    diags: &[crate::definition::Diagnostic],
) -> ApiResult<Vec<DiagnosticView>> {
    if caller.dir.is_none() {
        return Ok(diags.iter().map(DiagnosticView::from).collect());
    }
    let hidden: std::collections::HashSet<std::path::PathBuf> = state
        .engine
        .store
        .workflow_list()
        .await?
        .into_iter()
        .filter(|w| !caller.sees(&w.dir))
        .map(|w| std::path::PathBuf::from(w.file_path))
        .collect();
    let (shown, left): (Vec<_>, Vec<_>) = diags.iter().partition(|d| !hidden.contains(&d.file));
    let mut out: Vec<DiagnosticView> = shown.into_iter().map(DiagnosticView::from).collect();
    if !left.is_empty() {
        out.push(DiagnosticView {
            severity: "error".into(),
            file: "-".into(),
            line: 0,
            col: 0,
            element: "scope".into(),
            message: format!(
                "{} problem(s) in stored definitions outside your scope; an unscoped admin can see them",
                left.len()
            ),
        });
    }
    Ok(out)
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ValidateResponse {
    pub valid: bool,
    pub diagnostics: Vec<DiagnosticView>,
    pub workflows: Vec<UploadedWorkflow>,
    /// What an upload would change (when valid)
    pub changes: Option<SyncReport>,
}

fn sync_options(state: &AppState, caller: &Caller, dry_run: bool) -> SyncOptions {
    SyncOptions {
        dry_run,
        prune: false,
        prune_under: None,
        actor: caller.actor(),
        default_timezone: state.engine.timezone,
        alert_channels: Some(
            state
                .engine
                .alerts
                .routes
                .iter()
                .map(|r| r.name.clone())
                .collect(),
        ),
        // an upload names its workflow explicitly: it replaces a rollback, and the report says so
        overwrite_rollbacks: true,
    }
}

/// Validate a definition file against the stored definitions (nothing is written)
#[utoipa::path(post, path = "/api/v1/definitions/validate", tag = "definitions", params(FileQuery),
    request_body(content = String, content_type = "application/xml"),
    responses((status = 200, body = ValidateResponse), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub(crate) async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FileQuery>,
    XmlBody(xml): XmlBody,
) -> ApiResult<Json<ValidateResponse>> {
    let name = posted_file(q.file.as_deref(), &xml)?;
    match sync::prepare_upload(&state.engine.store, &name, xml).await {
        Ok(prepared) => {
            check_scope(&state, &caller, &prepared).await?;
            let changes = if caller.can(TokenRole::Admin) {
                Some(
                    sync::sync_set(
                        &state.engine.store,
                        &prepared.set,
                        &sync_options(&state, &caller, true),
                    )
                    .await?,
                )
            } else {
                None
            };
            Ok(Json(ValidateResponse {
                valid: true,
                diagnostics: visible_diagnostics(&state, &caller, &prepared.set.warnings).await?,
                workflows: prepared.workflows,
                changes,
            }))
        }
        Err(crate::Error::Invalid(diags)) => Ok(Json(ValidateResponse {
            valid: false,
            diagnostics: visible_diagnostics(&state, &caller, &diags).await?,
            workflows: vec![],
            changes: None,
        })),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UploadResponse {
    pub report: SyncReport,
    pub workflows: Vec<UploadedWorkflow>,
}

/// Upload a definition file: validated with the stored definitions, then synced in one transaction
#[utoipa::path(post, path = "/api/v1/definitions", tag = "definitions", params(FileQuery),
    request_body(content = String, content_type = "application/xml"),
    responses((status = 200, body = UploadResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, description = "invalid definition; details list each error with line and column", body = ErrorBody)))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<FileQuery>,
    XmlBody(xml): XmlBody,
) -> ApiResult<Json<UploadResponse>> {
    caller.require(TokenRole::Admin)?;
    let file = posted_file(q.file.as_deref(), &xml)?;
    let (report, workflows) = upload_xml(&state, &caller, &file, xml).await?;
    Ok(Json(UploadResponse { report, workflows }))
}

/// Validates, checks scope and syncs one posted file (shared with the legacy `add`).
pub(crate) async fn upload_xml(
    state: &AppState,
    caller: &Caller,
    file: &str,
    xml: String,
) -> ApiResult<(SyncReport, Vec<UploadedWorkflow>)> {
    let prepared = match sync::prepare_upload(&state.engine.store, file, xml).await {
        Ok(p) => p,
        Err(e) => return Err(invalid_for(state, caller, e).await),
    };
    check_scope(state, caller, &prepared).await?;
    let report = sync::sync_set(
        &state.engine.store,
        &prepared.set,
        &sync_options(state, caller, false),
    )
    .await?;
    Ok((report, prepared.workflows))
}
