//! The visual workflow editor in a real browser (headless Chromium over WebDriver) against a real
//! `akkaflow standalone`: draw a workflow from the palette, see validation come and go, save it,
//! run it; and edit an original-format file so that the stored versions differ by the edit alone.
//! With `AKKAFLOW_SCREENSHOT_DIR=DIR`, the editor's screenshots are written there (docs/ has them).

mod common;
mod support;

use std::path::PathBuf;

use common::Env;
use serde_json::Value;
use support::browser::{browser_or_skip, Driver};
use support::{start, token, Server};

/// Whether all eight nodes of the drawn workflow lie inside the canvas.
const ALL_NODES_IN_VIEW: &str =
    "const c = document.querySelector('.canvas').getBoundingClientRect(); \
    const ns = [...document.querySelectorAll('.react-flow__node')]; \
    return ns.length === 8 && ns.every(n => { const r = n.getBoundingClientRect(); \
      return r.left >= c.left && r.right <= c.right && r.top >= c.top && r.bottom <= c.bottom; });";

/// Ctrl+A: WebDriver keys select everything in a field, so typed text replaces it.
const SELECT_ALL: &str = "\u{E009}a\u{E000}";

fn tid(id: &str) -> String {
    format!("[data-testid=\"{id}\"]")
}

/// Replaces the text of an input or a code editor.
fn set_text(d: &Driver, id: &str, text: &str) {
    let css = format!("{} .cm-content, input{}", tid(id), tid(id));
    let el = d.wait(&css, id);
    d.click(&el);
    d.type_into(&el, &format!("{SELECT_ALL}{text}"));
}

/// Picks an option of a select by its value.
fn choose(d: &Driver, id: &str, value: &str) {
    let opt = d.wait(
        &format!("select{} option[value=\"{value}\"]", tid(id)),
        &format!("option {value} of {id}"),
    );
    d.click(&opt);
}

fn click(d: &Driver, id: &str) {
    let el = d.wait(&tid(id), id);
    d.click(&el);
}

fn text_of(d: &Driver, id: &str) -> String {
    d.exec(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
        vec![Value::String(tid(id))],
    )
    .as_str()
    .unwrap_or_default()
    .to_string()
}

fn wait_text(d: &Driver, id: &str, want: &str) {
    let script = format!(
        "const e = document.querySelector({:?}); return !!e && e.textContent.includes({want:?});",
        tid(id)
    );
    d.wait_true(
        &script,
        &format!("{id} to say {want:?} (it says {:?})", text_of(d, id)),
    );
}

/// The selected node's panel shows this node.
fn panel_shows(d: &Driver, name: &str) {
    let script = format!(
        "const e = document.querySelector('[data-testid=node-name]'); return !!e && e.value === {name:?};"
    );
    d.wait_true(&script, &format!("the panel of {name}"));
}

fn shot(d: &Driver, name: &str) {
    if let Ok(dir) = std::env::var("AKKAFLOW_SCREENSHOT_DIR") {
        d.screenshot(&PathBuf::from(dir).join(name));
    }
}

/// A wider window for the screenshots (the default one is laptop-sized).
fn widen(d: &Driver) {
    if std::env::var("AKKAFLOW_SCREENSHOT_DIR").is_ok() {
        d.call(
            "POST",
            &d.s("/window/rect"),
            Some(serde_json::json!({ "width": 1680, "height": 1020 })),
        );
    }
}

fn setup(env: &Env) {
    let wh = env.path().join("warehouse.db");
    env.sync(&[
        (
            "db_links.xml",
            &format!(
                r#"<db-links><link name="warehouse" type="SQLITE" jdbc-url="jdbc:sqlite:{}" username="" password=""/></db-links>"#,
                wh.display()
            ),
        ),
        (
            "seed.xml",
            &support::workflow("seed", "/drawn", "echo seeded"),
        ),
    ]);
}

