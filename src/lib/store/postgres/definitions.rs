//! PostgreSQL: workflows, their versions, coordinators and their dependencies, db and file links.

use super::*;

macro_rules! coordinator_cols {
    () => {
        "c.workflow, c.cron, c.timezone, c.depends, c.params, c.enabled, c.start_time, c.end_time, c.next_fire_at, \
         c.last_fire_at, c.catchup, c.max_catchup, c.calendar"
    };
}

macro_rules! workflow_cols {
    () => {
        "name, version, content_hash, source_xml, definition, file_path, dir, creator, description, mail_level, \
         mail_receivers, instance_limit, enabled, created_at, updated_at"
    };
}

macro_rules! head_cols {
    () => {
        "name, version, content_hash, enabled, instance_limit, file_path, rolled_back_to"
    };
}

/// Coordinators `c` whose cron slots fire: the due read and the next-due read share it.
macro_rules! cron_firing {
    () => {
        "c.enabled AND c.cron IS NOT NULL \
         AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled)"
    };
}

const COORDINATOR_DUE: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE ",
    cron_firing!(),
    " AND c.next_fire_at <= now() ORDER BY c.next_fire_at, c.workflow COLLATE \"C\" LIMIT $1"
);

const COORDINATOR_GET: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.workflow = $1"
);

const COORDINATOR_NEEDS_NEXT: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled AND c.cron IS NOT NULL AND c.next_fire_at IS NULL \
     ORDER BY c.workflow COLLATE \"C\" LIMIT $1"
);

const COORDINATOR_DEPS_READY: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled AND c.cron IS NULL \
     AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled) \
     AND EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow) \
     AND NOT EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow AND d.satisfied_at IS NULL) \
     ORDER BY c.workflow COLLATE \"C\" LIMIT $1"
);

const COORDINATOR_LIST_ALL: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c ORDER BY c.workflow COLLATE \"C\""
);

const WORKFLOW_GET: &str = concat!(
    "SELECT ",
    workflow_cols!(),
    ", rolled_back_to FROM workflow WHERE name = $1"
);

const WORKFLOW_LIST: &str = concat!(
    "SELECT ",
    workflow_cols!(),
    " FROM workflow ORDER BY dir COLLATE \"C\", name COLLATE \"C\""
);

const WORKFLOW_HEADS: &str = concat!(
    "SELECT ",
    head_cols!(),
    " FROM workflow ORDER BY name COLLATE \"C\""
);

const WORKFLOW_LOCK_MANY: &str = concat!(
    "SELECT ",
    head_cols!(),
    " FROM workflow WHERE name = ANY($1) ORDER BY name COLLATE \"C\" FOR UPDATE"
);

