//! The trigger: turns due cron slots and satisfied dependencies into instances.
//!
//! State lives in the `coordinator` row (`next_fire_at`, `last_fire_at`) and in `coordinator_depend`
//! (which upstreams succeeded since the last fire), so a restart or failover loses nothing. A fire is
//! one transaction: CAS `next_fire_at` from the value read, clear the dependency progress, insert the
//! instance (unique per slot). After downtime the coordinator's `catchup` decides what fires: the
//! latest missed slot (`latest`, the default), every missed slot up to `max-catchup` (`all`), or
//! nothing until the next slot (`none`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::definition::calendar::Calendar;
use crate::definition::cron::CronSpec;
use crate::definition::Catchup;
use crate::engine::{Advance, CreateInstance, Engine};
use crate::error::{Error, Result};
use crate::state::TriggerKind;
use crate::store::{CoordinatorFire, CoordinatorRow, NewEvent, Store, StoreTx};

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriggerReport {
    pub scheduled: usize,
    pub fired: usize,
    /// Slots another master (or an earlier run) had fired already.
    pub already_fired: usize,
    /// A full pass only: how soon the earliest slot not yet due comes due (`None`: no slot is
    /// scheduled, or the earliest is due already and waits for its dependencies).
    pub next_slot_in: Option<Duration>,
}

impl TriggerReport {
    pub fn is_empty(&self) -> bool {
        self.scheduled == 0 && self.fired == 0 && self.already_fired == 0
    }
}

pub struct Trigger {
    engine: Engine,
    actor: String,
    /// Fire transactions at once (SQLite: always one).
    fire_concurrency: usize,
}

/// How many fire transactions a scheduler whose pool holds `pool_max` connections runs at once:
/// each may hold two (its transaction, and a definition read beside it), and more at once than the
/// pool can serve would leave every transaction waiting for a connection another one holds until
/// the pool's timeout, again and again (seen: 25 of 10,000 due slots fired with a pool of 2).
pub fn fire_concurrency_for(pool_max: u32) -> usize {
    (pool_max as usize / 2).clamp(1, Trigger::FIRE_CONCURRENCY)
}

/// Due cron slots, ready to fire.
struct CronFire {
    /// `next_fire_at` as read: the fire's compare-and-set.
    due: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
    /// The slots to fire, oldest first: one, or with `catchup="all"` every missed one kept; none
    /// when the policy skips them all.
    slots: Vec<DateTime<Utc>>,
    /// Missed slots the policy skipped, recorded as an event.
    skipped: Option<Skipped>,
    /// Upstream progress rows to clear.
    deps: usize,
    /// The request of every slot (its `scheduled_for` set per slot).
    req: CreateInstance,
}

/// Missed slots that do not fire: how many, the oldest and the newest, and why.
struct Skipped {
    count: usize,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    why: String,
}

/// A slot reached more than this after its time was missed (no scheduler was running): with
/// `catchup="none"` it does not fire.
const ON_TIME: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// At most this many missed slots are walked through when a coordinator comes back (an every-minute
/// cron down for about two years).
const MAX_WALK: usize = 1_000_000;

/// A coordinator's schedule: its cron in its zone, bounded by its window, and its missed-run policy.
pub(super) struct Schedule {
    cron: CronSpec,
    pub(super) tz: Tz,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    catchup: Catchup,
    max_catchup: usize,
    /// Its business calendar: slots fall only on its business days.
    calendar: Option<Calendar>,
}

/// The business calendars the coordinators of a batch name, by name.
pub(super) type Calendars = HashMap<String, Calendar>;

/// The calendars the coordinators `rows` name (no statement when none names one).
pub(super) async fn calendars_of(store: &dyn Store, rows: &[CoordinatorRow]) -> Result<Calendars> {
    if rows.iter().all(|c| c.calendar.is_none()) {
        return Ok(Calendars::new());
    }
    let mut out = Calendars::new();
    for row in store.calendar_list().await? {
        match serde_json::from_str::<Calendar>(&row.definition) {
            Ok(cal) => {
                out.insert(row.name, cal);
            }
            Err(e) => tracing::error!(calendar = %row.name, "unreadable calendar: {e}"),
        }
    }
    Ok(out)
}

