//! The rescuer: tasks whose lease ran out (their worker died or lost the database) go back to
//! `ready` (the attempt counts) or fail when attempts are spent, each with an event saying why.

use crate::engine::Engine;
use crate::error::Result;

pub struct Rescuer {
    engine: Engine,
    actor: String,
}

impl Rescuer {
    /// Tasks looked at per pass.
    const BATCH: i64 = 200;

    pub fn new(engine: Engine, actor: String) -> Self {
        Rescuer { engine, actor }
    }

    /// One pass; returns how many tasks were rescued.
    pub async fn run_once(&self) -> Result<usize> {
        let mut rescued = 0;
        for task in self.engine.store.task_lease_expired(Self::BATCH).await? {
            if self.engine.rescue_task(&task, &self.actor).await?.applied() {
                rescued += 1;
                tracing::info!(task_id = %task.id, instance_id = %task.instance_id, node = %task.node,
                    worker_id = task.worker_id.as_deref().unwrap_or("?"), "rescued a task whose lease expired");
            }
        }
        Ok(rescued)
    }
}
