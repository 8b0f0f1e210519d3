//! Definition rows: workflows and their versions, coordinators, calendars, dependencies, links, and
//! the definitions directory's last sync.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// A `workflow` row.
#[derive(Clone, Debug, sqlx::FromRow, Serialize, ToSchema)]
pub struct WorkflowRow {
    pub name: String,
    pub version: i64,
    pub content_hash: String,
    #[serde(skip)]
    pub source_xml: String,
    #[serde(skip)]
    pub definition: String,
    pub file_path: String,
    pub dir: String,
    pub creator: String,
    pub description: String,
    pub mail_level: String,
    pub mail_receivers: String,
    pub instance_limit: i64,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// See [`WorkflowHead::rolled_back_to`]; read by `workflow_get` only (lists leave it `None`).
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<i64>,
}

/// What sync and instance starts need of a workflow row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct WorkflowHead {
    pub name: String,
    pub version: i64,
    pub content_hash: String,
    pub enabled: bool,
    pub instance_limit: i64,
    pub file_path: String,
    /// Set by `workflow rollback` (the version the head's content came from) until a sync finds
    /// the file equal to the head again or overwrites the rollback.
    pub rolled_back_to: Option<i64>,
}

/// Insert or update of a workflow; also records `(name, version)` in `workflow_version`.
#[derive(Clone, Debug)]
pub struct WorkflowUpsert {
    pub name: String,
    pub version: i64,
    pub content_hash: String,
    pub source_xml: String,
    pub definition: String,
    pub file_path: String,
    pub dir: String,
    pub creator: String,
    pub description: String,
    pub mail_level: String,
    pub mail_receivers: String,
    pub instance_limit: i64,
    pub enabled: bool,
    /// `retention-days`: how long its ended instances are kept; `None`: the configured default.
    pub retention_days: Option<i64>,
}

/// A due cron slot's compare-and-set: `next_fire_at` from `expected` to `next`, recording the
/// slot `fired` (`None`: the due slots were skipped, `last_fire_at` stays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorFire {
    pub workflow: String,
    pub expected: DateTime<Utc>,
    pub next: Option<DateTime<Utc>>,
    pub fired: Option<DateTime<Utc>>,
}

/// A `coordinator` row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct CoordinatorRow {
    pub workflow: String,
    pub cron: Option<String>,
    pub timezone: String,
    /// JSON array of upstream workflow names.
    pub depends: String,
    /// JSON array of `{name, value}` as written (evaluated at fire time).
    pub params: String,
    pub enabled: bool,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The missed-run policy: `latest`, `all` or `none`.
    pub catchup: String,
    /// With `catchup = 'all'`, at most this many missed slots fire.
    pub max_catchup: i64,
    /// The business calendar its slots follow (a `calendar` row), if any.
    pub calendar: Option<String>,
}

/// A `calendar` row: a business calendar of `calendars.xml`, its days as JSON
/// ([`crate::definition::calendar::Calendar`]).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct CalendarRow {
    pub name: String,
    pub definition: String,
}

/// A `coordinator_depend` row: progress of one upstream.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct DependRow {
    pub workflow: String,
    pub upstream: String,
    pub satisfied_at: Option<DateTime<Utc>>,
    pub satisfied_instance_id: Option<i64>,
}

/// A `db_link` row without its password.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct DbLinkRow {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub username: String,
    /// JSON array of `[name, value]` pairs.
    pub properties: String,
    /// The pool of the actions on this link that name none ('' for none).
    pub pool: String,
    pub updated_at: DateTime<Utc>,
}

/// A `file_link` row without its password.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct FileLinkRow {
    pub name: String,
    pub kind: String,
    pub host: String,
    pub port: i64,
    pub username: String,
    pub description: String,
    pub updated_at: DateTime<Utc>,
}

/// A `db_link` row as stored, password included; turned into a [`crate::definition::DbLink`].
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct StoredDbLink {
    pub name: String,
    pub kind: String,
    pub url: String,
    pub username: String,
    pub password: String,
    /// JSON array of `[name, value]` pairs.
    pub properties: String,
    /// '' for none.
    pub pool: String,
}

impl TryFrom<StoredDbLink> for crate::definition::DbLink {
    type Error = crate::store::StoreError;

    fn try_from(r: StoredDbLink) -> Result<Self, Self::Error> {
        let kind = r
            .kind
            .parse()
            .map_err(|v| crate::store::StoreError::Corrupt {
                table: "db_link",
                column: "kind",
                value: v,
            })?;
        let properties =
            serde_json::from_str(&r.properties).map_err(|_| crate::store::StoreError::Corrupt {
                table: "db_link",
                column: "properties",
                value: r.properties.clone(),
            })?;
        Ok(crate::definition::DbLink {
            name: r.name,
            kind,
            url: r.url,
            username: r.username,
            password: r.password,
            properties,
            pool: Some(r.pool).filter(|p| !p.is_empty()),
        })
    }
}

/// A `file_link` row as stored, password included.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct StoredFileLink {
    pub name: String,
    pub kind: String,
    pub host: String,
    pub port: i64,
    pub username: String,
    pub password: String,
    pub description: String,
}

impl TryFrom<StoredFileLink> for crate::definition::FileLink {
    type Error = crate::store::StoreError;

    fn try_from(r: StoredFileLink) -> Result<Self, Self::Error> {
        let kind = r
            .kind
            .parse()
            .map_err(|v| crate::store::StoreError::Corrupt {
                table: "file_link",
                column: "kind",
                value: v,
            })?;
        let port = i32::try_from(r.port).map_err(|_| crate::store::StoreError::Corrupt {
            table: "file_link",
            column: "port",
            value: r.port.to_string(),
        })?;
        Ok(crate::definition::FileLink {
            name: r.name,
            kind,
            host: r.host,
            port,
            username: r.username,
            password: r.password,
            description: r.description,
        })
    }
}

/// One stored version of a workflow (every version ever synced is kept).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, Serialize, ToSchema)]
pub struct WorkflowVersionRow {
    pub version: i64,
    pub content_hash: String,
    pub source_xml: String,
    pub created_at: DateTime<Utc>,
}

/// A `definition_sync` row: the last rescan of a definitions directory (standalone).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DefinitionSyncRow {
    /// The directory, as the process that syncs it names it.
    pub source: String,
    /// When the set now running was synced; `None`: never synced from this directory.
    pub synced_at: Option<DateTime<Utc>>,
    /// Since when every rescan has failed; `None`: the last rescan synced.
    pub failing_since: Option<DateTime<Utc>>,
    /// Errors of the last rescan (0 when it synced).
    pub error_count: i64,
    /// JSON array of the first errors, each `file:line:col: message`.
    pub errors: String,
    pub updated_at: DateTime<Utc>,
}

impl DefinitionSyncRow {
    /// The recorded first errors.
    pub fn error_list(&self) -> Vec<String> {
        serde_json::from_str(&self.errors).unwrap_or_default()
    }
}

/// What a rescan found: no errors (it synced) or the errors that held the whole set back.
#[derive(Clone, Debug)]
pub struct DefinitionSyncRecord {
    pub source: String,
    /// Every error of the set (0: it synced).
    pub error_count: i64,
    /// The first few, as they are shown.
    pub errors: Vec<String>,
}
