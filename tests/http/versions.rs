//! The original's routes and the OpenAPI document, definition versions, rollbacks and log search.

use super::*;

pub async fn legacy_routes_keep_the_original_envelope(env: &mut Env) {
    world(env);
    let ops = token(env, "ops", "operator", None);
    let admin = token(env, "admin", "admin", None);
    let s = start(env, "server", &[]);

    let r = s.get("/akkaflow/workflow/ok?action=trigger", Some(&ops));
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (200, Some("success")),
        "{}",
        r.text
    );
    let id = r.json["data"]["id"].as_i64().unwrap();
    assert_eq!(s.ended(id, &ops)["instance"]["status"], "succeeded");
    let r = s.get("/akkaflow/workflow/ok?action=run", Some(&ops));
    assert_eq!(r.json["result"], "success", "{}", r.text);
    s.ended(r.json["data"]["id"].as_i64().unwrap(), &ops);
    let r = s.get("/akkaflow/workflow/ok?action=trigger-blood", Some(&ops));
    assert_eq!(r.json["result"], "success", "{}", r.text);
    s.wait_json(
        "/api/v1/instances?workflow=after",
        &ops,
        "the blood run downstream",
        |j| {
            j["instances"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["trigger_kind"] == "blood" && i["status"] == "succeeded")
        },
    );
    let r = s.get("/akkaflow/workflow/ok?action=reset", Some(&ops));
    assert_eq!(r.json["result"], "success", "{}", r.text);
    let r = s.get("/akkaflow/workflow/ok?action=nonsense", Some(&ops));
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (400, Some("error")),
        "{}",
        r.text
    );
    assert!(r.json["msg"].as_str().unwrap().contains("trigger-blood"));
    let r = s.get("/akkaflow/workflow/nope?action=run", Some(&ops));
    assert_eq!((r.status, r.json["result"].as_str()), (404, Some("error")));

    let sid = s
        .get("/akkaflow/workflow/sleepy?action=trigger", Some(&ops))
        .json["data"]["id"]
        .as_i64()
        .unwrap();
    let r = s.get(
        &format!("/akkaflow/workflow/instance/{sid}?action=del"),
        Some(&ops),
    );
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (409, Some("error")),
        "{}",
        r.text
    );
    assert!(
        r.json["msg"].as_str().unwrap().contains("kill"),
        "{}",
        r.text
    );
    let r = s.get(
        &format!("/akkaflow/workflow/instance/{sid}?action=kill"),
        Some(&ops),
    );
    assert_eq!(r.json["result"], "success", "{}", r.text);
    assert_eq!(s.ended(sid, &ops)["instance"]["status"], "killed");
    let r = s.get(
        &format!("/akkaflow/workflow/instance/{sid}?action=rerun"),
        Some(&ops),
    );
    assert_eq!(r.json["result"], "success", "{}", r.text);
    s.get(
        &format!("/akkaflow/workflow/instance/{sid}?action=kill"),
        Some(&ops),
    );
    let r = s.get(
        &format!("/akkaflow/workflow/instance/{sid}?action=del"),
        Some(&ops),
    );
    assert!(
        r.json["msg"].as_str().unwrap().contains("history"),
        "{}",
        r.text
    );
    // for the invariant check that follows: what the kills and the rerun left behind
    println!(
        "sleepy: {}\nevents: {}",
        s.ended(sid, &ops),
        s.get(&format!("/api/v1/events?instance_id={sid}"), Some(&ops))
            .text
    );

    let r = s.post_xml(
        "/akkaflow/workflow?action=check",
        Some(&ops),
        &workflow("legacy_new", "/dw", "echo legacy"),
    );
    assert_eq!(r.json["result"], "success", "{}", r.text);
    let r = s.post_xml(
        "/akkaflow/workflow?action=add",
        Some(&ops),
        &workflow("legacy_new", "/dw", "echo legacy"),
    );
    assert_eq!(r.status, 403, "add needs an admin");
    let r = s.post_xml(
        "/akkaflow/workflow?action=add",
        Some(&admin),
        &workflow("legacy_new", "/dw", "echo legacy"),
    );
    assert_eq!(r.json["result"], "success", "{}", r.text);
    let r = s.post_xml(
        "/akkaflow/workflow?action=check",
        Some(&admin),
        "<work-flow name=\"z\">\n<start name=\"start\" to=\"q\"/>\n</work-flow>",
    );
    assert_eq!(
        (r.status, r.json["result"].as_str()),
        (422, Some("error")),
        "{}",
        r.text
    );
    assert!(r.json["data"][0]["line"].as_u64().is_some(), "{}", r.text);
    let r = s.get("/akkaflow/workflow/legacy_new?action=del", Some(&ops));
    assert_eq!(r.json["result"], "success");
    assert_eq!(
        s.get("/api/v1/workflows/legacy_new", Some(&ops)).json["workflow"]["enabled"],
        false
    );

    let r = s.get("/akkaflow/cluster?action=get", Some(&ops));
    assert_eq!(r.json["result"], "success");
    assert!(r.json["data"]["workers"].is_array());
    let r = s.get("/akkaflow/cluster?action=get", None);
    assert_eq!((r.status, r.json["result"].as_str()), (401, Some("error")));
}

