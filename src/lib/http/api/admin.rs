//! The cluster and the rest: whoami, workers, schedulers, cluster status, events, links, tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::runs::limit;
use super::visible_instance;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::AppState;
use crate::state::InstanceId;
use crate::store::{
    dir_in_scope, redact_url, DbLinkRow, EventFilter, EventRow, FileLinkRow, QueueDepth,
    SchedulerRow, TokenRole, TokenRow, WorkerRow,
};

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhoAmI {
    pub name: String,
    pub role: TokenRole,
    /// The dir prefix the caller is confined to (`null`: everything)
    pub dir_prefix: Option<String>,
    /// false when the server runs with --no-auth
    pub auth: bool,
}

/// Who the caller is
#[utoipa::path(get, path = "/api/v1/whoami", tag = "cluster",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub(crate) async fn whoami(State(state): State<AppState>, caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        name: caller.name,
        role: caller.role,
        dir_prefix: caller.dir,
        auth: state.auth,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WorkerList {
    pub workers: Vec<WorkerRow>,
}

/// Workers with heartbeat age and running tasks
#[utoipa::path(get, path = "/api/v1/workers", tag = "cluster",
    responses((status = 200, body = WorkerList), (status = 401, body = ErrorBody)))]
pub(crate) async fn workers(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<WorkerList>> {
    Ok(Json(WorkerList {
        workers: state.engine.store.worker_list().await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SchedulerList {
    pub schedulers: Vec<SchedulerRow>,
}

/// Schedulers: the master and its standbys
#[utoipa::path(get, path = "/api/v1/schedulers", tag = "cluster",
    responses((status = 200, body = SchedulerList), (status = 401, body = ErrorBody)))]
pub(crate) async fn schedulers(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<SchedulerList>> {
    Ok(Json(SchedulerList {
        schedulers: state.engine.store.scheduler_list().await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClusterStatus {
    /// The scheduler that holds the master lock now, if any
    pub master: Option<SchedulerRow>,
    pub schedulers: Vec<SchedulerRow>,
    pub workers: Vec<WorkerRow>,
    pub queues: Vec<QueueDepth>,
    /// The database's clock
    pub now: chrono::DateTime<chrono::Utc>,
    /// Definitions directories whose last rescan failed (their last good set keeps running); empty
    /// when all is well. A token confined to a dir gets the counts without the errors.
    pub definitions: Vec<crate::sync::DefinitionsProblem>,
}

pub(crate) async fn cluster_status(state: &AppState, caller: &Caller) -> ApiResult<ClusterStatus> {
    let store = &state.engine.store;
    let schedulers = store.scheduler_list().await?;
    let mut definitions = crate::sync::definition_problems(&**store).await?;
    if caller.dir.is_some() {
        // the messages name files and workflows of every dir
        definitions.iter_mut().for_each(|d| d.errors.clear());
    }
    Ok(ClusterStatus {
        master: schedulers.iter().find(|s| s.state == "master").cloned(),
        schedulers,
        workers: store.worker_list().await?,
        queues: store.task_queue_depth().await?,
        now: store.now().await?,
        definitions,
    })
}

/// Cluster status: master, standbys, workers, queue depth
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster",
    responses((status = 200, body = ClusterStatus), (status = 401, body = ErrorBody)))]
pub(crate) async fn cluster(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ClusterStatus>> {
    Ok(Json(cluster_status(&state, &caller).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventQuery {
    pub instance_id: Option<i64>,
    /// Paging: only events after this id (pass the previous page's `next_after_id`)
    pub after_id: Option<i64>,
    /// 1 to 1000, default 100
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    /// Oldest first
    pub events: Vec<EventRow>,
    pub next_after_id: Option<i64>,
}

/// The audit trail: every state change and operator action, with who and when
#[utoipa::path(get, path = "/api/v1/events", tag = "cluster", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let limit = limit(q.limit, 100, 1000)?;
    if let Some(id) = q.instance_id {
        visible_instance(&state, &caller, id).await?;
    }
    let rows = state
        .engine
        .store
        .event_list(&EventFilter {
            instance_id: q.instance_id.map(InstanceId),
            after_id: q.after_id,
            limit,
        })
        .await?;
    let next_after_id = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    let events = if caller.dir.is_none() {
        rows
    } else {
        // scoped: only events about workflows in scope (cluster-wide ones are not)
        let dirs = super::workflow_dirs(&state).await?;
        rows.into_iter()
            .filter(|e| {
                e.workflow
                    .as_ref()
                    .and_then(|w| dirs.get(w))
                    .is_some_and(|d| caller.sees(d))
            })
            .collect()
    };
    Ok(Json(EventPage {
        events,
        next_after_id,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DbLinkList {
    /// Passwords are never returned; a password inside a URL is masked
    pub links: Vec<DbLinkRow>,
}

/// Database links (never with passwords)
#[utoipa::path(get, path = "/api/v1/links/db", tag = "links",
    responses((status = 200, body = DbLinkList), (status = 401, body = ErrorBody)))]
pub(crate) async fn db_links(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<DbLinkList>> {
    let links = state
        .engine
        .store
        .db_link_list()
        .await?
        .into_iter()
        .map(|mut l| {
            l.url = mask_url(&l.url);
            l
        })
        .collect();
    Ok(Json(DbLinkList { links }))
}

/// A link URL with any password masked: `user:secret@host` forms and `password=` parameters.
pub(crate) fn mask_url(url: &str) -> String {
    let mut out = redact_url(url);
    if let Some((head, query)) = out.clone().split_once('?') {
        let masked: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}?{}", masked.join("&"));
    }
    out
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FileLinkList {
    pub links: Vec<FileLinkRow>,
}

/// File links (never with passwords)
#[utoipa::path(get, path = "/api/v1/links/file", tag = "links",
    responses((status = 200, body = FileLinkList), (status = 401, body = ErrorBody)))]
pub(crate) async fn file_links(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<FileLinkList>> {
    Ok(Json(FileLinkList {
        links: state.engine.store.file_link_list().await?,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenList {
    pub tokens: Vec<TokenRow>,
}

/// A token is manageable by an admin whose scope contains the token's scope.
fn manages(caller: &Caller, t: &TokenRow) -> bool {
    match (&caller.dir, &t.dir_prefix) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some(d)) => caller.sees(d),
    }
}

/// API tokens (admin; never their secrets)
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = TokenList), (status = 403, body = ErrorBody)))]
pub(crate) async fn tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<TokenList>> {
    caller.require(TokenRole::Admin)?;
    let tokens = state
        .engine
        .store
        .token_list()
        .await?
        .into_iter()
        .filter(|t| manages(&caller, t))
        .collect();
    Ok(Json(TokenList { tokens }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenCreate {
    pub name: String,
    pub role: TokenRole,
    /// Confine the token to this dir prefix (a scoped admin may only create tokens inside its own)
    #[serde(default)]
    pub dir: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenCreated {
    pub token: TokenRow,
    /// Shown only this once; send it as `Authorization: Bearer <secret>`
    pub secret: String,
}

/// Create a token (admin)
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenCreate,
    responses((status = 201, body = TokenCreated), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn token_create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TokenCreate>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    caller.require(TokenRole::Admin)?;
    let dir = body.dir.clone().or_else(|| caller.dir.clone());
    if let Some(scope) = &caller.dir {
        if !dir.as_deref().is_some_and(|d| dir_in_scope(d, Some(scope))) {
            return Err(ApiError::forbidden(format!(
                "a token created by `{}` must lie within its scope {scope}",
                caller.name
            )));
        }
    }
    if let Err(e) = crate::token::check_name(&body.name) {
        return Err(ApiError::bad_request(e.to_string()));
    }
    if let Some(Err(e)) = dir.as_deref().map(crate::token::check_dir) {
        return Err(ApiError::bad_request(e.to_string()));
    }
    let created = crate::token::create(
        &state.engine.store,
        &body.name,
        body.role,
        dir.as_deref(),
        &caller.actor(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token: created.token,
            secret: created.secret,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenRevoked {
    pub revoked: String,
}

/// Revoke a token (admin); its UI sessions end with it
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "tokens",
    params(("name" = String, Path)),
    responses((status = 200, body = TokenRevoked), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn token_revoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<TokenRevoked>> {
    caller.require(TokenRole::Admin)?;
    let found = state
        .engine
        .store
        .token_list()
        .await?
        .into_iter()
        .find(|t| t.name == name && t.revoked_at.is_none() && manages(&caller, t));
    if found.is_none() {
        return Err(ApiError::not_found(format!("no live token `{name}`")));
    }
    crate::token::revoke(&state.engine.store, &name, &caller.actor()).await?;
    Ok(Json(TokenRevoked { revoked: name }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_urls_never_show_passwords() {
        for (url, want) in [
            (
                "mysql://etl:s3cret@db:3306/dw",
                "mysql://etl:***@db:3306/dw",
            ),
            (
                "jdbc:mysql://db:3306/dw?user=etl&password=s3cret&ssl=true",
                "jdbc:mysql://db:3306/dw?user=etl&password=***&ssl=true",
            ),
            ("sqlite://demo.db", "sqlite://demo.db"),
        ] {
            assert_eq!(super::mask_url(url), want);
        }
    }
}
