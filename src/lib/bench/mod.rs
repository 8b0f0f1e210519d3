//! `akkaflow bench`: measures the engine on a real database with real scheduler and worker processes
//! (children of this binary), and next to it the raw SQL claim/complete limit of the same database.
//!
//! Modes: `burn-down` (create N instances of a generated fork/join workflow, then drain them),
//! `steady` (a producer keeps a target number of running instances for a duration), `idle` (the fleet
//! sits idle; statements/s after a warm-up), `coordinators` (N coordinators due in the same minute).
//! Every figure comes from the database's own timestamps and counters, never from the host clock of
//! one process, so it is the same whichever process did the work.
//!
//! Per-backend SQL lives in this module (`db.rs`, `raw.rs`, `counters.rs`), not in `store/`: bench
//! needs reads the engine never does, and a scratch table the engine must not know about.

mod counters;
mod db;
use db::db_err;
mod procs;
mod raw;
mod stats;
mod workload;

use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::config::Config;
use crate::error::{Error, Result};

pub use stats::Pct;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    BurnDown,
    Steady,
    Idle,
    Coordinators,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    /// In-process no-op in the worker: the engine's own cost.
    Noop,
    /// `--command` (default `true`) as a real process.
    Shell,
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// What to measure: a backlog drained, a steady load, an idle fleet, or due coordinators
    #[arg(long, value_enum, default_value = "burn-down")]
    pub mode: Mode,
    /// What each task runs: nothing (the engine's own cost) or the shell command below
    #[arg(long, value_enum, default_value = "noop")]
    pub executor: ExecutorKind,
    /// The shell executor's command
    #[arg(long, default_value = "true")]
    pub command: String,
    /// Instances to create (burn-down) or coordinators to make due (coordinators)
    #[arg(long, default_value_t = 100)]
    pub instances: usize,
    /// Branches of the fork
    #[arg(long, default_value_t = 10)]
    pub width: usize,
    /// Tasks in each branch, one after the other
    #[arg(long, default_value_t = 1)]
    pub depth: usize,
    /// Scheduler processes to start
    #[arg(long, default_value_t = 1)]
    pub schedulers: usize,
    /// Worker processes to start
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Slots per worker (also the raw loop's batch size)
    #[arg(long, default_value_t = 8)]
    pub slots: usize,
    /// Steady mode: running instances the producer keeps
    #[arg(long, default_value_t = 4)]
    pub target_depth: usize,
    /// Steady and idle modes: how long to measure, in seconds
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Idle mode: seconds the fleet sits idle before measuring
    #[arg(long, default_value_t = 60.0)]
    pub warmup_secs: f64,
    /// Give up waiting for the drain after this many seconds
    #[arg(long, default_value_t = 1800.0)]
    pub timeout_secs: f64,
    /// Finished task rows to put in history first (engine table and raw scratch table)
    #[arg(long, default_value_t = 0)]
    pub history: u64,
    /// Age of that history in days, in instances of 100 tasks with a log line each: past the
    /// retention (30 days by default) the master prunes it while the fleet drains
    #[arg(long, default_value_t = 0)]
    pub history_age_days: u32,
    /// Burn-down and steady: put every task in one pool of this many slots (0: no pool), to
    /// measure the pooled claim beside the unpooled one
    #[arg(long, default_value_t = 0)]
    pub pool_slots: u32,
    /// Also run the raw SQL claim/complete loop on a scratch table and report engine/raw
    #[arg(long)]
    pub raw: bool,
    /// Only the raw loop (no fleet)
    #[arg(long)]
    pub raw_only: bool,
    /// Drop and recreate the database named in the URL first (SQLite: delete the file)
    #[arg(long)]
    pub reset: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// What one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub mode: Option<Mode>,
    pub backend: String,
    pub executor: Option<ExecutorKind>,
    pub schedulers: usize,
    pub workers: usize,
    pub slots: usize,
    pub width: usize,
    pub depth: usize,
    pub history_rows: u64,
    pub history_age_days: u32,
    /// History task rows still there when the drain ended (the rest the master pruned meanwhile).
    pub history_left: Option<u64>,
    /// Instances this run created (or coordinators that fired).
    pub instances_total: usize,
    pub instances_succeeded: usize,
    /// Action tasks of those instances, and how many of them succeeded.
    pub tasks_total: usize,
    pub tasks_succeeded: usize,
    /// Seconds from the first task started to the last task ended (database clock).
    pub drain_s: Option<f64>,
    pub tasks_per_s: Option<f64>,
    pub instances_per_s: Option<f64>,
    /// Instance created (or coordinator slot) to its first task started, in ms.
    pub trigger_to_first_task_ms: Option<Pct>,
    /// Upstream task ended to downstream task started, in ms.
    pub step_latency_ms: Option<Pct>,
    /// Coordinators mode: slot to instance created, in ms.
    pub slot_to_created_ms: Option<Pct>,
    pub statements: Option<counters::Rate>,
    /// Peak resident set (VmHWM, children excluded) of each process, in KiB.
    pub worker_peak_rss_kib: Vec<u64>,
    /// Largest RSS of each worker seen while sampling during the run, and at its end, in KiB.
    pub worker_rss_max_sampled_kib: Vec<u64>,
    pub worker_rss_end_kib: Vec<u64>,
    pub scheduler_peak_rss_kib: Vec<u64>,
    pub raw: Option<raw::RawReport>,
    /// Engine tasks/s divided by raw tasks/s at the same batch size.
    pub engine_to_raw: Option<f64>,
    /// Seconds spent creating the instances (burn-down) or syncing the coordinators, before the fleet.
    pub create_s: Option<f64>,
    /// Host seconds the whole run took, set-up included.
    pub wall_s: f64,
}

