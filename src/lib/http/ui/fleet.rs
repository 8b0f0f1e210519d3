//! The fleet's pages: the cluster (schedulers, workers and their hosts), the alerts with their
//! deliveries, and the pools with their occupancy.

use axum::extract::State;
use chrono::{Duration, Utc};
use maud::{html, Markup};

use super::pages::{badge, when};
use super::svg;
use super::{page, seg, Nav, UiCaller, UiResult};
use crate::http::api::admin;
use crate::http::AppState;
use crate::store::TokenRole;

fn live_first<T>(mut rows: Vec<T>, stopped: impl Fn(&T) -> bool) -> Vec<T> {
    rows.sort_by_key(|r| stopped(r));
    let live = rows.iter().filter(|r| !stopped(r)).count();
    rows.truncate(live + 10);
    rows
}

fn queue_chips(json: &str) -> Markup {
    let queues: Vec<String> = serde_json::from_str(json).unwrap_or_else(|_| vec![json.to_string()]);
    html! { @for q in &queues { span.chip { (q) } } }
}

/// How far back the cluster page charts the workers' hosts.
const HOST_HOURS: i64 = 6;
/// History rows the cluster page reads at most (six hours of a minute's rows for 55 workers).
const HOST_ROWS: i64 = 20_000;

/// One worker's history rows as chart points (the rows come by worker, then time).
fn host_points(history: &[crate::store::WorkerMetricRow], worker: &str) -> Vec<svg::HostPoint> {
    history
        .iter()
        .filter(|m| m.worker_id == worker)
        .map(|m| svg::HostPoint {
            at: m.sampled_at,
            cpu: m.host.cpu_percent,
            mem: m.host.mem_used_bytes as f64 * 100.0 / m.host.mem_total_bytes.max(1) as f64,
        })
        .collect()
}

pub(crate) async fn cluster(State(state): State<AppState>, UiCaller(caller): UiCaller) -> UiResult {
    let mut c = admin::cluster_status(&state, &caller).await?;
    c.schedulers = live_first(std::mem::take(&mut c.schedulers), |s| s.state == "stopped");
    c.workers = live_first(std::mem::take(&mut c.workers), |w| w.state == "stopped");
    let now = c.now;
    // the charts' rows: one indexed range read, bounded
    let since = now - Duration::hours(HOST_HOURS);
    let history = state
        .engine
        .store
        .worker_metric_list(since, HOST_ROWS)
        .await?;
    let body = html! {
        div.top { div { h1 { "Cluster" } div.sub {
            @if let Some(m) = &c.master { "Master: " b.mono { (m.id) } " on " (m.host) " since " (when(now, m.master_since)) } @else { "No master elected: start " code { "akkaflow scheduler" } }
        } } }
        div.card style="margin-bottom:16px" { h2 { "Schedulers" } div.flush {
            @if c.schedulers.is_empty() { div.empty { "No scheduler has registered." } } @else {
                table { thead { tr { th { "Scheduler" } th { "Host" } th.num { "PID" } th { "State" } th.num { "Epoch" } th { "Started" } th { "Heartbeat" } } }
                    tbody { @for s in &c.schedulers { tr class=(if s.state == "stopped" { "dim" } else { "" }) {
                        td.mono.small { (s.id) } td { (s.host) } td.num { (s.pid) } td { (badge(&s.state)) } td.num { (s.epoch.map(|e| e.to_string()).unwrap_or_default()) }
                        td.small { (when(now, Some(s.started_at))) } td.small { (when(now, Some(s.heartbeat_at))) }
                    } } } }
            }
        } }
        div.card style="margin-bottom:16px" { h2 { "Workers" } div.flush {
            @if c.workers.is_empty() { div.empty { "No worker has registered." } } @else {
                table { thead { tr { th { "Worker" } th { "Host" } th { "State" } th { "Queues" } th { "Slots" } th.num { "CPU" } th.num { "Load 1/5/15" } th { "Memory" } th.num { "Disk free" } th.num { "Heartbeat age" } th { "Started" } } }
                    tbody { @for w in &c.workers { tr class=(if w.state == "stopped" { "dim" } else { "" }) {
                        @let [cpu, load, mem, disk] = w.host_text();
                        td { b { (w.name) } div.mono.small.muted { (w.id) } } td { (w.host) div.small.muted { "pid " (w.pid) } } td { (badge(&w.state)) } td { (queue_chips(&w.queues)) }
                        td { div.bar { i style={"width:" ((w.running_tasks * 100 / w.slots.max(1)).min(100)) "%"} {} } span.small.muted { (w.running_tasks) "/" (w.slots) } }
                        td.num.figs { (cpu) } td.num.figs.small { (load) }
                        td { @if let (Some(u), Some(t)) = (w.mem_used_bytes, w.mem_total_bytes) { div.bar { i style={"width:" ((u.saturating_mul(100) / t.max(1)).clamp(0, 100)) "%;background:#a855f7"} {} } } span.small.muted.figs { (mem) } }
                        td.num.figs { (disk) }
                        td.num.small { @if w.state == "stopped" { "—" } @else { (format!("{:.1}s", w.heartbeat_age_s)) } } td.small { (when(now, Some(w.started_at))) }
                    } } } }
            }
        } }
        @let live: Vec<_> = c.workers.iter().filter(|w| w.state != "stopped").collect();
        @if !live.is_empty() {
            div.card style="margin-bottom:16px" {
                h2 { "Hosts, last " (HOST_HOURS) " hours (UTC)" span.grow {} span.legend { span { i.cpu {} "CPU" } span { i.mem {} "memory" } } }
                div.hosts { @for w in &live {
                    @let points = host_points(&history, &w.id);
                    div { h3 { (w.name) span.muted.small { (w.host) " · " (w.id) } }
                        @if points.is_empty() { div.empty.small { "No history yet: the worker records its host once a minute." } } @else { (svg::host_chart(&points, since, now)) } }
                } }
            }
        }
        div.card { h2 { "Queues" } div.flush {
            @if c.queues.is_empty() { div.empty { "No task is ready or running." } } @else {
                table { thead { tr { th { "Queue" } th.num { "Ready" } th.num { "Running" } } }
                    tbody { @for q in &c.queues { tr { td.mono { (q.queue) } td.num { (q.ready) } td.num { (q.running) } } } } }
            }
        } }
    };
    Ok(page(&caller, Nav::Cluster, "Cluster", body))
}

