//! MySQL: retention: old ended instances with all their rows, and rows of no instance (events,
//! alerts, dead workers and schedulers), deleted a bounded number of rows per transaction.
//!
//! Sets are spliced as bound lists (`push_list`): a `DELETE … WHERE task_id IN (SELECT …)` would
//! be run as a dependent subquery, a scan of `task_log` per statement.

use super::super::common::{
    loose_cutoffs, retention_cutoffs, RetentionKey, RETENTION_ENDED as ENDED, RETENTION_LOOSE,
    RETENTION_OWNED,
};
use super::*;
use crate::state::InstanceStatus;

pub(super) async fn instance_children(
    pool: &MySqlPool,
    parents: &[InstanceId],
) -> Result<Vec<(InstanceId, InstanceId, InstanceStatus)>> {
    if parents.is_empty() {
        return Ok(vec![]);
    }
    let mut qb = QueryBuilder::<MySql>::new(
        "SELECT id, parent_instance_id, CAST(status AS CHAR) AS status FROM workflow_instance \
         WHERE parent_instance_id IN ",
    );
    push_list(&mut qb, parents.iter().copied());
    qb.push(" ORDER BY id");
    Ok(qb.build_query_as().fetch_all(pool).await?)
}

pub(super) async fn candidates(pool: &MySqlPool, p: &RetentionScan) -> Result<Vec<InstanceId>> {
    let shortest: Option<i64> = sqlx::query_scalar("SELECT MIN(retention_days) FROM workflow")
        .fetch_one(pool)
        .await?;
    let (cutoff, scan) = retention_cutoffs(p, shortest);
    let sql = format!(
        "SELECT i.id FROM workflow_instance i LEFT JOIN workflow w ON w.name = i.workflow \
         WHERE i.parent_instance_id IS NULL AND i.status IN {ENDED} AND i.ended_at < ? AND i.id > ? \
         AND i.ended_at < CASE WHEN ? OR w.retention_days IS NULL THEN ? \
             ELSE ? - INTERVAL w.retention_days DAY END \
         ORDER BY i.id LIMIT ?"
    );
    Ok(sqlx::query_scalar(&sql)
        .bind(scan)
        .bind(p.after)
        .bind(p.uniform)
        .bind(cutoff)
        .bind(p.now)
        .bind(p.limit)
        .fetch_all(pool)
        .await?)
}

/// The instances' and their tasks' ids.
async fn keys(conn: &mut MySqlConnection, instances: &[InstanceId]) -> Result<[Vec<i64>; 2]> {
    let mut qb = QueryBuilder::<MySql>::new("SELECT id FROM task WHERE instance_id IN ");
    push_list(&mut qb, instances.iter().copied());
    qb.push(" ORDER BY id");
    let tasks = qb.build_query_scalar().fetch_all(&mut *conn).await?;
    Ok([instances.iter().map(|i| i.0).collect(), tasks])
}

pub(super) async fn count(pool: &MySqlPool, instances: &[InstanceId]) -> Result<RetentionCounts> {
    let mut c = RetentionCounts::default();
    if instances.is_empty() {
        return Ok(c);
    }
    let mut conn = pool.acquire().await?;
    let keys = keys(&mut conn, instances).await?;
    let owned = RETENTION_OWNED.iter().copied();
    for (table, column, k) in owned.chain([("workflow_instance", "id", RetentionKey::Instance)]) {
        if k.of(&keys).is_empty() {
            continue;
        }
        let mut qb =
            QueryBuilder::<MySql>::new(format!("SELECT COUNT(*) FROM {table} WHERE {column} IN "));
        push_list(&mut qb, k.of(&keys).iter().copied());
        *c.slot(table) = qb.build_query_scalar::<i64>().fetch_one(&mut *conn).await? as u64;
    }
    Ok(c)
}

pub(super) async fn delete(pool: &MySqlPool, p: &RetentionDelete) -> Result<RetentionStep> {
    let mut step = RetentionStep {
        done: true,
        ..Default::default()
    };
    if p.instances.is_empty() {
        return Ok(step);
    }
    let mut tx = pool.begin().await?;
    // in id order, as the engine locks instances: a retried task's transaction waits, or we do
    let mut qb = QueryBuilder::<MySql>::new("SELECT id FROM workflow_instance WHERE id IN ");
    push_list(&mut qb, p.instances.iter().copied());
    qb.push(format!(" AND status IN {ENDED} ORDER BY id FOR UPDATE"));
    let held: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *tx).await?;
    if held.len() != p.instances.len() {
        // one of them runs again (a retried task) or is gone: keep the whole set this time
        tx.commit().await?;
        return Ok(step);
    }
    let keys = keys(&mut tx, &p.instances).await?;
    let mut budget = p.limit.max(1);
    for (table, column, k) in RETENTION_OWNED {
        if k.of(&keys).is_empty() {
            continue;
        }
        let mut qb = QueryBuilder::<MySql>::new(format!("DELETE FROM {table} WHERE {column} IN "));
        push_list(&mut qb, k.of(&keys).iter().copied());
        qb.push(" LIMIT ");
        qb.push_bind(budget);
        let n = qb.build().execute(&mut *tx).await?.rows_affected();
        *step.deleted.slot(table) = n;
        budget -= n as i64;
        if budget <= 0 {
            tx.commit().await?;
            step.done = false; // there may be more: the next step continues
            return Ok(step);
        }
    }
    let mut qb = QueryBuilder::<MySql>::new("DELETE FROM workflow_instance WHERE id IN ");
    push_list(&mut qb, held.iter().copied());
    step.deleted.workflow_instance = qb.build().execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    Ok(step)
}

pub(super) async fn loose(pool: &MySqlPool, p: &RetentionLoose) -> Result<RetentionCounts> {
    let mut c = RetentionCounts::default();
    for (table, matches) in RETENTION_LOOSE {
        let sql = if p.dry_run {
            format!("SELECT COUNT(*) FROM {table} WHERE {matches}")
        } else {
            format!("DELETE FROM {table} WHERE {matches} LIMIT ?")
        };
        let mut q = sqlx::query(&sql);
        for t in loose_cutoffs(p, table, matches) {
            q = q.bind(t);
        }
        *c.slot(table) = if p.dry_run {
            q.fetch_one(pool).await?.try_get::<i64, _>(0)? as u64
        } else {
            q.bind(p.limit).execute(pool).await?.rows_affected()
        };
    }
    Ok(c)
}
