//! Attacks on a running `akkaflow standalone`, each reproduced as it was found and shown to do no
//! harm now: a 40,000-deep document, parameters that reach the shell, a website talking to an
//! auth-off server, crafted names, crossings of dir scopes, a revoked token's log stream, and the
//! headers browsers need. On each backend.

mod common;
mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Env;
use serde_json::Value;
use support::{start, token, workflow, Opts, Server};

/// A workflow whose one task runs for a few seconds (long enough to be running during an attack).
fn slow(name: &str, dir: &str) -> String {
    workflow(
        name,
        dir,
        "echo started; for i in 1 2 3 4 5 6; do sleep 0.5; done; echo finished",
    )
}

/// 40,000 elements nested in one another inside a `<work-flow>` (280 KB).
fn deep_document() -> String {
    format!(
        "<work-flow name=\"deep\" dir=\"/a\">\n{}{}</work-flow>\n",
        "<x>".repeat(40_000),
        "</x>".repeat(40_000)
    )
}

fn trigger(s: &Server, t: &str, wf: &str, body: &str) -> i64 {
    let r = s.post(&format!("/api/v1/workflows/{wf}/trigger"), Some(t), body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["instance_id"].as_i64().unwrap()
}

fn task_status(s: &Server, t: &str, id: i64, node: &str) -> String {
    let d = s.get(&format!("/api/v1/instances/{id}"), Some(t));
    d.json["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["node"] == node)
        .and_then(|x| x["status"].as_str())
        .unwrap_or("")
        .to_string()
}

fn instances_of(s: &Server, t: &str, wf: &str) -> Vec<Value> {
    let r = s.get(&format!("/api/v1/instances?workflow={wf}"), Some(t));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["instances"].as_array().cloned().unwrap_or_default()
}

/// Every file below `dir` whose name is `name`.
fn find_files(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|f| f == name) {
                out.push(p);
            }
        }
    }
    out
}

mod cases {
    use super::*;

