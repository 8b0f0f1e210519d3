//! SQLite: the processes: workers, schedulers and the master lock.

use super::*;

/// The master lock on SQLite: a lease row renewed every third of its length.
pub(super) struct SqliteLease {
    pub(super) pool: SqlitePool,
    pub(super) holder: String,
    pub(super) ttl: Duration,
}

#[async_trait]
impl MasterLock for SqliteLease {
    async fn try_acquire(&mut self) -> Result<Option<i64>> {
        let epoch: Option<i64> = sqlx::query_scalar(&format!(
            "UPDATE master_lease SET holder = ?, epoch = epoch + 1, lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?) \
             WHERE name = 'master' AND (holder IS NULL OR holder = ? OR lease_until < {NOW}) RETURNING epoch"
        ))
        .bind(&self.holder)
        .bind(plus(self.ttl))
        .bind(&self.holder)
        .fetch_optional(&self.pool)
        .await?;
        Ok(epoch)
    }

    async fn still_held(&mut self) -> Result<bool> {
        let r = sqlx::query(&format!(
            "UPDATE master_lease SET lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?) \
             WHERE name = 'master' AND holder = ? AND lease_until >= {NOW}"
        ))
        .bind(plus(self.ttl))
        .bind(&self.holder)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release(&mut self) -> Result<()> {
        sqlx::query("UPDATE master_lease SET holder = NULL, lease_until = NULL WHERE name = 'master' AND holder = ?")
            .bind(&self.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn renew_every(&self) -> Option<Duration> {
        Some(self.ttl / 3)
    }
}

pub(super) async fn scheduler_heartbeat(pool: &SqlitePool, p: &SchedulerBeat) -> Result<()> {
    let sql = format!(
        "INSERT INTO scheduler (id, host, pid, state, epoch, master_since, started_at, heartbeat_at) \
         VALUES (?, ?, ?, ?, ?, CASE WHEN ? = 'master' THEN {NOW} END, {NOW}, {NOW}) \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, epoch = excluded.epoch, \
         master_since = CASE WHEN excluded.state = 'master' THEN COALESCE(scheduler.master_since, {NOW}) END, \
         heartbeat_at = {NOW}"
    );
    sqlx::query(&sql)
        .bind(&p.id)
        .bind(&p.host)
        .bind(p.pid)
        .bind(p.state)
        .bind(p.epoch)
        .bind(p.state)
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn scheduler_list(pool: &SqlitePool) -> Result<Vec<SchedulerRow>> {
    Ok(sqlx::query_as(
        "SELECT id, host, pid, state, epoch, master_since, started_at, heartbeat_at FROM scheduler \
         ORDER BY started_at, id",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_deregister(pool: &SqlitePool, worker_id: &str) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE worker SET state = 'stopped', stopped_at = {NOW} WHERE id = ?"
    ))
    .bind(worker_id)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn worker_heartbeat(
    pool: &SqlitePool,
    worker_id: &str,
    host: &HostSample,
) -> Result<Cas> {
    let sql = format!(
        "UPDATE worker SET heartbeat_at = {NOW}, {WORKER_HOST_SET} WHERE id = ? AND state <> 'stopped'"
    );
    let r = bind_host(sqlx::query(&sql), host)
        .bind(worker_id)
        .execute(pool)
        .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn worker_list(pool: &SqlitePool) -> Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT w.id, w.name, w.host, w.pid, w.queues, w.slots, w.state, w.started_at, w.heartbeat_at, w.stopped_at, \
         (julianday('now') - julianday(w.heartbeat_at)) * 86400.0 AS heartbeat_age_s, \
         (SELECT COUNT(*) FROM task t WHERE t.worker_id = w.id AND t.status = 'running') AS running_tasks, \
         {WORKER_HOST_COLUMNS} FROM worker w ORDER BY w.started_at, w.id"
    ))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_metric_insert(
    pool: &SqlitePool,
    p: &WorkerMetricInsert<'_>,
) -> Result<bool> {
    // the interval's start by the database clock: one row per worker and interval
    let every = metric_every_secs(p.every);
    let sql = format!(
        "INSERT INTO worker_metric ({WORKER_METRIC_COLUMNS}) VALUES (?, \
         strftime('%Y-%m-%d %H:%M:%f', (CAST(strftime('%s','now') AS INTEGER) / ?) * ?, 'unixepoch'), \
         ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id, sampled_at) DO NOTHING"
    );
    let q = sqlx::query(&sql).bind(p.worker_id).bind(every).bind(every);
    let r = bind_host(q, p.host)
        .bind(p.host.running_tasks)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn worker_metric_list(
    pool: &SqlitePool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<WorkerMetricRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT * FROM (SELECT {WORKER_METRIC_COLUMNS} FROM worker_metric WHERE sampled_at >= ? \
         ORDER BY sampled_at DESC LIMIT ?) ORDER BY worker_id, sampled_at"
    ))
    .bind(ts(since))
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_register(pool: &SqlitePool, p: &WorkerRegistration) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO worker (id, name, host, pid, queues, slots, state, started_at, heartbeat_at) \
         VALUES (?, ?, ?, ?, ?, ?, 'running', {NOW}, {NOW})"
    ))
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