impl Schedule {
    pub(super) fn of(c: &CoordinatorRow, calendars: &Calendars) -> Option<Schedule> {
        let cron = CronSpec::parse(c.cron.as_deref()?).ok()?.spec;
        let tz = c.timezone.parse().ok()?;
        let calendar = match &c.calendar {
            None => None,
            Some(name) => match calendars.get(name) {
                Some(cal) => Some(cal.clone()),
                None => {
                    tracing::error!(workflow = %c.workflow, calendar = %name, "the coordinator's calendar is not stored: it does not fire");
                    return None;
                }
            },
        };
        Some(Schedule {
            cron,
            tz,
            start: c.start_time,
            end: c.end_time,
            catchup: Catchup::parse(&c.catchup).unwrap_or_default(),
            max_catchup: usize::try_from(c.max_catchup.max(1)).unwrap_or(usize::MAX),
            calendar,
        })
    }

    /// Whether `slot` falls on a business day of the calendar (its date in the zone); always true
    /// without one.
    pub(super) fn is_business(&self, slot: DateTime<Utc>) -> bool {
        self.calendar
            .as_ref()
            .is_none_or(|c| c.is_business_day(slot.with_timezone(&self.tz).date_naive()))
    }

    /// The first slot strictly after `after` inside the window, on a business day.
    pub(super) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut after = match self.start {
            Some(s) if s - chrono::Duration::milliseconds(1) > after => {
                s - chrono::Duration::milliseconds(1)
            }
            _ => after,
        };
        // ten years of days that are no business days at most
        for _ in 0..3660 {
            let next = self
                .cron
                .next_after(self.tz, after)
                .filter(|n| self.end.is_none_or(|e| *n <= e))?;
            if self.is_business(next) {
                return Some(next);
            }
            // on to the start of the next day in the zone
            let day = next.with_timezone(&self.tz).date_naive().succ_opt()?;
            let midnight =
                chrono::TimeZone::from_local_datetime(&self.tz, &day.and_hms_opt(0, 0, 0)?)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or(next);
            after = if midnight > next {
                midnight - chrono::Duration::milliseconds(1)
            } else {
                next
            };
        }
        None
    }

    /// The slots from `due` (due) up to `now`: how many, the newest `keep` of them (oldest first)
    /// and the newest of those dropped.
    fn due_slots(
        &self,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        keep: usize,
    ) -> (usize, VecDeque<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let (mut total, mut kept, mut dropped) = (0, VecDeque::new(), None);
        // a due slot that is no business day any more (its calendar changed) does not count
        let mut slot = Some(due)
            .filter(|s| self.is_business(*s))
            .or_else(|| self.next_after(due));
        while let Some(s) = slot.filter(|s| *s <= now) {
            total += 1;
            kept.push_back(s);
            if kept.len() > keep {
                dropped = kept.pop_front();
            }
            if total >= MAX_WALK {
                break;
            }
            slot = self.next_after(s);
        }
        (total, kept, dropped)
    }

    /// What the due slot `due` fires at `now` under the missed-run policy: the slots (oldest
    /// first), the next slot after them and the slots skipped.
    fn catch_up(
        &self,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>, Option<Skipped>) {
        let keep = match self.catchup {
            Catchup::All => self.max_catchup,
            Catchup::Latest | Catchup::None => 1,
        };
        let (total, kept, dropped) = self.due_slots(due, now, keep);
        let Some(&newest) = kept.back() else {
            // nothing on a business day is due: on to the next slot that is
            return (vec![], self.next_after(due), None);
        };
        let mut slots: Vec<DateTime<Utc>> = kept.into_iter().collect();
        let mut skipped = dropped.map(|last| Skipped {
            count: total - slots.len(),
            first: due,
            last,
            why: match self.catchup {
                Catchup::All => format!(
                    "catchup=\"all\" fires at most max-catchup={} missed slots, the newest",
                    self.max_catchup
                ),
                Catchup::Latest => "catchup=\"latest\" fires only the latest missed slot".into(),
                Catchup::None => "catchup=\"none\" skips missed slots".into(),
            },
        });
        if self.catchup == Catchup::None && now - newest > ON_TIME {
            // the newest slot was missed too: nothing fires until the next one
            skipped = Some(Skipped {
                count: total,
                first: due,
                last: newest,
                why: "catchup=\"none\" skips missed slots".into(),
            });
            slots.clear();
        }
        (slots, self.next_after(newest), skipped)
    }
}

impl Trigger {
    const BATCH: i64 = 500;

    pub fn new(engine: Engine, actor: String) -> Self {
        Trigger {
            engine,
            actor,
            fire_concurrency: Self::FIRE_CONCURRENCY,
        }
    }

