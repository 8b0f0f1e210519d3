//! Workflow operations: enable and disable (a disabled workflow starts no new instance; running ones
//! continue).

use super::Engine;
use crate::error::{Error, Result};
use crate::store::{Cas, NewEvent};

impl Engine {
    /// Enables or disables a workflow; `Stale` when it already was. Writes a `workflow_enabled` or
    /// `workflow_disabled` event when it changed.
    pub async fn set_workflow_enabled(
        &self,
        name: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<Cas> {
        if self.store.workflow_get(name).await?.is_none() {
            return Err(Error::refused(format!("unknown workflow `{name}`")));
        }
        self.retrying(|| async {
            let mut tx = self.store.begin().await?;
            let cas = tx.workflow_set_enabled(name, enabled).await?;
            if cas.applied() {
                tx.event_insert_many(&[NewEvent {
                    workflow: Some(name.to_string()),
                    kind: if enabled {
                        "workflow_enabled"
                    } else {
                        "workflow_disabled"
                    },
                    message: format!(
                        "{} by {actor}",
                        if enabled { "enabled" } else { "disabled" }
                    ),
                    actor: actor.to_string(),
                    ..Default::default()
                }])
                .await?;
            }
            tx.commit().await?;
            Ok(cas)
        })
        .await
    }
}
