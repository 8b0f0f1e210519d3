//! The REST routes: workflows and runs as the CLI has them, the cluster, links and events without secrets, bad input, uploads.

use super::*;

pub async fn workflow_and_run_routes_do_what_the_cli_does(env: &mut Env) {
    world(env);
    let ops = token(env, "ops", "operator", None);
    let s = start(env, "server", &[]);

    let all = s.get("/api/v1/workflows", Some(&ops));
    assert_eq!(names(&all.json).len(), 5);
    assert_eq!(
        names(&s.get("/api/v1/workflows?name=fa", Some(&ops)).json),
        vec!["fails"]
    );
    let d = s.get("/api/v1/workflows/after", Some(&ops));
    assert_eq!(d.status, 200);
    assert_eq!(d.json["upstreams"][0]["upstream"], "ok");
    assert!(d.json["source_xml"]
        .as_str()
        .unwrap()
        .contains("<work-flow name=\"after\""));
    assert_eq!(d.json["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(
        s.get("/api/v1/workflows/ok", Some(&ops)).json["downstreams"][0],
        "after"
    );

    // disable / enable, with events; a disabled workflow refuses triggers
    let r = s.post("/api/v1/workflows/ok/disable", Some(&ops), "");
    assert_eq!((r.status, r.json["changed"].as_bool()), (200, Some(true)));
    assert_eq!(
        s.post("/api/v1/workflows/ok/disable", Some(&ops), "").json["changed"],
        false
    );
    assert_eq!(
        names(&s.get("/api/v1/workflows?enabled=false", Some(&ops)).json),
        vec!["ok"]
    );
    let r = s.post("/api/v1/workflows/ok/trigger", Some(&ops), "");
    assert_eq!((r.status, r.code()), (409, "conflict"), "{}", r.text);
    assert_eq!(
        s.post("/api/v1/workflows/ok/enable", Some(&ops), "").status,
        200
    );

    // only declared (or used) parameters are accepted
    let r = s.post(
        "/api/v1/workflows/ok/run",
        Some(&ops),
        r#"{"params":{"day":"2024-01-02","PATH":"/nowhere"}}"#,
    );
    assert_eq!((r.status, r.code()), (400, "bad_request"), "{}", r.text);
    assert!(
        r.text.contains("`PATH`") && r.text.contains("`day`"),
        "{}",
        r.text
    );
    // trigger with parameters, then the instance with tasks and attempts, its logs
    let r = s.post(
        "/api/v1/workflows/ok/run",
        Some(&ops),
        r#"{"params":{"day":"2024-01-02"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["instance_id"].as_i64().unwrap();
    let d = s.ended(id, &ops);
    assert_eq!(d["instance"]["status"], "succeeded");
    assert!(d["instance"]["params"]
        .as_str()
        .unwrap()
        .contains("2024-01-02"));
    let a = task_of(&d, "a");
    assert_eq!(a["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(a["attempts"][0]["outcome"], "succeeded");
    let logs = s.get(&format!("/api/v1/instances/{id}/logs?limit=1"), Some(&ops));
    assert_eq!(logs.json["lines"].as_array().unwrap().len(), 1);
    let next = logs.json["next"].as_str().unwrap().to_string();
    let rest = s.get(
        &format!("/api/v1/instances/{id}/logs?after={next}"),
        Some(&ops),
    );
    let text: Vec<&str> = rest.json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_str().unwrap())
        .collect();
    assert!(text.contains(&"line two"), "{text:?}");
    assert_eq!(rest.json["ended"], true);
    let tl = s.get(&format!("/api/v1/tasks/{}/logs", a["id"]), Some(&ops));
    assert!(tl.text.contains("hello from ok"));
    let t = s.get(&format!("/api/v1/tasks/{}", a["id"]), Some(&ops));
    assert_eq!(
        (t.status, t.json["node"].as_str()),
        (200, Some("a")),
        "{}",
        t.text
    );
    assert_eq!(t.json["attempts"][0]["outcome"], "succeeded");
    let tf = s.sse(
        &format!("/api/v1/tasks/{}/logs/follow", a["id"]),
        &ops,
        Duration::from_secs(20),
    );
    assert!(
        tf.contains("hello from ok") && tf.contains("event: end"),
        "{tf}"
    );
    let hello = rest.json["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["line"] == "hello from ok")
        .expect("the first line of output")["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let resumed = s.sse(
        &format!("/api/v1/tasks/{}/logs/follow?after={hello}", a["id"]),
        &ops,
        Duration::from_secs(20),
    );
    assert!(
        !resumed.contains("hello from ok") && resumed.contains("line two"),
        "resumes after the cursor: {resumed}"
    );
    let follow = s.sse(
        &format!("/api/v1/instances/{id}/logs/follow"),
        &ops,
        Duration::from_secs(20),
    );
    assert!(
        follow.contains("event: line")
            && follow.contains("hello from ok")
            && follow.contains("event: end"),
        "{follow}"
    );

    // a failure, retried; rerun with recover; refusals are 409
    let fid = trigger(&s, &ops, "fails");
    let fd = s.ended(fid, &ops);
    assert_eq!(fd["instance"]["status"], "failed");
    let fa = task_of(&fd, "a");
    assert_eq!(fa["exit_code"], 3);
    let r = s.post(&format!("/api/v1/instances/{fid}/kill"), Some(&ops), "");
    assert_eq!(
        (r.status, r.code()),
        (409, "conflict"),
        "killing a finished instance: {}",
        r.text
    );
    let r = s.post(&format!("/api/v1/tasks/{}/retry", fa["id"]), Some(&ops), "");
    assert_eq!(r.status, 200, "{}", r.text);
    let fd = s.ended(fid, &ops);
    assert_eq!(task_of(&fd, "a")["attempt"], 2);
    let r = s.post(
        &format!("/api/v1/instances/{fid}/rerun"),
        Some(&ops),
        r#"{"recover":true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.ended(fid, &ops)["instance"]["status"], "failed");
    let skipped = task_of(&fd, "end")["id"].as_i64().unwrap();
    let r = s.post(&format!("/api/v1/tasks/{skipped}/retry"), Some(&ops), "");
    assert_eq!(
        r.status, 409,
        "retrying a skipped task is refused: {}",
        r.text
    );

    // kill a running task, and a running instance
    let sid = trigger(&s, &ops, "sleepy");
    let d = s.wait_json(
        &format!("/api/v1/instances/{sid}"),
        &ops,
        "sleepy to run",
        |j| task_of(j, "a")["status"] == "running",
    );
    let r = s.post(
        &format!("/api/v1/tasks/{}/kill", task_of(&d, "a")["id"]),
        Some(&ops),
        "",
    );
    assert_eq!(
        (r.status, r.json["status"].as_str()),
        (200, Some("running")),
        "{}",
        r.text
    );
    assert_eq!(s.ended(sid, &ops)["instance"]["status"], "killed");
    let sid2 = trigger(&s, &ops, "sleepy");
    s.wait_json(
        &format!("/api/v1/instances/{sid2}"),
        &ops,
        "sleepy to run",
        |j| task_of(j, "a")["status"] == "running",
    );
    // a second run waits behind the instance-limit, and says so (the running one: no reason)
    let sid3 = trigger(&s, &ops, "sleepy");
    let pending = s.get(&format!("/api/v1/instances/{sid3}"), Some(&ops));
    assert_eq!(pending.json["instance"]["status"], "pending");
    assert_eq!(
        pending.json["waiting"],
        format!(
            "for a free slot: instance-limit 1 of `sleepy` is taken by running instance(s) {sid2}"
        )
    );
    assert_eq!(
        s.get(&format!("/api/v1/instances/{sid2}"), Some(&ops)).json["waiting"],
        Value::Null
    );
    // the instance page says the same
    let page = s.get(&format!("/ui/instances/{sid3}"), Some(&ops));
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
            page.text.contains(&format!(
                "id=\"waiting\">for a free slot: instance-limit 1 of `sleepy` is taken by running instance(s) {sid2}<"
            )),
            "{}",
            page.text
        );
    assert_eq!(
        s.post(&format!("/api/v1/instances/{sid3}/kill"), Some(&ops), "")
            .status,
        200
    );
    assert_eq!(
        s.post(&format!("/api/v1/instances/{sid2}/kill"), Some(&ops), "")
            .status,
        200
    );
    assert_eq!(s.ended(sid2, &ops)["instance"]["status"], "killed");

    // paging and filters
    let page = s.get("/api/v1/instances?limit=2", Some(&ops));
    let before = page.json["next_before_id"].as_i64().expect("a next page");
    let page2 = s.get(
        &format!("/api/v1/instances?limit=2&before_id={before}"),
        Some(&ops),
    );
    assert!(page2.json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["id"].as_i64().unwrap() < before));
    let failed = s.get(
        "/api/v1/instances?status=failed&since=2000-01-01",
        Some(&ops),
    );
    assert!(failed.json["instances"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "failed"));
    assert_eq!(
        s.get("/api/v1/instances?workflow=ok", Some(&ops)).json["instances"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

pub async fn cluster_links_and_events_are_readable_without_passwords(env: &mut Env) {
    world(env);
    env.sync(&[(
            "db_links.xml",
            r#"<db-links><link name="dw" type="MYSQL" jdbc-url="mysql://etl:urlpass@db:3306/dw" username="etl" password="s3cret-pw"/></db-links>"#,
        )]);
    let viewer = token(env, "viewer", "viewer", None);
    let s = start(env, "server", &[]);
    let c = s.wait_json("/api/v1/cluster", &viewer, "a master and a worker", |j| {
        j["master"].is_object() && !j["workers"].as_array().unwrap().is_empty()
    });
    assert_eq!(c["workers"][0]["name"], "w1");
    assert_eq!(
        s.get("/api/v1/workers", Some(&viewer)).json["workers"][0]["slots"],
        4
    );
    assert!(
        !s.get("/api/v1/schedulers", Some(&viewer)).json["schedulers"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let links = s.get("/api/v1/links/db", Some(&viewer));
    assert_eq!(links.json["links"][0]["name"], "dw");
    assert!(
        !links.text.contains("s3cret-pw") && !links.text.contains("urlpass"),
        "{}",
        links.text
    );
    let files = s.get("/api/v1/links/file", Some(&viewer));
    assert!(
        files.text.contains("local") && !files.text.contains("password"),
        "{}",
        files.text
    );
    let ev = s.get("/api/v1/events?limit=2", Some(&viewer));
    let next = ev.json["next_after_id"].as_i64().expect("more events");
    let ev2 = s.get(
        &format!("/api/v1/events?after_id={next}&limit=1000"),
        Some(&viewer),
    );
    assert!(ev2.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"].as_i64().unwrap() > next));
}

pub async fn bad_input_gets_4xx_and_changes_nothing(env: &mut Env) {
    world(env);
    let admin = token(env, "admin", "admin", None);
    let s = start(env, "server", &[]);
    let before = s.get("/api/v1/workflows/ok", Some(&admin)).json["workflow"]["version"].clone();

    let r = s.post("/api/v1/workflows/ok/trigger", Some(&admin), "{not json");
    assert_eq!((r.status, r.code()), (400, "bad_json"), "{}", r.text);
    let r = s.post(
        "/api/v1/workflows/ok/trigger",
        Some(&admin),
        r#"{"params": 5}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s.post_with(
        "/api/v1/workflows/ok/trigger",
        Some(&admin),
        "x=1",
        &Opts {
            content_type: Some("application/x-www-form-urlencoded"),
            ..Default::default()
        },
    );
    assert_eq!(
        (r.status, r.code()),
        (415, "unsupported_media_type"),
        "{}",
        r.text
    );
    let r = s.post("/api/v1/tokens", Some(&admin), r#"{"name":"x"}"#);
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s.post(
        "/api/v1/tokens",
        Some(&admin),
        r#"{"name":"bad name","role":"viewer"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text);
    for path in [
        "/api/v1/instances/999999",
        "/api/v1/tasks/999999",
        "/api/v1/workflows/nope",
        "/api/v1/instances/999999/logs",
        "/api/v1/nothing-here",
    ] {
        let r = s.get(path, Some(&admin));
        assert_eq!(
            (r.status, r.code()),
            (404, "not_found"),
            "{path}: {}",
            r.text
        );
    }
    assert_eq!(
        s.post("/api/v1/instances/999999/kill", Some(&admin), "")
            .status,
        404
    );
    assert_eq!(
        s.post("/api/v1/tasks/999999/kill", Some(&admin), "").status,
        404
    );
    let r = s.get("/api/v1/instances/abc", Some(&admin));
    assert_eq!((r.status, r.code()), (400, "bad_path"), "{}", r.text);
    for q in [
        "limit=0",
        "limit=100000",
        "status=nope",
        "since=yesterday",
        "before_id=x",
    ] {
        let r = s.get(&format!("/api/v1/instances?{q}"), Some(&admin));
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert!(r.code().starts_with("bad"), "{q}: {}", r.text);
    }
    let r = s.get("/api/v1/instances/1/logs?after=garbage", Some(&admin));
    assert!(matches!(r.status, 400 | 404), "{}", r.text);

    // over the body limit
    let r = s.oversized("/api/v1/workflows/ok/trigger", &admin, 2 * 1024 * 1024);
    assert!(
        r.starts_with("HTTP/1.1 413") && r.contains("payload_too_large"),
        "{r}"
    );
    let r = s.oversized("/api/v1/definitions", &admin, 1024 * 1024 + 1);
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");

    // bad XML: 422 with line and column, nothing stored
    let broken = "<work-flow name=\"ok\" dir=\"/dw/ods\">\n  <start name=\"start\" to=\"nowhere\"/>\n  <end name=\"end\"/>\n</work-flow>";
    let r = s.post_xml("/api/v1/definitions?file=ok.xml", Some(&admin), broken);
    assert_eq!(
        (r.status, r.code()),
        (422, "invalid_definition"),
        "{}",
        r.text
    );
    let d = &r.json["error"]["details"][0];
    assert_eq!(
        (d["line"].as_u64(), d["severity"].as_str()),
        (Some(2), Some("error")),
        "{}",
        r.text
    );
    assert!(d["col"].as_u64().unwrap() > 0);
    let r = s.post_xml(
        "/api/v1/definitions",
        Some(&admin),
        "<work-flow name=\"x\"><start",
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.json["error"]["details"][0]["line"].as_u64().is_some());
    let v = s.post_xml("/api/v1/definitions/validate", Some(&admin), broken);
    assert_eq!(
        (v.status, v.json["valid"].as_bool()),
        (200, Some(false)),
        "{}",
        v.text
    );
    let r = s.post_xml(
        "/api/v1/definitions?file=../../etc/passwd",
        Some(&admin),
        &workflow("p", "/dw", "true"),
    );
    assert_eq!(r.status, 400);
    let r = s.post_with(
        "/api/v1/definitions",
        Some(&admin),
        "\u{0}\u{ff}",
        &Opts {
            content_type: Some("application/xml"),
            ..Default::default()
        },
    );
    assert_eq!(r.status, 422, "{}", r.text);
    let after = s.get("/api/v1/workflows/ok", Some(&admin)).json["workflow"]["version"].clone();
    assert_eq!(before, after, "a refused upload changes nothing");
    assert_eq!(
        names(&s.get("/api/v1/workflows", Some(&admin)).json).len(),
        5
    );
}

pub async fn upload_syncs_with_the_stored_definitions(env: &mut Env) {
    world(env);
    let admin = token(env, "admin", "admin", None);
    let s = start(env, "server", &[]);
    // a new workflow depending on a stored one validates against it
    let dep = r#"<work-flow name="downstream" dir="/dw/rpt">
  <coordinator><depend-list><workflow name="ok"/></depend-list></coordinator>
  <start name="start" to="a"/>
  <action name="a"><shell><command>echo down</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;
    let v = s.post_xml(
        "/api/v1/definitions/validate?file=downstream.xml",
        Some(&admin),
        dep,
    );
    assert_eq!(
        (
            v.json["valid"].as_bool(),
            v.json["changes"]["added"].as_u64()
        ),
        (Some(true), Some(1)),
        "{}",
        v.text
    );
    assert_eq!(
        s.get("/api/v1/workflows/downstream", Some(&admin)).status,
        404,
        "validate writes nothing"
    );
    let r = s.post_xml("/api/v1/definitions?file=downstream.xml", Some(&admin), dep);
    assert_eq!(
        (r.status, r.json["report"]["added"].as_u64()),
        (200, Some(1)),
        "{}",
        r.text
    );
    let d = s.get("/api/v1/workflows/downstream", Some(&admin));
    assert_eq!(d.json["workflow"]["version"], 1);
    assert_eq!(d.json["upstreams"][0]["upstream"], "ok");
    let again = s.post_xml("/api/v1/definitions?file=downstream.xml", Some(&admin), dep);
    assert_eq!(again.json["report"]["unchanged"], 1, "{}", again.text);
    let changed = dep.replace("echo down", "echo down v2");
    let r = s.post_xml("/api/v1/definitions", Some(&admin), &changed);
    assert_eq!(r.json["report"]["updated"], 1, "{}", r.text);
    assert_eq!(
        s.get("/api/v1/workflows/downstream", Some(&admin)).json["workflow"]["version"],
        2
    );
    // an unknown upstream is caught because the set is validated whole
    let bad = dep.replace("name=\"ok\"", "name=\"missing_upstream\"");
    let r = s.post_xml("/api/v1/definitions", Some(&admin), &bad);
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("missing_upstream"), "{}", r.text);
    // links files upload too; a <coordinator> file is refused with a reason
    let r = s.post_xml("/api/v1/definitions?file=db_links.xml", Some(&admin), r#"<db-links><link name="wh" type="POSTGRESQL" jdbc-url="postgres://wh/db" username="u" password="p"/></db-links>"#);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(s
        .get("/api/v1/links/db", Some(&admin))
        .text
        .contains("\"wh\""));
    let r = s.post_xml(
        "/api/v1/definitions",
        Some(&admin),
        r#"<coordinator name="c"/>"#,
    );
    assert_eq!(r.status, 422);
    // the uploaded workflow runs
    let id = trigger(&s, &admin, "downstream");
    assert_eq!(s.ended(id, &admin)["instance"]["status"], "succeeded");
}
