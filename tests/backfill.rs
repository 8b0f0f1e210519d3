//! End-to-end backfills: the real binary as scheduler and worker processes (or standalone for the
//! API) on each backend, checked through the tables afterwards.

mod common;
mod support;

use std::time::Duration;

use akkaflow::state::{BackfillId, InstanceStatus, TriggerKind};
use akkaflow::store::{InstanceRow, Store};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{wait_for, Env};

const LONG: Duration = Duration::from_secs(120);

/// A calendar whose National Day week (Thu 2026-10-01 .. Wed 10-07) is a holiday and whose
/// Saturday 2026-10-10 is a makeup workday.
const CALENDARS: &str = r#"<calendars>
  <calendar name="cn" weekend="sat,sun">
    <holiday from="2026-10-01" to="2026-10-07"/>
    <workday date="2026-10-10"/>
  </calendar>
</calendars>"#;

/// A daily 02:00 cron in Shanghai on the calendar's business days; each run records its slot's
/// day and previous business day.
fn workflow(name: &str, command: &str) -> String {
    format!(
        r#"<work-flow name="{name}" instance-limit="10"><coordinator calendar="cn" timezone="Asia/Shanghai">
    <depend-list cron="0 2 * * *"/>
    <param-list><param name="day" value="${{time.today|yyyy-MM-dd}}"/><param name="prev" value="${{time.today|yyyy-MM-dd|-1 workday}}"/></param-list>
  </coordinator>
  <start name="start" to="a"/><action name="a"><shell><command>{command}</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#
    )
}

/// 2026-09-29 .. 2026-10-12 on the calendar: the two days before the holiday week, the two after
/// it, the makeup Saturday and the Monday (the Sunday is a weekend day).
fn business_days() -> Vec<NaiveDate> {
    [
        "2026-09-29",
        "2026-09-30",
        "2026-10-08",
        "2026-10-09",
        "2026-10-10",
        "2026-10-12",
    ]
    .iter()
    .map(|d| d.parse().unwrap())
    .collect()
}

