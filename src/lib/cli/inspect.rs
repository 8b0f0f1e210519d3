//! Commands that only read: validate, workflow list/info, instance list/info, logs, status.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{connect, fmt_duration, fmt_time, print_json, table};
use crate::config::Config;
use crate::definition::{self, NodeKind, Severity};
use crate::error::{Error, Result};
use crate::state::{AttemptOutcome, InstanceId, InstanceStatus, TaskId};
use crate::store::{CoordinatorRow, InstanceFilter, LogLine, LogQuery, LogStream};

pub(super) async fn validate(mut paths: Vec<PathBuf>, json: bool) -> Result<i32> {
    let links = definition::nearby_link_files(&paths);
    if !json {
        for l in &links {
            eprintln!("using links from {}", l.display());
        }
    }
    paths.extend(links);
    let loaded = tokio::task::spawn_blocking(move || definition::load_paths(&paths))
        .await
        .map_err(|e| Error::Config(format!("definition loader crashed: {e}")))?;
    let (diags, ok, workflows) = match &loaded {
        Ok(set) => (set.warnings.clone(), true, set.workflows.len()),
        Err(diags) => (diags.clone(), false, 0),
    };
    if json {
        let list: Vec<_> = diags
            .iter()
            .map(|d| {
                json!({
                    "severity": if d.severity == Severity::Error { "error" } else { "warning" },
                    "file": d.file, "line": d.line, "col": d.col, "element": d.element, "message": d.message,
                })
            })
            .collect();
        print_json(&json!({ "valid": ok, "workflows": workflows, "diagnostics": list }));
    } else {
        for d in &diags {
            eprintln!("{d}");
        }
        let errors = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        if ok {
            println!("ok: {workflows} workflow(s), {} warning(s)", diags.len());
        } else {
            println!(
                "invalid: {errors} error(s), {} warning(s)",
                diags.len() - errors
            );
        }
    }
    Ok(if ok { 0 } else { 1 })
}

pub(super) async fn upgrade(src: PathBuf, out: PathBuf, json: bool) -> Result<i32> {
    let (src2, out2) = (src.clone(), out.clone());
    let report = tokio::task::spawn_blocking(move || definition::upgrade::upgrade(&src2, &out2))
        .await
        .map_err(|e| Error::Config(format!("upgrade crashed: {e}")))?
        .map_err(|e| match e {
            definition::upgrade::UpgradeError::Refused(m) => Error::refused(m),
            definition::upgrade::UpgradeError::Io { context, source } => {
                Error::Io { context, source }
            }
        })?;
    let code = if report.manual.is_empty() { 0 } else { 1 };
    if json {
        print_json(&report);
        return Ok(code);
    }
    let converted: std::collections::BTreeSet<_> = report
        .changes
        .iter()
        .map(|n| &n.file)
        .chain(report.folded.iter().map(|(_, w)| w))
        .collect();
    println!(
        "{} → {}: {} file(s) written ({} converted), {} coordinator file(s) folded into their workflows, {} db link(s) added, {} place(s) to fix by hand",
        src.display(),
        out.display(),
        report.written.len(),
        converted.len(),
        report.folded.len(),
        report.links.len(),
        report.manual.len()
    );
    if !report.changes.is_empty() {
        println!("\nconverted:");
        for n in &report.changes {
            println!("  {n}");
        }
    }
    if !report.folded.is_empty() {
        println!("\nfolded:");
        for (c, w) in &report.folded {
            println!("  {} → {}", c.display(), w.display());
        }
    }
    if !report.links.is_empty() {
        println!(
            "\ndb links added to {} (with their passwords; keep that file private):",
            out.join("db_links.xml").display()
        );
        for l in &report.links {
            println!(
                "  {} ({}, user `{}`), used {} time(s)",
                l.name, l.kind, l.username, l.uses
            );
        }
    }
    if !report.warnings.is_empty() {
        println!("\nwarnings (accepted as they are):");
        for n in &report.warnings {
            println!("  {n}");
        }
    }
    if !report.manual.is_empty() {
        println!(
            "\nnot converted, not written (fix these by hand in the source and run upgrade again):"
        );
        for n in &report.manual {
            println!("  {n}");
        }
    }
    println!("\nnext: akkaflow validate {}", out.display());
    Ok(code)
}

