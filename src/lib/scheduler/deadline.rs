//! The deadline watch: for every coordinator with a `deadline`, each cron slot whose deadline has
//! passed is checked once: when the slot has no instance that succeeded by then (late, failed, or
//! never created), a `deadline_miss` row and a `deadline` alert saying why are written in one
//! transaction. When such a slot's instance succeeds later, a `late_done` alert follows.
//!
//! A maintenance service of the master, in the shape of the rescuer: a [`DeadlineConfig`] with
//! defaults and [`DeadlineWatch::run_once`]. Its state is in the database, so a failover neither
//! loses nor repeats a check: `coordinator_deadline.checked_through` moves by compare-and-set in the
//! transaction that records the misses, and `deadline_miss` is unique per slot, so a second master
//! racing the first writes nothing twice.

use chrono::{DateTime, Duration, Utc};

use super::trigger::{calendars_of, Schedule};
use crate::alert::{self, DeadlineFacts};
use crate::definition::deadline::Deadline;
use crate::engine::{why, Engine};
use crate::error::{Error, Result};
use crate::state::InstanceStatus;
use crate::store::{DeadlineWatch as Watched, LateDone, NewDeadlineMiss};

/// Tunables of the deadline watch.
#[derive(Clone, Debug)]
pub struct DeadlineConfig {
    /// Slots of one coordinator checked per pass at most (after a long outage the rest follow on
    /// the next passes). Default 100.
    pub max_slots: usize,
    /// Late successes read per pass. Default 200.
    pub late_done_batch: i64,
}

impl Default for DeadlineConfig {
    fn default() -> Self {
        DeadlineConfig {
            max_slots: 100,
            late_done_batch: 200,
        }
    }
}

