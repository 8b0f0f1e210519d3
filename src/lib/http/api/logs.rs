//! Task output: pages of lines (by cursor) and a live `text/event-stream` that follows an instance
//! or a task until it ends.
//!
//! The cursor is `task-attempt-seq` of the last line seen, the order lines are stored in. The stream
//! reads the end state *before* the lines, so a line written just before the end is never missed,
//! polls every half second while nothing is new, and names each event with its cursor so a
//! reconnecting `EventSource` resumes (`Last-Event-ID`) without duplicates.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::runs::limit;
use super::{visible_instance, visible_task};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::AppState;
use crate::state::{InstanceId, TaskId};
use crate::store::{LogLine, LogQuery, LogStream};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogParams {
    /// Cursor: only lines after it (the previous page's `next`)
    pub after: Option<String>,
    /// 1 to 5000, default 1000
    pub limit: Option<i64>,
    /// Only lines containing this text, ignoring case
    pub q: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct LogLineView {
    pub task_id: TaskId,
    pub node: String,
    pub attempt: i64,
    pub seq: i64,
    pub logged_at: DateTime<Utc>,
    pub stream: LogStream,
    pub line: String,
    /// This line's cursor
    pub cursor: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogPage {
    pub lines: Vec<LogLineView>,
    /// Cursor for the next page (absent when no line was returned)
    pub next: Option<String>,
    /// Whether the instance or task has ended (no more lines will come once the page is short)
    pub ended: bool,
}

fn cursor_of(l: &LogLine) -> String {
    format!("{}-{}-{}", l.task_id, l.attempt, l.seq)
}

fn parse_cursor(s: &str) -> ApiResult<(TaskId, i64, i64)> {
    let parts: Vec<&str> = s.split('-').collect();
    let bad = || ApiError::bad_request(format!("bad log cursor `{s}`: expected TASK-ATTEMPT-SEQ"));
    if parts.len() != 3 {
        return Err(bad());
    }
    let n = |i: usize| parts[i].parse::<i64>().map_err(|_| bad());
    Ok((TaskId(n(0)?), n(1)?, n(2)?))
}

/// What a log request is about: the tasks, their node names, and how to tell it ended.
struct Target {
    names: HashMap<TaskId, String>,
    instance: InstanceId,
    task: Option<TaskId>,
}

impl Target {
    async fn ended(&self, state: &AppState) -> ApiResult<bool> {
        let store = &state.engine.store;
        Ok(match self.task {
            Some(t) => store
                .task_get(t)
                .await?
                .is_none_or(|t| t.status.is_terminal()),
            None => store
                .instance_get(self.instance)
                .await?
                .is_none_or(|i| i.status.is_terminal()),
        })
    }

    fn view(&self, l: LogLine) -> LogLineView {
        LogLineView {
            cursor: cursor_of(&l),
            node: self.names.get(&l.task_id).cloned().unwrap_or_default(),
            task_id: l.task_id,
            attempt: l.attempt,
            seq: l.seq,
            logged_at: l.logged_at,
            stream: l.stream,
            line: l.line,
        }
    }

    async fn read(
        &self,
        state: &AppState,
        after: Option<(TaskId, i64, i64)>,
        limit: i64,
        contains: Option<&str>,
    ) -> ApiResult<Vec<LogLineView>> {
        let lines = state
            .engine
            .store
            .task_log_read(&LogQuery {
                task_ids: self.names.keys().copied().collect(),
                after,
                limit,
                contains: contains.map(str::to_string),
            })
            .await?;
        Ok(lines.into_iter().map(|l| self.view(l)).collect())
    }
}

async fn instance_target(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Target> {
    let inst = visible_instance(state, caller, id).await?;
    let tasks = state.engine.store.task_list(inst.id).await?;
    Ok(Target {
        names: tasks.into_iter().map(|t| (t.id, t.node)).collect(),
        instance: inst.id,
        task: None,
    })
}

async fn task_target(state: &AppState, caller: &Caller, id: i64) -> ApiResult<Target> {
    let (task, inst) = visible_task(state, caller, id).await?;
    Ok(Target {
        names: HashMap::from([(task.id, task.node)]),
        instance: inst.id,
        task: Some(task.id),
    })
}

async fn page(state: &AppState, target: Target, p: &LogParams) -> ApiResult<LogPage> {
    let limit = limit(p.limit, 1000, 5000)?;
    let after = p.after.as_deref().map(parse_cursor).transpose()?;
    let ended = target.ended(state).await?;
    let q = p.q.as_deref().filter(|q| !q.is_empty());
    let lines = target.read(state, after, limit, q).await?;
    Ok(LogPage {
        next: lines.last().map(|l| l.cursor.clone()),
        lines,
        ended,
    })
}

/// Output lines of every task of an instance
#[utoipa::path(get, path = "/api/v1/instances/{id}/logs", tag = "logs",
    params(("id" = i64, Path), LogParams),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn instance_logs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<LogParams>,
) -> ApiResult<Json<LogPage>> {
    let target = instance_target(&state, &caller, id).await?;
    Ok(Json(page(&state, target, &p).await?))
}

/// Output lines of one task
#[utoipa::path(get, path = "/api/v1/tasks/{id}/logs", tag = "logs",
    params(("id" = i64, Path), LogParams),
    responses((status = 200, body = LogPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn task_logs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<LogParams>,
) -> ApiResult<Json<LogPage>> {
    let target = task_target(&state, &caller, id).await?;
    Ok(Json(page(&state, target, &p).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DownloadParams {
    /// Only lines containing this text, ignoring case
    pub q: Option<String>,
}

/// The most lines one download holds; the paged route reads on from there.
const DOWNLOAD_MAX_LINES: usize = 200_000;

/// One line of a downloaded log: `TIME NODE#ATTEMPT STREAM LINE`, the time in UTC (RFC 3339).
fn download_line(l: &LogLineView) -> String {
    format!(
        "{} {}#{} {} {}\n",
        l.logged_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        l.node,
        l.attempt,
        l.stream.as_str(),
        l.line
    )
}

/// An instance's whole output as a text file (`Content-Disposition: attachment`), each line with
/// its time, node, attempt and stream; at most 200,000 lines
#[utoipa::path(get, path = "/api/v1/instances/{id}/logs/download", tag = "logs",
    params(("id" = i64, Path), DownloadParams),
    responses((status = 200, content_type = "text/plain", body = String), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn instance_download(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<DownloadParams>,
) -> ApiResult<axum::response::Response> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let target = instance_target(&state, &caller, id).await?;
    let q = p.q.as_deref().filter(|q| !q.is_empty());
    let mut text = String::new();
    let (mut after, mut count) = (None, 0usize);
    loop {
        let lines = target.read(&state, after, 5000, q).await?;
        let Some(last) = lines.last() else { break };
        after = Some(parse_cursor(&last.cursor)?);
        for l in &lines {
            text.push_str(&download_line(l));
        }
        count += lines.len();
        if count >= DOWNLOAD_MAX_LINES {
            text.push_str(&format!(
                "… stopped after {count} lines: read on with GET /api/v1/instances/{id}/logs?after={}\n",
                last.cursor
            ));
            break;
        }
    }
    let file = format!("attachment; filename=\"instance-{}.log\"", target.instance);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (header::CONTENT_DISPOSITION, file),
        ],
        text,
    )
        .into_response())
}

/// How often a follow stream re-checks its caller's token: a revoked token stops reading within
/// this time.
const RECHECK_EVERY: Duration = Duration::from_secs(2);

struct Follow {
    state: AppState,
    caller: Caller,
    checked_at: std::time::Instant,
    target: Target,
    after: Option<(TaskId, i64, i64)>,
    pending: std::collections::VecDeque<LogLineView>,
    /// Everything up to the end has been read: send `end` once `pending` is empty.
    end_next: bool,
    finished: bool,
    first: bool,
}

fn error_event(message: &str) -> Event {
    Event::default().event("error").data(message)
}

fn follow_stream(f: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(f, |mut f| async move {
        loop {
            if let Some(line) = f.pending.pop_front() {
                let ev = Event::default()
                    .event("line")
                    .id(line.cursor.clone())
                    .json_data(&line)
                    .expect("log lines serialise");
                return Some((Ok(ev), f));
            }
            if f.finished || f.state.stop.is_cancelled() {
                return None;
            }
            if f.end_next {
                f.finished = true;
                return Some((Ok(Event::default().event("end").data("ended")), f));
            }
            if !f.first {
                tokio::select! {
                    _ = f.state.stop.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            f.first = false;
            if f.checked_at.elapsed() >= RECHECK_EVERY {
                f.checked_at = std::time::Instant::now();
                match crate::http::auth::still_valid(&f.state, &f.caller).await {
                    Ok(true) => {}
                    Ok(false) => {
                        f.finished = true;
                        let gone = "the token of this stream was revoked (or its session ended)";
                        return Some((Ok(error_event(gone)), f));
                    }
                    Err(e) => {
                        f.finished = true;
                        return Some((Ok(error_event(&e.message)), f));
                    }
                }
            }
            // the end state first, then the lines: nothing written before the end is missed
            let ended = match f.target.ended(&f.state).await {
                Ok(e) => e,
                Err(e) => {
                    f.finished = true;
                    return Some((Ok(error_event(&e.message)), f));
                }
            };
            match f.target.read(&f.state, f.after, 500, None).await {
                Ok(lines) => {
                    if let Some(last) = lines.last() {
                        f.after = parse_cursor(&last.cursor).ok();
                    }
                    f.end_next = ended && lines.len() < 500;
                    f.pending.extend(lines);
                }
                Err(e) => {
                    f.finished = true;
                    return Some((Ok(error_event(&e.message)), f));
                }
            }
        }
    })
}

fn resume_point(headers: &HeaderMap, p: &LogParams) -> ApiResult<Option<(TaskId, i64, i64)>> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty());
    last.or(p.after.as_deref()).map(parse_cursor).transpose()
}

type SseResponse = Sse<
    axum::response::sse::KeepAliveStream<
        futures_util::stream::BoxStream<'static, Result<Event, Infallible>>,
    >,
>;

fn sse(
    state: AppState,
    caller: Caller,
    target: Target,
    after: Option<(TaskId, i64, i64)>,
) -> SseResponse {
    let f = Follow {
        state,
        caller,
        checked_at: std::time::Instant::now(),
        target,
        after,
        pending: Default::default(),
        end_next: false,
        finished: false,
        first: true,
    };
    Sse::new(Box::pin(follow_stream(f)) as futures_util::stream::BoxStream<'static, _>)
        .keep_alive(KeepAlive::default())
}

/// Follow an instance's output live (`text/event-stream`: `line` events, then `end`)
#[utoipa::path(get, path = "/api/v1/instances/{id}/logs/follow", tag = "logs",
    params(("id" = i64, Path), LogParams),
    responses((status = 200, content_type = "text/event-stream", description = "`line` events with a LogLineView as data, then one `end`"),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn instance_follow(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<LogParams>,
) -> ApiResult<SseResponse> {
    let target = instance_target(&state, &caller, id).await?;
    let after = resume_point(&headers, &p)?;
    Ok(sse(state, caller, target, after))
}

/// Follow one task's output live (`text/event-stream`)
#[utoipa::path(get, path = "/api/v1/tasks/{id}/logs/follow", tag = "logs",
    params(("id" = i64, Path), LogParams),
    responses((status = 200, content_type = "text/event-stream", description = "`line` events, then one `end`"),
        (status = 404, body = ErrorBody)))]
pub(crate) async fn task_follow(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(p): ApiQuery<LogParams>,
) -> ApiResult<SseResponse> {
    let target = task_target(&state, &caller, id).await?;
    let after = resume_point(&headers, &p)?;
    Ok(sse(state, caller, target, after))
}
