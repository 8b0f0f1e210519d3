//! The process supervisor: starts the long-running roles (scheduler, worker, HTTP server, or all
//! three in one `standalone` process), owns the signals (SIGTERM or SIGINT stops them gracefully),
//! and in standalone mode re-syncs the definition directory when it changes. The CLI parses its
//! arguments into the options here and calls one `run_*` function; nothing here parses.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PoolRole};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::scheduler::{self, SchedulerConfig};
use crate::state::DEFAULT_QUEUE;
use crate::sync::{self, SyncOptions};
use crate::worker::{self, WorkerConfig};

/// What the command line says about a worker role.
#[derive(Clone, Debug, Default)]
pub struct WorkerOptions {
    /// How many tasks run at once.
    pub slots: usize,
    /// Queues to serve; empty means `default`.
    pub queues: Vec<String>,
    /// The name `host` attributes pin to; `None` means the host name.
    pub name: Option<String>,
    /// For `akkaflow bench`: attempts succeed without running.
    pub bench_noop: bool,
}

/// What the command line says about the HTTP role.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub listen: String,
    pub no_auth: bool,
    /// `GET /metrics` without a token.
    pub metrics_public: bool,
}

/// A token cancelled on the first SIGTERM or SIGINT.
fn shutdown_token() -> Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::Io {
        context: "installing SIGTERM handler".into(),
        source: e,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::Io {
        context: "installing SIGINT handler".into(),
        source: e,
    })?;
    let t = token.clone();
    // owned by the token: it ends when a signal arrives, which is the only thing it waits for
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        t.cancel();
    });
    Ok(token)
}

fn scheduler_config(cfg: &Config, engine: &Engine, role: PoolRole) -> Result<SchedulerConfig> {
    if cfg.smtp.is_none() {
        tracing::info!("no [smtp] configured: mails stay in the outbox (table `alert`)");
    }
    let deliverer = if cfg.smtp.is_some() || !cfg.channels.is_empty() {
        Some(std::sync::Arc::new(crate::alert::Deliverer::new(
            engine.store.clone(),
            cfg.smtp.as_ref(),
            &cfg.channels,
            cfg.public_url.clone(),
            cfg.alerts.clone(),
        )?))
    } else {
        None
    };
    Ok(SchedulerConfig {
        lease_ttl: cfg.lease_ttl,
        deliverer,
        pruner: cfg.retention.map(|retention| scheduler::PrunerConfig {
            retention,
            metric_retention: cfg.worker_metric_retention,
            ..Default::default()
        }),
        pool_history: scheduler::PoolHistoryConfig {
            interval: cfg.pool_history_every,
        },
        fire_concurrency: scheduler::fire_concurrency_for(cfg.pool.max_for(role).0),
        ..SchedulerConfig::default()
    })
}

fn worker_config(cfg: &Config, args: &WorkerOptions) -> WorkerConfig {
    let name = args.name.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "worker".into())
    });
    WorkerConfig {
        name,
        queues: if args.queues.is_empty() {
            vec![DEFAULT_QUEUE.to_string()]
        } else {
            args.queues.clone()
        },
        slots: args.slots.max(1),
        lease_ttl: cfg.lease_ttl,
        heartbeat: cfg.heartbeat,
        metric_every: cfg.worker_metric_every,
        poll: cfg.poll,
        grace: cfg.grace,
        work_dir: cfg.work_dir.clone(),
        work_dir_keep: cfg.retention,
        log_max_lines: cfg.log_max_lines,
        executor: cfg.executor.clone(),
        bench_noop: args.bench_noop,
        listen: cfg.pool.listen,
    }
}

/// Runs the scheduler role until a signal stops it.
pub async fn run_scheduler(cfg: &Config) -> Result<()> {
    let stop = shutdown_token()?;
    let engine = Engine::for_config(cfg.connect_as(PoolRole::Scheduler).await?, cfg);
    let sched = scheduler_config(cfg, &engine, PoolRole::Scheduler)?;
    scheduler::run(engine, sched, stop).await
}

/// Runs a worker until a signal stops it (running attempts are handed back or finished).
pub async fn run_worker(cfg: &Config, args: &WorkerOptions) -> Result<()> {
    let stop = shutdown_token()?;
    let engine = Engine::for_config(cfg.connect_as(PoolRole::Worker).await?, cfg);
    worker::run(engine, worker_config(cfg, args), stop).await
}

fn http_config(cfg: &Config, args: &HttpOptions) -> Result<crate::http::HttpConfig> {
    crate::http::HttpConfig::resolve(&args.listen, args.no_auth, cfg.public_url.as_deref()).map(
        |c| crate::http::HttpConfig {
            metrics_public: args.metrics_public,
            ..c
        },
    )
}

/// Binds the HTTP port before anything else happens: a second server on a taken port stops at
/// once, before it syncs or touches the database, with exit code 2 (the environment is wrong).
async fn bind_first(http_cfg: &crate::http::HttpConfig) -> Result<tokio::net::TcpListener> {
    crate::http::bind(http_cfg).await.map_err(|e| match e {
        Error::Io { source, .. } => Error::Config(format!(
            "cannot listen on {}: {source} (is another akkaflow already serving there? choose another address with --listen)",
            http_cfg.listen
        )),
        other => other,
    })
}

