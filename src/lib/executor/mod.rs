//! Executors: what each action kind does when a worker runs it. One file per family of kinds:
//! `process` (script, shell, file-executor), `sql`, `monitor` (file-monitor, data-monitor),
//! `transfer` (with `typemap`, `bulk` and `delimited` for its types, bulk paths and files), `metadata`;
//! `links` resolves link names and `db` opens the connections they name.
//!
//! An executor never touches run state: it gets an [`AttemptContext`], writes output lines to the
//! attempt's [`LogSink`], honours the kill token and the timeout through one [`Stopper`], and returns
//! how the attempt ended. Timeouts and kills stop the whole process group, or cancel the running
//! query on the database server and roll back. An executor never sees the store: what it needs from
//! akkaflow's database (link lookup, recording a data-monitor check) comes through the narrow
//! [`ExecutorPort`], which the worker implements; passwords never reach the log or an error message.

mod bulk;
mod db;
mod db_typed;
mod delimited;
mod links;
mod metadata;
mod monitor;
mod process;
mod sql;
mod transfer;
mod typemap;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::definition::template::{RenderContext, Template};
use crate::definition::{Action, ActionKind};
use crate::definition::{DbLink, FileLink};
use crate::state::{AttemptEnd, InstanceId, TaskId};
use crate::store::{LogLine, LogStream, NewDataMonitorCheck, StoreError};

/// What an executor may ask of akkaflow's own database, and nothing more: the port keeps run state
/// out of reach of executor code (the worker implements it over the store).
#[async_trait::async_trait]
pub trait ExecutorPort: Send + Sync {
    /// The db link `name`, if `sync` wrote one.
    async fn db_link(&self, name: &str) -> Result<Option<DbLink>, StoreError>;
    /// The file link `name`, if `sync` wrote one.
    async fn file_link(&self, name: &str) -> Result<Option<FileLink>, StoreError>;
    /// Records one data-monitor check in the `data_monitor` history.
    async fn monitor_check_record(&self, check: &NewDataMonitorCheck) -> Result<(), StoreError>;
}

/// Tunables of the data executors, from the configuration file.
#[derive(Clone, Debug)]
pub struct ExecutorSettings {
    /// How long file-monitor waits before re-checking that the listing is stable.
    pub file_monitor_recheck: Duration,
    /// Rows per multi-row INSERT (and per batch handed to a writer) in a transfer.
    pub transfer_batch_rows: usize,
    /// Command lines that run `sql` on the link kinds this build has no driver for (`ORACLE`,
    /// `HIVE`), keyed by kind.
    pub sql_clients: std::collections::BTreeMap<crate::definition::DbKind, String>,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            file_monitor_recheck: Duration::from_secs(5),
            transfer_batch_rows: 1000,
            sql_clients: Default::default(),
        }
    }
}

/// Everything an attempt needs to run.
pub struct AttemptContext {
    pub workflow: String,
    pub instance_id: InstanceId,
    pub task_id: TaskId,
    pub node: String,
    pub attempt: i64,
    pub action: Action,
    pub params: BTreeMap<String, String>,
    /// The instance's scheduled time in its zone: "now" for `${time...}`.
    pub now: DateTime<Tz>,
    /// The coordinator's business calendar as of the instance's version (for `workday`).
    pub calendar: Option<crate::definition::calendar::Calendar>,
    /// A fresh directory for this attempt, absolute; [`run`] makes it before the action starts.
    pub work_dir: PathBuf,
    pub log: LogSink,
    /// Cancelled when the attempt must stop (kill request, instance ended, worker stopping).
    pub stop: CancellationToken,
    /// How long a stopped process group gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// akkaflow's own database, as far as an executor may see it.
    pub port: Arc<dyn ExecutorPort>,
    pub settings: ExecutorSettings,
}

impl AttemptContext {
    pub fn render(&self, t: &Template) -> Result<String, String> {
        t.render(&RenderContext {
            params: &self.params,
            now: self.now,
            calendar: self.calendar.as_ref(),
        })
        .map_err(|e| e.to_string())
    }
}

/// The attempt's kill token and deadline in one place, so every executor stops the same way.
#[derive(Clone)]
pub(crate) struct Stopper {
    stop: CancellationToken,
    deadline: Option<tokio::time::Instant>,
    timeout: Option<Duration>,
}

impl Stopper {
    /// Starts the attempt's clock now.
    pub(crate) fn new(ctx: &AttemptContext) -> Self {
        let timeout = ctx.action.timeout_secs.map(Duration::from_secs);
        Stopper {
            stop: ctx.stop.clone(),
            deadline: timeout.map(|t| tokio::time::Instant::now() + t),
            timeout,
        }
    }

    fn ended(&self) -> AttemptEnd {
        if self.stop.is_cancelled() {
            AttemptEnd::Killed {
                reason: "killed".into(),
            }
        } else {
            AttemptEnd::TimedOut {
                after: self.timeout.unwrap_or_default(),
            }
        }
    }

