//! PostgreSQL: workflow instances and their tasks: claims, leases, transitions.

use super::super::common::ready_due;
use super::*;

macro_rules! task_cols {
    () => {
        "id, instance_id, node, kind, status, attempt, max_attempts, retry_interval_s, timeout_s, queue, priority, \
         pool, pool_slots, \
         run_at, worker_id, lease_until, kill_requested, exit_code, error, created_at, started_at, ended_at, lost_attempts"
    };
}

macro_rules! instance_cols {
    () => {
        "id, workflow, workflow_version, status, params, trigger_kind, scheduled_for, parent_instance_id, parent_task_id, error, \
         created_by, created_at, started_at, ended_at, backfill_id"
    };
}

/// `workflow` lies in the dir prefix bound as `$n` (NULL: everywhere); see [`dir_in_scope`].
macro_rules! in_dir {
    ($n:literal) => {
        concat!(
            "(",
            $n,
            "::text IS NULL OR workflow IN (SELECT name FROM workflow WHERE dir = ",
            $n,
            " OR left(dir, length(",
            $n,
            ") + 1) = ",
            $n,
            " || '/'))"
        )
    };
}

const INSTANCE_GET: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance WHERE id = $1"
);

const INSTANCE_LIST: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance WHERE ($1::text IS NULL OR workflow = $1) AND ($2::text IS NULL OR status = $2) \
     AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::bigint IS NULL OR id < $4) AND ",
    in_dir!("$6"),
    " ORDER BY id DESC LIMIT $5"
);

const INSTANCE_COUNT_BY_DAY: &str = concat!(
    "SELECT to_char(COALESCE(ended_at, created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, status, \
     COUNT(*) AS count FROM workflow_instance WHERE COALESCE(ended_at, created_at) >= $1 AND ",
    in_dir!("$2"),
    " GROUP BY 1, 2 ORDER BY 1, 2"
);

const INSTANCE_LATEST_BY_WORKFLOW: &str = concat!(
    "SELECT ",
    instance_cols!(),
    " FROM workflow_instance WHERE id IN (SELECT MAX(id) FROM workflow_instance GROUP BY workflow) \
     ORDER BY workflow COLLATE \"C\""
);

/// The instance row locked, with the clock read by the outer query: after the locked row was returned (now() is
/// when the transaction began, and a projection inside the locking scan may run before the wait).
/// The rows are locked in id order (the sort runs below the lock).
macro_rules! instance_lock_sql {
    ($lock:literal) => {
        concat!(
            "WITH l AS (SELECT ",
            instance_cols!(),
            " FROM workflow_instance WHERE id = ANY($1) ORDER BY id ",
            $lock,
            ") SELECT l.*, clock_timestamp() AS db_now FROM l ORDER BY l.id"
        )
    };
}

const INSTANCE_LOCK_MANY: &str = instance_lock_sql!("FOR UPDATE");
const INSTANCE_LOCK_FREE: &str = instance_lock_sql!("FOR UPDATE SKIP LOCKED");

// The picked ids are MATERIALIZED: as a plain `id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` the
// planner may rescan the subquery and claim more than `n` rows.
/// One index range per queue (LATERAL), merged and cut to the limit: with `queue = ANY(...)` the
/// index cannot give the ORDER BY and every ready row of those queues would be sorted per claim.
/// Only tasks outside any pool: pooled ones are claimed under their pool's lock (`pools.rs`).
/// `{limit}` is replaced by the number of rows to claim, written into the text rather than bound:
/// with `LIMIT $n` the generic plan is costed for an unknown limit, never wins over a custom one,
/// and every claim would be planned again. One prepared statement per limit (at most the slots).
const TASK_CLAIM: &str = "WITH picked AS MATERIALIZED ( \
     SELECT c.id FROM unnest($3::text[]) AS q(queue) CROSS JOIN LATERAL ( \
     SELECT id, priority, run_at FROM task WHERE status = 'ready' AND pool = '' AND queue = q.queue \
     AND run_at <= now() ORDER BY priority DESC, run_at, id LIMIT {limit} FOR UPDATE SKIP LOCKED) c \
     ORDER BY c.priority DESC, c.run_at, c.id LIMIT {limit}), \
     claimed AS ( \
     UPDATE task t SET status = 'running', worker_id = $1, attempt = t.attempt + 1, started_at = now(), \
     lease_until = now() + $2 * interval '1 microsecond', ended_at = NULL \
     FROM picked p WHERE t.id = p.id AND t.status = 'ready' \
     RETURNING t.id, t.instance_id, t.node, t.kind, t.attempt, t.timeout_s, t.priority, t.started_at) \
     SELECT c.id, c.instance_id, c.node, c.kind, c.attempt, c.timeout_s, i.workflow, i.workflow_version, \
     i.params, i.scheduled_for, c.started_at FROM claimed c JOIN workflow_instance i ON i.id = c.instance_id \
     ORDER BY c.priority DESC, c.id";