fn open_driver(s: &Server, secret: &str) -> (Driver, tempfile::TempDir) {
    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(browser_or_skip().unwrap(), profile.path());
    d.login(&s.url(""), secret);
    (d, profile)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_draws_a_fork_join_workflow_validates_saves_and_runs_it() {
    if browser_or_skip().is_none() {
        return;
    }
    let mut env = Env::new(common::Db::Sqlite, "editor_draw")
        .await
        .expect("sqlite always works");
    setup(&env);
    let admin = token(&env, "editor-admin", "admin", None);
    let s = start(&mut env, "server", &[]);
    let (d, _profile) = open_driver(&s, &admin);

    // New workflow from the workflow list
    d.go(&s.url("/ui/workflows"));
    let new = d.wait("#new-workflow", "the New workflow button");
    d.click(&new);
    d.wait(&tid("wf-name"), "the editor's workflow panel");
    assert!(d.url().ends_with("/ui/editor"), "{}", d.url());
    set_text(&d, "wf-name", "drawn");
    set_text(&d, "wf-dir", "/drawn");
    wait_text(&d, "title", "drawn");

    // nodes from the palette, each edited in its panel as it is added (a new node is selected)
    click(&d, "add-kill");
    panel_shows(&d, "kill");
    click(&d, "add-sql");
    panel_shows(&d, "sql");
    choose(&d, "attr-db-link", "warehouse");
    set_text(
        &d,
        "code-sql",
        "create table if not exists drawn_t (x integer); insert into drawn_t values (1);",
    );
    choose(&d, "edge-ok", "end");
    choose(&d, "edge-error", "kill");
    click(&d, "add-join");
    panel_shows(&d, "join");
    choose(&d, "edge-next", "sql");
    for (name, word) in [("shell", "left"), ("shell_2", "right")] {
        click(&d, "add-shell");
        panel_shows(&d, name);
        set_text(&d, "code-command", &format!("echo {word}"));
        choose(&d, "edge-ok", "join");
    }
    click(&d, "add-fork");
    panel_shows(&d, "fork");
    choose(&d, "fork-add-path", "shell");
    choose(&d, "fork-add-path", "shell_2");
    // the start node still points at end: send it to the fork
    let start_node = d.wait(&tid("node-start"), "the start node");
    d.click(&start_node);
    panel_shows(&d, "start");
    choose(&d, "edge-next", "fork");
    wait_text(&d, "validity", "valid");
    assert!(!text_of(&d, "validity").contains("error"));

    // a validation error appears on the node and in the list, and goes away when fixed
    choose(&d, "edge-next", "");
    wait_text(&d, "validity", "error");
    d.wait(
        "[data-testid=problem][data-node=start].p-error",
        "the problem in the list",
    );
    d.wait(&tid("node-errors-start"), "the error badge on the node");
    click(&d, "workflow-settings");
    d.wait(&tid("workflow-panel"), "the workflow panel");
    let problem = d.wait(
        "[data-testid=problem][data-node=start] button",
        "the problem's button",
    );
    d.click(&problem);
    panel_shows(&d, "start");
    choose(&d, "edge-next", "fork");
    wait_text(&d, "validity", "valid");
    d.wait_true(
        "return document.querySelectorAll('[data-testid=problem]').length === 0 && !document.querySelector('[data-testid^=node-errors-]');",
        "the problem to be gone",
    );

    // a cron, with its next fire times in words
    click(&d, "workflow-settings");
    click(&d, "add-coordinator");
    set_text(&d, "coord-cron", "*/30 * * * *");
    wait_text(&d, "cron-preview", "every 30 minutes");
    choose(&d, "coord-add-dep", "seed");
    widen(&d);
    click(&d, "relayout");
    d.wait_true(ALL_NODES_IN_VIEW, "the tidied graph to fit the canvas");
    wait_text(&d, "validity", "valid");
    shot(&d, "editor-workflow.png");
    let sql_node = d.wait(&tid("node-sql"), "the sql node");
    d.click(&sql_node);
    panel_shows(&d, "sql");
    shot(&d, "editor.png");
    click(&d, "xml-tab");
    wait_text(&d, "xml", "<fork name=\"fork\">");
    d.wait_true(ALL_NODES_IN_VIEW, "the graph to fit the narrower canvas");
    shot(&d, "editor-xml.png");

    // save: the definition upload's path, with the token as the actor
    click(&d, "save");
    wait_text(&d, "toast", "drawn: created (version 1)");
    let detail = s.get("/api/v1/workflows/drawn", Some(&admin));
    assert_eq!(detail.status, 200, "{}", detail.text);
    let xml = detail.json["source_xml"].as_str().unwrap();
    for want in [
        "<work-flow name=\"drawn\" creator=\"editor\" dir=\"/drawn\">",
        "<depend-list cron=\"*/30 * * * *\">",
        "<workflow name=\"seed\"/>",
        "<start name=\"start\" to=\"fork\"/>",
        "<path to=\"shell\"/>",
        "<path to=\"shell_2\"/>",
        "<command>echo left</command>",
        "<sql db-link=\"warehouse\">",
        "<error to=\"kill\"/>",
    ] {
        assert!(xml.contains(want), "{want} missing from\n{xml}");
    }
    let events = s.get("/api/v1/events?limit=1000", Some(&admin));
    assert!(
        events.json["events"].as_array().unwrap().iter().any(|e| {
            e["kind"] == "workflow_added"
                && e["workflow"] == "drawn"
                && e["actor"] == "api:editor-admin"
        }),
        "{}",
        events.text
    );

    // run it from its page and see it succeed
    click(&d, "open-workflow");
    let trigger = d.wait("button[data-post$='/trigger']", "the Trigger button");
    d.click(&trigger);
    d.wait_true(
        "return /\\/ui\\/instances\\/\\d+$/.test(location.pathname);",
        "the instance page",
    );
    let id: i64 = d.url().rsplit('/').next().unwrap().parse().unwrap();
    let done = s.ended(id, &admin);
    assert_eq!(done["instance"]["status"], "succeeded", "{done}");
    let tasks = done["tasks"].as_array().unwrap();
    for node in ["shell", "shell_2", "join", "sql"] {
        assert!(
            tasks
                .iter()
                .any(|t| t["node"] == node && t["status"] == "succeeded"),
            "{node}: {done}"
        );
    }
    d.wait_true(
        "return (document.querySelector('h1') || {}).textContent.includes('succeeded');",
        "the instance page to show it succeeded",
    );
    drop(d);
    drop(env);
}

/// An original-format file: tab-free but loosely spaced attributes, comments, CDATA, a coordinator.
const ORIGINAL: &str = r#"<work-flow name="orig" creator="Kent" mail-receivers="ops@example.com"
    dir="/example/orig" desc="工作流实例1">
  <!-- 调度配置 -->
  <coordinator is-enabled="false">
      <depend-list cron="*/20 * * * *"></depend-list>
      <param-list>
          <param name="stadate" value="${time.today|yyyy-MM-dd|-1 day}"/>
      </param-list>
  </coordinator>
  <!-- 节点列表 -->
  <start name="start" to="script" />

  <action name="script" desc = "执行脚本">
      <script>
          <code><![CDATA[
            for i in 1 2 3; do
                echo "$i -> ${param:stadate}"
            done
          ]]></code>
      </script>
      <ok to="end"/>
  </action>

  <end name="end"/>
</work-flow>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_edit_of_an_original_file_changes_only_the_edited_line() {
    if browser_or_skip().is_none() {
        return;
    }
    let mut env = Env::new(common::Db::Sqlite, "editor_edit")
        .await
        .expect("sqlite always works");
    setup(&env);
    env.sync(&[("orig.xml", ORIGINAL)]);
    let admin = token(&env, "editor-admin", "admin", None);
    let s = start(&mut env, "server", &[]);
    let (d, _profile) = open_driver(&s, &admin);

    d.go(&s.url("/ui/workflows/orig"));
    let edit = d.wait("#edit-workflow", "the Edit button");
    d.click(&edit);
    d.wait(
        &tid("source-note"),
        "the note that the directory is the source",
    );
    assert!(text_of(&d, "source-note").contains("xmlconfig/orig.xml"));
    wait_text(&d, "validity", "valid");
    widen(&d);
    let node = d.wait(&tid("node-script"), "the script node");
    d.click(&node);
    panel_shows(&d, "script");
    set_text(&d, "attr-retry-times", "3");
    d.wait_true(
        "return !!document.querySelector('.dirty');",
        "the unsaved mark",
    );
    wait_text(&d, "validity", "valid");
    click(&d, "save");
    wait_text(&d, "toast", "orig: saved (version 2)");

    // the two stored versions: the second is the first in canonical form plus the edit, nothing else
    let pool = common::sqlite_pool(&env.url).await;
    let versions: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, source_xml FROM workflow_version WHERE workflow = 'orig' ORDER BY version",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0].1, ORIGINAL);
    let canonical_before = akkaflow::definition::document::print(
        &akkaflow::definition::document::parse(&versions[0].1).unwrap(),
    )
    .unwrap()
    .xml;
    let after = &versions[1].1;
    let a: Vec<&str> = canonical_before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    assert_eq!(a.len(), b.len(), "{after}");
    let changed: Vec<(&str, &str)> = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| (*x, *y))
        .collect();
    assert_eq!(
        changed,
        vec![(
            "  <action name=\"script\" desc=\"执行脚本\">",
            "  <action name=\"script\" retry-times=\"3\" desc=\"执行脚本\">"
        )],
        "{after}"
    );
    for kept in [
        "<!-- 调度配置 -->",
        "<!-- 节点列表 -->",
        "echo \"$i -> ${param:stadate}\"",
    ] {
        assert!(after.contains(kept), "{kept} lost:\n{after}");
    }
    // the model changed in that attribute only
    let detail = s.get("/api/v1/workflows/orig", Some(&admin));
    assert_eq!(detail.json["workflow"]["version"], 2);
    shot(&d, "editor-edit.png");
    drop(d);
    drop(env);
}

