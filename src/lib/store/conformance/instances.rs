//! Cases for workflow instances: the unique fire slot, the instance lock and guarded transitions.

use super::fixtures::*;
use crate::state::{InstanceId, InstanceStatus, TaskStatus, TriggerKind};
use crate::store::*;

pub(super) async fn instance_slot_is_unique(store: &dyn Store) {
    workflows(store, &["w"]).await;
    let slot = at(2024, 1, 1, 8, 0);
    let mut tx = store.begin().await.unwrap();
    let first = tx
        .instance_insert(&new_instance("w", TriggerKind::Cron, slot))
        .await
        .unwrap();
    let again = tx
        .instance_insert(&new_instance("w", TriggerKind::Cron, slot))
        .await
        .unwrap();
    let manual = tx
        .instance_insert(&new_instance("w", TriggerKind::Trigger, slot))
        .await
        .unwrap();
    // The transaction is still usable after the refused slot.
    assert_eq!(tx.instance_count_running("w").await.unwrap(), 0);
    tx.commit().await.unwrap();
    let first = first.expect("the slot was free");
    assert_eq!(again, None);
    assert!(manual.is_some_and(|m| m != first));

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.instance_insert(&new_instance("w", TriggerKind::Cron, slot))
            .await
            .unwrap(),
        None
    );
    tx.commit().await.unwrap();

    let row = store.instance_get(first).await.unwrap().unwrap();
    assert_eq!(row.id, first);
    assert_eq!(row.workflow, "w");
    assert_eq!(row.workflow_version, 1);
    assert_eq!(row.status, InstanceStatus::Pending);
    assert_eq!(row.params, "{\"day\":\"2024-01-01\"}");
    assert_eq!(row.trigger_kind, TriggerKind::Cron);
    assert_eq!(row.scheduled_for, slot);
    assert_eq!(row.parent_instance_id, None);
    assert_eq!(row.created_by, "conformance");
    assert_eq!(
        (row.started_at, row.ended_at, row.error),
        (None, None, None)
    );
    assert_eq!(
        store
            .instance_get(InstanceId(first.0 + 1000))
            .await
            .unwrap(),
        None
    );
}

pub(super) async fn instance_lock_returns_row_and_db_time(store: &dyn Store) {
    let id = instance(store, "locked", 0).await;
    let before = store.now().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    let (row, now) = tx.instance_lock(id).await.unwrap().expect("the row exists");
    assert_eq!(
        tx.instance_lock(InstanceId(id.0 + 1000)).await.unwrap(),
        None
    );
    tx.commit().await.unwrap();
    let after = store.now().await.unwrap();
    assert_eq!(row, store.instance_get(id).await.unwrap().unwrap());
    assert!(
        before <= now && now <= after,
        "{before} <= {now} <= {after}"
    );
}

pub(super) async fn instance_lock_free_skips_rows_held_elsewhere(store: &dyn Store) {
    let held = instance(store, "held", 0).await;
    let free = instance(store, "free", 0).await;
    let gone = InstanceId(free.0 + 1000);
    let lock_free = |mut tx: Box<dyn crate::store::StoreTx>| async move {
        let locked: Vec<InstanceId> = tx
            .instance_lock_free(&[held, free, gone])
            .await
            .unwrap()
            .into_iter()
            .map(|(row, _)| row.id)
            .collect();
        tx.commit().await.unwrap();
        locked
    };
    if store.backend().has_one_writer() {
        // no other transaction can hold a row while this one writes: every existing one is free
        let locked = lock_free(store.begin().await.unwrap()).await;
        assert_eq!(locked, vec![held, free]);
        return;
    }
    let mut holder = store.begin().await.unwrap();
    holder
        .instance_lock(held)
        .await
        .unwrap()
        .expect("the row exists");
    let locked = lock_free(store.begin().await.unwrap()).await;
    holder.commit().await.unwrap();
    assert_eq!(
        locked,
        vec![free],
        "the row another transaction holds is skipped"
    );
}

