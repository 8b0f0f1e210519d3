//! Which alerts a state change writes, in its own transaction: the completion or kill-node mail when
//! an instance ends, retry-failure, recovery and timeout mails when an attempt ends, and the mail of
//! an `<email>` node, which the engine "runs" when it is reached (no worker, exactly once). Each
//! alert also gets one row per configured channel that takes it (its `kinds`, `dirs`, and the
//! workflow's `alert-channels`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::dag::InstanceEnd;
use super::Engine;
use crate::alert::{self, ChannelRoute, InstanceFacts, TaskFacts};
use crate::definition::template::RenderContext;
use crate::definition::{ActionKind, MailLevel, NodeKind, Workflow};
use crate::error::Result;
use crate::state::{AfterAttempt, AttemptEnd, InstanceStatus, TaskStatus};
use crate::store::{InstanceRow, NewAlert, StoreTx, TaskRow};

/// What an instance's end sends: mail, and to which chat channels.
pub(super) struct EndAlert<'a> {
    pub mail_wanted: bool,
    pub channels: Vec<&'a ChannelRoute>,
}

impl EndAlert<'_> {
    pub(super) fn sends(&self) -> bool {
        self.mail_wanted || !self.channels.is_empty()
    }
}

impl Engine {
    /// The channels that take an alert about `event` of `def`.
    fn channels_for(&self, def: &Workflow, event: &str) -> Vec<&ChannelRoute> {
        self.alerts
            .routes
            .iter()
            .filter(|r| r.takes(event, &def.dir, &def.alert_channels))
            .collect()
    }

    /// Writes `alert` as a mail when it has recipients, and one copy per channel in `channels`.
    async fn queue_alert(
        tx: &mut dyn StoreTx,
        alert: &NewAlert,
        channels: &[&ChannelRoute],
        detail: &str,
    ) -> Result<()> {
        if !alert.recipients.is_empty() {
            tx.alert_insert(alert).await?;
        }
        for c in channels {
            tx.alert_insert(&alert::for_channel(alert, &c.name, detail))
                .await?;
        }
        Ok(())
    }

    /// Writes an alert about `def` that no run change causes (a missed deadline, a late success):
    /// to its receivers and to every channel that takes `event`; `build` gets the recipients.
    pub(crate) async fn queue_workflow_alert(
        &self,
        tx: &mut dyn StoreTx,
        def: &Workflow,
        event: &str,
        detail: &str,
        build: impl FnOnce(Vec<String>) -> NewAlert + Send,
    ) -> Result<()> {
        let channels = self.channels_for(def, event);
        let (_, recipients) = self.alert_audience(tx, def).await?;
        if recipients.is_empty() && channels.is_empty() {
            return Ok(());
        }
        Self::queue_alert(tx, &build(recipients), &channels, detail).await
    }

    /// Who an alert about `def` goes to: the workflows that depend on it, and the receivers of the
    /// workflow plus theirs, deduplicated.
    async fn alert_audience(
        &self,
        tx: &mut dyn StoreTx,
        def: &Workflow,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let downstream = tx.coordinator_downstream(&def.name).await?;
        let theirs = tx.workflow_receivers(&downstream).await?;
        let recipients = alert::merge_recipients(
            def.mail_receivers
                .iter()
                .map(String::as_str)
                .chain(theirs.iter().map(String::as_str)),
        );
        Ok((downstream, recipients))
    }

