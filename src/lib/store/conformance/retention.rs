//! Retention: which instances are old enough to prune, and a bounded step that deletes an ended
//! instance's rows (and nothing of any other instance) until it is gone.

use std::time::Duration;

use crate::state::{AlertKind, AttemptOutcome, InstanceId, InstanceStatus, TaskId, TriggerKind};
use crate::store::*;

use super::fixtures::{at, new_instance, new_task, workflows};

const DAY: Duration = Duration::from_secs(86_400);

/// An instance of `workflow` (a child of `parent` when given) with two tasks and, for each, an
/// attempt, three log lines, an event, an alert and a data-monitor check; left in `status`.
async fn instance_with_rows(
    store: &dyn Store,
    workflow: &str,
    minute: u32,
    parent: Option<InstanceId>,
    status: InstanceStatus,
) -> (InstanceId, Vec<TaskId>) {
    let mut tx = store.begin().await.unwrap();
    let kind = if parent.is_some() {
        TriggerKind::SubWorkflow
    } else {
        TriggerKind::Cron
    };
    let id = tx
        .instance_insert(&NewInstance {
            parent_instance_id: parent,
            ..new_instance(workflow, kind, at(2024, 1, 1, 0, minute))
        })
        .await
        .unwrap()
        .expect("a free slot");
    tx.task_insert_many(&[
        new_task(id, "a", "default", 0),
        new_task(id, "b", "default", 0),
    ])
    .await
    .unwrap();
    let tasks: Vec<TaskId> = tx
        .task_list(id)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    let now = store.now().await.unwrap();
    let mut lines = Vec::new();
    for task in &tasks {
        tx.task_attempt_insert(&AttemptRow {
            task_id: *task,
            attempt: 1,
            worker_id: Some("w1".into()),
            outcome: AttemptOutcome::Succeeded,
            exit_code: Some(0),
            error: None,
            started_at: Some(now),
            ended_at: now,
        })
        .await
        .unwrap();
        for seq in 0..3 {
            lines.push(LogLine {
                task_id: *task,
                attempt: 1,
                seq,
                logged_at: now,
                stream: LogStream::Stdout,
                line: format!("line {seq}"),
            });
        }
        tx.event_insert_many(&[NewEvent {
            workflow: Some(workflow.into()),
            instance_id: Some(id),
            task_id: Some(*task),
            kind: "task_succeeded",
            message: "done".into(),
            actor: "conformance".into(),
            ..Default::default()
        }])
        .await
        .unwrap();
        tx.alert_insert(&NewAlert {
            kind: AlertKind::Completion,
            workflow: Some(workflow.into()),
            instance_id: Some(id),
            task_id: Some(*task),
            recipients: vec!["ops@example.com".into()],
            subject: "done".into(),
            body_text: "done".into(),
            body_html: "<p>done</p>".into(),
            channel: None,
            event: "succeeded".into(),
            state: "succeeded".into(),
            scheduled_for: None,
        })
        .await
        .unwrap();
    }
    tx.task_log_insert_many(&lines).await.unwrap();
    let (started, ended) = match status {
        InstanceStatus::Pending => (None, None),
        InstanceStatus::Running => (Some(now), None),
        _ => (Some(now), Some(now)),
    };
    if status != InstanceStatus::Pending {
        let cas = tx
            .instance_transition(&InstanceTransition {
                id,
                from: vec![InstanceStatus::Pending],
                to: status,
                started_at: started,
                ended_at: ended,
                error: None,
            })
            .await
            .unwrap();
        assert_eq!(cas, Cas::Applied);
    }
    tx.commit().await.unwrap();
    for task in &tasks {
        store
            .data_monitor_insert(&NewDataMonitorCheck {
                workflow: workflow.into(),
                instance_id: id,
                task_id: *task,
                node: "a".into(),
                category: None,
                source_name: None,
                time_mark: None,
                value: Some(1.0),
                min_value: None,
                max_value: None,
                passed: true,
                message: "ok".into(),
            })
            .await
            .unwrap();
    }
    (id, tasks)
}

