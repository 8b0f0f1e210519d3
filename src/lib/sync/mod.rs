//! Sync: load a validated definition set into the database in ONE transaction, all or nothing.
//!
//! A workflow's version goes up only when its content hash changes; running sync twice changes
//! nothing the second time. `prune` disables workflows whose file is gone (history kept). Sync never
//! re-enables a workflow an operator disabled, unless its file changed.
//!
//! A workflow rolled back in the database (`workflow rollback`, see [`crate::rollback`]) is *kept*
//! while its file differs: sync reports it in `rollbacks_kept` on every run instead of silently
//! undoing an operator's fix with the directory's older file; `overwrite_rollbacks` replaces it
//! with the file and says so in `rollbacks_undone`. A file equal to the rolled-back content ends
//! the hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::definition::{self, DefinitionSet, LoadedWorkflow, MailLevel};
use crate::error::{Error, Result};
use crate::store::{CoordinatorRow, NewEvent, Store, StoreTx, WorkflowUpsert};

mod upload;

pub use upload::{prepare_upload, upload_path, PreparedUpload, UploadedWorkflow};

#[derive(Clone, Debug)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub prune: bool,
    /// With `prune`: only workflows whose file lies below this directory (`dir/`) are disabled when
    /// their file is gone; uploads and other directories' workflows are left alone.
    pub prune_under: Option<String>,
    /// Who is syncing, for the event rows.
    pub actor: String,
    /// Zone for coordinators that name none.
    pub default_timezone: Tz,
    /// The configured alert channels a workflow's `alert-channels` may name; `None`: not checked.
    pub alert_channels: Option<Vec<String>>,
    /// Sync the files of workflows rolled back in the database too (undoing those rollbacks).
    pub overwrite_rollbacks: bool,
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub disabled: usize,
    pub warnings: Vec<String>,
    /// Workflows rolled back in the database whose file differs: not synced, one sentence each
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollbacks_kept: Vec<String>,
    /// Rollbacks this sync replaced with the file (`overwrite_rollbacks`), one sentence each
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollbacks_undone: Vec<String>,
    /// The workflows disabled because their file is gone, with that file.
    #[serde(skip)]
    pub disabled_files: Vec<(String, String)>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "added {}, updated {}, unchanged {}, disabled {}",
            self.added, self.updated, self.unchanged, self.disabled
        )?;
        if !self.rollbacks_kept.is_empty() {
            write!(f, ", kept {} rollback(s)", self.rollbacks_kept.len())?;
        }
        if !self.rollbacks_undone.is_empty() {
            write!(f, ", UNDID {} rollback(s)", self.rollbacks_undone.len())?;
        }
        Ok(())
    }
}

/// Loads the files below `paths` off the async runtime (parsing hundreds of files blocks).
pub async fn load(paths: Vec<PathBuf>) -> Result<DefinitionSet> {
    tokio::task::spawn_blocking(move || definition::load_paths(&paths))
        .await
        .map_err(|e| Error::Config(format!("definition loader crashed: {e}")))?
        .map_err(Error::Invalid)
}

/// Validates the files below `paths` and syncs them.
pub async fn sync_paths(
    store: &Arc<dyn Store>,
    paths: Vec<PathBuf>,
    opts: &SyncOptions,
) -> Result<SyncReport> {
    let set = load(paths).await?;
    sync_set(store, &set, opts).await
}

/// Syncs an already validated set.
pub async fn sync_set(
    store: &Arc<dyn Store>,
    set: &DefinitionSet,
    opts: &SyncOptions,
) -> Result<SyncReport> {
    if let Some(known) = &opts.alert_channels {
        check_alert_channels(set, known)?;
    }
    crate::store::retry::retrying(crate::store::retry::ENGINE, || async {
        apply(store.begin().await?, set, opts).await
    })
    .await
}