    /// Whether an instance of `def` ending as `end` sends anything: mail (per `mail-level`, or the
    /// kill node's) and the channels that take its event. Decided before anything is read.
    pub(super) fn instance_end_alerts(&self, def: &Workflow, end: &InstanceEnd) -> EndAlert<'_> {
        let level = match end.status {
            InstanceStatus::Succeeded => Some(MailLevel::Succeeded),
            InstanceStatus::Failed => Some(MailLevel::Failed),
            InstanceStatus::Killed => Some(MailLevel::Killed),
            _ => None,
        };
        let mail_wanted =
            end.kill_node.is_some() || level.is_some_and(|l| def.mail_level.contains(&l));
        let event = match &end.kill_node {
            Some(_) => "killed".to_string(),
            None => end.status.to_string(),
        };
        EndAlert {
            mail_wanted,
            channels: self.channels_for(def, &event),
        }
    }

    /// The completion mail (per `mail-level`) or the kill node's mail of an instance of `def` that
    /// just ended, as [`Engine::instance_end_alerts`] decided; it reads the instance's tasks, so
    /// their changes must be written.
    pub(super) async fn alert_instance_end(
        &self,
        tx: &mut dyn StoreTx,
        (inst, def): (&InstanceRow, &Workflow),
        end: &InstanceEnd,
        alert: EndAlert<'_>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let EndAlert {
            mail_wanted,
            channels,
        } = alert;
        let (downstream, mut recipients) = self.alert_audience(tx, def).await?;
        if !mail_wanted {
            recipients.clear();
        }
        if recipients.is_empty() && channels.is_empty() {
            return Ok(());
        }
        let mut tasks = tx.task_list(inst.id).await?;
        tasks.sort_by_key(|t| t.id.0);
        let mut log_tails = Vec::new();
        for t in tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Failed)
            .take(3)
        {
            let lines = tx.task_log_tail(t.id, self.alerts.log_tail_lines).await?;
            log_tails.push((t.node.clone(), lines));
        }
        let facts = InstanceFacts {
            instance: inst,
            status: end.status,
            reason: &end.reason,
            ended_at: now,
            tasks: &tasks,
            downstream: &downstream,
            log_tails: &log_tails,
        };
        let mail = match &end.kill_node {
            Some((node, message)) => alert::kill_node(&facts, node, message, recipients),
            None => alert::completion(&facts, recipients),
        };
        // the chat line: the kill node's message, else the first failed node's error, else why
        let detail = match (
            &end.kill_node,
            tasks
                .iter()
                .find(|t| t.error.is_some() && t.status == TaskStatus::Failed),
        ) {
            (Some((node, message)), _) if !message.is_empty() => format!("{node}: {message}"),
            (_, Some(t)) => format!(
                "{}: {}",
                t.node,
                alert::first_line(t.error.as_deref().unwrap_or(""))
            ),
            _ => end.reason.clone(),
        };
        Self::queue_alert(tx, &mail, &channels, &detail).await
    }

    /// Timeout, retry-failure and recovery mails for an attempt that just ended (`task` as it ran).
    pub(super) async fn alert_attempt_end(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        task: &TaskRow,
        end: &AttemptEnd,
        decision: &AfterAttempt,
    ) -> Result<()> {
        /// Which mail an attempt's end sends, decided before anything is read.
        enum Mail {
            Timeout(u64),
            RetryFailure(u64),
            Recovery,
        }
        let threshold = self.alerts.retry_failure_threshold;
        let mail = match (end, decision) {
            (AttemptEnd::TimedOut { after }, _) => Mail::Timeout(after.as_secs()),
            (_, AfterAttempt::Retry { after }) if threshold > 0 && task.attempt == threshold => {
                Mail::RetryFailure(after.as_secs())
            }
            (_, AfterAttempt::Succeed) if threshold > 0 && task.attempt > threshold => {
                Mail::Recovery
            }
            _ => return Ok(()),
        };
        let def = self
            .definition_in(tx, &inst.workflow, inst.workflow_version)
            .await?;
        let event = match mail {
            Mail::Timeout(_) => "timeout",
            Mail::RetryFailure(_) => "retry_failure",
            Mail::Recovery => "recovery",
        };
        let channels = self.channels_for(&def, event);
        let (_, recipients) = self.alert_audience(tx, &def).await?;
        if recipients.is_empty() && channels.is_empty() {
            return Ok(());
        }
        let error = end.error();
        let facts = TaskFacts {
            instance: inst,
            task,
            error: error.as_deref(),
        };
        let alert = match mail {
            Mail::Timeout(secs) => alert::timeout(&facts, secs, recipients),
            Mail::RetryFailure(secs) => alert::retry_failure(&facts, secs, recipients),
            Mail::Recovery => alert::recovery(&facts, recipients),
        };
        let detail = format!(
            "{}: {}",
            task.node,
            alert::first_line(error.as_deref().unwrap_or("succeeded"))
        );
        Self::queue_alert(tx, &alert, &channels, &detail).await
    }

    /// The alert of a task that failed because it was lost with its worker `lost` times (its
    /// lost budget): to the workflow's receivers and the channels that take `lost`.
    pub(super) async fn alert_lost_budget(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        task: &TaskRow,
        lost: i64,
        error: &str,
    ) -> Result<()> {
        let def = self
            .definition_in(tx, &inst.workflow, inst.workflow_version)
            .await?;
        let channels = self.channels_for(&def, "lost");
        let (_, recipients) = self.alert_audience(tx, &def).await?;
        if recipients.is_empty() && channels.is_empty() {
            return Ok(());
        }
        let facts = TaskFacts {
            instance: inst,
            task,
            error: Some(error),
        };
        let alert = alert::lost(&facts, lost, recipients);
        let detail = format!("{}: {}", task.node, alert::first_line(error));
        Self::queue_alert(tx, &alert, &channels, &detail).await
    }

    /// The most times a task of `node` may be lost with its worker: the action's `lost-times`, else
    /// the workflow's, else `max_lost_attempts` of the configuration.
    pub(super) async fn lost_budget(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        node: &str,
    ) -> Result<i64> {
        let def = self
            .definition_in(tx, &inst.workflow, inst.workflow_version)
            .await?;
        let action = match def.node(node).map(|n| &n.kind) {
            Some(NodeKind::Action(a)) => a.lost_times,
            _ => None,
        };
        Ok(i64::from(
            action
                .or(def.lost_times)
                .unwrap_or(self.max_lost_attempts)
                .max(1),
        ))
    }

    /// Queues an `<email>` node's mail; the node's final status and what to record.
    pub(super) async fn queue_email_node(
        &self,
        tx: &mut dyn StoreTx,
        inst: &InstanceRow,
        task: &TaskRow,
    ) -> Result<(TaskStatus, String)> {
        let def = self
            .definition_in(tx, &inst.workflow, inst.workflow_version)
            .await?;
        let Some(NodeKind::Action(action)) = def.node(&task.node).map(|n| &n.kind) else {
            return Ok((
                TaskStatus::Failed,
                "the node is not in the definition".into(),
            ));
        };
        let ActionKind::Email { subject, body_html } = &action.kind else {
            return Ok((TaskStatus::Failed, "the node is not an email node".into()));
        };
        let params: BTreeMap<String, String> =
            serde_json::from_str(&inst.params).unwrap_or_default();
        let ctx = RenderContext {
            params: &params,
            now: inst.scheduled_for.with_timezone(&self.zone_of(&def)),
            calendar: def
                .coordinator
                .as_ref()
                .and_then(|c| c.business_days.as_ref()),
        };
        let rendered = subject
            .as_ref()
            .map(|s| s.render(&ctx))
            .transpose()
            .and_then(|s| Ok((s, body_html.render(&ctx)?)));
        let (subject, body) = match rendered {
            Ok(v) => v,
            Err(e) => return Ok((TaskStatus::Failed, format!("cannot render the mail: {e}"))),
        };
        let (_, recipients) = self.alert_audience(tx, &def).await?;
        if recipients.is_empty() {
            return Ok((
                TaskStatus::Failed,
                format!(
                    "workflow `{}` has no mail-receivers (nor do its downstream workflows): nobody to mail",
                    inst.workflow
                ),
            ));
        }
        let count = recipients.len();
        tx.alert_insert(&alert::email_node(inst, task, subject, &body, recipients))
            .await?;
        Ok((
            TaskStatus::Succeeded,
            format!("mail queued for {count} recipient(s)"),
        ))
    }
}
