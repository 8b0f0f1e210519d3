//! Cases for what the HTTP role reads and keeps: API tokens, UI sessions, scoped and summary
//! listings, links without their passwords.

use std::time::Duration;

use super::fixtures::*;
use crate::definition::{DbKind, DbLink, FileKind, FileLink};
use crate::state::InstanceStatus;
use crate::store::*;

fn new_token(name: &str, role: TokenRole, dir: Option<&str>) -> NewToken {
    NewToken {
        name: name.to_string(),
        role,
        dir_prefix: dir.map(str::to_string),
        secret_hash: format!("{:0>64}", name.len().to_string() + name),
        created_by: "cli:测试".to_string(),
    }
}

pub(super) async fn tokens_and_sessions_round_trip_and_revoke(store: &dyn Store) {
    let mut tx = store.begin().await.unwrap();
    let ops = tx
        .token_create(&new_token("ops", TokenRole::Operator, Some("/dw")))
        .await
        .unwrap()
        .expect("a new name");
    // a taken name is `None`, and the transaction goes on
    assert!(tx
        .token_create(&NewToken {
            secret_hash: "f".repeat(64),
            ..new_token("ops", TokenRole::Admin, None)
        })
        .await
        .unwrap()
        .is_none());
    let admin = tx
        .token_create(&new_token("admin", TokenRole::Admin, None))
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (ops.name.as_str(), ops.role, ops.dir_prefix.as_deref()),
        ("ops", TokenRole::Operator, Some("/dw"))
    );
    assert_eq!(ops.created_by, "cli:测试");
    assert!(ops.revoked_at.is_none());
    let listed = store.token_list().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["admin", "ops"]
    );
    assert_eq!(listed[1], ops);
    let hash = new_token("ops", TokenRole::Operator, None).secret_hash;
    assert_eq!(
        store.token_get_by_hash(&hash).await.unwrap(),
        Some(ops.clone())
    );
    assert!(store.token_get_by_hash("nope").await.unwrap().is_none());

    let session = |id: &str, token_id, ttl| NewSession {
        id_hash: id.to_string(),
        token_id,
        csrf: format!("csrf-{id}"),
        ttl,
    };
    store
        .session_create(&session("s1", ops.id, Duration::from_secs(3600)))
        .await
        .unwrap();
    store
        .session_create(&session("s2", admin.id, Duration::from_secs(3600)))
        .await
        .unwrap();
    store
        .session_create(&session("old", admin.id, Duration::ZERO))
        .await
        .unwrap();
    let s1 = store
        .session_get("s1")
        .await
        .unwrap()
        .expect("live session");
    assert_eq!((s1.token, s1.csrf.as_str()), (ops.clone(), "csrf-s1"));
    assert!(s1.expires_at > store.now().await.unwrap() + chrono::Duration::minutes(59));
    assert!(
        store.session_get("old").await.unwrap().is_none(),
        "expired by the db clock"
    );
    store.session_delete("s2").await.unwrap();
    assert!(store.session_get("s2").await.unwrap().is_none());

    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.token_revoke("ops").await.unwrap(), Cas::Applied);
    assert_eq!(tx.token_revoke("ops").await.unwrap(), Cas::Stale);
    assert_eq!(tx.token_revoke("missing").await.unwrap(), Cas::Stale);
    tx.commit().await.unwrap();
    assert!(store.token_get_by_hash(&hash).await.unwrap().is_none());
    assert!(
        store.session_get("s1").await.unwrap().is_none(),
        "revoking ends the sessions"
    );
    let revoked = store.token_list().await.unwrap();
    assert!(revoked[1].revoked_at.is_some() && revoked[0].revoked_at.is_none());
}

