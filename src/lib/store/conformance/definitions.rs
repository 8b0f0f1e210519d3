//! Cases for the schema, the clock, workflow definitions and coordinators.

use chrono::{DateTime, Utc};

use super::fixtures::*;
use crate::state::InstanceId;
use crate::store::*;

pub(super) async fn migrations_apply_twice(store: &dyn Store) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert!(store.workflow_list().await.unwrap().is_empty());
    assert!(store.scheduler_list().await.unwrap().is_empty());
}

pub(super) async fn db_clock_is_utc(store: &dyn Store) {
    // The only comparison with the host clock, and a loose one: it catches a session time zone
    // that shifts stored times by hours, not clock skew.
    let db = store.now().await.unwrap();
    let skew = (db - Utc::now()).num_seconds().abs();
    assert!(skew < 300, "database clock {db} is {skew}s away from UTC");
    let later = store.now().await.unwrap();
    assert!(later >= db);
}

pub(super) async fn workflow_round_trip(store: &dyn Store) {
    let chinese = upsert("日报_汇总", "数据仓库/日报", 1);
    let mut tx = store.begin().await.unwrap();
    tx.workflow_upsert(&chinese).await.unwrap();
    for name in ["b", "A", "a"] {
        tx.workflow_upsert(&upsert(name, "a", 1)).await.unwrap();
    }
    tx.commit().await.unwrap();

    let got = store.workflow_get("日报_汇总").await.unwrap().unwrap();
    assert_eq!(
        (
            got.name.as_str(),
            got.version,
            got.content_hash.as_str(),
            got.source_xml.as_str()
        ),
        (
            chinese.name.as_str(),
            1,
            chinese.content_hash.as_str(),
            chinese.source_xml.as_str()
        )
    );
    assert_eq!(
        (
            got.definition.as_str(),
            got.file_path.as_str(),
            got.dir.as_str(),
            got.creator.as_str()
        ),
        (
            chinese.definition.as_str(),
            chinese.file_path.as_str(),
            "数据仓库/日报",
            "张三"
        )
    );
    assert_eq!(
        (
            got.description.as_str(),
            got.mail_level.as_str(),
            got.mail_receivers.as_str()
        ),
        (
            chinese.description.as_str(),
            "W_FAILED",
            chinese.mail_receivers.as_str()
        )
    );
    assert_eq!((got.instance_limit, got.enabled), (2, true));
    assert!(got.created_at <= got.updated_at);
    assert!(store.workflow_get("missing").await.unwrap().is_none());

    // Names are exact (`A` and `a` are two workflows) and sort by bytes, dir first.
    let listed: Vec<(String, String)> = store
        .workflow_list()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.dir, w.name))
        .collect();
    let want = [
        ("a", "A"),
        ("a", "a"),
        ("a", "b"),
        ("数据仓库/日报", "日报_汇总"),
    ];
    assert_eq!(
        listed,
        want.map(|(d, n)| (d.to_string(), n.to_string())).to_vec()
    );

    // A new version replaces the row but keeps its creation time.
    let mut v2 = upsert("日报_汇总", "数据仓库/日报", 2);
    v2.description = "第二版".to_string();
    v2.instance_limit = 5;
    let mut tx = store.begin().await.unwrap();
    tx.workflow_upsert(&v2).await.unwrap();
    let heads = tx.workflow_heads().await.unwrap();
    let names: Vec<&str> = heads.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["A", "a", "b", "日报_汇总"]);
    assert_eq!(
        heads[3],
        WorkflowHead {
            name: "日报_汇总".to_string(),
            version: 2,
            content_hash: v2.content_hash.clone(),
            enabled: true,
            instance_limit: 5,
            file_path: v2.file_path.clone(),
            rolled_back_to: None,
        }
    );
    assert_eq!(
        tx.workflow_lock("日报_汇总").await.unwrap().as_ref(),
        Some(&heads[3])
    );
    assert_eq!(tx.workflow_lock("missing").await.unwrap(), None);
    // several in one statement, in name order, the missing ones left out
    let names = ["日报_汇总", "missing", "a", "A"].map(String::from);
    assert_eq!(
        tx.workflow_lock_many(&names).await.unwrap(),
        [heads[0].clone(), heads[1].clone(), heads[3].clone()]
    );
    assert!(tx.workflow_lock_many(&[]).await.unwrap().is_empty());
    assert_eq!(
        tx.workflow_set_enabled("b", false).await.unwrap(),
        Cas::Applied
    );
    assert_eq!(
        tx.workflow_set_enabled("b", false).await.unwrap(),
        Cas::Stale
    );
    assert_eq!(
        tx.workflow_set_enabled("missing", true).await.unwrap(),
        Cas::Stale
    );
    tx.commit().await.unwrap();

    let again = store.workflow_get("日报_汇总").await.unwrap().unwrap();
    assert_eq!((again.version, again.description.as_str()), (2, "第二版"));
    assert_eq!(again.created_at, got.created_at);
    assert!(again.updated_at >= got.updated_at);
    assert!(!store.workflow_get("b").await.unwrap().unwrap().enabled);
}

