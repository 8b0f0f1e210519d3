//! PostgreSQL: the processes: workers, schedulers and the master lock.

use super::*;

/// The advisory lock key of the master election.
const MASTER_KEY: &str = "hashtext('akkaflow.master')";

/// A session advisory lock for [`SessionMaster`]; advisory locks are per database.
pub(super) struct PostgresLock {
    pub(super) pool: PgPool,
    pub(super) options: PgConnectOptions,
    /// The fleet's database: advisory locks are per database, so the lock's must be the same.
    pub(super) database: String,
}

#[async_trait]
impl SessionLock for PostgresLock {
    type Conn = PgConnection;

    async fn connect(&self) -> Result<PgConnection> {
        let mut conn = PgConnection::connect_with(&self.options).await?;
        let database: String = sqlx::query_scalar("SELECT current_database()::text")
            .fetch_one(&mut conn)
            .await?;
        if database != self.database {
            let _ = conn.close().await;
            return Err(StoreError::Misconfigured(format!(
                "[database] lock_url reaches database `{database}` but database_url reaches `{}`: \
                 the master lock must be taken in the fleet's own database",
                self.database
            )));
        }
        Ok(conn)
    }

    async fn take(&self, conn: &mut PgConnection) -> Result<bool> {
        Ok(
            sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock({MASTER_KEY})"))
                .fetch_one(conn)
                .await?,
        )
    }

    async fn holds(&self, conn: &mut PgConnection) -> Result<bool> {
        // A bigint advisory key shows as classid = high half, objid = low half, objsubid = 1.
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() \
             AND granted AND objsubid = 1 \
             AND classid = ((({MASTER_KEY})::bigint >> 32) & 4294967295)::oid \
             AND objid = (({MASTER_KEY})::bigint & 4294967295)::oid)"
        );
        Ok(sqlx::query_scalar(&sql).fetch_one(conn).await?)
    }

    async fn unlock(&self, conn: &mut PgConnection) -> Result<()> {
        let _: bool = sqlx::query_scalar(&format!("SELECT pg_advisory_unlock({MASTER_KEY})"))
            .fetch_one(conn)
            .await?;
        Ok(())
    }

    async fn bump_epoch(&self, holder: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "UPDATE master_lease SET epoch = epoch + 1, holder = $1, lease_until = NULL WHERE name = 'master' \
             RETURNING epoch",
        )
        .bind(holder)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn clear_holder(&self, holder: &str) -> Result<()> {
        sqlx::query("UPDATE master_lease SET holder = NULL WHERE name = 'master' AND holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub(super) async fn scheduler_heartbeat(pool: &PgPool, p: &SchedulerBeat) -> Result<()> {
    sqlx::query(
        "INSERT INTO scheduler (id, host, pid, state, epoch, master_since, started_at, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'master' THEN now() END, now(), now()) \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, epoch = excluded.epoch, \
         master_since = CASE WHEN excluded.state = 'master' THEN COALESCE(scheduler.master_since, now()) END, \
         heartbeat_at = now()",
    )
    .bind(&p.id)
    .bind(&p.host)
    .bind(p.pid)
    .bind(p.state)
    .bind(p.epoch)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn scheduler_list(pool: &PgPool) -> Result<Vec<SchedulerRow>> {
    Ok(sqlx::query_as(
        "SELECT id, host, pid, state, epoch, master_since, started_at, heartbeat_at FROM scheduler \
         ORDER BY started_at, id COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_deregister(pool: &PgPool, worker_id: &str) -> Result<()> {
    sqlx::query("UPDATE worker SET state = 'stopped', stopped_at = now() WHERE id = $1")
        .bind(worker_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn worker_heartbeat(
    pool: &PgPool,
    worker_id: &str,
    host: &HostSample,
) -> Result<Cas> {
    let sql = numbered(&format!(
        "UPDATE worker SET heartbeat_at = now(), {WORKER_HOST_SET} WHERE id = ? AND state <> 'stopped'"
    ));
    let r = bind_host(sqlx::query(&sql), host)
        .bind(worker_id)
        .execute(pool)
        .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn worker_list(pool: &PgPool) -> Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT w.id, w.name, w.host, w.pid, w.queues, w.slots, w.state, w.started_at, w.heartbeat_at, w.stopped_at, \
         EXTRACT(EPOCH FROM (now() - w.heartbeat_at))::float8 AS heartbeat_age_s, \
         (SELECT COUNT(*) FROM task t WHERE t.worker_id = w.id AND t.status = 'running') AS running_tasks, \
         {WORKER_HOST_COLUMNS} FROM worker w ORDER BY w.started_at, w.id COLLATE \"C\""
    ))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_metric_insert(
    pool: &PgPool,
    p: &WorkerMetricInsert<'_>,
) -> Result<bool> {
    // the interval's start by the database clock: one row per worker and interval
    let sql = format!(
        "INSERT INTO worker_metric ({WORKER_METRIC_COLUMNS}) VALUES ($1, \
         to_timestamp((floor(extract(epoch FROM now()) / $2) * $2)::float8), \
         $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (worker_id, sampled_at) DO NOTHING"
    );
    let q = sqlx::query(&sql)
        .bind(p.worker_id)
        .bind(metric_every_secs(p.every));
    let r = bind_host(q, p.host)
        .bind(p.host.running_tasks)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn worker_metric_list(
    pool: &PgPool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<WorkerMetricRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT * FROM (SELECT {WORKER_METRIC_COLUMNS} FROM worker_metric WHERE sampled_at >= $1 \
         ORDER BY sampled_at DESC LIMIT $2) m ORDER BY worker_id COLLATE \"C\", sampled_at"
    ))
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_register(pool: &PgPool, p: &WorkerRegistration) -> Result<()> {
    sqlx::query(
        "INSERT INTO worker (id, name, host, pid, queues, slots, state, started_at, heartbeat_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 'running', now(), now())",
    )
    .bind(&p.id)
    .bind(&p.name)
    .bind(&p.host)
    .bind(p.pid)
    .bind(&p.queues)
    .bind(p.slots)
    .execute(pool)
    .await?;
    Ok(())
}