/// Rows each instance made by [`instance_with_rows`] owns.
fn rows_of(instances: u64) -> RetentionCounts {
    RetentionCounts {
        workflow_instance: instances,
        task: 2 * instances,
        task_attempt: 2 * instances,
        task_log: 6 * instances,
        event: 2 * instances,
        alert: 2 * instances,
        data_monitor: 2 * instances,
        worker: 0,
        scheduler: 0,
        deadline_miss: 0,
        worker_metric: 0,
        pool_sample: 0,
        backfill: 0,
        backfill_slot: 0,
    }
}

fn scan(now: chrono::DateTime<chrono::Utc>, age: Duration, uniform: bool) -> RetentionScan {
    RetentionScan {
        now,
        age,
        uniform,
        after: InstanceId(0),
        limit: 100,
    }
}

pub(super) async fn retention_finds_ended_top_level_instances_past_their_workflows_retention(
    store: &dyn Store,
) {
    workflows(store, &["plain"]).await;
    let mut tx = store.begin().await.unwrap();
    tx.workflow_upsert(&WorkflowUpsert {
        retention_days: Some(365),
        ..super::fixtures::upsert("kept_long", "etl", 1)
    })
    .await
    .unwrap();
    tx.workflow_upsert(&WorkflowUpsert {
        retention_days: Some(2),
        ..super::fixtures::upsert("kept_short", "etl", 1)
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (done, _) = instance_with_rows(store, "plain", 1, None, InstanceStatus::Succeeded).await;
    let (running, _) = instance_with_rows(store, "plain", 2, None, InstanceStatus::Running).await;
    let (pending, _) = instance_with_rows(store, "plain", 3, None, InstanceStatus::Pending).await;
    let (child, _) =
        instance_with_rows(store, "plain", 4, Some(done), InstanceStatus::Killed).await;
    let (long, _) = instance_with_rows(store, "kept_long", 5, None, InstanceStatus::Failed).await;
    let (short, _) = instance_with_rows(store, "kept_short", 6, None, InstanceStatus::Failed).await;
    let now = store.now().await.unwrap();

    // ended a moment ago: nothing is 30 days old yet
    let found = store
        .retention_candidates(&scan(now, 30 * DAY, false))
        .await
        .unwrap();
    assert_eq!(found, Vec::<InstanceId>::new());
    // 40 days on: the default (30) and the short retention (2) have passed, the long one (365) not;
    // the child is not top-level, the running and pending ones have not ended
    let later = now + chrono::Duration::days(40);
    let found = store
        .retention_candidates(&scan(later, 30 * DAY, false))
        .await
        .unwrap();
    assert_eq!(found, vec![done, short]);
    // 3 days on: only the short retention has passed
    let found = store
        .retention_candidates(&scan(now + chrono::Duration::days(3), 30 * DAY, false))
        .await
        .unwrap();
    assert_eq!(found, vec![short]);
    // --older-than: one age for every workflow
    let found = store
        .retention_candidates(&scan(later, 30 * DAY, true))
        .await
        .unwrap();
    assert_eq!(found, vec![done, long, short]);
    // paged by id
    let page = store
        .retention_candidates(&RetentionScan {
            after: done,
            limit: 1,
            ..scan(later, 30 * DAY, true)
        })
        .await
        .unwrap();
    assert_eq!(page, vec![long]);
    // the tree below a top-level instance, with states
    let children = store.instance_children(&[done, running]).await.unwrap();
    assert_eq!(children, vec![(child, done, InstanceStatus::Killed)]);
    assert!(store.instance_children(&[child]).await.unwrap().is_empty());
    let _ = pending;
}

pub(super) async fn retention_delete_takes_an_ended_tree_a_bounded_step_at_a_time(
    store: &dyn Store,
) {
    workflows(store, &["wf"]).await;
    let (root, _) = instance_with_rows(store, "wf", 1, None, InstanceStatus::Failed).await;
    let (child, _) = instance_with_rows(store, "wf", 2, Some(root), InstanceStatus::Killed).await;
    let (other, other_tasks) =
        instance_with_rows(store, "wf", 3, None, InstanceStatus::Succeeded).await;
    let (running, _) = instance_with_rows(store, "wf", 4, None, InstanceStatus::Running).await;

    let tree = vec![root, child];
    assert_eq!(store.retention_count(&tree).await.unwrap(), rows_of(2));

    // a set with an instance that has not ended is kept whole
    let step = store
        .retention_delete(&RetentionDelete {
            instances: vec![other, running],
            limit: 1000,
        })
        .await
        .unwrap();
    assert_eq!(
        step,
        RetentionStep {
            deleted: RetentionCounts::default(),
            done: true
        }
    );
    assert!(store.instance_get(other).await.unwrap().is_some());

    // 7 rows per step: the tree's 32 rows take 5 steps, the instances go in the last
    let mut total = RetentionCounts::default();
    let mut steps = 0;
    loop {
        let step = store
            .retention_delete(&RetentionDelete {
                instances: tree.clone(),
                limit: 7,
            })
            .await
            .unwrap();
        steps += 1;
        let rows = step.deleted.total() - step.deleted.workflow_instance;
        assert!(rows <= 7, "step {steps} deleted {rows} rows");
        total.add(&step.deleted);
        if step.done {
            break;
        }
        assert!(steps < 20, "no end in sight: {total:?}");
    }
    assert_eq!(total, rows_of(2));
    assert_eq!(steps, 5);
    assert!(store.instance_get(root).await.unwrap().is_none());
    assert!(store.instance_get(child).await.unwrap().is_none());
    assert_eq!(
        store.retention_count(&tree).await.unwrap(),
        RetentionCounts::default()
    );

    // the other instances keep every row
    assert_eq!(store.retention_count(&[other]).await.unwrap(), rows_of(1));
    assert_eq!(store.retention_count(&[running]).await.unwrap(), rows_of(1));
    let logs = store
        .task_log_read(&LogQuery {
            task_ids: other_tasks.clone(),
            after: None,
            limit: 100,
            contains: None,
        })
        .await
        .unwrap();
    assert_eq!(logs.len(), 6);

    // deleting what is gone is a finished step that deletes nothing
    let step = store
        .retention_delete(&RetentionDelete {
            instances: tree,
            limit: 7,
        })
        .await
        .unwrap();
    assert_eq!(
        step,
        RetentionStep {
            deleted: RetentionCounts::default(),
            done: true
        }
    );
}

pub(super) async fn retention_loose_rows_go_by_age_and_live_processes_stay(store: &dyn Store) {
    workflows(store, &["wf"]).await;
    let (inst, _) = instance_with_rows(store, "wf", 1, None, InstanceStatus::Succeeded).await;
    let mut tx = store.begin().await.unwrap();
    tx.event_insert_many(&[
        NewEvent {
            workflow: Some("wf".into()),
            kind: "workflow_added",
            message: "version 1".into(),
            actor: "conformance".into(),
            ..Default::default()
        },
        NewEvent {
            kind: "token_created",
            message: "admin".into(),
            actor: "conformance".into(),
            ..Default::default()
        },
    ])
    .await
    .unwrap();
    // a slot that missed its deadline: its record goes by age, like the events
    let slot = store.now().await.unwrap() - chrono::Duration::hours(2);
    assert!(tx
        .deadline_miss_insert(&crate::store::NewDeadlineMiss {
            workflow: "wf".into(),
            scheduled_for: slot,
            deadline_at: slot + chrono::Duration::hours(1),
            reason: "no run yet".into(),
            instance_id: None,
            done_at: None,
        })
        .await
        .unwrap());
    tx.commit().await.unwrap();
    for (id, stop) in [("w-stopped", true), ("w-live", false), ("w-busy", true)] {
        store
            .worker_register(&WorkerRegistration {
                id: id.into(),
                name: id.into(),
                host: "h".into(),
                pid: 1,
                queues: "[\"default\"]".into(),
                slots: 1,
            })
            .await
            .unwrap();
        if stop {
            store.worker_deregister(id).await.unwrap();
        }
    }
    // w-busy still has a running task (it is rescued once its lease runs out): its row stays
    let (busy_inst, busy_tasks) =
        instance_with_rows(store, "wf", 2, None, InstanceStatus::Running).await;
    super::fixtures::make_ready(store, &busy_tasks[..1], None).await;
    let claimed = super::fixtures::claim_ids(
        store,
        &super::fixtures::claim("w-busy", &["default"], 1, super::fixtures::MINUTE),
    )
    .await;
    assert_eq!(claimed, busy_tasks[..1]);
    let _ = busy_inst;

    let now = store.now().await.unwrap();
    let young = RetentionLoose {
        before: now - chrono::Duration::days(30),
        dead_before: now - chrono::Duration::days(30),
        metrics_before: now - chrono::Duration::days(7),
        limit: 100,
        dry_run: false,
    };
    assert_eq!(
        store.retention_loose(&young).await.unwrap(),
        RetentionCounts::default()
    );
    // everything created before a moment from now: the two events of no instance and the stopped
    // worker; the live worker (heartbeat younger than `dead_before`) and the busy one stay
    let later = now + chrono::Duration::seconds(5);
    let old = RetentionLoose {
        before: later,
        dead_before: now - chrono::Duration::days(1),
        metrics_before: now - chrono::Duration::days(7),
        limit: 1,
        dry_run: true,
    };
    let counted = store.retention_loose(&old).await.unwrap();
    assert_eq!(
        (counted.event, counted.worker, counted.deadline_miss),
        (2, 1, 1),
        "{counted:?}"
    );
    // one row per table per call
    let delete = RetentionLoose {
        dry_run: false,
        ..old.clone()
    };
    for expected in [(1, 1, 1), (1, 0, 0), (0, 0, 0)] {
        let n = store.retention_loose(&delete).await.unwrap();
        assert_eq!((n.event, n.worker, n.deadline_miss), expected, "{n:?}");
    }
    assert!(store.deadline_miss_list(None, 10).await.unwrap().is_empty());
    let mut workers: Vec<String> = store
        .worker_list()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    workers.sort();
    assert_eq!(workers, ["w-busy", "w-live"]);
    // the instance's own events stay: they go with the instance
    let events = store
        .event_list(&EventFilter {
            instance_id: Some(inst),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
}

pub(super) async fn retention_takes_worker_history_by_its_own_age(store: &dyn Store) {
    let sample = HostSample {
        cpu_percent: Some(5.0),
        load1: 0.1,
        load5: 0.1,
        load15: 0.1,
        mem_used_bytes: 1,
        mem_total_bytes: 2,
        disk_free_bytes: None,
        running_tasks: 0,
    };
    for (id, every) in [("w1", 86_400), ("w2", 86_400), ("w1", 1)] {
        let row = WorkerMetricInsert {
            worker_id: id,
            every: std::time::Duration::from_secs(every),
            host: &sample,
        };
        assert!(store.worker_metric_insert(&row).await.unwrap());
    }
    let now = store.now().await.unwrap();
    let rows = store
        .worker_metric_list(now - chrono::Duration::days(2), 100)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    // the day rows are older than the second's row
    let day = rows.iter().map(|r| r.sampled_at).min().unwrap();
    let loose = |metrics_before, dry_run| RetentionLoose {
        // the other tables' cutoffs keep everything: the history goes by its own
        before: now - chrono::Duration::days(3650),
        dead_before: now - chrono::Duration::days(3650),
        metrics_before,
        limit: 1,
        dry_run,
    };
    let kept = store.retention_loose(&loose(day, true)).await.unwrap();
    assert_eq!(
        kept,
        RetentionCounts::default(),
        "a row at the cutoff stays"
    );
    let cut = day + chrono::Duration::seconds(1);
    let counted = store.retention_loose(&loose(cut, true)).await.unwrap();
    assert_eq!(
        counted,
        RetentionCounts {
            worker_metric: 2,
            ..Default::default()
        }
    );
    for expected in [1, 1, 0] {
        let n = store.retention_loose(&loose(cut, false)).await.unwrap();
        assert_eq!(n.worker_metric, expected, "one row per call: {n:?}");
        assert_eq!(n.total(), n.worker_metric, "{n:?}");
    }
    let left = store
        .worker_metric_list(now - chrono::Duration::days(2), 100)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].sampled_at > day);
}
