//! Who may do what: tokens and their roles and directories, UI sessions, and the refusal to serve without auth off loopback.

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