    /// Resolves when the attempt must stop (kill or timeout). Cancel-safe.
    pub(crate) async fn stopped(&self) -> AttemptEnd {
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = deadline => {}
        }
        self.ended()
    }

    /// `Some` once the attempt must stop: for checks between statements and batches.
    pub(crate) fn check(&self) -> Option<AttemptEnd> {
        let late = self
            .deadline
            .is_some_and(|d| tokio::time::Instant::now() >= d);
        (self.stop.is_cancelled() || late).then(|| self.ended())
    }

    /// Sleeps `d`, or less when the attempt is stopped first (then returns how it ended).
    pub(crate) async fn sleep(&self, d: Duration) -> Option<AttemptEnd> {
        tokio::select! {
            end = self.stopped() => Some(end),
            _ = tokio::time::sleep(d) => None,
        }
    }
}

/// What an executor returns: how the attempt ended, or an error message (a failed attempt).
pub(crate) type Outcome = Result<AttemptEnd, String>;

/// Where an attempt's output goes: lines are numbered here and batched into `task_log` by the
/// worker's log writer; past the cap, one truncation marker and nothing more.
#[derive(Clone)]
pub struct LogSink {
    task_id: TaskId,
    attempt: i64,
    seq: Arc<AtomicI64>,
    max_lines: i64,
    tx: mpsc::Sender<LogMsg>,
}

/// What flows to the worker's log writer.
pub enum LogMsg {
    Line(LogLine),
    /// Hand over every line received so far and not yet written: the reporter writes them in the
    /// transaction that records the results, so a finished attempt's log is complete when its end
    /// is visible, at no extra round trip.
    Take(tokio::sync::oneshot::Sender<Vec<LogLine>>),
}

impl LogSink {
    pub fn new(task_id: TaskId, attempt: i64, max_lines: u64, tx: mpsc::Sender<LogMsg>) -> Self {
        LogSink {
            task_id,
            attempt,
            seq: Arc::new(AtomicI64::new(0)),
            max_lines: max_lines as i64,
            tx,
        }
    }

    pub async fn line(&self, stream: LogStream, line: String) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (stream, line) = match seq.cmp(&self.max_lines) {
            std::cmp::Ordering::Less => (stream, line),
            std::cmp::Ordering::Equal => (
                LogStream::System,
                format!("[akkaflow] output truncated after {} lines", self.max_lines),
            ),
            std::cmp::Ordering::Greater => return,
        };
        let entry = LogLine {
            task_id: self.task_id,
            attempt: self.attempt,
            seq,
            logged_at: Utc::now(),
            stream,
            line,
        };
        // the writer only goes away at shutdown, when output no longer matters
        let _ = self.tx.send(LogMsg::Line(entry)).await;
    }

    pub async fn system(&self, line: impl Into<String>) {
        self.line(LogStream::System, line.into()).await;
    }

    /// A progress line of a data executor (what a script would print on stdout).
    pub async fn out(&self, line: impl Into<String>) {
        self.line(LogStream::Stdout, line.into()).await;
    }
}

/// Runs one attempt of an action to its end, in its own directory (made here, where the actions
/// that use it are run: the worker's claim-to-report path makes no file system call of its own).
pub async fn run(ctx: &AttemptContext) -> AttemptEnd {
    let stop = Stopper::new(ctx);
    let result = match tokio::fs::create_dir_all(&ctx.work_dir).await {
        Ok(()) => run_action(ctx, &stop).await,
        Err(e) => Err(format!(
            "cannot create working directory {}: {e}",
            ctx.work_dir.display()
        )),
    };
    match result {
        Ok(end) => end,
        Err(error) => {
            ctx.log.system(format!("[akkaflow] {error}")).await;
            AttemptEnd::Failed {
                exit_code: None,
                error,
            }
        }
    }
}

/// The action itself: its executor.
async fn run_action(ctx: &AttemptContext, stop: &Stopper) -> Result<AttemptEnd, String> {
    match &ctx.action.kind {
        ActionKind::Script {
            code,
            param_line,
            attachments,
        } => process::run_script(ctx, stop, code, param_line.as_ref(), attachments).await,
        ActionKind::Shell { command } => process::run_shell(ctx, stop, command, None).await,
        ActionKind::FileExecutor {
            command,
            dir_of_file,
        } => process::run_shell(ctx, stop, command, Some(PathBuf::from(dir_of_file))).await,
        ActionKind::Sql { db_link, sql } => sql::run(ctx, stop, db_link, sql).await,
        ActionKind::FileMonitor(m) => monitor::run_file(ctx, stop, m).await,
        ActionKind::DataMonitor(m) => monitor::run_data(ctx, stop, m).await,
        ActionKind::Transfer(t) => transfer::run(ctx, stop, t).await,
        ActionKind::Metadata(m) => metadata::run(ctx, stop, m).await,
        // the engine runs these inside the transaction that reaches them; a worker never should
        other @ (ActionKind::Email { .. } | ActionKind::SubWorkflow { .. }) => Err(format!(
            "node kind `{}` is run by the engine when reached, not by a worker",
            other.kind_name()
        )),
    }
}
