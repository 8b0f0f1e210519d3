//! SQLite: backfills and their slots.

use super::*;
use crate::state::{BackfillId, InstanceStatus};

const BACKFILL_COLUMNS: &str =
    "id, workflow, range_from, range_to, reprocess, parallel, reverse, blood, \
     params, priority, created_by, status, error, created_at, ended_at";

const SLOT_LIST: &str =
    "SELECT s.slot, s.skip_reason, s.instance_id, i.status, i.started_at, i.ended_at \
     FROM backfill_slot s LEFT JOIN workflow_instance i ON i.id = s.instance_id \
     WHERE s.backfill_id = ? ORDER BY s.slot";

pub(super) async fn create(
    conn: &mut SqliteConnection,
    b: &NewBackfill,
    slots: &[NewBackfillSlot],
) -> Result<BackfillId> {
    let id: i64 = sqlx::query_scalar(&format!(
        "INSERT INTO backfill (workflow, range_from, range_to, reprocess, parallel, reverse, blood, params, \
         priority, created_by, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', {NOW}) RETURNING id"
    ))
    .bind(&b.workflow)
    .bind(ts(b.range_from))
    .bind(ts(b.range_to))
    .bind(b.reprocess)
    .bind(b.parallel)
    .bind(b.reverse)
    .bind(b.blood)
    .bind(&b.params)
    .bind(b.priority)
    .bind(&b.created_by)
    .fetch_one(&mut *conn)
    .await?;
    for chunk in slots.chunks(ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO backfill_slot (backfill_id, slot, skip_reason) ",
        );
        q.push_values(chunk, |mut row, s| {
            row.push_bind(id)
                .push_bind(ts(s.slot))
                .push_bind(&s.skip_reason);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(BackfillId(id))
}

/// `lock` is for the other backends' signature: BEGIN IMMEDIATE already holds the write lock.
pub(super) async fn get(
    conn: &mut SqliteConnection,
    id: BackfillId,
    _lock: bool,
) -> Result<Option<BackfillRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {BACKFILL_COLUMNS} FROM backfill WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

pub(super) async fn list(pool: &SqlitePool, f: &BackfillFilter) -> Result<Vec<BackfillRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {BACKFILL_COLUMNS} FROM backfill WHERE (?1 IS NULL OR workflow = ?1) \
         AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3"
    ))
    .bind(&f.workflow)
    .bind(f.status)
    .bind(f.limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn slot_history(
    pool: &SqlitePool,
    workflow: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SlotHistory> {
    // the latest top-level instance of each slot, whatever started it
    let latest: Vec<(DateTime<Utc>, InstanceStatus)> = sqlx::query_as(
        "SELECT i.scheduled_for, i.status FROM workflow_instance i WHERE i.id IN ( \
         SELECT MAX(id) FROM workflow_instance WHERE workflow = ?1 AND parent_instance_id IS NULL \
         AND scheduled_for >= ?2 AND scheduled_for <= ?3 GROUP BY scheduled_for) ORDER BY i.scheduled_for",
    )
    .bind(workflow)
    .bind(ts(from))
    .bind(ts(to))
    .fetch_all(pool)
    .await?;
    let queued: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT DISTINCT s.slot FROM backfill_slot s JOIN backfill b ON b.id = s.backfill_id \
         WHERE b.workflow = ?1 AND b.status = 'running' AND s.instance_id IS NULL \
         AND s.skip_reason IS NULL AND s.slot >= ?2 AND s.slot <= ?3 ORDER BY s.slot",
    )
    .bind(workflow)
    .bind(ts(from))
    .bind(ts(to))
    .fetch_all(pool)
    .await?;
    Ok(SlotHistory { latest, queued })
}

pub(super) async fn slot_list(
    conn: &mut SqliteConnection,
    id: BackfillId,
) -> Result<Vec<BackfillSlotRow>> {
    Ok(sqlx::query_as(SLOT_LIST).bind(id).fetch_all(conn).await?)
}

pub(super) async fn transition(conn: &mut SqliteConnection, t: &BackfillTransition) -> Result<Cas> {
    let r = sqlx::query(&format!(
        "UPDATE backfill SET status = ?, error = ?, \
         ended_at = CASE WHEN ? = 'running' THEN NULL ELSE {NOW} END WHERE id = ? AND status = ?"
    ))
    .bind(t.to)
    .bind(&t.error)
    .bind(t.to)
    .bind(t.id)
    .bind(t.from)
    .execute(conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn slot_launch(
    conn: &mut SqliteConnection,
    id: BackfillId,
    slot: DateTime<Utc>,
    instance: InstanceId,
) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE backfill_slot SET instance_id = ? WHERE backfill_id = ? AND slot = ? \
         AND instance_id IS NULL AND skip_reason IS NULL",
    )
    .bind(instance)
    .bind(id)
    .bind(ts(slot))
    .execute(conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}
