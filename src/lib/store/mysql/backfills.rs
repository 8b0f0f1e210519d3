//! MySQL and MariaDB: backfills and their slots.

use super::*;
use crate::state::{BackfillId, InstanceStatus};

const BACKFILL_COLUMNS: &str = "id, CAST(workflow AS CHAR) AS workflow, range_from, range_to, \
     CAST(reprocess AS CHAR) AS reprocess, parallel, reverse, blood, CAST(params AS CHAR) AS params, priority, \
     CAST(created_by AS CHAR) AS created_by, CAST(status AS CHAR) AS status, CAST(error AS CHAR) AS error, \
     created_at, ended_at";

const SLOT_LIST: &str =
    "SELECT s.slot, CAST(s.skip_reason AS CHAR) AS skip_reason, s.instance_id, \
     CAST(i.status AS CHAR) AS status, i.started_at, i.ended_at \
     FROM backfill_slot s LEFT JOIN workflow_instance i ON i.id = s.instance_id \
     WHERE s.backfill_id = ? ORDER BY s.slot";

pub(super) async fn create(
    conn: &mut MySqlConnection,
    b: &NewBackfill,
    slots: &[NewBackfillSlot],
) -> Result<BackfillId> {
    let done = sqlx::query(
        "INSERT INTO backfill (workflow, range_from, range_to, reprocess, parallel, reverse, blood, params, \
         priority, created_by, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', NOW(6))",
    )
    .bind(&b.workflow)
    .bind(b.range_from)
    .bind(b.range_to)
    .bind(b.reprocess)
    .bind(b.parallel)
    .bind(b.reverse)
    .bind(b.blood)
    .bind(&b.params)
    .bind(b.priority)
    .bind(&b.created_by)
    .execute(&mut *conn)
    .await?;
    let id = i64::try_from(done.last_insert_id())
        .expect("AUTO_INCREMENT of a BIGINT column fits in i64");
    for chunk in slots.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO backfill_slot (backfill_id, slot, skip_reason) ",
        );
        q.push_values(chunk, |mut row, s| {
            row.push_bind(id)
                .push_bind(s.slot)
                .push_bind(&s.skip_reason);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(BackfillId(id))
}

pub(super) async fn get(
    conn: &mut MySqlConnection,
    id: BackfillId,
    lock: bool,
) -> Result<Option<BackfillRow>> {
    let sql = if lock {
        format!("SELECT {BACKFILL_COLUMNS} FROM backfill WHERE id = ? FOR UPDATE")
    } else {
        format!("SELECT {BACKFILL_COLUMNS} FROM backfill WHERE id = ?")
    };
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?)
}

pub(super) async fn list(pool: &MySqlPool, f: &BackfillFilter) -> Result<Vec<BackfillRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {BACKFILL_COLUMNS} FROM backfill WHERE (? IS NULL OR workflow = ?) \
         AND (? IS NULL OR status = ?) ORDER BY id DESC LIMIT ?"
    ))
    .bind(&f.workflow)
    .bind(&f.workflow)
    .bind(f.status)
    .bind(f.status)
    .bind(f.limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn slot_history(
    pool: &MySqlPool,
    workflow: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SlotHistory> {
    // the latest top-level instance of each slot, whatever started it
    let latest: Vec<(DateTime<Utc>, InstanceStatus)> = sqlx::query_as(
        "SELECT i.scheduled_for, CAST(i.status AS CHAR) FROM workflow_instance i JOIN ( \
         SELECT MAX(id) AS id FROM workflow_instance WHERE workflow = ? AND parent_instance_id IS NULL \
         AND scheduled_for >= ? AND scheduled_for <= ? GROUP BY scheduled_for) m ON m.id = i.id \
         ORDER BY i.scheduled_for",
    )
    .bind(workflow)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let queued: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT DISTINCT s.slot FROM backfill_slot s JOIN backfill b ON b.id = s.backfill_id \
         WHERE b.workflow = ? AND b.status = 'running' AND s.instance_id IS NULL \
         AND s.skip_reason IS NULL AND s.slot >= ? AND s.slot <= ? ORDER BY s.slot",
    )
    .bind(workflow)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(SlotHistory { latest, queued })
}

pub(super) async fn slot_list(
    conn: &mut MySqlConnection,
    id: BackfillId,
) -> Result<Vec<BackfillSlotRow>> {
    Ok(sqlx::query_as(SLOT_LIST).bind(id).fetch_all(conn).await?)
}

pub(super) async fn transition(conn: &mut MySqlConnection, t: &BackfillTransition) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE backfill SET status = ?, error = ?, \
         ended_at = CASE WHEN ? = 'running' THEN NULL ELSE NOW(6) END WHERE id = ? AND status = ?",
    )
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
    conn: &mut MySqlConnection,
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
    .bind(slot)
    .execute(conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}
