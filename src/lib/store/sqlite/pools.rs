//! SQLite: pools (pools.xml, `pool set`) and the pooled part of the claim.
//!
//! SQLite has one writer at a time (`BEGIN IMMEDIATE`), so the claim transaction that counts a
//! pool's running slots and marks tasks running cannot interleave with another claim: no pool row
//! lock is needed for the limit to hold.

use super::*;

const POOL_COLUMNS: &str = "name, slots, file_slots, description, updated_by";

pub(super) async fn list(pool: &SqlitePool) -> Result<Vec<PoolRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT p.name, p.slots, p.file_slots, p.description, p.updated_at, p.updated_by, \
         {POOL_USED} AS used, \
         (SELECT COUNT(*) FROM task t WHERE t.status = 'running' AND t.pool = p.name) AS running, \
         {waiting} AS waiting \
         FROM pool p ORDER BY p.name",
        waiting = pool_waiting(NOW)
    ))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn sample_record(pool: &SqlitePool, every: Duration) -> Result<u64> {
    // the interval's start by the database clock; the key makes a repeated sample a no-op
    let every = metric_every_secs(every);
    Ok(sqlx::query(&format!(
        "INSERT INTO pool_sample (pool, sampled_at, slots, used, waiting) \
         SELECT p.name, strftime('%Y-%m-%d %H:%M:%f', (CAST(strftime('%s','now') AS INTEGER) / ?) * ?, 'unixepoch'), \
         p.slots, \
         {POOL_USED}, \
         {waiting} \
         FROM pool p WHERE true ON CONFLICT (pool, sampled_at) DO NOTHING",
        waiting = pool_waiting(NOW)
    ))
    .bind(every)
    .bind(every)
    .execute(pool)
    .await?
    .rows_affected())
}

pub(super) async fn sample_list(
    pool: &SqlitePool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<PoolSampleRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM (SELECT pool, sampled_at, slots, used, waiting FROM pool_sample \
         WHERE sampled_at >= ? ORDER BY sampled_at DESC LIMIT ?) ORDER BY pool, sampled_at",
    )
    .bind(ts(since))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn names(pool: &SqlitePool) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT name FROM pool ORDER BY name")
        .fetch_all(pool)
        .await?)
}

pub(super) async fn lock(conn: &mut SqliteConnection, name: &str) -> Result<Option<PoolDef>> {
    Ok(
        sqlx::query_as(&format!("SELECT {POOL_COLUMNS} FROM pool WHERE name = ?"))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

pub(super) async fn defs(conn: &mut SqliteConnection) -> Result<Vec<PoolDef>> {
    Ok(
        sqlx::query_as(&format!("SELECT {POOL_COLUMNS} FROM pool ORDER BY name"))
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub(super) async fn write(conn: &mut SqliteConnection, p: &PoolDef) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO pool (name, slots, file_slots, description, updated_at, updated_by) \
         VALUES (?, ?, ?, ?, {NOW}, ?) ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, \
         file_slots = excluded.file_slots, description = excluded.description, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by"
    ))
    .bind(&p.name)
    .bind(p.slots)
    .bind(p.file_slots)
    .bind(&p.description)
    .bind(&p.updated_by)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn delete(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM pool WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inside the claim's write transaction: for each of `p.pools` with a ready task in the worker's
/// queues and a free slot, takes the best ready tasks that fit, marks them running and returns their
/// ids (at most `p.limit`).
pub(super) async fn claim(conn: &mut SqliteConnection, p: &TaskClaimParams) -> Result<Vec<i64>> {
    let open: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT p.name, p.slots - COALESCE((SELECT SUM(t.pool_slots) FROM task t \
         WHERE t.status = 'running' AND t.pool = p.name), 0) AS free \
         FROM pool p WHERE p.name IN (SELECT value FROM json_each(?)) AND EXISTS (SELECT 1 FROM task t \
         WHERE t.status = 'ready' AND t.pool = p.name AND t.queue IN (SELECT value FROM json_each(?)) \
         AND t.run_at <= {NOW}) ORDER BY p.name"
    ))
    .bind(json_list(&p.pools))
    .bind(json_list(&p.queues))
    .fetch_all(&mut *conn)
    .await?;
    let per_queue = format!(
        "SELECT * FROM (SELECT id, pool_slots, priority, run_at FROM task WHERE status = 'ready' \
         AND pool = ? AND queue = ? AND run_at <= {NOW} ORDER BY priority DESC, run_at, id LIMIT ?)"
    );
    let pick = format!(
        "SELECT id, pool_slots FROM ({}) ORDER BY priority DESC, run_at, id LIMIT ?",
        vec![per_queue; p.queues.len()].join(" UNION ALL ")
    );
    let mut ids = Vec::new();
    for (name, free) in open {
        let limit = (p.limit - ids.len() as i64).min(free);
        if limit <= 0 {
            continue;
        }
        let mut q = sqlx::query_as(&pick);
        for queue in &p.queues {
            q = q.bind(&name).bind(queue).bind(limit);
        }
        let candidates: Vec<(i64, i64)> = q.bind(limit).fetch_all(&mut *conn).await?;
        ids.extend(fit_in_pool(&candidates, free, limit));
    }
    if ids.is_empty() {
        return Ok(ids);
    }
    Ok(sqlx::query_scalar(&format!(
        "UPDATE task SET status = 'running', worker_id = ?, attempt = attempt + 1, started_at = {NOW}, \
         lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?), ended_at = NULL \
         WHERE status = 'ready' AND id IN (SELECT value FROM json_each(?)) RETURNING id"
    ))
    .bind(&p.worker_id)
    .bind(plus(p.lease_ttl))
    .bind(json_list(&ids))
    .fetch_all(&mut *conn)
    .await?)
}