/// Refuses workflows whose `alert-channels` name a channel that is not configured, with the file and
/// line of the attribute.
fn check_alert_channels(set: &DefinitionSet, known: &[String]) -> Result<()> {
    let mut diags = Vec::new();
    for lw in &set.workflows {
        for name in &lw.workflow.alert_channels {
            if known.iter().any(|k| k == name) {
                continue;
            }
            let line = lw
                .source_xml
                .lines()
                .position(|l| l.contains("alert-channels"))
                .map_or(1, |i| i + 1);
            diags.push(definition::Diagnostic {
                severity: definition::Severity::Error,
                file: lw.file.clone(),
                line: line as u32,
                col: 1,
                element: "work-flow".into(),
                message: format!(
                    "workflow \"{}\": alert-channels names `{name}`, which is not in [[alerts.channels]] (configured: {})",
                    lw.workflow.name,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            });
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(diags))
    }
}

async fn apply(
    mut tx: Box<dyn StoreTx>,
    set: &DefinitionSet,
    opts: &SyncOptions,
) -> Result<SyncReport> {
    let mut report = SyncReport {
        warnings: set.warnings.iter().map(|d| d.to_string()).collect(),
        ..Default::default()
    };
    let heads: BTreeMap<String, _> = tx
        .workflow_heads()
        .await?
        .into_iter()
        .map(|h| (h.name.clone(), h))
        .collect();
    let coordinators: BTreeMap<String, CoordinatorRow> = tx
        .coordinator_list_all()
        .await?
        .into_iter()
        .map(|c| (c.workflow.clone(), c))
        .collect();
    let mut events = Vec::new();
    let changed_calendars = sync_calendars(&mut *tx, set, opts.prune).await?;

    for lw in &set.workflows {
        let name = &lw.workflow.name;
        let undone = heads.get(name).and_then(|h| h.rolled_back_to);
        let (version, enabled, kind) = match heads.get(name) {
            None => (1, true, "workflow_added"),
            Some(h) if h.content_hash != lw.content_hash => {
                if let Some(to) = h.rolled_back_to {
                    let what = format!(
                        "workflow `{name}` was rolled back to version {to} in the database (now \
                         version {}) and its file {} differs",
                        h.version,
                        lw.file.display()
                    );
                    if !opts.overwrite_rollbacks {
                        report.rollbacks_kept.push(format!(
                            "{what}: kept the database's version; update the file \
                             (`akkaflow workflow show {name} > FILE`) or sync with \
                             --overwrite-rollbacks to replace the rollback with the file"
                        ));
                        report.unchanged += 1;
                        continue;
                    }
                    report.rollbacks_undone.push(format!(
                        "{what}: the file replaced the rollback (version {})",
                        h.version + 1
                    ));
                    tx.workflow_set_rolled_back(name, None).await?;
                }
                (h.version + 1, true, "workflow_updated")
            }
            Some(h) => {
                if h.rolled_back_to.is_some() {
                    // the file now has the rolled-back content: the hold is over
                    tx.workflow_set_rolled_back(name, None).await?;
                }
                report.unchanged += 1;
                continue;
            }
        };
        if version == 1 {
            report.added += 1;
        } else {
            report.updated += 1;
        }
        tx.workflow_upsert(&upsert_row(lw, version, enabled))
            .await?;
        let existing = coordinators.get(name);
        sync_coordinator(
            &mut *tx,
            lw,
            existing,
            opts.default_timezone,
            &changed_calendars,
        )
        .await?;
        events.push(NewEvent {
            workflow: Some(name.clone()),
            kind,
            message: match undone {
                // only reached with overwrite_rollbacks: a kept rollback `continue`s above
                Some(to) => format!(
                    "version {version} from {}, replacing the rollback to version {to}",
                    lw.file.display()
                ),
                None => format!("version {version} from {}", lw.file.display()),
            },
            actor: opts.actor.clone(),
            ..Default::default()
        });
    }

    if opts.prune {
        let present: BTreeSet<&str> = set
            .workflows
            .iter()
            .map(|w| w.workflow.name.as_str())
            .collect();
        let in_scope = |file: &str| {
            opts.prune_under
                .as_deref()
                .is_none_or(|dir| file.starts_with(dir))
        };
        for head in heads
            .values()
            .filter(|h| h.enabled && !present.contains(h.name.as_str()) && in_scope(&h.file_path))
        {
            if tx.workflow_set_enabled(&head.name, false).await?.applied() {
                report.disabled += 1;
                report
                    .disabled_files
                    .push((head.name.clone(), head.file_path.clone()));
                events.push(NewEvent {
                    workflow: Some(head.name.clone()),
                    kind: "workflow_disabled",
                    message: format!("its file {} is gone (sync --prune)", head.file_path),
                    actor: opts.actor.clone(),
                    ..Default::default()
                });
            }
        }
    }
    sync_links(&mut *tx, set, opts.prune).await?;
    sync_pools(&mut *tx, set, opts, &mut events).await?;
    tx.event_insert_many(&events).await?;
    if opts.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(report)
}

pub(crate) fn upsert_row(lw: &LoadedWorkflow, version: i64, enabled: bool) -> WorkflowUpsert {
    let w = &lw.workflow;
    WorkflowUpsert {
        name: w.name.clone(),
        version,
        content_hash: lw.content_hash.clone(),
        source_xml: lw.source_xml.clone(),
        definition: serde_json::to_string(w).expect("the definition model always serialises"),
        file_path: lw.file.display().to_string(),
        dir: w.dir.clone(),
        creator: w.creator.clone(),
        description: w.description.clone(),
        mail_level: w
            .mail_level
            .iter()
            .map(|l| match l {
                MailLevel::Succeeded => "succeeded",
                MailLevel::Failed => "failed",
                MailLevel::Killed => "killed",
            })
            .collect::<Vec<_>>()
            .join(","),
        mail_receivers: w.mail_receivers.join(","),
        instance_limit: i64::from(w.instance_limit),
        enabled,
        retention_days: w.retention_days.map(i64::from),
    }
}

fn local_to_utc(tz: Tz, t: Option<NaiveDateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
}

/// Writes the business calendars; the names of those that are new or whose days changed.
async fn sync_calendars(
    tx: &mut dyn StoreTx,
    set: &DefinitionSet,
    prune: bool,
) -> Result<BTreeSet<String>> {
    let stored: BTreeMap<String, String> = tx
        .calendar_list_all()
        .await?
        .into_iter()
        .map(|c| (c.name, c.definition))
        .collect();
    let mut changed = BTreeSet::new();
    for cal in &set.calendars {
        let definition = serde_json::to_string(cal).expect("a calendar serialises");
        if stored.get(&cal.name) == Some(&definition) {
            continue;
        }
        changed.insert(cal.name.clone());
        tx.calendar_upsert(&crate::store::CalendarRow {
            name: cal.name.clone(),
            definition,
        })
        .await?;
    }
    if prune {
        for name in stored.keys() {
            if !set.calendars.iter().any(|c| &c.name == name) {
                tx.calendar_delete(name).await?;
            }
        }
    }
    Ok(changed)
}

/// Writes the coordinator row, keeping its fire state unless the schedule itself (its calendar's
/// days included) changed.
pub(crate) async fn sync_coordinator(
    tx: &mut dyn StoreTx,
    lw: &LoadedWorkflow,
    existing: Option<&CoordinatorRow>,
    default_tz: Tz,
    changed_calendars: &BTreeSet<String>,
) -> Result<()> {
    let name = &lw.workflow.name;
    let Some(c) = &lw.workflow.coordinator else {
        if existing.is_some() {
            tx.coordinator_delete(name).await?;
            tx.coordinator_deadline_set(name, None).await?;
        }
        return Ok(());
    };
    let tz: Tz = match &c.timezone {
        Some(z) => z
            .parse()
            .map_err(|_| Error::Config(format!("workflow {name}: unknown timezone `{z}`")))?,
        None => default_tz,
    };
    let mut row = CoordinatorRow {
        workflow: name.clone(),
        cron: c.cron.clone(),
        timezone: tz.name().to_string(),
        depends: serde_json::to_string(&c.depends).expect("names serialise"),
        params: serde_json::to_string(&c.params).expect("params serialise"),
        enabled: c.enabled,
        start_time: local_to_utc(tz, c.start_time),
        end_time: local_to_utc(tz, c.end_time),
        next_fire_at: None,
        last_fire_at: None,
        catchup: c.catchup.as_str().to_string(),
        max_catchup: i64::from(c.max_catchup),
        calendar: c.calendar.clone(),
    };
    if let Some(old) = existing {
        row.last_fire_at = old.last_fire_at;
        let same_schedule = old.cron == row.cron
            && old.timezone == row.timezone
            && old.start_time == row.start_time
            && old.end_time == row.end_time
            && old.calendar == row.calendar
            && !row
                .calendar
                .as_ref()
                .is_some_and(|n| changed_calendars.contains(n));
        if same_schedule {
            // the trigger computes next_fire_at when it is NULL
            row.next_fire_at = old.next_fire_at;
        }
    }
    tx.coordinator_upsert(&row).await?;
    tx.coordinator_depend_set(name, &c.depends).await?;
    let deadline = c.deadline.map(|d| d.to_string());
    tx.coordinator_deadline_set(name, deadline.as_deref())
        .await?;
    Ok(())
}

async fn sync_links(tx: &mut dyn StoreTx, set: &DefinitionSet, prune: bool) -> Result<()> {
    for link in &set.db_links {
        tx.db_link_upsert(link).await?;
    }
    for link in &set.file_links {
        tx.file_link_upsert(link).await?;
    }
    if prune {
        for name in tx.db_link_names().await? {
            if !set.db_links.iter().any(|l| l.name == name) {
                tx.db_link_delete(&name).await?;
            }
        }
        for name in tx.file_link_names().await? {
            if !set.file_links.iter().any(|l| l.name == name) {
                tx.file_link_delete(&name).await?;
            }
        }
    }
    Ok(())
}

/// Writes the pools of `pools.xml`. A pool's limit is set from the file when the pool is new or the
/// file's number for it changed since the last sync; otherwise a limit set with `pool set` stays.
async fn sync_pools(
    tx: &mut dyn StoreTx,
    set: &DefinitionSet,
    opts: &SyncOptions,
    events: &mut Vec<NewEvent>,
) -> Result<()> {
    if set.pools.is_empty() && !opts.prune {
        return Ok(());
    }
    let stored = tx.pool_defs().await?;
    let mut wanted: Vec<&definition::Pool> = set.pools.iter().collect();
    wanted.sort_by(|a, b| a.name.cmp(&b.name));
    for pool in wanted {
        let slots = i64::from(pool.slots);
        let old = stored.iter().find(|p| p.name == pool.name);
        let message = match old {
            None => format!("pool {}: {slots} slots (pools.xml)", pool.name),
            Some(o) if o.file_slots != slots => format!(
                "pool {}: slots {} -> {slots} (pools.xml changed)",
                pool.name, o.slots
            ),
            Some(o) if o.description != pool.description => String::new(),
            Some(_) => continue,
        };
        let row = match old {
            Some(o) if message.is_empty() => crate::store::PoolDef {
                description: pool.description.clone(),
                ..o.clone()
            },
            _ => crate::store::PoolDef {
                name: pool.name.clone(),
                slots,
                file_slots: slots,
                description: pool.description.clone(),
                updated_by: opts.actor.clone(),
            },
        };
        tx.pool_write(&row).await?;
        if !message.is_empty() {
            events.push(NewEvent {
                kind: "pool_set",
                message,
                actor: opts.actor.clone(),
                ..Default::default()
            });
        }
    }
    if opts.prune {
        for old in stored
            .iter()
            .filter(|o| !set.pools.iter().any(|p| p.name == o.name))
        {
            tx.pool_delete(&old.name).await?;
            events.push(NewEvent {
                kind: "pool_deleted",
                message: format!("pool {}: not in pools.xml (sync --prune)", old.name),
                actor: opts.actor.clone(),
                ..Default::default()
            });
        }
    }
    Ok(())
}

async fn blocking_load(files: Vec<definition::SourceFile>) -> Result<DefinitionSet> {
    tokio::task::spawn_blocking(move || definition::load_sources(files))
        .await
        .map_err(|e| Error::Config(format!("definition loader crashed: {e}")))?
        .map_err(Error::Invalid)
}

/// A definitions directory whose last rescan failed: what `akkaflow status`, the UI's banner, the
/// API's cluster status and `/metrics` show.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DefinitionsProblem {
    /// The directory.
    pub source: String,
    /// Errors of its last rescan.
    pub error_count: i64,
    /// Since when its rescans have failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// When the set that keeps running was synced (`None`: none ever was from this directory).
    pub synced_at: Option<DateTime<Utc>>,
    /// The first errors, `file:line:col: message`.
    pub errors: Vec<String>,
    /// "definitions: N errors since HH:MM, running the set synced at HH:MM" (UTC).
    pub summary: String,
}

/// What a banner says besides the errors: nothing of the directory syncs until they are fixed.
pub const HELD_BACK: &str =
    "valid changes in other files are held back too until these are fixed (a sync is all or nothing)";

/// The definitions directories whose last rescan failed.
pub async fn definition_problems(store: &dyn Store) -> Result<Vec<DefinitionsProblem>> {
    let hhmm = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.format("%H:%M").to_string())
            .unwrap_or_else(|| "-".into())
    };
    Ok(store
        .definition_sync_list()
        .await?
        .into_iter()
        .filter(|r| r.error_count > 0)
        .map(|r| DefinitionsProblem {
            summary: format!(
                "definitions: {} error{} since {}, {}",
                r.error_count,
                if r.error_count == 1 { "" } else { "s" },
                hhmm(r.failing_since),
                match r.synced_at {
                    Some(_) => format!("running the set synced at {}", hhmm(r.synced_at)),
                    None => "no set synced from this directory yet".into(),
                }
            ),
            errors: r.error_list(),
            source: r.source,
            error_count: r.error_count,
            failing_since: r.failing_since,
            synced_at: r.synced_at,
        })
        .collect())
}