pub(super) async fn workflow_version_kept_per_version(store: &dyn Store) {
    let v1 = upsert("报表", "etl", 1);
    let v2 = upsert("报表", "etl", 2);
    for w in [&v1, &v2, &v2] {
        let mut tx = store.begin().await.unwrap();
        tx.workflow_upsert(w).await.unwrap();
        tx.commit().await.unwrap();
    }
    let def = |v| store.workflow_definition("报表", v);
    assert_eq!(
        def(1).await.unwrap().as_deref(),
        Some(v1.definition.as_str())
    );
    assert_eq!(
        def(2).await.unwrap().as_deref(),
        Some(v2.definition.as_str())
    );
    assert_eq!(def(3).await.unwrap(), None);
    assert_eq!(store.workflow_definition("other", 1).await.unwrap(), None);
    // the same reads inside a transaction, on its own connection, with the database's clock
    let before = store.now().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.workflow_definition("报表", 1).await.unwrap().as_deref(),
        Some(v1.definition.as_str())
    );
    assert_eq!(tx.workflow_definition("报表", 3).await.unwrap(), None);
    let in_tx = tx.now().await.unwrap();
    tx.rollback().await.unwrap();
    let after = store.now().await.unwrap();
    assert!(
        before <= in_tx && in_tx <= after,
        "{before} {in_tx} {after}"
    );
    assert_eq!(
        store.workflow_get("报表").await.unwrap().unwrap().version,
        2
    );
    // the current version of each named workflow in one read; unknown names are left out
    let other = upsert("other", "etl", 1);
    let mut tx = store.begin().await.unwrap();
    tx.workflow_upsert(&other).await.unwrap();
    tx.commit().await.unwrap();
    let mut current = store
        .workflow_definitions_current(&["报表".into(), "other".into(), "missing".into()])
        .await
        .unwrap();
    current.sort();
    assert_eq!(
        current,
        vec![
            ("other".to_string(), 1, other.definition.clone()),
            ("报表".to_string(), 2, v2.definition.clone()),
        ]
    );
    assert!(store
        .workflow_definitions_current(&[])
        .await
        .unwrap()
        .is_empty());
}

fn coordinator(workflow: &str, cron: Option<&str>, next: Option<DateTime<Utc>>) -> CoordinatorRow {
    CoordinatorRow {
        workflow: workflow.to_string(),
        cron: cron.map(str::to_string),
        timezone: "Asia/Shanghai".to_string(),
        depends: "[]".to_string(),
        params: "[{\"name\":\"day\",\"value\":\"${date}\"}]".to_string(),
        enabled: true,
        start_time: Some(ms(
            at(2024, 3, 10, 2, 30) + chrono::Duration::milliseconds(123)
        )),
        end_time: None,
        next_fire_at: next,
        last_fire_at: None,
        catchup: "all".to_string(),
        max_catchup: 7,
        calendar: Some("cn_workday".to_string()),
    }
}

