//! The HTTP role over real HTTP: `akkaflow standalone` started as a process on a free port, called
//! with a blocking client, on each backend. Covers auth (401/403), scopes, every route, the
//! original's routes and bad input.

mod common;
mod support;

use std::time::Duration;

use common::Env;
use serde_json::Value;
use support::{start, token, workflow, Opts, Server};

fn sleeper(name: &str, dir: &str) -> String {
    workflow(name, dir, "echo started; sleep 60")
}

/// Syncs a small world: /dw/ods (ok, fails), /dw/rpt (after ok), /other (secret).
fn world(env: &Env) {
    env.sync(&[
        (
            "ok.xml",
            r#"<work-flow name="ok" dir="/dw/ods" desc="test workflow ok">
  <param-list><param name="day" value="2024-01-01"/></param-list>
  <start name="start" to="a"/>
  <action name="a"><shell><command>echo hello from ok; echo line two</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
        ),
        (
            "fails.xml",
            &workflow("fails", "/dw/ods", "echo broken >&2; exit 3"),
        ),
        (
            "after.xml",
            r#"<work-flow name="after" dir="/dw/rpt">
  <coordinator><depend-list><workflow name="ok"/></depend-list></coordinator>
  <start name="start" to="a"/>
  <action name="a"><shell><command>echo after</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
        ),
        ("secret.xml", &workflow("secret", "/other", "echo secret")),
        ("sleepy.xml", &sleeper("sleepy", "/dw/ods")),
    ]);
}

fn names(r: &Value) -> Vec<String> {
    r["workflows"]
        .as_array()
        .expect("workflow list")
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect()
}

fn trigger(s: &Server, t: &str, wf: &str) -> i64 {
    let r = s.post(&format!("/api/v1/workflows/{wf}/trigger"), Some(t), "");
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["instance_id"].as_i64().unwrap()
}

fn task_of(detail: &Value, node: &str) -> Value {
    detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["node"] == node)
        .cloned()
        .expect("task")
}

mod cases {
    use super::*;

    pub async fn auth_is_required_and_roles_are_enforced(env: &mut Env) {
        world(env);
        let viewer = token(env, "viewer", "viewer", None);
        let ops = token(env, "ops", "operator", None);
        let admin = token(env, "admin", "admin", None);
        let s = start(env, "server", &[]);

        let r = s.get("/api/v1/workflows", None);
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "{}", r.text);
        assert!(r.www_authenticate.is_some());
        assert!(r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer"));
        let r = s.get("/api/v1/workflows", Some("akf_not-a-token"));
        assert_eq!(r.status, 401);
        assert_eq!(
            s.get("/api/openapi.json", None).status,
            200,
            "the document is public"
        );

        assert_eq!(s.get("/api/v1/workflows", Some(&viewer)).status, 200);
        let r = s.post("/api/v1/workflows/ok/trigger", Some(&viewer), "");
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{}", r.text);
        assert_eq!(
            s.post("/api/v1/workflows/ok/disable", Some(&viewer), "")
                .status,
            403
        );
        assert_eq!(s.get("/api/v1/tokens", Some(&ops)).status, 403);
        let r = s.post_xml(
            "/api/v1/definitions",
            Some(&ops),
            &workflow("new1", "/dw", "true"),
        );
        assert_eq!(r.status, 403, "operators do not change definitions");

        let id = trigger(&s, &ops, "ok");
        assert_eq!(s.ended(id, &viewer)["instance"]["status"], "succeeded");
        let r = s.get("/api/v1/whoami", Some(&ops));
        assert_eq!(r.json["role"], "operator");

        // the event carries the token's name as the actor
        let ev = s.get(&format!("/api/v1/events?instance_id={id}"), Some(&viewer));
        let actors: Vec<&str> = ev.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "instance_created")
            .map(|e| e["actor"].as_str().unwrap())
            .collect();
        assert_eq!(actors, vec!["api:ops"]);

        // tokens over the API: create, list (no secrets), revoke; a revoked token is 401
        let r = s.post(
            "/api/v1/tokens",
            Some(&admin),
            r#"{"name":"tmp","role":"viewer"}"#,
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let tmp = r.json["secret"].as_str().unwrap().to_string();
        assert_eq!(s.get("/api/v1/workflows", Some(&tmp)).status, 200);
        let list = s.get("/api/v1/tokens", Some(&admin));
        assert!(!list.text.contains(&tmp) && !list.text.contains("secret_hash"));
        assert_eq!(s.delete("/api/v1/tokens/tmp", Some(&admin)).status, 200);
        assert_eq!(s.get("/api/v1/workflows", Some(&tmp)).status, 401);
        assert_eq!(s.delete("/api/v1/tokens/tmp", Some(&admin)).status, 404);
        let dup = s.post(
            "/api/v1/tokens",
            Some(&admin),
            r#"{"name":"tmp","role":"viewer"}"#,
        );
        assert_eq!(dup.status, 409, "{}", dup.text);
        let out = env.ok(&["token", "list"]);
        assert!(out.contains("tmp") && out.contains("viewer"), "{out}");
    }