pub(super) async fn coordinator_delete(conn: &mut PgConnection, workflow: &str) -> Result<()> {
    sqlx::query("DELETE FROM coordinator_depend WHERE workflow = $1")
        .bind(workflow)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM coordinator WHERE workflow = $1")
        .bind(workflow)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn coordinator_depend_clear(
    conn: &mut PgConnection,
    workflow: &str,
    expected: usize,
) -> Result<Cas> {
    // Lock the satisfied rows first, so a concurrent satisfy cannot slip in between the count and
    // the clear.
    let satisfied: Vec<String> = sqlx::query_scalar(
        "SELECT upstream FROM coordinator_depend WHERE workflow = $1 AND satisfied_at IS NOT NULL FOR UPDATE",
    )
    .bind(workflow)
    .fetch_all(&mut *conn)
    .await?;
    if satisfied.len() != expected {
        return Ok(Cas::Stale);
    }
    sqlx::query(
        "UPDATE coordinator_depend SET satisfied_at = NULL, satisfied_instance_id = NULL \
         WHERE workflow = $1 AND satisfied_at IS NOT NULL",
    )
    .bind(workflow)
    .execute(&mut *conn)
    .await?;
    Ok(Cas::Applied)
}

pub(super) async fn coordinator_depend_list(
    pool: &PgPool,
    workflow: &str,
) -> Result<Vec<DependRow>> {
    Ok(sqlx::query_as(
        "SELECT workflow, upstream, satisfied_at, satisfied_instance_id FROM coordinator_depend \
         WHERE workflow = $1 ORDER BY upstream COLLATE \"C\"",
    )
    .bind(workflow)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn coordinator_depend_satisfy_many(
    conn: &mut PgConnection,
    satisfied: &[(String, InstanceId)],
) -> Result<u64> {
    let last = last_per_upstream(satisfied);
    if last.is_empty() {
        return Ok(0);
    }
    let r = sqlx::query(
        "UPDATE coordinator_depend d SET satisfied_at = now(), satisfied_instance_id = v.id \
         FROM unnest($1::text[], $2::bigint[]) AS v(upstream, id) WHERE d.upstream = v.upstream",
    )
    .bind(last.keys().copied().collect::<Vec<_>>())
    .bind(last.values().map(|i| i.0).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

pub(super) async fn coordinator_depend_set(
    conn: &mut PgConnection,
    workflow: &str,
    upstreams: &[String],
) -> Result<()> {
    sqlx::query("DELETE FROM coordinator_depend WHERE workflow = $1 AND NOT (upstream = ANY($2))")
        .bind(workflow)
        .bind(upstreams)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO coordinator_depend (workflow, upstream) SELECT $1, u FROM unnest($2::text[]) AS u \
         ON CONFLICT (workflow, upstream) DO NOTHING",
    )
    .bind(workflow)
    .bind(upstreams)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn coordinator_deps_ready(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_DEPS_READY)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn coordinator_due(pool: &PgPool, limit: i64) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_DUE)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn coordinator_next_due_micros(pool: &PgPool) -> Result<Option<i64>> {
    // walked in `coordinator_due` index order to the first row
    Ok(sqlx::query_scalar(concat!(
        "SELECT (EXTRACT(EPOCH FROM c.next_fire_at - now()) * 1000000)::BIGINT FROM coordinator c \
         WHERE ",
        cron_firing!(),
        " AND c.next_fire_at IS NOT NULL ORDER BY c.next_fire_at LIMIT 1"
    ))
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn coordinator_fire_many(
    conn: &mut PgConnection,
    fires: &[CoordinatorFire],
) -> Result<u64> {
    if fires.is_empty() {
        return Ok(0);
    }
    let r = sqlx::query(
        "UPDATE coordinator c SET next_fire_at = f.next, last_fire_at = COALESCE(f.fired, c.last_fire_at) \
         FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[]) \
           AS f(workflow, expected, next, fired) \
         WHERE c.workflow = f.workflow AND c.next_fire_at = f.expected",
    )
    .bind(fires.iter().map(|f| f.workflow.as_str()).collect::<Vec<_>>())
    .bind(fires.iter().map(|f| f.expected).collect::<Vec<_>>())
    .bind(fires.iter().map(|f| f.next).collect::<Vec<_>>())
    .bind(fires.iter().map(|f| f.fired).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

pub(super) async fn coordinator_get(
    pool: &PgPool,
    workflow: &str,
) -> Result<Option<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_GET)
        .bind(workflow)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn coordinator_list(pool: &PgPool) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_LIST_ALL).fetch_all(pool).await?)
}

pub(super) async fn coordinator_list_all(conn: &mut PgConnection) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_LIST_ALL)
        .fetch_all(&mut *conn)
        .await?)
}

pub(super) async fn coordinator_needs_next(
    pool: &PgPool,
    limit: i64,
) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_NEEDS_NEXT)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn coordinator_set_next(
    pool: &PgPool,
    workflow: &str,
    next: Option<DateTime<Utc>>,
) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE coordinator SET next_fire_at = $1 WHERE workflow = $2 AND next_fire_at IS NULL",
    )
    .bind(next)
    .bind(workflow)
    .execute(pool)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn coordinator_upsert(conn: &mut PgConnection, c: &CoordinatorRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO coordinator (workflow, cron, timezone, depends, params, enabled, start_time, end_time, \
         next_fire_at, last_fire_at, catchup, max_catchup, calendar, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now()) \
         ON CONFLICT (workflow) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, \
         depends = excluded.depends, params = excluded.params, enabled = excluded.enabled, \
         start_time = excluded.start_time, end_time = excluded.end_time, next_fire_at = excluded.next_fire_at, \
         last_fire_at = excluded.last_fire_at, catchup = excluded.catchup, max_catchup = excluded.max_catchup, \
         calendar = excluded.calendar, updated_at = excluded.updated_at",
    )
    .bind(&c.workflow)
    .bind(&c.cron)
    .bind(&c.timezone)
    .bind(&c.depends)
    .bind(&c.params)
    .bind(c.enabled)
    .bind(c.start_time)
    .bind(c.end_time)
    .bind(c.next_fire_at)
    .bind(c.last_fire_at)
    .bind(&c.catchup)
    .bind(c.max_catchup)
    .bind(&c.calendar)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn db_link_delete(conn: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM db_link WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn db_link_get(pool: &PgPool, name: &str) -> Result<Option<DbLink>> {
    let row: Option<StoredDbLink> = sqlx::query_as(
        "SELECT name, kind, url, username, password, properties, pool FROM db_link WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(DbLink::try_from).transpose()
}

pub(super) async fn db_link_list(pool: &PgPool) -> Result<Vec<DbLinkRow>> {
    Ok(sqlx::query_as(
        "SELECT name, kind, url, username, properties, pool, updated_at FROM db_link ORDER BY name COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn db_link_names(conn: &mut PgConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM db_link ORDER BY name COLLATE \"C\"")
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub(super) async fn db_link_upsert(conn: &mut PgConnection, l: &DbLink) -> Result<()> {
    sqlx::query(
        "INSERT INTO db_link (name, kind, url, username, password, properties, pool, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
         url = excluded.url, username = excluded.username, password = excluded.password, \
         properties = excluded.properties, pool = excluded.pool, updated_at = excluded.updated_at \
         WHERE (db_link.kind, db_link.url, db_link.username, db_link.password, db_link.properties, db_link.pool) \
         IS DISTINCT FROM (excluded.kind, excluded.url, excluded.username, excluded.password, excluded.properties, \
         excluded.pool)",
    )
    .bind(&l.name)
    .bind(l.kind.as_str())
    .bind(&l.url)
    .bind(&l.username)
    .bind(&l.password)
    .bind(json_list(&l.properties))
    .bind(l.pool.as_deref().unwrap_or(""))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn file_link_delete(conn: &mut PgConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM file_link WHERE name = $1")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn file_link_get(pool: &PgPool, name: &str) -> Result<Option<FileLink>> {
    let row: Option<StoredFileLink> = sqlx::query_as(
        "SELECT name, kind, host, port, username, password, description FROM file_link WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(FileLink::try_from).transpose()
}

pub(super) async fn file_link_list(pool: &PgPool) -> Result<Vec<FileLinkRow>> {
    Ok(sqlx::query_as(
        "SELECT name, kind, host, port, username, description, updated_at FROM file_link \
         ORDER BY name COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn file_link_names(conn: &mut PgConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM file_link ORDER BY name COLLATE \"C\"")
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub(super) async fn file_link_upsert(conn: &mut PgConnection, l: &FileLink) -> Result<()> {
    sqlx::query(
        "INSERT INTO file_link (name, kind, host, port, username, password, description, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
         host = excluded.host, port = excluded.port, username = excluded.username, \
         password = excluded.password, description = excluded.description, updated_at = excluded.updated_at \
         WHERE (file_link.kind, file_link.host, file_link.port, file_link.username, file_link.password, file_link.description) \
         IS DISTINCT FROM (excluded.kind, excluded.host, excluded.port, excluded.username, excluded.password, excluded.description)",
    )
    .bind(&l.name)
    .bind(l.kind.as_str())
    .bind(&l.host)
    .bind(i64::from(l.port))
    .bind(&l.username)
    .bind(&l.password)
    .bind(&l.description)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn workflow_definition(
    conn: &mut PgConnection,
    name: &str,
    version: i64,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT definition FROM workflow_version WHERE workflow = $1 AND version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(conn)
    .await?)
}

pub(super) async fn workflow_definitions_current(
    pool: &PgPool,
    names: &[String],
) -> Result<Vec<(String, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT w.name, w.version, v.definition FROM workflow w \
         JOIN workflow_version v ON v.workflow = w.name AND v.version = w.version \
         WHERE w.name = ANY($1)",
    )
    .bind(names)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn workflow_get(pool: &PgPool, name: &str) -> Result<Option<WorkflowRow>> {
    Ok(sqlx::query_as(WORKFLOW_GET)
        .bind(name)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn workflow_heads(conn: &mut PgConnection) -> Result<Vec<WorkflowHead>> {
    Ok(sqlx::query_as(WORKFLOW_HEADS).fetch_all(&mut *conn).await?)
}

pub(super) async fn workflow_list(pool: &PgPool) -> Result<Vec<WorkflowRow>> {
    Ok(sqlx::query_as(WORKFLOW_LIST).fetch_all(pool).await?)
}

pub(super) async fn workflow_lock_many(
    conn: &mut PgConnection,
    names: &[String],
) -> Result<Vec<WorkflowHead>> {
    Ok(sqlx::query_as(WORKFLOW_LOCK_MANY)
        .bind(names)
        .fetch_all(&mut *conn)
        .await?)
}

pub(super) async fn workflow_set_enabled(
    conn: &mut PgConnection,
    name: &str,
    enabled: bool,
) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE workflow SET enabled = $1, updated_at = now() WHERE name = $2 AND enabled <> $1",
    )
    .bind(enabled)
    .bind(name)
    .execute(&mut *conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn workflow_set_rolled_back(
    conn: &mut PgConnection,
    name: &str,
    to: Option<i64>,
) -> Result<()> {
    sqlx::query("UPDATE workflow SET rolled_back_to = $1 WHERE name = $2")
        .bind(to)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn workflow_upsert(conn: &mut PgConnection, w: &WorkflowUpsert) -> Result<()> {
    // A version already recorded keeps its first content, like SQLite's INSERT OR IGNORE.
    sqlx::query(
        "INSERT INTO workflow_version (workflow, version, content_hash, source_xml, definition, created_at) \
         VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (workflow, version) DO NOTHING",
    )
    .bind(&w.name)
    .bind(w.version)
    .bind(&w.content_hash)
    .bind(&w.source_xml)
    .bind(&w.definition)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO workflow (name, version, content_hash, source_xml, definition, file_path, dir, creator, \
         description, mail_level, mail_receivers, instance_limit, enabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), now()) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, content_hash = excluded.content_hash, \
         source_xml = excluded.source_xml, definition = excluded.definition, file_path = excluded.file_path, \
         dir = excluded.dir, creator = excluded.creator, description = excluded.description, \
         mail_level = excluded.mail_level, mail_receivers = excluded.mail_receivers, \
         instance_limit = excluded.instance_limit, enabled = excluded.enabled, updated_at = excluded.updated_at",
    )
    .bind(&w.name)
    .bind(w.version)
    .bind(&w.content_hash)
    .bind(&w.source_xml)
    .bind(&w.definition)
    .bind(&w.file_path)
    .bind(&w.dir)
    .bind(&w.creator)
    .bind(&w.description)
    .bind(&w.mail_level)
    .bind(&w.mail_receivers)
    .bind(w.instance_limit)
    .bind(w.enabled)
    .execute(&mut *conn)
    .await?;
    // its own statement: the retention is read only by the pruner
    sqlx::query("UPDATE workflow SET retention_days = $1 WHERE name = $2")
        .bind(w.retention_days)
        .bind(&w.name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn workflow_versions(
    pool: &PgPool,
    name: &str,
) -> Result<Vec<WorkflowVersionRow>> {
    Ok(sqlx::query_as(
        "SELECT version, content_hash, source_xml, created_at FROM workflow_version WHERE workflow = $1 ORDER BY version",
    )
    .bind(name)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn definition_sync_list(pool: &PgPool) -> Result<Vec<DefinitionSyncRow>> {
    Ok(sqlx::query_as(
        "SELECT source, synced_at, failing_since, error_count, errors, updated_at FROM definition_sync ORDER BY source",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn definition_sync_record(pool: &PgPool, p: &DefinitionSyncRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO definition_sync (source, synced_at, failing_since, error_count, errors, updated_at) \
         VALUES ($1, CASE WHEN $2 = 0 THEN now() END, CASE WHEN $2 > 0 THEN now() END, $2, $3, now()) \
         ON CONFLICT (source) DO UPDATE SET \
         synced_at = CASE WHEN excluded.error_count = 0 THEN excluded.synced_at ELSE definition_sync.synced_at END, \
         failing_since = CASE WHEN excluded.error_count = 0 THEN NULL \
             ELSE COALESCE(definition_sync.failing_since, excluded.failing_since) END, \
         error_count = excluded.error_count, errors = excluded.errors, updated_at = excluded.updated_at",
    )
    .bind(&p.source)
    .bind(p.error_count)
    .bind(json_list(&p.errors))
    .execute(pool)
    .await?;
    Ok(())
}
