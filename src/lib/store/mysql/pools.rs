//! MySQL/MariaDB: pools (pools.xml, `pool set`) and the pooled part of the claim.
//!
//! A pooled claim is one transaction per pool: lock the pool row (`FOR UPDATE`), count the slots its
//! running tasks take (READ COMMITTED: this statement sees every claim committed before the lock was
//! granted), pick the best ready tasks that fit (`FOR UPDATE SKIP LOCKED`) and mark them running.
//! Claims of one pool therefore follow one another, so the limit holds across every worker; the
//! only lock waited for is one pool row, and sync and `pool set` lock pool rows in name order and
//! no task row, so no cycle can form.

use super::*;

const POOL_COLUMNS: &str = "CAST(name AS CHAR) AS name, slots, file_slots, \
     CAST(description AS CHAR) AS description, CAST(updated_by AS CHAR) AS updated_by";

pub(super) async fn list(pool: &MySqlPool) -> Result<Vec<PoolRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT CAST(p.name AS CHAR) AS name, p.slots, p.file_slots, CAST(p.description AS CHAR) AS description, \
         p.updated_at, CAST(p.updated_by AS CHAR) AS updated_by, \
         CAST({POOL_USED} AS SIGNED) AS used, \
         (SELECT COUNT(*) FROM task t WHERE t.status = 'running' AND t.pool = p.name) AS running, \
         {waiting} AS waiting \
         FROM pool p ORDER BY p.name",
        waiting = pool_waiting("NOW(6)")
    ))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn sample_record(pool: &MySqlPool, every: Duration) -> Result<u64> {
    // the interval's start by the database clock (sessions run in UTC); IGNORE: the interval
    // has its rows already (another master's pass, a restart)
    let every = metric_every_secs(every);
    Ok(sqlx::query(&format!(
        "INSERT IGNORE INTO pool_sample (pool, sampled_at, slots, used, waiting) \
         SELECT p.name, FROM_UNIXTIME(FLOOR(UNIX_TIMESTAMP(NOW(6)) / ?) * ?), p.slots, \
         {POOL_USED}, \
         {waiting} \
         FROM pool p",
        waiting = pool_waiting("NOW(6)")
    ))
    .bind(every)
    .bind(every)
    .execute(pool)
    .await?
    .rows_affected())
}

pub(super) async fn sample_list(
    pool: &MySqlPool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<PoolSampleRow>> {
    Ok(sqlx::query_as(
        "SELECT CAST(s.pool AS CHAR) AS pool, s.sampled_at, s.slots, s.used, s.waiting FROM \
         (SELECT pool, sampled_at, slots, used, waiting FROM pool_sample WHERE sampled_at >= ? \
         ORDER BY sampled_at DESC LIMIT ?) s ORDER BY s.pool, s.sampled_at",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn names(pool: &MySqlPool) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT CAST(p.name AS CHAR) AS name FROM pool p ORDER BY p.name")
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn lock(conn: &mut MySqlConnection, name: &str) -> Result<Option<PoolDef>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {POOL_COLUMNS} FROM pool WHERE name = ? FOR UPDATE"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?)
}

pub(super) async fn defs(conn: &mut MySqlConnection) -> Result<Vec<PoolDef>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {POOL_COLUMNS} FROM pool ORDER BY pool.name"
    ))
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn write(conn: &mut MySqlConnection, p: &PoolDef) -> Result<()> {
    sqlx::query(
        "INSERT INTO pool (name, slots, file_slots, description, updated_at, updated_by) \
         VALUES (?, ?, ?, ?, NOW(6), ?) ON DUPLICATE KEY UPDATE slots = VALUES(slots), \
         file_slots = VALUES(file_slots), description = VALUES(description), \
         updated_at = VALUES(updated_at), updated_by = VALUES(updated_by)",
    )
    .bind(&p.name)
    .bind(p.slots)
    .bind(p.file_slots)
    .bind(&p.description)
    .bind(&p.updated_by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn delete(conn: &mut MySqlConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM pool WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Claims from each of `p.pools` that has a due ready task in the worker's queues and, by an
/// unlocked look, a free slot; at most `p.limit` tasks in all. A failure after a pool's claim
/// committed returns what was claimed (the worker must run it).
pub(super) async fn claim(pool: &MySqlPool, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
    let mut open =
        QueryBuilder::<MySql>::new("SELECT CAST(p.name AS CHAR) FROM pool p WHERE p.name IN ");
    push_list(&mut open, p.pools.iter());
    open.push(" AND EXISTS (SELECT 1 FROM task t WHERE t.status = 'ready' AND t.pool = p.name AND t.queue IN ");
    push_list(&mut open, p.queues.iter());
    open.push(
        " AND t.run_at <= NOW(6)) AND p.slots > (SELECT COALESCE(SUM(t.pool_slots), 0) FROM task t \
         WHERE t.status = 'running' AND t.pool = p.name) ORDER BY p.name",
    );
    let open: Vec<String> = open.build_query_scalar().fetch_all(pool).await?;
    let mut claimed = Vec::new();
    for name in open {
        let limit = p.limit - claimed.len() as i64;
        if limit <= 0 {
            break;
        }
        match retrying(|| claim_one(pool, p, &name, limit)).await {
            Ok(got) => claimed.extend(got),
            Err(e) if !claimed.is_empty() => {
                tracing::warn!(pool = %name, error = %e, "pooled claim failed after another pool's");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(claimed)
}

async fn claim_one(
    pool: &MySqlPool,
    p: &TaskClaimParams,
    name: &str,
    limit: i64,
) -> Result<Vec<ClaimedTask>> {
    let mut tx = pool.begin().await?;
    let slots: Option<i64> = sqlx::query_scalar("SELECT slots FROM pool WHERE name = ? FOR UPDATE")
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
    let used: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(pool_slots), 0) AS SIGNED) FROM task WHERE status = 'running' AND pool = ?",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    let free = slots.unwrap_or(0) - used;
    let limit = limit.min(free);
    if limit <= 0 {
        tx.rollback().await?;
        return Ok(vec![]);
    }
    // one index range per queue, as outside pools
    let mut select = QueryBuilder::<MySql>::new("");
    for (n, queue) in p.queues.iter().enumerate() {
        if n > 0 {
            select.push(" UNION ALL ");
        }
        select.push(
            "(SELECT priority, run_at, id, pool_slots FROM task WHERE status = 'ready' AND pool = ",
        );
        select.push_bind(name);
        select.push(" AND queue = ");
        select.push_bind(queue);
        select.push(" AND run_at <= NOW(6) ORDER BY priority DESC, run_at, id LIMIT ");
        select.push_bind(limit);
        select.push(" FOR UPDATE SKIP LOCKED)");
    }
    let mut rows: Vec<(i64, DateTime<Utc>, i64, i64)> =
        select.build_query_as().fetch_all(&mut *tx).await?;
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let candidates: Vec<(i64, i64)> = rows.iter().map(|r| (r.2, r.3)).collect();
    let ids = fit_in_pool(&candidates, free, limit);
    if ids.is_empty() {
        tx.rollback().await?;
        return Ok(vec![]);
    }
    let claimed = super::runs::mark_running(&mut tx, p, &ids).await?;
    tx.commit().await?;
    Ok(claimed)
}