    /// Fires at most `n` transactions at once (at least 1).
    pub fn with_fire_concurrency(mut self, n: usize) -> Self {
        self.fire_concurrency = n.max(1);
        self
    }

    /// How many due coordinators fire at once by default: each fire is a few round trips of its
    /// own transaction, so a minute with thousands due is bound by latency, not by the database.
    /// A fire holds its transaction's connection and may read a definition through a second one,
    /// so a pool of N connections takes N / 2 ([`fire_concurrency_for`]).
    pub const FIRE_CONCURRENCY: usize = 4;

    /// Due slots fired in one transaction: one commit for many instances, while a group's locks
    /// (its coordinators and workflows, nobody else's) stay short.
    const FIRES_PER_TX: usize = 25;

    /// One pass over every coordinator that needs attention.
    pub async fn run_once(&self) -> Result<TriggerReport> {
        self.run_pass(true).await
    }

    /// One pass; without `full`, only due cron slots (one statement when nothing is due). New
    /// coordinators' first slot and dependency fires wait for the next full pass.
    pub async fn run_pass(&self, full: bool) -> Result<TriggerReport> {
        let mut report = TriggerReport::default();
        let store = &self.engine.store;
        let mut now = None;
        if full {
            let rows = store.coordinator_needs_next(Self::BATCH).await?;
            let calendars = calendars_of(&**store, &rows).await?;
            for c in rows {
                let Some(schedule) = Schedule::of(&c, &calendars) else {
                    continue;
                };
                let now = match now {
                    Some(n) => n,
                    None => *now.insert(store.now().await?),
                };
                if let Some(next) = schedule.next_after(now) {
                    if store
                        .coordinator_set_next(&c.workflow, Some(next))
                        .await?
                        .applied()
                    {
                        report.scheduled += 1;
                    }
                }
            }
        }
        // every due slot in this pass, batch after batch: a busy minute must not wait for ticks
        loop {
            let due = store.coordinator_due(Self::BATCH).await?;
            if due.is_empty() {
                break;
            }
            let now = store.now().await?;
            let calendars = &calendars_of(&**store, &due).await?;
            let full_batch = due.len() as i64 == Self::BATCH;
            let before = report.fired + report.already_fired;
            // SQLite has one writer: concurrent fires only wait on each other's locks (measured:
            // 10,000 due slots took twice as long at four)
            let par = if store.backend().has_one_writer() {
                1
            } else {
                self.fire_concurrency
            };
            let groups: Vec<&[CoordinatorRow]> = due.chunks(Self::FIRES_PER_TX).collect();
            for wave in groups.chunks(par) {
                // a plain loop, not a closure: the future must stay Send for the scheduler's task
                let mut fires = Vec::with_capacity(wave.len());
                for group in wave {
                    fires.push(self.fire_cron_group(group, now, calendars));
                }
                for fired in futures_util::future::join_all(fires).await {
                    for (workflow, fired) in fired {
                        self.count(fired, &workflow, &mut report)?;
                    }
                }
            }
            // a batch that fired nothing (waiting on dependencies, refused) would come back again
            if !full_batch || report.fired + report.already_fired == before {
                break;
            }
        }
        if full {
            for c in store.coordinator_deps_ready(Self::BATCH).await? {
                self.fire_dependencies(&c, &mut report).await?;
            }
            report.next_slot_in = store
                .coordinator_next_due_micros()
                .await?
                .filter(|us| *us > 0)
                .map(|us| Duration::from_micros(us as u64));
        }
        Ok(report)
    }