/// The UTC instant of a day's 02:00 in Shanghai.
fn slot(day: NaiveDate) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .from_local_datetime(&day.and_hms_opt(2, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn fleet(env: &mut Env) {
    env.spawn("scheduler", &["scheduler"]);
    env.spawn("worker", &["worker", "--slots", "8", "--name", "w1"]);
}

/// The workflow's backfill instances, oldest id first.
async fn backfilled(store: &dyn Store, workflow: &str) -> Vec<InstanceRow> {
    let mut l: Vec<InstanceRow> = common::instances_of(store, workflow)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.trigger_kind == TriggerKind::Backfill)
        .collect();
    l.sort_by_key(|i| i.id);
    l
}

/// The most instances that ran at once, from their start and end times in the table.
fn most_at_once(runs: &[InstanceRow]) -> usize {
    runs.iter()
        .map(|a| {
            let t = a.started_at.expect("started");
            runs.iter()
                .filter(|b| {
                    b.started_at.is_some_and(|s| s <= t) && b.ended_at.is_some_and(|e| e > t)
                })
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn backfill_id(json: &str) -> BackfillId {
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON");
    BackfillId(v["id"].as_i64().expect("a backfill id"))
}

mod cases {
    use super::*;

    /// A backfill across a holiday week and a makeup Saturday with --parallel 2 runs exactly the
    /// business days, each with its slot's parameters, at most two at once, below the scheduled
    /// runs' priority; the same backfill again creates nothing; --reprocess all runs them again.
    pub async fn backfill_runs_the_business_days_two_at_a_time(env: &mut Env) {
        env.sync(&[
            ("calendars.xml", CALENDARS),
            (
                "bf.xml",
                &workflow("bf", "sleep 1; echo day=${param:day} prev=${param:prev}"),
            ),
        ]);
        let store = env.store().await;
        let args = [
            "workflow",
            "backfill",
            "bf",
            "--from",
            "2026-09-29",
            "--to",
            "2026-10-12",
            "--parallel",
            "2",
        ];
        // the dry run names every slot and creates nothing
        let dry = env.ok(&[&args[..], &["--dry-run"]].concat());
        for day in business_days() {
            assert!(dry.contains(&format!("{day} 02:00")), "{day}\n{dry}");
        }
        assert!(
            !dry.contains("2026-10-01 02:00") && !dry.contains("2026-10-11 02:00"),
            "{dry}"
        );
        assert!(dry.contains("6 slot(s) would run, 0 skipped"), "{dry}");
        let plan: serde_json::Value =
            serde_json::from_str(&env.ok(&[&args[..], &["--dry-run", "--json"]].concat())).unwrap();
        assert_eq!(plan["runs"], 6);
        assert!(plan["id"].is_null());
        assert!(env.ok(&["backfill", "list", "--json"]).trim() == "[]");

        fleet(env);
        let out = env.run(&[&args[..], &["--wait", "--json"]].concat());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(info["status"], "succeeded", "{text}");
        assert_eq!(info["progress"]["succeeded"], 6, "{text}");
        let runs = backfilled(&*store, "bf").await;
        let slots: Vec<_> = runs.iter().map(|i| i.scheduled_for).collect();
        let want: Vec<_> = business_days().into_iter().map(slot).collect();
        assert_eq!(slots, want, "business days only, oldest first");
        let prev: Vec<&str> = vec![
            "2026-09-28",
            "2026-09-29",
            "2026-09-30",
            "2026-10-08",
            "2026-10-09",
            "2026-10-10",
        ];
        for (inst, prev) in runs.iter().zip(prev) {
            assert_eq!(inst.status, InstanceStatus::Succeeded, "{inst:?}");
            let day = inst
                .scheduled_for
                .with_timezone(&chrono_tz::Asia::Shanghai)
                .date_naive();
            let params: serde_json::Value = serde_json::from_str(&inst.params).unwrap();
            assert_eq!(params["day"], day.to_string());
            assert_eq!(params["prev"], prev, "{day}");
            let logs = env.ok(&["logs", &inst.id.to_string()]);
            assert!(logs.contains(&format!("day={day} prev={prev}")), "{logs}");
            // below the scheduled runs (the workflow's priority 0)
            assert_eq!(common::task(&*store, inst.id, "a").await.priority, -1);
        }
        let most = most_at_once(&runs);
        assert!((1..=2).contains(&most), "{most} ran at once: {runs:?}");
        // the coordinator's own schedule is untouched: no cron instance, a future next fire
        let c = store.coordinator_get("bf").await.unwrap().unwrap();
        assert!(c.last_fire_at.is_none(), "{c:?}");
        assert!(c.next_fire_at.is_some_and(|n| n > want[5]), "{c:?}");

        // its creation and its end are in the audit trail, with who
        let events = store
            .event_list(&akkaflow::store::EventFilter {
                instance_id: None,
                after_id: None,
                limit: 1000,
            })
            .await
            .unwrap();
        let kinds: Vec<&str> = events
            .iter()
            .filter(|e| e.kind.starts_with("backfill"))
            .map(|e| e.kind.as_str())
            .collect();
        assert!(
            kinds.contains(&"backfill_created") && kinds.contains(&"backfill_transition"),
            "{kinds:?}"
        );
        // the same backfill again: every slot has an instance
        let again = env.ok(&args);
        assert!(again.contains("nothing to backfill"), "{again}");
        assert_eq!(backfilled(&*store, "bf").await.len(), 6);
        let list: serde_json::Value =
            serde_json::from_str(&env.ok(&["backfill", "list", "--json"])).unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

        // --reprocess all runs every slot again, as a backfill of its own
        let out = env.ok(&[&args[..], &["--reprocess", "all", "--json"]].concat());
        let id = backfill_id(&out);
        wait_for(LONG, "the second backfill to end", || async {
            let b = store.backfill_get(id).await.map_err(|e| e.to_string())?;
            match b {
                Some(b) if b.status.as_str() != "running" => Ok(b),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        let info = env.ok(&["backfill", "info", &id.to_string()]);
        assert!(
            info.contains("succeeded") && info.contains("slots 6: 6 succeeded"),
            "{info}"
        );
        let all = backfilled(&*store, "bf").await;
        assert_eq!(all.len(), 12);
        assert!(all.iter().all(|i| i.status == InstanceStatus::Succeeded));
        let second: Vec<_> = all[6..].iter().map(|i| i.scheduled_for).collect();
        assert_eq!(second, want);
        assert!(most_at_once(&all[6..]) <= 2);
    }

    /// A workflow without a cron is refused with a clear message; so is a bad time.
    pub async fn backfill_needs_a_cron_and_good_times(env: &mut Env) {
        env.sync(&[(
            "manual.xml",
            r#"<work-flow name="manual"><start name="start" to="a"/><action name="a"><shell><command>true</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        ), ("calendars.xml", CALENDARS), ("bf.xml", &workflow("bf", "true"))]);
        let out = env.run(&[
            "workflow",
            "backfill",
            "manual",
            "--from",
            "2026-10-01",
            "--to",
            "2026-10-02",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("`manual` has no cron"), "{err}");
        let out = env.run(&[
            "workflow",
            "backfill",
            "bf",
            "--from",
            "01/10/2026",
            "--to",
            "2026-10-02",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("expected YYYY-MM-DD"), "{err}");
    }

    /// Cancelling a backfill kills what runs (through the engine's kill) and creates no more.
    pub async fn cancelled_backfill_kills_what_runs_and_creates_no_more(env: &mut Env) {
        env.sync(&[
            ("calendars.xml", CALENDARS),
            ("slow.xml", &workflow("slow", "sleep 60")),
        ]);
        fleet(env);
        let store = env.store().await;
        let out = env.ok(&[
            "workflow",
            "backfill",
            "slow",
            "--from",
            "2026-10-08",
            "--to",
            "2026-10-12",
            "--json",
        ]);
        let id = backfill_id(&out);
        let first = wait_for(LONG, "the first slot to run", || async {
            let l = backfilled(&*store, "slow").await;
            match l.first() {
                Some(i) if i.status == InstanceStatus::Running => Ok(i.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(first.scheduled_for, slot("2026-10-08".parse().unwrap()));
        let said = env.ok(&["backfill", "cancel", &id.to_string()]);
        assert!(said.contains("1 instance(s) killed"), "{said}");
        let killed = common::ended(&*store, first.id).await;
        assert_eq!(killed.status, InstanceStatus::Killed);
        let b = store.backfill_get(id).await.unwrap().unwrap();
        assert_eq!(b.status.as_str(), "cancelled");
        // a cancelled backfill cannot be cancelled again, and the master creates nothing more
        assert_eq!(
            env.run(&["backfill", "cancel", &id.to_string()])
                .status
                .code(),
            Some(1)
        );
        let info = env.ok(&["backfill", "info", &id.to_string(), "--json"]);
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["progress"]["waiting"], 3, "{info}");
        assert_eq!(backfilled(&*store, "slow").await.len(), 1);
    }

    /// With --blood each slot's success runs the downstream workflow for the same slot, as an
    /// instance of the same backfill; the downstream's regular dependency stays unsatisfied.
    pub async fn blood_backfill_runs_the_downstream_for_each_slot(env: &mut Env) {
        env.sync(&[
            ("calendars.xml", CALENDARS),
            ("up.xml", &workflow("up", "echo up ${param:day}")),
            (
                "down.xml",
                r#"<work-flow name="down"><coordinator timezone="Asia/Shanghai"><depend-list><workflow name="up"/></depend-list>
    <param-list><param name="day" value="${time.today|yyyy-MM-dd}"/></param-list></coordinator>
  <start name="start" to="a"/><action name="a"><shell><command>echo down ${param:day}</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
            ),
        ]);
        fleet(env);
        let store = env.store().await;
        let out = env.ok(&[
            "workflow",
            "backfill",
            "up",
            "--from",
            "2026-10-09",
            "--to",
            "2026-10-10",
            "--blood",
            "--parallel",
            "2",
            "--json",
        ]);
        let id = backfill_id(&out);
        let want = vec![
            slot("2026-10-09".parse().unwrap()),
            slot("2026-10-10".parse().unwrap()),
        ];
        let down = wait_for(LONG, "the downstream runs", || async {
            let l = backfilled(&*store, "down").await;
            if l.len() == 2 && l.iter().all(|i| i.status.is_terminal()) {
                Ok(l)
            } else {
                Err(format!("{l:?}"))
            }
        })
        .await;
        let mut slots: Vec<_> = down.iter().map(|i| i.scheduled_for).collect();
        slots.sort();
        assert_eq!(slots, want);
        for i in &down {
            assert_eq!(i.status, InstanceStatus::Succeeded, "{i:?}");
            assert_eq!(i.backfill(), Some(id));
            let day = i
                .scheduled_for
                .with_timezone(&chrono_tz::Asia::Shanghai)
                .date_naive();
            let params: serde_json::Value = serde_json::from_str(&i.params).unwrap();
            assert_eq!(params["day"], day.to_string());
        }
        let deps = store.coordinator_depend_list("down").await.unwrap();
        assert!(deps.iter().all(|d| d.satisfied_at.is_none()), "{deps:?}");
        assert!(common::instances_of(&*store, "down")
            .await
            .unwrap()
            .iter()
            .all(|i| i.trigger_kind == TriggerKind::Backfill));
    }

    /// The API plans, creates, lists and reads a backfill, as the CLI does.
    pub async fn backfill_through_the_api(env: &mut Env) {
        env.write("xmlconfig/calendars.xml", CALENDARS);
        env.write("xmlconfig/bf.xml", &workflow("bf", "echo ${param:day}"));
        let s = support::start(env, "server", &["--no-auth"]);
        let body =
            r#"{"from": "2026-10-08", "to": "2026-10-12 02:00", "parallel": 2, "dry_run": true}"#;
        let r = s.post("/api/v1/workflows/bf/backfill", None, body);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["runs"], 4);
        assert_eq!(r.json["slots"][2]["local"], "2026-10-10 02:00");
        let r = s.post(
            "/api/v1/workflows/bf/backfill",
            None,
            r#"{"from": "2026-10-08", "to": "2026-10-12 02:00", "parallel": 2}"#,
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json["id"].as_i64().unwrap();
        let done = wait_for(LONG, "the backfill to end", || async {
            let r = s.get(&format!("/api/v1/backfills/{id}"), None);
            if r.json["status"] == "running" {
                Err(r.text)
            } else {
                Ok(r)
            }
        })
        .await;
        assert_eq!(done.json["status"], "succeeded", "{}", done.text);
        assert_eq!(done.json["slots"].as_array().unwrap().len(), 4);
        let list = s.get("/api/v1/backfills?workflow=bf", None);
        assert_eq!(list.json["backfills"][0]["id"], id);
        assert_eq!(list.json["backfills"][0]["progress"]["succeeded"], 4);
        let r = s.post(&format!("/api/v1/backfills/{id}/cancel"), None, "");
        assert_eq!(r.status, 409, "{}", r.text);
        let r = s.post(
            "/api/v1/workflows/bf/backfill",
            None,
            r#"{"from": "2026-10-12", "to": "2026-10-08"}"#,
        );
        assert_eq!(r.status, 400, "{}", r.text);
        let page = s.get("/ui/workflows/bf", None);
        assert!(
            page.text.contains("Start backfill") && page.text.contains("backfills"),
            "{}",
            page.text
        );
    }
}

e2e!(
    backfill_runs_the_business_days_two_at_a_time,
    backfill_needs_a_cron_and_good_times,
    cancelled_backfill_kills_what_runs_and_creates_no_more,
    blood_backfill_runs_the_downstream_for_each_slot,
    backfill_through_the_api,
);
