//! SQLite: retention: old ended instances with all their rows, and rows of no instance (events,
//! alerts, dead workers and schedulers), deleted a bounded number of rows per transaction.

use super::super::common::{
    loose_cutoffs, retention_cutoffs, RetentionKey, RETENTION_ENDED as ENDED, RETENTION_LOOSE,
    RETENTION_OWNED,
};
use super::*;
use crate::state::InstanceStatus;

fn id_list(ids: &[InstanceId]) -> String {
    json_list(&ids.iter().map(|i| i.0).collect::<Vec<_>>())
}

pub(super) async fn instance_children(
    pool: &SqlitePool,
    parents: &[InstanceId],
) -> Result<Vec<(InstanceId, InstanceId, InstanceStatus)>> {
    if parents.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(
        "SELECT id, parent_instance_id, status FROM workflow_instance \
         WHERE parent_instance_id IN (SELECT value FROM json_each(?)) ORDER BY id",
    )
    .bind(id_list(parents))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn candidates(pool: &SqlitePool, p: &RetentionScan) -> Result<Vec<InstanceId>> {
    let shortest: Option<i64> = sqlx::query_scalar("SELECT MIN(retention_days) FROM workflow")
        .fetch_one(pool)
        .await?;
    let (cutoff, scan) = retention_cutoffs(p, shortest);
    let sql = format!(
        "SELECT i.id FROM workflow_instance i LEFT JOIN workflow w ON w.name = i.workflow \
         WHERE i.parent_instance_id IS NULL AND i.status IN {ENDED} AND i.ended_at < ? AND i.id > ? \
         AND i.ended_at < CASE WHEN ? OR w.retention_days IS NULL THEN ? \
             ELSE strftime('%Y-%m-%d %H:%M:%f', ?, '-' || w.retention_days || ' days') END \
         ORDER BY i.id LIMIT ?"
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(ts(scan))
        .bind(p.after)
        .bind(p.uniform)
        .bind(ts(cutoff))
        .bind(ts(p.now))
        .bind(p.limit)
        .fetch_all(pool)
        .await?)
}

/// The instances' and their tasks' ids, as JSON arrays for `json_each`.
async fn keys(conn: &mut SqliteConnection, instances: &[InstanceId]) -> Result<[String; 2]> {
    let ids = id_list(instances);
    let tasks: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM task WHERE instance_id IN (SELECT value FROM json_each(?)) ORDER BY id",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok([ids, json_list(&tasks)])
}

pub(super) async fn count(pool: &SqlitePool, instances: &[InstanceId]) -> Result<RetentionCounts> {
    let mut c = RetentionCounts::default();
    if instances.is_empty() {
        return Ok(c);
    }
    let mut conn = pool.acquire().await?;
    let keys = keys(&mut conn, instances).await?;
    let owned = RETENTION_OWNED.iter().copied();
    for (table, column, k) in owned.chain([("workflow_instance", "id", RetentionKey::Instance)]) {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE {column} IN (SELECT value FROM json_each(?))"
        ))
        .bind(k.of(&keys))
        .fetch_one(&mut *conn)
        .await?;
        *c.slot(table) = n as u64;
    }
    Ok(c)
}

pub(super) async fn delete(pool: &SqlitePool, p: &RetentionDelete) -> Result<RetentionStep> {
    let mut step = RetentionStep {
        done: true,
        ..Default::default()
    };
    if p.instances.is_empty() {
        return Ok(step);
    }
    // BEGIN IMMEDIATE: the write lock is the lock on these instances
    let mut tx = begin_immediate(pool).await?;
    let keys = keys(&mut tx, &p.instances).await?;
    let held: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM workflow_instance WHERE id IN (SELECT value FROM json_each(?)) AND status IN {ENDED}"
    ))
    .bind(&keys[0])
    .fetch_one(&mut *tx)
    .await?;
    if held as usize != p.instances.len() {
        // one of them runs again (a retried task) or is gone: keep the whole set this time
        tx.commit().await?;
        return Ok(step);
    }
    let mut budget = p.limit.max(1);
    for (table, column, k) in RETENTION_OWNED {
        let n = sqlx::query(&format!(
            "DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} \
             WHERE {column} IN (SELECT value FROM json_each(?)) LIMIT ?)"
        ))
        .bind(k.of(&keys))
        .bind(budget)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        *step.deleted.slot(table) = n;
        budget -= n as i64;
        if budget <= 0 {
            tx.commit().await?;
            step.done = false; // there may be more: the next step continues
            return Ok(step);
        }
    }
    step.deleted.workflow_instance =
        sqlx::query("DELETE FROM workflow_instance WHERE id IN (SELECT value FROM json_each(?))")
            .bind(&keys[0])
            .execute(&mut *tx)
            .await?
            .rows_affected();
    tx.commit().await?;
    Ok(step)
}

pub(super) async fn loose(pool: &SqlitePool, p: &RetentionLoose) -> Result<RetentionCounts> {
    let mut c = RetentionCounts::default();
    for (table, matches) in RETENTION_LOOSE {
        let sql = if p.dry_run {
            format!("SELECT COUNT(*) FROM {table} WHERE {matches}")
        } else {
            format!("DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {matches} LIMIT ?)")
        };
        let mut q = sqlx::query(&sql);
        for t in loose_cutoffs(p, table, matches) {
            q = q.bind(ts(t));
        }
        *c.slot(table) = if p.dry_run {
            sqlx::Row::try_get::<i64, _>(&q.fetch_one(pool).await?, 0)? as u64
        } else {
            q.bind(p.limit).execute(pool).await?.rows_affected()
        };
    }
    Ok(c)
}