pub(super) async fn workflow_list(cfg: &Config, json: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let rows = store.workflow_list().await?;
    if json {
        print_json(&rows);
        return Ok(0);
    }
    let coordinators: std::collections::HashMap<String, CoordinatorRow> = store
        .coordinator_list()
        .await?
        .into_iter()
        .map(|c| (c.workflow.clone(), c))
        .collect();
    let mut t = table(&[
        "NAME",
        "DIR",
        "VERSION",
        "ENABLED",
        "TRIGGER",
        "NEXT FIRE (UTC)",
        "DESCRIPTION",
    ]);
    for w in &rows {
        let c = coordinators.get(&w.name);
        let (trigger, next) = schedule(w.enabled, c);
        t.add_row(vec![
            w.name.clone(),
            w.dir.clone(),
            w.version.to_string(),
            if w.enabled { "yes" } else { "no" }.to_string(),
            trigger,
            next,
            w.description.clone(),
        ]);
    }
    println!("{t}");
    Ok(0)
}

/// What `workflow list` says fires a workflow, and when next: a disabled coordinator, or none at
/// all, never shows a cron or a next fire time as if it would fire.
fn schedule(workflow_enabled: bool, c: Option<&CoordinatorRow>) -> (String, String) {
    let Some(c) = c else {
        return ("manual only (no coordinator)".into(), "-".into());
    };
    let depends: Vec<String> = serde_json::from_str(&c.depends).unwrap_or_default();
    let mut what = Vec::new();
    if let Some(cron) = &c.cron {
        what.push(format!("cron {cron}"));
    }
    if !depends.is_empty() {
        what.push(format!("after {}", depends.join(", ")));
    }
    let what = if what.is_empty() {
        "manual only".to_string()
    } else {
        what.join(" + ")
    };
    if !c.enabled {
        return (format!("off: coordinator disabled ({what})"), "-".into());
    }
    if !workflow_enabled {
        return (format!("off: workflow disabled ({what})"), "-".into());
    }
    (what, fmt_time(c.next_fire_at))
}

