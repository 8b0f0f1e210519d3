//! One attempt, from claim to reported result: prepare its working directory, run the executor,
//! free the slot, report the end with its log (retrying while the database is away).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono_tz::Tz;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{RunningMap, StopReason, WorkerConfig};
use crate::definition::NodeKind;
use crate::definition::{DbLink, FileLink};
use crate::engine::Engine;
use crate::executor::{self, AttemptContext, ExecutorPort, LogMsg, LogSink};
use crate::state::AttemptEnd;
use crate::store::{ClaimedTask, NewDataMonitorCheck, Store, StoreError};

/// The executor port over the store: the three calls an executor may make, and no others.
struct StorePort(Arc<dyn Store>);

#[async_trait::async_trait]
impl ExecutorPort for StorePort {
    async fn db_link(&self, name: &str) -> Result<Option<DbLink>, StoreError> {
        self.0.db_link_get(name).await
    }

    async fn file_link(&self, name: &str) -> Result<Option<FileLink>, StoreError> {
        self.0.file_link_get(name).await
    }

    async fn monitor_check_record(&self, check: &NewDataMonitorCheck) -> Result<(), StoreError> {
        self.0.data_monitor_insert(check).await
    }
}

pub(super) struct Runner {
    pub engine: Engine,
    pub worker_id: String,
    pub cfg: WorkerConfig,
    pub stop: CancellationToken,
    pub reason: Arc<Mutex<Option<StopReason>>>,
    pub log_tx: mpsc::Sender<LogMsg>,
    pub running: RunningMap,
    pub slot_freed: Arc<Notify>,
    /// Whether the slot frees as the action ends (see the claim loop) rather than once recorded.
    pub frees_early: Arc<AtomicBool>,
    pub report_tx: mpsc::Sender<super::reporter::Report>,
}

impl Runner {
    pub(super) async fn run(self, task: ClaimedTask) {
        let span = tracing::info_span!("attempt", workflow = %task.workflow, instance_id = %task.instance_id,
            task_id = %task.id, node = %task.node, attempt = task.attempt);
        async {
            let log = LogSink::new(
                task.id,
                task.attempt,
                self.cfg.log_max_lines,
                self.log_tx.clone(),
            );
            let end = self.execute(&task, &log).await;
            let shutdown =
                *self.reason.lock().expect("never poisoned") == Some(StopReason::Shutdown);
            log.system(format!(
                "[akkaflow] attempt {} ended: {}",
                task.attempt,
                summary(&end, shutdown)
            ))
            .await;
            if let Some(r) = self
                .running
                .lock()
                .expect("never poisoned")
                .get_mut(&task.id)
            {
                r.ended = true;
            }
            if self.frees_early.load(Ordering::Relaxed) {
                // the slot takes the next claim while the result is recorded
                self.slot_freed.notify_one();
            }
            self.report(&task, &end, shutdown).await;
            self.running
                .lock()
                .expect("never poisoned")
                .remove(&task.id);
            self.slot_freed.notify_one();
        }
        .instrument(span)
        .await
    }

    async fn execute(&self, task: &ClaimedTask, log: &LogSink) -> AttemptEnd {
        match self.prepare(task, log).await {
            Ok(_) if self.cfg.bench_noop => AttemptEnd::Succeeded,
            Ok(ctx) => executor::run(&ctx).await,
            Err(error) => {
                log.system(format!("[akkaflow] {error}")).await;
                AttemptEnd::Failed {
                    exit_code: None,
                    error,
                }
            }
        }
    }

    /// The definition, waiting out a database outage: infrastructure trouble is not the task's failure.
    async fn definition(
        &self,
        task: &ClaimedTask,
    ) -> Result<std::sync::Arc<crate::definition::Workflow>, String> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self
                .engine
                .definition(&task.workflow, task.workflow_version)
                .await
            {
                Ok(def) => return Ok(def),
                Err(crate::Error::Store(e)) if e.is_connection() && !self.stop.is_cancelled() => {
                    tracing::debug!(error = %e, "loading the definition; the database is away");
                    tokio::time::sleep(super::jitter(backoff)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    async fn prepare(&self, task: &ClaimedTask, log: &LogSink) -> Result<AttemptContext, String> {
        let def = self.definition(task).await?;
        let node = def
            .node(&task.node)
            .ok_or_else(|| format!("node `{}` is not in the definition", task.node))?;
        let NodeKind::Action(action) = &node.kind else {
            return Err(format!("node `{}` is not an action", task.node));
        };
        let params = serde_json::from_str(&task.params)
            .map_err(|e| format!("instance parameters unreadable: {e}"))?;
        let tz: Tz = self.engine.zone_of(&def);
        // made by the executor when the action runs ([`executor::run`]); the root is absolute
        let work_dir = self
            .cfg
            .work_dir
            .join(task.instance_id.to_string())
            .join(format!("{}-{}", task.id, task.attempt));
        log.system(format!(
            "[akkaflow] attempt {} of `{}` on worker {} in {}",
            task.attempt,
            task.node,
            self.worker_id,
            work_dir.display()
        ))
        .await;
        Ok(AttemptContext {
            workflow: task.workflow.clone(),
            instance_id: task.instance_id,
            task_id: task.id,
            node: task.node.clone(),
            attempt: task.attempt,
            action: (**action).clone(),
            params,
            now: task.scheduled_for.with_timezone(&tz),
            calendar: def
                .coordinator
                .as_ref()
                .and_then(|c| c.business_days.clone()),
            work_dir,
            log: log.clone(),
            stop: self.stop.clone(),
            kill_grace: Duration::from_secs(5),
            port: Arc::new(StorePort(self.engine.store.clone())),
            settings: self.cfg.executor.clone(),
        })
    }

    /// Reports the end, retrying while the database is unreachable: a result is never dropped.
    /// Hands the result to the reporter and waits until it is recorded: the task stays in the
    /// running map (its lease renewed) until then.
    async fn report(&self, task: &ClaimedTask, end: &AttemptEnd, shutdown: bool) {
        let (done, recorded) = tokio::sync::oneshot::channel();
        let report = super::reporter::Report {
            task: task.clone(),
            end: end.clone(),
            hand_back: shutdown,
            put_off: false,
            done,
        };
        if self.report_tx.send(report).await.is_ok() {
            let _ = recorded.await;
        }
    }
}

fn summary(end: &AttemptEnd, shutdown: bool) -> String {
    if shutdown {
        return "stopped because the worker is shutting down; handed back".into();
    }
    match end {
        AttemptEnd::Succeeded => "succeeded".into(),
        other => other.error().unwrap_or_default(),
    }
}