/// The alert outbox: every mail and channel message, where it stands, and a resend for failed ones.
pub(crate) async fn alerts(State(state): State<AppState>, UiCaller(caller): UiCaller) -> UiResult {
    let rows = crate::http::api::alerts::visible_alerts(&state, &caller, 200).await?;
    let now = Utc::now();
    let op = caller.can(TokenRole::Operator);
    let count = |s: crate::state::AlertStatus| rows.iter().filter(|a| a.status == s).count();
    let body = html! {
        div.top { div { h1 { "Alerts" } div.sub {
            (count(crate::state::AlertStatus::Pending)) " pending · "
            (count(crate::state::AlertStatus::Sent)) " sent · "
            (count(crate::state::AlertStatus::Failed)) " failed (newest 200)"
        } } }
        div.card { div.flush {
            @if rows.is_empty() { div.empty { "No alert yet. Alerts go to the workflow's mail receivers and to each configured " code { "[[alerts.channels]]" } "." } } @else {
                table { thead { tr { th { "Created" } th { "Channel" } th { "Kind" } th { "Workflow" } th { "Subject" } th { "Status" } th.num { "Attempts" } th { "Last error" } th {} } }
                    tbody { @for a in &rows { tr {
                        td.small { (when(now, Some(a.created_at))) }
                        td.mono { (a.channel) }
                        td { (a.kind) }
                        td { @if let Some(w) = &a.workflow { a href={"/ui/workflows/" (w)} { (w) } } }
                        td.small { @if let Some(id) = a.instance_id { a href={"/ui/instances/" (id)} { (a.subject) } } @else { (a.subject) } }
                        td { (badge(a.status.as_str())) }
                        td.num { (a.attempts) }
                        td.small.muted { (a.last_error.as_deref().unwrap_or("")) }
                        td { @if op && a.status == crate::state::AlertStatus::Failed {
                            button.btn data-post={"/api/v1/alerts/" (a.id) "/resend"} data-done="queued again" { "Resend" }
                        } }
                    } } }
                }
            }
        } }
    };
    Ok(page(&caller, Nav::Alerts, "Alerts", body))
}

