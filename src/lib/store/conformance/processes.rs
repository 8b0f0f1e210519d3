//! Cases for processes: worker and scheduler registration, the master lock, and deadlock retry.

use std::time::Duration;

use super::fixtures::*;
use crate::store::*;

fn registration(id: &str) -> WorkerRegistration {
    WorkerRegistration {
        id: id.to_string(),
        name: format!("worker {id}"),
        host: "etl-01".to_string(),
        pid: 4242,
        queues: "[\"default\",\"etl\"]".to_string(),
        slots: 4,
    }
}

pub(super) async fn worker_lifecycle(store: &dyn Store) {
    store.worker_register(&registration("w1")).await.unwrap();
    store.worker_register(&registration("w2")).await.unwrap();
    assert!(
        store.worker_register(&registration("w1")).await.is_err(),
        "ids are unique"
    );
    ready_tasks(store, &[("a", "q", 0), ("b", "q", 0)]).await;
    assert_eq!(
        claim_ids(store, &claim("w1", &["q"], 2, MINUTE))
            .await
            .len(),
        2
    );

    let workers = store.worker_list().await.unwrap();
    assert_eq!(
        workers.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["w1", "w2"]
    );
    let w1 = &workers[0];
    assert_eq!(
        (
            w1.name.as_str(),
            w1.host.as_str(),
            w1.pid,
            w1.queues.as_str(),
            w1.slots,
            w1.state.as_str()
        ),
        (
            "worker w1",
            "etl-01",
            4242,
            "[\"default\",\"etl\"]",
            4,
            "running"
        )
    );
    assert_eq!(w1.stopped_at, None);
    assert!(
        w1.heartbeat_age_s > -1.0 && w1.heartbeat_age_s < 30.0,
        "{}",
        w1.heartbeat_age_s
    );
    assert_eq!((w1.running_tasks, workers[1].running_tasks), (2, 0));

    assert_eq!(
        store
            .worker_heartbeat("w1", &HostSample::default())
            .await
            .unwrap(),
        Cas::Applied
    );
    let beat = store.worker_list().await.unwrap()[0].heartbeat_at;
    assert!(beat >= w1.heartbeat_at);
    assert_eq!(
        store
            .worker_heartbeat("ghost", &HostSample::default())
            .await
            .unwrap(),
        Cas::Stale
    );

    store.worker_deregister("w2").await.unwrap();
    let w2 = store.worker_list().await.unwrap().remove(1);
    assert_eq!(w2.state, "stopped");
    assert!(w2.stopped_at.is_some());
    assert_eq!(
        store
            .worker_heartbeat("w2", &HostSample::default())
            .await
            .unwrap(),
        Cas::Stale,
        "a stopped worker stays stopped"
    );
}

fn host(cpu: Option<f64>, running: i64) -> HostSample {
    HostSample {
        cpu_percent: cpu,
        load1: 1.5,
        load5: 0.75,
        load15: 0.25,
        mem_used_bytes: 3 << 30,
        mem_total_bytes: 8 << 30,
        disk_free_bytes: Some(50 << 30),
        running_tasks: running,
    }
}

