//! SQLite: workflow instances and their tasks: claims, leases, transitions.

use super::super::common::ready_due;
use super::*;

/// `workflow` lies in the dir prefix bound four times (NULL: everywhere); see [`dir_in_scope`].
const IN_DIR: &str = "(? IS NULL OR workflow IN (SELECT name FROM workflow WHERE dir = ? \
     OR substr(dir, 1, length(?) + 1) = ? || '/'))";

const TASK_COLUMNS: &str = "id, instance_id, node, kind, status, attempt, max_attempts, retry_interval_s, timeout_s, \
     queue, priority, pool, pool_slots, run_at, worker_id, lease_until, kill_requested, exit_code, error, created_at, started_at, ended_at, lost_attempts";

pub(super) const INSTANCE_COLUMNS: &str =
    "id, workflow, workflow_version, status, params, trigger_kind, scheduled_for, \
     parent_instance_id, parent_task_id, error, created_by, created_at, started_at, ended_at, backfill_id";

pub(super) async fn instance_children_active(
    conn: &mut SqliteConnection,
    parent: InstanceId,
) -> Result<Vec<InstanceId>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM workflow_instance WHERE parent_instance_id = ? AND status IN ('pending', 'running') ORDER BY id",
    )
    .bind(parent)
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn instance_count_by_day(
    pool: &SqlitePool,
    since: DateTime<Utc>,
    dir_prefix: Option<&str>,
) -> Result<Vec<DayCount>> {
    let sql = format!(
        "SELECT substr(COALESCE(ended_at, created_at), 1, 10) AS day, status, COUNT(*) AS count \
         FROM workflow_instance WHERE COALESCE(ended_at, created_at) >= ? AND {IN_DIR} \
         GROUP BY substr(COALESCE(ended_at, created_at), 1, 10), status ORDER BY day, status"
    );
    let dir = normalize_dir_prefix(dir_prefix);
    Ok(sqlx::query_as(&sql)
        .bind(ts(since))
        .bind(&dir)
        .bind(&dir)
        .bind(&dir)
        .bind(&dir)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn instance_count_running_many(
    conn: &mut SqliteConnection,
    workflows: &[String],
) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT workflow, COUNT(*) FROM workflow_instance WHERE status = 'running' \
         AND workflow IN (SELECT value FROM json_each(?)) GROUP BY workflow",
    )
    .bind(json_list(workflows))
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn instance_get(pool: &SqlitePool, id: InstanceId) -> Result<Option<InstanceRow>> {
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM workflow_instance WHERE id = ?");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

pub(super) async fn instance_insert_many(
    conn: &mut SqliteConnection,
    rows: &[NewInstance],
) -> Result<Option<Vec<InstanceId>>> {
    if rows.is_empty() {
        return Ok(Some(vec![]));
    }
    // ON CONFLICT, not a caught unique violation: an error would abort a PostgreSQL transaction
    let mut qb = super::super::common::instance_insert::<Sqlite, _>(rows, NOW, ts);
    qb.push(
        " ON CONFLICT (workflow, trigger_kind, scheduled_for, backfill_id) DO NOTHING RETURNING id",
    );
    let ids: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
    if ids.len() == rows.len() {
        return Ok(Some(super::super::common::ids_in_insert_order(
            ids,
            rows.len(),
        )?));
    }
    // a slot was taken: take back the rows written beside it, so that none is
    if !ids.is_empty() {
        let mut undo =
            sqlx::QueryBuilder::<Sqlite>::new("DELETE FROM workflow_instance WHERE id IN ");
        undo.push_tuples(ids, |mut b, id| {
            b.push_bind(id);
        });
        undo.build().execute(&mut *conn).await?;
    }
    Ok(None)
}

pub(super) async fn instance_latest_by_workflow(pool: &SqlitePool) -> Result<Vec<InstanceRow>> {
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS} FROM workflow_instance \
         WHERE id IN (SELECT MAX(id) FROM workflow_instance GROUP BY workflow) ORDER BY workflow"
    );
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

pub(super) async fn instance_list(
    pool: &SqlitePool,
    f: &InstanceFilter,
) -> Result<Vec<InstanceRow>> {
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS} FROM workflow_instance WHERE (? IS NULL OR workflow = ?) \
         AND (? IS NULL OR status = ?) AND (? IS NULL OR created_at >= ?) AND (? IS NULL OR id < ?) \
         AND {IN_DIR} ORDER BY id DESC LIMIT ?"
    );
    let since = ts_opt(f.since);
    let dir = normalize_dir_prefix(f.dir_prefix.as_deref());
    Ok(sqlx::query_as(&sql)
        .bind(&f.workflow)
        .bind(&f.workflow)
        .bind(f.status)
        .bind(f.status)
        .bind(&since)
        .bind(&since)
        .bind(f.before_id)
        .bind(f.before_id)
        .bind(&dir)
        .bind(&dir)
        .bind(&dir)
        .bind(&dir)
        .bind(f.limit)
        .fetch_all(pool)
        .await?)
}

