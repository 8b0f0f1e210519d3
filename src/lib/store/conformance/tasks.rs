//! Cases for tasks: insert, claim (limit, queues, due time, order, concurrency), fencing, leases
//! and kill checks.

use std::collections::BTreeSet;
use std::time::Duration;

use super::fixtures::*;
use crate::state::{TaskId, TaskStatus};
use crate::store::*;
use crate::testkit::wait_for;

pub(super) async fn task_insert_many_and_list(store: &dyn Store) {
    let inst = instance(store, "w", 0).await;
    let mut tx = store.begin().await.unwrap();
    let mut load = new_task(inst, "加载", "etl", 5);
    load.timeout_s = None;
    let ids = tx
        .task_insert_many(&[new_task(inst, "extract", "default", 0), load])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let listed = store.task_list(inst).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(ids, [listed[0].id, listed[1].id], "ids in the order given");
    let t = &listed[1];
    assert!(listed[0].id < t.id);
    assert_eq!(
        (
            t.instance_id,
            t.node.as_str(),
            t.kind.as_str(),
            t.status,
            t.attempt,
            t.max_attempts
        ),
        (inst, "加载", "shell", TaskStatus::Waiting, 0, 3)
    );
    assert_eq!(
        (
            t.retry_interval_s,
            t.timeout_s,
            t.queue.as_str(),
            t.priority
        ),
        (10, None, "etl", 5)
    );
    assert_eq!(
        (t.run_at, t.worker_id.as_deref(), t.lease_until),
        (None, None, None)
    );
    assert_eq!(
        (t.kill_requested, t.exit_code, t.error.as_deref()),
        (false, None, None)
    );
    assert_eq!((t.started_at, t.ended_at), (None, None));
    assert_eq!(listed[0].timeout_s, Some(60));
    assert_eq!(store.task_get(t.id).await.unwrap().as_ref(), Some(t));
    assert_eq!(store.task_get(TaskId(t.id.0 + 1000)).await.unwrap(), None);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.task_list(inst).await.unwrap(), listed);
    tx.task_insert_many(&[]).await.unwrap();
    assert!(
        tx.task_insert_many(&[new_task(inst, "extract", "default", 0)])
            .await
            .is_err(),
        "a node appears once per instance"
    );
}

/// An instance born started: `running` from its insert, its tasks in the statuses given, a ready
/// one due now and a finished one ended now, by the database's clock.
pub(super) async fn instance_and_tasks_inserted_started(store: &dyn Store) {
    let mut tx = store.begin().await.unwrap();
    let inst = tx
        .instance_insert(&NewInstance {
            started: true,
            ..new_instance(
                "born",
                crate::state::TriggerKind::Cron,
                at(2024, 1, 1, 0, 0),
            )
        })
        .await
        .unwrap()
        .expect("a free slot");
    let rows = [
        NewTask {
            status: TaskStatus::Succeeded,
            ..new_task(inst, "start", "default", 0)
        },
        NewTask {
            status: TaskStatus::Ready,
            ..new_task(inst, "extract", "default", 0)
        },
        new_task(inst, "load", "default", 0),
    ];
    // out of name order: the ids follow the rows given, not the nodes' order
    let ids = tx.task_insert_many(&rows).await.unwrap();
    tx.commit().await.unwrap();

    let row = store.instance_get(inst).await.unwrap().expect("inserted");
    assert_eq!(row.status, crate::state::InstanceStatus::Running);
    assert_eq!(row.started_at, Some(row.created_at));
    let now = store.now().await.unwrap();
    let listed = store.task_list(inst).await.unwrap();
    let by_node = |n: &str| listed.iter().find(|t| t.node == n).unwrap().clone();
    let (start, extract, load) = (by_node("start"), by_node("extract"), by_node("load"));
    assert_eq!(ids, [start.id, extract.id, load.id]);
    assert_eq!((start.status, start.run_at), (TaskStatus::Succeeded, None));
    assert!(start.ended_at.is_some_and(|t| t <= now));
    assert_eq!(
        (extract.status, extract.ended_at),
        (TaskStatus::Ready, None)
    );
    assert!(extract.run_at.is_some_and(|t| t <= now));
    assert_eq!(
        (load.status, load.run_at, load.ended_at),
        (TaskStatus::Waiting, None, None)
    );
    assert_eq!(
        claim_ids(store, &claim("w1", &["default"], 10, MINUTE)).await,
        [extract.id],
        "the ready row is claimable at once"
    );
}

