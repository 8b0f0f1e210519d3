//! MySQL/MariaDB: the processes: workers, schedulers and the master lock.

use super::*;

/// `GET_LOCK` for [`SessionMaster`]. The name carries the database (GET_LOCK names are server-wide).
pub(super) struct MysqlLock {
    pub(super) pool: MySqlPool,
    pub(super) options: MySqlConnectOptions,
    pub(super) name: String,
}

#[async_trait]
impl SessionLock for MysqlLock {
    type Conn = MySqlConnection;

    async fn connect(&self) -> Result<MySqlConnection> {
        Ok(MySqlConnection::connect_with(&self.options).await?)
    }

    async fn take(&self, conn: &mut MySqlConnection) -> Result<bool> {
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
            .bind(&self.name)
            .fetch_one(conn)
            .await?;
        Ok(got == Some(1))
    }

    async fn holds(&self, conn: &mut MySqlConnection) -> Result<bool> {
        let mine: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
            .bind(&self.name)
            .fetch_one(conn)
            .await?;
        Ok(mine == Some(1))
    }

    async fn unlock(&self, conn: &mut MySqlConnection) -> Result<()> {
        let _: Option<i64> = sqlx::query_scalar("SELECT RELEASE_LOCK(?)")
            .bind(&self.name)
            .fetch_one(conn)
            .await?;
        Ok(())
    }

    async fn bump_epoch(&self, holder: &str) -> Result<i64> {
        retrying(|| async move {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "UPDATE master_lease SET epoch = epoch + 1, holder = ?, lease_until = NULL WHERE name = 'master'",
            )
            .bind(holder)
            .execute(&mut *tx)
            .await?;
            let epoch: i64 =
                sqlx::query_scalar("SELECT epoch FROM master_lease WHERE name = 'master'")
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(epoch)
        })
        .await
    }

    async fn clear_holder(&self, holder: &str) -> Result<()> {
        sqlx::query("UPDATE master_lease SET holder = NULL WHERE name = 'master' AND holder = ?")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub(super) async fn scheduler_heartbeat(pool: &MySqlPool, p: &SchedulerBeat) -> Result<()> {
    retrying(|| async move {
        // ON DUPLICATE KEY assignments run left to right: `master_since` still reads the old row.
        sqlx::query(
            "INSERT INTO scheduler (id, host, pid, state, epoch, master_since, started_at, heartbeat_at) \
             VALUES (?, ?, ?, ?, ?, CASE WHEN ? = 'master' THEN NOW(6) END, NOW(6), NOW(6)) \
             ON DUPLICATE KEY UPDATE \
             master_since = CASE WHEN VALUES(state) = 'master' THEN COALESCE(master_since, NOW(6)) END, \
             state = VALUES(state), epoch = VALUES(epoch), heartbeat_at = NOW(6)",
        )
        .bind(&p.id)
        .bind(&p.host)
        .bind(p.pid)
        .bind(p.state)
        .bind(p.epoch)
        .bind(p.state)
        .execute(pool)
        .await?;
        Ok(())
    })
    .await
}

pub(super) async fn scheduler_list(pool: &MySqlPool) -> Result<Vec<SchedulerRow>> {
    Ok(sqlx::query_as(
        "SELECT CAST(s.id AS CHAR) AS id, CAST(s.host AS CHAR) AS host, s.pid, CAST(s.state AS CHAR) AS state, \
         s.epoch, s.master_since, s.started_at, s.heartbeat_at FROM scheduler s ORDER BY s.started_at, s.id",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_deregister(pool: &MySqlPool, worker_id: &str) -> Result<()> {
    retrying(|| async move {
        sqlx::query("UPDATE worker SET state = 'stopped', stopped_at = NOW(6) WHERE id = ?")
            .bind(worker_id)
            .execute(pool)
            .await?;
        Ok(())
    })
    .await
}

pub(super) async fn worker_heartbeat(
    pool: &MySqlPool,
    worker_id: &str,
    host: &HostSample,
) -> Result<Cas> {
    let sql = format!(
        "UPDATE worker SET heartbeat_at = NOW(6), {WORKER_HOST_SET} WHERE id = ? AND state <> 'stopped'"
    );
    let sql = sql.as_str();
    retrying(|| async move {
        let r = bind_host(sqlx::query(sql), host)
            .bind(worker_id)
            .execute(pool)
            .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    })
    .await
}

pub(super) async fn worker_list(pool: &MySqlPool) -> Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT CAST(w.id AS CHAR) AS id, CAST(w.name AS CHAR) AS name, CAST(w.host AS CHAR) AS host, w.pid, \
         CAST(w.queues AS CHAR) AS queues, w.slots, CAST(w.state AS CHAR) AS state, w.started_at, \
         w.heartbeat_at, w.stopped_at, \
         TIMESTAMPDIFF(MICROSECOND, w.heartbeat_at, NOW(6)) / 1e6 AS heartbeat_age_s, \
         (SELECT COUNT(*) FROM task t WHERE t.worker_id = w.id AND t.status = 'running') AS running_tasks, \
         {WORKER_HOST_COLUMNS} FROM worker w ORDER BY w.started_at, w.id"
    ))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_metric_insert(
    pool: &MySqlPool,
    p: &WorkerMetricInsert<'_>,
) -> Result<bool> {
    // the interval's start by the database clock (sessions run in UTC): one row per worker and
    // interval. IGNORE makes a re-sent insert a no-op with INSERT alone (ON DUPLICATE KEY UPDATE
    // would need UPDATE too); the values are numbers this process made, nothing else to ignore.
    let every = metric_every_secs(p.every);
    let sql = format!(
        "INSERT IGNORE INTO worker_metric ({WORKER_METRIC_COLUMNS}) VALUES (?, \
         FROM_UNIXTIME(FLOOR(UNIX_TIMESTAMP(NOW(6)) / ?) * ?), ?, ?, ?, ?, ?, ?, ?, ?)"
    );
    let sql = sql.as_str();
    retrying(|| async move {
        let q = sqlx::query(sql).bind(p.worker_id).bind(every).bind(every);
        let r = bind_host(q, p.host)
            .bind(p.host.running_tasks)
            .execute(pool)
            .await?;
        Ok(r.rows_affected() == 1)
    })
    .await
}

pub(super) async fn worker_metric_list(
    pool: &MySqlPool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<WorkerMetricRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT CAST(m.worker_id AS CHAR) AS worker_id, m.sampled_at, m.cpu_percent, m.load1, m.load5, \
         m.load15, m.mem_used_bytes, m.mem_total_bytes, m.disk_free_bytes, m.running_tasks FROM \
         (SELECT {WORKER_METRIC_COLUMNS} FROM worker_metric WHERE sampled_at >= ? \
         ORDER BY sampled_at DESC LIMIT ?) m ORDER BY m.worker_id, m.sampled_at"
    ))
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn worker_register(pool: &MySqlPool, p: &WorkerRegistration) -> Result<()> {
    retrying(|| async move {
        sqlx::query(
            "INSERT INTO worker (id, name, host, pid, queues, slots, state, started_at, heartbeat_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'running', NOW(6), NOW(6))",
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
    })
    .await
}
