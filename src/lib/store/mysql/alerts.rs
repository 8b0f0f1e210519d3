//! MySQL/MariaDB: the alert outbox and the facts an alert mail is composed from.

use sqlx::mysql::{MySql, MySqlConnection, MySqlPool};
use sqlx::QueryBuilder;

use super::push_list;
use crate::state::{AlertStatus, TaskId};
use crate::store::common::micros;
use crate::store::Result;
use crate::store::{AlertRow, AlertTransition, Cas, NewAlert};

const COLUMNS: &str = "id, created_at, CAST(kind AS CHAR) AS kind, CAST(workflow AS CHAR) AS workflow, \
     instance_id, task_id, CAST(recipients AS CHAR) AS recipients, CAST(subject AS CHAR) AS subject, \
     CAST(body_text AS CHAR) AS body_text, CAST(body_html AS CHAR) AS body_html, \
     CAST(status AS CHAR) AS status, attempts, next_attempt_at, CAST(last_error AS CHAR) AS last_error, sent_at, \
     CAST(channel AS CHAR) AS channel, CAST(event AS CHAR) AS event, CAST(state AS CHAR) AS state, scheduled_for";

pub(super) async fn due(with_mail: bool, pool: &MySqlPool, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert WHERE status = 'pending' AND next_attempt_at <= NOW(6) AND (channel IS NOT NULL OR ?) ORDER BY id LIMIT ?"
    ))
    .bind(with_mail)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn list(pool: &MySqlPool, limit: i64) -> Result<Vec<AlertRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alert ORDER BY id DESC LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn transition(pool: &MySqlPool, p: &AlertTransition) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE alert SET status = ?, attempts = ?, next_attempt_at = DATE_ADD(NOW(6), INTERVAL ? MICROSECOND), \
         last_error = ?, sent_at = CASE WHEN ? THEN NOW(6) ELSE sent_at END \
         WHERE id = ? AND status = 'pending' AND attempts = ?",
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
pub(super) async fn resend(pool: &MySqlPool, id: i64) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE alert SET status = 'pending', attempts = 0, next_attempt_at = NOW(6) WHERE id = ? AND status = 'failed'",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn insert(conn: &mut MySqlConnection, a: &NewAlert) -> Result<()> {
    sqlx::query::<MySql>(
        "INSERT INTO alert (created_at, kind, workflow, instance_id, task_id, recipients, subject, body_text, \
         body_html, status, attempts, next_attempt_at, channel, event, state, scheduled_for) VALUES (NOW(6), ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, NOW(6), ?, ?, ?, ?)",
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
    E: sqlx::Executor<'e, Database = MySql>,
{
    Ok(sqlx::query_scalar(
        "SELECT CAST(d.workflow AS CHAR) AS workflow FROM coordinator_depend d WHERE d.upstream = ? \
         ORDER BY d.workflow",
    )
    .bind(upstream)
    .fetch_all(e)
    .await?)
}

pub(super) async fn receivers(conn: &mut MySqlConnection, names: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    let mut qb = QueryBuilder::<MySql>::new(
        "SELECT CAST(mail_receivers AS CHAR) FROM workflow WHERE name IN ",
    );
    push_list(&mut qb, names.iter());
    qb.push(" ORDER BY name");
    Ok(qb.build_query_scalar().fetch_all(conn).await?)
}

pub(super) async fn log_tail(
    conn: &mut MySqlConnection,
    id: TaskId,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(t.line AS CHAR) FROM (SELECT line, seq FROM task_log WHERE task_id = ? \
         AND attempt = (SELECT MAX(attempt) FROM task_log WHERE task_id = ?) ORDER BY seq DESC LIMIT ?) t \
         ORDER BY t.seq",
    )
    .bind(id)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