pub(super) async fn http_listings_scope_summarise_and_hide_passwords(store: &dyn Store) {
    let mut tx = store.begin().await.unwrap();
    for (name, dir) in [
        ("a", "/dw"),
        ("b", "/dw/ods"),
        ("c", "/dwh"),
        ("d", "/other"),
    ] {
        tx.workflow_upsert(&upsert(name, dir, 1)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut ids = Vec::new();
    for (i, wf) in ["a", "b", "c", "d", "a"].iter().enumerate() {
        ids.push(instance(store, wf, i as u32).await);
    }
    let list = |dir: Option<&str>| {
        let dir = dir.map(str::to_string);
        async move {
            store
                .instance_list(&InstanceFilter {
                    dir_prefix: dir,
                    limit: 100,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.workflow)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(Some("/dw")).await, ["a", "b", "a"]);
    assert_eq!(list(Some("/dw/")).await, ["a", "b", "a"]);
    assert_eq!(list(Some("/dw/ods")).await, ["b"]);
    assert_eq!(list(Some("/nowhere")).await, Vec::<String>::new());
    assert_eq!(list(None).await.len(), 5);
    let latest = store.instance_latest_by_workflow().await.unwrap();
    assert_eq!(
        latest
            .iter()
            .map(|i| (i.workflow.as_str(), i.id))
            .collect::<Vec<_>>(),
        [("a", ids[4]), ("b", ids[1]), ("c", ids[2]), ("d", ids[3])]
    );

    // end two instances now; the others stay pending (counted by their creation day)
    let now = store.now().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for (id, to) in [
        (ids[0], InstanceStatus::Failed),
        (ids[1], InstanceStatus::Succeeded),
    ] {
        let cas = tx
            .instance_transition(&InstanceTransition {
                id,
                from: vec![InstanceStatus::Pending],
                to,
                started_at: Some(now),
                ended_at: Some(now),
                error: None,
            })
            .await
            .unwrap();
        assert_eq!(cas, Cas::Applied);
    }
    tx.commit().await.unwrap();
    let day = now.format("%Y-%m-%d").to_string();
    let since = now - chrono::Duration::days(1);
    let counts = store
        .instance_count_by_day(since, Some("/dw"))
        .await
        .unwrap();
    let row = |status| DayCount {
        day: day.clone(),
        status,
        count: 1,
    };
    let mut want = vec![
        row(InstanceStatus::Failed),
        row(InstanceStatus::Pending),
        row(InstanceStatus::Succeeded),
    ];
    want.sort_by_key(|r| r.status.as_str());
    let mut got = counts.clone();
    got.sort_by_key(|r| r.status.as_str());
    assert_eq!(got, want);
    let all: i64 = store
        .instance_count_by_day(since, None)
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum();
    assert_eq!(all, 5);
    assert!(store
        .instance_count_by_day(now + chrono::Duration::days(1), None)
        .await
        .unwrap()
        .is_empty());

    // coordinators and links, the latter without any password
    let mut tx = store.begin().await.unwrap();
    tx.coordinator_upsert(&CoordinatorRow {
        workflow: "b".into(),
        cron: Some("0 1 * * *".into()),
        timezone: "UTC".into(),
        depends: "[\"a\"]".into(),
        params: "[]".into(),
        enabled: true,
        start_time: None,
        end_time: None,
        next_fire_at: None,
        last_fire_at: None,
        catchup: "latest".into(),
        max_catchup: 100,
        calendar: None,
    })
    .await
    .unwrap();
    tx.db_link_upsert(&DbLink {
        name: "dw".into(),
        kind: DbKind::Postgresql,
        url: "postgres://db/dw".into(),
        username: "etl".into(),
        password: "秘密".into(),
        properties: vec![("sslmode".into(), "require".into())],
        pool: None,
    })
    .await
    .unwrap();
    tx.file_link_upsert(&FileLink {
        name: "landing".into(),
        kind: FileKind::Sftp,
        host: "files".into(),
        port: 2222,
        username: "etl".into(),
        password: "secret".into(),
        description: "落地区".into(),
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let coordinators = store.coordinator_list().await.unwrap();
    assert_eq!(coordinators.len(), 1);
    assert_eq!(coordinators[0].cron.as_deref(), Some("0 1 * * *"));
    let db = store.db_link_list().await.unwrap();
    assert_eq!(
        (
            db[0].name.as_str(),
            db[0].kind.as_str(),
            db[0].username.as_str()
        ),
        ("dw", "POSTGRESQL", "etl")
    );
    assert!(db[0].properties.contains("sslmode"));
    let files = store.file_link_list().await.unwrap();
    assert_eq!(
        (
            files[0].name.as_str(),
            files[0].port,
            files[0].description.as_str()
        ),
        ("landing", 2222, "落地区")
    );
}
