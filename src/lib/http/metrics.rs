//! `GET /metrics`: the whole fleet's state in Prometheus text format, read from the database so
//! any `http` process answers for every scheduler and worker.
//!
//! One scrape runs nine statements: queue depth, workers, schedulers, the definitions rescans, pools, and the four of
//! `Store::metrics_read` (instance counts, pending alerts, the recent attempts, the recent first
//! starts). None reads all of history: the two histograms cover a bounded recent window (the
//! attempts of the newest [`RECENT_TASKS`] tasks, the newest [`RECENT_INSTANCES`] instances), so
//! they are gauges of recent behaviour rather than counters since the start.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::error::ApiResult;
use super::AppState;
use crate::store::metrics::{MetricsSnapshot, RECENT_INSTANCES, RECENT_TASKS};
use crate::store::{PoolRow, QueueDepth, SchedulerRow, TokenRole, WorkerRow};

/// A worker counts as alive while running with a heartbeat younger than this (the default lease).
const ALIVE_WITHIN_S: f64 = 15.0;
const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0,
];
const DELAY_BUCKETS: &[f64] = &[0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];

pub(crate) async fn metrics(State(state): State<AppState>, parts: Parts) -> ApiResult<Response> {
    if !state.metrics_public {
        let mut parts = parts;
        Caller::from_request_parts(&mut parts, &state)
            .await?
            .require(TokenRole::Viewer)?;
    }
    let store = &state.engine.store;
    let body = render(&Scrape {
        queues: store.task_queue_depth().await?,
        workers: store.worker_list().await?,
        schedulers: store.scheduler_list().await?,
        pools: store.pool_list().await?,
        rows: store.metrics_read().await?,
        definitions_errors: store
            .definition_sync_list()
            .await?
            .iter()
            .map(|r| r.error_count)
            .sum(),
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

pub(crate) struct Scrape {
    pub queues: Vec<QueueDepth>,
    pub workers: Vec<WorkerRow>,
    pub schedulers: Vec<SchedulerRow>,
    pub pools: Vec<PoolRow>,
    pub rows: MetricsSnapshot,
    /// Errors of the last rescan of every definitions directory (standalone).
    pub definitions_errors: i64,
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>) -> f64 {
    ((b - a).num_milliseconds() as f64 / 1000.0).max(0.0)
}

fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    buckets: &[f64],
    samples: impl Iterator<Item = (String, f64)>,
) {
    head(out, name, "histogram", help);
    let mut by_workflow: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (wf, v) in samples {
        by_workflow.entry(wf).or_default().push(v);
    }
    for (wf, values) in by_workflow {
        let wf = label(&wf);
        for le in buckets {
            let n = values.iter().filter(|v| **v <= *le).count();
            let _ = writeln!(out, "{name}_bucket{{workflow=\"{wf}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{workflow=\"{wf}\",le=\"+Inf\"}} {}",
            values.len()
        );
        let _ = writeln!(
            out,
            "{name}_sum{{workflow=\"{wf}\"}} {}",
            values.iter().sum::<f64>()
        );
        let _ = writeln!(out, "{name}_count{{workflow=\"{wf}\"}} {}", values.len());
    }
}

pub(crate) fn render(s: &Scrape) -> String {
    let mut out = String::new();
    head(
        &mut out,
        "akkaflow_ready_tasks",
        "gauge",
        "Tasks ready to be claimed now, by queue.",
    );
    for q in &s.queues {
        let _ = writeln!(
            out,
            "akkaflow_ready_tasks{{queue=\"{}\"}} {}",
            label(&q.queue),
            q.ready
        );
    }
    head(
        &mut out,
        "akkaflow_running_tasks",
        "gauge",
        "Tasks running on a worker, by queue.",
    );
    for q in &s.queues {
        let _ = writeln!(
            out,
            "akkaflow_running_tasks{{queue=\"{}\"}} {}",
            label(&q.queue),
            q.running
        );
    }
    head(
        &mut out,
        "akkaflow_workers_alive",
        "gauge",
        &format!("Workers running with a heartbeat younger than {ALIVE_WITHIN_S} s."),
    );
    let alive = s
        .workers
        .iter()
        .filter(|w| w.state == "running" && w.heartbeat_age_s < ALIVE_WITHIN_S)
        .count();
    let _ = writeln!(out, "akkaflow_workers_alive {alive}");
    head(
        &mut out,
        "akkaflow_scheduler_master",
        "gauge",
        "1 for the scheduler that holds the master lock, 0 for standbys.",
    );
    for sc in s.schedulers.iter().filter(|sc| sc.state != "stopped") {
        let master = u8::from(sc.state == "master");
        let _ = writeln!(
            out,
            "akkaflow_scheduler_master{{id=\"{}\"}} {master}",
            label(&sc.id)
        );
    }
    head(
        &mut out,
        "akkaflow_instances_total",
        "gauge",
        "Workflow instances in the database, by workflow and status.",
    );
    for (wf, status, n) in &s.rows.instances {
        let _ = writeln!(
            out,
            "akkaflow_instances_total{{workflow=\"{}\",status=\"{}\"}} {n}",
            label(wf),
            status.as_str()
        );
    }
    histogram(
        &mut out,
        "akkaflow_task_duration_seconds",
        &format!(
            "Duration of finished task attempts of the newest {RECENT_TASKS} tasks, by workflow."
        ),
        DURATION_BUCKETS,
        s.rows
            .attempts
            .iter()
            .map(|(wf, a, b)| (wf.clone(), seconds(*a, *b))),
    );
    histogram(
        &mut out,
        "akkaflow_trigger_delay_seconds",
        &format!("From an instance's slot to its first task started, over the newest {RECENT_INSTANCES} instances, by workflow."),
        DELAY_BUCKETS,
        s.rows.first_starts.iter().map(|(wf, slot, first)| (wf.clone(), seconds(*slot, *first))),
    );
    head(
        &mut out,
        "akkaflow_alerts_pending",
        "gauge",
        "Alerts waiting to be delivered.",
    );
    let _ = writeln!(out, "akkaflow_alerts_pending {}", s.rows.alerts_pending);
    head(
        &mut out,
        "akkaflow_definitions_errors",
        "gauge",
        "Errors of the last rescan of the definitions directories (standalone); while above 0 the last good set runs and nothing else syncs.",
    );
    let _ = writeln!(out, "akkaflow_definitions_errors {}", s.definitions_errors);
    worker_hosts(&mut out, &s.workers);
    for (name, help, value) in [
        (
            "akkaflow_pool_slots",
            "A pool's slots: how many its running tasks may take at once.",
            (|p: &PoolRow| p.slots) as fn(&PoolRow) -> i64,
        ),
        (
            "akkaflow_pool_slots_used",
            "Slots of a pool its running tasks take now.",
            |p: &PoolRow| p.used,
        ),
        (
            "akkaflow_pool_waiting_tasks",
            "Ready tasks of a pool waiting for a slot.",
            |p: &PoolRow| p.waiting,
        ),
    ] {
        head(&mut out, name, "gauge", help);
        for p in &s.pools {
            let _ = writeln!(out, "{name}{{pool=\"{}\"}} {}", label(&p.name), value(p));
        }
    }
    out
}

/// Each live worker's host as its last heartbeat sampled it (from the worker rows the scrape reads
/// anyway: no statement of its own); a figure not sampled yet is left out.
fn worker_hosts(out: &mut String, workers: &[WorkerRow]) {
    type Figure = fn(&WorkerRow) -> Option<f64>;
    let figures: [(&str, &str, Figure); 7] = [
        (
            "akkaflow_worker_cpu_percent",
            "Busy share of the worker host's CPUs between its last two heartbeats, 0 to 100.",
            |w| w.cpu_percent,
        ),
        (
            "akkaflow_worker_load1",
            "The worker host's 1-minute load average.",
            |w| w.load1,
        ),
        (
            "akkaflow_worker_load5",
            "The worker host's 5-minute load average.",
            |w| w.load5,
        ),
        (
            "akkaflow_worker_load15",
            "The worker host's 15-minute load average.",
            |w| w.load15,
        ),
        (
            "akkaflow_worker_memory_used_bytes",
            "Memory in use on the worker host (total less available).",
            |w| w.mem_used_bytes.map(|b| b as f64),
        ),
        (
            "akkaflow_worker_memory_total_bytes",
            "Memory installed on the worker host.",
            |w| w.mem_total_bytes.map(|b| b as f64),
        ),
        (
            "akkaflow_worker_disk_free_bytes",
            "Space free to the worker on the file system of its work directory.",
            |w| w.disk_free_bytes.map(|b| b as f64),
        ),
    ];
    for (name, help, value) in figures {
        head(out, name, "gauge", help);
        for w in workers.iter().filter(|w| w.state != "stopped") {
            if let Some(v) = value(w) {
                let _ = writeln!(out, "{name}{{worker=\"{}\"}} {v}", label(&w.id));
            }
        }
    }
}
