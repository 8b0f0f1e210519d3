//! Backfill: runs a range of a coordinator's past cron slots again, one instance per slot.
//!
//! A backfill is a `backfill` row (range, reprocess policy, parallelism, order, blood, parameters,
//! priority, who) with one `backfill_slot` row per slot of the range, decided when it is created
//! ([`plan`]): to run, or skipped and why. The master's [`Backfiller`] drives every running
//! backfill: while fewer than `parallel` of its slots' instances are live it creates the next
//! slots' instances (oldest first, newest with `reverse`), and once every slot has ended it ends
//! the backfill. All its state is in rows, so a restart or a failover picks it up where it was.
//!
//! Invariants:
//! - a slot's instance is created through the engine's one creation path
//!   ([`crate::engine::Advance`]), with the cron fire's parameters for that slot, in the
//!   transaction that records it on the slot, under the backfill row's lock; the instance's unique
//!   slot key includes the backfill, so no master creates a slot twice;
//! - its instances (`trigger_kind = 'backfill'`) never satisfy dependencies, never count as the
//!   slot's scheduled run for a deadline, and never move the coordinator's `next_fire_at`;
//! - every backfill state change is a compare-and-set with an event in its transaction.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use utoipa::ToSchema;

use super::trigger::{calendars_of, Schedule};
use crate::engine::{Advance, BackfillLink, CreateInstance, Engine};
use crate::error::{Error, Result};
use crate::state::{
    BackfillId, BackfillStatus, InstanceId, InstanceStatus, Reprocess, TriggerKind,
};
use crate::store::{
    BackfillFilter, BackfillRow, BackfillSlotRow, BackfillTransition, NewBackfill, NewBackfillSlot,
    NewEvent, SlotHistory,
};

mod plan;

pub use plan::{plan, BackfillPlan, BackfillRequest, PlannedSlot};

/// A backfill covers at most this many slots (an every-minute cron over a week is 10,080).
pub const MAX_SLOTS: usize = 20_000;

/// Tunables of the backfill service.
#[derive(Clone, Debug)]
pub struct BackfillConfig {
    /// Running backfills driven per pass at most (the oldest first; the rest on later passes).
    /// Default 100.
    pub batch: i64,
    /// How often a pass also looks for cancelled backfills with live instances (a cancel whose
    /// kills were cut short when the canceller died): rare, so not every pass. Default 60 s;
    /// the first pass of a process always looks.
    pub cancel_sweep: std::time::Duration,
}

impl Default for BackfillConfig {
    fn default() -> Self {
        BackfillConfig {
            batch: 100,
            cancel_sweep: std::time::Duration::from_secs(60),
        }
    }
}

impl BackfillConfig {
    fn validate(&self) -> Result<()> {
        if self.batch < 1 {
            return Err(Error::Config(format!(
                "backfill: batch ({}) must be at least 1",
                self.batch
            )));
        }
        Ok(())
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Backfills still running after the pass.
    pub running: usize,
    /// Slot instances created.
    pub launched: usize,
    /// Backfills that ended.
    pub ended: usize,
    /// Instances of cancelled backfills killed.
    pub killed: usize,
}

impl BackfillReport {
    pub fn is_empty(&self) -> bool {
        self.launched == 0 && self.ended == 0 && self.killed == 0
    }
}

/// The master's backfill service. See the module doc.
pub struct Backfiller {
    engine: Engine,
    actor: String,
    cfg: BackfillConfig,
    last_cancel_sweep: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Backfiller {
    pub fn new(engine: Engine, actor: String, cfg: BackfillConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Backfiller {
            engine,
            actor,
            cfg,
            last_cancel_sweep: std::sync::Mutex::new(None),
        })
    }

