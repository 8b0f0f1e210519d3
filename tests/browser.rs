//! The UI in a real browser: headless Chromium driven by chromedriver over WebDriver (plain HTTP
//! with the same client as the API tests, no Selenium). Logs in with a token, opens the
//! dashboard, opens an instance, kills its running task with the button and sees it killed.
//! Skips with a printed line when chromium or chromedriver is missing, unless
//! `AKKAFLOW_REQUIRE_BROWSER=1`.

mod common;
mod support;

use std::path::Path;

use common::Env;
use support::browser::{chromium, Driver, CHROMEDRIVER};
use support::{start, token, workflow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_logs_in_opens_an_instance_and_kills_its_running_task() {
    let browser = chromium();
    if browser.is_none() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var("AKKAFLOW_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("AKKAFLOW_REQUIRE_BROWSER=1 but chromium or {CHROMEDRIVER} is missing (apt-get install -y chromium chromium-driver)");
        }
        println!("skipped: chromium or chromedriver is missing (apt-get install -y chromium chromium-driver)");
        return;
    }
    let mut env = Env::new(common::Db::Sqlite, "browser")
        .await
        .expect("sqlite always works");
    env.sync(&[
        (
            "sleepy.xml",
            &workflow("sleepy", "/dw", "echo working on it; sleep 120"),
        ),
        ("quick.xml", &workflow("quick", "/dw", "echo done")),
    ]);
    let ops = token(&env, "browser-ops", "operator", None);
    let s = start(&mut env, "server", &[]);
    let quick = s.post("/api/v1/workflows/quick/trigger", Some(&ops), "");
    let quick_id = quick.json["instance_id"].as_i64().unwrap();
    s.ended(quick_id, &ops);
    let id = s
        .post("/api/v1/workflows/sleepy/trigger", Some(&ops), "")
        .json["instance_id"]
        .as_i64()
        .unwrap();
    let detail = s.wait_json(
        &format!("/api/v1/instances/{id}"),
        &ops,
        "the task to run",
        |j| {
            j["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["node"] == "a" && t["status"] == "running")
        },
    );
    let task_id = detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["node"] == "a")
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(browser.unwrap(), profile.path());

    // not logged in: the dashboard sends us to the login page
    d.go(&s.url("/ui/"));
    let field = d.wait("input#token", "the login form");
    assert!(d.url().ends_with("/ui/login"), "{}", d.url());
    d.type_into(&field, &ops);
    let submit = d.wait("button[type=submit]", "the login button");
    d.click(&submit);

    // the dashboard, with today's counts and the running instance
    let ok = d.wait("#today-succeeded", "the dashboard");
    assert!(d.url().ends_with("/ui/"), "{}", d.url());
    assert_eq!(d.text(&ok), "1", "one instance succeeded today");
    let running = d.wait(
        &format!("a[href='/ui/instances/{id}']"),
        "the running instance on the dashboard",
    );
    d.click(&running);

    // the instance page: DAG node running, the task row, then kill it (two clicks: confirm)
    d.wait(
        ".dag g.n.st-running[data-node='a']",
        "the running node in the DAG",
    );
    d.wait(
        &format!("#timeline g.row[data-task='{task_id}'] rect.bar[data-state='running']"),
        "the running attempt on the timeline",
    );
    let kill = d.wait(
        &format!("tr[data-task='{task_id}'] button.kill-task"),
        "the task's kill button",
    );
    d.click(&kill);
    d.wait(
        &format!("tr[data-task='{task_id}'] button.kill-task.confirm"),
        "the confirm state",
    );
    d.click(&kill);
    d.wait(
        &format!("tr[data-task='{task_id}'][data-status='killed']"),
        "the task to show killed",
    );
    d.wait(
        ".dag g.n.st-killed[data-node='a']",
        "the DAG node to show killed",
    );
    d.wait(
        &format!("#timeline g.row[data-task='{task_id}'] rect.bar[data-state='killed']"),
        "the killed attempt on the timeline",
    );
    let title = d.wait("h1", "the heading");
    assert!(d.text(&title).contains("killed"), "{}", d.text(&title));

    // the workflow's run grid: the killed run's task, and the other workflow's succeeded one
    d.go(&s.url("/ui/workflows/sleepy"));
    d.wait(
        &format!("#run-grid td.cell[data-instance='{id}'][data-node='a'][data-state='killed']"),
        "the killed task in the run grid",
    );
    d.go(&s.url("/ui/workflows/quick"));
    d.wait(
        &format!(
            "#run-grid td.cell[data-instance='{quick_id}'][data-node='a'][data-state='succeeded']"
        ),
        "the succeeded task in the run grid",
    );

    // the API agrees, and the kill was recorded with the token's name
    let after = s.ended(id, &ops);
    assert_eq!(after["instance"]["status"], "killed");
    let events = s.get(&format!("/api/v1/events?instance_id={id}"), Some(&ops));
    assert!(
        events.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "task_kill" && e["actor"] == "api:browser-ops"),
        "{}",
        events.text
    );
    drop(d);
    drop(env);
}

