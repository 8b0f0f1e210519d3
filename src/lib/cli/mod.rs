//! The command line: argument definitions and dispatch. Every command acts on the database directly
//! through the same engine operations the roles and the HTTP API use.

mod backfill;
mod health;
mod inspect;
mod operate;
mod prune;
mod tokens;
mod versions;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::supervisor;

/// akkaflow: a distributed ETL workflow scheduler whose whole coordination lives in a shared SQL database.
#[derive(Debug, Parser)]
#[command(name = "akkaflow", version, propagate_version = true)]
pub struct Cli {
    /// Database URL: sqlite://FILE, mysql://USER:PASS@HOST:PORT/DB or postgres://USER:PASS@HOST:PORT/DB
    #[arg(
        long,
        global = true,
        env = "AKKAFLOW_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Configuration file (default: ./akkaflow.toml when it exists)
    #[arg(long, global = true, env = "AKKAFLOW_CONFIG", hide_env_values = true)]
    pub config: Option<PathBuf>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Most pooled database connections this process holds: replaces the role's `[pool]` max
    /// (scheduler_max, worker_max, http_max; cli_max for other commands)
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_max: Option<u32>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check definition files or directories; needs no database (exit 0 valid, 1 not)
    Validate {
        /// Files or directories; a single file also reads the db_links.xml and file_links.xml
        /// beside it or in a directory above it, as sync of the whole directory would
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Print the result and every diagnostic as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Write a converted copy of original akkaflow files that `validate` accepts: inline
    /// connections become links in OUT_DIR/db_links.xml, legacy coordinator files are folded into
    /// their workflows; what cannot be converted is listed with file:line (exit 1 when anything is)
    Upgrade {
        /// The original files (an xmlconfig directory)
        src_dir: PathBuf,
        /// Where the converted copy goes (must not exist yet, or be empty)
        out_dir: PathBuf,
        /// Print the report as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Validate a directory and load it into the database in one transaction
    Sync {
        /// The definitions directory
        #[arg(default_value = "xmlconfig")]
        dir: PathBuf,
        /// Validate and compute the changes, then roll back
        #[arg(long)]
        dry_run: bool,
        /// Disable workflows whose file is gone (their history is kept)
        #[arg(long)]
        prune: bool,
        /// Replace workflows rolled back in the database (`workflow rollback`) with their differing
        /// file; without it sync keeps the rollback and reports the file as differing
        #[arg(long)]
        overwrite_rollbacks: bool,
        /// Print the counts and changed names as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Apply pending database migrations
    Migrate,
    /// Workflows: list, inspect, trigger, run, enable, disable
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Instances: list, inspect, kill, rerun
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Tasks: retry, kill
    #[command(subcommand)]
    Task(TaskCommand),
    /// Pools: occupancy, and a pool's slots set at once for the whole fleet
    #[command(subcommand)]
    Pool(PoolCommand),
    /// Backfills (created with `workflow backfill`): list, info, cancel
    #[command(subcommand)]
    Backfill(backfill::BackfillCommand),
    /// Print the log of an instance (all its tasks) or of one task
    Logs {
        /// Instance id (or task id with --task)
        id: i64,
        /// ID is a task id: print only that task's log
        #[arg(long)]
        task: bool,
        /// Keep printing new lines until it ends
        #[arg(long, short)]
        follow: bool,
    },
    /// Master, standbys, workers with heartbeat age and running tasks, queue depth
    Status {
        /// Print schedulers, workers and queues as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Is the scheduler, worker or HTTP role beside this command alive (exit 0), for health checks
    Health(health::HealthArgs),
    /// Check the run-state invariants (exit 1 when any is broken)
    Check {
        /// A running task whose lease expired longer ago than this (and whose worker is silent) is stuck
        #[arg(long, default_value_t = 60)]
        stuck_after_secs: u64,
        /// Print what is broken as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Delete ended instances older than their retention with all their rows (tasks, attempts, logs,
    /// events, alerts), old events and alerts of no instance, and dead workers; prints rows per table
    Prune {
        /// Prune what ended longer ago than this, whatever a workflow's retention-days says (90d,
        /// 12h, 30m; 0s prunes every ended instance); default: the configured retention_days
        #[arg(long, value_parser = prune::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Count what would be deleted; delete nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the counts per table as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Run a scheduler: competes for the master lock, fires triggers, rescues lost tasks
    Scheduler,
    /// Run a worker: claims and runs tasks
    Worker(WorkerArgs),
    /// Serve the REST API, the original's /akkaflow routes and the web UI
    Http(HttpArgs),
    /// Scheduler, worker and HTTP server in one process (default database: the SQLite file)
    Standalone {
        /// Definitions to sync at start and rescan every few seconds
        #[arg(long, default_value = "xmlconfig")]
        xmlconfig: PathBuf,
        #[command(flatten)]
        worker: WorkerArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// API tokens: create, list, revoke
    #[command(subcommand)]
    Token(TokenCommand),
    /// Benchmark the engine on this database: burn-down, steady, idle, coordinators; --raw for the SQL limit
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Args, Clone)]
pub struct HttpArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Serve without authentication (every request acts as an admin); refused unless the address is loopback
    #[arg(long)]
    pub no_auth: bool,
    /// Serve GET /metrics without a token (for a Prometheus on a trusted network)
    #[arg(long)]
    pub metrics_public: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown only this once)
    Create {
        /// A unique name for the token (it is the actor in the event log)
        #[arg(long)]
        name: String,
        /// viewer reads; operator also triggers, kills, reruns and retries; admin also changes
        /// definitions and tokens
        #[arg(long, value_parser = parse_role)]
        role: crate::store::TokenRole,
        /// Confine the token to workflows whose dir is this prefix or below it (e.g. /dw)
        #[arg(long)]
        dir: Option<String>,
        /// Print the token and its secret as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets)
    List {
        /// Print the tokens as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token; its UI sessions end with it
    Revoke {
        /// The token's name
        name: String,
    },
}

fn parse_role(s: &str) -> std::result::Result<crate::store::TokenRole, String> {
    s.parse()
        .map_err(|_| format!("expected viewer, operator or admin, got `{s}`"))
}

#[derive(Debug, Args, Clone)]
pub struct WorkerArgs {
    /// How many tasks run at once
    #[arg(long, default_value_t = 8)]
    pub slots: usize,
    /// Queue (label) to serve; repeatable (default: `default`)
    #[arg(long = "queue")]
    pub queues: Vec<String>,
    /// The name `host` attributes pin to (default: the host name)
    #[arg(long)]
    pub name: Option<String>,
    /// For `akkaflow bench`: attempts succeed without running (not a workflow kind users can write)
    #[arg(long, hide = true)]
    pub bench_noop: bool,
}

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// List workflows
    List {
        /// Print the workflows as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// A workflow's nodes, coordinator, upstreams and downstreams
    Info {
        /// The workflow's name
        name: String,
        /// Print the workflow, its nodes and coordinator as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Every stored version of a workflow: number, when it was synced, content hash
    History {
        /// The workflow's name
        name: String,
        /// Print the versions as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// A unified diff of the XML of two stored versions
    Diff {
        /// The workflow's name
        name: String,
        /// The older version
        from: i64,
        /// The newer version (default: the current one)
        to: Option<i64>,
    },
    /// Make a stored version the newest one again (its content becomes a new version, recorded
    /// as an event); sync then keeps it and reports the workflow's file as differing until the
    /// file is updated or `sync --overwrite-rollbacks` replaces it
    Rollback {
        /// The workflow's name
        name: String,
        /// The version whose content to run again (from `workflow history`)
        #[arg(long)]
        to: i64,
        /// Print what was done as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Print the XML of a stored version (default: the current one), e.g. to update the file
    /// after a rollback
    #[command(disable_version_flag = true)]
    Show {
        /// The workflow's name
        name: String,
        /// The version to print
        #[arg(long)]
        version: Option<i64>,
    },
    /// Start an instance with the coordinator's parameters; its success propagates downstream
    Trigger {
        /// The workflow's name
        name: String,
        /// Parameter override, repeatable: --param stadate=2024-01-01
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Then run the whole downstream chain
        #[arg(long)]
        blood: bool,
        /// Return when the instance ends; exit code 0 only if it succeeded
        #[arg(long)]
        wait: bool,
        /// Print the instance id and status as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Start an instance with only the given parameters; no propagation downstream
    #[command(disable_version_flag = true)]
    Run {
        /// The workflow's name
        name: String,
        /// Run this stored version instead of the current one (from `workflow history`)
        #[arg(long)]
        version: Option<i64>,
        /// Parameter, repeatable: --param stadate=2024-01-01
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Return when the instance ends; exit code 0 only if it succeeded
        #[arg(long)]
        wait: bool,
        /// Print the instance id and status as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Run a range of the coordinator's past cron slots again, one instance per slot, driven by
    /// the master (see `backfill list / info / cancel`)
    Backfill(backfill::BackfillArgs),
    /// Enable a workflow (its coordinator fires again)
    Enable {
        /// The workflow's name
        name: String,
    },
    /// Disable a workflow (no new instances; running ones continue)
    Disable {
        /// The workflow's name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// List instances, newest first
    List {
        /// Only instances of this workflow
        #[arg(long)]
        workflow: Option<String>,
        /// Only instances in this state: pending, running, succeeded, failed or killed
        #[arg(long)]
        status: Option<crate::state::InstanceStatus>,
        /// Only instances created at or after this time (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, UTC)
        #[arg(long, value_parser = parse_time)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many, newest first
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print the instances as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// An instance with its tasks, attempts, durations and errors
    Info {
        /// The instance id (from `instance list`)
        id: i64,
        /// Print the instance, its tasks and attempts as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Kill a pending or running instance
    Kill {
        /// The instance id
        id: i64,
    },
    /// Run a finished instance again
    Rerun {
        /// The instance id
        id: i64,
        /// Keep the nodes that succeeded
        #[arg(long)]
        recover: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run a failed or killed task again; its instance continues from there
    Retry {
        /// The task id (first column of `instance info`)
        id: i64,
    },
    /// Kill a task (a running one through its worker, within a heartbeat)
    Kill {
        /// The task id (first column of `instance info`)
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Every pool: its slots, the slots in use, running and waiting tasks
    List {
        /// Print the pools as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Set a pool's slots now, fleet-wide (recorded as an event); the next sync that changes the
    /// pool's slots in pools.xml sets them again
    Set {
        /// The pool's name (from pools.xml)
        name: String,
        /// How many slots its running tasks may take (0 pauses the pool; running tasks finish)
        #[arg(long)]
        slots: i64,
    },
}

fn parse_param(s: &str) -> std::result::Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))?;
    if k.trim().is_empty() {
        return Err(format!("empty parameter name in `{s}`"));
    }
    Ok((k.trim().to_string(), v.to_string()))
}

fn parse_time(s: &str) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    use chrono::{NaiveDate, NaiveDateTime};
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        })
        .map(|t| t.and_utc())
        .map_err(|_| format!("expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, got `{s}`"))
}

/// Parses the process's arguments, runs the command, and returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if !is_role(&cli.command) && !matches!(cli.command, Command::Bench(_)) {
        quiet_on_closed_stdout();
    }
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("akkaflow: cannot start the async runtime: {e}");
            return 2;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            report_error(&e);
            e.exit_code()
        }
    }
}

fn report_error(e: &Error) {
    match e {
        Error::Invalid(diags) => {
            for d in diags {
                eprintln!("{d}");
            }
            eprintln!("akkaflow: {e}");
        }
        other => eprintln!("akkaflow: {other}"),
    }
}

/// The long-running roles: they log at info by default.
fn is_role(command: &Command) -> bool {
    matches!(
        command,
        Command::Scheduler | Command::Worker(_) | Command::Standalone { .. } | Command::Http(_)
    )
}

/// `akkaflow instance info 20 | head`: when the reader goes away, end quietly as `cat` would,
/// instead of panicking with "failed printing to stdout: Broken pipe". Only for short commands:
/// a role (or bench, which runs a fleet) writes to its children's pipes and must see EPIPE as an error, not die of it.
fn quiet_on_closed_stdout() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: called before any thread starts; SIG_DFL installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

fn init_logging(cli: &Cli) {
    use std::io::IsTerminal;
    let default = if is_role(&cli.command) {
        "info"
    } else {
        "warn"
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("AKKAFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // sqlx logs every failed ping of an idle pooled connection at INFO, a line per connection
    // during an outage that each process already reports once: its own lines from WARN up, unless
    // AKKAFLOW_LOG names sqlx
    if !std::env::var("AKKAFLOW_LOG")
        .unwrap_or_default()
        .contains("sqlx")
    {
        filter = filter.add_directive("sqlx=warn".parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // colour codes only for a person at a terminal, never into a redirected log file
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Runs a parsed command; `Ok` carries the exit code (e.g. `--wait` on an instance that failed).
pub async fn run(cli: Cli) -> Result<i32> {
    let mut cfg = Config::load(cli.config.as_deref(), cli.database_url.clone())?;
    cfg.pool.max_override = cli.pool_max;
    match cli.command {
        Command::Validate { paths, json } => inspect::validate(paths, json).await,
        Command::Upgrade {
            src_dir,
            out_dir,
            json,
        } => inspect::upgrade(src_dir, out_dir, json).await,
        Command::Sync {
            dir,
            dry_run,
            prune,
            overwrite_rollbacks,
            json,
        } => operate::sync(&cfg, dir, dry_run, prune, overwrite_rollbacks, json).await,
        Command::Migrate => {
            connect(&cfg).await?;
            println!("migrations applied");
            Ok(0)
        }
        Command::Workflow(c) => operate::workflow(&cfg, c).await,
        Command::Instance(c) => operate::instance(&cfg, c).await,
        Command::Task(c) => operate::task(&cfg, c).await,
        Command::Pool(c) => operate::pool(&cfg, c).await,
        Command::Backfill(c) => backfill::command(&cfg, c).await,
        Command::Logs { id, task, follow } => inspect::logs(&cfg, id, task, follow).await,
        Command::Status { json } => inspect::status(&cfg, json).await,
        Command::Check {
            stuck_after_secs,
            json,
        } => inspect::check(&cfg, stuck_after_secs, json).await,
        Command::Health(args) => health::health(&cfg, args).await,
        Command::Prune {
            older_than,
            dry_run,
            json,
        } => prune::prune(&cfg, older_than, dry_run, json).await,
        Command::Scheduler => supervisor::run_scheduler(&cfg).await.map(|()| 0),
        Command::Worker(args) => supervisor::run_worker(&cfg, &args.into()).await.map(|()| 0),
        Command::Http(args) => supervisor::run_http(&cfg, &args.into()).await.map(|()| 0),
        Command::Standalone {
            xmlconfig,
            worker,
            http,
        } => supervisor::run_standalone(&cfg, xmlconfig, &worker.into(), &http.into(), os_actor())
            .await
            .map(|()| 0),
        Command::Token(c) => tokens::token(&cfg, c).await,
        Command::Bench(args) => crate::bench::run(&cfg, cli.config.as_deref(), args).await,
    }
}

/// Opens the configured database (applying migrations).
pub(crate) async fn connect(cfg: &Config) -> Result<Arc<dyn Store>> {
    cfg.connect().await
}

impl From<WorkerArgs> for supervisor::WorkerOptions {
    fn from(a: WorkerArgs) -> Self {
        supervisor::WorkerOptions {
            slots: a.slots,
            queues: a.queues,
            name: a.name,
            bench_noop: a.bench_noop,
        }
    }
}

impl From<HttpArgs> for supervisor::HttpOptions {
    fn from(a: HttpArgs) -> Self {
        supervisor::HttpOptions {
            listen: a.listen,
            no_auth: a.no_auth,
            metrics_public: a.metrics_public,
        }
    }
}

/// Who is at the keyboard, for event rows.
pub(crate) fn os_actor() -> String {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{user}")
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("our output types serialise")
    );
}

pub(crate) fn params_map(params: Vec<(String, String)>) -> BTreeMap<String, String> {
    params.into_iter().collect()
}

pub(crate) fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    t
}

pub(crate) fn fmt_time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn fmt_duration(
    start: Option<chrono::DateTime<chrono::Utc>>,
    end: Option<chrono::DateTime<chrono::Utc>>,
) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!("{:.1}s", (e - s).num_milliseconds() as f64 / 1000.0),
        (Some(_), None) => "running".into(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every option and positional argument of every command says what it is in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "akkaflow", &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without help text:\n  {}",
            missing.join("\n  ")
        );
    }

    #[test]
    fn the_first_token_command_is_a_valid_command() {
        let args = crate::token::FIRST_TOKEN_COMMAND.split_whitespace();
        let cli = Cli::try_parse_from(args).expect("the quoted command parses");
        assert!(matches!(
            cli.command,
            Command::Token(TokenCommand::Create {
                role: crate::store::TokenRole::Admin,
                ..
            })
        ));
    }
}