    /// Finding 1: the nesting attack against a running standalone, by a viewer. It must answer
    /// 400 naming the file and line, keep serving, and keep the task it is running.
    pub async fn deep_nesting_is_refused_and_the_server_keeps_its_tasks(env: &mut Env) {
        env.sync(&[("slow.xml", &slow("slow", "/a"))]);
        let viewer = token(env, "viewer", "viewer", None);
        let ops = token(env, "ops", "operator", None);
        let s = start(env, "server", &[]);
        let id = trigger(&s, &ops, "slow", "");
        let deadline = Instant::now() + Duration::from_secs(60);
        while task_status(&s, &ops, id, "a") != "running" {
            assert!(Instant::now() < deadline, "the slow task never ran");
            std::thread::sleep(Duration::from_millis(50));
        }

        let deep = deep_document();
        let r = s.post_xml("/api/v1/definitions/validate", Some(&viewer), &deep);
        assert_eq!((r.status, r.code()), (400, "document_limits"), "{}", r.text);
        let msg = r.json["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("upload.xml:2:190:") && msg.contains("nested more than 64 levels"),
            "{msg}"
        );
        let r = s.post_xml("/akkaflow/workflow?action=check", Some(&viewer), &deep);
        assert_eq!(
            (r.status, r.json["result"].as_str()),
            (400, Some("error")),
            "{}",
            r.text
        );
        assert!(r.json["msg"]
            .as_str()
            .unwrap()
            .contains("nested more than 64"));
        let admin = token(env, "admin", "admin", None);
        let r = s.post_xml("/api/v1/definitions", Some(&admin), &deep);
        assert_eq!(r.status, 400, "{}", r.text);

        // the other parsers: nested JSON, a cron step that once looped or panicked
        let deep_json = format!(
            "{{\"params\":{}{}}}",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        let r = s.post("/api/v1/workflows/slow/run", Some(&ops), &deep_json);
        assert_eq!((r.status, r.code()), (400, "bad_json"), "{}", r.text);
        let cron = r#"<work-flow name="huge_step" dir="/a">
  <coordinator><depend-list cron="59/4294967295 * * * *"></depend-list></coordinator>
  <start name="start" to="end"/>
  <end name="end"/>
</work-flow>"#;
        let r = s.post_xml("/api/v1/definitions/validate", Some(&viewer), cron);
        assert_eq!(
            (r.status, r.json["valid"].as_bool()),
            (200, Some(true)),
            "{}",
            r.text
        );

        // still serving, and the task that was running finishes as it would have
        assert_eq!(s.get("/api/v1/cluster", Some(&viewer)).status, 200);
        let d = s.ended(id, &viewer);
        assert_eq!(d["instance"]["status"], "succeeded", "{d}");
        assert!(
            env.log("server").contains("http:"),
            "the same process serves"
        );
        assert!(
            !env.log("server").contains("overflow"),
            "{}",
            env.log("server")
        );

        // the CLI on the same file: exit 1 with the message, no abort
        env.write("deep/deep.xml", &deep);
        let out = env.run(&["validate", "deep/deep.xml"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("deep.xml:2:190:") && text.contains("nested more than 64 levels"),
            "{text}"
        );
    }

    /// Finding 2: `{"params": {"BASH_ENV": "$(touch ...)"}}` ran a command as the worker's user.
    /// Now: undeclared parameters are refused (API 400, CLI exit 1), declared ones reach a task
    /// only as `AKKAFLOW_PARAM_<name>`, and a declared name the shell gives meaning to is refused
    /// at validation.
    pub async fn parameters_cannot_reach_the_shell_or_the_loader(env: &mut Env) {
        env.sync(&[(
            "p.xml",
            r#"<work-flow name="p" dir="/a">
  <param-list><param name="day" value="2024-01-01"/></param-list>
  <start name="start" to="a"/>
  <action name="a"><shell><command><![CDATA[printf 'env:%s\n' "$AKKAFLOW_PARAM_day"; printf 'sh:%s\n' ${param:day|sh}; if [ -n "${day+set}" ]; then echo PLAIN-NAME-EXPORTED; fi]]></command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
        )]);
        let ops = token(env, "ops", "operator", None);
        let s = start(env, "server", &[]);
        let marker = env.path().join("pwned");
        let payload = format!("$(touch {})", marker.display());

        for (route, body) in [
            (
                "trigger",
                serde_json::json!({ "params": { "BASH_ENV": payload } }),
            ),
            (
                "run",
                serde_json::json!({ "params": { "ENV": payload, "day": "x" } }),
            ),
            (
                "trigger",
                serde_json::json!({ "params": { "LD_PRELOAD": "/tmp/x.so" } }),
            ),
        ] {
            let r = s.post(
                &format!("/api/v1/workflows/p/{route}"),
                Some(&ops),
                &body.to_string(),
            );
            assert_eq!((r.status, r.code()), (400, "bad_request"), "{}", r.text);
            assert!(
                r.text.contains("neither declares nor uses") && r.text.contains("accepts `day`"),
                "{}",
                r.text
            );
        }
        assert!(instances_of(&s, &ops, "p").is_empty(), "nothing started");
        let out = env.run(&[
            "workflow",
            "trigger",
            "p",
            "--param",
            &format!("BASH_ENV={payload}"),
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("`BASH_ENV`"));

        // a declared parameter carrying shell code: the task sees it as data, twice
        let id = trigger(
            &s,
            &ops,
            "p",
            &serde_json::json!({ "params": { "day": payload } }).to_string(),
        );
        let d = s.ended(id, &ops);
        assert_eq!(d["instance"]["status"], "succeeded", "{d}");
        let logs = s.get(&format!("/api/v1/instances/{id}/logs"), Some(&ops));
        let lines: Vec<&str> = logs.json["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["line"].as_str())
            .collect();
        assert!(
            lines.contains(&format!("env:{payload}").as_str()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&format!("sh:{payload}").as_str()),
            "{lines:?}"
        );
        assert!(!lines.contains(&"PLAIN-NAME-EXPORTED"), "{lines:?}");
        assert!(!marker.exists() && find_files(env.path(), "pwned").is_empty());

        // a workflow declaring or using such a name is refused where it is written
        for (file, xml) in [
            (
                "bad/declares.xml",
                "<work-flow name=\"bad1\">\n  <param-list>\n    <param name=\"BASH_ENV\" value=\"x\"/>\n  </param-list>\n  <start name=\"start\" to=\"end\"/>\n  <end name=\"end\"/>\n</work-flow>\n",
            ),
            (
                "bad/uses.xml",
                "<work-flow name=\"bad2\">\n  <coordinator><param-list>\n    <param name=\"LD_PRELOAD\" value=\"x\"/>\n  </param-list></coordinator>\n  <start name=\"start\" to=\"end\"/>\n  <end name=\"end\"/>\n</work-flow>\n",
            ),
        ] {
            env.write(file, xml);
            let out = env.run(&["validate", file]);
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{text}");
            assert!(text.contains(&format!("{file}:3:")) && text.contains("is reserved"), "{text}");
        }
    }

    /// Finding 3: with `--no-auth`, a page on another site could upload a definition as
    /// `text/plain` and trigger it; a rebinding page could use its own host name.
    pub async fn auth_off_answers_only_its_own_origin_and_names(env: &mut Env) {
        let s = start(env, "open", &["--no-auth"]);
        let own = s.base.clone();
        let marker = env.path().join("ran");
        let xml = workflow("web", "/w", &format!("touch {}", marker.display()));
        let evil = Opts {
            origin: Some("http://evil.example"),
            content_type: Some("text/plain"),
            ..Default::default()
        };
        let r = s.post_with("/api/v1/definitions", None, &xml, &evil);
        assert_eq!((r.status, r.code()), (403, "cross_origin"), "{}", r.text);
        let r = s.post_with(
            "/akkaflow/workflow?action=add",
            None,
            &xml,
            &Opts {
                origin: Some("http://evil.example"),
                content_type: Some("application/xml"),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 403, "{}", r.text);
        // a same-origin text/plain body is no definition either
        let r = s.post_with(
            "/api/v1/definitions",
            None,
            &xml,
            &Opts {
                origin: Some(&own),
                content_type: Some("text/plain"),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 415, "{}", r.text);
        assert_eq!(
            s.get("/api/v1/workflows/web", None).status,
            404,
            "nothing stored"
        );

        // a forged Host (DNS rebinding) is refused; the real one and localhost are served
        let port = own.rsplit(':').next().unwrap();
        let get = |host: &str, extra: &str| {
            s.raw(&format!(
                "GET /api/v1/whoami HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
            ))
        };
        let (status, text) = get(&format!("rebind.evil.example:{port}"), "");
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("bad_host"), "{text}");
        assert_eq!(get(&format!("127.0.0.1:{port}"), "").0, 200);
        assert_eq!(get(&format!("localhost:{port}"), "").0, 200);
        // an <img> pointing at a legacy GET route sends no Origin, but says it is cross-site
        let (status, text) = s.raw(&format!(
            "GET /akkaflow/workflow/web?action=run HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(status, 403, "{text}");

        // from our own pages everything works
        let same = Opts {
            origin: Some(&own),
            content_type: Some("application/xml"),
            ..Default::default()
        };
        let r = s.post_with("/api/v1/definitions", None, &xml, &same);
        assert_eq!(r.status, 200, "{}", r.text);
        let r = s.post_with(
            "/api/v1/workflows/web/trigger",
            None,
            "",
            &Opts {
                origin: Some("http://evil.example"),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(
            s.get("/api/v1/instances?workflow=web", None).json["instances"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        let r = s.post_with(
            "/api/v1/workflows/web/trigger",
            None,
            "",
            &Opts {
                origin: Some(&own),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.json["instance_id"].as_i64().unwrap();
        assert_eq!(s.ended(id, "")["instance"]["status"], "succeeded");
        assert!(marker.exists());
    }

    /// Finding 5: a workflow named `../instances/4/kill?x=` turned the UI's Trigger button into a
    /// kill of another instance. Such names are refused; links encode every name.
    pub async fn crafted_names_are_refused_and_links_are_encoded(env: &mut Env) {
        env.sync(&[("daily.xml", &workflow("日报.v2", "/a", "echo report"))]);
        let s = start(env, "open", &["--no-auth"]);
        for (xml, what) in [
            (
                workflow("../instances/4/kill?x=", "/a", "true"),
                "workflow name",
            ),
            (workflow(".hidden", "/a", "true"), "workflow name"),
            (
                workflow("ok", "/a", "true")
                    .replace("name=\"a\"", "name=\"a/../b\"")
                    .replace("to=\"a\"", "to=\"a/../b\""),
                "node name",
            ),
        ] {
            let r = s.post_xml("/api/v1/definitions/validate", None, &xml);
            assert_eq!(
                (r.status, r.json["valid"].as_bool()),
                (200, Some(false)),
                "{}",
                r.text
            );
            assert!(
                r.text.contains(what) && r.text.contains("may hold only letters"),
                "{}",
                r.text
            );
            let r = s.post_xml("/api/v1/definitions", None, &xml);
            assert_eq!(r.status, 422, "{}", r.text);
        }
        let enc = "%E6%97%A5%E6%8A%A5%2Ev2";
        let list = s.get("/ui/workflows", None);
        assert!(
            list.text.contains(&format!("href=\"/ui/workflows/{enc}\"")),
            "{}",
            list.text
        );
        let page = s.get(&format!("/ui/workflows/{enc}"), None);
        assert_eq!(page.status, 200);
        assert!(
            page.text
                .contains(&format!("data-post=\"/api/v1/workflows/{enc}/trigger\"")),
            "{}",
            page.text
        );
        let r = s.post_with(
            &format!("/api/v1/workflows/{enc}/trigger"),
            None,
            "",
            &Opts {
                origin: Some(&s.base),
                ..Default::default()
            },
        );
        assert_eq!(
            r.status, 201,
            "the encoded link reaches the workflow: {}",
            r.text
        );
    }

    /// Finding 6: scoped callers learn nothing outside their dirs and start nothing there.
    pub async fn scoped_callers_neither_see_nor_start_work_outside_their_dirs(env: &mut Env) {
        let call = |name: &str, dir: &str, callee: &str| {
            format!(
                r#"<work-flow name="{name}" dir="{dir}">
  <start name="start" to="call"/>
  <action name="call"><sub-workflow name="{callee}"/><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#
            )
        };
        let depends = |name: &str, dir: &str, upstream: &str| {
            format!(
                r#"<work-flow name="{name}" dir="{dir}">
  <coordinator><depend-list><workflow name="{upstream}"/></depend-list></coordinator>
  <start name="start" to="a"/>
  <action name="a"><shell><command>echo {name}</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#
            )
        };
        env.sync(&[
            ("b.xml", &workflow("wf_b", "/b", "echo b")),
            ("a.xml", &call("wf_a", "/a", "wf_b")),
            ("a2.xml", &workflow("wf_a2", "/a", "echo a2")),
            ("b2.xml", &depends("wf_b2", "/b", "wf_a2")),
            ("a3.xml", &depends("wf_a3", "/a", "wf_b")),
            (
                "bp.xml",
                r#"<work-flow name="wf_bp" dir="/b">
  <param-list><param name="secret" value="s3cr3t-of-b"/></param-list>
  <start name="start" to="say"/>
  <action name="say"><shell><command>echo ${param:secret}</command></shell><ok to="call"/></action>
  <action name="call"><sub-workflow name="wf_ac"/><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
            ),
            ("ac.xml", &workflow("wf_ac", "/a", "echo child")),
        ]);
        let root = token(env, "root", "admin", None);
        let a_ops = token(env, "a_ops", "operator", Some("/a"));
        let a_view = token(env, "a_view", "viewer", Some("/a"));
        let a_admin = token(env, "a_admin", "admin", Some("/a"));
        let s = start(env, "server", &[]);
        let hides_b = |text: &str| {
            assert!(
                !text.contains("/b") && !text.contains("wf_b"),
                "names something in /b: {text}"
            );
        };

        // through <sub-workflow> and through a blood trigger: refused, saying why
        let r = s.post("/api/v1/workflows/wf_a/trigger", Some(&a_ops), "");
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("<sub-workflow> node `call`"), "{}", r.text);
        hides_b(&r.text);
        let r = s.get("/akkaflow/workflow/wf_a?action=run", Some(&a_ops));
        assert_eq!(r.status, 403, "{}", r.text);
        let r = s.post(
            "/api/v1/workflows/wf_a2/trigger",
            Some(&a_ops),
            r#"{"blood":true}"#,
        );
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("downstream"), "{}", r.text);
        hides_b(&r.text);
        let r = s.get(
            "/akkaflow/workflow/wf_a2?action=trigger-blood",
            Some(&a_ops),
        );
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(instances_of(&s, &root, "wf_b").is_empty());
        assert!(instances_of(&s, &root, "wf_a").is_empty());
        let id = trigger(&s, &a_ops, "wf_a2", "");
        assert_eq!(s.ended(id, &a_ops)["instance"]["status"], "succeeded");
        // the unscoped operator may; the scoped one cannot rerun that instance either
        let id = trigger(&s, &root, "wf_a", "");
        assert_eq!(s.ended(id, &root)["instance"]["status"], "succeeded");
        let r = s.post(&format!("/api/v1/instances/{id}/rerun"), Some(&a_ops), "");
        assert_eq!(r.status, 403, "{}", r.text);
        hides_b(&r.text);
        let r = s.get(
            &format!("/akkaflow/workflow/instance/{id}?action=rerun"),
            Some(&a_ops),
        );
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(
            instances_of(&s, &root, "wf_b").len(),
            1,
            "only the root's run"
        );

        // a scoped viewer sees no /b names among dependencies
        let r = s.get("/api/v1/workflows/wf_a2", Some(&a_view));
        assert_eq!(r.json["downstreams"], serde_json::json!([]), "{}", r.text);
        assert_eq!(
            s.get("/api/v1/workflows/wf_a2", Some(&root)).json["downstreams"],
            serde_json::json!(["wf_b2"])
        );
        let r = s.get("/api/v1/workflows/wf_a3", Some(&a_view));
        assert_eq!(r.json["upstreams"], serde_json::json!([]), "{}", r.text);
        let list = s.get("/api/v1/workflows", Some(&a_view));
        hides_b(&list.text);
        let page = s.get_with("/ui/workflows/wf_a2", Some(&a_view), &Opts::default());
        assert_eq!(page.status, 200);
        assert!(!page.text.contains("wf_b2"), "{}", page.text);

        // uploads: a scoped admin cannot reach /b through <sub-workflow>; validation by a scoped
        // viewer does not tell where a name lives
        let r = s.post_xml(
            "/api/v1/definitions",
            Some(&a_admin),
            &call("wf_a4", "/a", "wf_b"),
        );
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("<sub-workflow> node `call`"), "{}", r.text);
        hides_b(&r.text.replace("wf_a4", ""));
        let r = s.post_xml(
            "/api/v1/definitions/validate",
            Some(&a_view),
            &workflow("wf_b2", "/a", "true"),
        );
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(!r.text.contains("/b"), "{}", r.text);

        // uploads are keyed per workflow: one /b upload does not show up in an /a validation
        let r = s.post_xml(
            "/api/v1/definitions",
            Some(&root),
            &workflow("wf_u1", "/b", "true"),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let r = s.post_xml(
            "/api/v1/definitions/validate",
            Some(&a_admin),
            &workflow("wf_u3", "/a", "true"),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json["workflows"].as_array().unwrap().len(),
            1,
            "{}",
            r.text
        );
        assert!(!r.text.contains("wf_u1"), "{}", r.text);

        // a child of a /b parent: the /a viewer sees neither the parent nor its parameters
        let parent = trigger(&s, &root, "wf_bp", "");
        assert_eq!(s.ended(parent, &root)["instance"]["status"], "succeeded");
        let child = instances_of(&s, &root, "wf_ac")
            .into_iter()
            .find(|i| i["parent_instance_id"] == parent)
            .expect("the child instance");
        assert!(child["params"].as_str().unwrap().contains("s3cr3t-of-b"));
        let cid = child["id"].as_i64().unwrap();
        let r = s.get(&format!("/api/v1/instances/{cid}"), Some(&a_view));
        assert_eq!(r.status, 200);
        assert!(!r.text.contains("s3cr3t-of-b"), "{}", r.text);
        assert_eq!(r.json["instance"]["parent_instance_id"], Value::Null);
        let r = s.get("/api/v1/instances?workflow=wf_ac", Some(&a_view));
        assert!(!r.text.contains("s3cr3t-of-b"), "{}", r.text);
        let page = s.get_with(
            &format!("/ui/instances/{cid}"),
            Some(&a_view),
            &Opts::default(),
        );
        assert!(!page.text.contains("s3cr3t-of-b"));
    }

    /// Finding 7: a log-follow stream outlived the revocation of its token.
    pub async fn a_follow_stream_ends_when_its_token_is_revoked(env: &mut Env) {
        env.sync(&[(
            "sleepy.xml",
            &workflow("sleepy", "/a", "echo started; sleep 60"),
        )]);
        let ops = token(env, "ops", "operator", None);
        let watcher = token(env, "watcher", "viewer", None);
        let s = start(env, "server", &[]);
        let id = trigger(&s, &ops, "sleepy", "");
        let addr = s.base.trim_start_matches("http://").to_string();
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        write!(
            c,
            "GET /api/v1/instances/{id}/logs/follow HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Bearer {watcher}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        let mut revoked = false;
        loop {
            let n = c.read(&mut buf).expect("the stream ends by itself");
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if !revoked && seen.contains("started") {
                env.ok(&["token", "revoke", "watcher"]);
                revoked = true;
            }
        }
        assert!(revoked, "the stream never showed the first line: {seen}");
        assert!(
            seen.contains("event: error") && seen.contains("revoked"),
            "{seen}"
        );
        let r = s.post(&format!("/api/v1/instances/{id}/kill"), Some(&ops), "");
        assert_eq!(r.status, 200, "{}", r.text);
        s.ended(id, &ops);
    }

    /// Finding 8: browser-hardening headers, `Secure` cookies behind https, normalised scopes.
    pub async fn pages_are_hardened_and_scopes_are_plain_dirs(env: &mut Env) {
        env.config("public_url = \"https://flow.example.com\"");
        let ops = token(env, "ops", "operator", None);
        let admin = token(env, "admin", "admin", None);
        let s = start(env, "server", &[]);
        for path in ["/ui/login", "/api/v1/whoami"] {
            let r = s.get(path, Some(&ops));
            let h = |name: &str| {
                r.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            assert!(
                h("content-security-policy").contains("frame-ancestors 'none'"),
                "{path}"
            );
            assert!(
                h("content-security-policy").contains("script-src 'self'"),
                "{path}"
            );
            assert_eq!(h("x-frame-options"), "DENY", "{path}");
            assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
            assert_eq!(h("referrer-policy"), "same-origin", "{path}");
        }
        let r = s.post_with(
            "/ui/login",
            None,
            &format!("token={ops}"),
            &Opts {
                content_type: Some("application/x-www-form-urlencoded"),
                origin: Some("https://flow.example.com"),
                ..Default::default()
            },
        );
        assert_eq!(r.status, 303, "the public origin is our own: {}", r.text);
        let cookie = r.set_cookie.unwrap_or_default();
        assert!(
            cookie.contains("; Secure") && cookie.contains("HttpOnly"),
            "{cookie}"
        );

        let out = env.run(&[
            "token", "create", "--name", "t", "--role", "viewer", "--dir", "/a/../b",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("`..`"));
        let r = s.post(
            "/api/v1/tokens",
            Some(&admin),
            r#"{"name":"t2","role":"viewer","dir":"/a/./b"}"#,
        );
        assert_eq!(r.status, 400, "{}", r.text);
        let r = s.post_xml(
            "/api/v1/definitions/validate",
            Some(&admin),
            &workflow("sneaky", "/a/../b", "true"),
        );
        assert_eq!(r.json["valid"], false, "{}", r.text);
        assert!(r.text.contains("`..` segment"), "{}", r.text);
    }
}

e2e!(
    deep_nesting_is_refused_and_the_server_keeps_its_tasks,
    parameters_cannot_reach_the_shell_or_the_loader,
    auth_off_answers_only_its_own_origin_and_names,
    crafted_names_are_refused_and_links_are_encoded,
    scoped_callers_neither_see_nor_start_work_outside_their_dirs,
    a_follow_stream_ends_when_its_token_is_revoked,
    pages_are_hardened_and_scopes_are_plain_dirs,
);