pub(super) async fn worker_host_rides_the_heartbeat_and_its_history_has_one_row_per_interval(
    store: &dyn Store,
) {
    store.worker_register(&registration("w1")).await.unwrap();
    let fresh = store.worker_list().await.unwrap().remove(0);
    assert_eq!(
        (
            fresh.cpu_percent,
            fresh.load1,
            fresh.mem_total_bytes,
            fresh.disk_free_bytes
        ),
        (None, None, None, None),
        "nothing sampled yet"
    );
    let sample = host(Some(37.5), 2);
    assert_eq!(
        store.worker_heartbeat("w1", &sample).await.unwrap(),
        Cas::Applied
    );
    let w = store.worker_list().await.unwrap().remove(0);
    assert_eq!(
        (
            w.cpu_percent,
            w.load1,
            w.load5,
            w.load15,
            w.mem_used_bytes,
            w.mem_total_bytes,
            w.disk_free_bytes
        ),
        (
            Some(37.5),
            Some(1.5),
            Some(0.75),
            Some(0.25),
            Some(3 << 30),
            Some(8 << 30),
            Some(50 << 30)
        )
    );
    // a sample without a CPU share (the first after a restart) says so rather than keep an old one
    let unknown = HostSample {
        disk_free_bytes: None,
        ..host(None, 0)
    };
    assert!(store
        .worker_heartbeat("w1", &unknown)
        .await
        .unwrap()
        .applied());
    let w = store.worker_list().await.unwrap().remove(0);
    assert_eq!((w.cpu_percent, w.disk_free_bytes), (None, None));

    // one row per worker and interval (a day here, so the interval cannot turn mid-test), a second
    // insert in the same interval (a re-sent one, a restarted worker) is a no-op
    fn daily<'a>(worker_id: &'a str, host: &'a HostSample) -> WorkerMetricInsert<'a> {
        WorkerMetricInsert {
            worker_id,
            every: Duration::from_secs(86_400),
            host,
        }
    }
    let (first, second) = (host(Some(37.5), 2), host(Some(90.0), 4));
    assert!(store
        .worker_metric_insert(&daily("w1", &first))
        .await
        .unwrap());
    assert!(!store
        .worker_metric_insert(&daily("w1", &second))
        .await
        .unwrap());
    assert!(store
        .worker_metric_insert(&daily("w2", &second))
        .await
        .unwrap());
    let now = store.now().await.unwrap();
    let rows = store
        .worker_metric_list(now - chrono::Duration::days(2), 100)
        .await
        .unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (
                r.worker_id.as_str(),
                r.host.cpu_percent,
                r.host.running_tasks
            ))
            .collect::<Vec<_>>(),
        [("w1", Some(37.5), 2), ("w2", Some(90.0), 4)],
        "by worker, the first row of the interval kept"
    );
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    assert!(
        rows.iter().all(|r| r.sampled_at == midnight),
        "the interval's start by the database clock: {rows:?}"
    );
    assert_eq!(rows[0].host, first, "every figure kept");
    // whole seconds with a one-second interval; `since` and `limit` keep the newest
    let each_second = WorkerMetricInsert {
        every: Duration::from_secs(1),
        ..daily("w1", &second)
    };
    assert!(store.worker_metric_insert(&each_second).await.unwrap());
    let newest = store
        .worker_metric_list(now - chrono::Duration::days(2), 1)
        .await
        .unwrap();
    assert_eq!(newest.len(), 1, "{newest:?}");
    assert_eq!(newest[0].host.cpu_percent, Some(90.0));
    assert_eq!(newest[0].sampled_at.timestamp_subsec_micros(), 0);
    assert!(newest[0].sampled_at > midnight && newest[0].sampled_at <= now);
    let later = store
        .worker_metric_list(newest[0].sampled_at + chrono::Duration::seconds(1), 100)
        .await
        .unwrap();
    assert!(later.is_empty(), "{later:?}");
}

fn beat(id: &str, state: &'static str, epoch: Option<i64>) -> SchedulerBeat {
    SchedulerBeat {
        id: id.to_string(),
        host: "sched-01".to_string(),
        pid: 7,
        state,
        epoch,
    }
}