/// The editor's endpoints without a browser: roles, a dir-scoped admin kept in its dir, a stale
/// save refused, and a tree that is not well-formed XML refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_endpoints_keep_roles_scope_and_versions() {
    let mut env = Env::new(common::Db::Sqlite, "editor_api")
        .await
        .expect("sqlite always works");
    setup(&env);
    let admin = token(&env, "ed-admin", "admin", None);
    let scoped = token(&env, "ed-scoped", "admin", Some("/drawn"));
    let viewer = token(&env, "ed-viewer", "viewer", None);
    let s = start(&mut env, "server", &[]);

    let opened = s.get("/ui/editor/api/workflows/seed", Some(&admin));
    assert_eq!(opened.status, 200, "{}", opened.text);
    assert_eq!(opened.json["version"], 1);
    assert!(opened.json["layout"]["a"].is_array(), "{}", opened.text);
    assert_eq!(
        s.get("/ui/editor/api/workflows/seed", Some(&viewer)).status,
        403
    );
    let mut doc = opened.json["document"].clone();
    let body = |doc: &Value, base: Value| {
        serde_json::json!({ "document": doc, "base_version": base, "opened": "seed" }).to_string()
    };

    // the scoped admin may save inside /drawn, not move the workflow out of it
    doc["root"]["attrs"] = serde_json::json!([["name", "seed"], ["dir", "/elsewhere"]]);
    let checked = s.post(
        "/ui/editor/api/check",
        Some(&scoped),
        &serde_json::json!({ "document": doc }).to_string(),
    );
    assert_eq!(checked.json["valid"], false, "{}", checked.text);
    assert!(
        checked.text.contains("outside the token's scope"),
        "{}",
        checked.text
    );
    let refused = s.post("/ui/editor/api/save", Some(&scoped), &body(&doc, 1.into()));
    assert_eq!(refused.status, 403, "{}", refused.text);

    doc["root"]["attrs"] = serde_json::json!([["name", "seed"], ["dir", "/drawn/sub"]]);
    let saved = s.post("/ui/editor/api/save", Some(&scoped), &body(&doc, 1.into()));
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.json["version"], 2);
    // a save from an editor opened at version 1 is now stale
    let stale = s.post("/ui/editor/api/save", Some(&admin), &body(&doc, 1.into()));
    assert_eq!(stale.status, 409, "{}", stale.text);

    // not well-formed: refused with the reason, nothing stored
    doc["root"]["attrs"] = serde_json::json!([["name", "seed"], ["bad name", "x"]]);
    let bad = s.post("/ui/editor/api/save", Some(&admin), &body(&doc, 2.into()));
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("bad name"), "{}", bad.text);
    let after = s.get("/api/v1/workflows/seed", Some(&admin));
    assert_eq!(after.json["workflow"]["version"], 2);

    // the cron preview in words, in the zone asked for
    let cron = s.get(
        "/ui/editor/api/cron?expr=30%201%20*%20*%20*&timezone=Asia/Shanghai",
        Some(&admin),
    );
    assert_eq!(cron.status, 200, "{}", cron.text);
    assert_eq!(cron.json["summary"], "at 01:30 every day");
    assert_eq!(cron.json["next"].as_array().unwrap().len(), 5);
    assert!(cron.json["next"][0].as_str().unwrap().ends_with("01:30"));
    let bad_cron = s.get("/ui/editor/api/cron?expr=61%20*%20*%20*%20*", Some(&admin));
    assert_eq!(bad_cron.status, 400, "{}", bad_cron.text);
}