pub(super) async fn claim_respects_limit(store: &dyn Store) {
    let ids = ready_tasks(
        store,
        &[
            ("a", "q", 0),
            ("b", "q", 0),
            ("c", "q", 0),
            ("d", "q", 0),
            ("e", "q", 0),
        ],
    )
    .await;
    let before = store.now().await.unwrap();
    let first = store
        .task_claim(&claim("w1", &["q"], 3, MINUTE))
        .await
        .unwrap();
    assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), ids[..3]);
    let c = &first[0];
    let inst = store.task_get(c.id).await.unwrap().unwrap().instance_id;
    let irow = store.instance_get(inst).await.unwrap().unwrap();
    assert_eq!(
        (
            c.node.as_str(),
            c.kind.as_str(),
            c.attempt,
            c.timeout_s,
            c.instance_id
        ),
        ("a", "shell", 1, Some(60), inst)
    );
    assert_eq!(
        (
            c.workflow.as_str(),
            c.workflow_version,
            c.params.as_str(),
            c.scheduled_for
        ),
        ("tasks", 1, irow.params.as_str(), irow.scheduled_for)
    );
    let row = store.task_get(c.id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.worker_id.as_deref(), row.attempt),
        (TaskStatus::Running, Some("w1"), 1)
    );
    assert_eq!(row.started_at, c.started_at);
    assert!(row.started_at.is_some_and(|s| s >= ms(before)));
    assert!(row
        .lease_until
        .is_some_and(|l| l > before + chrono::Duration::seconds(30)));

    assert_eq!(
        claim_ids(store, &claim("w1", &["q"], 3, MINUTE)).await,
        ids[3..]
    );
    assert!(claim_ids(store, &claim("w1", &["q"], 3, MINUTE))
        .await
        .is_empty());
    assert!(claim_ids(store, &claim("w1", &["q"], 0, MINUTE))
        .await
        .is_empty());
}

pub(super) async fn claim_filters_queues_and_run_at(store: &dyn Store) {
    let ids = tasks(
        store,
        &[
            ("a1", "a", 0),
            ("b1", "b", 0),
            ("a_later", "a", 0),
            ("a_waiting", "a", 0),
        ],
    )
    .await;
    make_ready(store, &ids[..2], None).await;
    let later = ms(store.now().await.unwrap() + chrono::Duration::hours(1));
    make_ready(store, &ids[2..3], Some(later)).await;

    assert!(claim_ids(store, &claim("w", &[], 10, MINUTE))
        .await
        .is_empty());
    assert!(claim_ids(store, &claim("w", &["A", "c"], 10, MINUTE))
        .await
        .is_empty());
    assert_eq!(
        claim_ids(store, &claim("w", &["a"], 10, MINUTE)).await,
        [ids[0]]
    );
    assert_eq!(
        claim_ids(store, &claim("w", &["c", "b"], 10, MINUTE)).await,
        [ids[1]]
    );
    assert!(claim_ids(store, &claim("w", &["a", "b"], 10, MINUTE))
        .await
        .is_empty());
    let later_row = store.task_get(ids[2]).await.unwrap().unwrap();
    assert_eq!(
        (later_row.status, later_row.run_at),
        (TaskStatus::Ready, Some(ms(later)))
    );
    let waiting = store.task_get(ids[3]).await.unwrap().unwrap();
    assert_eq!(waiting.status, TaskStatus::Waiting);
}

