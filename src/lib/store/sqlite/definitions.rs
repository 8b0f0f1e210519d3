//! SQLite: workflows, their versions, coordinators and their dependencies, db and file links.

use super::*;

const COORDINATOR_COLUMNS: &str =
    "workflow, cron, timezone, depends, params, enabled, start_time, end_time, next_fire_at, last_fire_at, \
     catchup, max_catchup, calendar";

const WORKFLOW_COLUMNS: &str =
    "name, version, content_hash, source_xml, definition, file_path, dir, creator, \
     description, mail_level, mail_receivers, instance_limit, enabled, created_at, updated_at";

pub(super) async fn coordinator_delete(conn: &mut SqliteConnection, workflow: &str) -> Result<()> {
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
    conn: &mut SqliteConnection,
    workflow: &str,
    expected: usize,
) -> Result<Cas> {
    // Count before clearing: a stale clear must write nothing (BEGIN IMMEDIATE holds the write lock).
    let satisfied: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM coordinator_depend WHERE workflow = ? AND satisfied_at IS NOT NULL",
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
    pool: &SqlitePool,
    workflow: &str,
) -> Result<Vec<DependRow>> {
    Ok(sqlx::query_as(
        "SELECT workflow, upstream, satisfied_at, satisfied_instance_id FROM coordinator_depend \
         WHERE workflow = ? ORDER BY upstream",
    )
    .bind(workflow)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn coordinator_depend_satisfy_many(
    conn: &mut SqliteConnection,
    satisfied: &[(String, InstanceId)],
) -> Result<u64> {
    let last = last_per_upstream(satisfied);
    if last.is_empty() {
        return Ok(0);
    }
    // {upstream: instance}: the object's keys and values through json_each
    let by_upstream = serde_json::to_string(&last).expect("names and numbers serialise");
    let r = sqlx::query(&format!(
        "UPDATE coordinator_depend SET satisfied_at = {NOW}, \
         satisfied_instance_id = (SELECT j.value FROM json_each(?) j WHERE j.key = upstream) \
         WHERE upstream IN (SELECT key FROM json_each(?))"
    ))
    .bind(&by_upstream)
    .bind(&by_upstream)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

pub(super) async fn coordinator_depend_set(
    conn: &mut SqliteConnection,
    workflow: &str,
    upstreams: &[String],
) -> Result<()> {
    sqlx::query(
        "DELETE FROM coordinator_depend WHERE workflow = ? AND upstream NOT IN (SELECT value FROM json_each(?))",
    )
    .bind(workflow)
    .bind(json_list(upstreams))
    .execute(&mut *conn)
    .await?;
    for upstream in upstreams {
        sqlx::query("INSERT OR IGNORE INTO coordinator_depend (workflow, upstream) VALUES (?, ?)")
            .bind(workflow)
            .bind(upstream)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub(super) async fn coordinator_deps_ready(
    pool: &SqlitePool,
    limit: i64,
) -> Result<Vec<CoordinatorRow>> {
    let sql = format!(
        "SELECT {cols} FROM coordinator c WHERE c.enabled = 1 AND c.cron IS NULL \
         AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled = 1) \
         AND EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow) \
         AND NOT EXISTS (SELECT 1 FROM coordinator_depend d WHERE d.workflow = c.workflow AND d.satisfied_at IS NULL) \
         ORDER BY c.workflow LIMIT ?",
        cols = prefixed("c", COORDINATOR_COLUMNS)
    );
    Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
}

/// Coordinators `c` whose cron slots fire: the due read and the next-due read share it.
const CRON_FIRING: &str = "c.enabled = 1 AND c.cron IS NOT NULL \
     AND EXISTS (SELECT 1 FROM workflow w WHERE w.name = c.workflow AND w.enabled = 1)";

pub(super) async fn coordinator_due(pool: &SqlitePool, limit: i64) -> Result<Vec<CoordinatorRow>> {
    let sql = format!(
        "SELECT {cols} FROM coordinator c WHERE {CRON_FIRING} AND c.next_fire_at <= {NOW} \
         ORDER BY c.next_fire_at, c.workflow LIMIT ?",
        cols = prefixed("c", COORDINATOR_COLUMNS)
    );
    Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
}

pub(super) async fn coordinator_next_due_micros(pool: &SqlitePool) -> Result<Option<i64>> {
    // walked in `coordinator_due` index order to the first row
    let sql = format!(
        "SELECT CAST(ROUND((julianday(c.next_fire_at) - julianday({NOW})) * 86400000000.0) AS INTEGER) \
         FROM coordinator c WHERE {CRON_FIRING} AND c.next_fire_at IS NOT NULL \
         ORDER BY c.next_fire_at LIMIT 1"
    );
    Ok(sqlx::query_scalar(&sql).fetch_optional(pool).await?)
}

pub(super) async fn coordinator_fire_many(
    conn: &mut SqliteConnection,
    fires: &[CoordinatorFire],
) -> Result<u64> {
    if fires.is_empty() {
        return Ok(0);
    }
    let rows: Vec<_> = fires
        .iter()
        .map(|f| (&f.workflow, ts(f.expected), ts_opt(f.next), ts_opt(f.fired)))
        .collect();
    let r = sqlx::query(
        "UPDATE coordinator SET next_fire_at = f.next, last_fire_at = COALESCE(f.fired, coordinator.last_fire_at) \
         FROM (SELECT json_extract(value, '$[0]') AS workflow, json_extract(value, '$[1]') AS expected, \
                      json_extract(value, '$[2]') AS next, json_extract(value, '$[3]') AS fired \
               FROM json_each(?)) AS f \
         WHERE coordinator.workflow = f.workflow AND coordinator.next_fire_at = f.expected",
    )
    .bind(serde_json::to_string(&rows).expect("strings serialise"))
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected())
}

pub(super) async fn coordinator_get(
    pool: &SqlitePool,
    workflow: &str,
) -> Result<Option<CoordinatorRow>> {
    let sql = format!("SELECT {COORDINATOR_COLUMNS} FROM coordinator WHERE workflow = ?");
    Ok(sqlx::query_as(&sql)
        .bind(workflow)
        .fetch_optional(pool)
        .await?)
}

pub(super) async fn coordinator_list(pool: &SqlitePool) -> Result<Vec<CoordinatorRow>> {
    let sql = format!("SELECT {COORDINATOR_COLUMNS} FROM coordinator ORDER BY workflow");
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

pub(super) async fn coordinator_list_all(
    conn: &mut SqliteConnection,
) -> Result<Vec<CoordinatorRow>> {
    let sql = format!("SELECT {COORDINATOR_COLUMNS} FROM coordinator ORDER BY workflow");
    Ok(sqlx::query_as(&sql).fetch_all(&mut *conn).await?)
}

pub(super) async fn coordinator_needs_next(
    pool: &SqlitePool,
    limit: i64,
) -> Result<Vec<CoordinatorRow>> {
    let sql = format!(
        "SELECT {COORDINATOR_COLUMNS} FROM coordinator WHERE enabled = 1 AND cron IS NOT NULL \
         AND next_fire_at IS NULL ORDER BY workflow LIMIT ?"
    );
    Ok(sqlx::query_as(&sql).bind(limit).fetch_all(pool).await?)
}

pub(super) async fn coordinator_set_next(
    pool: &SqlitePool,
    workflow: &str,
    next: Option<DateTime<Utc>>,
) -> Result<Cas> {
    let r = sqlx::query(
        "UPDATE coordinator SET next_fire_at = ? WHERE workflow = ? AND next_fire_at IS NULL",
    )
    .bind(ts_opt(next))
    .bind(workflow)
    .execute(pool)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn coordinator_upsert(
    conn: &mut SqliteConnection,
    c: &CoordinatorRow,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO coordinator ({COORDINATOR_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NOW}) \
         ON CONFLICT (workflow) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone, \
         depends = excluded.depends, params = excluded.params, enabled = excluded.enabled, \
         start_time = excluded.start_time, end_time = excluded.end_time, next_fire_at = excluded.next_fire_at, \
         last_fire_at = excluded.last_fire_at, catchup = excluded.catchup, max_catchup = excluded.max_catchup, \
         calendar = excluded.calendar, updated_at = excluded.updated_at"
    ))
    .bind(&c.workflow)
    .bind(&c.cron)
    .bind(&c.timezone)
    .bind(&c.depends)
    .bind(&c.params)
    .bind(c.enabled)
    .bind(ts_opt(c.start_time))
    .bind(ts_opt(c.end_time))
    .bind(ts_opt(c.next_fire_at))
    .bind(ts_opt(c.last_fire_at))
    .bind(&c.catchup)
    .bind(c.max_catchup)
    .bind(&c.calendar)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn db_link_delete(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM db_link WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn db_link_get(pool: &SqlitePool, name: &str) -> Result<Option<DbLink>> {
    let row: Option<StoredDbLink> = sqlx::query_as(
        "SELECT name, kind, url, username, password, properties, pool FROM db_link WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(DbLink::try_from).transpose()
}

pub(super) async fn db_link_list(pool: &SqlitePool) -> Result<Vec<DbLinkRow>> {
    Ok(sqlx::query_as(
        "SELECT name, kind, url, username, properties, pool, updated_at FROM db_link ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn db_link_names(conn: &mut SqliteConnection) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT name FROM db_link ORDER BY name")
        .fetch_all(&mut *conn)
        .await?)
}

pub(super) async fn db_link_upsert(conn: &mut SqliteConnection, l: &DbLink) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO db_link (name, kind, url, username, password, properties, pool, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, {NOW}) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
         url = excluded.url, username = excluded.username, password = excluded.password, \
         properties = excluded.properties, pool = excluded.pool, updated_at = excluded.updated_at \
         WHERE db_link.kind <> excluded.kind OR db_link.url <> excluded.url OR db_link.username <> excluded.username \
         OR db_link.password <> excluded.password OR db_link.properties <> excluded.properties \
         OR db_link.pool <> excluded.pool"
    ))
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

pub(super) async fn file_link_delete(conn: &mut SqliteConnection, name: &str) -> Result<()> {
    sqlx::query("DELETE FROM file_link WHERE name = ?")
        .bind(name)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn file_link_get(pool: &SqlitePool, name: &str) -> Result<Option<FileLink>> {
    let row: Option<StoredFileLink> = sqlx::query_as(
        "SELECT name, kind, host, port, username, password, description FROM file_link WHERE name = ?",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    row.map(FileLink::try_from).transpose()
}

pub(super) async fn file_link_list(pool: &SqlitePool) -> Result<Vec<FileLinkRow>> {
    Ok(sqlx::query_as(
        "SELECT name, kind, host, port, username, description, updated_at FROM file_link ORDER BY name",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn file_link_names(conn: &mut SqliteConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT name FROM file_link ORDER BY name")
            .fetch_all(&mut *conn)
            .await?,
    )
}

pub(super) async fn file_link_upsert(conn: &mut SqliteConnection, l: &FileLink) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO file_link (name, kind, host, port, username, password, description, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, {NOW}) ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, \
         host = excluded.host, port = excluded.port, username = excluded.username, \
         password = excluded.password, description = excluded.description, updated_at = excluded.updated_at \
         WHERE file_link.kind <> excluded.kind OR file_link.host <> excluded.host OR file_link.port <> excluded.port \
         OR file_link.username <> excluded.username OR file_link.password <> excluded.password \
         OR file_link.description <> excluded.description"
    ))
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
    conn: &mut SqliteConnection,
    name: &str,
    version: i64,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT definition FROM workflow_version WHERE workflow = ? AND version = ?",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(conn)
    .await?)
}

pub(super) async fn workflow_definitions_current(
    pool: &SqlitePool,
    names: &[String],
) -> Result<Vec<(String, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT w.name, w.version, v.definition FROM workflow w \
         JOIN workflow_version v ON v.workflow = w.name AND v.version = w.version \
         WHERE w.name IN (SELECT value FROM json_each(?))",
    )
    .bind(json_list(names))
    .fetch_all(pool)
    .await?)
}

pub(super) async fn workflow_get(pool: &SqlitePool, name: &str) -> Result<Option<WorkflowRow>> {
    let sql = format!("SELECT {WORKFLOW_COLUMNS}, rolled_back_to FROM workflow WHERE name = ?");
    Ok(sqlx::query_as(&sql).bind(name).fetch_optional(pool).await?)
}

pub(super) async fn workflow_heads(conn: &mut SqliteConnection) -> Result<Vec<WorkflowHead>> {
    Ok(sqlx::query_as(
        "SELECT name, version, content_hash, enabled, instance_limit, file_path, rolled_back_to FROM workflow ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn workflow_list(pool: &SqlitePool) -> Result<Vec<WorkflowRow>> {
    let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflow ORDER BY dir, name");
    Ok(sqlx::query_as(&sql).fetch_all(pool).await?)
}

pub(super) async fn workflow_lock_many(
    conn: &mut SqliteConnection,
    names: &[String],
) -> Result<Vec<WorkflowHead>> {
    // the transaction holds SQLite's one write lock already: nothing to lock row by row
    Ok(sqlx::query_as(
        "SELECT name, version, content_hash, enabled, instance_limit, file_path, rolled_back_to \
         FROM workflow WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name",
    )
    .bind(json_list(names))
    .fetch_all(&mut *conn)
    .await?)
}

pub(super) async fn workflow_set_enabled(
    conn: &mut SqliteConnection,
    name: &str,
    enabled: bool,
) -> Result<Cas> {
    let r = sqlx::query(&format!(
        "UPDATE workflow SET enabled = ?, updated_at = {NOW} WHERE name = ? AND enabled <> ?"
    ))
    .bind(enabled)
    .bind(name)
    .bind(enabled)
    .execute(&mut *conn)
    .await?;
    Ok(Cas::from_rows(r.rows_affected()))
}

pub(super) async fn workflow_set_rolled_back(
    conn: &mut SqliteConnection,
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

pub(super) async fn workflow_upsert(conn: &mut SqliteConnection, w: &WorkflowUpsert) -> Result<()> {
    sqlx::query(&format!(
        "INSERT OR IGNORE INTO workflow_version (workflow, version, content_hash, source_xml, definition, created_at) \
         VALUES (?, ?, ?, ?, ?, {NOW})"
    ))
    .bind(&w.name)
    .bind(w.version)
    .bind(&w.content_hash)
    .bind(&w.source_xml)
    .bind(&w.definition)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO workflow ({WORKFLOW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {NOW}, {NOW}) \
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, content_hash = excluded.content_hash, \
         source_xml = excluded.source_xml, definition = excluded.definition, file_path = excluded.file_path, \
         dir = excluded.dir, creator = excluded.creator, description = excluded.description, \
         mail_level = excluded.mail_level, mail_receivers = excluded.mail_receivers, \
         instance_limit = excluded.instance_limit, enabled = excluded.enabled, updated_at = excluded.updated_at"
    ))
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
    pool: &SqlitePool,
    name: &str,
) -> Result<Vec<WorkflowVersionRow>> {
    Ok(sqlx::query_as(
        "SELECT version, content_hash, source_xml, created_at FROM workflow_version WHERE workflow = ? ORDER BY version",
    )
    .bind(name)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn definition_sync_list(pool: &SqlitePool) -> Result<Vec<DefinitionSyncRow>> {
    Ok(sqlx::query_as(
        "SELECT source, synced_at, failing_since, error_count, errors, updated_at FROM definition_sync ORDER BY source",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn definition_sync_record(
    pool: &SqlitePool,
    p: &DefinitionSyncRecord,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO definition_sync (source, synced_at, failing_since, error_count, errors, updated_at) \
         VALUES (?1, CASE WHEN ?2 = 0 THEN {NOW} END, CASE WHEN ?2 > 0 THEN {NOW} END, ?2, ?3, {NOW}) \
         ON CONFLICT (source) DO UPDATE SET \
         synced_at = CASE WHEN excluded.error_count = 0 THEN excluded.synced_at ELSE definition_sync.synced_at END, \
         failing_since = CASE WHEN excluded.error_count = 0 THEN NULL \
             ELSE COALESCE(definition_sync.failing_since, excluded.failing_since) END, \
         error_count = excluded.error_count, errors = excluded.errors, updated_at = excluded.updated_at"
    ))
    .bind(&p.source)
    .bind(p.error_count)
    .bind(json_list(&p.errors))
    .execute(pool)
    .await?;
    Ok(())
}