const TASK_GET: &str = concat!("SELECT ", task_cols!(), " FROM task WHERE id = $1");

const TASK_LEASE_EXPIRED: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task WHERE status = 'running' AND lease_until < now() ORDER BY id LIMIT $1"
);

const TASK_LIST: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task WHERE instance_id = $1 ORDER BY id"
);

const TASK_LIST_MANY: &str = concat!(
    "SELECT ",
    task_cols!(),
    " FROM task WHERE instance_id = ANY($1) ORDER BY instance_id, id"
);

pub(super) async fn instance_children_active(
    conn: &mut PgConnection,
    parent: InstanceId,
) -> Result<Vec<InstanceId>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM workflow_instance WHERE parent_instance_id = $1 AND status IN ('pending', 'running') ORDER BY id",
    )
    .bind(parent)
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn instance_count_by_day(
    pool: &PgPool,
    since: DateTime<Utc>,
    dir_prefix: Option<&str>,
) -> Result<Vec<DayCount>> {
    Ok(sqlx::query_as(INSTANCE_COUNT_BY_DAY)
        .bind(since)
        .bind(normalize_dir_prefix(dir_prefix))
        .fetch_all(pool)
        .await?)
}

pub(super) async fn instance_count_running_many(
    conn: &mut PgConnection,
    workflows: &[String],
) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT workflow, COUNT(*) FROM workflow_instance WHERE status = 'running' \
         AND workflow = ANY($1) GROUP BY workflow",
    )
    .bind(workflows)
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn instance_get(pool: &PgPool, id: InstanceId) -> Result<Option<InstanceRow>> {
    Ok(sqlx::query_as(INSTANCE_GET)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn instance_insert_many(
    conn: &mut PgConnection,
    rows: &[NewInstance],
) -> Result<Option<Vec<InstanceId>>> {
    if rows.is_empty() {
        return Ok(Some(vec![]));
    }
    // ON CONFLICT, not a caught unique violation: an error would abort a PostgreSQL transaction
    let mut qb =
        super::super::common::instance_insert::<Postgres, _>(rows, "now()", std::convert::identity);
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
            sqlx::QueryBuilder::<Postgres>::new("DELETE FROM workflow_instance WHERE id IN ");
        undo.push_tuples(ids, |mut b, id| {
            b.push_bind(id);
        });
        undo.build().execute(&mut *conn).await?;
    }
    Ok(None)
}

pub(super) async fn instance_latest_by_workflow(pool: &PgPool) -> Result<Vec<InstanceRow>> {
    Ok(sqlx::query_as(INSTANCE_LATEST_BY_WORKFLOW)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn instance_list(pool: &PgPool, f: &InstanceFilter) -> Result<Vec<InstanceRow>> {
    Ok(sqlx::query_as(INSTANCE_LIST)
        .bind(&f.workflow)
        .bind(f.status)
        .bind(f.since)
        .bind(f.before_id)
        .bind(f.limit)
        .bind(normalize_dir_prefix(f.dir_prefix.as_deref()))
        .fetch_all(pool)
        .await?)
}

/// The instances list's WHERE: only the given filters, so each combination is a plain AND of
/// indexed predicates (a generic plan for `$1 IS NULL OR` would hide the index).
fn push_search(qb: &mut QueryBuilder<'_, Postgres>, s: &InstanceSearch, paged: bool) {
    qb.push(" WHERE TRUE");
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
        qb.push(" AND created_at >= ").push_bind(t);
    }
    if let Some(t) = s.created_to {
        qb.push(" AND created_at < ").push_bind(t);
    }
    if let (true, Some(b)) = (paged, s.before_id) {
        qb.push(" AND id < ").push_bind(b.0);
    }
    if let Some(d) = normalize_dir_prefix(s.dir_prefix.as_deref()) {
        qb.push(" AND workflow IN (SELECT name FROM workflow WHERE dir = ")
            .push_bind(d.clone())
            .push(" OR left(dir, length(")
            .push_bind(d.clone())
            .push(") + 1) = ")
            .push_bind(d)
            .push(" || '/')");
    }
}

pub(super) async fn instance_search(
    pool: &PgPool,
    s: &InstanceSearch,
) -> Result<InstanceSearchPage> {
    let mut qb = QueryBuilder::new(concat!(
        "SELECT ",
        instance_cols!(),
        " FROM workflow_instance"
    ));
    push_search(&mut qb, s, true);
    qb.push(" ORDER BY id DESC LIMIT ").push_bind(s.limit);
    let rows = qb.build_query_as().fetch_all(pool).await?;
    let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM (SELECT 1 FROM workflow_instance");
    push_search(&mut qb, s, false);
    qb.push(" LIMIT ").push_bind(s.count_up_to).push(") AS c");
    let total: i64 = qb.build_query_scalar().fetch_one(pool).await?;
    Ok(InstanceSearchPage { rows, total })
}

pub(super) async fn instance_lock_many(
    conn: &mut PgConnection,
    ids: &[InstanceId],
    skip_locked: bool,
) -> Result<Vec<(InstanceRow, DateTime<Utc>)>> {
    let sql = match skip_locked {
        false => INSTANCE_LOCK_MANY,
        true => INSTANCE_LOCK_FREE,
    };
    let rows: Vec<LockedInstance> = sqlx::query_as(sql)
        .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|l| (l.row, l.db_now)).collect())
}

pub(super) async fn instance_pending_oldest(
    conn: &mut PgConnection,
    workflow: &str,
    limit: i64,
) -> Result<Vec<InstanceId>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM workflow_instance WHERE workflow = $1 AND status = 'pending' ORDER BY id LIMIT $2",
    )
    .bind(workflow)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn instance_pending_among(
    conn: &mut PgConnection,
    workflows: &[String],
) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT workflow FROM workflow_instance WHERE status = 'pending' AND workflow = ANY($1)",
    )
    .bind(workflows)
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn instance_pending_workflows(pool: &PgPool, limit: i64) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT workflow FROM workflow_instance WHERE status = 'pending' GROUP BY workflow \
         ORDER BY workflow COLLATE \"C\" LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// The guarded instance change (6 parameters; see [`renumbered`]).
