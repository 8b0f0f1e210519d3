//! Pool operations: `pool set` (the limit at once, fleet-wide: claims read it under the pool's lock)
//! and why a ready task is waiting for its pool.

use super::Engine;
use crate::error::{Error, Result};
use crate::state::TaskStatus;
use crate::store::{NewEvent, PoolRow, TaskRow};

/// What `pool set` changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PoolChange {
    pub name: String,
    pub old_slots: i64,
    pub slots: i64,
}

impl Engine {
    /// Sets a pool's slots; running tasks above a lowered limit finish, and no new one starts until
    /// the pool is under it. One transaction with its `pool_set` event. The next sync that changes
    /// the pool's `slots` in pools.xml sets it again.
    pub async fn pool_set(&self, name: &str, slots: i64, actor: &str) -> Result<PoolChange> {
        if slots < 0 {
            return Err(Error::refused(format!(
                "pool `{name}`: slots must be 0 or more, not {slots}"
            )));
        }
        self.retrying(|| async {
            let mut tx = self.store.begin().await?;
            let Some(mut def) = tx.pool_lock(name).await? else {
                return Err(Error::refused(format!(
                    "unknown pool `{name}`: pools are defined in pools.xml and loaded by sync"
                )));
            };
            let old = def.slots;
            def.slots = slots;
            def.updated_by = actor.to_string();
            tx.pool_write(&def).await?;
            tx.event_insert_many(&[NewEvent {
                kind: "pool_set",
                message: format!("pool {name}: slots {old} -> {slots} by {actor}"),
                actor: actor.to_string(),
                ..Default::default()
            }])
            .await?;
            tx.commit().await?;
            Ok(PoolChange {
                name: name.to_string(),
                old_slots: old,
                slots,
            })
        })
        .await
    }
}

/// Why a ready task has not started, when its pool holds it back: "waiting for pool warehouse: 4
/// of 4 slots in use". `None` for a task that is not ready or not in a pool, or whose pool has room
/// (a worker will claim it).
pub fn pool_wait_reason(task: &TaskRow, pools: &[PoolRow]) -> Option<String> {
    if task.status != TaskStatus::Ready || task.pool.is_empty() {
        return None;
    }
    let Some(p) = pools.iter().find(|p| p.name == task.pool) else {
        return Some(format!(
            "waiting for pool {}, which is not defined: add it to pools.xml and sync",
            task.pool
        ));
    };
    if task.pool_slots > p.slots {
        return Some(format!(
            "waiting for pool {}: needs {} slots, the pool has {}",
            p.name, task.pool_slots, p.slots
        ));
    }
    if p.used + task.pool_slots > p.slots {
        return Some(format!(
            "waiting for pool {}: {} of {} slots in use",
            p.name, p.used, p.slots
        ));
    }
    None
}