/// The instances list's WHERE: only the given filters, so each combination is a plain AND of
/// indexed predicates (no `? IS NULL OR` that hides the index from the planner).
fn push_search(qb: &mut sqlx::QueryBuilder<'_, Sqlite>, s: &InstanceSearch, paged: bool) {
    qb.push(" WHERE 1 = 1");
    if let Some(w) = &s.workflow {
        qb.push(" AND workflow = ").push_bind(w.clone());
    }
    if let Some(st) = s.status {
        qb.push(" AND status = ").push_bind(st.as_str());
    }
    if let Some(t) = s.trigger {
        qb.push(" AND trigger_kind = ").push_bind(t.as_str());
    }
    if let Some(t) = s.created_from {
        qb.push(" AND created_at >= ").push_bind(ts(t));
    }
    if let Some(t) = s.created_to {
        qb.push(" AND created_at < ").push_bind(ts(t));
    }
    if let (true, Some(b)) = (paged, s.before_id) {
        qb.push(" AND id < ").push_bind(b.0);
    }
    if let Some(d) = normalize_dir_prefix(s.dir_prefix.as_deref()) {
        qb.push(" AND workflow IN (SELECT name FROM workflow WHERE dir = ")
            .push_bind(d.clone())
            .push(" OR substr(dir, 1, length(")
            .push_bind(d.clone())
            .push(") + 1) = ")
            .push_bind(d)
            .push(" || '/')");
    }
}

pub(super) async fn instance_search(
    pool: &SqlitePool,
    s: &InstanceSearch,
) -> Result<InstanceSearchPage> {
    let mut qb =
        sqlx::QueryBuilder::new(format!("SELECT {INSTANCE_COLUMNS} FROM workflow_instance"));
    push_search(&mut qb, s, true);
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(s.limit);
    let rows = qb.build_query_as().fetch_all(pool).await?;
    let mut qb = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1 FROM workflow_instance");
    push_search(&mut qb, s, false);
    qb.push(" LIMIT ").push_bind(s.count_up_to).push(") AS c");
    let total: i64 = qb.build_query_scalar().fetch_one(pool).await?;
    Ok(InstanceSearchPage { rows, total })
}

pub(super) async fn instance_lock_many(
    conn: &mut SqliteConnection,
    ids: &[InstanceId],
) -> Result<Vec<(InstanceRow, DateTime<Utc>)>> {
    // BEGIN IMMEDIATE already holds the database's write lock: no wait after this read.
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS}, {NOW} AS db_now FROM workflow_instance \
         WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id"
    );
    let rows: Vec<LockedInstance> = sqlx::query_as(&sql)
        .bind(json_list(ids))
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|l| (l.row, l.db_now)).collect())
}

