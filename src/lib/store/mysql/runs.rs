//! MySQL/MariaDB: workflow instances and their tasks: claims, leases, transitions.

use super::super::common::ready_due;
use super::*;

macro_rules! task_cols {
    () => {
        "t.id, t.instance_id, CAST(t.node AS CHAR) AS node, CAST(t.kind AS CHAR) AS kind, \
         CAST(t.status AS CHAR) AS status, t.attempt, t.max_attempts, t.retry_interval_s, t.timeout_s, \
         CAST(t.queue AS CHAR) AS queue, t.priority, CAST(t.pool AS CHAR) AS pool, t.pool_slots, t.run_at, \
         CAST(t.worker_id AS CHAR) AS worker_id, \
         t.lease_until, t.kill_requested, t.exit_code, CAST(t.error AS CHAR) AS error, t.created_at, \
         t.started_at, t.ended_at, t.lost_attempts"
    };
}

macro_rules! instance_cols {
    () => {
        "i.id, CAST(i.workflow AS CHAR) AS workflow, i.workflow_version, CAST(i.status AS CHAR) AS status, \
         CAST(i.params AS CHAR) AS params, CAST(i.trigger_kind AS CHAR) AS trigger_kind, i.scheduled_for, \
         i.parent_instance_id, i.parent_task_id, CAST(i.error AS CHAR) AS error, CAST(i.created_by AS CHAR) AS created_by, \
         i.created_at, i.started_at, i.ended_at, i.backfill_id"
    };
}

/// `i.workflow` lies in the dir prefix bound four times (NULL: everywhere); see [`dir_in_scope`].
macro_rules! in_dir {
    () => {
        "(? IS NULL OR i.workflow IN (SELECT w.name FROM workflow w WHERE w.dir = ? \
         OR LEFT(w.dir, CHAR_LENGTH(?) + 1) = CONCAT(?, '/')))"
    };
}

const INSTANCE_GET: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance i WHERE i.id = ?"
);

const INSTANCE_LIST: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance i WHERE (? IS NULL OR i.workflow = ?) AND (? IS NULL OR i.status = ?) \
     AND (? IS NULL OR i.created_at >= ?) AND (? IS NULL OR i.id < ?) AND ",
    in_dir!(),
    " ORDER BY i.id DESC LIMIT ?"
);

const INSTANCE_COUNT_BY_DAY: &str = concat!(
    "SELECT CAST(DATE_FORMAT(COALESCE(i.ended_at, i.created_at), '%Y-%m-%d') AS CHAR) AS day, \
     CAST(i.status AS CHAR) AS status, COUNT(*) AS count FROM workflow_instance i \
     WHERE COALESCE(i.ended_at, i.created_at) >= ? AND ",
    in_dir!(),
    " GROUP BY day, status ORDER BY day, status"
);

const INSTANCE_LATEST_BY_WORKFLOW: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance i WHERE i.id IN (SELECT MAX(m.id) FROM workflow_instance m GROUP BY m.workflow) \
     ORDER BY i.workflow"
);

const INSTANCE_LOCK_MANY: &str = concat!(
    "SELECT ",
    instance_cols!(),
    // SYSDATE, unlike NOW, is read when the row is returned: after the wait for its lock
    ", SYSDATE(6) AS db_now FROM workflow_instance i WHERE i.id IN "
);

const TASK_GET: &str = concat!("SELECT ", task_cols!(), " FROM task t WHERE t.id = ?");

const TASK_LEASE_EXPIRED: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task t WHERE t.status = 'running' AND t.lease_until < NOW(6) ORDER BY t.id LIMIT ?"
);

// The index is named: on a task table whose statistics are still those of an empty table (a
// new database filling fast, before InnoDB's next recalculation), the optimizer reads the primary
// key in `ORDER BY id` order and filters, a full scan per call (seen: 6,900 rows read per call,
// the engine at half its speed for the first minutes of a fresh MariaDB).
const TASK_LIST: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task t FORCE INDEX (task_node) WHERE t.instance_id = ? ORDER BY t.id"
);

const TASK_LIST_MANY: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task t FORCE INDEX (task_node) WHERE t.instance_id IN "
);

const TASK_CLAIM_RESULT: &str = "SELECT t.id, t.instance_id, CAST(t.node AS CHAR) AS node, CAST(t.kind AS CHAR) AS kind, t.attempt, \
     t.timeout_s, CAST(i.workflow AS CHAR) AS workflow, i.workflow_version, CAST(i.params AS CHAR) AS params, \
     i.scheduled_for, t.started_at FROM task t JOIN workflow_instance i ON i.id = t.instance_id WHERE t.id IN ";

