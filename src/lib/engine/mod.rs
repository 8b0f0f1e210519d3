//! The engine: every run-state operation, written once and used by the CLI, the scheduler, the
//! worker and the HTTP API alike.
//!
//! - `state`: the run-state vocabulary (statuses, ids, what an attempt's end means); pure.
//! - `dag`: the DAG step, a node's new state → a [`dag::Plan`]; pure.
//! - `advance`: the one loop that applies plans and what follows from them (children, email nodes,
//!   instance ends, parents, pending instances, downstream coordinators) inside one transaction,
//!   locking instances in ascending id order.
//! - `task`, `instance`, `workflow`: the operations (complete, batched complete, rescue, hand-back,
//!   kill, retry, rerun, create, enable), each an entry into that loop.
//! - `alerts`: which alerts a state change writes, in its transaction.
//! - `pool`: `pool set`, and why a ready task waits for its pool.
//!
//! Each operation is one transaction that locks the instance row first (then, when needed, the
//! workflow row), applies guarded updates, writes an `event` row per change, and commits. Deadlocks
//! and lock timeouts retry the whole operation a bounded number of times.

mod advance;
mod alerts;
pub mod dag;
mod instance;
pub mod pool;
pub mod state;
mod task;
pub mod why;
mod workflow;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono_tz::Tz;
use tokio::sync::Notify;

use crate::definition::Workflow;
use crate::error::{Error, Result};
use crate::store::Store;

pub(crate) use advance::Advance;
pub(crate) use instance::runnable;
pub use instance::{BackfillLink, CreateInstance, Created, BACKFILL_PRIORITY_DROP};

/// Shared handle on the store plus what every operation needs.
#[derive(Clone)]
pub struct Engine {
    pub store: Arc<dyn Store>,
    defs: Arc<DefinitionCache>,
    /// Fired when this process made tasks ready, so a local worker claims at once.
    pub wake: Arc<Notify>,
    /// Zone for coordinator-less workflows' time expressions.
    pub timezone: Tz,
    /// When state changes write alerts.
    pub alerts: crate::alert::AlertPolicy,
    /// How many lost attempts fail a task whose definition sets no `lost-times`.
    pub max_lost_attempts: u32,
}

impl Engine {
    pub fn new(store: Arc<dyn Store>, timezone: Tz) -> Self {
        Engine {
            store,
            defs: Arc::new(DefinitionCache::default()),
            wake: Arc::new(Notify::new()),
            timezone,
            alerts: crate::alert::AlertPolicy::default(),
            max_lost_attempts: state::DEFAULT_MAX_LOST_ATTEMPTS,
        }
    }

    /// An engine with the configuration's zone and alert policy: what every role and command uses.
    pub fn for_config(store: Arc<dyn Store>, cfg: &crate::config::Config) -> Self {
        Engine {
            alerts: cfg.alerts.clone(),
            max_lost_attempts: cfg.max_lost_attempts,
            ..Engine::new(store, cfg.timezone)
        }
    }

    /// The zone an instance of `def` evaluates `${time..}` in: its coordinator's, else the server's.
    pub fn zone_of(&self, def: &Workflow) -> Tz {
        def.coordinator
            .as_ref()
            .and_then(|c| c.timezone.as_deref())
            .and_then(|z| z.parse().ok())
            .unwrap_or(self.timezone)
    }

    /// The definition an instance runs (immutable per version, so cached forever).
    pub async fn definition(&self, workflow: &str, version: i64) -> Result<Arc<Workflow>> {
        if let Some(def) = self.defs.get(workflow, version) {
            return Ok(def);
        }
        let json = self.store.workflow_definition(workflow, version).await?;
        self.cache_definition(workflow, version, json)
    }

    /// [`Engine::definition`] inside transaction `tx`, which reads a definition not cached yet
    /// itself: a transaction must not wait for a second pooled connection (through a
    /// transaction-pooling PgBouncer it can wait on others doing the same).
    pub(crate) async fn definition_in(
        &self,
        tx: &mut dyn crate::store::StoreTx,
        workflow: &str,
        version: i64,
    ) -> Result<Arc<Workflow>> {
        if let Some(def) = self.defs.get(workflow, version) {
            return Ok(def);
        }
        let json = tx.workflow_definition(workflow, version).await?;
        self.cache_definition(workflow, version, json)
    }

    fn cache_definition(
        &self,
        workflow: &str,
        version: i64,
        json: Option<String>,
    ) -> Result<Arc<Workflow>> {
        let json = json.ok_or_else(|| {
            Error::refused(format!("workflow `{workflow}` has no version {version}"))
        })?;
        Ok(self.defs.put(
            workflow,
            version,
            parse_definition(workflow, version, &json)?,
        ))
    }

    /// Reads the current definitions of those `workflows` of which no version is cached yet, in
    /// one statement: a group of fires after a start or failover (10,000 coordinators due in one
    /// minute) then reads no definition one by one inside its transaction. A failed read only
    /// leaves each to be read when it is needed.
    pub async fn warm_definitions(&self, workflows: &[String]) {
        let unknown = self.defs.unknown(workflows);
        if unknown.is_empty() {
            return;
        }
        match self.store.workflow_definitions_current(&unknown).await {
            Ok(rows) => {
                for (name, version, json) in rows {
                    // an unreadable one is reported by `definition` when it is needed
                    if let Ok(def) = parse_definition(&name, version, &json) {
                        self.defs.put(&name, version, def);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "definitions not read ahead"),
        }
    }

    /// Runs `op` again when the database reports a deadlock or lock timeout (MySQL 1213/1205,
    /// SQLite busy); for operations that change no run state (an [`Advance`] retries itself).
    pub(crate) async fn retrying<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        crate::store::retry::retrying(crate::store::retry::ENGINE, op).await
    }
}

/// A stored definition, parsed; unreadable JSON is a corrupt row.
fn parse_definition(workflow: &str, version: i64, json: &str) -> Result<Workflow> {
    serde_json::from_str(json).map_err(|e| {
        Error::Store(crate::store::StoreError::Corrupt {
            table: "workflow_version",
            column: "definition",
            value: format!("{workflow} v{version}: {e}"),
        })
    })
}

/// Immutable definitions by workflow, then version.
#[derive(Default)]
struct DefinitionCache {
    map: Mutex<HashMap<String, HashMap<i64, Arc<Workflow>>>>,
}

impl DefinitionCache {
    fn get(&self, workflow: &str, version: i64) -> Option<Arc<Workflow>> {
        self.map
            .lock()
            .expect("cache lock is never poisoned")
            .get(workflow)?
            .get(&version)
            .cloned()
    }

    /// Which of `workflows` have no version cached at all, each once.
    fn unknown(&self, workflows: &[String]) -> Vec<String> {
        let map = self.map.lock().expect("cache lock is never poisoned");
        let mut unknown: Vec<String> = workflows
            .iter()
            .filter(|w| !map.contains_key(*w))
            .cloned()
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }

    fn put(&self, workflow: &str, version: i64, def: Workflow) -> Arc<Workflow> {
        let def = Arc::new(def);
        self.map
            .lock()
            .expect("cache lock is never poisoned")
            .entry(workflow.to_string())
            .or_default()
            .insert(version, def.clone());
        def
    }
}