pub(super) async fn instance_pending_oldest(
    conn: &mut SqliteConnection,
    workflow: &str,
    limit: i64,
) -> Result<Vec<InstanceId>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM workflow_instance WHERE workflow = ? AND status = 'pending' ORDER BY id LIMIT ?",
    )
    .bind(workflow)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn instance_pending_among(
    conn: &mut SqliteConnection,
    workflows: &[String],
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT workflow FROM workflow_instance WHERE status = 'pending' \
         AND workflow IN (SELECT value FROM json_each(?))",
    )
    .bind(json_list(workflows))
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn instance_pending_workflows(
    pool: &SqlitePool,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT workflow FROM workflow_instance WHERE status = 'pending' ORDER BY workflow LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn instance_transition_many(
    conn: &mut SqliteConnection,
    ids: &[InstanceId],
    p: &InstanceTransition,
) -> Result<u64> {
    let r = sqlx::query(
        "UPDATE workflow_instance SET status = ?, started_at = COALESCE(?, started_at), ended_at = ?, error = ? \
         WHERE id IN (SELECT value FROM json_each(?)) AND status IN (SELECT value FROM json_each(?))",
    )
    .bind(p.to)
    .bind(ts_opt(p.started_at))
    .bind(ts_opt(p.ended_at))
    .bind(&p.error)
    .bind(json_list(ids))
    .bind(instance_status_list(&p.from))
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

pub(super) async fn lease_extend_many(
    pool: &SqlitePool,
    worker_id: &str,
    ttl: Duration,
) -> Result<u64> {
    let r = sqlx::query(
        "UPDATE task SET lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?) \
         WHERE worker_id = ? AND status = 'running'",
    )
    .bind(plus(ttl))
    .bind(worker_id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

pub(super) async fn ready_tasks_due(pool: &SqlitePool, queues: &[String]) -> Result<bool> {
    let filter = if queues.is_empty() {
        ""
    } else {
        " AND queue IN (SELECT value FROM json_each(?))"
    };
    let sql = ready_due(NOW, filter);
    let mut query = sqlx::query_scalar(&sql);
    if !queues.is_empty() {
        query = query.bind(json_list(queues));
    }
    let due: i64 = query.fetch_one(pool).await?;
    Ok(due > 0)
}

pub(super) async fn task_claim(pool: &SqlitePool, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
    if p.queues.is_empty() {
        return Ok(vec![]);
    }
    let mut tx = begin_immediate(pool).await?;
    // pooled tasks first (only when pools exist): the unpooled claim below could otherwise fill
    // every free slot while tasks that wait for a pool slot starve
    let mut ids = if p.pools.is_empty() {
        vec![]
    } else {
        super::pools::claim(&mut tx, p).await?
    };
    let left = p.limit - ids.len() as i64;
    if left > 0 {
        // one index range per queue, merged: `queue IN (...)` would sort every ready row of the
        // worker's queues on each claim, which grows with the backlog
        let per_queue = format!(
            "SELECT * FROM (SELECT id, priority, run_at FROM task WHERE status = 'ready' AND pool = '' \
             AND queue = ? AND run_at <= {NOW} ORDER BY priority DESC, run_at, id LIMIT ?)"
        );
        let claim = format!(
            "UPDATE task SET status = 'running', worker_id = ?, attempt = attempt + 1, started_at = {NOW}, \
             lease_until = strftime('%Y-%m-%d %H:%M:%f','now', ?), ended_at = NULL \
             WHERE id IN (SELECT id FROM ({}) ORDER BY priority DESC, run_at, id LIMIT ?) \
             RETURNING id",
            vec![per_queue; p.queues.len()].join(" UNION ALL ")
        );
        let mut q = sqlx::query_scalar(&claim)
            .bind(&p.worker_id)
            .bind(plus(p.lease_ttl));
        for queue in &p.queues {
            q = q.bind(queue).bind(left);
        }
        let unpooled: Vec<i64> = q.bind(left).fetch_all(&mut *tx).await?;
        ids.extend(unpooled);
    }
    if ids.is_empty() {
        tx.rollback().await?;
        return Ok(vec![]);
    }
    let claimed = sqlx::query_as(
        "SELECT t.id, t.instance_id, t.node, t.kind, t.attempt, t.timeout_s, i.workflow, i.workflow_version, \
         i.params, i.scheduled_for, t.started_at FROM task t JOIN workflow_instance i ON i.id = t.instance_id \
         WHERE t.id IN (SELECT value FROM json_each(?)) ORDER BY t.priority DESC, t.id",
    )
    .bind(json_list(&ids))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

pub(super) async fn task_get(pool: &SqlitePool, id: TaskId) -> Result<Option<TaskRow>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM task WHERE id = ?");
    Ok(sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?)
}

pub(super) async fn task_insert_many(
    conn: &mut SqliteConnection,
    tasks: &[NewTask],
) -> Result<Vec<TaskId>> {
    if tasks.is_empty() {
        return Ok(vec![]);
    }
    let mut qb = super::super::common::task_insert::<Sqlite>(tasks, NOW);
    qb.push(" RETURNING instance_id, node, id");
    let returned = qb.build_query_as().fetch_all(&mut *conn).await?;
    super::super::common::task_ids_in_order(tasks, returned)
}

pub(super) async fn task_kill_check(
    pool: &SqlitePool,
    worker_id: &str,
    ids: &[TaskId],
) -> Result<Vec<TaskId>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_scalar(
        "SELECT id FROM task WHERE id IN (SELECT value FROM json_each(?)) \
         AND (status <> 'running' OR kill_requested = 1 OR worker_id IS NULL OR worker_id <> ?) ORDER BY id",
    )
    .bind(json_list(ids))
    .bind(worker_id)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_lease_expired(pool: &SqlitePool, limit: i64) -> Result<Vec<TaskRow>> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM task WHERE status = 'running' AND lease_until < {NOW} ORDER BY id LIMIT ?"
    );
    Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
}

pub(super) async fn task_list(pool: &SqlitePool, instance: InstanceId) -> Result<Vec<TaskRow>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM task WHERE instance_id = ? ORDER BY id");
    Ok(sqlx::query_as(&sql).bind(instance).fetch_all(pool).await?)
}

pub(super) async fn task_list_many(
    conn: &mut SqliteConnection,
    ids: &[InstanceId],
) -> Result<Vec<TaskRow>> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM task WHERE instance_id IN (SELECT value FROM json_each(?)) \
         ORDER BY instance_id, id"
    );
    Ok(sqlx::query_as(&sql)
        .bind(json_list(ids))
        .fetch_all(&mut *conn)
        .await?)
}