/// A definitions directory with a broken file: every page carries a banner with the errors and says
/// that valid changes wait too; it goes once the file is fixed. The picture is `docs/definitions-banner.png`
/// (`AKKAFLOW_SCREENSHOT_DIR=docs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_definitions_directory_shows_a_banner_on_every_page() {
    let Some(browser) = support::browser::browser_or_skip() else {
        return;
    };
    let mut env = Env::new(common::Db::Sqlite, "banner")
        .await
        .expect("sqlite always works");
    env.write(
        "xmlconfig/quick.xml",
        &workflow("quick", "/dw", "echo done"),
    );
    let viewer = token(&env, "banner-viewer", "viewer", None);
    let s = start(&mut env, "server", &[]);
    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(browser, profile.path());
    d.login(&s.base, &viewer);
    assert!(
        d.find(".banner").is_none(),
        "no banner while the set is good"
    );

    env.write(
        "xmlconfig/broken.xml",
        "<work-flow name=\"broken\">\n  <start name=\"start\" to=\"end\"/>\n",
    );
    env.write(
        "xmlconfig/quick.xml",
        &workflow("quick", "/dw", "echo changed"),
    );
    common::wait_for(
        std::time::Duration::from_secs(60),
        "the rescan to record the errors",
        || async {
            let out = env.ok(&["status"]);
            if out.contains("definitions: ") {
                Ok(())
            } else {
                Err(out)
            }
        },
    )
    .await;
    for page in ["/ui/", "/ui/workflows", "/ui/cluster"] {
        d.go(&s.url(page));
        let banner = d.wait(".banner", "the definitions banner");
        let text = d.text(&banner);
        assert!(
            text.contains("definitions: 1 error since")
                && text.contains("running the set synced at")
                && text.contains("broken.xml")
                && text.contains("held back"),
            "{page}: {text}"
        );
        d.wait_true(
            "const b = document.querySelector('.banner'); return b.getBoundingClientRect().height > 20;",
            "the banner to be visible",
        );
    }
    d.go(&s.url("/ui/"));
    d.wait(".banner", "the banner on the dashboard");
    let dir = std::env::var("AKKAFLOW_SCREENSHOT_DIR").map(std::path::PathBuf::from);
    let shot = dir
        .clone()
        .unwrap_or_else(|_| profile.path().to_path_buf())
        .join("definitions-banner.png");
    d.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "a picture");

    // fixed: the banner goes
    std::fs::remove_file(env.path().join("xmlconfig/broken.xml")).unwrap();
    common::wait_for(
        std::time::Duration::from_secs(60),
        "the rescan to sync",
        || async {
            let out = env.ok(&["status"]);
            if out.contains("definitions: ") {
                Err(out)
            } else {
                Ok(())
            }
        },
    )
    .await;
    d.go(&s.url("/ui/"));
    d.wait("nav.nav", "the dashboard");
    assert!(d.find(".banner").is_none(), "the banner is gone");
    drop(d);
    drop(env);
}

/// An admin rolls a workflow back from its page (two clicks), sees the new version and the note
/// that sync keeps it, opens a diff, and filters the instances list by trigger kind, whose times
/// the browser shows in its own zone. With `AKKAFLOW_SCREENSHOT_DIR=docs` it saves
/// `versions.png` and `instances.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_rolls_back_from_the_workflow_page_and_filters_instances() {
    let Some(browser) = support::browser::browser_or_skip() else {
        return;
    };
    let mut env = Env::new(common::Db::Sqlite, "versions")
        .await
        .expect("sqlite always works");
    env.sync(&[("quick.xml", &workflow("quick", "/dw", "echo first"))]);
    env.sync(&[("quick.xml", &workflow("quick", "/dw", "echo second"))]);
    let admin = token(&env, "browser-admin", "admin", None);
    let s = start(&mut env, "server", &[]);
    let run = s.post(
        "/api/v1/workflows/quick/run",
        Some(&admin),
        r#"{"version":1}"#,
    );
    assert_eq!(run.status, 201, "{}", run.text);
    let run_id = run.json["instance_id"].as_i64().unwrap();
    let trig = s.post("/api/v1/workflows/quick/trigger", Some(&admin), "");
    let trig_id = trig.json["instance_id"].as_i64().unwrap();
    s.ended(run_id, &admin);
    s.ended(trig_id, &admin);
    let shots = std::env::var("AKKAFLOW_SCREENSHOT_DIR").map(std::path::PathBuf::from);

    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(browser, profile.path());
    d.login(&s.base, &admin);
    d.go(&s.url("/ui/workflows/quick"));
    d.wait("#version-list tr[data-version='2']", "the version list");
    let back = d.wait(
        "#version-list tr[data-version='1'] button.rollback",
        "the rollback button",
    );
    d.click(&back);
    d.wait("button.rollback.confirm", "the confirm state");
    d.click(&back);
    d.wait(
        "#version-list tr[data-version='3']",
        "the new version after the rollback",
    );
    let note = d.wait(
        "#versions .banner.rollback",
        "the note that sync keeps the rollback",
    );
    assert!(
        d.text(&note).contains("Rolled back to version 1"),
        "{}",
        d.text(&note)
    );
    d.exec(
        "document.getElementById('versions').scrollIntoView()",
        vec![],
    );
    if let Ok(dir) = &shots {
        d.screenshot(&dir.join("versions.png"));
    }
    let v = s.get("/api/v1/workflows/quick/versions", Some(&admin));
    assert_eq!(
        (
            v.json["current"].as_i64(),
            v.json["rolled_back_to"].as_i64()
        ),
        (Some(3), Some(1))
    );

    // the diff of the rollback against the version it replaced
    d.go(&s.url("/ui/workflows/quick/diff?from=2&to=3"));
    let added = d.wait("pre.diff span.add", "an added line");
    assert!(d.text(&added).contains("echo first"), "{}", d.text(&added));

    // the instances list filtered by trigger kind; absolute times in the browser's zone
    d.go(&s.url("/ui/instances?trigger=run"));
    d.wait(
        &format!("a[href='/ui/instances/{run_id}']"),
        "the run instance",
    );
    assert!(
        d.find(&format!("a[href='/ui/instances/{trig_id}']"))
            .is_none(),
        "the trigger is filtered out"
    );
    d.wait_true(
        "const t = document.querySelector('time.local'); return t && t.title.endsWith('UTC') && t.textContent !== t.title;",
        "the time shown in the browser's zone, UTC on hover",
    );
    d.go(&s.url("/ui/instances"));
    d.wait(
        &format!("a[href='/ui/instances/{trig_id}']"),
        "every instance",
    );
    if let Ok(dir) = &shots {
        d.screenshot(&dir.join("instances.png"));
    }
    drop(d);
    drop(env);
}

