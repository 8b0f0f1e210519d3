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

#[path = "http/access.rs"]
mod access;
#[path = "http/routes.rs"]
mod routes;
#[path = "http/versions.rs"]
mod versions;

/// The cases each backend runs, one file per area.
mod cases {
    pub use super::{access::*, routes::*, versions::*};
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