pub(super) async fn claim_orders_by_priority_desc_then_run_at(store: &dyn Store) {
    let ids = tasks(
        store,
        &[
            ("p5", "q", 5),
            ("p1", "q", 1),
            ("p3", "q", 3),
            ("p1_later", "q", 1),
        ],
    )
    .await;
    let now = store.now().await.unwrap();
    make_ready(store, &ids[..3], Some(now - chrono::Duration::seconds(10))).await;
    make_ready(store, &ids[3..], Some(now - chrono::Duration::seconds(20))).await;
    let mut order = vec![];
    for _ in 0..4 {
        order.extend(claim_ids(store, &claim("w", &["q"], 1, MINUTE)).await);
    }
    // higher priority first; p1_later is due earlier than p1 (20 s ago against 10 s): same
    // priority, earlier run_at first.
    assert_eq!(order, [ids[0], ids[2], ids[3], ids[1]]);
}

pub(super) async fn concurrent_claimers_are_disjoint(store: &dyn Store) {
    let names: Vec<String> = (0..50).map(|i| format!("n{i:02}")).collect();
    let specs: Vec<(&str, &str, i64)> = names.iter().map(|n| (n.as_str(), "q", 0)).collect();
    let all: BTreeSet<TaskId> = ready_tasks(store, &specs).await.into_iter().collect();

    let claimer = |worker: &'static str| async move {
        let mut got = vec![];
        loop {
            let batch = claim_ids(store, &claim(worker, &["q"], 5, MINUTE)).await;
            if batch.is_empty() {
                return got;
            }
            got.extend(batch);
        }
    };
    let (a, b) = tokio::join!(claimer("w1"), claimer("w2"));
    // A claimer may stop early while the other holds the last rows: a third drains the rest.
    let c = claim_ids(store, &claim("w3", &["q"], 100, MINUTE)).await;

    let (sa, sb, sc): (BTreeSet<_>, BTreeSet<_>, BTreeSet<_>) = (
        a.iter().copied().collect(),
        b.iter().copied().collect(),
        c.iter().copied().collect(),
    );
    assert_eq!(
        sa.len() + sb.len() + sc.len(),
        a.len() + b.len() + c.len(),
        "no claimer saw a task twice"
    );
    assert!(sa.is_disjoint(&sb) && sa.is_disjoint(&sc) && sb.is_disjoint(&sc));
    let union: BTreeSet<TaskId> = sa.union(&sb).chain(sc.iter()).copied().collect();
    assert_eq!(union, all);
    for (worker, ids) in [("w1", &sa), ("w2", &sb), ("w3", &sc)] {
        for id in ids {
            let t = store.task_get(*id).await.unwrap().unwrap();
            assert_eq!((t.worker_id.as_deref(), t.attempt), (Some(worker), 1));
        }
    }
}

pub(super) async fn stale_worker_cannot_complete_rescued_task(store: &dyn Store) {
    let id = ready_tasks(store, &[("flaky", "q", 0)]).await[0];
    assert_eq!(
        claim_ids(store, &claim("w1", &["q"], 1, Duration::ZERO)).await,
        [id]
    );
    wait_for(Duration::from_secs(10), || async {
        let expired: Vec<TaskId> = store
            .task_lease_expired(10)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect();
        if expired == [id] {
            Ok(())
        } else {
            Err(expired)
        }
    })
    .await;

    assert_eq!(rescue(store, id, "w1", 1).await, Cas::Applied);
    assert_eq!(rescue(store, id, "w1", 1).await, Cas::Stale, "rescued once");
    let reclaimed = store
        .task_claim(&claim("w2", &["q"], 1, MINUTE))
        .await
        .unwrap();
    assert_eq!((reclaimed[0].id, reclaimed[0].attempt), (id, 2));

    assert_eq!(
        finish(store, id, "w1", 1).await,
        Cas::Stale,
        "the old worker is fenced out"
    );
    assert_eq!(
        finish(store, id, "w2", 1).await,
        Cas::Stale,
        "the old attempt is fenced out"
    );
    let t = store.task_get(id).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.worker_id.as_deref()),
        (TaskStatus::Running, Some("w2"))
    );

    assert_eq!(finish(store, id, "w2", 2).await, Cas::Applied);
    let t = store.task_get(id).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.worker_id, t.lease_until, t.exit_code, t.attempt),
        (TaskStatus::Succeeded, None, None, Some(0), 2)
    );
    assert!(t.ended_at.is_some());
}

