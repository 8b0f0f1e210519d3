//! MySQL/MariaDB: workflows, their versions, coordinators and their dependencies, db and file links.

use super::*;

macro_rules! coordinator_cols {
    () => {
        "CAST(c.workflow AS CHAR) AS workflow, CAST(c.cron AS CHAR) AS cron, CAST(c.timezone AS CHAR) AS timezone, \
         CAST(c.depends AS CHAR) AS depends, CAST(c.params AS CHAR) AS params, c.enabled, c.start_time, \
         c.end_time, c.next_fire_at, c.last_fire_at, CAST(c.catchup AS CHAR) AS catchup, c.max_catchup, \
         CAST(c.calendar AS CHAR) AS calendar"
    };
}

macro_rules! workflow_cols {
    () => {
        "CAST(w.name AS CHAR) AS name, w.version, CAST(w.content_hash AS CHAR) AS content_hash, \
         CAST(w.source_xml AS CHAR) AS source_xml, CAST(w.definition AS CHAR) AS definition, \
         CAST(w.file_path AS CHAR) AS file_path, CAST(w.dir AS CHAR) AS dir, CAST(w.creator AS CHAR) AS creator, \
         CAST(w.description AS CHAR) AS description, CAST(w.mail_level AS CHAR) AS mail_level, \
         CAST(w.mail_receivers AS CHAR) AS mail_receivers, w.instance_limit, w.enabled, w.created_at, w.updated_at"
    };
}

macro_rules! head_cols {
    () => {
        "CAST(w.name AS CHAR) AS name, w.version, CAST(w.content_hash AS CHAR) AS content_hash, w.enabled, \
         w.instance_limit, CAST(w.file_path AS CHAR) AS file_path, w.rolled_back_to"
    };
}

/// Coordinators `c` whose cron slots fire: the due read and the next-due read share it.
macro_rules! cron_firing {
    () => {
        "c.enabled = 1 AND c.cron IS NOT NULL \
         AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled = 1)"
    };
}

const COORDINATOR_DUE: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE ",
    cron_firing!(),
    " AND c.next_fire_at <= NOW(6) ORDER BY c.next_fire_at, c.workflow LIMIT ?"
);

const COORDINATOR_GET: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.workflow = ?"
);

const COORDINATOR_NEEDS_NEXT: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled = 1 AND c.cron IS NOT NULL AND c.next_fire_at IS NULL \
     ORDER BY c.workflow LIMIT ?"
);

const COORDINATOR_DEPS_READY: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c WHERE c.enabled = 1 AND c.cron IS NULL \
     AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled = 1) \
     AND EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow) \
     AND NOT EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow AND d.satisfied_at IS NULL) \
     ORDER BY c.workflow LIMIT ?"
);

const COORDINATOR_LIST_ALL: &str = concat!(
    "SELECT ",
    coordinator_cols!(),
    " FROM coordinator c ORDER BY c.workflow"
);

const WORKFLOW_GET: &str = concat!(
    "SELECT ",
    workflow_cols!(),
    ", w.rolled_back_to FROM workflow w WHERE w.name = ?"
);

const WORKFLOW_LIST: &str = concat!(
    "SELECT ",
    workflow_cols!(),
    " FROM workflow w ORDER BY w.dir, w.name"
);

const WORKFLOW_HEADS: &str = concat!("SELECT ", head_cols!(), " FROM workflow w ORDER BY w.name");

pub(super) async fn coordinator_delete(conn: &mut MySqlConnection, workflow: &str) -> Result<()> {
    sqlx::query("DELETE FROM coordinator_depend WHERE workflow = ?")
        .bind(workflow)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM coordinator WHERE workflow = ?")
        .bind(workflow)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn coordinator_depend_clear(
    conn: &mut MySqlConnection,
    workflow: &str,
    expected: usize,
) -> Result<Cas> {
    let satisfied: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM coordinator_depend WHERE workflow = ? AND satisfied_at IS NOT NULL FOR UPDATE",
    )
    .bind(workflow)
    .fetch_one(&mut *conn)
    .await?;
    if satisfied != expected as i64 {
        return Ok(Cas::Stale);
    }
    sqlx::query(
        "UPDATE coordinator_depend SET satisfied_at = NULL, satisfied_instance_id = NULL \
         WHERE workflow = ? AND satisfied_at IS NOT NULL",
    )
    .bind(workflow)
    .execute(&mut *conn)
    .await?;
    Ok(Cas::Applied)
}