/// Serves the HTTP API and UI until a signal stops it.
pub async fn run_http(cfg: &Config, args: &HttpOptions) -> Result<()> {
    let http_cfg = http_config(cfg, args)?;
    let listener = bind_first(&http_cfg).await?;
    let stop = shutdown_token()?;
    let engine = Engine::for_config(cfg.connect_as(PoolRole::Http).await?, cfg);
    crate::http::serve_on(engine, http_cfg, listener, stop).await
}

/// Scheduler, worker and HTTP server in one process, syncing `xmlconfig` at start and whenever it
/// changes; `actor` signs the syncs.
pub async fn run_standalone(
    cfg: &Config,
    xmlconfig: PathBuf,
    args: &WorkerOptions,
    http: &HttpOptions,
    actor: String,
) -> Result<()> {
    let http_cfg = http_config(cfg, http)?;
    let listener = bind_first(&http_cfg).await?;
    let stop = shutdown_token()?;
    let store = cfg.connect_as(PoolRole::Standalone).await?;
    let engine = Engine::for_config(store.clone(), cfg);
    // the directory is the source of truth: a file that disappears disables its workflow
    let source = xmlconfig.display().to_string();
    let opts = SyncOptions {
        dry_run: false,
        prune: true,
        prune_under: Some(format!("{}/", source.trim_end_matches('/'))),
        actor,
        default_timezone: cfg.timezone,
        alert_channels: Some(cfg.channels.iter().map(|c| c.route.name.clone()).collect()),
        // a rescan is routine: a rollback made in the database stays until the file catches up
        overwrite_rollbacks: false,
    };
    let mut seen = None;
    if xmlconfig.exists() {
        seen = fingerprint(&xmlconfig);
        // a broken set at start stops it with the errors (the command prints them)
        rescan(&store, &xmlconfig, &source, &opts).await?;
    } else {
        tracing::warn!(dir = %xmlconfig.display(), "definition directory not found; running without it");
    }
    tracing::info!(
        database = %crate::store::redact_url(&cfg.database_url),
        "standalone: scheduler, worker and HTTP server in one process; watch it with `akkaflow status`, \
         `akkaflow instance list`, `akkaflow logs ID`, or start one now with `akkaflow workflow trigger NAME`"
    );
    let sched = scheduler_config(cfg, &engine, PoolRole::Standalone)?;
    let mut roles = JoinSet::new();
    roles.spawn(scheduler::run(engine.clone(), sched, stop.clone()));
    roles.spawn(worker::run(
        engine.clone(),
        worker_config(cfg, args),
        stop.clone(),
    ));
    roles.spawn(crate::http::serve_on(
        engine.clone(),
        http_cfg,
        listener,
        stop.clone(),
    ));
    let mut every = tokio::time::interval(Duration::from_secs(5));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = every.tick() => {}
            Some(done) = roles.join_next() => {
                // a role ended on its own: that is an error; stop the others too
                stop.cancel();
                if let Ok(Err(e)) = done {
                    tracing::error!(error = %e, "a role stopped");
                }
                break;
            }
        }
        let now = fingerprint(&xmlconfig);
        if now.is_some() && now != seen {
            seen = now;
            match rescan(&store, &xmlconfig, &source, &opts).await {
                Ok(()) => {}
                Err(Error::Invalid(diags)) => {
                    for d in diags
                        .iter()
                        .filter(|d| d.severity == crate::definition::Severity::Error)
                    {
                        tracing::error!("{d}");
                    }
                    tracing::error!("definitions not synced: fix the errors above (the previous versions keep running, and valid changes in other files wait for the fix)");
                }
                Err(e) => tracing::warn!(error = %e, "rescan failed"),
            }
        }
    }
    while roles.join_next().await.is_some() {}
    Ok(())
}

/// Errors recorded per rescan (the status, the UI and the API show these).
const RECORDED_ERRORS: usize = 10;

/// Syncs the directory (all or nothing) and records the outcome in `definition_sync`, where every
/// process sees it: a clean sync, or the errors that held the whole set back.
async fn rescan(
    store: &std::sync::Arc<dyn crate::store::Store>,
    dir: &Path,
    source: &str,
    opts: &SyncOptions,
) -> Result<()> {
    let outcome = sync::sync_paths(store, vec![dir.to_path_buf()], opts).await;
    let record = match &outcome {
        Ok(report) => {
            tracing::info!(dir = %dir.display(), "synced definitions: {report}");
            for (workflow, file) in &report.disabled_files {
                tracing::warn!(
                    workflow,
                    file,
                    "its file is gone: workflow disabled (its history is kept)"
                );
            }
            for kept in &report.rollbacks_kept {
                tracing::warn!("{kept}");
            }
            crate::store::DefinitionSyncRecord {
                source: source.to_string(),
                error_count: 0,
                errors: Vec::new(),
            }
        }
        Err(Error::Invalid(diags)) => {
            let errors: Vec<String> = diags
                .iter()
                .filter(|d| d.severity == crate::definition::Severity::Error)
                .map(|d| d.to_string())
                .collect();
            crate::store::DefinitionSyncRecord {
                source: source.to_string(),
                error_count: errors.len().max(1) as i64,
                errors: errors.into_iter().take(RECORDED_ERRORS).collect(),
            }
        }
        Err(_) => return outcome.map(|_| ()),
    };
    store.definition_sync_record(&record).await?;
    outcome.map(|_| ())
}

/// Names, sizes and modification times of every XML file below `dir`: cheap change detection.
fn fingerprint(dir: &Path) -> Option<Vec<(PathBuf, u64, SystemTime)>> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64, SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "xml") {
                out.push((
                    path,
                    meta.len(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    (!out.is_empty()).then_some(out)
}