pub(super) async fn instance_children_active(
    conn: &mut MySqlConnection,
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
    pool: &MySqlPool,
    since: DateTime<Utc>,
    dir_prefix: Option<&str>,
) -> Result<Vec<DayCount>> {
    let dir = normalize_dir_prefix(dir_prefix);
    Ok(sqlx::query_as(INSTANCE_COUNT_BY_DAY)
        .bind(since)
        .bind(&dir)
        .bind(&dir)
        .bind(&dir)
        .bind(&dir)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn instance_count_running_many(
    conn: &mut MySqlConnection,
    workflows: &[String],
) -> Result<Vec<(String, i64)>> {
    if workflows.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<MySql>::new(
        "SELECT CAST(workflow AS CHAR) AS workflow, COUNT(*) FROM workflow_instance \
         WHERE status = 'running' AND workflow IN ",
    );
    push_list(&mut qb, workflows.iter());
    qb.push(" GROUP BY workflow");
    Ok(qb.build_query_as().fetch_all(&mut *conn).await?)
}

pub(super) async fn instance_get(pool: &MySqlPool, id: InstanceId) -> Result<Option<InstanceRow>> {
    Ok(sqlx::query_as(INSTANCE_GET)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn instance_insert_many(
    conn: &mut MySqlConnection,
    rows: &[NewInstance],
    returning: bool,
) -> Result<Option<Vec<InstanceId>>> {
    if rows.is_empty() {
        return Ok(Some(vec![]));
    }
    // Not INSERT IGNORE: it would also swallow bad values and foreign-key errors. A duplicate key
    // fails this statement only (none of its rows is written); the transaction goes on.
    let mut qb =
        super::super::common::instance_insert::<MySql, _>(rows, "NOW(6)", std::convert::identity);
    let inserted = if returning {
        qb.push(" RETURNING id");
        qb.build_query_scalar::<i64>().fetch_all(&mut *conn).await
    } else {
        match qb.build().execute(&mut *conn).await {
            Ok(done) if rows.len() == 1 => Ok(vec![i64::try_from(done.last_insert_id())
                .expect("AUTO_INCREMENT of a BIGINT column fits in i64")]),
            // MySQL 8 has no RETURNING, and its ids of one statement need not be consecutive:
            // read them back by their slot keys
            Ok(done) => {
                let mut read =
                    QueryBuilder::<MySql>::new("SELECT id FROM workflow_instance WHERE id >= ");
                read.push_bind(done.last_insert_id());
                read.push(" AND (workflow, trigger_kind, scheduled_for, backfill_id) IN ");
                read.push_tuples(rows, |mut b, r| {
                    b.push_bind(&r.workflow)
                        .push_bind(r.trigger_kind)
                        .push_bind(r.scheduled_for)
                        .push_bind(r.backfill_id);
                });
                read.build_query_scalar::<i64>().fetch_all(&mut *conn).await
            }
            Err(e) => Err(e),
        }
    };
    match inserted {
        Ok(ids) => Ok(Some(super::super::common::ids_in_insert_order(
            ids,
            rows.len(),
        )?)),
        Err(e) if is_duplicate_on(&e, "workflow_instance_slot") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn instance_latest_by_workflow(pool: &MySqlPool) -> Result<Vec<InstanceRow>> {
    Ok(sqlx::query_as(INSTANCE_LATEST_BY_WORKFLOW)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn instance_list(
    pool: &MySqlPool,
    f: &InstanceFilter,
) -> Result<Vec<InstanceRow>> {
    let dir = normalize_dir_prefix(f.dir_prefix.as_deref());
    Ok(sqlx::query_as(INSTANCE_LIST)
        .bind(&f.workflow)
        .bind(&f.workflow)
        .bind(f.status)
        .bind(f.status)
        .bind(f.since)
        .bind(f.since)
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
/// indexed predicates.
fn push_search(qb: &mut QueryBuilder<'_, MySql>, s: &InstanceSearch, paged: bool) {
    qb.push(" WHERE 1 = 1");
    if let Some(w) = &s.workflow {
        qb.push(" AND i.workflow = ").push_bind(w.clone());
    }
    if let Some(st) = s.status {
        qb.push(" AND i.status = ").push_bind(st.as_str());
    }
    if let Some(t) = s.trigger {
        qb.push(" AND i.trigger_kind = ").push_bind(t.as_str());
    }
    // as DATETIME: a TIMESTAMP parameter stops at 2038, so `until=2999-01-01` would match nothing
    if let Some(t) = s.created_from {
        qb.push(" AND i.created_at >= ").push_bind(t.naive_utc());
    }
    if let Some(t) = s.created_to {
        qb.push(" AND i.created_at < ").push_bind(t.naive_utc());
    }
    if let (true, Some(b)) = (paged, s.before_id) {
        qb.push(" AND i.id < ").push_bind(b.0);
    }
    if let Some(d) = normalize_dir_prefix(s.dir_prefix.as_deref()) {
        qb.push(" AND i.workflow IN (SELECT w.name FROM workflow w WHERE w.dir = ")
            .push_bind(d.clone())
            .push(" OR LEFT(w.dir, CHAR_LENGTH(")
            .push_bind(d.clone())
            .push(") + 1) = CONCAT(")
            .push_bind(d)
            .push(", '/'))");
    }
}

pub(super) async fn instance_search(
    pool: &MySqlPool,
    s: &InstanceSearch,
) -> Result<InstanceSearchPage> {
    let mut qb = QueryBuilder::new(concat!(
        "SELECT ",
        instance_cols!(),
        " FROM workflow_instance i"
    ));
    push_search(&mut qb, s, true);
    qb.push(" ORDER BY i.id DESC LIMIT ").push_bind(s.limit);
    let rows = qb.build_query_as().fetch_all(pool).await?;
    let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1 FROM workflow_instance i");
    push_search(&mut qb, s, false);
    qb.push(" LIMIT ").push_bind(s.count_up_to).push(") AS c");
    let total: i64 = qb.build_query_scalar().fetch_one(pool).await?;
    Ok(InstanceSearchPage { rows, total })
}

pub(super) async fn instance_lock_many(
    conn: &mut MySqlConnection,
    ids: &[InstanceId],
    skip_locked: bool,
) -> Result<Vec<(InstanceRow, DateTime<Utc>)>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    // InnoDB locks an IN list's rows in index order: ascending ids
    let mut qb = QueryBuilder::<MySql>::new(INSTANCE_LOCK_MANY);
    push_list(&mut qb, ids.iter().copied());
    qb.push(match skip_locked {
        false => " ORDER BY i.id FOR UPDATE",
        true => " ORDER BY i.id FOR UPDATE SKIP LOCKED",
    });
    let rows: Vec<LockedInstance> = qb.build_query_as().fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(|l| (l.row, l.db_now)).collect())
}

pub(super) async fn instance_pending_oldest(
    conn: &mut MySqlConnection,
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
    conn: &mut MySqlConnection,
    workflows: &[String],
) -> Result<Vec<String>> {
    if workflows.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<MySql>::new(
        "SELECT DISTINCT CAST(workflow AS CHAR) AS workflow FROM workflow_instance \
         WHERE status = 'pending' AND workflow IN ",
    );
    push_list(&mut qb, workflows.iter());
    Ok(qb.build_query_scalar().fetch_all(&mut *conn).await?)
}

pub(super) async fn instance_pending_workflows(
    pool: &MySqlPool,
    limit: i64,
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(i.workflow AS CHAR) AS workflow FROM workflow_instance i WHERE i.status = 'pending' \
         GROUP BY i.workflow ORDER BY i.workflow LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn instance_transition_many(
    conn: &mut MySqlConnection,
    ids: &[InstanceId],
    p: &InstanceTransition,
) -> Result<u64> {
    if p.from.is_empty() || ids.is_empty() {
        return Ok(0);
    }
    let mut qb = QueryBuilder::<MySql>::new("UPDATE workflow_instance SET status = ");
    qb.push_bind(p.to);
    qb.push(", started_at = COALESCE(");
    qb.push_bind(p.started_at);
    qb.push(", started_at), ended_at = ");
    qb.push_bind(p.ended_at);
    qb.push(", error = ");
    qb.push_bind(&p.error);
    qb.push(" WHERE id IN ");
    push_list(&mut qb, ids.iter().copied());
    qb.push(" AND status IN ");
    push_list(&mut qb, p.from.iter().copied());
    let r = qb.build().execute(&mut *conn).await?;
    Ok(r.rows_affected())
}

pub(super) async fn lease_extend_many(
    pool: &MySqlPool,
    worker_id: &str,
    ttl: Duration,
) -> Result<u64> {
    retrying(|| async move {
        let r = sqlx::query(
            "UPDATE task SET lease_until = DATE_ADD(NOW(6), INTERVAL ? MICROSECOND) \
             WHERE worker_id = ? AND status = 'running'",
        )
        .bind(micros(ttl))
        .bind(worker_id)
        .execute(pool)
        .await?;
        Ok(r.rows_affected())
    })
    .await
}

pub(super) async fn ready_tasks_due(pool: &MySqlPool, queues: &[String]) -> Result<bool> {
    let filter = match queues.len() {
        0 => String::new(),
        n => format!(" AND queue IN ({})", vec!["?"; n].join(", ")),
    };
    let sql = ready_due("NOW(6)", &filter);
    let mut query = sqlx::query_scalar(&sql);
    for q in queues {
        query = query.bind(q);
    }
    let due: i64 = query.fetch_one(pool).await?;
    Ok(due > 0)
}

/// One claim transaction outside pools: lock up to `limit` ready rows (skipping rows another
/// claimer holds), mark them running by primary key, and read what the worker needs.
pub(super) async fn task_claim_tx(
    pool: &MySqlPool,
    p: &TaskClaimParams,
    limit: i64,
) -> Result<Vec<ClaimedTask>> {
    let mut tx = pool.begin().await?;
    // One range read per queue: with `queue IN (...)` the index cannot give the ORDER BY, and
    // the server sorts every ready row of those queues on each claim (slower as the backlog
    // grows). Each queue yields its first `limit` rows in index order, all in one statement;
    // the best `limit` of them overall are claimed, the rest are unlocked at commit untouched.
    let mut select = QueryBuilder::<MySql>::new("");
    for (n, queue) in p.queues.iter().enumerate() {
        if n > 0 {
            select.push(" UNION ALL ");
        }
        select.push(
            "(SELECT priority, run_at, id FROM task WHERE status = 'ready' AND pool = '' AND queue = ",
        );
        select.push_bind(queue);
        select.push(" AND run_at <= NOW(6) ORDER BY priority DESC, run_at, id LIMIT ");
        select.push_bind(limit);
        select.push(" FOR UPDATE SKIP LOCKED)");
    }
    let mut candidates: Vec<(i64, DateTime<Utc>, i64)> =
        select.build_query_as().fetch_all(&mut *tx).await?;
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    candidates.truncate(limit.max(0) as usize);
    let ids: Vec<i64> = candidates.into_iter().map(|(_, _, id)| id).collect();
    if ids.is_empty() {
        tx.rollback().await?;
        return Ok(vec![]);
    }
    let claimed = mark_running(&mut tx, p, &ids).await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Marks the locked ready tasks `ids` running for this worker and reads what it needs to run them.
pub(super) async fn mark_running(
    conn: &mut MySqlConnection,
    p: &TaskClaimParams,
    ids: &[i64],
) -> Result<Vec<ClaimedTask>> {
    let mut update = QueryBuilder::<MySql>::new("UPDATE task SET status = 'running', worker_id = ");
    update.push_bind(&p.worker_id);
    update.push(
        ", attempt = attempt + 1, started_at = NOW(6), lease_until = DATE_ADD(NOW(6), INTERVAL ",
    );
    update.push_bind(micros(p.lease_ttl));
    update.push(" MICROSECOND), ended_at = NULL WHERE status = 'ready' AND id IN ");
    push_list(&mut update, ids.iter().copied());
    let updated = update.build().execute(&mut *conn).await?.rows_affected();
    debug_assert_eq!(updated, ids.len() as u64, "the claimed rows are locked");

    let mut read = QueryBuilder::<MySql>::new(TASK_CLAIM_RESULT);
    push_list(&mut read, ids.iter().copied());
    read.push(" ORDER BY t.priority DESC, t.id");
    Ok(read.build_query_as().fetch_all(&mut *conn).await?)
}

pub(super) async fn task_get(pool: &MySqlPool, id: TaskId) -> Result<Option<TaskRow>> {
    Ok(sqlx::query_as(TASK_GET)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// Inserts tasks and returns their ids in order: MariaDB returns them from the INSERT itself;
/// MySQL has no `RETURNING` (and its default `innodb_autoinc_lock_mode = 2` does not promise
/// consecutive ids), so it reads them back by `(instance_id, node)`.
pub(super) async fn task_insert_many(
    conn: &mut MySqlConnection,
    tasks: &[NewTask],
    returning: bool,
) -> Result<Vec<TaskId>> {
    if tasks.is_empty() {
        return Ok(vec![]);
    }
    let mut qb = super::super::common::task_insert::<MySql>(tasks, "NOW(6)");
    let returned = if returning {
        qb.push(" RETURNING instance_id, CAST(node AS CHAR) AS node, id");
        qb.build_query_as().fetch_all(&mut *conn).await?
    } else {
        qb.build().execute(&mut *conn).await?;
        let mut read = QueryBuilder::<MySql>::new(
            "SELECT instance_id, CAST(node AS CHAR) AS node, id FROM task WHERE instance_id IN ",
        );
        let mut instances: Vec<InstanceId> = tasks.iter().map(|t| t.instance_id).collect();
        instances.dedup();
        push_list(&mut read, instances);
        read.build_query_as().fetch_all(&mut *conn).await?
    };
    super::super::common::task_ids_in_order(tasks, returned)
}

pub(super) async fn task_kill_check(
    pool: &MySqlPool,
    worker_id: &str,
    ids: &[TaskId],
) -> Result<Vec<TaskId>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut qb = QueryBuilder::<MySql>::new("SELECT id FROM task WHERE id IN ");
    push_list(&mut qb, ids.iter().copied());
    qb.push(
        " AND (status <> 'running' OR kill_requested = 1 OR worker_id IS NULL OR worker_id <> ",
    );
    qb.push_bind(worker_id);
    qb.push(") ORDER BY id");
    Ok(qb.build_query_scalar().fetch_all(pool).await?)
}

pub(super) async fn task_lease_expired(pool: &MySqlPool, limit: i64) -> Result<Vec<TaskRow>> {
    Ok(sqlx::query_as(TASK_LEASE_EXPIRED)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn task_list(pool: &MySqlPool, instance: InstanceId) -> Result<Vec<TaskRow>> {
    Ok(sqlx::query_as(TASK_LIST)
        .bind(instance)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn task_list_many(
    conn: &mut MySqlConnection,
    ids: &[InstanceId],
) -> Result<Vec<TaskRow>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut qb = QueryBuilder::<MySql>::new(TASK_LIST_MANY);
    push_list(&mut qb, ids.iter().copied());
    qb.push(" ORDER BY t.instance_id, t.id");
    Ok(qb.build_query_as().fetch_all(&mut *conn).await?)
}

pub(super) async fn task_queue_depth(pool: &MySqlPool) -> Result<Vec<QueueDepth>> {
    Ok(sqlx::query_as(
        "SELECT CAST(queue AS CHAR) AS queue, \
         CAST(SUM(CASE WHEN status = 'ready' AND run_at <= NOW(6) THEN 1 ELSE 0 END) AS SIGNED) AS ready, \
         CAST(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS SIGNED) AS running \
         FROM task WHERE status IN ('ready', 'running') GROUP BY queue ORDER BY queue",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_request_kill(conn: &mut MySqlConnection, id: TaskId) -> Result<Cas> {
    let r =
        sqlx::query("UPDATE task SET kill_requested = TRUE WHERE id = ? AND status = 'running'")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn task_transition_many(
    conn: &mut MySqlConnection,
    ids: &[TaskId],
    p: &TaskTransition,
) -> Result<u64> {
    if p.from.is_empty() || ids.is_empty() {
        return Ok(0);
    }
    let mut qb = QueryBuilder::<MySql>::new("UPDATE task SET status = ");
    qb.push_bind(p.to);
    qb.push(", run_at = ");
    qb.push_bind(p.run_at);
    qb.push(", exit_code = ");
    qb.push_bind(p.exit_code);
    qb.push(", error = ");
    qb.push_bind(&p.error);
    qb.push(", kill_requested = ");
    qb.push_bind(p.kill_requested);
    qb.push(", max_attempts = COALESCE(");
    qb.push_bind(p.max_attempts);
    qb.push(", max_attempts), lost_attempts = COALESCE(");
    qb.push_bind(p.lost_attempts);
    qb.push(", lost_attempts), ended_at = ");
    qb.push_bind(p.ended_at);
    qb.push(", worker_id = NULL, lease_until = NULL WHERE id IN ");
    push_list(&mut qb, ids.iter().copied());
    qb.push(" AND status IN ");
    push_list(&mut qb, p.from.iter().copied());
    if let Some(f) = &p.fence {
        qb.push(" AND worker_id = ");
        qb.push_bind(&f.worker_id);
        qb.push(" AND attempt = ");
        qb.push_bind(f.attempt);
    }
    let r = qb.build().execute(&mut *conn).await?;
    Ok(r.rows_affected())
}