    /// Fires a group of due slots in one transaction (one commit for many instances); when that
    /// fails for a reason other than the database being away, each fires on its own, so one bad
    /// fire (refused parameters, a race with another master) cannot hold back the others.
    async fn fire_cron_group(
        &self,
        group: &[CoordinatorRow],
        now: DateTime<Utc>,
        calendars: &Calendars,
    ) -> Vec<(String, Result<Option<bool>>)> {
        let names: Vec<String> = group.iter().map(|c| c.workflow.clone()).collect();
        self.engine.warm_definitions(&names).await;
        let mut fires = Vec::with_capacity(group.len());
        for c in group {
            match self.prepare_cron(c, now, calendars).await {
                Ok(Some(f)) => fires.push(f),
                Ok(None) => {}
                Err(e) => return vec![(c.workflow.clone(), Err(e))],
            }
        }
        if fires.is_empty() {
            return Vec::new();
        }
        let fires = &fires;
        let together = self
            .engine
            .advance(&self.actor, |adv: &mut Advance<'_>| {
                Box::pin(async move {
                    // the group's workflow rows locked and their running instances counted in
                    // two statements, not two per fire
                    let names: Vec<String> = fires.iter().map(|f| f.req.workflow.clone()).collect();
                    adv.lock_workflows(&names).await?;
                    let fired = self.fire_group_in_tx(adv, fires, now).await?;
                    if fired.is_none() {
                        // a slot another master fired (or one fired before): one by one
                        adv.abandon();
                    }
                    Ok(fired)
                })
            })
            .await;
        match together {
            Ok(Some(fired)) => fires
                .iter()
                .zip(fired)
                .map(|(f, r)| (f.req.workflow.clone(), Ok(r)))
                .collect(),
            Err(e) if matches!(&e, Error::Store(s) if s.is_connection()) => {
                vec![(fires[0].req.workflow.clone(), Err(e))]
            }
            other => {
                if let Err(e) = other {
                    tracing::debug!(error = %e, n = fires.len(), "fires together failed; firing one by one");
                }
                let mut out = Vec::with_capacity(fires.len());
                for f in fires {
                    out.push((f.req.workflow.clone(), self.fire_one(f, now).await));
                }
                out
            }
        }
    }

    /// What a due slot fires; `None` when it does not fire now (waiting for dependencies, no schedule).
    async fn prepare_cron(
        &self,
        c: &CoordinatorRow,
        now: DateTime<Utc>,
        calendars: &Calendars,
    ) -> Result<Option<CronFire>> {
        let (Some(schedule), Some(due)) = (Schedule::of(c, calendars), c.next_fire_at) else {
            return Ok(None);
        };
        // cron-only coordinators (most) have no progress rows to read
        let deps = if serde_json::from_str::<Vec<String>>(&c.depends).is_ok_and(|d| d.is_empty()) {
            0
        } else {
            let deps = self
                .engine
                .store
                .coordinator_depend_list(&c.workflow)
                .await?;
            if deps.iter().any(|d| d.satisfied_at.is_none()) {
                return Ok(None); // cron plus dependencies: due, waiting for the upstreams
            }
            deps.len()
        };
        let (mut slots, mut next, skipped) = schedule.catch_up(due, now);
        if deps > 0 && slots.len() > 1 {
            // each slot waits for its own upstream successes: the rest fire as they come
            next = slots.get(1).copied();
            slots.truncate(1);
        }
        if let Some(s) = &skipped {
            tracing::warn!(workflow = %c.workflow, skipped = s.count, first = %s.first, last = %s.last, firing = slots.len(), "missed cron slots: {}", s.why);
        }
        Ok(Some(CronFire {
            due,
            next,
            slots,
            skipped,
            deps,
            req: self.request(c, TriggerKind::Cron, None),
        }))
    }

    /// One fire in its own transaction.
    async fn fire_one(&self, f: &CronFire, now: DateTime<Utc>) -> Result<Option<bool>> {
        self.engine
            .advance(&self.actor, |adv: &mut Advance<'_>| {
                Box::pin(async move {
                    let fired = self.fire_in_tx(adv, f, now).await?;
                    if fired.is_none() {
                        adv.abandon();
                    }
                    Ok(fired)
                })
            })
            .await
    }

    /// Fires a group's slots with one statement each for their compare-and-sets, their instances
    /// and their tasks: whether each created an instance; `None` when a slot was fired already
    /// (the transaction must then be rolled back).
    async fn fire_group_in_tx(
        &self,
        adv: &mut Advance<'_>,
        fires: &[CronFire],
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Option<bool>>>> {
        let cas: Vec<CoordinatorFire> = fires
            .iter()
            .map(|f| CoordinatorFire {
                workflow: f.req.workflow.clone(),
                expected: f.due,
                next: f.next,
                fired: f.slots.last().copied(),
            })
            .collect();
        if adv.tx().coordinator_fire_many(&cas).await? < cas.len() as u64 {
            return Ok(None);
        }
        for f in fires {
            if !self.settle(adv, f).await? {
                return Ok(None);
            }
        }
        let reqs: Vec<CreateInstance> = fires.iter().flat_map(slot_requests).collect();
        let Some(created) = adv.create_many(&reqs, now).await? else {
            return Ok(None);
        };
        let mut created = created.into_iter();
        Ok(Some(
            fires
                .iter()
                .map(|f| {
                    let made = created.by_ref().take(f.slots.len());
                    Some(made.filter(|c| c.id.is_some()).count() > 0)
                })
                .collect(),
        ))
    }

    /// CAS the slot, clear the dependency progress, record skipped slots, create the instances.
    /// `None` when another master fired the slot first: the transaction must then be rolled back.
    async fn fire_in_tx(
        &self,
        adv: &mut Advance<'_>,
        f: &CronFire,
        now: DateTime<Utc>,
    ) -> Result<Option<bool>> {
        if !adv
            .tx()
            .coordinator_fire(&f.req.workflow, f.due, f.next, f.slots.last().copied())
            .await?
            .applied()
            || !self.settle(adv, f).await?
        {
            return Ok(None);
        }
        let mut created_any = false;
        for req in slot_requests(f) {
            created_any |= adv.create(&req, now).await?.id.is_some();
        }
        Ok(Some(created_any))
    }

    /// A fire's slot won: clear its dependency progress (false when another master cleared it
    /// first) and record the slots it skipped.
    async fn settle(&self, adv: &mut Advance<'_>, f: &CronFire) -> Result<bool> {
        let workflow = &f.req.workflow;
        if !clear_dependencies(adv.tx(), workflow, f.deps).await? {
            return Ok(false);
        }
        if let Some(s) = &f.skipped {
            let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
            let event = NewEvent {
                workflow: Some(workflow.clone()),
                kind: "catchup_skipped",
                message: format!(
                    "{} missed slot(s) from {} to {} skipped: {}",
                    s.count,
                    fmt(s.first),
                    fmt(s.last),
                    s.why
                ),
                actor: self.actor.clone(),
                ..Default::default()
            };
            adv.tx().event_insert_many(&[event]).await?;
        }
        Ok(true)
    }

    async fn fire_dependencies(
        &self,
        c: &CoordinatorRow,
        report: &mut TriggerReport,
    ) -> Result<()> {
        let deps = self
            .engine
            .store
            .coordinator_depend_list(&c.workflow)
            .await?;
        let req = &self.request(c, TriggerKind::Dependency, None);
        let deps = &deps;
        let fired = self
            .engine
            .advance(&self.actor, |adv: &mut Advance<'_>| {
                Box::pin(async move {
                    let now = adv.now().await?;
                    if !clear_dependencies(adv.tx(), &c.workflow, deps.len()).await? {
                        adv.abandon();
                        return Ok(None);
                    }
                    let created = adv.create(req, now).await?;
                    Ok(Some(created.id.is_some()))
                })
            })
            .await;
        self.count(fired, &c.workflow, report)
    }

    fn request(
        &self,
        c: &CoordinatorRow,
        trigger: TriggerKind,
        slot: Option<DateTime<Utc>>,
    ) -> CreateInstance {
        CreateInstance {
            workflow: c.workflow.clone(),
            trigger,
            scheduled_for: slot,
            params: Default::default(),
            coordinator_params: true,
            parent: None,
            actor: self.actor.clone(),
        }
    }

    /// Folds a fire's outcome into the report; a refused fire (bad parameters) is logged, not fatal.
    fn count(
        &self,
        fired: Result<Option<bool>>,
        workflow: &str,
        report: &mut TriggerReport,
    ) -> Result<()> {
        match fired {
            Ok(Some(true)) => {
                report.fired += 1;
                self.engine.wake.notify_one();
            }
            Ok(Some(false)) | Ok(None) => report.already_fired += 1,
            Err(Error::Refused(why)) => tracing::error!(workflow, "cannot fire: {why}"),
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

/// The instance requests of a fire's slots, oldest first.
fn slot_requests(f: &CronFire) -> impl Iterator<Item = CreateInstance> + '_ {
    f.slots.iter().map(|slot| CreateInstance {
        scheduled_for: Some(*slot),
        ..f.req.clone()
    })
}

/// Clears dependency progress; false when another master cleared it first.
async fn clear_dependencies(tx: &mut dyn StoreTx, workflow: &str, expected: usize) -> Result<bool> {
    if expected == 0 {
        return Ok(true);
    }
    Ok(tx
        .coordinator_depend_clear(workflow, expected)
        .await?
        .applied())
}

#[cfg(test)]
mod tests {
    use super::fire_concurrency_for;

    #[test]
    fn fire_concurrency_leaves_a_connection_per_fire_for_its_reads() {
        assert_eq!(
            [1, 2, 3, 4, 5, 8, 20].map(fire_concurrency_for),
            [1, 1, 1, 2, 2, 4, 4]
        );
    }
}