pub(super) async fn scheduler_heartbeat_tracks_master_since(store: &dyn Store) {
    store
        .scheduler_heartbeat(&beat("s1", "standby", None))
        .await
        .unwrap();
    let s = store.scheduler_list().await.unwrap().remove(0);
    assert_eq!(
        (
            s.id.as_str(),
            s.host.as_str(),
            s.pid,
            s.state.as_str(),
            s.epoch,
            s.master_since
        ),
        ("s1", "sched-01", 7, "standby", None, None)
    );

    store
        .scheduler_heartbeat(&beat("s1", "master", Some(3)))
        .await
        .unwrap();
    let m = store.scheduler_list().await.unwrap().remove(0);
    assert_eq!((m.state.as_str(), m.epoch), ("master", Some(3)));
    let since = m.master_since.expect("set on becoming master");
    assert_eq!(m.started_at, s.started_at);
    assert!(m.heartbeat_at >= s.heartbeat_at);

    store
        .scheduler_heartbeat(&beat("s1", "master", Some(3)))
        .await
        .unwrap();
    let again = store.scheduler_list().await.unwrap().remove(0);
    assert_eq!(again.master_since, Some(since), "kept while master");

    store
        .scheduler_heartbeat(&beat("s2", "standby", None))
        .await
        .unwrap();
    store
        .scheduler_heartbeat(&beat("s1", "standby", Some(3)))
        .await
        .unwrap();
    let list = store.scheduler_list().await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["s1", "s2"]
    );
    assert_eq!(
        (list[0].state.as_str(), list[0].master_since),
        ("standby", None)
    );
}

pub(super) async fn master_lock_is_exclusive(store: &dyn Store) {
    let mut a = store.master_lock("scheduler-a").await.unwrap();
    let mut b = store.master_lock("scheduler-b").await.unwrap();
    assert!(!a.still_held().await.unwrap(), "not held before acquiring");

    let first = a.try_acquire().await.unwrap().expect("a free lock");
    assert_eq!(b.try_acquire().await.unwrap(), None);
    assert!(a.still_held().await.unwrap());
    assert!(
        a.still_held().await.unwrap(),
        "checking does not give it up"
    );
    assert!(!b.still_held().await.unwrap());
    assert_eq!(b.try_acquire().await.unwrap(), None, "still refused");

    a.release().await.unwrap();
    assert!(!a.still_held().await.unwrap());
    let second = b.try_acquire().await.unwrap().expect("released");
    assert!(second > first, "epoch {second} follows {first}");
    assert!(b.still_held().await.unwrap());
    assert_eq!(a.try_acquire().await.unwrap(), None);

    b.release().await.unwrap();
    let third = a.try_acquire().await.unwrap().expect("released again");
    assert!(third > second);
    a.release().await.unwrap();
}

/// Two transactions lock two rows in opposite orders. A server with row locks detects the
/// deadlock and fails one of them with an error that `is_retryable` recognises; SQLite has one
/// writer, so the second waits and both succeed.
pub(super) async fn crossed_row_locks_fail_retryably(store: &dyn Store) {
    workflows(store, &["left", "right"]).await;
    // Each side waits for the other to hold its first row. On SQLite the other side waits in begin()
    // until this one commits, so it cannot come: wait briefly there, and long on a busy server.
    let patience = if store.backend() == Backend::Sqlite {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(60)
    };
    let (a_tx, a_rx) = tokio::sync::watch::channel(false);
    let (b_tx, b_rx) = tokio::sync::watch::channel(false);
    let side = |first: &'static str,
                second: &'static str,
                mine: tokio::sync::watch::Sender<bool>,
                mut theirs: tokio::sync::watch::Receiver<bool>| async move {
        let mut tx = store.begin().await?;
        tx.workflow_lock(first).await?;
        let _ = mine.send(true);
        let _ = tokio::time::timeout(patience, theirs.wait_for(|v| *v)).await;
        tx.workflow_lock(second).await?;
        tx.commit().await
    };
    let (left, right) = tokio::join!(
        side("left", "right", a_tx, b_rx),
        side("right", "left", b_tx, a_rx)
    );
    let failures: Vec<StoreError> = [left, right].into_iter().filter_map(|r| r.err()).collect();
    for e in &failures {
        assert!(e.is_retryable(), "a deadlock must be retryable: {e}");
    }
    if store.backend() != Backend::Sqlite {
        assert_eq!(failures.len(), 1, "the server picks one victim");
    }
    // Running the victim again succeeds.
    let mut tx = store.begin().await.unwrap();
    tx.workflow_lock("right").await.unwrap();
    tx.workflow_lock("left").await.unwrap();
    tx.commit().await.unwrap();
}
