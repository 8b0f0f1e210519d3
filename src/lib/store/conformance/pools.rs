//! Cases for pools: the claim keeps a pool's running slots within its limit, alone and under
//! concurrent claimers, lowering the limit starts nothing until under it, and the order inside a
//! pool is priority, then readiness.

use std::collections::BTreeSet;

use super::fixtures::*;
use crate::state::{TaskId, TaskStatus};
use crate::store::*;

async fn set_pool(store: &dyn Store, name: &str, slots: i64) {
    let mut tx = store.begin().await.unwrap();
    tx.pool_write(&PoolDef {
        name: name.to_string(),
        slots,
        file_slots: slots,
        description: format!("{name} for tests"),
        updated_by: "test".to_string(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Inserts ready tasks `(node, pool, pool_slots, priority)` in queue `q` on a new instance.
async fn pooled(store: &dyn Store, specs: &[(&str, &str, i64, i64)]) -> Vec<TaskId> {
    let plain: Vec<(&str, &str, i64)> = specs.iter().map(|(n, _, _, p)| (*n, "q", *p)).collect();
    let minute = store
        .instance_list(&InstanceFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .len() as u32;
    let inst = instance(store, "pooled", minute).await;
    let mut tx = store.begin().await.unwrap();
    let rows: Vec<NewTask> = specs
        .iter()
        .zip(&plain)
        .map(|((_, pool, slots, _), (node, queue, priority))| NewTask {
            pool: pool.to_string(),
            pool_slots: *slots,
            ..new_task(inst, node, queue, *priority)
        })
        .collect();
    tx.task_insert_many(&rows).await.unwrap();
    let listed = tx.task_list(inst).await.unwrap();
    tx.commit().await.unwrap();
    let ids: Vec<TaskId> = specs
        .iter()
        .map(|(n, ..)| listed.iter().find(|t| t.node == *n).unwrap().id)
        .collect();
    make_ready(store, &ids, None).await;
    ids
}

fn pool_claim(worker: &str, limit: i64, pools: &[&str]) -> TaskClaimParams {
    TaskClaimParams {
        pools: pools.iter().map(|p| p.to_string()).collect(),
        ..claim(worker, &["q"], limit, MINUTE)
    }
}

async fn running_in(store: &dyn Store, pool: &str) -> (i64, i64) {
    let p = store.pool_list().await.unwrap();
    let row = p.iter().find(|p| p.name == pool).expect("the pool exists");
    (row.used, row.waiting)
}

pub(super) async fn pool_claim_keeps_to_the_slots_and_skips_nothing_else(store: &dyn Store) {
    set_pool(store, "wh", 2).await;
    let specs: Vec<(String, &str)> = (0..6)
        .map(|i| (format!("wh{i}"), "wh"))
        .chain((0..3).map(|i| (format!("free{i}"), "")))
        .collect();
    let rows: Vec<(&str, &str, i64, i64)> =
        specs.iter().map(|(n, p)| (n.as_str(), *p, 1, 0)).collect();
    let ids = pooled(store, &rows).await;
    let (wh, free) = ids.split_at(6);

    // a claim that knows no pools takes only the unpooled tasks and never a pooled one
    let got = claim_ids(store, &claim("w0", &["q"], 10, MINUTE)).await;
    assert_eq!(
        got.iter().copied().collect::<BTreeSet<_>>(),
        free.iter().copied().collect(),
        "only the tasks outside any pool"
    );
    // with the pool: two of it, not more, however many slots the worker has
    let got = claim_ids(store, &pool_claim("w1", 10, &["wh"])).await;
    assert_eq!(got, wh[..2], "the two best of the pool, in readiness order");
    assert_eq!(running_in(store, "wh").await, (2, 4));
    assert!(claim_ids(store, &pool_claim("w2", 10, &["wh"]))
        .await
        .is_empty());
    // a slot frees when its task ends
    assert_eq!(finish(store, wh[0], "w1", 1).await, Cas::Applied);
    assert_eq!(
        claim_ids(store, &pool_claim("w2", 10, &["wh"])).await,
        [wh[2]]
    );
    assert_eq!(running_in(store, "wh").await, (2, 3));
    let listed = store.pool_list().await.unwrap();
    assert_eq!(
        (listed[0].name.as_str(), listed[0].slots, listed[0].running),
        ("wh", 2, 2)
    );
    // a task's pool and slots read back
    let t = store.task_get(wh[3]).await.unwrap().unwrap();
    assert_eq!(
        (t.pool.as_str(), t.pool_slots, t.status),
        ("wh", 1, TaskStatus::Ready)
    );
}

pub(super) async fn pool_claims_in_parallel_never_exceed_the_slots(store: &dyn Store) {
    set_pool(store, "wh", 3).await;
    let names: Vec<String> = (0..24).map(|i| format!("n{i:02}")).collect();
    let rows: Vec<(&str, &str, i64, i64)> =
        names.iter().map(|n| (n.as_str(), "wh", 1, 0)).collect();
    let all: BTreeSet<TaskId> = pooled(store, &rows).await.into_iter().collect();
    let mut done = BTreeSet::new();
    // rounds: four claimers race for the pool; together they may take 3, never more
    for round in 0..8 {
        let claimer = |w: &'static str| async move {
            let mut got = vec![];
            for _ in 0..3 {
                got.extend(store.task_claim(&pool_claim(w, 2, &["wh"])).await.unwrap());
            }
            got
        };
        let (a, b, c, d) = tokio::join!(claimer("w1"), claimer("w2"), claimer("w3"), claimer("w4"));
        let got: Vec<ClaimedTask> = a.into_iter().chain(b).chain(c).chain(d).collect();
        assert_eq!(got.len(), 3, "round {round}: {got:?}");
        assert_eq!(running_in(store, "wh").await.0, 3);
        for t in got {
            let worker = store
                .task_get(t.id)
                .await
                .unwrap()
                .unwrap()
                .worker_id
                .unwrap();
            assert_eq!(finish(store, t.id, &worker, t.attempt).await, Cas::Applied);
            assert!(done.insert(t.id), "claimed twice: {:?}", t.id);
        }
    }
    assert_eq!(done, all);
}

pub(super) async fn pool_lowered_while_full_starts_nothing_until_under(store: &dyn Store) {
    set_pool(store, "wh", 3).await;
    let names: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
    let rows: Vec<(&str, &str, i64, i64)> =
        names.iter().map(|n| (n.as_str(), "wh", 1, 0)).collect();
    let ids = pooled(store, &rows).await;
    assert_eq!(
        claim_ids(store, &pool_claim("w", 10, &["wh"])).await,
        ids[..3]
    );
    // lowered to 1 while 3 run: they keep running, nothing new starts until under 1
    let mut tx = store.begin().await.unwrap();
    let mut def = tx.pool_lock("wh").await.unwrap().unwrap();
    def.slots = 1;
    tx.pool_write(&def).await.unwrap();
    tx.commit().await.unwrap();
    for (n, id) in ids[..3].iter().enumerate() {
        assert!(
            claim_ids(store, &pool_claim("w", 10, &["wh"]))
                .await
                .is_empty(),
            "{} of 1 running",
            3 - n
        );
        assert_eq!(finish(store, *id, "w", 1).await, Cas::Applied);
    }
    assert_eq!(
        claim_ids(store, &pool_claim("w", 10, &["wh"])).await,
        [ids[3]]
    );
    // raised: the rest start at once
    set_pool(store, "wh", 5).await;
    assert_eq!(
        claim_ids(store, &pool_claim("w", 10, &["wh"])).await,
        ids[4..]
    );
}

pub(super) async fn pool_orders_by_priority_and_heavy_tasks_wait_their_turn(store: &dyn Store) {
    set_pool(store, "wh", 3).await;
    set_pool(store, "other", 1).await;
    let ids = pooled(
        store,
        &[
            ("low", "wh", 1, 0),
            ("heavy", "wh", 2, 5),
            ("high", "wh", 1, 9),
            ("light", "wh", 1, 1),
            ("elsewhere", "other", 1, 0),
        ],
    )
    .await;
    // high (9), heavy (5, two slots): the pool is full; light and low wait behind heavy's turn
    let got: BTreeSet<TaskId> = claim_ids(store, &pool_claim("w", 10, &["other", "wh"]))
        .await
        .into_iter()
        .collect();
    assert_eq!(got, BTreeSet::from([ids[2], ids[1], ids[4]]));
    assert_eq!(finish(store, ids[2], "w", 1).await, Cas::Applied);
    // one slot free: light (1) before low (0)
    assert_eq!(
        claim_ids(store, &pool_claim("w", 10, &["wh"])).await,
        [ids[3]]
    );
    // heavy first when it is the best and does not fit: nothing passes it
    let ids2 = pooled(store, &[("heavy2", "wh", 3, 7), ("small", "wh", 1, 0)]).await;
    assert_eq!(finish(store, ids[3], "w", 1).await, Cas::Applied);
    assert!(claim_ids(store, &pool_claim("w", 10, &["wh"]))
        .await
        .is_empty());
    assert_eq!(finish(store, ids[1], "w", 1).await, Cas::Applied);
    assert_eq!(
        claim_ids(store, &pool_claim("w", 10, &["wh"])).await,
        [ids2[0]]
    );
}

pub(super) async fn pool_history_records_each_interval_once_and_goes_by_age(store: &dyn Store) {
    let hour = std::time::Duration::from_secs(3600);
    // no pool: nothing to record
    assert_eq!(store.pool_sample_record(hour).await.unwrap(), 0);
    set_pool(store, "hist", 2).await;
    set_pool(store, "idle", 1).await;
    let ids = pooled(
        store,
        &[
            ("h0", "hist", 1, 0),
            ("h1", "hist", 1, 0),
            ("h2", "hist", 1, 0),
        ],
    )
    .await;
    assert_eq!(
        claim_ids(store, &pool_claim("w1", 10, &["hist"])).await,
        ids[..2]
    );
    assert_eq!(
        store.pool_sample_record(hour).await.unwrap(),
        2,
        "one row per pool"
    );
    // the same interval again (another master, a restart): nothing more
    assert_eq!(store.pool_sample_record(hour).await.unwrap(), 0);
    let now = store.now().await.unwrap();
    let rows = store
        .pool_sample_list(now - chrono::Duration::hours(2), 100)
        .await
        .unwrap();
    let got: Vec<(&str, i64, i64, i64)> = rows
        .iter()
        .map(|r| (r.pool.as_str(), r.slots, r.used, r.waiting))
        .collect();
    assert_eq!(got, [("hist", 2, 2, 1), ("idle", 1, 0, 0)]);
    assert!(rows.iter().all(|r| r.sampled_at <= now
        && now - r.sampled_at < chrono::Duration::hours(1)
        && r.sampled_at.timestamp() % 3600 == 0));
    // the newest rows are kept under the limit
    assert_eq!(
        store
            .pool_sample_list(now - chrono::Duration::hours(2), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // pruned by the host history's age, not the instances'
    let keep = RetentionLoose {
        before: now + chrono::Duration::seconds(5),
        dead_before: now - chrono::Duration::days(1),
        metrics_before: now - chrono::Duration::days(7),
        limit: 100,
        dry_run: false,
    };
    assert_eq!(store.retention_loose(&keep).await.unwrap().pool_sample, 0);
    let go = RetentionLoose {
        metrics_before: now + chrono::Duration::seconds(5),
        ..keep
    };
    assert_eq!(store.retention_loose(&go).await.unwrap().pool_sample, 2);
    assert!(store
        .pool_sample_list(now - chrono::Duration::hours(2), 100)
        .await
        .unwrap()
        .is_empty());
}

/// An idle worker asks `ready_tasks_due` before it claims, and reads the pool names only when
/// something is ready: a task in a pool it has not heard of yet must count.
pub(super) async fn ready_tasks_due_counts_pooled_tasks(store: &dyn Store) {
    let queues = vec!["q".to_string()];
    assert!(!store.ready_tasks_due(&queues).await.unwrap());
    set_pool(store, "fresh", 1).await;
    pooled(store, &[("a", "fresh", 1, 0)]).await;
    assert!(store.ready_tasks_due(&queues).await.unwrap());
    assert!(store.ready_tasks_due(&[]).await.unwrap());
}