const INSTANCE_UPDATE: &str = "UPDATE workflow_instance SET status = $1, \
     started_at = COALESCE($2, started_at), ended_at = $3, error = $4 \
     WHERE id = ANY($5) AND status = ANY($6)";

fn instance_update_bind<'q>(
    q: PgQuery<'q>,
    ids: &[InstanceId],
    p: &'q InstanceTransition,
) -> PgQuery<'q> {
    q.bind(p.to)
        .bind(p.started_at)
        .bind(p.ended_at)
        .bind(&p.error)
        .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
        .bind(p.from.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

pub(super) async fn instance_transition_many(
    conn: &mut PgConnection,
    ids: &[InstanceId],
    p: &InstanceTransition,
) -> Result<u64> {
    let r = instance_update_bind(sqlx::query(INSTANCE_UPDATE), ids, p)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

pub(super) async fn lease_extend_many(
    pool: &PgPool,
    worker_id: &str,
    ttl: Duration,
) -> Result<u64> {
    let r = sqlx::query(
        "UPDATE task SET lease_until = now() + $1 * interval '1 microsecond' \
         WHERE worker_id = $2 AND status = 'running'",
    )
    .bind(micros(ttl))
    .bind(worker_id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

pub(super) async fn ready_tasks_due(pool: &PgPool, queues: &[String]) -> Result<bool> {
    let filter = if queues.is_empty() {
        ""
    } else {
        " AND queue = ANY($1)"
    };
    let sql = ready_due("now()", filter);
    let mut query = sqlx::query_scalar(&sql);
    if !queues.is_empty() {
        query = query.bind(queues);
    }
    let due: i64 = query.fetch_one(pool).await?;
    Ok(due > 0)
}

pub(super) async fn task_claim(pool: &PgPool, p: &TaskClaimParams) -> Result<Vec<ClaimedTask>> {
    // pooled tasks first (only when pools exist): the unpooled claim below could otherwise fill
    // every free slot while tasks that wait for a pool slot starve
    let mut claimed = if p.pools.is_empty() || p.limit <= 0 {
        vec![]
    } else {
        super::pools::claim(pool, p).await?
    };
    let left = p.limit.max(0) - claimed.len() as i64;
    if left > 0 {
        let sql = TASK_CLAIM.replace("{limit}", &left.to_string());
        let unpooled: Result<Vec<ClaimedTask>, sqlx::Error> = sqlx::query_as(&sql)
            .bind(&p.worker_id)
            .bind(micros(p.lease_ttl))
            .bind(&p.queues)
            .fetch_all(pool)
            .await;
        match unpooled {
            Ok(more) => claimed.extend(more),
            // the pooled claims are committed: the worker must run them
            Err(e) if !claimed.is_empty() => {
                tracing::warn!(error = %e, "claim outside pools failed after a pooled claim")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(claimed)
}

pub(super) async fn task_get(pool: &PgPool, id: TaskId) -> Result<Option<TaskRow>> {
    Ok(sqlx::query_as(TASK_GET)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn task_insert_many(
    conn: &mut PgConnection,
    tasks: &[NewTask],
) -> Result<Vec<TaskId>> {
    if tasks.is_empty() {
        return Ok(vec![]);
    }
    let mut qb = super::super::common::task_insert::<Postgres>(tasks, "now()");
    qb.push(" RETURNING instance_id, node, id");
    let returned = qb.build_query_as().fetch_all(&mut *conn).await?;
    super::super::common::task_ids_in_order(tasks, returned)
}

pub(super) async fn task_kill_check(
    pool: &PgPool,
    worker_id: &str,
    ids: &[TaskId],
) -> Result<Vec<TaskId>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_scalar(
        "SELECT id FROM task WHERE id = ANY($1) \
         AND (status <> 'running' OR kill_requested OR worker_id IS NULL OR worker_id <> $2) ORDER BY id",
    )
    .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
    .bind(worker_id)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_lease_expired(pool: &PgPool, limit: i64) -> Result<Vec<TaskRow>> {
    Ok(sqlx::query_as(TASK_LEASE_EXPIRED)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn task_list(pool: &PgPool, instance: InstanceId) -> Result<Vec<TaskRow>> {
    Ok(sqlx::query_as(TASK_LIST)
        .bind(instance)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn task_list_many(
    conn: &mut PgConnection,
    ids: &[InstanceId],
) -> Result<Vec<TaskRow>> {
    Ok(sqlx::query_as(TASK_LIST_MANY)
        .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await?)
}

// one read per status: each uses its partial index, where `status IN (...)` would read the table
pub(super) async fn task_queue_depth(pool: &PgPool) -> Result<Vec<QueueDepth>> {
    Ok(sqlx::query_as(
        "SELECT queue, SUM(ready)::bigint AS ready, SUM(running)::bigint AS running FROM ( \
         SELECT queue, CASE WHEN run_at <= now() THEN 1 ELSE 0 END AS ready, 0 AS running \
         FROM task WHERE status = 'ready' \
         UNION ALL SELECT queue, 0, 1 FROM task WHERE status = 'running') depth \
         GROUP BY queue ORDER BY queue",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn task_request_kill(conn: &mut PgConnection, id: TaskId) -> Result<Cas> {
    let r =
        sqlx::query("UPDATE task SET kill_requested = TRUE WHERE id = $1 AND status = 'running'")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

/// The guarded task change (12 parameters; see [`renumbered`]).
const TASK_UPDATE: &str = "UPDATE task SET status = $1, run_at = $2, exit_code = $3, error = $4, \
     kill_requested = $5, max_attempts = COALESCE($6, max_attempts), ended_at = $7, \
     worker_id = NULL, lease_until = NULL, lost_attempts = COALESCE($12, lost_attempts) \
     WHERE id = ANY($8) AND status = ANY($9) \
     AND ($10::text IS NULL OR worker_id = $10) AND ($11::bigint IS NULL OR attempt = $11)";

fn task_update_bind<'q>(q: PgQuery<'q>, ids: &[TaskId], p: &'q TaskTransition) -> PgQuery<'q> {
    let (fence_worker, fence_attempt) = match &p.fence {
        Some(f) => (Some(f.worker_id.as_str()), Some(f.attempt)),
        None => (None, None),
    };
    q.bind(p.to)
        .bind(p.run_at)
        .bind(p.exit_code)
        .bind(&p.error)
        .bind(p.kill_requested)
        .bind(p.max_attempts)
        .bind(p.ended_at)
        .bind(ids.iter().map(|i| i.0).collect::<Vec<_>>())
        .bind(p.from.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        .bind(fence_worker)
        .bind(fence_attempt)
        .bind(p.lost_attempts)
}

pub(super) async fn task_transition_many(
    conn: &mut PgConnection,
    ids: &[TaskId],
    p: &TaskTransition,
) -> Result<u64> {
    let r = task_update_bind(sqlx::query(TASK_UPDATE), ids, p)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected())
}

/// Every run of `c` as one data-modifying `WITH` and the pending check in the same statement:
/// one round trip and one plan for a batch's task ends, its instances' ends and the check, instead
/// of one each. `None` when that statement could not say what separate ones would: a row in two
/// runs (each part of one statement sees the rows as they were before it), or a single part.
pub(super) async fn changes_write(
    conn: &mut PgConnection,
    c: &Changes,
) -> Result<Option<ChangesWritten>> {
    let parts = c.tasks.len() + c.instances.len() + usize::from(!c.pending_of.is_empty());
    let disjoint = |mut all: Vec<i64>| {
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        all.len() == n
    };
    if parts < 2
        || !disjoint(
            c.tasks
                .iter()
                .flat_map(|(ids, _)| ids.iter().map(|i| i.0))
                .collect(),
        )
        || !disjoint(
            c.instances
                .iter()
                .flat_map(|(ids, _)| ids.iter().map(|i| i.0))
                .collect(),
        )
    {
        return Ok(None);
    }
    let mut ctes = Vec::new();
    let mut base = 0;
    for k in 0..c.tasks.len() {
        ctes.push(format!(
            "t{k} AS ({} RETURNING 1)",
            renumbered(TASK_UPDATE, base)
        ));
        base += 12;
    }
    for k in 0..c.instances.len() {
        ctes.push(format!(
            "i{k} AS ({} RETURNING 1)",
            renumbered(INSTANCE_UPDATE, base)
        ));
        base += 6;
    }
    let counts = |prefix: &str, n: usize| {
        if n == 0 {
            "'{}'::bigint[]".to_string()
        } else {
            let each: Vec<String> = (0..n)
                .map(|k| format!("(SELECT COUNT(*) FROM {prefix}{k})"))
                .collect();
            format!("ARRAY[{}]::bigint[]", each.join(", "))
        }
    };
    let pending = if c.pending_of.is_empty() {
        "'{}'::text[]".to_string()
    } else {
        format!(
            "ARRAY(SELECT DISTINCT workflow FROM workflow_instance WHERE status = 'pending' \
             AND workflow = ANY(${}))",
            base + 1
        )
    };
    let with = if ctes.is_empty() {
        String::new()
    } else {
        format!("WITH {} ", ctes.join(", "))
    };
    let sql = format!(
        "{with}SELECT {} AS tasks, {} AS instances, {pending} AS pending",
        counts("t", c.tasks.len()),
        counts("i", c.instances.len()),
    );
    let mut q = sqlx::query(&sql);
    for (ids, t) in &c.tasks {
        q = task_update_bind(q, ids, t);
    }
    for (ids, t) in &c.instances {
        q = instance_update_bind(q, ids, t);
    }
    if !c.pending_of.is_empty() {
        q = q.bind(&c.pending_of);
    }
    let row = q.fetch_one(&mut *conn).await?;
    let count = |v: Vec<i64>| v.into_iter().map(|n| n as u64).collect();
    Ok(Some(ChangesWritten {
        tasks: count(sqlx::Row::try_get(&row, "tasks")?),
        instances: count(sqlx::Row::try_get(&row, "instances")?),
        pending: sqlx::Row::try_get(&row, "pending")?,
    }))
}
