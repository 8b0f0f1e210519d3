//! Executors: what each action kind does when a worker runs it. One file per family of kinds.
//!
//! An executor never touches run state: it gets an [`AttemptContext`], writes output lines to the
//! attempt's [`LogSink`], honours the kill token, and returns how the attempt ended. Timeouts and kills
//! stop the whole process group.

mod process;

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
use crate::state::{AttemptEnd, InstanceId, TaskId};
use crate::store::{LogLine, LogStream};

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
    /// A fresh directory for this attempt.
    pub work_dir: PathBuf,
    pub log: LogSink,
    /// Cancelled when the attempt must stop (kill request, instance ended, worker stopping).
    pub stop: CancellationToken,
    /// How long a stopped process group gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

impl AttemptContext {
    pub fn render(&self, t: &Template) -> Result<String, String> {
        t.render(&RenderContext {
            params: &self.params,
            now: self.now,
        })
        .map_err(|e| e.to_string())
    }
}

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
    /// Write everything received so far, then answer (before an attempt's result is reported).
    Flush(tokio::sync::oneshot::Sender<()>),
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

    /// Waits until every line sent so far is in the database (or the writer gave up on it).
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(LogMsg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Runs one attempt of an action to its end.
pub async fn run(ctx: &AttemptContext) -> AttemptEnd {
    let result = match &ctx.action.kind {
        ActionKind::Script { code, param_line, attachments } => {
            process::run_script(ctx, code, param_line.as_ref(), attachments).await
        }
        ActionKind::Shell { command } => process::run_shell(ctx, command, None).await,
        ActionKind::FileExecutor { command, dir_of_file } => {
            process::run_shell(ctx, command, Some(PathBuf::from(dir_of_file))).await
        }
        other => Err(format!(
            "node kind `{}` cannot run in this build yet: only script, shell and file-executor actions run",
            other.kind_name()
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