/// The workflow page's backfill form: a preview lists the slots after the calendar (the makeup
/// Saturday in, the Sunday out) without creating anything, a start creates the backfill, and the
/// page shows it with its progress once the master has run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_previews_and_starts_a_backfill_from_the_workflow_page() {
    let browser = chromium();
    if browser.is_none() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var("AKKAFLOW_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("AKKAFLOW_REQUIRE_BROWSER=1 but chromium or {CHROMEDRIVER} is missing (apt-get install -y chromium chromium-driver)");
        }
        println!("skipped: chromium or chromedriver is missing (apt-get install -y chromium chromium-driver)");
        return;
    }
    let mut env = Env::new(common::Db::Sqlite, "browser-backfill")
        .await
        .expect("sqlite always works");
    env.sync(&[
        (
            "calendars.xml",
            r#"<calendars><calendar name="cn" weekend="sat,sun"><workday date="2026-10-10"/></calendar></calendars>"#,
        ),
        (
            "daily.xml",
            r#"<work-flow name="daily" dir="/dw"><coordinator calendar="cn"><depend-list cron="0 2 * * *"/></coordinator>
  <start name="start" to="a"/><action name="a"><shell><command>echo ok</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        ),
    ]);
    let ops = token(&env, "browser-ops", "operator", None);
    let s = start(&mut env, "server", &[]);
    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(browser.unwrap(), profile.path());
    d.login(&s.url(""), &ops);
    d.go(&s.url("/ui/workflows/daily"));
    let from = d.wait("form.backfill input[name='from']", "the backfill form");
    d.type_into(&from, "2026-10-09");
    let to = d.wait("form.backfill input[name='to']", "the backfill form's end");
    d.type_into(&to, "2026-10-12");
    let preview = d.wait("form.backfill button[value='1']", "the preview button");
    d.click(&preview);
    let plan = d.wait("#backfill-plan table.plan", "the previewed slots");
    let text = d.text(&plan);
    for day in ["2026-10-09 02:00", "2026-10-10 02:00", "2026-10-12 02:00"] {
        assert!(text.contains(day), "{day}: {text}");
    }
    assert!(
        !text.contains("2026-10-11"),
        "the Sunday is no slot: {text}"
    );
    let none = s.get("/api/v1/backfills", Some(&ops));
    assert_eq!(
        none.json["backfills"].as_array().unwrap().len(),
        0,
        "a preview creates nothing"
    );
    let go = d.wait("form.backfill button.primary", "the start button");
    d.click(&go);
    let id = s.wait_json(
        "/api/v1/backfills",
        &ops,
        "the backfill to be created",
        |j| j["backfills"].as_array().is_some_and(|a| !a.is_empty()),
    )["backfills"][0]["id"]
        .as_i64()
        .unwrap();
    s.wait_json(
        &format!("/api/v1/backfills/{id}"),
        &ops,
        "the backfill to succeed",
        |j| j["status"] == "succeeded",
    );
    d.go(&s.url("/ui/workflows/daily"));
    let row = d.wait(
        &format!("#backfills tr[data-backfill='{id}'] .st-succeeded"),
        "the finished backfill on the page",
    );
    assert_eq!(d.text(&row), "succeeded");
}
