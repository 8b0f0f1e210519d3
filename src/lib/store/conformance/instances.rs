//! Cases for workflow instances: the unique fire slot, the instance lock and guarded transitions.

use super::fixtures::*;
use crate::state::{InstanceId, InstanceStatus, TriggerKind};
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
    assert_eq!(tx.instance_pending_oldest("w", 10).await.unwrap(), [a2, a3]);
    assert_eq!(tx.instance_pending_oldest("w", 1).await.unwrap(), [a2]);
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
