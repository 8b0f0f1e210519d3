//! The workloads: a generated fork/join workflow (W branches of D tasks, joined), the instances or
//! coordinators that run it, and the modes that drive the fleet and turn the rows into a report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Timelike, Utc};
use tokio::task::JoinSet;

use super::db::Db;
use super::procs::{Fleet, FleetOptions};
use super::{counters, stats, BenchArgs, Pct, Report};
use crate::config::Config;
use crate::engine::{CreateInstance, Engine};
use crate::error::{Error, Result};
use crate::state::TriggerKind;
use crate::store::Store;

const ACTOR: &str = "bench";

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A workflow of `width` branches of `depth` shell tasks named `a{branch}_{step}`, forked and joined;
/// with `cron`, a coordinator that fires on it (UTC).
pub(crate) fn workflow_xml(
    name: &str,
    width: usize,
    depth: usize,
    command: &str,
    cron: Option<&str>,
) -> String {
    let mut x = format!(
        "<work-flow name=\"{name}\" creator=\"bench\" dir=\"/bench\" desc=\"akkaflow bench\" instance-limit=\"1000000\">\n"
    );
    if let Some(cron) = cron {
        x.push_str(&format!(
            "  <coordinator is-enabled=\"true\" timezone=\"UTC\"><depend-list cron=\"{cron}\"></depend-list></coordinator>\n"
        ));
    }
    let forked = width > 1;
    let first = if forked {
        "split".into()
    } else {
        "a0_0".to_string()
    };
    x.push_str(&format!("  <start name=\"start\" to=\"{first}\"/>\n"));
    if forked {
        x.push_str("  <fork name=\"split\">\n");
        for b in 0..width {
            x.push_str(&format!("    <path to=\"a{b}_0\"/>\n"));
        }
        x.push_str("  </fork>\n");
    }
    let command = xml_escape(command);
    for b in 0..width {
        for k in 0..depth {
            let next = if k + 1 < depth {
                format!("a{b}_{}", k + 1)
            } else if forked {
                "merge".into()
            } else {
                "end".into()
            };
            x.push_str(&format!(
                "  <action name=\"a{b}_{k}\"><shell><command>{command}</command></shell><ok to=\"{next}\"/></action>\n"
            ));
        }
    }
    if forked {
        x.push_str("  <join name=\"merge\" to=\"end\"/>\n");
    }
    x.push_str("  <end name=\"end\"/>\n</work-flow>\n");
    x
}

/// Writes the files to a scratch directory and syncs them (the same path as `akkaflow sync`).
async fn sync_files(
    store: &Arc<dyn Store>,
    cfg: &Config,
    files: Vec<(String, String)>,
) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "akkaflow-bench-defs-{}-{:04x}",
        std::process::id(),
        fastrand::u16(..)
    ));
    let io = |e: std::io::Error| Error::Io {
        context: "writing bench definitions".into(),
        source: e,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    for (name, xml) in files {
        std::fs::write(dir.join(format!("{name}.xml")), xml).map_err(io)?;
    }
    let opts = crate::sync::SyncOptions {
        dry_run: false,
        prune: false,
        prune_under: None,
        actor: ACTOR.into(),
        default_timezone: cfg.timezone,
        alert_channels: None,
        overwrite_rollbacks: false,
    };
    let result = sync_chunked(store, &dir, &opts).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Syncs the directory's files 1,000 at a time: one sync of 10,000 definitions binds more values
/// in one statement than SQLite and PostgreSQL accept.
async fn sync_chunked(
    store: &Arc<dyn Store>,
    dir: &std::path::Path,
    opts: &crate::sync::SyncOptions,
) -> Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .and_then(|d| {
            d.map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<_>>()
        })
        .map_err(|e| Error::Io {
            context: "listing bench definitions".into(),
            source: e,
        })?;
    files.sort();
    for chunk in files.chunks(1000) {
        crate::sync::sync_paths(store, chunk.to_vec(), opts).await?;
    }
    Ok(())
}