/// Pools: each one's slots in use now, running and waiting tasks; unscoped operators may change
/// the slots (the same operation as `akkaflow pool set`).
/// Hours of pool occupancy the pools page charts, and the most samples it reads for them.
const POOL_HOURS: i64 = 6;
const POOL_ROWS: i64 = 20_000;

/// One pool's history as chart values: times, slots in use as a percent of the limit then (a
/// pool set to 0 slots is full when anything runs in it), and the most tasks that waited.
fn pool_points(
    history: &[crate::store::PoolSampleRow],
    pool: &str,
) -> (Vec<chrono::DateTime<chrono::Utc>>, Vec<Option<f64>>, i64) {
    let rows: Vec<_> = history.iter().filter(|s| s.pool == pool).collect();
    let at = rows.iter().map(|s| s.sampled_at).collect();
    let used = rows
        .iter()
        .map(|s| {
            Some(match (s.used, s.slots) {
                (0, _) => 0.0,
                (_, 0) => 100.0,
                (u, n) => u as f64 * 100.0 / n as f64,
            })
        })
        .collect();
    let peak_waiting = rows.iter().map(|s| s.waiting).max().unwrap_or(0);
    (at, used, peak_waiting)
}

pub(crate) async fn pools(State(state): State<AppState>, UiCaller(caller): UiCaller) -> UiResult {
    let pools = state.engine.store.pool_list().await?;
    let now = state.engine.store.now().await?;
    let since = now - chrono::Duration::hours(POOL_HOURS);
    let history = if pools.is_empty() {
        Vec::new()
    } else {
        state
            .engine
            .store
            .pool_sample_list(since, POOL_ROWS)
            .await?
    };
    let op = caller.can(TokenRole::Operator) && caller.dir.is_none();
    let full = pools.iter().filter(|p| p.used >= p.slots).count();
    let waiting: i64 = pools.iter().map(|p| p.waiting).sum();
    let body = html! {
        div.top data-refresh="10" { div { h1 { "Pools" } div.sub {
            (pools.len()) " pools · " (full) " full · " (waiting) " tasks waiting for a slot"
        } } }
        div.card { div.flush {
            @if pools.is_empty() { div.empty { "No pool yet. Pools are defined in " code { "pools.xml" } " beside the workflows and loaded by sync." } } @else {
                table #pools { thead { tr { th { "Pool" } th { "Slots in use" } th.num { "Running" } th.num { "Waiting" } th { "Set by" } @if op { th { "Slots" } } } }
                    tbody { @for p in &pools { tr data-pool=(p.name) {
                        td { b { (p.name) } @if !p.description.is_empty() { div.small.muted { (p.description) } } }
                        td { div.bar.pool-bar.full[p.used >= p.slots] { i style={"width:" ((p.used * 100 / p.slots.max(1)).min(100)) "%"} {} }
                            div.small.muted { (p.used) " of " (p.slots) " slots" @if p.slots != p.file_slots { " (pools.xml: " (p.file_slots) ")" } } }
                        td.num { (p.running) }
                        td.num { @if p.waiting > 0 { b { (p.waiting) } } @else { "0" } }
                        td.small.muted { (p.updated_by) }
                        @if op { td.nowrap {
                            button.btn.sm data-post={"/api/v1/pools/" (seg(&p.name)) "/slots"} data-body=(format!(r#"{{"slots":{}}}"#, (p.slots - 1).max(0))) data-done="slots set" disabled[p.slots == 0] { "−1" }
                            " "
                            button.btn.sm data-post={"/api/v1/pools/" (seg(&p.name)) "/slots"} data-body=(format!(r#"{{"slots":{}}}"#, p.slots + 1)) data-done="slots set" { "+1" }
                        } }
                    } } }
                }
            }
        } }
        @if !pools.is_empty() {
            div.card #pool-history style="margin-top:16px" {
                h2 { "Slots in use, last " (POOL_HOURS) " hours (UTC)" }
                div.hosts { @for p in &pools {
                    @let (at, used, peak) = pool_points(&history, &p.name);
                    div data-pool=(p.name) { h3 { (p.name) span.muted.small { (p.slots) " slots · at most " (peak) " waiting" } }
                        @if at.is_empty() { div.empty.small { "No history yet: the master records each pool once a minute." } } @else { (svg::percent_chart("pool", "slots in use", &at, &[("used", &used)], since, now)) } }
                } }
            }
        }
    };
    Ok(page(&caller, Nav::Pools, "Pools", body))
}