impl DeadlineConfig {
    fn validate(&self) -> Result<()> {
        if self.max_slots < 1 || self.late_done_batch < 1 {
            return Err(Error::Config(format!(
                "deadline watch: max_slots ({}) and late_done_batch ({}) must be at least 1",
                self.max_slots, self.late_done_batch
            )));
        }
        Ok(())
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeadlineReport {
    /// Slots found late (each with its `deadline` or, already done late, `late_done` alert).
    pub missed: usize,
    /// Late slots whose instance has succeeded since.
    pub late_done: usize,
}

pub struct DeadlineWatch {
    engine: Engine,
    cfg: DeadlineConfig,
}

/// A slot found late in this pass.
struct Miss {
    slot: DateTime<Utc>,
    deadline_at: DateTime<Utc>,
    why: String,
    instance: Option<crate::store::InstanceRow>,
}

impl DeadlineWatch {
    pub fn new(engine: Engine, cfg: DeadlineConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(DeadlineWatch { engine, cfg })
    }

    /// One pass over every coordinator with a deadline, then over late slots that succeeded since.
    pub async fn run_once(&self) -> Result<DeadlineReport> {
        let mut report = DeadlineReport::default();
        let store = &self.engine.store;
        let watched = store.deadline_watch_list().await?;
        if !watched.is_empty() {
            let now = store.now().await?;
            for w in &watched {
                report.missed += self.check(w, now).await?;
            }
        }
        for done in store.deadline_late_done(self.cfg.late_done_batch).await? {
            let deadline = watched
                .iter()
                .find(|w| w.coordinator.workflow == done.workflow)
                .map_or("", |w| w.deadline.as_str());
            if self.close(&done, deadline).await? {
                report.late_done += 1;
            }
        }
        Ok(report)
    }

    /// Checks the slots of one coordinator whose deadline passed since the last check.
    async fn check(&self, w: &Watched, now: DateTime<Utc>) -> Result<usize> {
        let c = &w.coordinator;
        // a slot off its calendar's business days never fires, so it is never late
        let calendars = calendars_of(&*self.engine.store, std::slice::from_ref(c)).await?;
        let (Ok(deadline), Some(schedule)) =
            (Deadline::parse(&w.deadline), Schedule::of(c, &calendars))
        else {
            tracing::warn!(workflow = %c.workflow, deadline = %w.deadline, "cannot read the deadline or cron: not watched");
            return Ok(0);
        };
        let Some(from) = w.checked_through else {
            // watched from now on: slots whose deadline passed before the deadline existed are not late
            self.record(w, None, now, Vec::new()).await?;
            return Ok(0);
        };
        // read only when a deadline has passed: an idle pass costs no query per coordinator
        let mut watching = None;
        let mut passed = false;
        let mut misses = Vec::new();
        let mut through = now;
        // slots are in order and so are their deadlines: start early enough to reach every slot
        // whose deadline lies after `from`
        let mut cursor = from - deadline.max_span() - Duration::seconds(1);
        while let Some(slot) = schedule.next_after(cursor) {
            cursor = slot;
            let due = deadline.due_at(slot, schedule.tz);
            if due > now || slot > now {
                break;
            }
            if due <= from {
                continue;
            }
            passed = true;
            let watched = match watching {
                Some(w) => w,
                None => *watching.insert(
                    c.enabled
                        && self
                            .engine
                            .store
                            .workflow_get(&c.workflow)
                            .await?
                            .is_some_and(|wf| wf.enabled),
                ),
            };
            if !watched {
                continue;
            }
            if misses.len() == self.cfg.max_slots {
                // the rest on the next pass
                through = misses.last().map_or(from, |m: &Miss| m.deadline_at);
                break;
            }
            let instance = self
                .engine
                .store
                .instance_for_slot(&c.workflow, slot)
                .await?;
            let on_time = instance.as_ref().is_some_and(|i| {
                i.status == InstanceStatus::Succeeded && i.ended_at.is_some_and(|e| e <= due)
            });
            if on_time {
                continue;
            }
            let why =
                why::late(&*self.engine.store, c, slot, instance.as_ref(), schedule.tz).await?;
            misses.push(Miss {
                slot,
                deadline_at: due,
                why,
                instance,
            });
        }
        if !passed {
            // no deadline fell between the last check and now: moving the mark would change nothing
            return Ok(0);
        }
        let n = misses.len();
        Ok(if self.record(w, Some(from), through, misses).await? {
            n
        } else {
            0
        })
    }

    /// Records the misses and moves `checked_through`, in one transaction; false when another
    /// master moved it first (then this pass writes nothing).
    async fn record(
        &self,
        w: &Watched,
        from: Option<DateTime<Utc>>,
        through: DateTime<Utc>,
        misses: Vec<Miss>,
    ) -> Result<bool> {
        let workflow = &w.coordinator.workflow;
        let def = match misses.is_empty() {
            true => None,
            false => Some(self.current_definition(workflow).await?),
        };
        let mut tx = self.engine.store.begin().await?;
        if !tx
            .deadline_checked(workflow, from, through)
            .await?
            .applied()
        {
            tx.rollback().await?;
            return Ok(false);
        }
        for m in &misses {
            let succeeded_late = m
                .instance
                .as_ref()
                .filter(|i| i.status == InstanceStatus::Succeeded)
                .and_then(|i| i.ended_at);
            let recorded = tx
                .deadline_miss_insert(&NewDeadlineMiss {
                    workflow: workflow.clone(),
                    scheduled_for: m.slot,
                    deadline_at: m.deadline_at,
                    reason: m.why.clone(),
                    instance_id: m.instance.as_ref().map(|i| i.id),
                    done_at: succeeded_late,
                })
                .await?;
            if !recorded {
                continue;
            }
            let facts = DeadlineFacts {
                workflow,
                slot: m.slot,
                deadline_at: m.deadline_at,
                deadline: &w.deadline,
                instance_id: m.instance.as_ref().map(|i| i.id),
                state: m.instance.as_ref().map_or("missing", |i| i.status.as_str()),
            };
            let def = def.as_deref().expect("read above when there are misses");
            tracing::warn!(workflow = %workflow, slot = %m.slot, "deadline missed: {}", m.why);
            match succeeded_late {
                // found only after it succeeded (the master was away at the deadline): one alert
                Some(ended) => {
                    self.engine
                        .queue_workflow_alert(&mut *tx, def, "late_done", &m.why, |to| {
                            alert::late_done(&facts, ended, to)
                        })
                        .await?
                }
                None => {
                    self.engine
                        .queue_workflow_alert(&mut *tx, def, "deadline", &m.why, |to| {
                            alert::deadline(&facts, &m.why, to)
                        })
                        .await?
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Closes a late slot that has succeeded since, with its `late_done` alert; false when another
    /// master closed it first.
    async fn close(&self, d: &LateDone, deadline: &str) -> Result<bool> {
        let def = self.current_definition(&d.workflow).await?;
        let facts = DeadlineFacts {
            workflow: &d.workflow,
            slot: d.scheduled_for,
            deadline_at: d.deadline_at,
            deadline,
            instance_id: Some(d.instance_id),
            state: "succeeded",
        };
        let mut tx = self.engine.store.begin().await?;
        if !tx
            .deadline_miss_done(d.miss_id, d.ended_at)
            .await?
            .applied()
        {
            tx.rollback().await?;
            return Ok(false);
        }
        let detail = format!("instance {} succeeded late", d.instance_id);
        self.engine
            .queue_workflow_alert(&mut *tx, &def, "late_done", &detail, |to| {
                alert::late_done(&facts, d.ended_at, to)
            })
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn current_definition(
        &self,
        workflow: &str,
    ) -> Result<std::sync::Arc<crate::definition::Workflow>> {
        let head = self
            .engine
            .store
            .workflow_get(workflow)
            .await?
            .ok_or_else(|| Error::Refused(format!("workflow {workflow} no longer exists")))?;
        self.engine.definition(workflow, head.version).await
    }
}
