//! Backfills: a row and its slots created together, the slot key per backfill, the launch and the
//! status change as compare-and-sets, the slot history a plan reads, and retention.

use std::time::Duration;

use super::fixtures::*;
use crate::state::{BackfillId, BackfillStatus, InstanceStatus, Reprocess, TriggerKind};
use crate::store::*;

fn new_backfill(workflow: &str) -> NewBackfill {
    NewBackfill {
        workflow: workflow.to_string(),
        range_from: at(2024, 1, 1, 0, 0),
        range_to: at(2024, 1, 3, 23, 59),
        reprocess: Reprocess::Failed,
        parallel: 2,
        reverse: true,
        blood: true,
        params: "{\"dir\":\"/data/中文\"}".to_string(),
        priority: Some(-3),
        created_by: "conformance".to_string(),
    }
}

fn slots() -> Vec<NewBackfillSlot> {
    vec![
        NewBackfillSlot {
            slot: at(2024, 1, 1, 8, 0),
            skip_reason: None,
        },
        NewBackfillSlot {
            slot: at(2024, 1, 2, 8, 0),
            skip_reason: Some("it has an instance (succeeded)".to_string()),
        },
        NewBackfillSlot {
            slot: at(2024, 1, 3, 8, 0),
            skip_reason: None,
        },
    ]
}

/// A backfill and its slots in a transaction of their own.
async fn create(
    store: &dyn Store,
    b: &NewBackfill,
    slots: &[NewBackfillSlot],
) -> Result<BackfillId, StoreError> {
    let mut tx = store.begin().await?;
    let id = tx.backfill_create(b, slots).await?;
    tx.commit().await?;
    Ok(id)
}

