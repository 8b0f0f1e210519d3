//! The pages: dashboard, workflow tree, workflow, instances, instance, cluster.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};

use super::svg::{self, Day};
use super::versions::{history_card, local_time};
use super::{page, seg, Nav, UiCaller, UiResult};
use crate::http::api::runs::{self, InstanceQuery};
use crate::http::api::sees_workflow;
use crate::http::api::workflows::{self as wf_api, WorkflowQuery};
use crate::http::auth::Caller;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::AppState;
use crate::state::{InstanceId, InstanceStatus, TaskStatus, TriggerKind};
use crate::store::{InstanceFilter, InstanceRow, TokenRole};

pub(crate) fn badge(status: &str) -> Markup {
    html! { span class={"badge st-" (status)} { (status) } }
}

fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds();
    let (n, future) = if s < 0 { (-s, true) } else { (s, false) };
    let text = match n {
        0..=59 => format!("{n}s"),
        60..=3599 => format!("{}m", n / 60),
        3600..=86_399 => format!("{}h {}m", n / 3600, n % 3600 / 60),
        _ => format!("{}d", n / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

pub(super) fn when(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => {
            // app.js replaces the title with the time in the viewer's zone
            html! { span.nowrap data-ts=(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) title=(t.format("%Y-%m-%d %H:%M:%S UTC").to_string()) { (ago(now, t)) } }
        }
        None => html! { span.muted { "—" } },
    }
}

fn duration(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> String {
    let Some(s) = start else { return "—".into() };
    let ms = (end.unwrap_or(now) - s).num_milliseconds().max(0);
    let secs = ms / 1000;
    match secs {
        0..=9 => format!("{:.1}s", ms as f64 / 1000.0),
        10..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

fn instance_table(
    rows: &[InstanceRow],
    now: DateTime<Utc>,
    show_workflow: bool,
    empty: &str,
) -> Markup {
    let reasons = rows.iter().any(|i| i.error.is_some());
    html! {
        @if rows.is_empty() { div.empty { (empty) } } @else {
            table {
                thead { tr {
                    th { "#" } @if show_workflow { th { "Workflow" } } th { "Status" } th { "Trigger" }
                    th { "Started" } th { "At" } th.num { "Duration" } @if reasons { th { "Reason" } }
                } }
                tbody {
                    @for i in rows {
                        tr {
                            td { a href={"/ui/instances/" (i.id)} { (i.id) } }
                            @if show_workflow { td { a href={"/ui/workflows/" (seg(&i.workflow))} { (i.workflow) } } }
                            td { (badge(i.status.as_str())) }
                            td.muted { (i.trigger_kind) }
                            td { (when(now, i.started_at.or(Some(i.created_at)))) }
                            td.small.nowrap { (local_time(i.started_at.unwrap_or(i.created_at))) }
                            td.num { (duration(i.started_at, i.ended_at, now)) }
                            @if reasons { td { @if let Some(e) = &i.error { div.err { (e) } } } }
                        }
                    }
                }
            }
        }
    }
}

fn dir_of(caller: &Caller) -> Option<String> {
    caller.dir.clone()
}

pub(crate) async fn dashboard(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
) -> UiResult {
    let store = &state.engine.store;
    let now = store.now().await?;
    let today = now.date_naive();
    let since = (today - Duration::days(13))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let counts = store
        .instance_count_by_day(since, caller.dir.as_deref())
        .await?;
    let mut by_day: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    for c in &counts {
        let e = by_day.entry(c.day.clone()).or_default();
        match c.status {
            InstanceStatus::Succeeded => e[0] += c.count,
            InstanceStatus::Failed => e[1] += c.count,
            InstanceStatus::Killed => e[2] += c.count,
            _ => {}
        }
    }
    let days: Vec<Day> = (0..14)
        .map(|i| {
            let d = today - Duration::days(13 - i);
            let c = by_day
                .get(&d.format("%Y-%m-%d").to_string())
                .copied()
                .unwrap_or_default();
            Day {
                label: d.format("%m-%d").to_string(),
                succeeded: c[0],
                failed: c[1],
                killed: c[2],
            }
        })
        .collect();
    let today_c = days
        .last()
        .map(|d| (d.succeeded, d.failed, d.killed))
        .unwrap_or_default();
    let week: i64 = days
        .iter()
        .rev()
        .take(7)
        .map(|d| d.succeeded + d.failed + d.killed)
        .sum();
    let week_ok: i64 = days.iter().rev().take(7).map(|d| d.succeeded).sum();
    let list = |status, limit| InstanceFilter {
        status: Some(status),
        dir_prefix: dir_of(&caller),
        limit,
        ..Default::default()
    };
    let running = store
        .instance_list(&list(InstanceStatus::Running, 15))
        .await?;
    let failures = store
        .instance_list(&list(InstanceStatus::Failed, 6))
        .await?;
    let mut progress = Vec::with_capacity(running.len());
    for i in &running {
        let tasks = store.task_list(i.id).await?;
        let actions: Vec<_> = tasks
            .iter()
            .filter(|t| !matches!(t.kind.as_str(), "start" | "end" | "fork" | "join" | "kill"))
            .collect();
        let done = actions.iter().filter(|t| t.status.is_terminal()).count();
        progress.push((done, actions.len()));
    }
    let queues = store.task_queue_depth().await?;
    let workers: Vec<_> = store
        .worker_list()
        .await?
        .into_iter()
        .filter(|w| w.state != "stopped")
        .collect();
    let ready: i64 = queues.iter().map(|q| q.ready).sum();
    let busy: i64 = workers.iter().map(|w| w.running_tasks).sum();
    let slots: i64 = workers.iter().map(|w| w.slots).sum();
    let body = html! {
        div.top {
            div data-refresh="15" { h1 { "Dashboard" } div.sub { "Today, " (today.format("%A %e %B %Y")) " (UTC) · refreshes every 15 s" } }
        }
        div.grid.g4 style="margin-bottom:16px" {
            div.card.stat.ok { span.k { "Succeeded today" } span.v #today-succeeded { (today_c.0) } span.hint {
                @if week > 0 { (week_ok * 100 / week) "% success over 7 days" } @else { "no runs in 7 days" } } }
            div.card.stat.bad { span.k { "Failed today" } span.v #today-failed { (today_c.1) } span.hint { a href="/ui/instances?status=failed" { "see failures" } } }
            div.card.stat.warn { span.k { "Killed today" } span.v #today-killed { (today_c.2) } span.hint { "by operators or kill nodes" } }
            div.card.stat.run { span.k { "Running now" } span.v { (running.len()) } span.hint { (ready) " task(s) queued · " (busy) "/" (slots) " slots busy" } }
        }
        div.grid.g32 style="margin-bottom:16px" {
            div.card {
                h2 { "Last 14 days" span.grow {} span.legend {
                    span { i style="background:#22c55e" {} "succeeded" } span { i style="background:#ef4444" {} "failed" } span { i style="background:#f59e0b" {} "killed" } } }
                div.body { (svg::chart(&days)) }
            }
            div.card {
                h2 { "Workers" span.grow {} a.small href="/ui/cluster" { "cluster" } }
                div.flush {
                    @if workers.is_empty() { div.empty { "No worker is running. Start one with " code { "akkaflow worker" } "." } } @else {
                        table { thead { tr { th { "Worker" } th { "Load" } th.num { "Heartbeat" } } }
                            tbody { @for w in &workers {
                                tr { td { b { (w.name) } div.muted.small.mono { (w.host) " · pid " (w.pid) } }
                                     td { div.bar { i style={"width:" ((w.running_tasks * 100 / w.slots.max(1)).min(100)) "%"} {} } div.small.muted { (w.running_tasks) " / " (w.slots) " slots" } }
                                     td.num.small { (format!("{:.1}s", w.heartbeat_age_s)) } }
                            } }
                        }
                    }
                    @if !queues.is_empty() {
                        table style="margin-top:6px" { thead { tr { th { "Queue" } th.num { "Ready" } th.num { "Running" } } }
                            tbody { @for q in &queues { tr { td.mono { (q.queue) } td.num { (q.ready) } td.num { (q.running) } } } } }
                    }
                }
            }
        }
        div.grid.g2 {
            div.card { h2 { "Running instances" span.grow {} a.small href="/ui/instances?status=running" { "all" } }
                div.flush {
                    @if running.is_empty() { div.empty { "Nothing is running." } } @else {
                        table { thead { tr { th { "#" } th { "Workflow" } th { "Progress" } th { "Started" } th.num { "Duration" } } }
                            tbody { @for (i, (done, total)) in running.iter().zip(&progress) { tr {
                                td { a href={"/ui/instances/" (i.id)} { (i.id) } }
                                td { a href={"/ui/instances/" (i.id)} { b { (i.workflow) } } div.small.muted { (i.trigger_kind) } }
                                td { div.bar { i style={"width:" (done * 100 / (*total).max(1)) "%"} {} } div.small.muted { (done) " of " (total) " actions done" } }
                                td.small { (when(now, i.started_at)) }
                                td.num { (duration(i.started_at, None, now)) }
                            } } }
                        }
                    }
                } }
            div.card { h2 { "Recent failures" span.grow {} a.small href="/ui/instances?status=failed" { "all" } }
                div.flush {
                    @if failures.is_empty() { div.empty { "No failures. ✓" } } @else {
                        table { thead { tr { th { "#" } th { "Workflow and reason" } th { "Ended" } } }
                            tbody { @for i in &failures { tr {
                                td { a href={"/ui/instances/" (i.id)} { (i.id) } }
                                td { a href={"/ui/instances/" (i.id)} { b { (i.workflow) } } @if let Some(e) = &i.error { div.err { (e) } } }
                                td.small { (when(now, i.ended_at)) }
                            } } }
                        }
                    }
                } }
        }
    };
    Ok(page(&caller, Nav::Dashboard, "Dashboard", body))
}

pub(crate) async fn workflows(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    ApiQuery(q): ApiQuery<WorkflowQuery>,
) -> UiResult {
    let now = state.engine.store.now().await?;
    let list = wf_api::summaries(&state, &caller, &q).await?;
    let mut by_dir: BTreeMap<String, Vec<&wf_api::WorkflowSummary>> = BTreeMap::new();
    for w in &list {
        by_dir
            .entry(w.dir.trim_end_matches('/').to_string())
            .or_default()
            .push(w);
    }
    let enabled = list.iter().filter(|w| w.enabled).count();
    let rows = tree(&by_dir);
    let body = html! {
        div.top {
            div { h1 { "Workflows" } div.sub { (list.len()) " workflows in " (by_dir.len()) " folders · " (enabled) " enabled" } }
            span.grow {}
            input #wf-filter .filter type="search" placeholder="Filter by name or folder…";
            @if caller.can(TokenRole::Admin) { a.btn.primary #new-workflow href="/ui/editor" { "+ New workflow" } }
        }
        div.card.tree {
            @if list.is_empty() { div.empty { "No workflow yet: " code { "akkaflow sync xmlconfig" } " or upload one with " code { "POST /api/v1/definitions" } "." } } @else {
                table {
                    thead { tr { th { "Workflow" } th { "State" } th { "Schedule" } th { "Next fire" } th { "Last result" } th { "Description" } } }
                    tbody {
                        @for row in &rows {
                            @match row {
                                TreeRow::Dir { depth, label, path } => {
                                    tr.dir data-wf=(path.to_lowercase()) { td colspan="6" style={"padding-left:" (12 + depth * 20) "px"} { span.ico { "▾" } (label) } }
                                }
                                TreeRow::Workflow { depth, w } => {
                                    tr data-wf={(w.name.to_lowercase()) " " (w.dir.to_lowercase())} {
                                        td style={"padding-left:" (12 + depth * 20) "px"} { a href={"/ui/workflows/" (seg(&w.name))} { b { (w.name) } } }
                                        td { (badge(if w.enabled { "on" } else { "off" })) }
                                        td.mono.small { @if let Some(c) = &w.cron { (c) } @else if !w.depends.is_empty() { "after " (w.depends.join(", ")) } @else { span.muted { "manual" } } }
                                        td.small { @if w.enabled { (when(now, w.next_fire_at)) } @else { span.muted { "—" } } }
                                        td { @if let Some(i) = &w.last_instance { a href={"/ui/instances/" (i.id)} { (badge(i.status.as_str())) } " " span.small.muted { (ago(now, i.ended_at.unwrap_or(i.created_at))) } } @else { span.muted.small { "never run" } } }
                                        td.muted.small { (w.description) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&caller, Nav::Workflows, "Workflows", body))
}

enum TreeRow<'a> {
    Dir {
        depth: usize,
        label: String,
        path: String,
    },
    Workflow {
        depth: usize,
        w: &'a wf_api::WorkflowSummary,
    },
}

/// Folder rows (each ancestor once, indented by depth) followed by their workflows.
fn tree<'a>(by_dir: &BTreeMap<String, Vec<&'a wf_api::WorkflowSummary>>) -> Vec<TreeRow<'a>> {
    let mut out = Vec::new();
    let mut open: Vec<String> = Vec::new();
    for (dir, items) in by_dir {
        let segments: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
        let common = open
            .iter()
            .zip(&segments)
            .take_while(|(a, b)| a.as_str() == **b)
            .count();
        open.truncate(common);
        for (depth, seg) in segments.iter().enumerate().skip(common) {
            open.push(seg.to_string());
            out.push(TreeRow::Dir {
                depth,
                label: if depth == 0 {
                    format!("/{seg}")
                } else {
                    seg.to_string()
                },
                path: format!("/{}", open.join("/")),
            });
        }
        if segments.is_empty() {
            out.push(TreeRow::Dir {
                depth: 0,
                label: "/".into(),
                path: "/".into(),
            });
        }
        for w in items {
            out.push(TreeRow::Workflow {
                depth: segments.len().max(1),
                w,
            });
        }
    }
    out
}

pub(crate) async fn workflow(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    ApiPath(name): ApiPath<String>,
) -> UiResult {
    let d = wf_api::detail(&state, &caller, &name).await?;
    let now = state.engine.store.now().await?;
    let w = &d.workflow;
    let op = caller.can(TokenRole::Operator);
    let name_enc = seg(&w.name);
    // run-time parameters and the coordinator's, as written (overrides win over both)
    let mut overridable: Vec<(String, String)> = d
        .params
        .iter()
        .map(|p| (p.name.clone(), p.default.clone().unwrap_or_default()))
        .collect();
    if let Some(c) = &d.coordinator {
        let listed: Vec<serde_json::Value> = serde_json::from_str(&c.params).unwrap_or_default();
        for p in listed {
            if let (Some(n), v) = (p["name"].as_str(), p["value"].as_str().unwrap_or("")) {
                if !overridable.iter().any(|(m, _)| m == n) {
                    overridable.push((n.to_string(), v.to_string()));
                }
            }
        }
    }
    // the run grid: the newest runs (oldest on the left) × the action nodes, each cell a task's state
    let grid_runs: Vec<&InstanceRow> = d.recent_instances.iter().take(15).rev().collect();
    let mut grid: BTreeMap<(i64, String), String> = BTreeMap::new();
    for inst in &grid_runs {
        for t in state.engine.store.task_list(inst.id).await? {
            grid.insert((inst.id.0, t.node), t.status.as_str().to_string());
        }
    }
    let backfills = super::backfill::card(
        &state,
        &caller,
        &w.name,
        d.coordinator
            .as_ref()
            .filter(|c| c.cron.is_some())
            .map(|c| c.timezone.as_str()),
        &name_enc,
    )
    .await?;
    let grid_nodes: Vec<&str> = d
        .nodes
        .iter()
        .filter(|n| !svg::is_control(&n.kind))
        .map(|n| n.name.as_str())
        .collect();
    let history = history_card(&state, &caller, &w.name).await?;
    let body = html! {
        div.crumb { a href="/ui/workflows" { "Workflows" } " / " (w.dir) }
        div.top {
            div { h1 { (w.name) " " (badge(if w.enabled { "on" } else { "off" })) } div.sub { (w.description) } }
            span.grow {}
            @if op {
                div.actions {
                    @if caller.can(TokenRole::Admin) { a.btn #edit-workflow href={"/ui/editor/" (name_enc)} { "✎ Edit" } }
                    button.btn.primary data-post={"/api/v1/workflows/" (name_enc) "/trigger"} data-go="1" { "▶ Trigger" }
                    button.btn data-post={"/api/v1/workflows/" (name_enc) "/run"} data-go="1" { "Run" }
                    @if w.enabled { button.btn.danger data-post={"/api/v1/workflows/" (name_enc) "/disable"} data-confirm="Disable?" { "Disable" } }
                    @else { button.btn data-post={"/api/v1/workflows/" (name_enc) "/enable"} { "Enable" } }
                }
            }
        }
        @if op && !overridable.is_empty() {
            div.card style="margin-bottom:16px" { details {
                summary { "Trigger with parameters" }
                form.params data-post={"/api/v1/workflows/" (name_enc) "/trigger"} {
                    @for (p, default) in &overridable {
                        label { span.mono { (p) } input type="text" name=(p) placeholder=(default); }
                    }
                    button.btn.primary type="submit" { "▶ Trigger" }
                    span.small.muted { "Empty fields keep their definition." }
                }
            } }
        }
        div.card style="margin-bottom:16px" { h2 { "Graph" } div.dag { (svg::dag(&d.nodes, &BTreeMap::new())) } }
        (backfills)
        div.grid.g32 {
            div.card { h2 { "Recent instances" } div.flush { (instance_table(&d.recent_instances, now, false, "This workflow has not run yet.")) } }
            div.card { h2 { "Definition" } div.body {
                dl.kv {
                    dt { "Version" } dd { (w.version) " · updated " (ago(now, w.updated_at)) }
                    dt { "Folder" } dd.mono { (w.dir) }
                    dt { "Creator" } dd { (w.creator) }
                    dt { "Limit" } dd { (w.instance_limit) " running at once" }
                    @if let Some(c) = &d.coordinator {
                        dt { "Schedule" } dd.mono { (c.cron.as_deref().unwrap_or("on dependencies")) " " span.muted { (c.timezone) } }
                        dt { "Next fire" } dd { @if c.enabled && w.enabled { (when(now, c.next_fire_at)) } @else { span.muted { "coordinator off" } } }
                        dt { "Last fire" } dd { (when(now, c.last_fire_at)) }
                        dt { "Missed runs" } dd { span.mono { "catchup=" (c.catchup) } @if c.catchup == "all" { " " span.small.muted { "at most " (c.max_catchup) } } }
                        @if let Some(cal) = &c.calendar { dt { "Calendar" } dd { span.mono { (cal) } " " span.small.muted { "fires on its business days only" } } }
                        @if let Some(dl) = &d.deadline { dt { "Deadline" } dd { span.mono { (dl) } " " span.small.muted { "each slot's run must have succeeded by then" } } }
                    } @else { dt { "Schedule" } dd.muted { "manual only" } }
                    @if !d.upstreams.is_empty() {
                        dt { "Upstreams" } dd { @for u in &d.upstreams { div { a href={"/ui/workflows/" (seg(&u.upstream))} { (u.upstream) } " " @if u.satisfied_at.is_some() { (badge("succeeded")) } @else { (badge("waiting")) } } } }
                    }
                    @if !d.downstreams.is_empty() {
                        dt { "Downstreams" } dd { @for x in &d.downstreams { a href={"/ui/workflows/" (seg(x))} { (x) } " " } }
                    }
                    @if !d.params.is_empty() {
                        dt { "Parameters" } dd.mono.small { @for p in &d.params { div { (p.name) @if let Some(v) = &p.default { " = " (v) } } } }
                    }
                    dt { "File" } dd.mono.small { (w.file_path) }
                }
            } }
        }
        @if !grid_runs.is_empty() {
            div.card #run-grid style="margin-top:16px" { h2 { "Run grid" span.grow {} span.small.muted { "the last " (grid_runs.len()) " runs × their tasks" } }
                div.flush style="overflow-x:auto" { table.run-grid {
                    thead { tr { th { "Node" } @for r in &grid_runs { th.cellh title=(r.scheduled_for.format("%Y-%m-%d %H:%M UTC")) { a href={"/ui/instances/" (r.id)} { (r.id) } div { span class={"sq st-" (r.status.as_str())} {} } } } } }
                    tbody { @for n in &grid_nodes { tr {
                        td.mono.small { (n) }
                        @for r in &grid_runs {
                            @let st = grid.get(&(r.id.0, n.to_string())).map(String::as_str).unwrap_or("none");
                            td.cell data-instance=(r.id) data-node=(n) data-state=(st) {
                                a href={"/ui/instances/" (r.id)} title={(n) " in instance " (r.id) ": " (st)} { span class={"sq st-" (st)} {} }
                            }
                        }
                    } } }
                } }
            }
        }
        @if !d.deadline_misses.is_empty() {
            div.card #deadline-misses style="margin-top:16px" { h2 { "Missed deadlines" } div.flush { table {
                thead { tr { th { "Slot" } th { "Deadline" } th { "Why it was late" } th { "Done" } } }
                tbody { @for m in &d.deadline_misses { tr {
                    td.small { (m.scheduled_for.format("%Y-%m-%d %H:%M UTC")) }
                    td.small { (m.deadline_at.format("%Y-%m-%d %H:%M UTC")) }
                    td { @if let Some(i) = m.instance_id { a href={"/ui/instances/" (i)} { (m.reason) } } @else { (m.reason) } }
                    td.nowrap { @if let Some(t) = m.done_at { (badge("succeeded")) " " span.small.muted { "late, " (when(now, Some(t))) } } @else { (badge("late")) } }
                } } }
            } } }
        }
        (history)
        div.card style="margin-top:16px" { details { summary { "Source XML" } pre.src { (d.source_xml) } } }
    };
    Ok(page(&caller, Nav::Workflows, &w.name, body))
}

pub(crate) async fn instances(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    ApiQuery(mut q): ApiQuery<InstanceQuery>,
) -> UiResult {
    let now = state.engine.store.now().await?;
    q.workflow = q.workflow.filter(|w| !w.trim().is_empty());
    let p = runs::page(&state, &caller, &q).await?;
    // the filters as a query string, for the paging links
    let mut kept: Vec<(&str, String)> = Vec::new();
    if let Some(w) = &q.workflow {
        kept.push(("workflow", w.clone()));
    }
    if let Some(s) = q.status {
        kept.push(("status", s.as_str().to_string()));
    }
    if let Some(t) = q.trigger {
        kept.push(("trigger", t.as_str().to_string()));
    }
    for (k, v) in [("since", &q.since), ("until", &q.until), ("dir", &q.dir)] {
        if let Some(v) = v {
            kept.push((k, v.clone()));
        }
    }
    let link = |before: Option<InstanceId>| {
        let mut all = kept.clone();
        if let Some(b) = before {
            all.push(("before_id", b.to_string()));
        }
        let query: Vec<String> = all.iter().map(|(k, v)| format!("{k}={}", seg(v))).collect();
        format!("/ui/instances?{}", query.join("&"))
    };
    let filtered = !kept.is_empty();
    let date = |v: &Option<String>| v.as_deref().map(|d| d.chars().take(10).collect::<String>());
    let body = html! {
        div.top {
            div { h1 { "Instances" } div.sub {
                @if p.total_is_lower_bound { "more than " (p.total) } @else { (p.total) }
                " matching · newest first · times in your zone (hover for UTC)"
            } }
        }
        form.card.filters #instance-filters method="get" action="/ui/instances" {
            label { span { "Workflow" } input type="text" name="workflow" value=[q.workflow.as_deref()] placeholder="any"; }
            label { span { "Status" } select name="status" {
                option value="" { "any" }
                @for s in InstanceStatus::ALL { option value=(s.as_str()) selected[q.status == Some(*s)] { (s.as_str()) } }
            } }
            label { span { "Trigger" } select name="trigger" {
                option value="" { "any" }
                @for t in TriggerKind::ALL { option value=(t.as_str()) selected[q.trigger == Some(*t)] { (t.as_str()) } }
            } }
            label { span { "Created from (UTC)" } input type="date" name="since" value=[date(&q.since)]; }
            label { span { "before (UTC)" } input type="date" name="until" value=[date(&q.until)]; }
            button.btn.primary type="submit" { "Filter" }
            @if filtered { a.btn href="/ui/instances" { "Clear" } }
        }
        div.card { div.flush { (instance_table(&p.instances, now, true, "No instance matches.")) } }
        div.pager style="margin-top:12px" {
            @if q.before_id.is_some() { a.btn href=(link(None)) { "← Newest" } " " }
            @if let Some(next) = p.next_before_id { a.btn #older href=(link(Some(next))) { "Older →" } }
            " " span.small.muted { (p.instances.len()) " shown" }
        }
    };
    Ok(page(&caller, Nav::Instances, "Instances", body))
}

pub(crate) async fn instance(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    ApiPath(id): ApiPath<i64>,
) -> UiResult {
    let d = runs::detail(&state, &caller, id).await?;
    let store = &state.engine.store;
    let now = store.now().await?;
    let i = &d.instance;
    let def = state
        .engine
        .definition(&i.workflow, i.workflow_version)
        .await?;
    let nodes = crate::http::dag::nodes(&def);
    let states: BTreeMap<String, String> = d
        .tasks
        .iter()
        .map(|t| (t.task.node.clone(), t.task.status.as_str().to_string()))
        .collect();
    let op = caller.can(TokenRole::Operator);
    let ended = i.status.is_terminal();
    let wf_visible = sees_workflow(&state, &caller, &i.workflow).await?;
    let params: BTreeMap<String, String> = serde_json::from_str(&i.params).unwrap_or_default();
    let events = store
        .event_list(&crate::store::EventFilter {
            instance_id: Some(i.id),
            after_id: None,
            limit: 500,
        })
        .await?;
    let actions = d.tasks.iter().filter(|t| {
        !matches!(
            t.task.kind.as_str(),
            "start" | "end" | "fork" | "join" | "kill"
        )
    });
    let timeline: Vec<svg::GanttRow> = actions
        .clone()
        .map(|t| {
            let task = &t.task;
            let mut bars: Vec<_> = t
                .attempts
                .iter()
                .filter_map(|a| {
                    let what = format!(
                        "{} attempt {}: {}{}",
                        task.node,
                        a.attempt,
                        a.outcome.as_str(),
                        a.error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    );
                    Some((
                        a.started_at?,
                        a.ended_at,
                        a.outcome.as_str().to_string(),
                        what,
                    ))
                })
                .collect();
            if let (TaskStatus::Running, Some(start)) = (task.status, task.started_at) {
                let what = format!("{} attempt {}: running", task.node, task.attempt);
                bars.push((start, now, "running".to_string(), what));
            }
            svg::GanttRow {
                node: task.node.clone(),
                task_id: task.id.0,
                queued_since: (task.status == TaskStatus::Ready)
                    .then(|| task.run_at.unwrap_or(task.created_at).min(now)),
                bars,
            }
        })
        .collect();
    let body = html! {
        div.crumb { a href="/ui/instances" { "Instances" } " / " @if wf_visible { a href={"/ui/workflows/" (seg(&i.workflow))} { (i.workflow) } } }
        div.top data-instance-live=[(!ended).then_some(i.id.0)] data-status=(i.status.as_str()) {
            div { h1 { "Instance " (i.id) " " (badge(i.status.as_str())) } div.sub { (i.workflow) " v" (i.workflow_version) " · " (i.trigger_kind) " for " (i.scheduled_for.format("%Y-%m-%d %H:%M UTC")) } }
            span.grow {}
            @if op {
                div.actions {
                    @if !ended { button.btn.danger #kill-instance data-post={"/api/v1/instances/" (i.id) "/kill"} data-confirm="Really kill?" { "■ Kill instance" } }
                    @else {
                        @if i.status != InstanceStatus::Succeeded {
                            button.btn.primary data-post={"/api/v1/instances/" (i.id) "/rerun"} data-body=r#"{"recover":true}"# { "↻ Rerun failed part" }
                        }
                        button.btn data-post={"/api/v1/instances/" (i.id) "/rerun"} data-confirm="Rerun all?" { "Rerun from start" }
                    }
                }
            }
        }
        div.card style="margin-bottom:16px" { div.body { dl.kv.facts {
            dt { "Created" } dd { (when(now, Some(i.created_at))) " by " span.mono.small { (i.created_by) } }
            dt { "Started" } dd { (when(now, i.started_at)) }
            dt { "Ended" } dd { (when(now, i.ended_at)) }
            dt { "Duration" } dd { (duration(i.started_at, i.ended_at, now)) }
            @if let Some(p) = i.parent_instance_id { dt { "Parent" } dd { a href={"/ui/instances/" (p)} { "instance " (p) } } }
            @if !params.is_empty() { dt { "Parameters" } dd.mono.small { @for (k, v) in &params { span { (k) "=" (v) " " } } } }
            @if let Some(e) = &i.error { dt { "Reason" } dd.err { (e) } }
            @if let Some(w) = &d.waiting { dt { "Waiting" } dd #waiting { (w) } }
        } } }
        div.card style="margin-bottom:16px" { h2 { "Graph" span.grow {} span.legend {
            span { i style="background:var(--ok-bg);border:1px solid var(--ok)" {} "succeeded" } span { i style="background:var(--run-bg);border:1px solid var(--run)" {} "running" }
            span { i style="background:var(--bad-bg);border:1px solid var(--bad)" {} "failed" } span { i style="background:var(--warn-bg);border:1px solid var(--warn)" {} "killed" }
            span { i style="background:#fff;border:1px solid #cbd5e1" {} "waiting" } span { i style="background:#f8fafc;border:1px dashed #cbd5e1" {} "skipped" } } }
            div.dag { (svg::dag(&nodes, &states)) } }
        div.card #timeline style="margin-bottom:16px" { h2 { "Timeline" span.grow {} span.small.muted { "each attempt from start to end; hover a bar for its outcome" } }
            div.body { (svg::gantt(&timeline, now)) } }
        div.card style="margin-bottom:16px" {
            h2 { "Tasks" }
            div.flush { table #tasks {
                thead { tr { th { "Node" } th { "Kind" } th { "Status" } th.num { "Attempt" } th { "Worker" } th { "Started" } th.num { "Duration" } th.num { "Exit" } th { "Error" } @if op { th {} } } }
                tbody { @for t in actions {
                    @let task = &t.task;
                    tr data-task=(task.id) data-status=(task.status.as_str()) data-node=(task.node) {
                        td { b { (task.node) } div.small.muted { "task " (task.id) } }
                        td.muted { (task.kind) }
                        td.status { (badge(task.status.as_str())) @if task.kill_requested && task.status == TaskStatus::Running { " " span.small.muted { "kill requested" } } }
                        td.num { (task.attempt) "/" (task.max_attempts)
                            // lost attempts (worker gone) are apart from failed ones: not counted in the retries
                            @if task.lost_attempts > 0 { div.small.lost title="attempts lost with their worker; not counted against retry-times" { (task.lost_attempts) " lost" } } }
                        td.mono.small { (task.worker_id.as_deref().unwrap_or("")) }
                        td.small { (when(now, task.started_at)) }
                        td.num { (duration(task.started_at, task.ended_at, now)) }
                        td.num { @if let Some(c) = task.exit_code { (c) } }
                        td { @if let Some(e) = &task.error {
                            // a live task's error is the previous attempt's (or a hand-back's) note
                            @if task.status.is_terminal() { div.err { (e) } } @else { div.small.muted { "last: " (e) } }
                        }
                        @if let Some(w) = &t.waiting { div.small.pool-wait { a href="/ui/pools" { (w) } } } }
                        @if op { td.nowrap {
                            @if matches!(task.status, TaskStatus::Running | TaskStatus::Ready | TaskStatus::Waiting) && !ended {
                                button.btn.sm.danger.kill-task data-post={"/api/v1/tasks/" (task.id) "/kill"} data-confirm="Confirm kill" { "Kill" }
                            }
                            @if matches!(task.status, TaskStatus::Failed | TaskStatus::Killed) && ended {
                                button.btn.sm data-post={"/api/v1/tasks/" (task.id) "/retry"} { "Retry" }
                            }
                        } }
                    }
                    @for a in t.attempts.iter().filter(|_| t.attempts.len() > 1 || task.lost_attempts > 0) {
                        tr.attempts data-outcome=(a.outcome.as_str()) {
                            td {} td.muted { "attempt " (a.attempt) } td { (badge(a.outcome.as_str())) } td {} td.mono { (a.worker_id.as_deref().unwrap_or("")) }
                            td { (when(now, a.started_at)) } td.num { (duration(a.started_at, Some(a.ended_at), now)) }
                            td.num { @if let Some(c) = a.exit_code { (c) } } td { @if let Some(e) = &a.error { div.err { (e) } } } @if op { td {} }
                        }
                    }
                } }
            } }
        }
        div.card #output {
            h2 { "Output" span.grow {}
                @if !ended { span #live.small style="text-transform:none;letter-spacing:0" { span.livedot {} " live" } " " }
                form #log-search data-url={"/api/v1/instances/" (i.id) "/logs"} { input type="search" name="q" placeholder="Search the output" aria-label="search the output"; }
                a.btn.sm #log-download href={"/api/v1/instances/" (i.id) "/logs/download"} download title="the whole output as a text file, each line with its time (UTC)" { "⇩ Download" }
            }
            div #log-found .small.muted style="display:none;padding:8px 16px" {}
            pre #log-results .log style="display:none" {}
            pre #log .log data-follow={"/api/v1/instances/" (i.id) "/logs/follow"} { "waiting for output…" }
        }
        div.card style="margin-top:16px" { details {
            summary { "History (" (events.len()) " events)" }
            div.flush { table {
                thead { tr { th { "When" } th { "Node" } th { "Change" } th { "Message" } th { "By" } } }
                tbody { @for e in &events { tr {
                    td.small { (when(now, Some(e.created_at))) }
                    td.mono.small { (e.node.as_deref().unwrap_or("")) }
                    td.small.nowrap { @if let Some(f) = &e.from_status { (f) " → " } (e.to_status.as_deref().unwrap_or(&e.kind)) }
                    td.small { (e.message) }
                    td.mono.small { (e.actor) }
                } } }
            } }
        } }
    };
    Ok(page(
        &caller,
        Nav::Instances,
        &format!("Instance {}", i.id),
        body,
    ))
}
