//! `workflow backfill` and `backfill list / info / cancel`: plan and create a backfill, follow it,
//! cancel it. The master's backfill service runs it (see `scheduler::backfill`).

use std::time::Duration;

use clap::{Args, Subcommand};

use super::{connect, fmt_time, os_actor, params_map, parse_param, print_json, table};
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::scheduler::backfill::{self, BackfillPlan, BackfillRequest};
use crate::state::{BackfillId, BackfillStatus, Reprocess};

/// `workflow backfill NAME --from START --to END ...`
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The workflow's name (its coordinator needs a cron)
    pub name: String,
    /// First slot time: YYYY-MM-DD or "YYYY-MM-DD HH:MM", in the coordinator's zone
    #[arg(long)]
    pub from: String,
    /// Last slot time, included: YYYY-MM-DD (the whole day) or "YYYY-MM-DD HH:MM"
    #[arg(long)]
    pub to: String,
    /// At most this many of the backfill's instances run at once
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i64).range(1..))]
    pub parallel: i64,
    /// Which slots run: missing (no instance at all), failed (also those whose latest instance
    /// failed or was killed), all
    #[arg(long, value_enum, default_value = "missing")]
    pub reprocess: ReprocessArg,
    /// Newest slot first
    #[arg(long)]
    pub reverse: bool,
    /// Each slot's success also runs its downstream workflows for that slot
    #[arg(long)]
    pub blood: bool,
    /// Parameter override for every slot, repeatable: --param dir=/data/in
    #[arg(long = "param", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// Every task's priority (default: each task's own priority minus one, below scheduled runs)
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Print every slot and what would happen to it; create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Return when every slot has ended; exit code 0 only if all succeeded
    #[arg(long)]
    pub wait: bool,
    /// Print the plan (and with --wait the end) as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ReprocessArg {
    Missing,
    Failed,
    All,
}