pub(super) async fn coordinator_depend_list(
    pool: &MySqlPool,
    workflow: &str,
) -> Result<Vec<DependRow>> {
    Ok(sqlx::query_as(
        "SELECT CAST(d.workflow AS CHAR) AS workflow, CAST(d.upstream AS CHAR) AS upstream, d.satisfied_at, \
         d.satisfied_instance_id FROM coordinator_depend d WHERE d.workflow = ? ORDER BY d.upstream",
    )
    .bind(workflow)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn coordinator_depend_satisfy_many(
    conn: &mut MySqlConnection,
    satisfied: &[(String, InstanceId)],
) -> Result<u64> {
    let last = last_per_upstream(satisfied);
    if last.is_empty() {
        return Ok(0);
    }
    let mut qb = QueryBuilder::<MySql>::new(
        "UPDATE coordinator_depend SET satisfied_at = NOW(6), satisfied_instance_id = CASE upstream",
    );
    for (upstream, instance) in &last {
        qb.push(" WHEN ");
        qb.push_bind(*upstream);
        qb.push(" THEN ");
        qb.push_bind(*instance);
    }
    qb.push(" END WHERE upstream IN ");
    push_list(&mut qb, last.keys().copied());
    let r = qb.build().execute(&mut *conn).await?;
    Ok(r.rows_affected())
}

pub(super) async fn coordinator_depend_set(
    conn: &mut MySqlConnection,
    workflow: &str,
    upstreams: &[String],
) -> Result<()> {
    let mut delete = QueryBuilder::<MySql>::new("DELETE FROM coordinator_depend WHERE workflow = ");
    delete.push_bind(workflow);
    if !upstreams.is_empty() {
        delete.push(" AND upstream NOT IN ");
        push_list(&mut delete, upstreams.iter());
    }
    delete.build().execute(&mut *conn).await?;
    if upstreams.is_empty() {
        return Ok(());
    }
    let mut insert =
        QueryBuilder::<MySql>::new("INSERT INTO coordinator_depend (workflow, upstream) ");
    insert.push_values(upstreams, |mut b, upstream| {
        b.push_bind(workflow).push_bind(upstream);
    });
    insert.push(" ON DUPLICATE KEY UPDATE upstream = upstream");
    insert.build().execute(&mut *conn).await?;
    Ok(())
}

pub(super) async fn coordinator_deps_ready(
    pool: &MySqlPool,
    limit: i64,
) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_DEPS_READY)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn coordinator_due(pool: &MySqlPool, limit: i64) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_DUE)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn coordinator_next_due_micros(pool: &MySqlPool) -> Result<Option<i64>> {
    // walked in `coordinator_due` index order to the first row
    Ok(sqlx::query_scalar(concat!(
        "SELECT TIMESTAMPDIFF(MICROSECOND, NOW(6), c.next_fire_at) FROM coordinator c WHERE ",
        cron_firing!(),
        " AND c.next_fire_at IS NOT NULL ORDER BY c.next_fire_at LIMIT 1"
    ))
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn coordinator_fire_many(
    conn: &mut MySqlConnection,
    fires: &[CoordinatorFire],
) -> Result<u64> {
    if fires.is_empty() {
        return Ok(0);
    }
    // the primary key finds the rows (`workflow IN`); each row's CAS is its own CASE arm
    let mut qb = QueryBuilder::<MySql>::new("UPDATE coordinator SET next_fire_at = CASE workflow");
    for f in fires {
        qb.push(" WHEN ").push_bind(&f.workflow);
        qb.push(" THEN ").push_bind(f.next);
    }
    qb.push(" END, last_fire_at = CASE workflow");
    for f in fires {
        qb.push(" WHEN ").push_bind(&f.workflow);
        qb.push(" THEN COALESCE(").push_bind(f.fired);
        qb.push(", last_fire_at)");
    }
    qb.push(" END WHERE workflow IN ");
    push_list(&mut qb, fires.iter().map(|f| &f.workflow));
    qb.push(" AND next_fire_at = CASE workflow");
    for f in fires {
        qb.push(" WHEN ").push_bind(&f.workflow);
        qb.push(" THEN ").push_bind(f.expected);
    }
    qb.push(" END");
    Ok(qb.build().execute(&mut *conn).await?.rows_affected())
}

pub(super) async fn coordinator_get(
    pool: &MySqlPool,
    workflow: &str,
) -> Result<Option<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_GET)
        .bind(workflow)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn coordinator_list(pool: &MySqlPool) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_LIST_ALL).fetch_all(pool).await?)
}

