//! Planning a backfill: the request (CLI, API, UI), the coordinator's slots in its range (after
//! its calendar, in its time zone) and what the reprocess policy does with each, and creating the
//! backfill with its slot rows in one transaction.

use super::*;

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
    let found = store.workflow_get(&req.workflow).await?;
    let head = crate::engine::runnable(&req.workflow, found, |w| w.enabled)?;
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::scheduler::backfill) fn t(s: &str) -> DateTime<Utc> {
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
}
