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

/// A backfill as asked for (CLI, API, UI).
#[derive(Clone, Debug)]
pub struct BackfillRequest {
    pub workflow: String,
    /// `YYYY-MM-DD` or `YYYY-MM-DD HH:MM`, in the coordinator's zone.
    pub from: String,
    pub to: String,
    pub reprocess: Reprocess,
    pub parallel: i64,
    pub reverse: bool,
    pub blood: bool,
    pub params: BTreeMap<String, String>,
    pub priority: Option<i64>,
    /// Plan only: nothing is written.
    pub dry_run: bool,
    pub actor: String,
}

/// What a backfill does (or, dry, would do) to each slot of its range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct BackfillPlan {
    /// The backfill created; `None` on a dry run, or when every slot is skipped (nothing is
    /// created then).
    pub id: Option<BackfillId>,
    pub workflow: String,
    pub timezone: String,
    pub range_from: DateTime<Utc>,
    pub range_to: DateTime<Utc>,
    pub reprocess: Reprocess,
    pub parallel: i64,
    /// Slots to run.
    pub runs: usize,
    /// Slots skipped.
    pub skips: usize,
    /// Every slot, oldest first.
    pub slots: Vec<PlannedSlot>,
}

/// One slot of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PlannedSlot {
    pub slot: DateTime<Utc>,
    /// The slot on the coordinator's wall clock, `YYYY-MM-DD HH:MM`.
    pub local: String,
    /// `run` or `skip`.
    pub action: String,
    /// Why it is skipped.
    pub reason: Option<String>,
}

/// Plans a backfill and, unless it is a dry run, creates it (the row and its slots, one
/// transaction); the master's [`Backfiller`] runs it from there.
pub async fn plan(engine: &Engine, req: &BackfillRequest) -> Result<BackfillPlan> {
    let store = &engine.store;
    if req.parallel < 1 {
        return Err(Error::refused(format!(
            "--parallel must be at least 1, not {}",
            req.parallel
        )));
    }
    let head = store
        .workflow_get(&req.workflow)
        .await?
        .ok_or_else(|| Error::refused(format!("unknown workflow `{}`", req.workflow)))?;
    if !head.enabled {
        return Err(Error::refused(format!(
            "workflow `{}` is disabled",
            req.workflow
        )));
    }
    let def = engine.definition(&head.name, head.version).await?;
    def.check_given_params(req.params.keys())
        .map_err(Error::refused)?;
    let coordinator = store
        .coordinator_get(&req.workflow)
        .await?
        .filter(|c| c.cron.is_some())
        .ok_or_else(|| {
            Error::refused(format!(
                "workflow `{}` has no cron: a backfill runs the past slots of its coordinator's cron",
                req.workflow
            ))
        })?;
    let calendars = calendars_of(&**store, std::slice::from_ref(&coordinator)).await?;
    let schedule = Schedule::of(&coordinator, &calendars).ok_or_else(|| {
        Error::refused(format!(
            "workflow `{}`: its coordinator's cron, zone or calendar cannot be read",
            req.workflow
        ))
    })?;
    let tz = schedule.tz;
    let from = parse_bound(&req.from, tz, false)?;
    let to = parse_bound(&req.to, tz, true)?;
    if from > to {
        return Err(Error::refused(format!(
            "--from {} is after --to {}",
            req.from, req.to
        )));
    }
    let slots = slots_between(&schedule, from, to)?;
    let history = store.backfill_slot_history(&req.workflow, from, to).await?;
    let decided = decide(&slots, &history, req.reprocess);
    let planned: Vec<PlannedSlot> = decided
        .iter()
        .map(|s| PlannedSlot {
            slot: s.slot,
            local: s
                .slot
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            action: if s.skip_reason.is_some() {
                "skip"
            } else {
                "run"
            }
            .to_string(),
            reason: s.skip_reason.clone(),
        })
        .collect();
    let runs = planned.iter().filter(|s| s.reason.is_none()).count();
    let mut out = BackfillPlan {
        id: None,
        workflow: req.workflow.clone(),
        timezone: tz.name().to_string(),
        range_from: from,
        range_to: to,
        reprocess: req.reprocess,
        parallel: req.parallel,
        runs,
        skips: planned.len() - runs,
        slots: planned,
    };
    // nothing to run: no backfill row either (a second identical backfill creates nothing)
    if req.dry_run || runs == 0 {
        return Ok(out);
    }
    let mut tx = store.begin().await?;
    let id = tx
        .backfill_create(
            &NewBackfill {
                workflow: req.workflow.clone(),
                range_from: from,
                range_to: to,
                reprocess: req.reprocess,
                parallel: req.parallel,
                reverse: req.reverse,
                blood: req.blood,
                params: serde_json::to_string(&req.params).expect("string map serialises"),
                priority: req.priority,
                created_by: req.actor.clone(),
            },
            &decided,
        )
        .await?;
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M");
    tx.event_insert_many(&[NewEvent {
        workflow: Some(req.workflow.clone()),
        kind: "backfill_created",
        to_status: Some(BackfillStatus::Running.as_str()),
        message: format!(
            "backfill {id}: {runs} slot(s) from {} to {} ({tz}), reprocess {}, parallel {}",
            local(from),
            local(to),
            req.reprocess,
            req.parallel
        ),
        actor: req.actor.clone(),
        ..Default::default()
    }])
    .await?;
    tx.commit().await?;
    tracing::info!(backfill_id = %id, workflow = %req.workflow, runs, "backfill created");
    out.id = Some(id);
    Ok(out)
}