pub(super) async fn coordinator_list_all(
    conn: &mut MySqlConnection,
) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_LIST_ALL)
        .fetch_all(&mut *conn)
        .await?)
}

pub(super) async fn coordinator_needs_next(
    pool: &MySqlPool,
    limit: i64,
) -> Result<Vec<CoordinatorRow>> {
    Ok(sqlx::query_as(COORDINATOR_NEEDS_NEXT)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

pub(super) async fn coordinator_set_next(
    pool: &MySqlPool,
    workflow: &str,
    next: Option<DateTime<Utc>>,
) -> Result<Cas> {
    retrying(|| async move {
        let r = sqlx::query(
            "UPDATE coordinator SET next_fire_at = ? WHERE workflow = ? AND next_fire_at IS NULL",
        )
        .bind(next)
        .bind(workflow)
        .execute(pool)
        .await?;
        Ok(Cas::from_rows(r.rows_affected()))
    })
    .await
}

pub(super) async fn coordinator_upsert(
    conn: &mut MySqlConnection,
    c: &CoordinatorRow,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO coordinator (workflow, cron, timezone, depends, params, enabled, start_time, end_time, \
         next_fire_at, last_fire_at, catchup, max_catchup, calendar, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6)) \
         ON DUPLICATE KEY UPDATE cron = VALUES(cron), timezone = VALUES(timezone), depends = VALUES(depends), \
         params = VALUES(params), enabled = VALUES(enabled), start_time = VALUES(start_time), \
         end_time = VALUES(end_time), next_fire_at = VALUES(next_fire_at), last_fire_at = VALUES(last_fire_at), \
         catchup = VALUES(catchup), max_catchup = VALUES(max_catchup), calendar = VALUES(calendar), \
         updated_at = VALUES(updated_at)",
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

pub(super) async fn db_link_delete(conn: &mut MySqlConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM db_link WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn db_link_get(pool: &MySqlPool, name: &str) -> Result<Option<DbLink>> {
    let row: Option<StoredDbLink> = sqlx::query_as(
        "SELECT CAST(name AS CHAR) AS name, CAST(kind AS CHAR) AS kind, CAST(url AS CHAR) AS url, \
         CAST(username AS CHAR) AS username, CAST(password AS CHAR) AS password, \
         CAST(properties AS CHAR) AS properties, CAST(pool AS CHAR) AS pool FROM db_link WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(DbLink::try_from).transpose()
}

pub(super) async fn db_link_list(pool: &MySqlPool) -> Result<Vec<DbLinkRow>> {
    Ok(sqlx::query_as(
        "SELECT CAST(l.name AS CHAR) AS name, CAST(l.kind AS CHAR) AS kind, CAST(l.url AS CHAR) AS url, \
         CAST(l.username AS CHAR) AS username, CAST(l.properties AS CHAR) AS properties, \
         CAST(l.pool AS CHAR) AS pool, l.updated_at \
         FROM db_link l ORDER BY l.name",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn db_link_names(conn: &mut MySqlConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT CAST(l.name AS CHAR) AS name FROM db_link l ORDER BY l.name")
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub(super) async fn db_link_upsert(conn: &mut MySqlConnection, l: &DbLink) -> Result<()> {
    sqlx::query(
        "INSERT INTO db_link (name, kind, url, username, password, properties, pool, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE \
         updated_at = IF((kind, url, username, password, properties, pool) <=> \
           (VALUES(kind), VALUES(url), VALUES(username), VALUES(password), VALUES(properties), VALUES(pool)), \
           updated_at, VALUES(updated_at)), \
         kind = VALUES(kind), url = VALUES(url), username = VALUES(username), password = VALUES(password), \
         properties = VALUES(properties), pool = VALUES(pool)",
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

pub(super) async fn file_link_delete(conn: &mut MySqlConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM file_link WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn file_link_get(pool: &MySqlPool, name: &str) -> Result<Option<FileLink>> {
    let row: Option<StoredFileLink> = sqlx::query_as(
        "SELECT CAST(name AS CHAR) AS name, CAST(kind AS CHAR) AS kind, CAST(host AS CHAR) AS host, port, \
         CAST(username AS CHAR) AS username, CAST(password AS CHAR) AS password, \
         CAST(description AS CHAR) AS description FROM file_link WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(FileLink::try_from).transpose()
}

pub(super) async fn file_link_list(pool: &MySqlPool) -> Result<Vec<FileLinkRow>> {
    Ok(sqlx::query_as(
        "SELECT CAST(l.name AS CHAR) AS name, CAST(l.kind AS CHAR) AS kind, CAST(l.host AS CHAR) AS host, \
         l.port, CAST(l.username AS CHAR) AS username, CAST(l.description AS CHAR) AS description, \
         l.updated_at FROM file_link l ORDER BY l.name",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn file_link_names(conn: &mut MySqlConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT CAST(l.name AS CHAR) AS name FROM file_link l ORDER BY l.name")
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub(super) async fn file_link_upsert(conn: &mut MySqlConnection, l: &FileLink) -> Result<()> {
    sqlx::query(
        "INSERT INTO file_link (name, kind, host, port, username, password, description, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE \
         updated_at = IF((kind, host, port, username, password, description) <=> \
           (VALUES(kind), VALUES(host), VALUES(port), VALUES(username), VALUES(password), VALUES(description)), \
           updated_at, VALUES(updated_at)), \
         kind = VALUES(kind), host = VALUES(host), port = VALUES(port), username = VALUES(username), \
         password = VALUES(password), description = VALUES(description)",
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
    conn: &mut MySqlConnection,
    name: &str,
    version: i64,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT CAST(v.definition AS CHAR) AS definition FROM workflow_version v \
         WHERE v.workflow = ? AND v.version = ?",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(conn)
    .await?)
}

pub(super) async fn workflow_definitions_current(
    pool: &MySqlPool,
    names: &[String],
) -> Result<Vec<(String, i64, String)>> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    let mut qb = QueryBuilder::<MySql>::new(
        "SELECT CAST(w.name AS CHAR) AS name, w.version, CAST(v.definition AS CHAR) AS definition FROM workflow w \
         JOIN workflow_version v ON v.workflow = w.name AND v.version = w.version WHERE w.name IN ",
    );
    push_list(&mut qb, names.iter());
    Ok(qb.build_query_as().fetch_all(pool).await?)
}

pub(super) async fn workflow_get(pool: &MySqlPool, name: &str) -> Result<Option<WorkflowRow>> {
    Ok(sqlx::query_as(WORKFLOW_GET)
        .bind(name)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn workflow_heads(conn: &mut MySqlConnection) -> Result<Vec<WorkflowHead>> {
    Ok(sqlx::query_as(WORKFLOW_HEADS).fetch_all(&mut *conn).await?)
}

pub(super) async fn workflow_list(pool: &MySqlPool) -> Result<Vec<WorkflowRow>> {
    Ok(sqlx::query_as(WORKFLOW_LIST).fetch_all(pool).await?)
}

pub(super) async fn workflow_lock_many(
    conn: &mut MySqlConnection,
    names: &[String],
) -> Result<Vec<WorkflowHead>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb = QueryBuilder::<MySql>::new(concat!(
        "SELECT ",
        head_cols!(),
        " FROM workflow w WHERE w.name IN "
    ));
    push_list(&mut qb, names.iter());
    qb.push(" ORDER BY w.name FOR UPDATE");
    Ok(qb.build_query_as().fetch_all(&mut *conn).await?)
}

pub(super) async fn workflow_set_enabled(
    conn: &mut MySqlConnection,
    name: &str,
    enabled: bool,
) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE workflow SET enabled = ?, updated_at = NOW(6) WHERE name = ? AND enabled <> ?",
    )
    .bind(enabled)
    .bind(name)
    .bind(enabled)
    .execute(&mut *conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn workflow_set_rolled_back(
    conn: &mut MySqlConnection,
    name: &str,
    to: Option<i64>,
) -> Result<()> {
    sqlx::query("UPDATE workflow SET rolled_back_to = ? WHERE name = ?")
        .bind(to)
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn workflow_upsert(conn: &mut MySqlConnection, w: &WorkflowUpsert) -> Result<()> {
    // A version already recorded keeps its first content, like SQLite's INSERT OR IGNORE.
    sqlx::query(
        "INSERT INTO workflow_version (workflow, version, content_hash, source_xml, definition, created_at) \
         VALUES (?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE version = version",
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6), NOW(6)) \
         ON DUPLICATE KEY UPDATE version = VALUES(version), content_hash = VALUES(content_hash), \
         source_xml = VALUES(source_xml), definition = VALUES(definition), file_path = VALUES(file_path), \
         dir = VALUES(dir), creator = VALUES(creator), description = VALUES(description), \
         mail_level = VALUES(mail_level), mail_receivers = VALUES(mail_receivers), \
         instance_limit = VALUES(instance_limit), enabled = VALUES(enabled), updated_at = VALUES(updated_at)",
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
    sqlx::query("UPDATE workflow SET retention_days = ? WHERE name = ?")
        .bind(w.retention_days)
        .bind(&w.name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn workflow_versions(
    pool: &MySqlPool,
    name: &str,
) -> Result<Vec<WorkflowVersionRow>> {
    Ok(sqlx::query_as(
        "SELECT version, CAST(content_hash AS CHAR) AS content_hash, CAST(source_xml AS CHAR) AS source_xml, created_at FROM workflow_version WHERE workflow = ? ORDER BY version",
    )
    .bind(name)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn definition_sync_list(pool: &MySqlPool) -> Result<Vec<DefinitionSyncRow>> {
    Ok(sqlx::query_as(
        "SELECT CAST(source AS CHAR) AS source, synced_at, failing_since, error_count, \
         CAST(errors AS CHAR) AS errors, updated_at FROM definition_sync ORDER BY source",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn definition_sync_record(
    pool: &MySqlPool,
    p: &DefinitionSyncRecord,
) -> Result<()> {
    // assignments run left to right on the old row: failing_since reads it before anything changes
    sqlx::query(
        "INSERT INTO definition_sync (source, synced_at, failing_since, error_count, errors, updated_at) \
         VALUES (?, IF(? = 0, NOW(6), NULL), IF(? > 0, NOW(6), NULL), ?, ?, NOW(6)) \
         ON DUPLICATE KEY UPDATE \
         synced_at = IF(VALUES(error_count) = 0, VALUES(synced_at), synced_at), \
         failing_since = IF(VALUES(error_count) = 0, NULL, COALESCE(failing_since, VALUES(failing_since))), \
         error_count = VALUES(error_count), errors = VALUES(errors), updated_at = VALUES(updated_at)",
    )
    .bind(&p.source)
    .bind(p.error_count)
    .bind(p.error_count)
    .bind(p.error_count)
    .bind(json_list(&p.errors))
    .execute(pool)
    .await?;
    Ok(())
}