// one read per status: each uses its partial index, where `status IN (...)` would read the table
pub(super) async fn task_queue_depth(pool: &SqlitePool) -> Result<Vec<QueueDepth>> {
    let sql = format!(
        "SELECT queue, SUM(ready) AS ready, SUM(running) AS running FROM ( \
         SELECT queue, CASE WHEN run_at <= {NOW} THEN 1 ELSE 0 END AS ready, 0 AS running \
         FROM task WHERE status = 'ready' \
         UNION ALL SELECT queue, 0, 1 FROM task WHERE status = 'running') \
         GROUP BY queue ORDER BY queue"
    );
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

pub(super) async fn task_request_kill(conn: &mut SqliteConnection, id: TaskId) -> Result<Cas> {
    let r = sqlx::query("UPDATE task SET kill_requested = 1 WHERE id = ? AND status = 'running'")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn task_transition_many(
    conn: &mut SqliteConnection,
    ids: &[TaskId],
    p: &TaskTransition,
) -> Result<u64> {
    let (fence_worker, fence_attempt) = match &p.fence {
        Some(f) => (Some(f.worker_id.as_str()), Some(f.attempt)),
        None => (None, None),
    };
    let r = sqlx::query(
        "UPDATE task SET status = ?, run_at = ?, exit_code = ?, error = ?, kill_requested = ?, \
         max_attempts = COALESCE(?, max_attempts), ended_at = ?, \
         worker_id = NULL, lease_until = NULL, lost_attempts = COALESCE(?, lost_attempts) \
         WHERE id IN (SELECT value FROM json_each(?)) AND status IN (SELECT value FROM json_each(?)) \
         AND (? IS NULL OR worker_id = ?) AND (? IS NULL OR attempt = ?)",
    )
    .bind(p.to)
    .bind(ts_opt(p.run_at))
    .bind(p.exit_code)
    .bind(&p.error)
    .bind(p.kill_requested)
    .bind(p.max_attempts)
    .bind(ts_opt(p.ended_at))
    .bind(p.lost_attempts)
    .bind(json_list(ids))
    .bind(status_list(&p.from))
    .bind(fence_worker)
    .bind(fence_worker)
    .bind(fence_attempt)
    .bind(fence_attempt)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}
