//! Why a run is where it is, in a sentence an operator can act on: why a pending instance has not
//! started, and why a cron slot missed its deadline. Read-only; shared by `instance info`, the UI,
//! the API and the deadline watch.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::alert::first_line;
use crate::error::Result;
use crate::state::{InstanceStatus, TaskStatus};
use crate::store::{CoordinatorRow, InstanceFilter, InstanceRow, Store};

/// Why a pending instance has not started: the runs of its workflow that hold its instance-limit.
pub async fn pending(store: &dyn Store, inst: &InstanceRow) -> Result<String> {
    let limit = store
        .workflow_get(&inst.workflow)
        .await?
        .map(|w| w.instance_limit)
        .unwrap_or(1);
    let running = store
        .instance_list(&InstanceFilter {
            workflow: Some(inst.workflow.clone()),
            status: Some(InstanceStatus::Running),
            since: None,
            before_id: None,
            dir_prefix: None,
            limit: limit.max(1) + 1,
        })
        .await?;
    Ok(pending_text(limit, &running))
}

fn pending_text(limit: i64, running: &[InstanceRow]) -> String {
    if (running.len() as i64) < limit {
        return format!(
            "for the scheduler to start it ({} of instance-limit {limit} running)",
            running.len()
        );
    }
    let ids: Vec<String> = running.iter().map(|i| i.id.to_string()).collect();
    format!(
        "for a free slot: instance-limit {limit} of `{}` is taken by running instance(s) {}",
        running.first().map(|i| i.workflow.as_str()).unwrap_or("?"),
        ids.join(", ")
    )
}

/// Why the run of `slot` had not succeeded by its deadline; `inst` is the slot's instance, if any.
pub async fn late(
    store: &dyn Store,
    coordinator: &CoordinatorRow,
    slot: DateTime<Utc>,
    inst: Option<&InstanceRow>,
    tz: Tz,
) -> Result<String> {
    let at = |t: DateTime<Utc>| t.with_timezone(&tz).format("%m-%d %H:%M").to_string();
    let Some(inst) = inst else {
        return never_created(store, coordinator, slot, tz).await;
    };
    let id = inst.id;
    Ok(match inst.status {
        InstanceStatus::Pending => {
            format!("instance {id} is pending {}", pending(store, inst).await?)
        }
        InstanceStatus::Succeeded => format!(
            "instance {id} succeeded late, at {}",
            inst.ended_at.map(at).unwrap_or_default()
        ),
        InstanceStatus::Running => {
            let mut tasks = store.task_list(id).await?;
            tasks.sort_by_key(|t| t.started_at);
            let running = tasks.iter().find(|t| t.status == TaskStatus::Running);
            let ready = tasks.iter().find(|t| t.status == TaskStatus::Ready);
            match (running, ready) {
                (Some(t), _) => format!(
                    "instance {id} is running task {} since {}",
                    t.node,
                    t.started_at.map(at).unwrap_or_default()
                ),
                (None, Some(t)) => format!(
                    "instance {id} is running: task {} is waiting for a worker",
                    t.node
                ),
                (None, None) => format!("instance {id} is running"),
            }
        }
        InstanceStatus::Failed | InstanceStatus::Killed => {
            let tasks = store.task_list(id).await?;
            let verb = inst.status.as_str();
            match tasks
                .iter()
                .find(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::Killed))
            {
                Some(t) => format!(
                    "instance {id} {verb} at node {}: {}",
                    t.node,
                    first_line(t.error.as_deref().unwrap_or(""))
                ),
                None => format!(
                    "instance {id} {verb}: {}",
                    first_line(inst.error.as_deref().unwrap_or(""))
                ),
            }
        }
    })
}

/// A slot with no instance: its upstreams have not all succeeded, or it has not fired (or never will).
async fn never_created(
    store: &dyn Store,
    c: &CoordinatorRow,
    slot: DateTime<Utc>,
    tz: Tz,
) -> Result<String> {
    let at = |t: DateTime<Utc>| t.with_timezone(&tz).format("%m-%d %H:%M").to_string();
    let waiting: Vec<String> = store
        .coordinator_depend_list(&c.workflow)
        .await?
        .into_iter()
        .filter(|d| d.satisfied_at.is_none())
        .map(|d| d.upstream)
        .collect();
    if !waiting.is_empty() {
        let mut parts = Vec::with_capacity(waiting.len());
        for upstream in waiting {
            let latest = store
                .instance_list(&InstanceFilter {
                    workflow: Some(upstream.clone()),
                    status: None,
                    since: None,
                    before_id: None,
                    dir_prefix: None,
                    limit: 1,
                })
                .await?;
            parts.push(match latest.first() {
                Some(u) => format!(
                    "{upstream} (its latest run, instance {} for {}, is {})",
                    u.id,
                    at(u.scheduled_for),
                    u.status
                ),
                None => format!("{upstream} (it has never run)"),
            });
        }
        return Ok(format!(
            "no run yet: waiting for upstream {}",
            parts.join(", ")
        ));
    }
    Ok(match c.next_fire_at {
        Some(next) if next <= slot => format!(
            "no run yet: the slot has not fired (next fire {}): is a scheduler running?",
            at(next)
        ),
        _ => "no run for this slot: it was skipped (missed while no scheduler ran; only the latest missed slot fires)".to_string(),
    })
}
