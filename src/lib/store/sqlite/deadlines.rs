//! SQLite: coordinators' deadlines, how far they are checked, and the slots that missed them.

use super::*;

const MISS_COLUMNS: &str =
    "id, workflow, scheduled_for, deadline_at, detected_at, reason, instance_id, done_at";

pub(super) async fn watch_list(pool: &SqlitePool) -> Result<Vec<DeadlineWatch>> {
    Ok(sqlx::query_as(
        // every coordinator column (the row type ignores the ones it does not name)
        "SELECT c.*, d.deadline, d.checked_through FROM coordinator_deadline d \
         JOIN coordinator c ON c.workflow = d.workflow ORDER BY d.workflow",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn miss_list(
    pool: &SqlitePool,
    workflow: Option<&str>,
    limit: i64,
) -> Result<Vec<DeadlineMissRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MISS_COLUMNS} FROM deadline_miss WHERE (?1 IS NULL OR workflow = ?1) ORDER BY id DESC LIMIT ?2"
    ))
    .bind(workflow)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn late_done(pool: &SqlitePool, limit: i64) -> Result<Vec<LateDone>> {
    Ok(sqlx::query_as(
        "SELECT m.id AS miss_id, m.workflow, m.scheduled_for, m.deadline_at, i.id AS instance_id, i.ended_at \
         FROM deadline_miss m JOIN workflow_instance i \
         ON i.workflow = m.workflow AND i.scheduled_for = m.scheduled_for AND i.status = 'succeeded' \
         AND i.trigger_kind <> 'backfill' \
         WHERE m.done_at IS NULL ORDER BY m.id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn instance_for_slot(
    pool: &SqlitePool,
    workflow: &str,
    slot: DateTime<Utc>,
) -> Result<Option<InstanceRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {} FROM workflow_instance WHERE workflow = ? AND scheduled_for = ? \
         AND parent_instance_id IS NULL AND trigger_kind <> 'backfill' ORDER BY id DESC LIMIT 1",
        super::runs::INSTANCE_COLUMNS
    ))
    .bind(workflow)
    .bind(ts(slot))
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn set(
    conn: &mut SqliteConnection,
    workflow: &str,
    deadline: Option<&str>,
) -> Result<()> {
    match deadline {
        // how far it was checked stays: a changed deadline applies from there on
        Some(d) => sqlx::query(
            "INSERT INTO coordinator_deadline (workflow, deadline) VALUES (?, ?) \
             ON CONFLICT (workflow) DO UPDATE SET deadline = excluded.deadline",
        )
        .bind(workflow)
        .bind(d),
        None => sqlx::query("DELETE FROM coordinator_deadline WHERE workflow = ?").bind(workflow),
    }
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn checked(
    conn: &mut SqliteConnection,
    workflow: &str,
    expected: Option<DateTime<Utc>>,
    through: DateTime<Utc>,
) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE coordinator_deadline SET checked_through = ? WHERE workflow = ? AND checked_through IS ?",
    )
    .bind(ts(through))
    .bind(workflow)
    .bind(ts_opt(expected))
    .execute(conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn miss_insert(conn: &mut SqliteConnection, m: &NewDeadlineMiss) -> Result<bool> {
    let r = sqlx::query(&format!(
        "INSERT INTO deadline_miss (workflow, scheduled_for, deadline_at, detected_at, reason, instance_id, done_at) \
         VALUES (?, ?, ?, {NOW}, ?, ?, ?) ON CONFLICT (workflow, scheduled_for) DO NOTHING"
    ))
    .bind(&m.workflow)
    .bind(ts(m.scheduled_for))
    .bind(ts(m.deadline_at))
    .bind(&m.reason)
    .bind(m.instance_id)
    .bind(ts_opt(m.done_at))
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn miss_done(
    conn: &mut SqliteConnection,
    id: i64,
    done_at: DateTime<Utc>,
) -> Result<Cas> {
    let r = sqlx::query("UPDATE deadline_miss SET done_at = ? WHERE id = ? AND done_at IS NULL")
        .bind(ts(done_at))
        .bind(id)
        .execute(conn)
        .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}
