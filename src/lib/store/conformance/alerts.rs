//! Cases for the alert outbox and the facts alert mails are composed from.

use std::time::Duration;

use super::fixtures::*;
use crate::state::{AlertKind, AlertStatus};
use crate::store::*;

fn mail(subject: &str) -> NewAlert {
    NewAlert {
        kind: AlertKind::Completion,
        workflow: Some("wf".into()),
        instance_id: None,
        task_id: None,
        recipients: vec!["a@example.com".into(), "张三@example.com".into()],
        subject: subject.into(),
        body_text: "第一行\nline 2".into(),
        body_html: "<p>第一行</p>".into(),
        channel: None,
        event: "failed".into(),
        state: "failed".into(),
        scheduled_for: None,
    }
}

pub(super) async fn alert_outbox_is_transactional_and_cas(store: &dyn Store) {
    let mut tx = store.begin().await.unwrap();
    tx.alert_insert(&mail("rolled back")).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(store.alert_list(10).await.unwrap().is_empty());

    let mut tx = store.begin().await.unwrap();
    tx.alert_insert(&mail("工作流 wf failed")).await.unwrap();
    tx.commit().await.unwrap();
    let due = store.alert_due(10, true).await.unwrap();
    assert_eq!(due.len(), 1);
    let a = &due[0];
    assert_eq!(a.subject, "工作流 wf failed");
    assert_eq!(a.recipient_list(), ["a@example.com", "张三@example.com"]);
    assert_eq!(a.body_text, "第一行\nline 2");
    assert_eq!(
        (a.status, a.attempts, a.kind),
        (AlertStatus::Pending, 0, AlertKind::Completion)
    );
    assert!(a.sent_at.is_none());

    let step = |expected, attempts, to, retry_in, err: Option<&str>| AlertTransition {
        id: a.id,
        expected_attempts: expected,
        to,
        attempts,
        retry_in,
        last_error: err.map(str::to_string),
    };
    let hour = Duration::from_secs(3600);
    // a claim pushes the next try out; a second claim of the same attempt is stale
    assert!(store
        .alert_transition(&step(0, 1, AlertStatus::Pending, hour, None))
        .await
        .unwrap()
        .applied());
    assert!(!store
        .alert_transition(&step(0, 1, AlertStatus::Pending, hour, None))
        .await
        .unwrap()
        .applied());
    assert!(
        store.alert_due(10, true).await.unwrap().is_empty(),
        "not due for an hour"
    );
    // a failed send due at once again, its error kept
    assert!(store
        .alert_transition(&step(
            1,
            1,
            AlertStatus::Pending,
            Duration::ZERO,
            Some("SMTP: connection refused")
        ))
        .await
        .unwrap()
        .applied());
    let again = store.alert_due(10, true).await.unwrap();
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("SMTP: connection refused")
    );
    assert_eq!(again[0].attempts, 1);
    assert!(store
        .alert_transition(&step(1, 2, AlertStatus::Sent, Duration::ZERO, None))
        .await
        .unwrap()
        .applied());
    // sent is final: no transition applies any more
    assert!(!store
        .alert_transition(&step(2, 3, AlertStatus::Pending, Duration::ZERO, None))
        .await
        .unwrap()
        .applied());
    assert!(store.alert_due(10, true).await.unwrap().is_empty());
    let listed = store.alert_list(10).await.unwrap();
    assert_eq!(
        (listed[0].status, listed[0].attempts),
        (AlertStatus::Sent, 2)
    );
    assert!(listed[0].sent_at.is_some());
    assert_eq!(listed[0].last_error, None);
}

pub(super) async fn alert_facts_are_read_in_the_transaction(store: &dyn Store) {
    let ids = tasks(store, &[("t", "q", 0)]).await;
    let t = ids[0];
    let logged_at = ms(at(2024, 5, 1, 12, 0));
    let line = |attempt, seq: i64| LogLine {
        task_id: t,
        attempt,
        seq,
        logged_at,
        stream: LogStream::Stdout,
        line: format!("第{seq}行 attempt {attempt}"),
    };
    let mut lines: Vec<LogLine> = (0..3).map(|s| line(1, s)).collect();
    lines.extend((0..5).map(|s| line(2, s)));
    store.task_log_insert_many(&lines).await.unwrap();

    let mut tx = store.begin().await.unwrap();
    let mut up = upsert("up", "etl", 1);
    up.mail_receivers = "x@example.com, y@example.com".into();
    let mut down = upsert("down", "etl", 1);
    down.mail_receivers = "z@example.com".into();
    tx.workflow_upsert(&up).await.unwrap();
    tx.workflow_upsert(&down).await.unwrap();
    tx.coordinator_depend_set("down", &["up".to_string()])
        .await
        .unwrap();

    let tail = tx.task_log_tail(t, 2).await.unwrap();
    assert_eq!(
        tail,
        ["第3行 attempt 2", "第4行 attempt 2"],
        "the latest attempt's last lines, in order"
    );
    assert!(tx
        .task_log_tail(TaskId(987_654), 2)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(tx.coordinator_downstream("up").await.unwrap(), ["down"]);
    assert!(tx.coordinator_downstream("down").await.unwrap().is_empty());
    let got = tx
        .workflow_receivers(&["down".to_string(), "up".to_string(), "missing".to_string()])
        .await
        .unwrap();
    assert_eq!(got, ["z@example.com", "x@example.com, y@example.com"]);
    assert!(tx.workflow_receivers(&[]).await.unwrap().is_empty());
    tx.rollback().await.unwrap();
}

/// A channel's copy is due without `[smtp]`, a mail is not; a failed alert can be resent once.
pub(super) async fn channel_rows_are_due_without_smtp_and_resend_once(store: &dyn Store) {
    let mut tx = store.begin().await.unwrap();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T23:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    tx.alert_insert(&mail("to mail")).await.unwrap();
    tx.alert_insert(&NewAlert {
        channel: Some("dw-oncall".into()),
        scheduled_for: Some(at),
        ..mail("to chat")
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let due = store.alert_due(10, false).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    let chat = &due[0];
    assert_eq!(
        (
            chat.channel.as_deref(),
            chat.event.as_str(),
            chat.scheduled_for
        ),
        (Some("dw-oncall"), "failed", Some(at))
    );
    assert_eq!(store.alert_due(10, true).await.unwrap().len(), 2);
    assert!(
        !store.alert_resend(chat.id).await.unwrap().applied(),
        "pending is not resent"
    );
    assert!(store
        .alert_transition(&AlertTransition {
            id: chat.id,
            expected_attempts: 0,
            to: AlertStatus::Failed,
            attempts: 1,
            retry_in: Duration::ZERO,
            last_error: Some("HTTP 404".into()),
        })
        .await
        .unwrap()
        .applied());
    assert!(store.alert_resend(chat.id).await.unwrap().applied());
    assert!(!store.alert_resend(chat.id).await.unwrap().applied());
    let again = store.alert_due(10, false).await.unwrap();
    assert_eq!((again[0].id, again[0].attempts), (chat.id, 0));
}