async fn transition(
    store: &dyn Store,
    id: BackfillId,
    from: BackfillStatus,
    to: BackfillStatus,
) -> Cas {
    let mut tx = store.begin().await.unwrap();
    let cas = tx
        .backfill_transition(&BackfillTransition {
            id,
            from,
            to,
            error: (to != BackfillStatus::Succeeded).then(|| format!("to {to}")),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    cas
}

pub(super) async fn backfill_round_trips_with_its_slots(store: &dyn Store) {
    workflows(store, &["w"]).await;
    let id = create(store, &new_backfill("w"), &slots()).await.unwrap();
    let b = store.backfill_get(id).await.unwrap().expect("created");
    assert_eq!(b.id, id);
    assert_eq!(b.workflow, "w");
    assert_eq!(
        (b.range_from, ms(b.range_to)),
        (at(2024, 1, 1, 0, 0), at(2024, 1, 3, 23, 59))
    );
    assert_eq!(b.reprocess, Reprocess::Failed);
    assert_eq!((b.parallel, b.reverse, b.blood), (2, true, true));
    assert_eq!(b.params, "{\"dir\":\"/data/中文\"}");
    assert_eq!(b.priority, Some(-3));
    assert_eq!(b.status, BackfillStatus::Running);
    assert_eq!((b.error, b.ended_at), (None, None));
    let list = store.backfill_slot_list(id).await.unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0].slot, at(2024, 1, 1, 8, 0));
    assert_eq!(
        list[1].skip_reason.as_deref(),
        Some("it has an instance (succeeded)")
    );
    assert!(list
        .iter()
        .all(|s| s.instance_id.is_none() && s.status.is_none()));
    // listing filters by workflow and status, newest first
    let other = create(store, &new_backfill("w"), &[]).await.unwrap();
    let all = store
        .backfill_list(&BackfillFilter {
            workflow: Some("w".into()),
            status: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![other, id]
    );
    assert!(store
        .backfill_list(&BackfillFilter {
            workflow: Some("nope".into()),
            status: None,
            limit: 10,
        })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        transition(
            store,
            other,
            BackfillStatus::Running,
            BackfillStatus::Cancelled
        )
        .await,
        Cas::Applied
    );
    let running = store
        .backfill_list(&BackfillFilter {
            workflow: None,
            status: Some(BackfillStatus::Running),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(running.iter().map(|b| b.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(store.backfill_get(BackfillId(999_999)).await.unwrap(), None);
}

pub(super) async fn backfill_slot_is_created_once_per_backfill(store: &dyn Store) {
    workflows(store, &["w"]).await;
    let slot = at(2024, 1, 1, 8, 0);
    let first = create(store, &new_backfill("w"), &slots()).await.unwrap();
    let second = create(store, &new_backfill("w"), &slots()).await.unwrap();
    let of = |b: BackfillId| NewInstance {
        backfill_id: b,
        ..new_instance("w", TriggerKind::Backfill, slot)
    };
    let mut tx = store.begin().await.unwrap();
    let cron = tx
        .instance_insert(&new_instance("w", TriggerKind::Cron, slot))
        .await
        .unwrap();
    let a = tx.instance_insert(&of(first)).await.unwrap();
    let again = tx.instance_insert(&of(first)).await.unwrap();
    // another backfill may run the same slot again (`--reprocess all`)
    let b = tx.instance_insert(&of(second)).await.unwrap();
    let cron_again = tx
        .instance_insert(&new_instance("w", TriggerKind::Cron, slot))
        .await
        .unwrap();
    let a = a.expect("the backfill's slot was free");
    assert!(cron.is_some() && b.is_some());
    assert_eq!((again, cron_again), (None, None));
    // the launch is a compare-and-set: once per slot, never on a skipped one
    assert_eq!(
        tx.backfill_slot_launch(first, slot, a).await.unwrap(),
        Cas::Applied
    );
    assert_eq!(
        tx.backfill_slot_launch(first, slot, a).await.unwrap(),
        Cas::Stale
    );
    assert_eq!(
        tx.backfill_slot_launch(first, at(2024, 1, 2, 8, 0), a)
            .await
            .unwrap(),
        Cas::Stale
    );
    let locked = tx.backfill_lock(first).await.unwrap().expect("exists");
    assert_eq!(locked.status, BackfillStatus::Running);
    assert_eq!(
        tx.backfill_get(second).await.unwrap().map(|b| b.id),
        Some(second)
    );
    let in_tx = tx.backfill_slot_list(first).await.unwrap();
    assert_eq!(in_tx[0].instance_id, Some(a));
    tx.commit().await.unwrap();
    let row = store.instance_get(a).await.unwrap().unwrap();
    assert_eq!(row.trigger_kind, TriggerKind::Backfill);
    assert_eq!(row.backfill(), Some(first));
    let cron_row = store.instance_get(cron.unwrap()).await.unwrap().unwrap();
    assert_eq!(cron_row.backfill(), None);
    let list = store.backfill_slot_list(first).await.unwrap();
    assert_eq!(list[0].instance_id, Some(a));
    assert_eq!(list[0].status, Some(InstanceStatus::Pending));
}

pub(super) async fn backfill_transition_is_cas_and_stamps_the_end(store: &dyn Store) {
    workflows(store, &["w"]).await;
    let id = create(store, &new_backfill("w"), &slots()).await.unwrap();
    assert_eq!(
        transition(store, id, BackfillStatus::Cancelled, BackfillStatus::Failed).await,
        Cas::Stale
    );
    assert_eq!(
        transition(store, id, BackfillStatus::Running, BackfillStatus::Failed).await,
        Cas::Applied
    );
    assert_eq!(
        transition(
            store,
            id,
            BackfillStatus::Running,
            BackfillStatus::Succeeded
        )
        .await,
        Cas::Stale
    );
    let b = store.backfill_get(id).await.unwrap().unwrap();
    assert_eq!(b.status, BackfillStatus::Failed);
    assert_eq!(b.error.as_deref(), Some("to failed"));
    assert!(b.ended_at.is_some_and(|e| e >= b.created_at));
}

pub(super) async fn backfill_history_has_each_slots_latest_instance_and_queued_slots(
    store: &dyn Store,
) {
    workflows(store, &["w", "other"]).await;
    let (d1, d2, d3) = (
        at(2024, 1, 1, 8, 0),
        at(2024, 1, 2, 8, 0),
        at(2024, 1, 3, 8, 0),
    );
    let mut tx = store.begin().await.unwrap();
    let failed = tx
        .instance_insert(&new_instance("w", TriggerKind::Cron, d1))
        .await
        .unwrap()
        .unwrap();
    let rerun = tx
        .instance_insert(&new_instance("w", TriggerKind::Trigger, d1))
        .await
        .unwrap()
        .unwrap();
    tx.instance_insert(&new_instance("other", TriggerKind::Cron, d2))
        .await
        .unwrap();
    let _ = tx
        .instance_transition(&InstanceTransition {
            id: failed,
            from: vec![InstanceStatus::Pending],
            to: InstanceStatus::Failed,
            started_at: None,
            ended_at: None,
            error: None,
        })
        .await
        .unwrap();
    let _ = tx
        .instance_transition(&InstanceTransition {
            id: rerun,
            from: vec![InstanceStatus::Pending],
            to: InstanceStatus::Succeeded,
            started_at: None,
            ended_at: None,
            error: None,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // a running backfill's slot still to create counts as queued; a cancelled one's does not
    let queued = create(
        store,
        &new_backfill("w"),
        &[NewBackfillSlot {
            slot: d3,
            skip_reason: None,
        }],
    )
    .await
    .unwrap();
    let cancelled = create(
        store,
        &new_backfill("w"),
        &[NewBackfillSlot {
            slot: d2,
            skip_reason: None,
        }],
    )
    .await
    .unwrap();
    let _ = transition(
        store,
        cancelled,
        BackfillStatus::Running,
        BackfillStatus::Cancelled,
    )
    .await;
    let h = store.backfill_slot_history("w", d1, d3).await.unwrap();
    assert_eq!(h.latest, vec![(d1, InstanceStatus::Succeeded)]);
    assert_eq!(h.queued, vec![d3]);
    let h = store.backfill_slot_history("w", d2, d2).await.unwrap();
    assert_eq!(h, SlotHistory::default());
    let _ = queued;
}

pub(super) async fn retention_prunes_ended_backfills_with_their_slots(store: &dyn Store) {
    workflows(store, &["w"]).await;
    let ended = create(store, &new_backfill("w"), &slots()).await.unwrap();
    let running = create(store, &new_backfill("w"), &slots()).await.unwrap();
    let _ = transition(
        store,
        ended,
        BackfillStatus::Running,
        BackfillStatus::Succeeded,
    )
    .await;
    let now = store.now().await.unwrap();
    let loose = |before, dry_run| RetentionLoose {
        before,
        dead_before: before - chrono::Duration::days(1),
        metrics_before: before,
        limit: 100,
        dry_run,
    };
    // ended just now: younger than the retention
    let kept = store
        .retention_loose(&loose(now - chrono::Duration::hours(1), false))
        .await
        .unwrap();
    assert_eq!((kept.backfill, kept.backfill_slot), (0, 0));
    let later = now + chrono::Duration::from_std(Duration::from_secs(60)).unwrap();
    let dry = store.retention_loose(&loose(later, true)).await.unwrap();
    assert_eq!((dry.backfill, dry.backfill_slot), (1, 3));
    let done = store.retention_loose(&loose(later, false)).await.unwrap();
    assert_eq!((done.backfill, done.backfill_slot), (1, 3));
    assert_eq!(store.backfill_get(ended).await.unwrap(), None);
    assert!(store.backfill_get(running).await.unwrap().is_some());
    assert_eq!(store.backfill_slot_list(running).await.unwrap().len(), 3);
}
