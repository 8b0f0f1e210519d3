//! Cases for what is appended or configured: task logs, attempts, events, db and file links.

use super::fixtures::*;
use crate::definition::{DbKind, DbLink, FileKind, FileLink};
use crate::state::{AttemptOutcome, TaskId};
use crate::store::*;

pub(super) async fn task_log_pages_with_after(store: &dyn Store) {
    let ids = tasks(store, &[("t", "q", 0), ("u", "q", 0)]).await;
    let (t, u) = (ids[0], ids[1]);
    let logged_at = ms(at(2024, 5, 1, 12, 0) + chrono::Duration::milliseconds(250));
    let line = |task, attempt, seq: i64, stream| LogLine {
        task_id: task,
        attempt,
        seq,
        logged_at,
        stream,
        line: format!("第{seq}行 attempt {attempt}"),
    };
    let first: Vec<LogLine> = (0..5).map(|s| line(t, 1, s, LogStream::Stdout)).collect();
    let rest = vec![
        line(t, 2, 0, LogStream::Stderr),
        line(t, 2, 1, LogStream::System),
        line(u, 1, 0, LogStream::Stdout),
    ];
    store.task_log_insert_many(&first).await.unwrap();
    store.task_log_insert_many(&rest).await.unwrap();
    store.task_log_insert_many(&first[3..]).await.unwrap(); // a batch sent twice
    store.task_log_insert_many(&[]).await.unwrap();

    let read = |task_ids: Vec<TaskId>, after, limit| async move {
        store
            .task_log_read(&LogQuery {
                task_ids,
                after,
                limit,
            })
            .await
            .unwrap()
    };
    let page1 = read(vec![t], None, 4).await;
    assert_eq!(page1, first[..4]);
    let last = page1.last().unwrap();
    let page2 = read(vec![t], Some((t, last.attempt, last.seq)), 4).await;
    assert_eq!(page2, [first[4].clone(), rest[0].clone(), rest[1].clone()]);
    assert!(read(vec![t], Some((t, 2, 1)), 4).await.is_empty());
    let both = read(vec![u, t], None, 100).await;
    assert_eq!(both.len(), 8);
    assert_eq!(both.last().unwrap(), &rest[2]);
    assert!(read(vec![], None, 100).await.is_empty());
}

pub(super) async fn task_attempt_key_is_unique(store: &dyn Store) {
    let ids = tasks(store, &[("t", "q", 0), ("u", "q", 0)]).await;
    let inst = store.task_get(ids[0]).await.unwrap().unwrap().instance_id;
    let attempt = |task, n, outcome, exit_code| AttemptRow {
        task_id: task,
        attempt: n,
        worker_id: Some("w1".to_string()),
        outcome,
        exit_code,
        error: (outcome != AttemptOutcome::Succeeded).then(|| "退出码 1".to_string()),
        started_at: Some(ms(at(2024, 5, 1, 12, n as u32))),
        ended_at: ms(at(2024, 5, 1, 13, n as u32)),
    };
    let rows = [
        attempt(ids[1], 1, AttemptOutcome::Lost, None),
        attempt(ids[0], 2, AttemptOutcome::Succeeded, Some(0)),
        attempt(ids[0], 1, AttemptOutcome::TimedOut, Some(1)),
    ];
    let mut tx = store.begin().await.unwrap();
    for r in &rows {
        tx.task_attempt_insert(r).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(
        store.task_attempt_list(inst).await.unwrap(),
        [rows[2].clone(), rows[1].clone(), rows[0].clone()]
    );

    let mut tx = store.begin().await.unwrap();
    let dup = tx
        .task_attempt_insert(&attempt(ids[0], 1, AttemptOutcome::Failed, Some(2)))
        .await;
    assert!(dup.is_err(), "(task_id, attempt) is the primary key");
    drop(tx);
    assert_eq!(store.task_attempt_list(inst).await.unwrap().len(), 3);
}

pub(super) async fn events_filter_and_page(store: &dyn Store) {
    let inst = instance(store, "w", 0).await;
    let event = |instance_id, kind, message: &str| NewEvent {
        workflow: Some("w".to_string()),
        instance_id,
        task_id: instance_id.map(|_| TaskId(42)),
        node: instance_id.map(|_| "加载".to_string()),
        kind,
        from_status: Some("running"),
        to_status: Some("ready"),
        message: message.to_string(),
        actor: "scheduler-1".to_string(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.event_insert_many(&[
        event(Some(inst), "task_rescued", "租约过期"),
        event(None, "workflow_synced", "synced"),
        event(Some(inst), "task_retry", "retry"),
    ])
    .await
    .unwrap();
    tx.event_insert_many(&[]).await.unwrap();
    tx.commit().await.unwrap();

    let all = store
        .event_list(&EventFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["task_rescued", "workflow_synced", "task_retry"]
    );
    let e = &all[0];
    assert_eq!(
        (
            e.workflow.as_deref(),
            e.instance_id,
            e.task_id,
            e.node.as_deref()
        ),
        (Some("w"), Some(inst.0), Some(42), Some("加载"))
    );
    assert_eq!(
        (
            e.from_status.as_deref(),
            e.to_status.as_deref(),
            e.message.as_str(),
            e.actor.as_str()
        ),
        (Some("running"), Some("ready"), "租约过期", "scheduler-1")
    );
    assert_eq!((all[1].instance_id, all[1].node.as_deref()), (None, None));

    let of_instance = store
        .event_list(&EventFilter {
            instance_id: Some(inst),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_instance, [all[0].clone(), all[2].clone()]);
    let after = store
        .event_list(&EventFilter {
            after_id: Some(all[0].id),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(after, [all[1].clone()]);
}

pub(super) async fn links_upsert_list_delete(store: &dyn Store) {
    let db = |name: &str, url: &str| DbLink {
        name: name.to_string(),
        kind: DbKind::Mysql,
        url: url.to_string(),
        username: "etl".to_string(),
        password: "秘密".to_string(),
        properties: vec![("useSSL".to_string(), "false".to_string())],
    };
    let file = |name: &str, port| FileLink {
        name: name.to_string(),
        kind: FileKind::Sftp,
        host: "files.example.com".to_string(),
        port,
        username: "etl".to_string(),
        password: "secret".to_string(),
        description: "落地区".to_string(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.db_link_upsert(&db("ods", "jdbc:mysql://a/ods"))
        .await
        .unwrap();
    tx.db_link_upsert(&db("dw", "jdbc:mysql://a/dw"))
        .await
        .unwrap();
    tx.db_link_upsert(&db("dw", "jdbc:mysql://b/dw"))
        .await
        .unwrap();
    tx.file_link_upsert(&file("landing", 22)).await.unwrap();
    tx.file_link_upsert(&file("archive", 22)).await.unwrap();
    tx.file_link_upsert(&file("landing", 2222)).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.db_link_names().await.unwrap(), ["dw", "ods"]);
    assert_eq!(tx.file_link_names().await.unwrap(), ["archive", "landing"]);
    tx.db_link_delete("ods").await.unwrap();
    tx.db_link_delete("missing").await.unwrap();
    tx.file_link_delete("archive").await.unwrap();
    assert_eq!(tx.db_link_names().await.unwrap(), ["dw"]);
    assert_eq!(tx.file_link_names().await.unwrap(), ["landing"]);
    tx.rollback().await.unwrap();

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.db_link_names().await.unwrap(),
        ["dw", "ods"],
        "rolled back"
    );
}