/// The definition files of a burn-down or steady run: the workflow, and with `--pool-slots N` a
/// pools.xml with the pool `bench` of N slots that every task of the workflow is in.
fn bench_files(name: &str, args: &BenchArgs) -> Vec<(String, String)> {
    let xml = workflow_xml(name, args.width, args.depth, &args.command, None);
    if args.pool_slots == 0 {
        return vec![(name.to_string(), xml)];
    }
    vec![
        (
            name.to_string(),
            xml.replace("<action name=", "<action pool=\"bench\" name="),
        ),
        (
            "pools".to_string(),
            format!(
                "<pools><pool name=\"bench\" slots=\"{}\" desc=\"akkaflow bench\"/></pools>\n",
                args.pool_slots
            ),
        ),
    ]
}

fn workflow_name(run_id: &str) -> String {
    format!("bench_{run_id}")
}

/// Creates `n` instances of `workflow` with `par` concurrent creators; each gets its own slot.
async fn create_instances(engine: &Engine, workflow: &str, n: usize, par: usize) -> Result<()> {
    let base = Utc::now();
    let mut set = JoinSet::new();
    for k in 0..par.max(1) {
        let engine = engine.clone();
        let workflow = workflow.to_string();
        set.spawn(async move {
            let mut i = k;
            while i < n {
                engine
                    .create_instance(&CreateInstance {
                        workflow: workflow.clone(),
                        trigger: TriggerKind::Run,
                        scheduled_for: Some(base + chrono::Duration::milliseconds(i as i64)),
                        params: Default::default(),
                        coordinator_params: false,
                        parent: None,
                        actor: ACTOR.into(),
                    })
                    .await?;
                i += par.max(1);
            }
            Ok::<(), Error>(())
        });
    }
    while let Some(r) = set.join_next().await {
        r.map_err(|e| Error::Config(format!("instance creator crashed: {e}")))??;
    }
    Ok(())
}