    /// One pass over the running backfills (and, every `cancel_sweep`, the live instances of
    /// cancelled ones).
    pub async fn run_once(&self) -> Result<BackfillReport> {
        let mut report = BackfillReport::default();
        let store = &self.engine.store;
        let mut running = store
            .backfill_list(&BackfillFilter {
                status: Some(BackfillStatus::Running),
                limit: self.cfg.batch,
                ..Default::default()
            })
            .await?;
        running.reverse(); // oldest first
        for b in &running {
            match self.step(b, &mut report).await {
                Ok(()) => {}
                Err(Error::Refused(why)) => {
                    // the workflow went away or was disabled: the backfill cannot go on
                    tracing::error!(backfill_id = %b.id, workflow = %b.workflow, "backfill failed: {why}");
                    if self.end(b, BackfillStatus::Failed, Some(why)).await? {
                        report.ended += 1;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        report.running = running.len() - report.ended;
        // a cancel whose kills were cut short (the canceller died) is finished here
        let sweep = {
            let mut last = self.last_cancel_sweep.lock().expect("never poisoned");
            let due = last.is_none_or(|t| t.elapsed() >= self.cfg.cancel_sweep);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if !sweep {
            return Ok(report);
        }
        for b in store
            .backfill_list(&BackfillFilter {
                status: Some(BackfillStatus::Cancelled),
                limit: 10,
                ..Default::default()
            })
            .await?
        {
            report.killed += kill_live(&self.engine, b.id, &self.actor).await?;
        }
        Ok(report)
    }

    async fn step(&self, b: &BackfillRow, report: &mut BackfillReport) -> Result<()> {
        let slots = self.engine.store.backfill_slot_list(b.id).await?;
        let t = Tally::of(&slots);
        if t.waiting == 0 && t.live == 0 {
            let (status, error) = t.outcome();
            if self.end(b, status, error).await? {
                report.ended += 1;
            }
            return Ok(());
        }
        if t.waiting == 0 || t.live >= b.parallel {
            return Ok(());
        }
        let id = b.id;
        let launched = self
            .engine
            .advance(&self.actor, |adv: &mut Advance<'_>| {
                Box::pin(async move { launch(adv, id).await })
            })
            .await?;
        if launched > 0 {
            self.engine.wake.notify_one();
        }
        report.launched += launched;
        Ok(())
    }

    /// Ends a running backfill; false when it had ended already (another master, a cancel).
    async fn end(
        &self,
        b: &BackfillRow,
        status: BackfillStatus,
        error: Option<String>,
    ) -> Result<bool> {
        let ended = transition(
            &self.engine,
            b,
            BackfillStatus::Running,
            status,
            error,
            &self.actor,
        )
        .await?;
        if ended {
            tracing::info!(backfill_id = %b.id, workflow = %b.workflow, status = %status, "backfill ended");
        }
        Ok(ended)
    }
}

/// Creates the next slots' instances of backfill `id` while fewer than `parallel` are live, in the
/// transaction holding the backfill's row lock; how many it created.
async fn launch(adv: &mut Advance<'_>, id: BackfillId) -> Result<usize> {
    let Some(b) = adv.tx().backfill_lock(id).await? else {
        return Ok(0);
    };
    if b.status != BackfillStatus::Running {
        return Ok(0);
    }
    let slots = adv.tx().backfill_slot_list(id).await?;
    let picks = next_slots(&b, &slots);
    if picks.is_empty() {
        return Ok(0);
    }
    let params: BTreeMap<String, String> = serde_json::from_str(&b.params).map_err(|_| {
        Error::Store(crate::store::StoreError::Corrupt {
            table: "backfill",
            column: "params",
            value: b.params.clone(),
        })
    })?;
    let link = BackfillLink {
        id,
        priority: b.priority,
    };
    let now = adv.now().await?;
    for slot in &picks {
        let req = CreateInstance {
            workflow: b.workflow.clone(),
            trigger: TriggerKind::Backfill,
            scheduled_for: Some(*slot),
            params: params.clone(),
            coordinator_params: true,
            parent: None,
            actor: adv.actor.clone(),
        };
        let created = adv.create_for(&req, Some(link), now).await?;
        let Some(instance) = created.id else {
            return Err(Error::Conflict(format!(
                "backfill {id}: slot {slot} was created by someone else"
            )));
        };
        if !adv
            .tx()
            .backfill_slot_launch(id, *slot, instance)
            .await?
            .applied()
        {
            return Err(Error::Conflict(format!(
                "backfill {id}: slot {slot} was launched by someone else"
            )));
        }
    }
    Ok(picks.len())
}

/// The slots to create now: the next waiting ones in the backfill's order, as many as `parallel`
/// leaves room for.
fn next_slots(b: &BackfillRow, slots: &[BackfillSlotRow]) -> Vec<DateTime<Utc>> {
    let t = Tally::of(slots);
    let room = usize::try_from((b.parallel - t.live).max(0)).unwrap_or(0);
    let waiting = slots
        .iter()
        .filter(|s| s.skip_reason.is_none() && s.instance_id.is_none())
        .map(|s| s.slot);
    let mut out: Vec<DateTime<Utc>> = if b.reverse {
        waiting.rev().take(room).collect()
    } else {
        waiting.take(room).collect()
    };
    out.truncate(room);
    out
}

/// A backfill's slots counted by where they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    skipped: usize,
    waiting: usize,
    live: i64,
    succeeded: usize,
    failed: usize,
}

impl Tally {
    fn of(slots: &[BackfillSlotRow]) -> Tally {
        let mut t = Tally::default();
        for s in slots {
            match (&s.skip_reason, s.instance_id, s.status) {
                (Some(_), _, _) => t.skipped += 1,
                (None, None, _) => t.waiting += 1,
                (None, Some(_), Some(InstanceStatus::Succeeded)) => t.succeeded += 1,
                (None, Some(_), Some(st)) if st.is_terminal() => t.failed += 1,
                // pruned instances count as ended badly: nobody can say they succeeded
                (None, Some(_), None) => t.failed += 1,
                (None, Some(_), Some(_)) => t.live += 1,
            }
        }
        t
    }

    /// How a backfill whose slots have all ended ends.
    fn outcome(&self) -> (BackfillStatus, Option<String>) {
        if self.failed == 0 {
            (BackfillStatus::Succeeded, None)
        } else {
            (
                BackfillStatus::Failed,
                Some(format!(
                    "{} of {} slot(s) did not succeed",
                    self.failed,
                    self.failed + self.succeeded
                )),
            )
        }
    }
}

/// One compare-and-set of a backfill's status with its event, in one transaction.
async fn transition(
    engine: &Engine,
    b: &BackfillRow,
    from: BackfillStatus,
    to: BackfillStatus,
    error: Option<String>,
    actor: &str,
) -> Result<bool> {
    let mut tx = engine.store.begin().await?;
    let cas = tx
        .backfill_transition(&BackfillTransition {
            id: b.id,
            from,
            to,
            error: error.clone(),
        })
        .await?;
    if !cas.applied() {
        tracing::debug!(backfill_id = %b.id, "backfill changed meanwhile; not ended here");
        tx.rollback().await?;
        return Ok(false);
    }
    tx.event_insert_many(&[NewEvent {
        workflow: Some(b.workflow.clone()),
        kind: "backfill_transition",
        from_status: Some(from.as_str()),
        to_status: Some(to.as_str()),
        message: match &error {
            Some(e) => format!("backfill {} {to}: {e}", b.id),
            None => format!("backfill {} {to}", b.id),
        },
        actor: actor.to_string(),
        ..Default::default()
    }])
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Kills the live instances of backfill `id` through the engine's kill; how many it killed.
async fn kill_live(engine: &Engine, id: BackfillId, actor: &str) -> Result<usize> {
    let mut killed = 0;
    for s in engine.store.backfill_slot_list(id).await? {
        let (Some(instance), Some(status)) = (s.instance_id, s.status) else {
            continue;
        };
        if status.is_terminal() {
            continue;
        }
        match engine.kill_instance(instance, actor).await {
            Ok(()) => killed += 1,
            // it ended meanwhile
            Err(Error::Refused(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(killed)
}

/// Cancels a running backfill: it creates no more instances, and those that run are killed.
pub async fn cancel(engine: &Engine, id: BackfillId, actor: &str) -> Result<CancelReport> {
    let b = engine
        .store
        .backfill_get(id)
        .await?
        .ok_or_else(|| Error::refused(format!("no backfill {id}")))?;
    if b.status != BackfillStatus::Running
        || !transition(
            engine,
            &b,
            BackfillStatus::Running,
            BackfillStatus::Cancelled,
            Some(format!("cancelled by {actor}")),
            actor,
        )
        .await?
    {
        let now = engine.store.backfill_get(id).await?.map(|b| b.status);
        return Err(Error::refused(format!(
            "backfill {id} has already ended ({})",
            now.unwrap_or(b.status)
        )));
    }
    let killed = kill_live(engine, id, actor).await?;
    Ok(CancelReport { id, killed })
}

/// What a cancel did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CancelReport {
    pub id: BackfillId,
    /// Instances killed.
    pub killed: usize,
}

/// A backfill with its slots, as `backfill info` shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BackfillInfo {
    #[serde(flatten)]
    pub backfill: BackfillRow,
    pub progress: BackfillProgress,
    pub slots: Vec<BackfillSlotRow>,
}

/// How far a backfill has come.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BackfillProgress {
    pub total: usize,
    pub skipped: usize,
    pub waiting: usize,
    pub live: usize,
    pub succeeded: usize,
    pub failed: usize,
}

impl BackfillProgress {
    pub fn of(slots: &[BackfillSlotRow]) -> BackfillProgress {
        let t = Tally::of(slots);
        BackfillProgress {
            total: slots.len(),
            skipped: t.skipped,
            waiting: t.waiting,
            live: usize::try_from(t.live).unwrap_or(0),
            succeeded: t.succeeded,
            failed: t.failed,
        }
    }
}

/// A backfill with its progress, as lists show it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct BackfillSummary {
    #[serde(flatten)]
    pub backfill: BackfillRow,
    pub progress: BackfillProgress,
}

/// Backfills (of one workflow, or all), newest first, with their progress.
pub async fn summaries(
    engine: &Engine,
    workflow: Option<String>,
    limit: i64,
) -> Result<Vec<BackfillSummary>> {
    let rows = engine
        .store
        .backfill_list(&BackfillFilter {
            workflow,
            status: None,
            limit,
        })
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for b in rows {
        let slots = engine.store.backfill_slot_list(b.id).await?;
        out.push(BackfillSummary {
            progress: BackfillProgress::of(&slots),
            backfill: b,
        });
    }
    Ok(out)
}

/// A backfill and its slots; refused when there is none.
pub async fn info(engine: &Engine, id: BackfillId) -> Result<BackfillInfo> {
    let backfill = engine
        .store
        .backfill_get(id)
        .await?
        .ok_or_else(|| Error::refused(format!("no backfill {id}")))?;
    let slots = engine.store.backfill_slot_list(id).await?;
    Ok(BackfillInfo {
        progress: BackfillProgress::of(&slots),
        backfill,
        slots,
    })
}

/// The ids of a backfill's slot instances, for callers that follow them.
pub fn instances(slots: &[BackfillSlotRow]) -> Vec<InstanceId> {
    slots.iter().filter_map(|s| s.instance_id).collect()
}

#[cfg(test)]
mod tests {
    use super::plan::tests::t;
    use super::*;

    fn slot(at: &str, instance: Option<i64>, status: Option<InstanceStatus>) -> BackfillSlotRow {
        BackfillSlotRow {
            slot: t(at),
            skip_reason: None,
            instance_id: instance.map(InstanceId),
            status,
            started_at: None,
            ended_at: None,
        }
    }

    #[test]
    fn next_slots_keep_parallel_and_order() {
        let mut b = BackfillRow {
            id: BackfillId(1),
            workflow: "w".into(),
            range_from: t("2026-01-01 00:00"),
            range_to: t("2026-01-09 00:00"),
            reprocess: Reprocess::Missing,
            parallel: 2,
            reverse: false,
            blood: false,
            params: "{}".into(),
            priority: None,
            created_by: "t".into(),
            status: BackfillStatus::Running,
            error: None,
            created_at: t("2026-01-10 00:00"),
            ended_at: None,
        };
        let slots = vec![
            slot("2026-01-01 00:00", Some(1), Some(InstanceStatus::Succeeded)),
            slot("2026-01-02 00:00", Some(2), Some(InstanceStatus::Running)),
            slot("2026-01-03 00:00", None, None),
            slot("2026-01-04 00:00", None, None),
            slot("2026-01-05 00:00", None, None),
        ];
        assert_eq!(next_slots(&b, &slots), vec![t("2026-01-03 00:00")]);
        b.reverse = true;
        assert_eq!(next_slots(&b, &slots), vec![t("2026-01-05 00:00")]);
        b.parallel = 1;
        assert!(next_slots(&b, &slots).is_empty());
        let t = Tally::of(&slots);
        assert_eq!((t.succeeded, t.live, t.waiting), (1, 1, 3));
    }
}
