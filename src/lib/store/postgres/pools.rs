//! PostgreSQL: pools (pools.xml, `pool set`) and the pooled part of the claim.
//!
//! A pooled claim is one transaction per pool: lock the pool row (`FOR UPDATE`), count the slots its
//! running tasks take (READ COMMITTED: this statement sees every claim committed before the lock was
//! granted), pick the best ready tasks that fit (`FOR UPDATE SKIP LOCKED`) and mark them running.
//! Claims of one pool therefore follow one another, so the limit holds across every worker; the
//! only lock waited for is one pool row, and sync and `pool set` lock pool rows in name order and
//! no task row, so no cycle can form.

use super::*;

const POOL_COLUMNS: &str = "name, slots, file_slots, description, updated_by";

pub(super) async fn list(pool: &PgPool) -> Result<Vec<PoolRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT p.name, p.slots, p.file_slots, p.description, p.updated_at, p.updated_by, \
         {POOL_USED}::bigint AS used, \
         (SELECT COUNT(*) FROM task t WHERE t.status = 'running' AND t.pool = p.name) AS running, \
         {waiting} AS waiting \
         FROM pool p ORDER BY p.name COLLATE \"C\"",
        waiting = pool_waiting("now()")
    ))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn sample_record(pool: &PgPool, every: Duration) -> Result<u64> {
    // the interval's start by the database clock; the key makes a repeated sample a no-op
    Ok(sqlx::query(&format!(
        "INSERT INTO pool_sample (pool, sampled_at, slots, used, waiting) \
         SELECT p.name, to_timestamp((floor(extract(epoch FROM now()) / $1) * $1)::float8), p.slots, \
         {POOL_USED}, \
         {waiting} \
         FROM pool p ON CONFLICT (pool, sampled_at) DO NOTHING",
        waiting = pool_waiting("now()")
    ))
    .bind(metric_every_secs(every))
    .execute(pool)
    .await?
    .rows_affected())
}

pub(super) async fn sample_list(
    pool: &PgPool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<PoolSampleRow>> {
    Ok(sqlx::query_as(
        "SELECT * FROM (SELECT pool, sampled_at, slots, used, waiting FROM pool_sample \
         WHERE sampled_at >= $1 ORDER BY sampled_at DESC LIMIT $2) s \
         ORDER BY pool COLLATE \"C\", sampled_at",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn names(pool: &PgPool) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM pool ORDER BY name COLLATE \"C\"")
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn lock(conn: &mut PgConnection, name: &str) -> Result<Option<PoolDef>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {POOL_COLUMNS} FROM pool WHERE name = $1 FOR UPDATE"
    ))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?)
}

pub(super) async fn defs(conn: &mut PgConnection) -> Result<Vec<PoolDef>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {POOL_COLUMNS} FROM pool ORDER BY name COLLATE \"C\""
    ))
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn write(conn: &mut PgConnection, p: &PoolDef) -> Result<()> {
    sqlx::query(
        "INSERT INTO pool (name, slots, file_slots, description, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, now(), $5) ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, \
         file_slots = excluded.file_slots, description = excluded.description, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
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

pub(super) async fn delete(conn: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM pool WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The pools of `p.pools` with a due ready task in the worker's queues and, by an unlocked look, a
/// free slot: only those are worth a locked claim.
const OPEN_POOLS: &str = "SELECT p.name FROM pool p WHERE p.name = ANY($1) \
     AND EXISTS (SELECT 1 FROM task t WHERE t.status = 'ready' AND t.pool = p.name AND t.queue = ANY($2) \
     AND t.run_at <= now()) \
     AND p.slots > (SELECT COALESCE(SUM(t.pool_slots), 0) FROM task t WHERE t.status = 'running' AND t.pool = p.name) \
     ORDER BY p.name COLLATE \"C\"";

const USED: &str =
    "SELECT COALESCE(SUM(pool_slots), 0)::bigint FROM task WHERE status = 'running' AND pool = $1";

/// One index range per queue, as in the unpooled claim, within the pool.
const CANDIDATES: &str = "SELECT c.id, c.pool_slots FROM unnest($2::text[]) AS q(queue) CROSS JOIN LATERAL ( \
     SELECT id, priority, run_at, pool_slots FROM task WHERE status = 'ready' AND pool = $1 AND queue = q.queue \
     AND run_at <= now() ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) c \
     ORDER BY c.priority DESC, c.run_at, c.id LIMIT $3";

const MARK_RUNNING: &str = "WITH claimed AS ( \
     UPDATE task t SET status = 'running', worker_id = $1, attempt = t.attempt + 1, started_at = now(), \
     lease_until = now() + $2 * interval '1 microsecond', ended_at = NULL \
     WHERE t.id = ANY($3) AND t.status = 'ready' \
     RETURNING t.id, t.instance_id, t.node, t.kind, t.attempt, t.timeout_s, t.priority, t.started_at) \
     SELECT c.id, c.instance_id, c.node, c.kind, c.attempt, c.timeout_s, i.workflow, i.workflow_version, \
     i.params, i.scheduled_for, c.started_at FROM claimed c JOIN workflow_instance i ON i.id = c.instance_id \
     ORDER BY c.priority DESC, c.id";

/// Claims from each open pool in turn, at most `p.limit` tasks in all.
pub(super) async fn claim(pool: &PgPool, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
    let open: Vec<String> = sqlx::query_scalar(OPEN_POOLS)
        .bind(&p.pools)
        .bind(&p.queues)
        .fetch_all(pool)
        .await?;
    let mut claimed = Vec::new();
    for name in open {
        let limit = p.limit - claimed.len() as i64;
        if limit <= 0 {
            break;
        }
        let got = super::super::retry::retrying(super::super::retry::STATEMENT, || {
            claim_one(pool, p, &name, limit)
        })
        .await;
        match got {
            Ok(got) => claimed.extend(got),
            // what was claimed is committed: the worker must run it
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
    pool: &PgPool,
    p: &TaskClaimParams,
    name: &str,
    limit: i64,
) -> Result<Vec<ClaimedTask>> {
    let mut tx = pool.begin().await?;
    let slots: Option<i64> =
        sqlx::query_scalar("SELECT slots FROM pool WHERE name = $1 FOR UPDATE")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
    let used: i64 = sqlx::query_scalar(USED)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
    let free = slots.unwrap_or(0) - used;
    let limit = limit.min(free);
    if limit <= 0 {
        tx.rollback().await?;
        return Ok(vec![]);
    }
    let candidates: Vec<(i64, i64)> = sqlx::query_as(CANDIDATES)
        .bind(name)
        .bind(&p.queues)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
    let ids = fit_in_pool(&candidates, free, limit);
    if ids.is_empty() {
        tx.rollback().await?;
        return Ok(vec![]);
    }
    let claimed = sqlx::query_as(MARK_RUNNING)
        .bind(&p.worker_id)
        .bind(micros(p.lease_ttl))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(claimed)
}
