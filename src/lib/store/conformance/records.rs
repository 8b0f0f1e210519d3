//! Cases for what is appended or configured: task logs, attempts, events, db and file links, the
//! data-monitor history.

use super::fixtures::*;
use crate::definition::{DbKind, DbLink, FileKind, FileLink};
use crate::state::{AttemptOutcome, InstanceId, TaskId};
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
                contains: None,
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
    // a search: the text anywhere in the line, ASCII case ignored, with the same cursor
    let find = |contains: &str, after| {
        let contains = Some(contains.to_string());
        async move {
            store
                .task_log_read(&LogQuery {
                    task_ids: vec![t, u],
                    after,
                    limit: 100,
                    contains,
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(find("ATTEMPT 2", None).await, rest[..2]);
    assert_eq!(
        find("第0行 attempt 1", None).await,
        [first[0].clone(), rest[2].clone()]
    );
    assert_eq!(find("第0行 attempt 1", Some((t, 1, 0))).await, rest[2..]);
    assert!(find("not there", None).await.is_empty());
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

    // attempt rows are written at commit: a duplicate fails the whole transaction, nothing lands
    let mut tx = store.begin().await.unwrap();
    tx.task_attempt_insert(&attempt(ids[1], 7, AttemptOutcome::Failed, Some(2)))
        .await
        .unwrap();
    tx.task_attempt_insert(&attempt(ids[0], 1, AttemptOutcome::Failed, Some(2)))
        .await
        .unwrap();
    assert!(
        tx.commit().await.is_err(),
        "(task_id, attempt) is the primary key"
    );
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
        pool: None,
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

pub(super) async fn links_read_back_by_name(store: &dyn Store) {
    let db = DbLink {
        name: "dw".to_string(),
        kind: DbKind::Postgresql,
        url: "jdbc:postgresql://pg:5432/dw?currentSchema=ods".to_string(),
        username: "etl".to_string(),
        password: "p@ss 秘密".to_string(),
        properties: vec![
            ("ssl".to_string(), "true".to_string()),
            ("ApplicationName".to_string(), "akkaflow".to_string()),
        ],
        pool: Some("warehouse".to_string()),
    };
    let file = FileLink {
        name: "landing".to_string(),
        kind: FileKind::Hdfs,
        host: "nn".to_string(),
        port: 8020,
        username: "hive".to_string(),
        password: "hive".to_string(),
        description: "落地区".to_string(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.db_link_upsert(&db).await.unwrap();
    tx.file_link_upsert(&file).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.db_link_get("dw").await.unwrap(), Some(db));
    assert_eq!(store.file_link_get("landing").await.unwrap(), Some(file));
    assert_eq!(
        store.db_link_get("DW").await.unwrap(),
        None,
        "names are exact"
    );
    assert_eq!(store.file_link_get("missing").await.unwrap(), None);
}

pub(super) async fn data_monitor_checks_are_recorded_in_order(store: &dyn Store) {
    let ids = tasks(store, &[("check", "q", 0)]).await;
    let task = store.task_get(ids[0]).await.unwrap().unwrap();
    let before = store.now().await.unwrap();
    let passed = NewDataMonitorCheck {
        workflow: "tasks".to_string(),
        instance_id: task.instance_id,
        task_id: task.id,
        node: "check".to_string(),
        category: Some("mysql".to_string()),
        source_name: Some("订单".to_string()),
        time_mark: Some("2024-05-01".to_string()),
        value: Some(3.5),
        min_value: Some(1.0),
        max_value: None,
        passed: true,
        message: "value 3.5 is within [1, ∞]".to_string(),
    };
    let unevaluated = NewDataMonitorCheck {
        category: None,
        source_name: None,
        time_mark: None,
        value: None,
        passed: false,
        message: "source (SQL) returned no value".to_string(),
        ..passed.clone()
    };
    store.data_monitor_insert(&passed).await.unwrap();
    store.data_monitor_insert(&unevaluated).await.unwrap();
    let rows = store.data_monitor_list(task.instance_id).await.unwrap();
    let got: Vec<NewDataMonitorCheck> = rows
        .iter()
        .map(|r| NewDataMonitorCheck {
            workflow: r.workflow.clone(),
            instance_id: r.instance_id,
            task_id: r.task_id,
            node: r.node.clone(),
            category: r.category.clone(),
            source_name: r.source_name.clone(),
            time_mark: r.time_mark.clone(),
            value: r.value,
            min_value: r.min_value,
            max_value: r.max_value,
            passed: r.passed,
            message: r.message.clone(),
        })
        .collect();
    assert_eq!(got, [passed, unevaluated]);
    assert!(rows[0].id < rows[1].id);
    assert!(
        rows[0].checked_at >= ms(before) - chrono::Duration::seconds(1),
        "checked_at is the database clock"
    );
    let other = InstanceId(task.instance_id.0 + 1000);
    assert!(store.data_monitor_list(other).await.unwrap().is_empty());
}
