//! Pools and priorities with real scheduler and worker processes, on each backend: a pool's limit
//! holds across workers (checked from the attempts' start and end times), tasks outside it keep
//! running, a SIGKILLed worker's slots come back only when its tasks are rescued, `pool set` raises
//! and lowers the limit mid-run, sync sets it again only when pools.xml changes, and priorities
//! order a backlog.

mod common;
mod support;

use std::time::Duration;

use akkaflow::state::{InstanceId, InstanceStatus};
use akkaflow::store::{PoolRow, Store};
use chrono::{DateTime, Utc};
use common::{ended, trigger, wait_for, Env};

const LONG: Duration = Duration::from_secs(120);

fn pools(slots: u32) -> String {
    format!(r#"<pools><pool name="wh" slots="{slots}" desc="the warehouse"/></pools>"#)
}

/// A fork of `n` actions running `command`, in pool `wh` unless `pooled` is false.
fn fanout(name: &str, n: usize, command: &str, pooled: bool, priority: i64) -> String {
    let pool = if pooled { r#" pool="wh""# } else { "" };
    let next = if n == 1 { "end" } else { "j" };
    let paths: String = (0..n).map(|i| format!(r#"<path to="a{i}"/>"#)).collect();
    let actions: String = (0..n)
        .map(|i| {
            format!(
                r#"  <action name="a{i}"{pool} retry-times="2"><shell><command>{command}</command></shell><ok to="{next}"/></action>
"#
            )
        })
        .collect();
    if n == 1 {
        return format!(
            r#"<work-flow name="{name}" instance-limit="10" priority="{priority}">
  <start name="start" to="a0"/>
{actions}  <end name="end"/>
</work-flow>"#
        );
    }
    format!(
        r#"<work-flow name="{name}" instance-limit="10" priority="{priority}">
  <start name="start" to="f"/>
  <fork name="f">{paths}</fork>
{actions}  <join name="j" to="end"/>
  <end name="end"/>
</work-flow>"#
    )
}

/// The most attempts that overlapped at any moment (an attempt ending when another starts does not
/// overlap it).
fn max_overlap(spans: &[(DateTime<Utc>, DateTime<Utc>)]) -> usize {
    let mut points: Vec<(DateTime<Utc>, i32)> = spans
        .iter()
        .flat_map(|(s, e)| [(*s, 1), (*e, -1)])
        .collect();
    points.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in points {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// (start, end) of every attempt of the instances' pooled (or unpooled) tasks.
async fn spans(
    store: &dyn Store,
    ids: &[InstanceId],
    pooled: bool,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = vec![];
    for id in ids {
        let tasks = store.task_list(*id).await.unwrap();
        for a in store.task_attempt_list(*id).await.unwrap() {
            let t = tasks.iter().find(|t| t.id == a.task_id).unwrap();
            if (t.pool == "wh") == pooled && t.kind == "shell" {
                out.push((a.started_at.expect("started"), a.ended_at));
            }
        }
    }
    out
}

async fn pool(store: &dyn Store) -> PoolRow {
    store
        .pool_list()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.name == "wh")
        .expect("pool wh synced")
}

/// Waits until the pool shows `used` slots in use and `waiting` ready tasks.
async fn wait_pool(store: &dyn Store, used: i64, waiting: i64) {
    wait_for(
        LONG,
        &format!("pool wh at {used} used, {waiting} waiting"),
        || async {
            let p = pool(store).await;
            if (p.used, p.waiting) == (used, waiting) {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        },
    )
    .await
}

mod cases {
    pub use super::api_cases::*;
    use super::*;

    pub async fn a_pool_of_two_never_runs_more_than_two_while_others_keep_running(env: &mut Env) {
        env.sync(&[
            ("pools.xml", &pools(2)),
            ("heavy.xml", &fanout("heavy", 4, "sleep 2", true, 0)),
            ("light.xml", &fanout("light", 6, "sleep 1", false, 0)),
        ]);
        let store = env.store().await;
        let heavy: Vec<InstanceId> = (0..3).map(|_| trigger(env, "heavy")).collect();
        let light = trigger(env, "light");
        env.spawn("scheduler", &["scheduler"]);
        env.spawn("w1", &["worker", "--slots", "4", "--name", "w1"]);
        env.spawn("w2", &["worker", "--slots", "4", "--name", "w2"]);
        // while the pool is full, the other ten ready tasks wait and hold no worker slot
        let light_row = ended(&*store, light).await;
        assert_eq!(light_row.status, InstanceStatus::Succeeded);
        let p = pool(&*store).await;
        assert!(p.waiting > 0 && p.used <= 2, "{p:?}");
        // a moment after a slot frees it is taken again: look until the pool is seen full
        wait_for(LONG, "instance info to say why a task waits", || async {
            let info = env.ok(&["instance", "info", &heavy[2].to_string()]);
            if info.contains("waiting for pool wh: 2 of 2 slots in use") {
                Ok(())
            } else {
                Err(info)
            }
        })
        .await;
        for id in &heavy {
            assert_eq!(ended(&*store, *id).await.status, InstanceStatus::Succeeded);
        }
        let pooled = spans(&*store, &heavy, true).await;
        assert_eq!(pooled.len(), 12, "one attempt per task");
        assert_eq!(max_overlap(&pooled), 2, "{pooled:?}");
        // tasks outside the pool ran beside it: the light instance ended before the pool's last start
        let last_pooled_start = pooled.iter().map(|(s, _)| *s).max().unwrap();
        assert!(light_row.ended_at.unwrap() < last_pooled_start);
        let unpooled = spans(&*store, &[light], false).await;
        assert!(max_overlap(&unpooled) > 2, "{unpooled:?}");
        let listed = env.ok(&["pool", "list"]);
        assert!(
            listed.contains("wh") && listed.contains("the warehouse"),
            "{listed}"
        );
    }

    pub async fn a_sigkilled_worker_keeps_its_pool_slots_until_rescue(env: &mut Env) {
        env.sync(&[
            ("pools.xml", &pools(2)),
            ("heavy.xml", &fanout("heavy", 3, "sleep 3", true, 0)),
        ]);
        let store = env.store().await;
        env.spawn("scheduler", &["scheduler"]);
        let w1 = env.spawn("w1", &["worker", "--slots", "4", "--name", "w1"]);
        let id = trigger(env, "heavy");
        wait_pool(&*store, 2, 1).await;
        env.stop(w1, nix::sys::signal::Signal::SIGKILL);
        // the dead worker's two tasks still hold the pool: a new worker starts nothing of it
        env.spawn("w2", &["worker", "--slots", "4", "--name", "w2"]);
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
        let all = spans(&*store, &[id], true).await;
        assert_eq!(
            all.len(),
            5,
            "two lost attempts, three that succeeded: {all:?}"
        );
        // the lost attempts end when their tasks are rescued; nothing of the pool started before
        assert_eq!(max_overlap(&all), 2, "{all:?}");
        let attempts = store.task_attempt_list(id).await.unwrap();
        let lost: Vec<_> = attempts
            .iter()
            .filter(|a| a.outcome.to_string() == "lost")
            .collect();
        assert_eq!(lost.len(), 2, "{attempts:?}");
        let rescued_at = lost.iter().map(|a| a.ended_at).min().unwrap();
        let w2_first = attempts
            .iter()
            .filter(|a| a.worker_id.as_deref().is_some_and(|w| w.starts_with("w2")))
            .filter_map(|a| a.started_at)
            .min()
            .unwrap();
        assert!(
            w2_first >= rescued_at,
            "w2 started {w2_first} before the rescue {rescued_at}"
        );
        assert_eq!(pool(&*store).await.used, 0);
    }

    pub async fn pool_set_raises_and_lowers_the_limit_mid_run(env: &mut Env) {
        env.sync(&[
            ("pools.xml", &pools(1)),
            ("heavy.xml", &fanout("heavy", 8, "sleep 2", true, 0)),
        ]);
        let store = env.store().await;
        env.spawn("scheduler", &["scheduler"]);
        env.spawn("w1", &["worker", "--slots", "8", "--name", "w1"]);
        let id = trigger(env, "heavy");
        wait_pool(&*store, 1, 7).await;
        assert_eq!(
            env.ok(&["pool", "set", "wh", "--slots", "3"]).trim(),
            "pool wh: slots 1 -> 3"
        );
        wait_for(LONG, "three running", || async {
            let p = pool(&*store).await;
            if p.used == 3 {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        })
        .await;
        env.ok(&["pool", "set", "wh", "--slots", "1"]);
        let lowered = store.now().await.unwrap();
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
        // after the lowering, an attempt starts only when none runs
        let all = spans(&*store, &[id], true).await;
        for (s, _) in all.iter().filter(|(s, _)| *s > lowered) {
            let others = all.iter().filter(|(s2, e2)| s2 < s && e2 > s).count();
            assert_eq!(others, 0, "started at {s} beside {others} others: {all:?}");
        }
        assert_eq!(max_overlap(&all), 3, "{all:?}");
        let events = store
            .event_list(&akkaflow::store::EventFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let sets: Vec<&str> = events
            .iter()
            .filter(|e| e.kind == "pool_set")
            .map(|e| e.message.as_str())
            .collect();
        assert!(
            sets.iter()
                .any(|m| m.starts_with("pool wh: slots 3 -> 1 by cli:")),
            "{sets:?}"
        );
        // sync keeps the operator's number until the file's changes, then sets the file's
        env.ok(&["sync", "xmlconfig"]);
        assert_eq!(
            (pool(&*store).await.slots, pool(&*store).await.file_slots),
            (1, 1)
        );
        env.ok(&["pool", "set", "wh", "--slots", "5"]);
        env.ok(&["sync", "xmlconfig"]);
        assert_eq!(pool(&*store).await.slots, 5, "an unchanged file leaves it");
        env.write("xmlconfig/pools.xml", &pools(2));
        env.ok(&["sync", "xmlconfig"]);
        assert_eq!(
            (pool(&*store).await.slots, pool(&*store).await.file_slots),
            (2, 2)
        );
        let refused = env.run(&["pool", "set", "nope", "--slots", "1"]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown pool `nope`"));
    }

    pub async fn priorities_order_a_backlog(env: &mut Env) {
        env.sync(&[
            ("pools.xml", &pools(1)),
            ("low.xml", &fanout("low", 1, "sleep 0.2", true, 0)),
            ("high.xml", &fanout("high", 1, "sleep 0.2", true, 5)),
            // an action's priority overrides its workflow's
            (
                "urgent.xml",
                &fanout("urgent", 1, "sleep 0.2", true, 0)
                    .replace(r#"<action name="a0""#, r#"<action name="a0" priority="9""#),
            ),
        ]);
        let store = env.store().await;
        // the backlog, oldest first: low, then high, then urgent
        let mut ids = vec![];
        for wf in ["low", "high", "urgent"] {
            for _ in 0..3 {
                ids.push((wf, trigger(env, wf)));
            }
        }
        env.spawn("scheduler", &["scheduler"]);
        env.spawn("w1", &["worker", "--slots", "4", "--name", "w1"]);
        let mut starts = vec![];
        for (wf, id) in &ids {
            assert_eq!(ended(&*store, *id).await.status, InstanceStatus::Succeeded);
            let s = spans(&*store, &[*id], true).await;
            starts.push((s[0].0, *wf, id.0));
        }
        starts.sort();
        let order: Vec<&str> = starts.iter().map(|(_, wf, _)| *wf).collect();
        assert_eq!(
            order,
            ["urgent", "urgent", "urgent", "high", "high", "high", "low", "low", "low"],
            "{starts:?}"
        );
        // equal priority: in the order they became ready
        let lows: Vec<i64> = starts
            .iter()
            .filter(|(_, wf, _)| *wf == "low")
            .map(|(_, _, id)| *id)
            .collect();
        assert!(lows.windows(2).all(|w| w[0] < w[1]), "{starts:?}");
    }
}

mod api_cases {
    use super::*;

    /// `GET /api/v1/pools` for every reader; `POST .../slots` for unscoped operators only.
    pub async fn pools_over_the_api(env: &mut Env) {
        // the master records the occupancy each duty cycle instead of once a minute
        env.config("pool_history_secs = 1");
        env.write("xmlconfig/pools.xml", &pools(1));
        env.write(
            "xmlconfig/heavy.xml",
            &fanout("heavy", 2, "sleep 2", true, 0),
        );
        let s = support::start(env, "standalone", &[]);
        let viewer = support::token(env, "viewer", "viewer", None);
        let ops = support::token(env, "ops", "operator", None);
        let scoped = support::token(env, "scoped", "operator", Some("/dw"));
        let r = s.get("/api/v1/pools", Some(&viewer));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["pools"][0]["name"], "wh");
        assert_eq!(r.json["pools"][0]["slots"], 1);
        assert_eq!(r.json["pools"][0]["description"], "the warehouse");
        // /metrics reports the pool's occupancy as the claims see it
        let r = s.post("/api/v1/workflows/heavy/trigger", Some(&ops), "");
        assert_eq!(r.status, 201, "{}", r.text);
        let id = InstanceId(r.json["instance_id"].as_i64().unwrap());
        wait_for(LONG, "the pool full in /metrics", || async {
            let m = s.get("/metrics", Some(&viewer)).text;
            if m.contains("akkaflow_pool_slots_used{pool=\"wh\"} 1")
                && m.contains("akkaflow_pool_waiting_tasks{pool=\"wh\"} 1")
                && m.contains("akkaflow_pool_slots{pool=\"wh\"} 1")
            {
                Ok(())
            } else {
                Err(m)
            }
        })
        .await;
        // ... and so does the occupancy history the pools page charts
        let store = env.store().await;
        let since = store.now().await.unwrap() - chrono::Duration::hours(1);
        wait_for(LONG, "a full sample in the pool's history", || async {
            let rows = store
                .pool_sample_list(since, 100)
                .await
                .map_err(|e| e.to_string())?;
            if rows
                .iter()
                .any(|r| r.pool == "wh" && (r.slots, r.used, r.waiting) == (1, 1, 1))
            {
                Ok(())
            } else {
                Err(format!("{rows:?}"))
            }
        })
        .await;
        let body = r#"{"slots": 5}"#;
        assert_eq!(
            s.post("/api/v1/pools/wh/slots", Some(&viewer), body).status,
            403
        );
        assert_eq!(
            s.post("/api/v1/pools/wh/slots", Some(&scoped), body).status,
            403
        );
        assert_eq!(
            s.post("/api/v1/pools/nope/slots", Some(&ops), body).status,
            404
        );
        assert_eq!(
            s.post("/api/v1/pools/wh/slots", Some(&ops), r#"{"slots": -1}"#)
                .status,
            400
        );
        let r = s.post("/api/v1/pools/wh/slots", Some(&ops), body);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            (r.json["old_slots"].as_i64(), r.json["slots"].as_i64()),
            (Some(1), Some(5))
        );
        let r = s.get("/api/v1/pools", Some(&viewer));
        assert_eq!(
            (
                r.json["pools"][0]["slots"].as_i64(),
                r.json["pools"][0]["updated_by"].as_str()
            ),
            (Some(5), Some("api:ops"))
        );
        let r = s.get("/api/v1/events?limit=50", Some(&viewer));
        assert!(
            r.text.contains("pool wh: slots 1 -> 5 by api:ops"),
            "{}",
            r.text
        );
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
    }
}

e2e!(
    a_pool_of_two_never_runs_more_than_two_while_others_keep_running,
    a_sigkilled_worker_keeps_its_pool_slots_until_rescue,
    pool_set_raises_and_lowers_the_limit_mid_run,
    priorities_order_a_backlog,
    pools_over_the_api,
);

/// The pools page and an instance's waiting task in headless Chromium (skips without it, unless
/// `AKKAFLOW_REQUIRE_BROWSER=1`); with `AKKAFLOW_SCREENSHOT_DIR=DIR` the pages are saved there
/// (docs/pools.png is one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_page_shows_occupancy_and_sets_slots() {
    use support::browser::{chromium, Driver, CHROMEDRIVER};
    let browser = chromium();
    if browser.is_none() || !std::path::Path::new(CHROMEDRIVER).exists() {
        if std::env::var("AKKAFLOW_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("AKKAFLOW_REQUIRE_BROWSER=1 but chromium or {CHROMEDRIVER} is missing");
        }
        println!("skipped: chromium or chromedriver is missing");
        return;
    }
    let mut env = Env::new(common::Db::Sqlite, "pools_browser")
        .await
        .expect("sqlite always works");
    env.write(
        "xmlconfig/pools.xml",
        r#"<pools>
  <pool name="warehouse" slots="2" desc="the DW MySQL: heavy loads"/>
  <pool name="api" slots="4" desc="the partner API's rate limit"/>
  <pool name="lake" slots="6"/>
</pools>"#,
    );
    env.write(
        "xmlconfig/load.xml",
        &fanout("load", 5, "sleep 60", true, 0).replace(r#"pool="wh""#, r#"pool="warehouse""#),
    );
    env.write(
        "xmlconfig/calls.xml",
        &fanout("calls", 2, "sleep 60", true, 0).replace(r#"pool="wh""#, r#"pool="api""#),
    );
    env.config("pool_history_secs = 1");
    let ops = support::token(&env, "ops", "operator", None);
    let s = support::start(&mut env, "server", &[]);
    let id = s
        .post("/api/v1/workflows/load/trigger", Some(&ops), "")
        .json["instance_id"]
        .as_i64()
        .unwrap();
    s.post("/api/v1/workflows/calls/trigger", Some(&ops), "");
    s.wait_json("/api/v1/pools", &ops, "the warehouse full", |j| {
        j["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "warehouse" && p["used"] == 2 && p["waiting"] == 3)
    });

    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(browser.unwrap(), profile.path());
    if std::env::var("AKKAFLOW_SCREENSHOT_DIR").is_ok() {
        d.call(
            "POST",
            &d.s("/window/rect"),
            Some(serde_json::json!({ "width": 1400, "height": 700 })),
        );
    }
    d.login(&s.url(""), &ops);
    d.go(&s.url("/ui/pools"));
    let row = d.wait("tr[data-pool='warehouse']", "the warehouse row");
    assert!(d.text(&row).contains("2 of 2 slots"), "{}", d.text(&row));
    d.wait("tr[data-pool='api']", "the api row");
    d.wait_true(
        "return document.querySelector(\"tr[data-pool='api']\").textContent.includes('2 of 4 slots');",
        "the api pool with its two running calls",
    );
    // the occupancy over the last hours: the warehouse's line drawn from two samples or more
    let drawn = "const p = document.querySelector(\"#pool-history div[data-pool='warehouse'] svg.chart.pool path.used\"); return !!p && (p.getAttribute('d').match(/[ML]/g) || []).length >= 2;";
    let deadline = std::time::Instant::now() + LONG;
    while d.exec(drawn, vec![]) != serde_json::Value::Bool(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the warehouse's occupancy chart never showed two samples"
        );
        std::thread::sleep(Duration::from_secs(1));
        d.go(&s.url("/ui/pools"));
        d.wait("tr[data-pool='warehouse']", "the warehouse row");
    }
    if let Ok(dir) = std::env::var("AKKAFLOW_SCREENSHOT_DIR") {
        d.screenshot(&std::path::PathBuf::from(dir).join("pools.png"));
    }
    // +1 on the warehouse: one more of its waiting tasks starts
    let plus = d.wait(
        "tr[data-pool='warehouse'] button[data-body*='3']",
        "the warehouse's +1",
    );
    d.click(&plus);
    s.wait_json("/api/v1/pools", &ops, "the warehouse at 3", |j| {
        j["pools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "warehouse" && p["slots"] == 3 && p["used"] == 3)
    });
    s.post(&format!("/api/v1/instances/{id}/kill"), Some(&ops), "");
    drop(d);
    drop(env);
}