pub(super) async fn instance_transition_is_cas(store: &dyn Store) {
    let a1 = instance(store, "w", 1).await;
    let a2 = instance(store, "w", 2).await;
    let a3 = instance(store, "w", 3).await;
    let b1 = instance(store, "v", 4).await;

    let started = ms(store.now().await.unwrap());
    let mut tx = store.begin().await.unwrap();
    let mut to_running = InstanceTransition {
        id: a1,
        from: vec![InstanceStatus::Pending],
        to: InstanceStatus::Running,
        started_at: Some(started),
        ended_at: None,
        error: None,
    };
    assert_eq!(
        tx.instance_transition(&to_running).await.unwrap(),
        Cas::Applied
    );
    assert_eq!(
        tx.instance_transition(&to_running).await.unwrap(),
        Cas::Stale
    );
    to_running.from = vec![];
    assert_eq!(
        tx.instance_transition(&to_running).await.unwrap(),
        Cas::Stale
    );
    assert_eq!(tx.instance_count_running("w").await.unwrap(), 1);
    let names = ["w", "v", "none"].map(String::from);
    assert_eq!(
        tx.instance_count_running_many(&names).await.unwrap(),
        [("w".to_string(), 1)]
    );
    assert!(tx
        .instance_count_running_many(&[])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(tx.instance_pending_oldest("w", 10).await.unwrap(), [a2, a3]);
    assert_eq!(tx.instance_pending_oldest("w", 1).await.unwrap(), [a2]);
    let among = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let mut pending = tx
        .instance_pending_among(&among(&["w", "v", "none"]))
        .await
        .unwrap();
    pending.sort();
    assert_eq!(pending, ["v", "w"]);
    assert!(tx.instance_pending_among(&[]).await.unwrap().is_empty());
    tx.commit().await.unwrap();

    let ended = ms(store.now().await.unwrap());
    let mut tx = store.begin().await.unwrap();
    let fail = InstanceTransition {
        id: a1,
        from: vec![InstanceStatus::Pending, InstanceStatus::Running],
        to: InstanceStatus::Failed,
        started_at: None,
        ended_at: Some(ended),
        error: Some("节点 load 失败".to_string()),
    };
    assert_eq!(tx.instance_transition(&fail).await.unwrap(), Cas::Applied);
    tx.commit().await.unwrap();
    let row = store.instance_get(a1).await.unwrap().unwrap();
    assert_eq!(row.status, InstanceStatus::Failed);
    assert_eq!(row.started_at, Some(started), "kept when not given");
    assert_eq!(row.ended_at, Some(ended));
    assert_eq!(row.error.as_deref(), Some("节点 load 失败"));

    // several instances in one statement: each must be in a `from` status to change
    let mut tx = store.begin().await.unwrap();
    let kill = InstanceTransition {
        id: InstanceId(0),
        from: vec![InstanceStatus::Pending],
        to: InstanceStatus::Killed,
        started_at: None,
        ended_at: Some(ended),
        error: Some("killed".to_string()),
    };
    assert_eq!(
        tx.instance_transition_many(&[a1, a2, b1], &kill)
            .await
            .unwrap(),
        2,
        "a1 has failed already"
    );
    assert_eq!(
        tx.instance_pending_among(&among(&["w", "v"]))
            .await
            .unwrap(),
        ["w"]
    );
    tx.rollback().await.unwrap();

    let list = |f: InstanceFilter| async move {
        store
            .instance_list(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect::<Vec<_>>()
    };
    let w = Some("w".to_string());
    assert_eq!(
        list(InstanceFilter {
            workflow: w.clone(),
            limit: 10,
            ..Default::default()
        })
        .await,
        [a3, a2, a1]
    );
    assert_eq!(
        list(InstanceFilter {
            limit: 10,
            ..Default::default()
        })
        .await,
        [b1, a3, a2, a1]
    );
    assert_eq!(
        list(InstanceFilter {
            status: Some(InstanceStatus::Pending),
            limit: 10,
            ..Default::default()
        })
        .await,
        [b1, a3, a2]
    );
    assert_eq!(
        list(InstanceFilter {
            workflow: w.clone(),
            before_id: Some(a3),
            limit: 1,
            ..Default::default()
        })
        .await,
        [a2]
    );
    assert_eq!(
        list(InstanceFilter {
            since: Some(ended + chrono::Duration::hours(1)),
            limit: 10,
            ..Default::default()
        })
        .await,
        []
    );
    assert_eq!(
        list(InstanceFilter {
            since: Some(started - chrono::Duration::hours(1)),
            limit: 10,
            ..Default::default()
        })
        .await
        .len(),
        4
    );
    assert_eq!(
        store.instance_pending_workflows(10).await.unwrap(),
        ["v", "w"]
    );
    assert_eq!(store.instance_pending_workflows(1).await.unwrap(), ["v"]);
}

pub(super) async fn instance_search_filters_counts_and_pages(store: &dyn Store) {
    workflows(store, &["w", "v"]).await;
    let slot = |m| at(2024, 1, 1, 0, m);
    let mut tx = store.begin().await.unwrap();
    let mut ids = Vec::new();
    for (wf, kind, m) in [
        ("w", TriggerKind::Cron, 1),
        ("w", TriggerKind::Cron, 2),
        ("w", TriggerKind::Run, 3),
        ("v", TriggerKind::Trigger, 4),
    ] {
        let id = tx
            .instance_insert(&new_instance(wf, kind, slot(m)))
            .await
            .unwrap();
        ids.push(id.expect("a free slot"));
    }
    tx.commit().await.unwrap();
    let (a1, a2, a3, b1) = (ids[0], ids[1], ids[2], ids[3]);
    let now = store.now().await.unwrap();
    let search = |s: InstanceSearch| async move {
        let page = store
            .instance_search(&InstanceSearch {
                limit: if s.limit == 0 { 10 } else { s.limit },
                count_up_to: if s.count_up_to == 0 {
                    100
                } else {
                    s.count_up_to
                },
                ..s
            })
            .await
            .unwrap();
        (
            page.rows.into_iter().map(|i| i.id).collect::<Vec<_>>(),
            page.total,
        )
    };
    let w = Some("w".to_string());
    assert_eq!(
        search(InstanceSearch::default()).await,
        (vec![b1, a3, a2, a1], 4)
    );
    let only_w = InstanceSearch {
        workflow: w.clone(),
        ..Default::default()
    };
    assert_eq!(search(only_w.clone()).await, (vec![a3, a2, a1], 3));
    // a page of a filtered list keeps the filter's total
    let page = InstanceSearch {
        limit: 2,
        ..only_w.clone()
    };
    assert_eq!(search(page.clone()).await, (vec![a3, a2], 3));
    let next = InstanceSearch {
        before_id: Some(a2),
        ..page
    };
    assert_eq!(search(next).await, (vec![a1], 3));
    let runs = InstanceSearch {
        trigger: Some(TriggerKind::Run),
        ..Default::default()
    };
    assert_eq!(search(runs).await, (vec![a3], 1));
    let pending_cron_w = InstanceSearch {
        status: Some(InstanceStatus::Pending),
        trigger: Some(TriggerKind::Cron),
        ..only_w.clone()
    };
    assert_eq!(search(pending_cron_w).await, (vec![a2, a1], 2));
    let hour = chrono::Duration::hours(1);
    let around_now = InstanceSearch {
        created_from: Some(now - hour),
        created_to: Some(now + hour),
        ..Default::default()
    };
    assert_eq!(search(around_now).await.1, 4);
    let later = InstanceSearch {
        created_from: Some(now + hour),
        ..Default::default()
    };
    assert_eq!(search(later).await, (vec![], 0));
    let earlier = InstanceSearch {
        created_to: Some(now - hour),
        ..Default::default()
    };
    assert_eq!(search(earlier).await, (vec![], 0));
    // far beyond a TIMESTAMP's 2038
    let until_2999 = InstanceSearch {
        created_to: Some(at(2999, 1, 1, 0, 0)),
        ..Default::default()
    };
    assert_eq!(search(until_2999).await.1, 4);
    let in_dir = InstanceSearch {
        dir_prefix: Some("etl".into()),
        ..only_w.clone()
    };
    assert_eq!(search(in_dir).await.1, 3);
    let elsewhere = InstanceSearch {
        dir_prefix: Some("/other".into()),
        ..Default::default()
    };
    assert_eq!(search(elsewhere).await, (vec![], 0));
    // the count stops where it is told to
    let capped = InstanceSearch {
        count_up_to: 2,
        ..Default::default()
    };
    assert_eq!(search(capped).await.1, 2);
}

pub(super) async fn instance_insert_many_is_all_or_none(store: &dyn Store) {
    workflows(store, &["w", "v"]).await;
    let slots: Vec<_> = (0..5).map(|h| at(2024, 1, 1, h, 0)).collect();
    let rows: Vec<NewInstance> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut row = new_instance(if i % 2 == 0 { "w" } else { "v" }, TriggerKind::Cron, *s);
            row.started = i == 1;
            row
        })
        .collect();
    let mut tx = store.begin().await.unwrap();
    let ids = tx
        .instance_insert_many(&rows)
        .await
        .unwrap()
        .expect("every slot was free");
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), rows.len());
    // the ids come in the order of the rows: each names the row given at its place
    for (id, row) in ids.iter().zip(&rows) {
        let got = store.instance_get(*id).await.unwrap().unwrap();
        assert_eq!(
            (got.workflow.as_str(), got.scheduled_for, got.status),
            (
                row.workflow.as_str(),
                row.scheduled_for,
                match row.started {
                    true => InstanceStatus::Running,
                    false => InstanceStatus::Pending,
                }
            )
        );
        assert_eq!(got.started_at.is_some(), row.started);
    }

    // one taken slot among free ones: none is written, and the transaction goes on
    let fresh = |h| new_instance("w", TriggerKind::Cron, at(2024, 1, 2, h, 0));
    let mut tx = store.begin().await.unwrap();
    let taken = tx
        .instance_insert_many(&[fresh(1), rows[2].clone(), fresh(2)])
        .await
        .unwrap();
    assert_eq!(taken, None);
    let again = tx.instance_insert_many(&[fresh(1)]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(again.is_some_and(|ids| ids.len() == 1));
    let day2 = store
        .instance_list(&InstanceFilter {
            workflow: Some("w".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.scheduled_for >= at(2024, 1, 2, 0, 0))
        .count();
    assert_eq!(
        day2, 1,
        "only the slot inserted after the refusal is written"
    );
}

pub(super) async fn changes_write_applies_each_run_and_reads_pending(store: &dyn Store) {
    let ids = tasks(
        store,
        &[("a", "q", 0), ("b", "q", 0), ("c", "q", 0), ("d", "q", 0)],
    )
    .await;
    let (w1, w2) = (instance(store, "w", 1).await, instance(store, "w", 2).await);
    let v1 = instance(store, "v", 3).await;
    let task = |id, from, to| TaskTransition::new(id, vec![from], to);
    let instance_run = |ids, from, to| {
        let t = InstanceTransition {
            id: InstanceId(0),
            from: vec![from],
            to,
            started_at: None,
            ended_at: None,
            error: None,
        };
        (ids, t)
    };
    let changes = Changes {
        tasks: vec![
            (
                vec![ids[0], ids[1]],
                task(ids[0], TaskStatus::Waiting, TaskStatus::Ready),
            ),
            (
                vec![ids[2]],
                task(ids[2], TaskStatus::Waiting, TaskStatus::Skipped),
            ),
            // `d` is waiting, not ready: nothing changes
            (
                vec![ids[3]],
                task(ids[3], TaskStatus::Ready, TaskStatus::Skipped),
            ),
        ],
        instances: vec![
            instance_run(vec![w1], InstanceStatus::Pending, InstanceStatus::Running),
            // pending, not running: nothing changes
            instance_run(vec![v1], InstanceStatus::Running, InstanceStatus::Succeeded),
        ],
        pending_of: vec!["w".into(), "v".into(), "none".into()],
    };
    let mut tx = store.begin().await.unwrap();
    let written = tx.changes_write(&changes).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(written.tasks, vec![2, 1, 0]);
    assert_eq!(written.instances, vec![1, 0]);
    let mut pending = written.pending;
    pending.sort();
    assert_eq!(
        pending,
        vec!["v".to_string(), "w".to_string()],
        "w2 and v1 wait"
    );
    let status = |id| async move { store.task_get(id).await.unwrap().unwrap().status };
    assert_eq!(status(ids[0]).await, TaskStatus::Ready);
    assert_eq!(status(ids[1]).await, TaskStatus::Ready);
    assert_eq!(status(ids[2]).await, TaskStatus::Skipped);
    assert_eq!(status(ids[3]).await, TaskStatus::Waiting);
    let inst = |id| async move { store.instance_get(id).await.unwrap().unwrap().status };
    assert_eq!(inst(w1).await, InstanceStatus::Running);
    assert_eq!(inst(w2).await, InstanceStatus::Pending);
    assert_eq!(inst(v1).await, InstanceStatus::Pending);

    // one row in two runs: the second sees the first's change, as separate statements would
    let changes = Changes {
        tasks: vec![
            (
                vec![ids[1]],
                task(ids[1], TaskStatus::Ready, TaskStatus::Waiting),
            ),
            (
                vec![ids[1]],
                task(ids[1], TaskStatus::Waiting, TaskStatus::Skipped),
            ),
        ],
        instances: vec![],
        pending_of: vec![],
    };
    let mut tx = store.begin().await.unwrap();
    let written = tx.changes_write(&changes).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(written.tasks, vec![1, 1]);
    assert!(written.pending.is_empty());
    assert_eq!(status(ids[1]).await, TaskStatus::Skipped);
}