pub(super) async fn lease_extend_touches_only_own_running_tasks(store: &dyn Store) {
    let ids = ready_tasks(store, &[("a", "q", 0), ("b", "q", 0), ("c", "q", -1)]).await;
    assert_eq!(
        claim_ids(store, &claim("w1", &["q"], 2, Duration::from_secs(1))).await,
        ids[..2]
    );
    assert_eq!(
        claim_ids(store, &claim("w2", &["q"], 1, Duration::from_secs(1))).await,
        ids[2..]
    );

    assert_eq!(
        store
            .lease_extend_many("w1", Duration::from_secs(3600))
            .await
            .unwrap(),
        2
    );
    let now = store.now().await.unwrap();
    for id in &ids[..2] {
        let lease = store
            .task_get(*id)
            .await
            .unwrap()
            .unwrap()
            .lease_until
            .unwrap();
        assert!(
            lease > now + chrono::Duration::minutes(50),
            "{lease} extended"
        );
    }
    let other = store
        .task_get(ids[2])
        .await
        .unwrap()
        .unwrap()
        .lease_until
        .unwrap();
    assert!(
        other < now + chrono::Duration::minutes(1),
        "{other} untouched"
    );

    assert_eq!(store.lease_extend_many("nobody", MINUTE).await.unwrap(), 0);
    assert_eq!(finish(store, ids[0], "w1", 1).await, Cas::Applied);
    assert_eq!(store.lease_extend_many("w1", MINUTE).await.unwrap(), 1);
}

pub(super) async fn expired_lease_is_found(store: &dyn Store) {
    let ids = ready_tasks(store, &[("lapsed", "q", 0), ("live", "q", -1)]).await;
    assert_eq!(
        claim_ids(store, &claim("w1", &["q"], 1, Duration::ZERO)).await,
        ids[..1]
    );
    assert_eq!(
        claim_ids(store, &claim("w2", &["q"], 1, MINUTE)).await,
        ids[1..]
    );
    let expired = wait_for(Duration::from_secs(10), || async {
        let expired = store.task_lease_expired(10).await.unwrap();
        if expired.is_empty() {
            Err(expired)
        } else {
            Ok(expired)
        }
    })
    .await;
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (
            expired[0].id,
            expired[0].worker_id.as_deref(),
            expired[0].status
        ),
        (ids[0], Some("w1"), TaskStatus::Running)
    );
    assert!(store.task_lease_expired(0).await.unwrap().is_empty());

    assert_eq!(store.lease_extend_many("w1", MINUTE).await.unwrap(), 1);
    assert!(store.task_lease_expired(10).await.unwrap().is_empty());
}