/// A range bound on the coordinator's wall clock: `YYYY-MM-DD` (its first instant, or with
/// `end`, its last) or `YYYY-MM-DD HH:MM`.
fn parse_bound(text: &str, tz: Tz, end: bool) -> Result<DateTime<Utc>> {
    let text = text.trim();
    let local = if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let day = if end { d.succ_opt().unwrap_or(d) } else { d };
        day.and_hms_opt(0, 0, 0).expect("midnight exists")
    } else {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
            .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
            .map_err(|_| {
                Error::refused(format!(
                    "bad time `{text}`: expected YYYY-MM-DD or YYYY-MM-DD HH:MM (in the coordinator's zone)"
                ))
            })?
    };
    // a wall-clock time a DST gap skips is taken at the gap's end, as a cron slot would be
    let mut t = local;
    let at = loop {
        match tz.from_local_datetime(&t) {
            chrono::LocalResult::Single(x) | chrono::LocalResult::Ambiguous(x, _) => {
                break x.with_timezone(&Utc)
            }
            chrono::LocalResult::None => t += chrono::TimeDelta::minutes(1),
        }
    };
    let is_date = NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok();
    Ok(if end && is_date {
        // the end of the day: just before the next one starts
        at - chrono::TimeDelta::milliseconds(1)
    } else {
        at
    })
}

/// The coordinator's slots (after its calendar) with `from ≤ slot ≤ to`.
fn slots_between(
    schedule: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>> {
    let mut out = Vec::new();
    let mut slot = schedule.next_after(from - chrono::TimeDelta::milliseconds(1));
    while let Some(s) = slot.filter(|s| *s <= to) {
        if out.len() == MAX_SLOTS {
            return Err(Error::refused(format!(
                "the range holds more than {MAX_SLOTS} slots: backfill it in parts"
            )));
        }
        out.push(s);
        slot = schedule.next_after(s);
    }
    Ok(out)
}

/// What the policy does with each slot, given what the slots have seen.
fn decide(
    slots: &[DateTime<Utc>],
    history: &SlotHistory,
    reprocess: Reprocess,
) -> Vec<NewBackfillSlot> {
    let latest: HashMap<DateTime<Utc>, InstanceStatus> = history.latest.iter().copied().collect();
    slots
        .iter()
        .map(|&slot| {
            let skip_reason = if history.queued.contains(&slot) {
                Some("a running backfill has yet to run it".to_string())
            } else {
                match (latest.get(&slot), reprocess) {
                    (Some(st), _) if !st.is_terminal() => {
                        Some(format!("its latest instance is {st}"))
                    }
                    (None, _) | (_, Reprocess::All) => None,
                    (Some(InstanceStatus::Failed | InstanceStatus::Killed), Reprocess::Failed) => {
                        None
                    }
                    (Some(st), Reprocess::Missing) => Some(format!(
                        "it has an instance ({st}); --reprocess failed or all runs it again"
                    )),
                    (Some(st), Reprocess::Failed) => Some(format!(
                        "its latest instance {st}; --reprocess all runs it again"
                    )),
                }
            };
            NewBackfillSlot { slot, skip_reason }
        })
        .collect()
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
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
            .unwrap()
            .and_utc()
    }

    #[test]
    fn bounds_are_wall_clock_and_a_date_end_is_the_end_of_its_day() {
        let sh: Tz = "Asia/Shanghai".parse().unwrap();
        assert_eq!(
            parse_bound("2026-10-01", sh, false).unwrap(),
            t("2026-09-30 16:00")
        );
        assert_eq!(
            parse_bound("2026-10-01", sh, true).unwrap(),
            t("2026-10-01 16:00") - chrono::TimeDelta::milliseconds(1)
        );
        assert_eq!(
            parse_bound("2026-10-01 08:30", sh, true).unwrap(),
            t("2026-10-01 00:30")
        );
        let err = parse_bound("01/10/2026", sh, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected YYYY-MM-DD"), "{err}");
    }

    #[test]
    fn the_policy_decides_each_slot() {
        let (a, b, c, d, e) = (
            t("2026-01-01 00:00"),
            t("2026-01-02 00:00"),
            t("2026-01-03 00:00"),
            t("2026-01-04 00:00"),
            t("2026-01-05 00:00"),
        );
        let history = SlotHistory {
            latest: vec![
                (b, InstanceStatus::Succeeded),
                (c, InstanceStatus::Failed),
                (d, InstanceStatus::Running),
            ],
            queued: vec![e],
        };
        let runs = |r| -> Vec<DateTime<Utc>> {
            decide(&[a, b, c, d, e], &history, r)
                .into_iter()
                .filter(|s| s.skip_reason.is_none())
                .map(|s| s.slot)
                .collect()
        };
        assert_eq!(runs(Reprocess::Missing), vec![a]);
        assert_eq!(runs(Reprocess::Failed), vec![a, c]);
        assert_eq!(runs(Reprocess::All), vec![a, b, c]);
    }

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