pub(super) async fn coordinator_due_follows_db_clock(store: &dyn Store) {
    workflows(store, &["due", "later", "off", "wf_off", "fresh", "deps"]).await;
    let now = store.now().await.unwrap();
    let past = Some(ms(now - chrono::Duration::hours(1)));
    let future = Some(ms(now + chrono::Duration::hours(1)));
    let cron = Some("0 0 * * *");
    let mut off = coordinator("off", cron, past);
    off.enabled = false;
    let rows = [
        coordinator("due", cron, past),
        coordinator("later", cron, future),
        off,
        coordinator("wf_off", cron, past),
        coordinator("fresh", cron, None),
        coordinator("deps", None, None),
    ];
    let mut tx = store.begin().await.unwrap();
    for c in &rows {
        tx.coordinator_upsert(c).await.unwrap();
    }
    assert_eq!(
        tx.workflow_set_enabled("wf_off", false).await.unwrap(),
        Cas::Applied
    );
    tx.commit().await.unwrap();

    assert_eq!(
        store.coordinator_get("due").await.unwrap().as_ref(),
        Some(&rows[0])
    );
    assert_eq!(store.coordinator_get("missing").await.unwrap(), None);
    let due: Vec<String> = store
        .coordinator_due(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.workflow)
        .collect();
    assert_eq!(due, ["due"]);
    let needs: Vec<String> = store
        .coordinator_needs_next(10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.workflow)
        .collect();
    assert_eq!(needs, ["fresh"]);

    // An upsert replaces every field.
    let mut changed = rows[1].clone();
    changed.next_fire_at = past;
    changed.cron = Some("*/5 * * * *".to_string());
    let mut tx = store.begin().await.unwrap();
    tx.coordinator_upsert(&changed).await.unwrap();
    let all: Vec<String> = tx
        .coordinator_list_all()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.workflow)
        .collect();
    assert_eq!(all, ["deps", "due", "fresh", "later", "off", "wf_off"]);
    tx.coordinator_delete("off").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(store.coordinator_get("later").await.unwrap(), Some(changed));
    assert_eq!(store.coordinator_get("off").await.unwrap(), None);
    assert_eq!(store.coordinator_due(10).await.unwrap().len(), 2);
    assert_eq!(store.coordinator_due(1).await.unwrap().len(), 1);
}

pub(super) async fn coordinator_set_next_and_fire_are_cas(store: &dyn Store) {
    workflows(store, &["hourly"]).await;
    let mut tx = store.begin().await.unwrap();
    tx.coordinator_upsert(&coordinator("hourly", Some("0 * * * *"), None))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // how far the earliest slot is, by the database's clock, in seconds (rounded)
    let next_due_secs = || async {
        store
            .coordinator_next_due_micros()
            .await
            .unwrap()
            .map(|us| (us as f64 / 1e6).round() as i64)
    };
    assert_eq!(next_due_secs().await, None, "no slot scheduled yet");
    let now = store.now().await.unwrap();
    let slot = ms(now - chrono::Duration::minutes(5));
    let next = ms(now + chrono::Duration::minutes(55));
    assert_eq!(
        store
            .coordinator_set_next("hourly", Some(slot))
            .await
            .unwrap(),
        Cas::Applied
    );
    assert_eq!(
        store
            .coordinator_set_next("hourly", Some(next))
            .await
            .unwrap(),
        Cas::Stale
    );
    assert_eq!(
        store
            .coordinator_set_next("missing", Some(next))
            .await
            .unwrap(),
        Cas::Stale
    );
    assert_eq!(
        store
            .coordinator_get("hourly")
            .await
            .unwrap()
            .unwrap()
            .next_fire_at,
        Some(slot)
    );
    let due_for = next_due_secs().await.expect("a slot is scheduled");
    assert!(
        (-330..=-290).contains(&due_for),
        "due 5 min ago: {due_for}s"
    );

    // Two masters read the same due slot; only the first fire applies.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.coordinator_fire("hourly", slot, Some(next), Some(slot))
            .await
            .unwrap(),
        Cas::Applied
    );
    tx.commit().await.unwrap();
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.coordinator_fire("hourly", slot, Some(next), Some(slot))
            .await
            .unwrap(),
        Cas::Stale
    );
    tx.commit().await.unwrap();

    let c = store.coordinator_get("hourly").await.unwrap().unwrap();
    assert_eq!((c.next_fire_at, c.last_fire_at), (Some(next), Some(slot)));
    assert!(store.coordinator_due(10).await.unwrap().is_empty());
    let due_in = next_due_secs().await.expect("the next slot is scheduled");
    assert!((3270..=3310).contains(&due_in), "due in 55 min: {due_in}s");

    // The last slot of a schedule leaves nothing next.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.coordinator_fire("hourly", next, None, Some(next))
            .await
            .unwrap(),
        Cas::Applied
    );
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .coordinator_get("hourly")
            .await
            .unwrap()
            .unwrap()
            .next_fire_at,
        None
    );
    assert_eq!(next_due_secs().await, None, "the schedule is over");
}