    pub async fn scoped_tokens_see_nothing_outside_their_dir(env: &mut Env) {
        world(env);
        let admin = token(env, "admin", "admin", None);
        let dw = token(env, "dw", "operator", Some("/dw"));
        let dw_admin = token(env, "dwadmin", "admin", Some("/dw/"));
        let s = start(env, "server", &[]);
        let secret_run = trigger(&s, &admin, "secret");
        let ok_run = trigger(&s, &admin, "ok");
        s.ended(secret_run, &admin);
        s.ended(ok_run, &admin);

        let mut seen = names(&s.get("/api/v1/workflows", Some(&dw)).json);
        seen.sort();
        assert_eq!(seen, vec!["after", "fails", "ok", "sleepy"]);
        assert!(names(&s.get("/api/v1/workflows?dir=/other", Some(&dw)).json).is_empty());
        assert_eq!(
            names(&s.get("/api/v1/workflows?dir=/dw/rpt", Some(&dw)).json),
            vec!["after"]
        );
        assert_eq!(s.get("/api/v1/workflows/secret", Some(&dw)).status, 404);
        assert_eq!(
            s.post("/api/v1/workflows/secret/trigger", Some(&dw), "")
                .status,
            404
        );
        assert_eq!(
            s.post("/api/v1/workflows/secret/disable", Some(&dw), "")
                .status,
            404
        );
        assert_eq!(
            s.get(&format!("/api/v1/instances/{secret_run}"), Some(&dw))
                .status,
            404
        );
        assert_eq!(
            s.post(
                &format!("/api/v1/instances/{secret_run}/rerun"),
                Some(&dw),
                ""
            )
            .status,
            404
        );
        assert_eq!(
            s.get(&format!("/api/v1/instances/{secret_run}/logs"), Some(&dw))
                .status,
            404
        );
        assert_eq!(
            s.get(
                &format!("/api/v1/events?instance_id={secret_run}"),
                Some(&dw)
            )
            .status,
            404
        );
        let admin_view = s.get(&format!("/api/v1/instances/{secret_run}"), Some(&admin));
        let secret_task = admin_view.json["tasks"][1]["id"].as_i64().unwrap();
        assert_eq!(
            s.get(&format!("/api/v1/tasks/{secret_task}"), Some(&dw))
                .status,
            404
        );
        assert_eq!(
            s.post(&format!("/api/v1/tasks/{secret_task}/retry"), Some(&dw), "")
                .status,
            404
        );

        let list = s.get("/api/v1/instances", Some(&dw));
        let ids: Vec<i64> = list.json["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect();
        assert!(
            ids.contains(&ok_run) && !ids.contains(&secret_run),
            "{ids:?}"
        );
        assert!(
            s.get("/api/v1/instances?dir=/other", Some(&dw)).json["instances"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let events = s.get("/api/v1/events?limit=1000", Some(&dw));
        assert!(!events.text.contains("\"secret\""), "{}", events.text);

        // uploads and tokens stay inside the scope
        let r = s.post_xml(
            "/api/v1/definitions",
            Some(&dw_admin),
            &workflow("outside", "/other", "true"),
        );
        assert_eq!(r.status, 403, "{}", r.text);
        let r = s.post_xml(
            "/api/v1/definitions",
            Some(&dw_admin),
            &workflow("inside", "/dw/new", "true"),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let r = s.post(
            "/api/v1/tokens",
            Some(&dw_admin),
            r#"{"name":"wide","role":"viewer"}"#,
        );
        assert_eq!(r.status, 201, "defaults to the creator's scope: {}", r.text);
        assert_eq!(r.json["token"]["dir_prefix"], "/dw");
        let r = s.post(
            "/api/v1/tokens",
            Some(&dw_admin),
            r#"{"name":"escape","role":"admin","dir":"/other"}"#,
        );
        assert_eq!(r.status, 403);
        assert_eq!(
            s.delete("/api/v1/tokens/admin", Some(&dw_admin)).status,
            404
        );
    }

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
            format!("for a free slot: instance-limit 1 of `sleepy` is taken by running instance(s) {sid2}")
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
        let before =
            s.get("/api/v1/workflows/ok", Some(&admin)).json["workflow"]["version"].clone();

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

    pub async fn ui_sessions_need_csrf_and_same_origin(env: &mut Env) {
        world(env);
        let ops = token(env, "ops", "operator", None);
        let s = start(env, "server", &[]);
        let r = s.get("/ui/", None);
        assert_eq!(r.status, 303, "no session: to the login page");
        assert_eq!(s.get("/ui/login", None).status, 200);
        let form = Opts {
            content_type: Some("application/x-www-form-urlencoded"),
            ..Default::default()
        };
        let bad = s.post_with("/ui/login", None, "token=akf_wrong", &form);
        assert_eq!(bad.status, 401);
        let r = s.post_with(
            "/ui/login",
            None,
            &format!("token={ops}"),
            &Opts {
                origin: Some("http://evil.example"),
                ..form.clone()
            },
        );
        assert_eq!(r.status, 403, "cross-site login refused");
        let r = s.post_with("/ui/login", None, &format!("token={ops}"), &form);
        assert_eq!(r.status, 303, "{}", r.text);
        let set = r.set_cookie.expect("a session cookie");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_string();
        assert!(!cookie.contains(&ops), "the cookie is not the token");
        let page = s.get_with(
            "/ui/",
            None,
            &Opts {
                cookie: Some(&cookie),
                ..Default::default()
            },
        );
        assert_eq!(page.status, 200);
        assert!(page.content_type.starts_with("text/html") && page.text.contains("Dashboard"));
        let csrf = page
            .text
            .split("name=\"csrf\" content=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        for path in [
            "/ui/workflows",
            "/ui/workflows/ok",
            "/ui/instances",
            "/ui/cluster",
        ] {
            let p = s.get_with(
                path,
                None,
                &Opts {
                    cookie: Some(&cookie),
                    ..Default::default()
                },
            );
            assert_eq!(p.status, 200, "{path}");
        }
        // the API with the cookie: reads work; writes need the CSRF token and our origin
        let c = Opts {
            cookie: Some(&cookie),
            ..Default::default()
        };
        assert_eq!(s.get_with("/api/v1/whoami", None, &c).json["name"], "ops");
        let r = s.post_with("/api/v1/workflows/ok/trigger", None, "", &c);
        assert_eq!((r.status, r.code()), (403, "csrf"), "{}", r.text);
        let r = s.post_with(
            "/api/v1/workflows/ok/trigger",
            None,
            "",
            &Opts {
                csrf: Some(&csrf),
                origin: Some("http://evil.example"),
                ..c.clone()
            },
        );
        assert_eq!((r.status, r.code()), (403, "cross_origin"));
        let r = s.post_with(
            "/api/v1/workflows/ok/trigger",
            None,
            "",
            &Opts {
                csrf: Some(&csrf),
                origin: Some(&s.base),
                ..c.clone()
            },
        );
        assert_eq!(r.status, 201, "{}", r.text);
        // legacy routes never act on a cookie
        assert_eq!(
            s.get_with("/akkaflow/workflow/ok?action=run", None, &c)
                .status,
            401
        );
        let id = r.json["instance_id"].as_i64().unwrap();
        s.ended(id, &ops);
        assert_eq!(
            s.get_with(&format!("/ui/instances/{id}"), None, &c).status,
            200
        );
        assert_eq!(s.get_with("/ui/instances/999999", None, &c).status, 404);
        // logging out ends the session
        let r = s.post_with(
            "/ui/logout",
            None,
            &format!("csrf={csrf}"),
            &Opts {
                cookie: Some(&cookie),
                ..form.clone()
            },
        );
        assert_eq!(r.status, 303);
        assert_eq!(s.get_with("/api/v1/whoami", None, &c).status, 401);
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

    pub async fn no_auth_is_refused_off_loopback(env: &mut Env) {
        let out = env.run(&["http", "--listen", "0.0.0.0:0", "--no-auth"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
        let s = start(env, "open", &["--no-auth"]);
        assert!(env.log("open").contains("auth OFF"));
        let r = s.get("/api/v1/whoami", None);
        assert_eq!(
            (r.json["name"].as_str(), r.json["auth"].as_bool()),
            (Some("anonymous"), Some(false))
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
            out.contains("version 4 has version 2's content")
                && out.contains("keeps this rollback"),
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
}

e2e!(
    auth_is_required_and_roles_are_enforced,
    scoped_tokens_see_nothing_outside_their_dir,
    workflow_and_run_routes_do_what_the_cli_does,
    cluster_links_and_events_are_readable_without_passwords,
    bad_input_gets_4xx_and_changes_nothing,
    upload_syncs_with_the_stored_definitions,
    legacy_routes_keep_the_original_envelope,
    ui_sessions_need_csrf_and_same_origin,
    openapi_documents_exactly_the_served_routes,
    no_auth_is_refused_off_loopback,
    rollback_run_old_version_filters_and_log_search,
    versions_are_listed_and_diffed,
);
