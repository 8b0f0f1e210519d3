//! Builders the cases share: rows to insert, tasks made ready, claims, and the owner's and the
//! rescuer's transitions.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};

use crate::state::{InstanceId, TaskId, TaskStatus, TriggerKind};
use crate::store::*;

/// Times compared after a round trip are whole milliseconds: SQLite stores no more.
pub(super) fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

pub(super) fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

pub(super) fn upsert(name: &str, dir: &str, version: i64) -> WorkflowUpsert {
    WorkflowUpsert {
        name: name.to_string(),
        version,
        content_hash: format!("hash-{name}-{version}"),
        source_xml: format!("<work-flow name=\"{name}\"/>"),
        definition: format!("{{\"name\":\"{name}\",\"v\":{version}}}"),
        file_path: format!("xmlconfig/{dir}/{name}.xml"),
        dir: dir.to_string(),
        creator: "张三".to_string(),
        description: format!("{name} 的说明"),
        mail_level: "W_FAILED".to_string(),
        mail_receivers: "[\"ops@example.com\"]".to_string(),
        instance_limit: 2,
        enabled: true,
        retention_days: None,
    }
}

pub(super) async fn workflows(store: &dyn Store, names: &[&str]) {
    let mut tx = store.begin().await.unwrap();
    for name in names {
        tx.workflow_upsert(&upsert(name, "etl", 1)).await.unwrap();
    }
    tx.commit().await.unwrap();
}

pub(super) fn new_instance(workflow: &str, kind: TriggerKind, slot: DateTime<Utc>) -> NewInstance {
    NewInstance {
        parent_task_id: None,
        workflow: workflow.to_string(),
        workflow_version: 1,
        params: "{\"day\":\"2024-01-01\"}".to_string(),
        trigger_kind: kind,
        scheduled_for: slot,
        parent_instance_id: None,
        created_by: "conformance".to_string(),
        backfill_id: crate::state::BackfillId(0),
        started: false,
    }
}

/// A workflow row and one instance of it, minutes after 2024-01-01 00:00.
pub(super) async fn instance(store: &dyn Store, workflow: &str, minute: u32) -> InstanceId {
    if store.workflow_get(workflow).await.unwrap().is_none() {
        workflows(store, &[workflow]).await;
    }
    let mut tx = store.begin().await.unwrap();
    let id = tx
        .instance_insert(&new_instance(
            workflow,
            TriggerKind::Cron,
            at(2024, 1, 1, 0, minute),
        ))
        .await
        .unwrap()
        .expect("a free slot");
    tx.commit().await.unwrap();
    id
}

pub(super) fn new_task(instance: InstanceId, node: &str, queue: &str, priority: i64) -> NewTask {
    NewTask {
        instance_id: instance,
        node: node.to_string(),
        kind: "shell".to_string(),
        max_attempts: 3,
        retry_interval_s: 10,
        timeout_s: Some(60),
        queue: queue.to_string(),
        priority,
        pool: String::new(),
        pool_slots: 1,
        status: TaskStatus::Waiting,
    }
}

/// Inserts `(node, queue, priority)` tasks on a new instance and returns their ids in order.
pub(super) async fn tasks(store: &dyn Store, specs: &[(&str, &str, i64)]) -> Vec<TaskId> {
    let minute = store
        .instance_list(&InstanceFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len() as u32;
    let inst = instance(store, "tasks", minute).await;
    let mut tx = store.begin().await.unwrap();
    let rows: Vec<NewTask> = specs
        .iter()
        .map(|(node, queue, priority)| new_task(inst, node, queue, *priority))
        .collect();
    tx.task_insert_many(&rows).await.unwrap();
    let listed = tx.task_list(inst).await.unwrap();
    tx.commit().await.unwrap();
    specs
        .iter()
        .map(|(node, _, _)| listed.iter().find(|t| t.node == *node).unwrap().id)
        .collect()
}

/// Moves tasks to `ready`, due at `run_at` (a second ago by the database clock when `None`).
pub(super) async fn make_ready(store: &dyn Store, ids: &[TaskId], run_at: Option<DateTime<Utc>>) {
    let run_at = match run_at {
        Some(t) => t,
        None => store.now().await.unwrap() - chrono::Duration::seconds(1),
    };
    let mut tx = store.begin().await.unwrap();
    for id in ids {
        let mut t = TaskTransition::new(*id, vec![TaskStatus::Waiting], TaskStatus::Ready);
        t.run_at = Some(run_at);
        assert_eq!(tx.task_transition(&t).await.unwrap(), Cas::Applied);
    }
    tx.commit().await.unwrap();
}

pub(super) async fn ready_tasks(store: &dyn Store, specs: &[(&str, &str, i64)]) -> Vec<TaskId> {
    let ids = tasks(store, specs).await;
    make_ready(store, &ids, None).await;
    ids
}

pub(super) fn claim(worker: &str, queues: &[&str], limit: i64, ttl: Duration) -> TaskClaimParams {
    TaskClaimParams {
        worker_id: worker.to_string(),
        queues: queues.iter().map(|q| q.to_string()).collect(),
        limit,
        lease_ttl: ttl,
        pools: vec![],
    }
}

pub(super) const MINUTE: Duration = Duration::from_secs(60);

pub(super) async fn claim_ids(store: &dyn Store, p: &TaskClaimParams) -> Vec<TaskId> {
    store
        .task_claim(p)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Ends a running task as its owner would.
pub(super) async fn finish(store: &dyn Store, id: TaskId, worker: &str, attempt: i64) -> Cas {
    let mut tx = store.begin().await.unwrap();
    let mut t = TaskTransition::new(id, vec![TaskStatus::Running], TaskStatus::Succeeded);
    t.fence = Some(Fence {
        worker_id: worker.to_string(),
        attempt,
    });
    t.exit_code = Some(0);
    t.ended_at = Some(store.now().await.unwrap());
    let cas = tx.task_transition(&t).await.unwrap();
    tx.commit().await.unwrap();
    cas
}

/// What the rescuer does with a task whose lease ran out: back to ready, fenced on the old owner.
pub(super) async fn rescue(store: &dyn Store, id: TaskId, worker: &str, attempt: i64) -> Cas {
    let mut tx = store.begin().await.unwrap();
    let mut t = TaskTransition::new(id, vec![TaskStatus::Running], TaskStatus::Ready);
    t.fence = Some(Fence {
        worker_id: worker.to_string(),
        attempt,
    });
    t.run_at = Some(store.now().await.unwrap() - chrono::Duration::seconds(1));
    let cas = tx.task_transition(&t).await.unwrap();
    tx.commit().await.unwrap();
    cas
}