pub(super) async fn coordinator_depend_clear_is_cas(store: &dyn Store) {
    workflows(store, &["up1", "up2", "up3", "down"]).await;
    let mut down = coordinator("down", None, None);
    down.depends = "[\"up1\",\"up2\"]".to_string();
    let ups = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let mut tx = store.begin().await.unwrap();
    tx.coordinator_upsert(&down).await.unwrap();
    tx.coordinator_depend_set("down", &ups(&["up1", "up2"]))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let list = store.coordinator_depend_list("down").await.unwrap();
    assert_eq!(
        list.iter().map(|d| d.upstream.as_str()).collect::<Vec<_>>(),
        ["up1", "up2"]
    );
    assert!(list.iter().all(|d| d.satisfied_at.is_none()));
    assert_eq!(store.coordinator_downstream("up1").await.unwrap(), ["down"]);
    assert!(store
        .coordinator_downstream("down")
        .await
        .unwrap()
        .is_empty());
    assert!(store.coordinator_deps_ready(10).await.unwrap().is_empty());

    let satisfy = |upstream: &'static str, instance: i64| async move {
        let mut tx = store.begin().await.unwrap();
        let n = tx
            .coordinator_depend_satisfy(upstream, InstanceId(instance))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        n
    };
    assert_eq!(satisfy("up1", 7).await, 1);
    assert_eq!(satisfy("nobody", 7).await, 0);
    assert!(store.coordinator_deps_ready(10).await.unwrap().is_empty());

    // Expecting two satisfied upstreams while one is: stale, and nothing is cleared.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.coordinator_depend_clear("down", 2).await.unwrap(),
        Cas::Stale
    );
    tx.commit().await.unwrap();
    let list = store.coordinator_depend_list("down").await.unwrap();
    assert_eq!(list[0].satisfied_instance_id, Some(7));
    assert!(list[0].satisfied_at.is_some());

    assert_eq!(satisfy("up2", 8).await, 1);
    let ready = store.coordinator_deps_ready(10).await.unwrap();
    assert_eq!(ready, [down.clone()]);

    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.coordinator_depend_clear("down", 2).await.unwrap(),
        Cas::Applied
    );
    tx.commit().await.unwrap();
    assert!(store
        .coordinator_depend_list("down")
        .await
        .unwrap()
        .iter()
        .all(|d| d.satisfied_at.is_none() && d.satisfied_instance_id.is_none()));
    assert!(store.coordinator_deps_ready(10).await.unwrap().is_empty());
    // A second master clearing the same fire finds nothing to clear.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        tx.coordinator_depend_clear("down", 2).await.unwrap(),
        Cas::Stale
    );
    tx.commit().await.unwrap();

    // Replacing the list keeps the progress of upstreams that remain.
    assert_eq!(satisfy("up2", 9).await, 1);
    let mut tx = store.begin().await.unwrap();
    tx.coordinator_depend_set("down", &ups(&["up2", "up3"]))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let progress = || async move {
        store
            .coordinator_depend_list("down")
            .await
            .unwrap()
            .into_iter()
            .map(|d| {
                (
                    d.upstream,
                    d.satisfied_instance_id,
                    d.satisfied_at.is_some(),
                )
            })
            .collect::<Vec<_>>()
    };
    let up = |u: &str, i: Option<i64>| (u.to_string(), i, i.is_some());
    assert_eq!(progress().await, [up("up2", Some(9)), up("up3", None)]);

    // A batch's successes in one statement: an upstream named twice counts its last instance.
    let mut tx = store.begin().await.unwrap();
    let batch = [("up3", 10), ("up2", 11), ("up3", 12), ("nobody", 13)]
        .map(|(u, i)| (u.to_string(), InstanceId(i)));
    assert_eq!(tx.coordinator_depend_satisfy_many(&batch).await.unwrap(), 2);
    assert_eq!(tx.coordinator_depend_satisfy_many(&[]).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(progress().await, [up("up2", Some(11)), up("up3", Some(12))]);

    let mut tx = store.begin().await.unwrap();
    tx.coordinator_depend_set("down", &[]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(store
        .coordinator_depend_list("down")
        .await
        .unwrap()
        .is_empty());
}

pub(super) async fn calendars_upsert_list_delete(store: &dyn Store) {
    let row = |name: &str, definition: &str| CalendarRow {
        name: name.to_string(),
        definition: definition.to_string(),
    };
    let mut tx = store.begin().await.unwrap();
    tx.calendar_upsert(&row("工作日", r#"{"weekend":[6,7]}"#))
        .await
        .unwrap();
    tx.calendar_upsert(&row("b", "{}")).await.unwrap();
    tx.calendar_upsert(&row("b", r#"{"weekend":[]}"#))
        .await
        .unwrap();
    assert_eq!(tx.calendar_list_all().await.unwrap().len(), 2);
    tx.commit().await.unwrap();
    assert_eq!(
        store.calendar_list().await.unwrap(),
        [
            row("b", r#"{"weekend":[]}"#),
            row("工作日", r#"{"weekend":[6,7]}"#)
        ]
    );
    let mut tx = store.begin().await.unwrap();
    tx.calendar_delete("b").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store.calendar_list().await.unwrap(),
        [row("工作日", r#"{"weekend":[6,7]}"#)]
    );
}

pub(super) async fn definition_sync_keeps_the_first_failure_and_the_last_good_sync(
    store: &dyn Store,
) {
    let record = |n: i64, errors: &[&str]| DefinitionSyncRecord {
        source: "/srv/xmlconfig".into(),
        error_count: n,
        errors: errors.iter().map(|e| e.to_string()).collect(),
    };
    assert!(store.definition_sync_list().await.unwrap().is_empty());
    store.definition_sync_record(&record(0, &[])).await.unwrap();
    let good = store.definition_sync_list().await.unwrap().remove(0);
    assert_eq!(
        (good.source.as_str(), good.error_count, good.failing_since),
        ("/srv/xmlconfig", 0, None)
    );
    let synced = good.synced_at.expect("a clean rescan is a sync");
    store
        .definition_sync_record(&record(2, &["a.xml:3:5: 第一 error", "b.xml:1:1: second"]))
        .await
        .unwrap();
    let bad = store.definition_sync_list().await.unwrap().remove(0);
    let since = bad.failing_since.expect("failing since the first failure");
    assert_eq!((bad.synced_at, bad.error_count), (Some(synced), 2));
    assert_eq!(
        bad.error_list(),
        ["a.xml:3:5: 第一 error", "b.xml:1:1: second"]
    );
    // a second failure keeps when it started and the last good sync, and replaces the errors
    store
        .definition_sync_record(&record(1, &["c.xml:2:1: third"]))
        .await
        .unwrap();
    let worse = store.definition_sync_list().await.unwrap().remove(0);
    assert_eq!(
        (worse.synced_at, worse.failing_since, worse.error_count),
        (Some(synced), Some(since), 1)
    );
    assert_eq!(worse.error_list(), ["c.xml:2:1: third"]);
    // fixed: synced again, no errors
    store.definition_sync_record(&record(0, &[])).await.unwrap();
    let fixed = store.definition_sync_list().await.unwrap().remove(0);
    assert_eq!((fixed.failing_since, fixed.error_count), (None, 0));
    assert!(fixed.error_list().is_empty());
    assert!(fixed.synced_at >= Some(synced));
}

pub(super) async fn workflow_rollback_mark_round_trips(store: &dyn Store) {
    workflows(store, &["w", "v"]).await;
    let mark = |to| async move {
        let mut tx = store.begin().await.unwrap();
        tx.workflow_set_rolled_back("w", to).await.unwrap();
        tx.commit().await.unwrap();
    };
    let seen = || async {
        let mut tx = store.begin().await.unwrap();
        let heads: Vec<_> = tx
            .workflow_heads()
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.name, h.rolled_back_to))
            .collect();
        let locked = tx.workflow_lock("w").await.unwrap().unwrap().rolled_back_to;
        tx.commit().await.unwrap();
        let got = store
            .workflow_get("w")
            .await
            .unwrap()
            .unwrap()
            .rolled_back_to;
        (heads, locked, got)
    };
    let none = (
        vec![("v".to_string(), None), ("w".to_string(), None)],
        None,
        None,
    );
    assert_eq!(seen().await, none);
    mark(Some(1)).await;
    assert_eq!(
        seen().await,
        (
            vec![("v".to_string(), None), ("w".to_string(), Some(1))],
            Some(1),
            Some(1)
        )
    );
    // a sync's upsert leaves the mark alone: only sync's own decision clears it
    let mut tx = store.begin().await.unwrap();
    tx.workflow_upsert(&upsert("w", "etl", 2)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        store
            .workflow_get("w")
            .await
            .unwrap()
            .unwrap()
            .rolled_back_to,
        Some(1)
    );
    mark(None).await;
    assert_eq!(seen().await, none);
}

pub(super) async fn coordinator_fire_many_applies_each_cas(store: &dyn Store) {
    workflows(store, &["a", "b", "c"]).await;
    let (t1, t2, t3) = (
        at(2024, 1, 1, 8, 0),
        at(2024, 1, 1, 9, 0),
        at(2024, 1, 1, 10, 0),
    );
    let mut tx = store.begin().await.unwrap();
    for name in ["a", "b", "c"] {
        let mut c = coordinator(name, Some("0 * * * *"), Some(t1));
        c.last_fire_at = Some(t1 - chrono::Duration::hours(1));
        tx.coordinator_upsert(&c).await.unwrap();
    }
    tx.commit().await.unwrap();
    let fire = |workflow: &str, expected, next, fired| CoordinatorFire {
        workflow: workflow.to_string(),
        expected,
        next,
        fired,
    };

    // a fires its slot, b skips its slots (last_fire_at stays), c's ends its schedule
    let mut tx = store.begin().await.unwrap();
    let applied = tx
        .coordinator_fire_many(&[
            fire("a", t1, Some(t2), Some(t1)),
            fire("b", t1, Some(t3), None),
            fire("c", t1, None, Some(t1)),
        ])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(applied, 3);
    let row = |name: &'static str| async move {
        let c = store.coordinator_get(name).await.unwrap().unwrap();
        (c.next_fire_at, c.last_fire_at)
    };
    assert_eq!(row("a").await, (Some(t2), Some(t1)));
    assert_eq!(
        row("b").await,
        (Some(t3), Some(t1 - chrono::Duration::hours(1)))
    );
    assert_eq!(row("c").await, (None, Some(t1)));

    // a stale expectation (b's), an unknown coordinator and a fresh one: only the fresh applies
    let mut tx = store.begin().await.unwrap();
    let applied = tx
        .coordinator_fire_many(&[
            fire("a", t2, Some(t3), Some(t2)),
            fire("b", t1, Some(t2), Some(t1)),
            fire("missing", t1, Some(t2), Some(t1)),
        ])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(applied, 1);
    assert_eq!(row("a").await, (Some(t3), Some(t2)));
    assert_eq!(
        row("b").await,
        (Some(t3), Some(t1 - chrono::Duration::hours(1)))
    );
    let mut tx = store.begin().await.unwrap();
    assert_eq!(tx.coordinator_fire_many(&[]).await.unwrap(), 0);
    tx.commit().await.unwrap();
}