pub(super) async fn workflow_info(cfg: &Config, name: &str, json: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let w = store
        .workflow_get(name)
        .await?
        .ok_or_else(|| Error::refused(format!("unknown workflow `{name}`")))?;
    let def: definition::Workflow = serde_json::from_str(&w.definition)
        .map_err(|e| Error::Config(format!("stored definition of `{name}` unreadable: {e}")))?;
    let coordinator = store.coordinator_get(name).await?;
    let upstreams = store.coordinator_depend_list(name).await?;
    let downstreams = store.coordinator_downstream(name).await?;
    let deadline = def.coordinator.as_ref().and_then(|c| c.deadline);
    let misses = store.deadline_miss_list(Some(name), 10).await?;
    if json {
        print_json(&json!({
            "workflow": w, "nodes": def.nodes, "coordinator": coordinator,
            "upstreams": upstreams, "downstreams": downstreams,
            "deadline": deadline.map(|d| d.to_string()), "deadline_misses": misses,
        }));
        return Ok(0);
    }
    println!(
        "workflow   {} (version {}, {})",
        w.name,
        w.version,
        if w.enabled { "enabled" } else { "disabled" }
    );
    println!("dir        {}", w.dir);
    println!("creator    {}", w.creator);
    println!("file       {}", w.file_path);
    println!("limit      {} running instance(s)", w.instance_limit);
    if !w.description.is_empty() {
        println!("about      {}", w.description);
    }
    match &coordinator {
        Some(c) => {
            println!(
                "coordinator {} cron={} tz={} next={} last={}",
                if c.enabled { "enabled" } else { "disabled" },
                c.cron.as_deref().unwrap_or("-"),
                c.timezone,
                fmt_time(c.next_fire_at),
                fmt_time(c.last_fire_at)
            );
            println!(
                "missed     catchup={} max-catchup={} calendar={}",
                c.catchup,
                c.max_catchup,
                c.calendar.as_deref().unwrap_or("-")
            );
        }
        None => println!("coordinator none (manual only)"),
    }
    for u in &upstreams {
        let state = match u.satisfied_at {
            Some(t) => format!("succeeded at {}", fmt_time(Some(t))),
            None => "waiting".into(),
        };
        println!("upstream   {} ({state})", u.upstream);
    }
    for d in &downstreams {
        println!("downstream {d}");
    }
    if let Some(d) = deadline {
        println!("deadline   {d} (each cron slot's run must have succeeded by then)");
    }
    for m in &misses {
        let done = match m.done_at {
            Some(t) => format!("done late at {}", fmt_time(Some(t))),
            None => "not done".into(),
        };
        println!(
            "missed     slot {} (deadline {}), {done}: {}",
            fmt_time(Some(m.scheduled_for)),
            fmt_time(Some(m.deadline_at)),
            m.reason
        );
    }
    let mut t = table(&["NODE", "KIND", "NEXT"]);
    for n in &def.nodes {
        let next = match &n.kind {
            NodeKind::Action(a) => match &a.error {
                Some(e) => format!("ok→{} error→{e}", a.ok),
                None => format!("ok→{}", a.ok),
            },
            other => other.successors().join(", "),
        };
        t.add_row(vec![n.name.clone(), n.kind.kind_name().to_string(), next]);
    }
    println!("\n{t}");
    Ok(0)
}