/// Waits until the fleet's workers are registered and a scheduler is master.
async fn wait_ready(db: &Db, fleet: &mut Fleet) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        fleet.check_alive()?;
        let workers = fleet.worker_pids();
        if db.workers_running(&workers).await? == workers.len() as i64
            && db.master_elected(&fleet.scheduler_pids()).await?
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Config(
                "the fleet did not come up within 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no instance of `prefix` is pending or running; `false` on timeout.
async fn wait_drained(
    db: &Db,
    fleet: &mut Fleet,
    prefix: &str,
    timeout: Duration,
    peak: &mut Vec<u64>,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        fleet.check_alive()?;
        sample_rss(fleet, peak);
        if db.active_instances(prefix).await? == 0 {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sample_rss(fleet: &Fleet, peak: &mut Vec<u64>) {
    let now = fleet.worker_rss();
    if peak.len() < now.len() {
        peak.resize(now.len(), 0);
    }
    for (p, n) in peak.iter_mut().zip(now) {
        *p = (*p).max(n);
    }
}

/// Fills the task/instance figures of `report` from the rows of `prefix`'s instances.
async fn fill_from_rows(db: &Db, prefix: &str, report: &mut Report) -> Result<()> {
    let tasks = db.task_times(prefix).await?;
    let instances = db.instance_times(prefix).await?;
    report.instances_total = instances.len();
    report.instances_succeeded = instances.iter().filter(|i| i.status == "succeeded").count();
    report.tasks_total = tasks.len();
    report.tasks_succeeded = tasks.iter().filter(|t| t.status == "succeeded").count();
    report.step_latency_ms = Pct::of(stats::step_latencies(&tasks));
    report.trigger_to_first_task_ms =
        Pct::of(stats::to_first_task(&instances, &tasks, |i| i.created_at));
    report.drain_s = stats::drain_seconds(&tasks);
    if let Some(s) = report.drain_s.filter(|s| *s > 0.0) {
        report.tasks_per_s = Some(report.tasks_succeeded as f64 / s);
        report.instances_per_s = Some(report.instances_succeeded as f64 / s);
    }
    Ok(())
}

async fn finish(fleet: Fleet, report: &mut Report, rss_seen: Vec<u64>) {
    let (workers, schedulers) = fleet.peak_rss();
    report.worker_peak_rss_kib = workers;
    report.scheduler_peak_rss_kib = schedulers;
    report.worker_rss_max_sampled_kib = rss_seen;
    report.worker_rss_end_kib = fleet.worker_rss();
    fleet.stop().await;
}

/// Burn-down: create the instances, then start the fleet and let it drain them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn burn_down(
    db: &Db,
    store: &Arc<dyn Store>,
    cfg: &Config,
    args: &BenchArgs,
    run_id: &str,
    fleet_opts: &FleetOptions,
    timeout: Duration,
    report: &mut Report,
) -> Result<()> {
    let name = workflow_name(run_id);
    sync_files(store, cfg, bench_files(&name, args)).await?;
    let engine = Engine::new(store.clone(), cfg.timezone);
    let t = Instant::now();
    create_instances(&engine, &name, args.instances, 4).await?;
    report.create_s = Some(t.elapsed().as_secs_f64());
    db.analyze().await?;
    let before = counters::sample(db).await?;
    let mut fleet = Fleet::spawn(fleet_opts)?;
    let mut rss = Vec::new();
    let drained = wait_drained(db, &mut fleet, &name, timeout, &mut rss).await;
    let after = counters::sample(db).await?;
    finish(fleet, report, rss).await;
    if !drained? {
        tracing::warn!("burn-down did not drain within the timeout; figures cover what ran");
    }
    report.statements = counters::rate(&before, &after);
    fill_from_rows(db, &name, report).await
}

/// Steady: a producer keeps `target_depth` instances running for the duration.
pub(crate) async fn steady(
    db: &Db,
    store: &Arc<dyn Store>,
    cfg: &Config,
    args: &BenchArgs,
    run_id: &str,
    fleet_opts: &FleetOptions,
    report: &mut Report,
) -> Result<()> {
    let name = workflow_name(run_id);
    sync_files(store, cfg, bench_files(&name, args)).await?;
    let engine = Engine::new(store.clone(), cfg.timezone);
    let mut fleet = Fleet::spawn(fleet_opts)?;
    let mut rss = Vec::new();
    let result = async {
        wait_ready(db, &mut fleet).await?;
        let before = counters::sample(db).await?;
        let start = store.now().await?;
        let until = Instant::now() + Duration::from_secs_f64(args.duration_secs);
        let mut slot = 0i64;
        let base = Utc::now();
        while Instant::now() < until {
            fleet.check_alive()?;
            sample_rss(&fleet, &mut rss);
            let active = db.active_instances(&name).await? as usize;
            for _ in active..args.target_depth {
                slot += 1;
                engine
                    .create_instance(&CreateInstance {
                        workflow: name.clone(),
                        trigger: TriggerKind::Run,
                        scheduled_for: Some(base + chrono::Duration::milliseconds(slot)),
                        params: Default::default(),
                        coordinator_params: false,
                        parent: None,
                        actor: ACTOR.into(),
                    })
                    .await?;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let end = store.now().await?;
        let after = counters::sample(db).await?;
        report.statements = counters::rate(&before, &after);
        wait_drained(db, &mut fleet, &name, Duration::from_secs(120), &mut rss).await?;
        Ok::<_, Error>((start, end))
    }
    .await;
    finish(fleet, report, rss).await;
    let (start, end) = result?;
    fill_from_rows(db, &name, report).await?;
    // throughput over the producing window only, by the database clock
    let tasks = db.task_times(&name).await?;
    let window = (end - start).num_milliseconds() as f64 / 1000.0;
    let in_window = |t: &Option<DateTime<Utc>>| t.is_some_and(|t| t >= start && t <= end);
    let done = tasks.iter().filter(|t| in_window(&t.ended_at)).count();
    report.drain_s = Some(window);
    report.tasks_per_s = Some(done as f64 / window);
    report.instances_per_s = Some(done as f64 / (args.width * args.depth) as f64 / window);
    Ok(())
}

/// Idle: the fleet sits idle for the warm-up, then its statements are counted for the duration.
pub(crate) async fn idle(
    db: &Db,
    args: &BenchArgs,
    fleet_opts: &FleetOptions,
    report: &mut Report,
) -> Result<()> {
    let mut fleet = Fleet::spawn(fleet_opts)?;
    let mut rss = Vec::new();
    let result = async {
        wait_ready(db, &mut fleet).await?;
        tokio::time::sleep(Duration::from_secs_f64(args.warmup_secs)).await;
        let before = counters::sample(db).await?;
        tokio::time::sleep(Duration::from_secs_f64(args.duration_secs)).await;
        let after = counters::sample(db).await?;
        fleet.check_alive()?;
        sample_rss(&fleet, &mut rss);
        report.statements = counters::rate(&before, &after);
        Ok::<_, Error>(())
    }
    .await;
    finish(fleet, report, rss).await;
    result
}

/// Coordinators: `instances` workflows whose coordinators are all due in the same minute.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn coordinators(
    db: &Db,
    store: &Arc<dyn Store>,
    cfg: &Config,
    args: &BenchArgs,
    run_id: &str,
    fleet_opts: &FleetOptions,
    timeout: Duration,
    report: &mut Report,
) -> Result<()> {
    let prefix = format!("{}_", workflow_name(run_id));
    // the next minute boundary far enough ahead for the sync and the fleet to start
    let now = store.now().await?;
    let lead = 20 + args.instances as i64 / 200;
    let slot = (now + chrono::Duration::seconds(lead + 59))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("second 0 exists");
    let cron = format!("{} {} * * *", slot.minute(), slot.hour());
    let files = (0..args.instances)
        .map(|i| {
            let name = format!("{prefix}{i:05}");
            let xml = workflow_xml(&name, args.width, args.depth, &args.command, Some(&cron));
            (name, xml)
        })
        .collect();
    let t = Instant::now();
    sync_files(store, cfg, files).await?;
    report.create_s = Some(t.elapsed().as_secs_f64());
    if store.now().await? > slot - chrono::Duration::seconds(10) {
        return Err(Error::Config(format!(
            "syncing {} coordinators took too long: the slot {slot} is too close; use fewer",
            args.instances
        )));
    }
    let mut fleet = Fleet::spawn(fleet_opts)?;
    let mut rss = Vec::new();
    let result = async {
        wait_ready(db, &mut fleet).await?;
        let before = counters::sample(db).await?;
        let until_slot = (slot - store.now().await?).to_std().unwrap_or_default();
        let slot_here = Instant::now() + until_slot;
        let deadline = Instant::now() + timeout.min(until_slot + Duration::from_secs(120));
        loop {
            fleet.check_alive()?;
            sample_rss(&fleet, &mut rss);
            // the count joins every instance to its tasks: asked before the slot or often, it
            // would load the database the figures are taken from (they come from its timestamps,
            // so polling less only ends the wait up to a poll later)
            if Instant::now() < slot_here {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let (created, started) = db.started_instances(&prefix).await?;
            if started >= args.instances as i64 && created >= args.instances as i64 {
                break;
            }
            if Instant::now() > deadline {
                tracing::warn!(created, started, "not every coordinator fired in time");
                break;
            }
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        let after = counters::sample(db).await?;
        report.statements = counters::rate(&before, &after);
        wait_drained(db, &mut fleet, &prefix, Duration::from_secs(300), &mut rss).await?;
        Ok::<_, Error>(())
    }
    .await;
    finish(fleet, report, rss).await;
    result?;
    fill_from_rows(db, &prefix, report).await?;
    let tasks = db.task_times(&prefix).await?;
    let instances = db.instance_times(&prefix).await?;
    report.slot_to_created_ms = Pct::of(
        instances
            .iter()
            .map(|i| {
                (i.created_at - i.scheduled_for)
                    .num_microseconds()
                    .unwrap_or(0) as f64
                    / 1000.0
            })
            .collect(),
    );
    report.trigger_to_first_task_ms = Pct::of(stats::to_first_task(&instances, &tasks, |i| {
        i.scheduled_for
    }));
    Ok(())
}

/// Tasks per instance of the history: a night's run of a mid-sized workflow.
const HISTORY_TASKS_PER_INSTANCE: u64 = 100;

/// Puts `n` finished task rows, each with one log line, into the engine's tables: instances of
/// [`HISTORY_TASKS_PER_INSTANCE`] tasks that ended `age_days` ago. Older than the retention, the
/// master's pruner deletes them while the fleet drains: what pruning costs the claims.
pub(crate) async fn insert_history(db: &Db, n: u64, age_days: u32, run_id: &str) -> Result<()> {
    let wf = format!("benchhist_{run_id}");
    let ts = match db {
        Db::Sqlite(_) => format!("strftime('%Y-%m-%d %H:%M:%f','now','-{age_days} days')"),
        Db::Mysql(_) => format!("(NOW(6) - INTERVAL {age_days} DAY)"),
        Db::Postgres(_) => format!("(now() - interval '{age_days} days')"),
    };
    let instances = n.div_ceil(HISTORY_TASKS_PER_INSTANCE);
    let before = db
        .scalar("SELECT COALESCE(MAX(id), 0) FROM workflow_instance")
        .await?;
    let inst_cols = "workflow, workflow_version, status, params, trigger_kind, scheduled_for, \
                     created_by, created_at, started_at, ended_at";
    // each its own slot (an instance is unique per workflow, trigger and slot)
    let slot = |num: &str| match db {
        Db::Sqlite(_) => format!(
            "strftime('%Y-%m-%d %H:%M:%f','now','-{age_days} days','-' || {num} || ' seconds')"
        ),
        Db::Mysql(_) => format!("(NOW(6) - INTERVAL {age_days} DAY - INTERVAL {num} SECOND)"),
        Db::Postgres(_) => {
            format!("(now() - interval '{age_days} days' - {num} * interval '1 second')")
        }
    };
    let inst_vals = |num: &str, _: &str| {
        format!(
            "'{wf}', 1, 'succeeded', '{{}}', 'run', {}, 'bench:history', {ts}, {ts}, {ts}",
            slot(num)
        )
    };
    super::raw::insert_series(db, "workflow_instance", inst_cols, &inst_vals, instances).await?;
    let first = db
        .scalar(&format!(
            "SELECT MIN(id) FROM workflow_instance WHERE workflow = '{wf}' AND id > {before}"
        ))
        .await?;
    let cols = "instance_id, node, kind, status, attempt, max_attempts, retry_interval_s, queue, priority, \
                run_at, worker_id, created_at, started_at, ended_at";
    let per = HISTORY_TASKS_PER_INSTANCE;
    // integer division: MySQL's `/` is exact, its `DIV` truncates
    let div = match db {
        Db::Mysql(_) => "DIV",
        _ => "/",
    };
    let vals = |num: &str, node: &str| {
        format!(
            "{first} + ({num} - 1) {div} {per}, {node}, 'shell', 'succeeded', 1, 1, 0, 'default', 0, {ts}, 'history', {ts}, {ts}, {ts}"
        )
    };
    super::raw::insert_series(db, "task", cols, &vals, n).await?;
    db.exec(&format!(
        "INSERT INTO task_log (task_id, attempt, seq, logged_at, stream, line) \
         SELECT id, 1, 1, {ts}, 'stdout', 'a line of history' FROM task \
         WHERE instance_id BETWEEN {first} AND {first} + {instances} - 1"
    ))
    .await
}

/// Task rows of the history still in the table.
pub(crate) async fn history_left(db: &Db, run_id: &str) -> Result<u64> {
    let n = db
        .scalar(&format!(
            "SELECT COUNT(*) FROM task t JOIN workflow_instance i ON i.id = t.instance_id \
             WHERE i.workflow = 'benchhist_{run_id}'"
        ))
        .await?;
    Ok(n as u64)
}
