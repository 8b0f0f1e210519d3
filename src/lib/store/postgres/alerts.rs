//! PostgreSQL: the alert outbox and the facts an alert mail is composed from.

use sqlx::postgres::{PgConnection, PgPool};

use crate::state::{AlertStatus, TaskId};
use crate::store::common::micros;
use crate::store::Result;
use crate::store::{AlertRow, AlertTransition, Cas, NewAlert};

const COLUMNS: &str =
    "id, created_at, kind, workflow, instance_id, task_id, recipients, subject, body_text, \
     body_html, status, attempts, next_attempt_at, last_error, sent_at, channel, event, state, scheduled_for";

pub(super) async fn due(with_mail: bool, pool: &PgPool, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert WHERE status = 'pending' AND next_attempt_at <= now() AND (channel IS NOT NULL OR $2) ORDER BY id LIMIT $1"
    ))
    .bind(limit)
    .bind(with_mail)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn list(pool: &PgPool, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert ORDER BY id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn transition(pool: &PgPool, p: &AlertTransition) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE alert SET status = $1, attempts = $2, next_attempt_at = now() + $3 * interval '1 microsecond', \
         last_error = $4, sent_at = CASE WHEN $5 THEN now() ELSE sent_at END \
         WHERE id = $6 AND status = 'pending' AND attempts = $7",
    )
    .bind(p.to)
    .bind(p.attempts)
    .bind(micros(p.retry_in))
    .bind(&p.last_error)
    .bind(p.to == AlertStatus::Sent)
    .bind(p.id)
    .bind(p.expected_attempts)
    .execute(pool)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

/// A failed alert made pending again, its attempts counted afresh (an operator's resend).
pub(super) async fn resend(pool: &PgPool, id: i64) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE alert SET status = 'pending', attempts = 0, next_attempt_at = now() WHERE id = $1 AND status = 'failed'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn insert(conn: &mut PgConnection, a: &NewAlert) -> Result<()> {
    sqlx::query(
        "INSERT INTO alert (created_at, kind, workflow, instance_id, task_id, recipients, subject, body_text, \
         body_html, status, attempts, next_attempt_at, channel, event, state, scheduled_for) VALUES (now(), $1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, now(), $9, $10, $11, $12)",
    )
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
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    Ok(sqlx::query_scalar(
        "SELECT workflow FROM coordinator_depend WHERE upstream = $1 ORDER BY workflow COLLATE \"C\"",
    )
    .bind(upstream)
    .fetch_all(e)
    .await?)
}

pub(super) async fn receivers(conn: &mut PgConnection, names: &[String]) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar(
            "SELECT mail_receivers FROM workflow WHERE name = ANY($1) ORDER BY name",
        )
        .bind(names)
        .fetch_all(conn)
        .await?,
    )
}

pub(super) async fn log_tail(
    conn: &mut PgConnection,
    id: TaskId,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT t.line FROM (SELECT line, seq FROM task_log WHERE task_id = $1 \
         AND attempt = (SELECT MAX(attempt) FROM task_log WHERE task_id = $1) ORDER BY seq DESC LIMIT $2) t \
         ORDER BY t.seq",
    )
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