pub(super) async fn instance_list(
    cfg: &Config,
    workflow: Option<String>,
    status: Option<InstanceStatus>,
    since: Option<DateTime<Utc>>,
    limit: i64,
    json: bool,
) -> Result<i32> {
    let store = connect(cfg).await?;
    let rows = store
        .instance_list(&InstanceFilter {
            workflow,
            status,
            since,
            before_id: None,
            dir_prefix: None,
            limit,
        })
        .await?;
    if json {
        print_json(&rows);
        return Ok(0);
    }
    let mut t = table(&[
        "ID",
        "WORKFLOW",
        "STATUS",
        "TRIGGER",
        "SCHEDULED (UTC)",
        "STARTED",
        "DURATION",
        "ERROR",
    ]);
    for i in &rows {
        t.add_row(vec![
            i.id.to_string(),
            i.workflow.clone(),
            i.status.to_string(),
            i.trigger_kind.to_string(),
            fmt_time(Some(i.scheduled_for)),
            fmt_time(i.started_at),
            fmt_duration(i.started_at, i.ended_at),
            i.error.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(0)
}

pub(super) async fn instance_info(cfg: &Config, id: InstanceId, json: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let inst = store
        .instance_get(id)
        .await?
        .ok_or_else(|| Error::refused(format!("no instance {id}")))?;
    let tasks = store.task_list(id).await?;
    let attempts = store.task_attempt_list(id).await?;
    // why ready tasks wait for their pool (read only when one does)
    let pools = if tasks
        .iter()
        .any(|t| t.status == crate::state::TaskStatus::Ready && !t.pool.is_empty())
    {
        store.pool_list().await?
    } else {
        vec![]
    };
    let waiting: Vec<(TaskId, String)> = tasks
        .iter()
        .filter_map(|t| crate::engine::pool::pool_wait_reason(t, &pools).map(|r| (t.id, r)))
        .collect();
    if json {
        let waiting: serde_json::Map<String, serde_json::Value> = waiting
            .iter()
            .map(|(id, r)| (id.to_string(), json!(r)))
            .collect();
        print_json(
            &json!({ "instance": inst, "tasks": tasks, "attempts": attempts, "waiting": waiting }),
        );
        return Ok(0);
    }
    println!(
        "instance   {} of {} (version {})",
        inst.id, inst.workflow, inst.workflow_version
    );
    println!("status     {}", inst.status);
    println!(
        "trigger    {} for {} UTC",
        inst.trigger_kind,
        fmt_time(Some(inst.scheduled_for))
    );
    println!("params     {}", inst.params);
    println!(
        "started    {}  ended {}  ({})",
        fmt_time(inst.started_at),
        fmt_time(inst.ended_at),
        fmt_duration(inst.started_at, inst.ended_at)
    );
    if let Some(e) = &inst.error {
        println!("reason     {e}");
    }
    if inst.status == InstanceStatus::Pending {
        println!(
            "waiting    {}",
            crate::engine::why::pending(&*store, &inst).await?
        );
    }
    let mut t = table(&[
        "TASK", "NODE", "KIND", "STATUS", "ATTEMPT", "WORKER", "DURATION", "ERROR",
    ]);
    for task in tasks
        .iter()
        .filter(|t| !matches!(t.kind.as_str(), "start" | "fork" | "join"))
    {
        t.add_row(vec![
            task.id.to_string(),
            task.node.clone(),
            task.kind.clone(),
            task.status.to_string(),
            // lost attempts (worker gone) are apart from failed ones: they spend no retry
            if task.lost_attempts > 0 {
                format!(
                    "{}/{} ({} lost)",
                    task.attempt, task.max_attempts, task.lost_attempts
                )
            } else {
                format!("{}/{}", task.attempt, task.max_attempts)
            },
            task.worker_id.clone().unwrap_or_default(),
            fmt_duration(task.started_at, task.ended_at),
            // a task that will run again keeps its last attempt's error in the row; that error
            // belongs to the attempt (listed below), not to the task as it is now
            if task.status.is_terminal() {
                task.error.clone().unwrap_or_default()
            } else if let Some((_, why)) = waiting.iter().find(|(id, _)| *id == task.id) {
                why.clone()
            } else {
                String::new()
            },
        ]);
    }
    println!("\n{t}");
    if !attempts.is_empty() {
        let mut a = table(&[
            "TASK", "ATTEMPT", "OUTCOME", "EXIT", "WORKER", "DURATION", "ERROR",
        ]);
        for at in &attempts {
            a.add_row(vec![
                at.task_id.to_string(),
                at.attempt.to_string(),
                at.outcome.to_string(),
                at.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                at.worker_id.clone().unwrap_or_default(),
                fmt_duration(at.started_at, Some(at.ended_at)),
                at.error.clone().unwrap_or_default(),
            ]);
        }
        let count = |o: AttemptOutcome| attempts.iter().filter(|a| a.outcome == o).count();
        let (failed, lost) = (
            count(AttemptOutcome::Failed) + count(AttemptOutcome::TimedOut),
            count(AttemptOutcome::Lost),
        );
        if failed + lost > 0 {
            println!(
                "\nattempts: {failed} failed, {lost} lost with their worker (lost ones spend no retry)\n{a}"
            );
        } else {
            println!("\nattempts\n{a}");
        }
    }
    Ok(0)
}

pub(super) async fn logs(cfg: &Config, id: i64, is_task: bool, follow: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let (instance_id, tasks) = if is_task {
        let t = store
            .task_get(TaskId(id))
            .await?
            .ok_or_else(|| Error::refused(format!("no task {id}")))?;
        (t.instance_id, vec![t])
    } else {
        let iid = InstanceId(id);
        store
            .instance_get(iid)
            .await?
            .ok_or_else(|| Error::refused(format!("no instance {id}")))?;
        (iid, store.task_list(iid).await?)
    };
    let names: std::collections::HashMap<TaskId, String> =
        tasks.iter().map(|t| (t.id, t.node.clone())).collect();
    let mut query = LogQuery {
        task_ids: tasks.iter().map(|t| t.id).collect(),
        after: None,
        limit: 1000,
        contains: None,
    };
    loop {
        // read the end state before the lines, so nothing written before the end is missed
        let ended = if is_task {
            store
                .task_get(TaskId(id))
                .await?
                .is_none_or(|t| t.status.is_terminal())
        } else {
            store
                .instance_get(instance_id)
                .await?
                .is_none_or(|i| i.status.is_terminal())
        };
        loop {
            let lines = store.task_log_read(&query).await?;
            for l in &lines {
                let node = names.get(&l.task_id).map(String::as_str).unwrap_or("?");
                println!("{}", log_line(node, l));
            }
            if let Some(last) = lines.last() {
                query.after = Some((last.task_id, last.attempt, last.seq));
            }
            if (lines.len() as i64) < query.limit {
                break;
            }
        }
        if !follow || ended {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One line of `akkaflow logs`: when it was written (UTC), where it comes from, the text.
/// The worker's own lines are stored with a `[akkaflow]` prefix (so the UI shows them apart); the
/// stream tag says the same here, so the prefix is not repeated.
fn log_line(node: &str, l: &LogLine) -> String {
    let (tag, text) = match l.stream {
        LogStream::Stdout => ("", l.line.as_str()),
        LogStream::Stderr => (" stderr", l.line.as_str()),
        LogStream::System => (
            " akkaflow",
            l.line.strip_prefix("[akkaflow] ").unwrap_or(&l.line),
        ),
    };
    format!(
        "{} [{node}#{}{tag}] {text}",
        l.logged_at.format("%Y-%m-%d %H:%M:%S%.3f"),
        l.attempt
    )
}

pub(super) async fn status(cfg: &Config, json: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let schedulers = store.scheduler_list().await?;
    let workers = store.worker_list().await?;
    let queues = store.task_queue_depth().await?;
    let definitions = crate::sync::definition_problems(&*store).await?;
    if json {
        print_json(
            &json!({ "schedulers": schedulers, "workers": workers, "queues": queues, "definitions": definitions }),
        );
        return Ok(0);
    }
    for p in &definitions {
        println!("{} ({})", p.summary, p.source);
        for e in &p.errors {
            println!("  {e}");
        }
        if p.error_count > p.errors.len() as i64 {
            println!("  … and {} more", p.error_count - p.errors.len() as i64);
        }
        println!("  {}\n", crate::sync::HELD_BACK);
    }
    let mut s = table(&[
        "SCHEDULER",
        "HOST",
        "PID",
        "STATE",
        "EPOCH",
        "MASTER SINCE",
        "HEARTBEAT",
    ]);
    for r in schedulers.iter().filter(|r| r.state != "stopped") {
        s.add_row(vec![
            r.id.clone(),
            r.host.clone(),
            r.pid.to_string(),
            r.state.clone(),
            r.epoch.map(|e| e.to_string()).unwrap_or_default(),
            fmt_time(r.master_since),
            fmt_time(Some(r.heartbeat_at)),
        ]);
    }
    println!("{s}\n");
    let mut w = table(&[
        "WORKER",
        "HOST",
        "PID",
        "STATE",
        "SLOTS",
        "RUNNING",
        "CPU",
        "LOAD 1/5/15",
        "MEMORY",
        "DISK FREE",
        "HEARTBEAT AGE",
        "QUEUES",
    ]);
    for r in workers.iter().filter(|r| r.state != "stopped") {
        let [cpu, load, mem, disk] = r.host_text();
        w.add_row(vec![
            r.id.clone(),
            r.host.clone(),
            r.pid.to_string(),
            r.state.clone(),
            r.slots.to_string(),
            r.running_tasks.to_string(),
            cpu,
            load,
            mem,
            disk,
            format!("{:.1}s", r.heartbeat_age_s),
            r.queues.clone(),
        ]);
    }
    println!("{w}\n");
    let mut q = table(&["QUEUE", "READY", "RUNNING"]);
    for r in &queues {
        q.add_row(vec![
            r.queue.clone(),
            r.ready.to_string(),
            r.running.to_string(),
        ]);
    }
    println!("{q}");
    Ok(0)
}

pub(super) async fn check(cfg: &Config, stuck_after_secs: u64, json: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let cutoff = store.now().await? - chrono::Duration::seconds(stuck_after_secs as i64);
    let found = store.invariant_check(cutoff).await?;
    if json {
        print_json(&found);
    } else if found.is_empty() {
        println!("ok: no invariant is broken");
    } else {
        for v in &found {
            println!("{}: {} {}", v.what, v.id, v.info);
        }
    }
    Ok(if found.is_empty() { 0 } else { 1 })
}

pub(super) async fn pool_list(cfg: &Config, json: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let pools = store.pool_list().await?;
    if json {
        print_json(&pools);
        return Ok(0);
    }
    let mut t = table(&[
        "POOL", "SLOTS", "USED", "RUNNING", "WAITING", "SET BY", "DESC",
    ]);
    for p in &pools {
        let slots = if p.slots == p.file_slots {
            p.slots.to_string()
        } else {
            format!("{} (pools.xml: {})", p.slots, p.file_slots)
        };
        t.add_row(vec![
            p.name.clone(),
            slots,
            p.used.to_string(),
            p.running.to_string(),
            p.waiting.to_string(),
            p.updated_by.clone(),
            p.description.clone(),
        ]);
    }
    println!("{t}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stream: LogStream, text: &str) -> LogLine {
        LogLine {
            task_id: TaskId(7),
            attempt: 2,
            seq: 1,
            logged_at: chrono::DateTime::parse_from_rfc3339("2024-05-01T08:30:00.250Z")
                .unwrap()
                .with_timezone(&Utc),
            stream,
            line: text.to_string(),
        }
    }

    #[test]
    fn log_lines_have_a_timestamp_and_one_prefix() {
        let cases = [
            (
                LogStream::System,
                "[akkaflow] attempt 2 ended: succeeded",
                "2024-05-01 08:30:00.250 [ingest#2 akkaflow] attempt 2 ended: succeeded",
            ),
            (
                LogStream::Stdout,
                "[akkaflow] printed by the script",
                "2024-05-01 08:30:00.250 [ingest#2] [akkaflow] printed by the script",
            ),
            (
                LogStream::Stderr,
                "oops",
                "2024-05-01 08:30:00.250 [ingest#2 stderr] oops",
            ),
        ];
        for (stream, text, want) in cases {
            assert_eq!(log_line("ingest", &line(stream, text)), want);
        }
    }

    fn coordinator(enabled: bool, cron: Option<&str>, depends: &str) -> CoordinatorRow {
        CoordinatorRow {
            workflow: "w".into(),
            cron: cron.map(str::to_string),
            timezone: "UTC".into(),
            depends: depends.into(),
            params: "[]".into(),
            enabled,
            start_time: None,
            end_time: None,
            next_fire_at: Some(
                chrono::DateTime::parse_from_rfc3339("2024-05-01T09:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            ),
            last_fire_at: None,
            catchup: "latest".into(),
            max_catchup: 100,
            calendar: None,
        }
    }

    #[test]
    fn workflow_list_shows_a_cron_as_firing_only_when_it_fires() {
        let on = coordinator(true, Some("0 * * * *"), "[]");
        let off = coordinator(false, Some("0 * * * *"), "[]");
        let deps = coordinator(true, None, r#"["a","b"]"#);
        let cases = [
            (true, None, "manual only (no coordinator)", "-"),
            (true, Some(&on), "cron 0 * * * *", "2024-05-01 09:00:00"),
            (
                true,
                Some(&off),
                "off: coordinator disabled (cron 0 * * * *)",
                "-",
            ),
            (
                false,
                Some(&on),
                "off: workflow disabled (cron 0 * * * *)",
                "-",
            ),
            (true, Some(&deps), "after a, b", "2024-05-01 09:00:00"),
        ];
        for (enabled, c, trigger, next) in cases {
            assert_eq!(
                schedule(enabled, c),
                (trigger.to_string(), next.to_string()),
                "{c:?}"
            );
        }
    }
}