/// Runs `akkaflow bench`.
pub async fn run(cfg: &Config, config_file: Option<&Path>, args: BenchArgs) -> Result<i32> {
    let started = Instant::now();
    if args.width == 0 || args.depth == 0 || args.workers == 0 || args.slots == 0 {
        return Err(Error::Config(
            "--width, --depth, --workers and --slots must be at least 1".into(),
        ));
    }
    let url = cfg.database_url.clone();
    if args.reset {
        db::reset(&url).await?;
    }
    // the harness creates, produces and samples at once: a command's small budget starves it, so it
    // gets what one standalone process gets (its fleet's processes keep their own roles' budgets)
    let store = cfg.connect_as(crate::config::PoolRole::Standalone).await?;
    let db = db::Db::connect(&url).await?;
    let mut report = Report {
        backend: store.backend().as_str().into(),
        schedulers: args.schedulers,
        workers: args.workers,
        slots: args.slots,
        width: args.width,
        depth: args.depth,
        history_rows: args.history,
        history_age_days: args.history_age_days,
        ..Report::default()
    };
    let run_id = format!("{:x}", chrono::Utc::now().timestamp_millis());
    if !args.raw_only {
        report.mode = Some(args.mode);
        report.executor = Some(args.executor);
        if args.history > 0 {
            workload::insert_history(&db, args.history, args.history_age_days, &run_id).await?;
        }
        let config_file = config_file
            .map(Path::to_path_buf)
            .or_else(|| Path::new("akkaflow.toml").canonicalize().ok());
        let fleet_opts = procs::FleetOptions {
            url: url.clone(),
            config_file,
            schedulers: args.schedulers,
            workers: args.workers,
            slots: args.slots,
            noop: args.executor == ExecutorKind::Noop,
        };
        let timeout = Duration::from_secs_f64(args.timeout_secs);
        match args.mode {
            Mode::BurnDown => {
                workload::burn_down(
                    &db,
                    &store,
                    cfg,
                    &args,
                    &run_id,
                    &fleet_opts,
                    timeout,
                    &mut report,
                )
                .await?
            }
            Mode::Steady => {
                workload::steady(&db, &store, cfg, &args, &run_id, &fleet_opts, &mut report).await?
            }
            Mode::Idle => workload::idle(&db, &args, &fleet_opts, &mut report).await?,
            Mode::Coordinators => {
                workload::coordinators(
                    &db,
                    &store,
                    cfg,
                    &args,
                    &run_id,
                    &fleet_opts,
                    timeout,
                    &mut report,
                )
                .await?
            }
        }
        if args.history > 0 {
            report.history_left = Some(workload::history_left(&db, &run_id).await?);
        }
    }
    if args.raw || args.raw_only {
        let n = if report.tasks_total > 0 {
            report.tasks_total
        } else {
            args.instances * args.width * args.depth
        };
        let r = raw::run(&db, n, args.workers, args.slots, args.history).await?;
        report.engine_to_raw = report
            .tasks_per_s
            .filter(|_| !args.raw_only)
            .map(|e| e / r.tasks_per_s);
        report.raw = Some(r);
    }
    report.wall_s = started.elapsed().as_secs_f64();
    if args.json {
        let json = serde_json::to_string_pretty(&report).expect("the report serialises");
        println!("{json}");
    } else {
        print_human(&report);
    }
    Ok(0)
}

fn print_human(r: &Report) {
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
    let pct = |p: &Option<Pct>| {
        p.as_ref()
            .map(|p| {
                format!(
                    "p50 {:.1} p95 {:.1} p99 {:.1} max {:.1} (n={})",
                    p.p50, p.p95, p.p99, p.max, p.count
                )
            })
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "backend {} mode {} executor {} | {} scheduler(s), {} worker(s) x {} slots, fork {}x{}, history {}",
        r.backend,
        r.mode.map(|m| format!("{m:?}")).unwrap_or_else(|| "raw".into()),
        r.executor.map(|e| format!("{e:?}")).unwrap_or_else(|| "-".into()),
        r.schedulers,
        r.workers,
        r.slots,
        r.width,
        r.depth,
        r.history_rows
    );
    println!(
        "instances {}/{} succeeded, tasks {}/{} succeeded, drain {} s",
        r.instances_succeeded,
        r.instances_total,
        r.tasks_succeeded,
        r.tasks_total,
        opt(r.drain_s)
    );
    if let Some(left) = r.history_left {
        println!(
            "history {} rows aged {} days: {} left after the drain",
            r.history_rows, r.history_age_days, left
        );
    }
    println!(
        "tasks/s {}  instances/s {}",
        opt(r.tasks_per_s),
        opt(r.instances_per_s)
    );
    println!(
        "trigger to first task ms: {}",
        pct(&r.trigger_to_first_task_ms)
    );
    println!("DAG step latency ms:      {}", pct(&r.step_latency_ms));
    if r.slot_to_created_ms.is_some() {
        println!("slot to created ms:       {}", pct(&r.slot_to_created_ms));
    }
    match &r.statements {
        Some(s) => println!(
            "statements/s {:.1} ({} over {:.1} s, from {})",
            s.per_s, s.count, s.seconds, s.source
        ),
        None => println!("statements/s n/a (SQLite has no server counters)"),
    }
    println!(
        "peak RSS KiB: workers {:?}, schedulers {:?}",
        r.worker_peak_rss_kib, r.scheduler_peak_rss_kib
    );
    if let Some(raw) = &r.raw {
        println!(
            "raw loop: {} tasks, {} claimers x batch {}, {:.1} tasks/s; engine/raw {}",
            raw.tasks,
            raw.claimers,
            raw.batch,
            raw.tasks_per_s,
            r.engine_to_raw
                .map(|x| format!("{x:.3}"))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!("wall {:.1} s", r.wall_s);
}
