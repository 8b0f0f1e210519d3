//! PostgreSQL: coordinators' deadlines, how far they are checked, and the slots that missed them.

use super::*;

const MISS_COLUMNS: &str =
    "id, workflow, scheduled_for, deadline_at, detected_at, reason, instance_id, done_at";

pub(super) async fn watch_list(pool: &PgPool) -> Result<Vec<DeadlineWatch>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        coordinator_cols!(),
        ", d.deadline, d.checked_through FROM coordinator_deadline d \
         JOIN coordinator c ON c.workflow = d.workflow ORDER BY d.workflow"
    ))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn miss_list(
    pool: &PgPool,
    workflow: Option<&str>,
    limit: i64,
) -> Result<Vec<DeadlineMissRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {MISS_COLUMNS} FROM deadline_miss WHERE ($1::text IS NULL OR workflow = $1) ORDER BY id DESC LIMIT $2"
    ))
    .bind(workflow)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn late_done(pool: &PgPool, limit: i64) -> Result<Vec<LateDone>> {
    Ok(sqlx::query_as(
        "SELECT m.id AS miss_id, m.workflow, m.scheduled_for, m.deadline_at, i.id AS instance_id, i.ended_at \
         FROM deadline_miss m JOIN workflow_instance i \
         ON i.workflow = m.workflow AND i.scheduled_for = m.scheduled_for AND i.status = 'succeeded' \
         AND i.trigger_kind <> 'backfill' \
         WHERE m.done_at IS NULL ORDER BY m.id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn instance_for_slot(
    pool: &PgPool,
    workflow: &str,
    slot: DateTime<Utc>,
) -> Result<Option<InstanceRow>> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        instance_cols!(),
        " FROM workflow_instance i WHERE i.workflow = $1 AND i.scheduled_for = $2 \
         AND i.parent_instance_id IS NULL AND i.trigger_kind <> 'backfill' ORDER BY i.id DESC LIMIT 1"
    ))
    .bind(workflow)
    .bind(slot)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn set(
    conn: &mut PgConnection,
    workflow: &str,
    deadline: Option<&str>,
) -> Result<()> {
    match deadline {
        // how far it was checked stays: a changed deadline applies from there on
        Some(d) => sqlx::query(
            "INSERT INTO coordinator_deadline (workflow, deadline) VALUES ($1, $2) \
             ON CONFLICT (workflow) DO UPDATE SET deadline = excluded.deadline",
        )
        .bind(workflow)
        .bind(d),
        None => sqlx::query("DELETE FROM coordinator_deadline WHERE workflow = $1").bind(workflow),
    }
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn checked(
    conn: &mut PgConnection,
    workflow: &str,
    expected: Option<DateTime<Utc>>,
    through: DateTime<Utc>,
) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE coordinator_deadline SET checked_through = $1 \
         WHERE workflow = $2 AND checked_through IS NOT DISTINCT FROM $3",
    )
    .bind(through)
    .bind(workflow)
    .bind(expected)
    .execute(conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn miss_insert(conn: &mut PgConnection, m: &NewDeadlineMiss) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO deadline_miss (workflow, scheduled_for, deadline_at, detected_at, reason, instance_id, done_at) \
         VALUES ($1, $2, $3, now(), $4, $5, $6) ON CONFLICT ON CONSTRAINT deadline_miss_slot DO NOTHING",
    )
    .bind(&m.workflow)
    .bind(m.scheduled_for)
    .bind(m.deadline_at)
    .bind(&m.reason)
    .bind(m.instance_id)
    .bind(m.done_at)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn miss_done(
    conn: &mut PgConnection,
    id: i64,
    done_at: DateTime<Utc>,
) -> Result<Cas> {
    let r = sqlx::query("UPDATE deadline_miss SET done_at = $1 WHERE id = $2 AND done_at IS NULL")
        .bind(done_at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}