impl From<ReprocessArg> for Reprocess {
    fn from(r: ReprocessArg) -> Self {
        match r {
            ReprocessArg::Missing => Reprocess::Missing,
            ReprocessArg::Failed => Reprocess::Failed,
            ReprocessArg::All => Reprocess::All,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// Backfills, newest first, with their progress
    List {
        /// Only backfills of this workflow
        #[arg(long)]
        workflow: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print the backfills as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// A backfill's settings and every slot with its instance and state
    Info {
        /// The backfill id (from `backfill list`)
        id: i64,
        /// Print the backfill and its slots as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running backfill: it creates no more instances and kills those that run
    Cancel {
        /// The backfill id
        id: i64,
    },
}

pub(super) async fn create(cfg: &Config, a: BackfillArgs) -> Result<i32> {
    let engine = Engine::for_config(connect(cfg).await?, cfg);
    let req = BackfillRequest {
        workflow: a.name,
        from: a.from,
        to: a.to,
        reprocess: a.reprocess.into(),
        parallel: a.parallel,
        reverse: a.reverse,
        blood: a.blood,
        params: params_map(a.params),
        priority: a.priority,
        dry_run: a.dry_run,
        actor: os_actor(),
    };
    let plan = backfill::plan(&engine, &req).await?;
    if a.json && !a.wait {
        print_json(&plan);
    } else if !a.json {
        print_plan(&plan, a.dry_run);
    }
    let Some(id) = plan.id.filter(|_| a.wait) else {
        return Ok(0);
    };
    let status = loop {
        let b = engine
            .store
            .backfill_get(id)
            .await?
            .ok_or_else(|| Error::refused(format!("backfill {id} is gone")))?;
        if b.status != BackfillStatus::Running {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if a.json {
        print_json(&backfill::info(&engine, id).await?);
    } else {
        eprintln!(
            "backfill {id} {}{}",
            status.status,
            status.error.map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    Ok(if status.status == BackfillStatus::Succeeded {
        0
    } else {
        1
    })
}

fn print_plan(plan: &BackfillPlan, dry_run: bool) {
    let mut t = table(&[&format!("slot ({})", plan.timezone), "action", "why"]);
    for s in &plan.slots {
        t.add_row(vec![
            s.local.clone(),
            s.action.clone(),
            s.reason.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    match plan.id {
        Some(id) => println!(
            "backfill {id} of {}: {} slot(s) to run, {} skipped, at most {} at once (the master runs it; follow with `akkaflow backfill info {id}`)",
            plan.workflow, plan.runs, plan.skips, plan.parallel
        ),
        None if dry_run => println!(
            "dry run for {}: {} slot(s) would run, {} skipped; nothing created",
            plan.workflow, plan.runs, plan.skips
        ),
        None => println!(
            "nothing to backfill for {}: every one of its {} slot(s) is skipped",
            plan.workflow, plan.skips
        ),
    }
}

pub(super) async fn command(cfg: &Config, cmd: BackfillCommand) -> Result<i32> {
    let engine = Engine::for_config(connect(cfg).await?, cfg);
    match cmd {
        BackfillCommand::List {
            workflow,
            limit,
            json,
        } => {
            let out = backfill::summaries(&engine, workflow, limit).await?;
            if json {
                print_json(&out);
                return Ok(0);
            }
            let mut t = table(&[
                "id", "workflow", "from", "to", "policy", "par", "status", "done", "live",
                "waiting", "failed", "skipped", "by",
            ]);
            for backfill::BackfillSummary {
                backfill: b,
                progress: p,
            } in &out
            {
                t.add_row(vec![
                    b.id.to_string(),
                    b.workflow.clone(),
                    fmt_time(Some(b.range_from)),
                    fmt_time(Some(b.range_to)),
                    b.reprocess.to_string(),
                    b.parallel.to_string(),
                    b.status.to_string(),
                    p.succeeded.to_string(),
                    p.live.to_string(),
                    p.waiting.to_string(),
                    p.failed.to_string(),
                    p.skipped.to_string(),
                    b.created_by.clone(),
                ]);
            }
            println!("{t}");
            Ok(0)
        }
        BackfillCommand::Info { id, json } => {
            let info = backfill::info(&engine, BackfillId(id)).await?;
            if json {
                print_json(&info);
                return Ok(0);
            }
            let b = &info.backfill;
            let p = &info.progress;
            println!(
                "backfill {} of {}: {}{}\nrange {} .. {} UTC, reprocess {}, parallel {}{}{}, priority {}\ncreated {} by {}, ended {}\nslots {}: {} succeeded, {} failed, {} live, {} waiting, {} skipped",
                b.id,
                b.workflow,
                b.status,
                b.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default(),
                fmt_time(Some(b.range_from)),
                fmt_time(Some(b.range_to)),
                b.reprocess,
                b.parallel,
                if b.reverse { ", newest first" } else { "" },
                if b.blood { ", blood" } else { "" },
                b.priority
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "each task's minus one".into()),
                fmt_time(Some(b.created_at)),
                b.created_by,
                fmt_time(b.ended_at),
                p.total,
                p.succeeded,
                p.failed,
                p.live,
                p.waiting,
                p.skipped,
            );
            let mut t = table(&[
                "slot (UTC)",
                "instance",
                "status",
                "started",
                "ended",
                "why skipped",
            ]);
            for s in &info.slots {
                t.add_row(vec![
                    fmt_time(Some(s.slot)),
                    s.instance_id
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| "-".into()),
                    match (&s.skip_reason, s.status) {
                        (Some(_), _) => "skipped".to_string(),
                        (None, Some(st)) => st.to_string(),
                        (None, None) if s.instance_id.is_some() => "pruned".to_string(),
                        (None, None) => "waiting".to_string(),
                    },
                    fmt_time(s.started_at),
                    fmt_time(s.ended_at),
                    s.skip_reason.clone().unwrap_or_default(),
                ]);
            }
            println!("{t}");
            Ok(0)
        }
        BackfillCommand::Cancel { id } => {
            let r = backfill::cancel(&engine, BackfillId(id), &os_actor()).await?;
            println!(
                "backfill {} cancelled; {} instance(s) killed",
                r.id, r.killed
            );
            Ok(0)
        }
    }
}
