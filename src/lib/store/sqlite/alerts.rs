//! SQLite: the alert outbox and the facts an alert mail is composed from.

use sqlx::{Sqlite, SqliteConnection, SqlitePool};

use super::{plus, NOW};
use crate::state::{AlertStatus, TaskId};
use crate::store::common::json_list;
use crate::store::Result;
use crate::store::{AlertRow, AlertTransition, Cas, NewAlert};

const COLUMNS: &str =
    "id, created_at, kind, workflow, instance_id, task_id, recipients, subject, body_text, \
     body_html, status, attempts, next_attempt_at, last_error, sent_at, channel, event, state, scheduled_for";

pub(super) async fn due(with_mail: bool, pool: &SqlitePool, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert WHERE status = 'pending' AND next_attempt_at <= {NOW} AND (channel IS NOT NULL OR ?) ORDER BY id LIMIT ?"
    ))
    .bind(with_mail)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn list(pool: &SqlitePool, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert ORDER BY id DESC LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn transition(pool: &SqlitePool, p: &AlertTransition) -> Result<Cas> {
    let r = sqlx::query(&format!(
        "UPDATE alert SET status = ?, attempts = ?, next_attempt_at = strftime('%Y-%m-%d %H:%M:%f','now', ?), \
         last_error = ?, sent_at = CASE WHEN ? THEN {NOW} ELSE sent_at END \
         WHERE id = ? AND status = 'pending' AND attempts = ?"
    ))
    .bind(p.to)
    .bind(p.attempts)
    .bind(plus(p.retry_in))
    .bind(&p.last_error)
    .bind(p.to == AlertStatus::Sent)
    .bind(p.id)
    .bind(p.expected_attempts)
    .execute(pool)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

/// A failed alert made pending again, its attempts counted afresh (an operator's resend).
pub(super) async fn resend(pool: &SqlitePool, id: i64) -> Result<Cas> {
    let r = sqlx::query(&format!(
        "UPDATE alert SET status = 'pending', attempts = 0, next_attempt_at = {NOW} WHERE id = ? AND status = 'failed'"
    ))
    .bind(id)
    .execute(pool)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn insert(conn: &mut SqliteConnection, a: &NewAlert) -> Result<()> {
    sqlx::query::<Sqlite>(&format!(
        "INSERT INTO alert (created_at, kind, workflow, instance_id, task_id, recipients, subject, body_text, \
         body_html, status, attempts, next_attempt_at, channel, event, state, scheduled_for) VALUES ({NOW}, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, {NOW}, ?, ?, ?, ?)"
    ))
    .bind(a.kind)
    .bind(&a.workflow)
    .bind(a.instance_id)
    .bind(a.task_id)
    .bind(a.recipients.join(","))
    .bind(&a.subject)
    .bind(&a.body_text)
    .bind(&a.body_html)
    .bind(&a.channel)
    .bind(&a.event)
    .bind(&a.state)
    .bind(a.scheduled_for)
    .execute(conn)
    .await?;
    Ok(())
}

/// Workflows whose coordinator depends on `upstream`: for the store and inside a transaction alike.
pub(super) async fn downstream<'e, E>(e: E, upstream: &str) -> Result<Vec<String>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    Ok(sqlx::query_scalar(
        "SELECT workflow FROM coordinator_depend WHERE upstream = ? ORDER BY workflow",
    )
    .bind(upstream)
    .fetch_all(e)
    .await?)
}

pub(super) async fn receivers(
    conn: &mut SqliteConnection,
    names: &[String],
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT mail_receivers FROM workflow WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name",
    )
    .bind(json_list(names))
    .fetch_all(conn)
    .await?)
}

pub(super) async fn log_tail(
    conn: &mut SqliteConnection,
    id: TaskId,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT line FROM (SELECT line, seq FROM task_log WHERE task_id = ? \
         AND attempt = (SELECT MAX(attempt) FROM task_log WHERE task_id = ?) ORDER BY seq DESC LIMIT ?) \
         ORDER BY seq",
    )
    .bind(id)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