pub(super) async fn kill_check_finds_killed_and_lost_tasks(store: &dyn Store) {
    let ids = tasks(
        store,
        &[
            ("fine", "q", 0),
            ("killed", "q", -1),
            ("asked", "q", -2),
            ("lost", "q", -3),
        ],
    )
    .await;
    make_ready(store, &[ids[0], ids[1], ids[3]], None).await;
    // A kill request that arrives while the task is ready stays on the row through the claim.
    let mut tx = store.begin().await.unwrap();
    let mut asked = TaskTransition::new(ids[2], vec![TaskStatus::Waiting], TaskStatus::Ready);
    asked.run_at = Some(store.now().await.unwrap() - chrono::Duration::seconds(1));
    asked.kill_requested = true;
    assert_eq!(tx.task_transition(&asked).await.unwrap(), Cas::Applied);
    tx.commit().await.unwrap();
    assert_eq!(
        claim_ids(store, &claim("w1", &["q"], 10, MINUTE)).await,
        ids
    );

    let mut tx = store.begin().await.unwrap();
    let mut kill = TaskTransition::new(ids[1], vec![TaskStatus::Running], TaskStatus::Killed);
    kill.kill_requested = true;
    assert_eq!(tx.task_transition(&kill).await.unwrap(), Cas::Applied);
    tx.commit().await.unwrap();
    assert_eq!(rescue(store, ids[3], "w1", 1).await, Cas::Applied);
    assert_eq!(
        claim_ids(store, &claim("w2", &["q"], 10, MINUTE)).await,
        [ids[3]]
    );

    assert_eq!(store.task_kill_check("w1", &ids).await.unwrap(), ids[1..]);
    assert!(store
        .task_kill_check("w1", &ids[..1])
        .await
        .unwrap()
        .is_empty());
    assert!(store.task_kill_check("w1", &[]).await.unwrap().is_empty());
    assert!(store
        .task_kill_check("w2", &ids[3..])
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn kill_request_keeps_the_task_running(store: &dyn Store) {
    let ids = ready_tasks(store, &[("a", "q", 0), ("b", "q", -1)]).await;
    assert_eq!(
        claim_ids(store, &claim("w1", &["q"], 1, MINUTE)).await,
        [ids[0]]
    );
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.task_request_kill(ids[0]).await.unwrap(), Cas::Applied);
    // only a running task can be asked to die; the ready one is killed directly by the engine
    assert_eq!(tx.task_request_kill(ids[1]).await.unwrap(), Cas::Stale);
    tx.commit().await.unwrap();
    let t = store.task_get(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (t.status, t.kill_requested, t.worker_id.as_deref()),
        (TaskStatus::Running, true, Some("w1"))
    );
    assert_eq!(
        store.task_kill_check("w1", &ids[..1]).await.unwrap(),
        ids[..1]
    );
}

pub(super) async fn queue_depth_counts_due_ready_and_running(store: &dyn Store) {
    let ids = ready_tasks(store, &[("a", "q1", 0), ("b", "q1", 0), ("c", "q2", 0)]).await;
    let later = tasks(store, &[("d", "q2", 0)]).await;
    make_ready(
        store,
        &later,
        Some(store.now().await.unwrap() + chrono::Duration::hours(1)),
    )
    .await;
    claim_ids(store, &claim("w1", &["q1"], 1, MINUTE)).await;
    let depth = store.task_queue_depth().await.unwrap();
    let got: Vec<_> = depth
        .iter()
        .map(|d| (d.queue.as_str(), d.ready, d.running))
        .collect();
    assert_eq!(
        got,
        vec![("q1", 1, 1), ("q2", 1, 0)],
        "a task due later is not counted: {ids:?}"
    );
}

pub(super) async fn ready_tasks_due_sees_only_tasks_a_worker_could_claim_now(store: &dyn Store) {
    let any = || async { store.ready_tasks_due(&[]).await.unwrap() };
    let of = |queues: &'static [&'static str]| async move {
        let queues: Vec<String> = queues.iter().map(|q| q.to_string()).collect();
        store.ready_tasks_due(&queues).await.unwrap()
    };
    assert!(!any().await, "no task at all");
    let ids = tasks(
        store,
        &[("soon", "q", 0), ("now", "q", 0), ("elsewhere", "other", 0)],
    )
    .await;
    assert!(!any().await, "waiting tasks");
    let later = store.now().await.unwrap() + chrono::Duration::hours(1);
    make_ready(store, &ids[..1], Some(later)).await;
    assert!(
        !any().await,
        "a ready task due in an hour (a retry's interval)"
    );
    make_ready(store, &ids[2..], None).await;
    assert!(any().await, "a ready task due");
    assert!(
        !of(&["q"]).await,
        "due, but in a queue the worker does not serve"
    );
    assert!(
        of(&["q", "other"]).await,
        "due in one of the worker's queues"
    );
    make_ready(store, &ids[1..2], None).await;
    assert!(of(&["q"]).await, "due in the worker's queue");
    assert_eq!(
        claim_ids(store, &claim("w1", &["q", "other"], 5, MINUTE)).await,
        ids[1..]
    );
    assert!(
        !any().await && !of(&["q"]).await,
        "the due tasks are running, the other not yet due"
    );
}

pub(super) async fn ready_notification_reaches_a_listener(store: &dyn Store) {
    let Some(mut listener) = store.ready_listener().await.unwrap() else {
        // polling backends: notify_ready must still be accepted inside a transaction
        let mut tx = store.begin().await.unwrap();
        tx.notify_ready().await.unwrap();
        tx.commit().await.unwrap();
        return;
    };
    let mut tx = store.begin().await.unwrap();
    tx.notify_ready().await.unwrap();
    tx.commit().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("a notification within 10 s")
        .unwrap();
}