pub async fn openapi_documents_exactly_the_served_routes(env: &mut Env) {
    world(env);
    let admin = token(env, "admin", "admin", None);
    let s = start(env, "server", &[]);
    let doc = s.get("/api/openapi.json", None);
    assert_eq!(doc.status, 200);
    assert!(doc.json["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.json["paths"].as_object().unwrap();
    for (path, item) in paths {
        assert!(path.starts_with("/api/v1/"), "{path}");
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{name}", "nope-").replace("{id}", "999999");
            let r = match method.as_str() {
                "get" => s.get(&concrete, Some(&admin)),
                "post" => s.post(&concrete, Some(&admin), ""),
                "delete" => s.delete(&concrete, Some(&admin)),
                other => panic!("undocumented method {other}"),
            };
            let message = r.json["error"]["message"].as_str().unwrap_or("");
            assert!(
                r.status != 405 && !message.starts_with("no route"),
                "{method} {path} is documented but not served: {} {}",
                r.status,
                r.text
            );
            assert!(r.status < 500, "{method} {path}: {}", r.text);
        }
    }
    // and every served /api/v1 route is documented
    for (method, path) in [
        ("get", "/api/v1/whoami"),
        ("get", "/api/v1/workflows"),
        ("get", "/api/v1/workflows/{name}"),
        ("post", "/api/v1/workflows/{name}/enable"),
        ("post", "/api/v1/workflows/{name}/disable"),
        ("post", "/api/v1/workflows/{name}/trigger"),
        ("post", "/api/v1/workflows/{name}/run"),
        ("get", "/api/v1/workflows/{name}/versions"),
        ("get", "/api/v1/workflows/{name}/diff"),
        ("post", "/api/v1/workflows/{name}/rollback"),
        ("post", "/api/v1/definitions"),
        ("post", "/api/v1/definitions/validate"),
        ("get", "/api/v1/instances"),
        ("get", "/api/v1/instances/{id}"),
        ("post", "/api/v1/instances/{id}/kill"),
        ("post", "/api/v1/instances/{id}/rerun"),
        ("get", "/api/v1/instances/{id}/logs"),
        ("get", "/api/v1/instances/{id}/logs/follow"),
        ("get", "/api/v1/instances/{id}/logs/download"),
        ("get", "/api/v1/tasks/{id}"),
        ("post", "/api/v1/tasks/{id}/retry"),
        ("post", "/api/v1/tasks/{id}/kill"),
        ("get", "/api/v1/tasks/{id}/logs"),
        ("get", "/api/v1/tasks/{id}/logs/follow"),
        ("get", "/api/v1/workers"),
        ("get", "/api/v1/schedulers"),
        ("get", "/api/v1/cluster"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/links/db"),
        ("get", "/api/v1/links/file"),
        ("get", "/api/v1/tokens"),
        ("post", "/api/v1/tokens"),
        ("delete", "/api/v1/tokens/{name}"),
        ("get", "/api/v1/alerts"),
        ("post", "/api/v1/alerts/{id}/resend"),
        ("get", "/api/v1/pools"),
        ("post", "/api/v1/pools/{name}/slots"),
        ("post", "/api/v1/workflows/{name}/backfill"),
        ("get", "/api/v1/backfills"),
        ("get", "/api/v1/backfills/{id}"),
        ("post", "/api/v1/backfills/{id}/cancel"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        41
    );
}

/// Every synced version is kept: the API and the CLI list them and diff any two.
pub async fn versions_are_listed_and_diffed(env: &mut Env) {
    world(env);
    let changed = std::fs::read_to_string(env.path().join("xmlconfig/ok.xml"))
        .unwrap()
        .replace("echo hello from ok", "echo hello again");
    env.sync(&[("ok.xml", &changed)]);
    let ops = token(env, "ops", "operator", None);
    let scoped = token(env, "other", "viewer", Some("/other"));
    let s = start(env, "server", &[]);
    let v = s.get("/api/v1/workflows/ok/versions", Some(&ops));
    assert_eq!(v.status, 200, "{}", v.text);
    assert_eq!(v.json["current"], 2);
    let numbers: Vec<i64> = v.json["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);
    let d = s.get("/api/v1/workflows/ok/diff?from=1", Some(&ops));
    assert_eq!(
        (d.status, d.json["to"].as_i64()),
        (200, Some(2)),
        "{}",
        d.text
    );
    let text = d.json["diff"].as_str().unwrap();
    assert!(text.starts_with("--- a/ok@v1\n+++ b/ok@v2\n"), "{text}");
    assert!(
        text.contains("\n-  <action name=\"a\"><shell><command>echo hello from ok")
            && text.contains("\n+  <action name=\"a\"><shell><command>echo hello again"),
        "{text}"
    );
    assert_eq!(
        s.get("/api/v1/workflows/ok/diff?from=2&to=2", Some(&ops))
            .json["diff"],
        ""
    );
    assert_eq!(
        s.get("/api/v1/workflows/ok/diff?from=7", Some(&ops)).status,
        404
    );
    // a token scoped to another dir learns nothing about this workflow's versions
    assert_eq!(
        s.get("/api/v1/workflows/ok/versions", Some(&scoped)).status,
        404
    );
    // the CLI prints the same
    let history = env.ok(&["workflow", "history", "ok"]);
    assert!(
        history
            .lines()
            .any(|l| l.trim_start().starts_with('2') && l.contains("current")),
        "{history}"
    );
    assert_eq!(env.ok(&["workflow", "diff", "ok", "1"]), text);
    let refused = env.run(&["workflow", "diff", "ok", "1", "9"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("has no version 9"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
/// A rollback makes an old version's content the newest version (admin only, an event), sync
/// keeps it while the file differs (and says so) until the file catches up or
/// `--overwrite-rollbacks`; an old version runs on request and its instance says which; the
/// instances list filters and counts; an instance's log is searched and downloaded.
pub async fn rollback_run_old_version_filters_and_log_search(env: &mut Env) {
    world(env);
    let v1 = std::fs::read_to_string(env.path().join("xmlconfig/ok.xml")).unwrap();
    let v2 = v1.replace("echo hello from ok", "echo hello again");
    env.sync(&[("ok.xml", &v2)]);
    let ops = token(env, "ops", "operator", None);
    let admin = token(env, "admin", "admin", None);
    let s = start(env, "server", &[]);

    // rollback over the API: admins only, a known version only
    let r = s.post("/api/v1/workflows/ok/rollback", Some(&ops), r#"{"to":1}"#);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = s.post("/api/v1/workflows/ok/rollback", Some(&admin), r#"{"to":9}"#);
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s.post("/api/v1/workflows/ok/rollback", Some(&admin), r#"{"to":1}"#);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (&r.json["from"], &r.json["to"], &r.json["version"]),
        (&Value::from(2), &Value::from(1), &Value::from(3))
    );
    assert!(
        r.json["message"].as_str().unwrap().contains("sync"),
        "{}",
        r.text
    );
    let v = s.get("/api/v1/workflows/ok/versions", Some(&ops));
    assert_eq!(
        (
            v.json["current"].as_i64(),
            v.json["rolled_back_to"].as_i64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(v.json["versions"][2]["same_as"], 1, "{}", v.text);
    assert_eq!(
        s.get("/api/v1/workflows/ok/diff?from=1&to=3", Some(&ops))
            .json["diff"],
        ""
    );
    // rolling back to the content already current is refused
    let r = s.post("/api/v1/workflows/ok/rollback", Some(&admin), r#"{"to":1}"#);
    assert_eq!(r.status, 409, "{}", r.text);

    // the routine sync keeps the rollback and says the file differs
    let out = env.ok(&["sync", "xmlconfig"]);
    assert!(
        out.contains("kept 1 rollback") && out.contains("rolled back to version 1"),
        "{out}"
    );
    assert_eq!(
        s.get("/api/v1/workflows/ok", Some(&ops)).json["workflow"]["version"],
        3
    );

    // new instances run the rolled-back content; an old version runs on request
    let now_id = trigger(&s, &ops, "ok");
    let r = s.post("/api/v1/workflows/ok/run", Some(&ops), r#"{"version":2}"#);
    assert_eq!(r.status, 201, "{}", r.text);
    let old_id = r.json["instance_id"].as_i64().unwrap();
    let r = s.post("/api/v1/workflows/ok/run", Some(&ops), r#"{"version":7}"#);
    assert_eq!(r.status, 404, "{}", r.text);
    let old = s.ended(old_id, &ops);
    assert_eq!(old["instance"]["workflow_version"], 2);
    assert_eq!(s.ended(now_id, &ops)["instance"]["workflow_version"], 3);
    let log = |id: i64, q: &str| {
        s.get(&format!("/api/v1/instances/{id}/logs?q={q}"), Some(&ops))
            .json["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["line"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(log(old_id, "AGAIN"), ["hello again"], "search ignores case");
    assert_eq!(log(now_id, "hello"), ["hello from ok"]);
    assert!(log(now_id, "nowhere").is_empty());
    // the CLI runs an old version too, and `instance info` names it
    let cli_id = env.ok(&["workflow", "run", "ok", "--version", "1", "--wait"]);
    let info = env.ok(&["instance", "info", cli_id.trim()]);
    assert!(info.contains("(version 1)"), "{info}");

    // the download: an attachment, one line per output line with its time
    let d = s.get(
        &format!("/api/v1/instances/{old_id}/logs/download"),
        Some(&ops),
    );
    assert_eq!(d.status, 200, "{}", d.text);
    let disposition = d
        .headers
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        disposition,
        format!("attachment; filename=\"instance-{old_id}.log\"")
    );
    let lines: Vec<&str> = d.text.lines().collect();
    let hello = lines
        .iter()
        .find(|l| l.ends_with(" stdout hello again"))
        .unwrap_or_else(|| panic!("{}", d.text));
    assert!(hello.contains(" a#"), "{hello}");
    for l in &lines {
        let at = l.split(' ').next().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{l}");
    }
    let api = s.get(&format!("/api/v1/instances/{old_id}/logs"), Some(&ops));
    assert_eq!(
        lines.len(),
        api.json["lines"].as_array().unwrap().len(),
        "{}",
        d.text
    );

    // the instances list: filters, a total, pages
    let list = |q: &str| s.get(&format!("/api/v1/instances?{q}"), Some(&ops));
    let runs = list("workflow=ok&trigger=run");
    assert_eq!(runs.json["total"], 2, "{}", runs.text);
    assert!(runs.json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["trigger_kind"] == "run"));
    let all = list("workflow=ok").json["total"].as_i64().unwrap();
    assert_eq!(all, 3);
    let p1 = list("workflow=ok&limit=2");
    assert_eq!(
        (
            p1.json["total"].as_i64(),
            p1.json["instances"].as_array().unwrap().len()
        ),
        (Some(3), 2)
    );
    let before = p1.json["next_before_id"].as_i64().unwrap();
    let p2 = list(&format!("workflow=ok&limit=2&before_id={before}"));
    assert_eq!(
        (
            p2.json["total"].as_i64(),
            p2.json["instances"].as_array().unwrap().len()
        ),
        (Some(3), 1)
    );
    assert!(p2.json["next_before_id"].is_null());
    assert_eq!(
        list("workflow=ok&since=2000-01-01&until=2000-01-02").json["total"],
        0
    );
    assert_eq!(
        list("workflow=ok&status=succeeded&until=2999-01-01").json["total"],
        3
    );
    assert_eq!(list("until=garbage").status, 400);

    // the CLI rollback, then the file updated to the database's content ends the hold
    let out = env.ok(&["workflow", "rollback", "ok", "--to", "2"]);
    assert!(
        out.contains("version 4 has version 2's content") && out.contains("keeps this rollback"),
        "{out}"
    );
    let current = env.ok(&["workflow", "show", "ok"]);
    assert_eq!(current, v2);
    env.write("xmlconfig/ok.xml", &current);
    let out = env.ok(&["sync", "xmlconfig"]);
    assert!(!out.contains("rollback"), "{out}");
    let v = s.get("/api/v1/workflows/ok/versions", Some(&ops));
    assert_eq!(
        (
            v.json["current"].as_i64(),
            v.json["rolled_back_to"].as_i64()
        ),
        (Some(4), None)
    );
    // and --overwrite-rollbacks replaces a rollback with the file, loudly
    env.ok(&["workflow", "rollback", "ok", "--to", "1"]);
    let out = env.ok(&["sync", "xmlconfig", "--overwrite-rollbacks"]);
    assert!(out.contains("UNDID 1 rollback"), "{out}");
    let v = s.get("/api/v1/workflows/ok/versions", Some(&ops));
    assert_eq!(
        (
            v.json["current"].as_i64(),
            v.json["rolled_back_to"].as_i64()
        ),
        (Some(6), None)
    );
    let history = env.ok(&["workflow", "history", "ok"]);
    assert!(
        history.contains("= v2") && history.contains("= v1"),
        "{history}"
    );
}
