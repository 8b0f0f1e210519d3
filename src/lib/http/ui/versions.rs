//! A workflow's versions in the UI: the history card on the workflow page (each version with
//! when it was stored, its hash, a diff link, run-this-version for operators and a rollback button
//! for admins) and the diff page between two versions.
//!
//! Buttons POST through the same `data-post` handler as every other (session CSRF token, two-click
//! confirm for the rollback), so the UI can do nothing the API would refuse.

use axum::extract::State;
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{page, seg, Nav, UiCaller, UiResult};
use crate::http::api::versions::{diff_of, version_list, VersionList};
use crate::http::auth::Caller;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::AppState;
use crate::store::TokenRole;

/// A UTC instant the browser shows in the viewer's zone (`app.js`); UTC without script.
pub(crate) fn local_time(t: DateTime<Utc>) -> Markup {
    html! {
        time.local datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)) {
            (t.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

/// The history card of the workflow page, newest version first.
pub(crate) async fn history_card(state: &AppState, caller: &Caller, name: &str) -> UiResult {
    let v = version_list(state, caller, name).await?;
    Ok(card(caller, &v))
}

fn card(caller: &Caller, v: &VersionList) -> Markup {
    let name = seg(&v.workflow);
    let op = caller.can(TokenRole::Operator);
    let admin = caller.can(TokenRole::Admin);
    html! {
        div.card #versions style="margin-top:16px" {
            h2 { "Versions" span.grow {} span.small.muted { (v.versions.len()) " stored · new instances run v" (v.current) } }
            @if let Some(to) = v.rolled_back_to {
                div.banner.rollback role="status" {
                    b { "Rolled back to version " (to) "." }
                    " The workflow's file still has other content: sync keeps this rollback and reports the file as differing until the file is updated ("
                    span.mono { "akkaflow workflow show " (v.workflow) " > FILE" } ") or "
                    span.mono { "sync --overwrite-rollbacks" } " replaces it."
                }
            }
            div.flush { table #version-list {
                thead { tr { th { "Version" } th { "Stored" } th { "Hash" } th {} th {} } }
                tbody { @for x in v.versions.iter().rev() {
                    tr data-version=(x.version) {
                        td { b { "v" (x.version) } " "
                            @if x.version == v.current { span.badge.st-succeeded { "current" } }
                            @if let Some(same) = x.same_as { " " span.small.muted { "= v" (same) } } }
                        td.small { (local_time(x.created_at)) }
                        td.mono.small { (x.content_hash.chars().take(12).collect::<String>()) }
                        td.nowrap {
                            @if x.version != v.current {
                                a.btn.sm href={"/ui/workflows/" (name) "/diff?from=" (x.version) "&to=" (v.current)} { "Diff with current" }
                            } @else if x.version > 1 {
                                a.btn.sm href={"/ui/workflows/" (name) "/diff?from=" (x.version - 1) "&to=" (x.version)} { "Diff with v" (x.version - 1) }
                            }
                        }
                        td.nowrap {
                            @if op && x.version != v.current {
                                button.btn.sm data-post={"/api/v1/workflows/" (name) "/run"} data-body={"{\"version\":" (x.version) "}"} data-go="1" title="start an instance of this old version" { "Run v" (x.version) }
                                " "
                            }
                            @if admin && x.version != v.current && x.same_as.unwrap_or(x.version) != current_origin(v) {
                                button.btn.sm.danger.rollback data-post={"/api/v1/workflows/" (name) "/rollback"} data-body={"{\"to\":" (x.version) "}"} data-confirm={"Roll back to v" (x.version) "?"} { "Roll back to v" (x.version) }
                            }
                        }
                    }
                } }
            } }
        }
    }
}

/// The oldest version with the current content (a rollback to one of its twins changes nothing).
fn current_origin(v: &VersionList) -> i64 {
    v.versions
        .iter()
        .find(|x| x.version == v.current)
        .map_or(v.current, |x| x.same_as.unwrap_or(x.version))
}

#[derive(Debug, Deserialize, IntoParams)]
pub(crate) struct DiffPageQuery {
    /// The older version
    pub from: i64,
    /// The newer version (default: the current one)
    pub to: Option<i64>,
}

/// `/ui/workflows/{name}/diff?from=V1&to=V2`: the unified diff, coloured by line.
pub(crate) async fn diff_page(
    State(state): State<AppState>,
    UiCaller(caller): UiCaller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DiffPageQuery>,
) -> UiResult {
    let v = version_list(&state, &caller, &name).await?;
    let d = diff_of(&state, &caller, &name, q.from, q.to).await?;
    let (to, text) = (d.to, d.diff);
    let w = &v;
    let versions = &v.versions;
    let name_enc = seg(&w.workflow);
    let pick = |label: &str, field: &str, chosen: i64| {
        html! {
            label.small { (label) " "
                select name=(field) onchange="this.form.submit()" {
                    @for r in versions.iter().rev() { option value=(r.version) selected[r.version == chosen] { "v" (r.version) } }
                }
            }
        }
    };
    let body = html! {
        div.crumb { a href="/ui/workflows" { "Workflows" } " / " a href={"/ui/workflows/" (name_enc)} { (w.workflow) } " / diff" }
        div.top {
            div { h1 { "v" (q.from) " → v" (to) } div.sub { "A unified diff of the stored XML (" (w.workflow) ")" } }
            span.grow {}
            form.actions method="get" action={"/ui/workflows/" (name_enc) "/diff"} {
                (pick("from", "from", q.from)) (pick("to", "to", to))
                noscript { button.btn.sm type="submit" { "Show" } }
            }
        }
        div.card #diff {
            @if text.is_empty() { div.empty { "Versions " (q.from) " and " (to) " are the same." } }
            @else {
                pre.diff { @for line in text.lines() {
                    @let class = match line.chars().next() {
                        Some('+') if !line.starts_with("+++") => "add",
                        Some('-') if !line.starts_with("---") => "del",
                        Some('@') => "hunk",
                        _ => "ctx",
                    };
                    span class=(class) { (line) "\n" }
                } }
            }
        }
    };
    Ok(page(
        &caller,
        Nav::Workflows,
        &format!("{} v{} → v{to}", w.workflow, q.from),
        body,
    ))
}
