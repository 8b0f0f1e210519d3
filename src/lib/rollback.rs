//! `workflow rollback NAME --to V`: the content of stored version V becomes the workflow's newest
//! version (V's XML, definition and coordinator, under the next version number), in one
//! transaction with a `workflow_rolled_back` event naming who did it.
//!
//! The definitions directory still holds the newer file afterwards. Sync must not undo the
//! rollback behind the operator's back, so the workflow row keeps `rolled_back_to = V` and sync
//! (see [`crate::sync`]) *keeps* the database's version while the file differs, reporting it on
//! every run, until either the file is updated to the rolled-back content (sync then clears the
//! mark) or an operator passes `sync --overwrite-rollbacks`, which says that it undid the rollback.
//!
//! Never re-validates the old content against today's links and calendars: it ran before, and a
//! rollback is for getting back to what worked, fast.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono_tz::Tz;
use serde::Serialize;

use crate::definition::{LoadedWorkflow, Workflow};
use crate::error::{Error, Result};
use crate::store::{NewEvent, Store, StoreError};
use crate::sync::{sync_coordinator, upsert_row};

/// What a rollback did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RolledBack {
    pub workflow: String,
    /// The version that was current before
    pub from: i64,
    /// The version whose content now runs
    pub to: i64,
    /// The new version holding that content
    pub version: i64,
    /// The workflow's file, which still has the content of `from`
    pub file_path: String,
    /// What sync will do about the file, for the operator
    pub message: String,
}

/// Makes version `to` of `name` its newest version; refused when `to` is unknown or already the
/// current content.
pub async fn rollback(
    store: &Arc<dyn Store>,
    name: &str,
    to: i64,
    actor: &str,
    default_tz: Tz,
) -> Result<RolledBack> {
    let versions = store.workflow_versions(name).await?;
    if versions.is_empty() {
        return Err(Error::refused(format!("unknown workflow `{name}`")));
    }
    let old = versions.iter().find(|v| v.version == to).ok_or_else(|| {
        Error::refused(format!(
            "workflow `{name}` has no version {to} (it has 1 to {})",
            versions.last().map_or(0, |v| v.version)
        ))
    })?;
    let json = store
        .workflow_definition(name, to)
        .await?
        .ok_or_else(|| Error::refused(format!("workflow `{name}` has no version {to}")))?;
    let workflow: Workflow = serde_json::from_str(&json).map_err(|e| {
        Error::Store(StoreError::Corrupt {
            table: "workflow_version",
            column: "definition",
            value: format!("{name} v{to}: {e}"),
        })
    })?;
    crate::store::retry::retrying(crate::store::retry::ENGINE, || async {
        let mut tx = store.begin().await?;
        let head = tx
            .workflow_lock(name)
            .await?
            .ok_or_else(|| Error::refused(format!("unknown workflow `{name}`")))?;
        if head.content_hash == old.content_hash {
            return Err(Error::refused(format!(
                "workflow `{name}` version {} already has the content of version {to}: nothing to roll back",
                head.version
            )));
        }
        let lw = LoadedWorkflow {
            workflow: workflow.clone(),
            file: head.file_path.clone().into(),
            source_xml: old.source_xml.clone(),
            content_hash: old.content_hash.clone(),
        };
        let version = head.version + 1;
        let mut row = upsert_row(&lw, version, head.enabled);
        // byte for byte what was stored, whatever this build's serialiser would write
        row.definition = json.clone();
        tx.workflow_upsert(&row).await?;
        let existing = tx
            .coordinator_list_all()
            .await?
            .into_iter()
            .find(|c| c.workflow == name);
        sync_coordinator(
            &mut *tx,
            &lw,
            existing.as_ref(),
            default_tz,
            &BTreeSet::new(),
        )
        .await?;
        tx.workflow_set_rolled_back(name, Some(to)).await?;
        let message = format!(
            "the workflow's file {} still has other content: while it differs from version \
             {version}, `sync` keeps this rollback and reports the file as differing, until the file \
             is updated (`akkaflow workflow show {name} > FILE`) or `sync --overwrite-rollbacks` \
             replaces the rollback with the file",
            head.file_path
        );
        tx.event_insert_many(&[NewEvent {
            workflow: Some(name.to_string()),
            kind: "workflow_rolled_back",
            message: format!(
                "version {version} has version {to}'s content (rolled back from version {}) by {actor}",
                head.version
            ),
            actor: actor.to_string(),
            ..Default::default()
        }])
        .await?;
        tx.commit().await?;
        Ok(RolledBack {
            workflow: name.to_string(),
            from: head.version,
            to,
            version,
            file_path: head.file_path.clone(),
            message,
        })
    })
    .await
}
