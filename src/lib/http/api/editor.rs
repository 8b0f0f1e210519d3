//! The visual editor's endpoints (admin; a dir-scoped admin within its dir). The editor edits a
//! [`Document`] tree; every XML it shows, checks or saves is printed here by the one canonical
//! printer, and checked and saved through the same functions as `POST /definitions/validate` and
//! `POST /definitions` (the validator of `akkaflow validate`, the sync transaction, the event with
//! the actor). They are the UI's own, served under `/ui/editor/api/` and left out of the documented
//! `/api/v1`: scripts upload XML.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::visible_workflow;
use super::workflows::{check_scope, posted_file, upload_xml, visible_diagnostics};
use crate::definition::cron::CronSpec;
use crate::definition::document::{self, Document, Printed, NODE_ELEMENTS};
use crate::http::auth::Caller;
use crate::http::dag::{EdgeView, NodeView};
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::ui::svg::placement;
use crate::http::AppState;
use crate::store::TokenRole;
use crate::sync::{self, SyncReport};

/// A workflow opened in the editor.
#[derive(Debug, Serialize)]
pub(crate) struct Opened {
    pub document: Document,
    /// Node name → centre, where the read-only DAG view draws it.
    pub layout: BTreeMap<String, (f64, f64)>,
    pub version: i64,
    /// Where the definition came from (`xmlconfig/...` for a synced file, `upload/...` for an upload)
    pub file_path: String,
    /// The canonical XML of the document, and whether it differs from the stored text
    pub xml: String,
    pub reformatted: bool,
}

/// The graph a document describes, for the layout: nodes directly under the root and their edges.
pub(crate) fn node_views(doc: &Document) -> Vec<NodeView> {
    doc.root
        .elements()
        .filter(|e| NODE_ELEMENTS.contains(&e.name.as_str()))
        .map(|e| {
            let edge = |to: &str, kind: &str| EdgeView {
                to: to.to_string(),
                kind: kind.to_string(),
            };
            let mut edges = Vec::new();
            let mut kind = e.name.clone();
            match e.name.as_str() {
                "start" | "join" => edges.extend(e.attr("to").map(|t| edge(t, "next"))),
                "fork" => edges.extend(
                    e.elements()
                        .filter(|p| p.name == "path")
                        .filter_map(|p| p.attr("to"))
                        .map(|t| edge(t, "next")),
                ),
                "action" => {
                    for c in e.elements() {
                        match c.name.as_str() {
                            "ok" | "error" => edges.extend(c.attr("to").map(|t| edge(t, &c.name))),
                            other => kind = other.replace("file-watcher", "file-monitor"),
                        }
                    }
                }
                _ => {}
            }
            NodeView {
                name: e.attr("name").unwrap_or_default().to_string(),
                kind,
                line: 0,
                description: e.attr("desc").unwrap_or_default().to_string(),
                edges,
            }
        })
        .collect()
}

fn layout_of(doc: &Document) -> BTreeMap<String, (f64, f64)> {
    placement(&node_views(doc)).at
}

fn require_editor(caller: &Caller) -> ApiResult<()> {
    caller.require(TokenRole::Admin)
}

/// Open a stored workflow in the editor
pub(crate) async fn open(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Opened>> {
    require_editor(&caller)?;
    let w = visible_workflow(&state, &caller, &name).await?;
    let document = document::parse(&w.source_xml).map_err(ApiError::bad_request)?;
    let printed = print(&document)?;
    Ok(Json(Opened {
        layout: layout_of(&document),
        reformatted: printed.xml != w.source_xml,
        xml: printed.xml,
        document,
        version: w.version,
        file_path: w.file_path,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocumentBody {
    pub document: Document,
}

#[derive(Debug, Serialize)]
pub(crate) struct LaidOut {
    pub layout: BTreeMap<String, (f64, f64)>,
}

/// The DAG view's placement of a document being edited (it may be invalid)
pub(crate) async fn layout(
    caller: Caller,
    ApiJson(body): ApiJson<DocumentBody>,
) -> ApiResult<Json<LaidOut>> {
    require_editor(&caller)?;
    Ok(Json(LaidOut {
        layout: layout_of(&body.document),
    }))
}

/// One finding, placed on the node (or the workflow part) its line falls in.
#[derive(Debug, Serialize)]
pub(crate) struct Finding {
    pub severity: &'static str,
    pub line: u32,
    pub col: u32,
    pub message: String,
    /// The node's name, when the line lies in a node
    pub node: Option<String>,
    /// The top-level element the line lies in (`action`, `coordinator`, `work-flow`, ...)
    pub element: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Checked {
    pub valid: bool,
    pub xml: String,
    pub findings: Vec<Finding>,
}

fn print(doc: &Document) -> ApiResult<Printed> {
    document::print(doc).map_err(ApiError::bad_request)
}

fn place(
    printed: &Printed,
    severity: &'static str,
    line: u32,
    col: u32,
    message: String,
) -> Finding {
    let span = printed.span_at(line);
    Finding {
        severity,
        line,
        col,
        message,
        node: span
            .filter(|s| NODE_ELEMENTS.contains(&s.element.as_str()))
            .and_then(|s| s.name.clone()),
        element: span.map(|s| s.element.clone()),
    }
}

/// The file name a new workflow is stored under: its name where that makes a plain file name.
fn new_file_name(doc: &Document) -> String {
    let name = doc.root.attr("name").unwrap_or_default();
    let plain = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain && !name.is_empty() && name.len() <= 120 {
        format!("{name}.xml")
    } else {
        "workflow.xml".to_string()
    }
}

/// Validates a document exactly as an upload of its XML would be validated (with the stored
/// definitions around it), and returns its canonical XML beside the findings. A finding in another
/// stored file (one this document breaks) is listed with its file and not placed on a node.
pub(crate) async fn check(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<DocumentBody>,
) -> ApiResult<Json<Checked>> {
    require_editor(&caller)?;
    let printed = print(&body.document)?;
    let file = posted_file(Some(&new_file_name(&body.document)), &printed.xml)?;
    // an upload replacing a stored workflow keeps its stored path; a new one goes under upload/
    let own = match body.document.root.attr("name") {
        Some(n) => state
            .engine
            .store
            .workflow_get(n)
            .await?
            .map(|w| w.file_path),
        None => None,
    }
    .unwrap_or_else(|| sync::upload_path(&file, &printed.xml).display().to_string());
    let mut findings = Vec::new();
    let diags = match sync::prepare_upload(&state.engine.store, &file, printed.xml.clone()).await {
        Ok(prepared) => {
            if let Err(e) = check_scope(&state, &caller, &prepared).await {
                findings.push(place(&printed, "error", 1, 1, e.message));
            }
            visible_diagnostics(&state, &caller, &prepared.set.warnings).await?
        }
        Err(crate::Error::Invalid(diags)) => visible_diagnostics(&state, &caller, &diags).await?,
        Err(e) => return Err(e.into()),
    };
    for d in diags {
        let severity = if d.severity == "error" {
            "error"
        } else {
            "warning"
        };
        if d.file == own {
            findings.push(place(&printed, severity, d.line, d.col, d.message));
        } else {
            findings.push(Finding {
                severity,
                line: 0,
                col: 0,
                message: format!("{}:{}:{}: {}", d.file, d.line, d.col, d.message),
                node: None,
                element: None,
            });
        }
    }
    Ok(Json(Checked {
        valid: !findings.iter().any(|f| f.severity == "error"),
        xml: printed.xml,
        findings,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SaveBody {
    pub document: Document,
    /// The version the editor opened; the save is refused if another one was stored since.
    /// `null` for a new workflow: then the name must be free.
    pub base_version: Option<i64>,
    /// The name the editor opened (a rename saves a new workflow and leaves the old one).
    #[serde(default)]
    pub opened: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Saved {
    pub workflow: String,
    pub version: i64,
    pub report: SyncReport,
    pub xml: String,
}

/// Saves a document: its canonical XML goes through the definition upload (validation, scope,
/// one transaction, a new version only when the text changed, an event with the actor)
pub(crate) async fn save(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SaveBody>,
) -> ApiResult<Json<Saved>> {
    require_editor(&caller)?;
    let name = body
        .document
        .root
        .attr("name")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::bad_request("the workflow needs a name"))?
        .to_string();
    let stored = state.engine.store.workflow_get(&name).await?;
    match (&stored, body.base_version) {
        (Some(w), Some(base)) if w.version != base && body.opened.as_deref() == Some(&name) => {
            return Err(ApiError::conflict(format!(
                "workflow `{name}` changed since it was opened (version {base}, now {}): reload the editor",
                w.version
            )))
        }
        (Some(w), _) if body.opened.as_deref() != Some(&name) && caller.sees(&w.dir) => {
            return Err(ApiError::conflict(format!(
                "a workflow named `{name}` exists already: pick another name or open it"
            )))
        }
        _ => {}
    }
    let printed = print(&body.document)?;
    let file = posted_file(Some(&new_file_name(&body.document)), &printed.xml)?;
    let (report, _) = upload_xml(&state, &caller, &file, printed.xml.clone()).await?;
    let version = state
        .engine
        .store
        .workflow_get(&name)
        .await?
        .map(|w| w.version)
        .ok_or_else(|| ApiError::internal(format!("workflow `{name}` missing after its save")))?;
    Ok(Json(Saved {
        workflow: name,
        version,
        report,
        xml: printed.xml,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CronQuery {
    pub expr: String,
    pub timezone: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CronPreview {
    /// The five fields the scheduler uses
    pub normalized: String,
    pub warning: Option<String>,
    /// In words: "every 20 minutes", "at 01:30 every day", ...
    pub summary: String,
    pub timezone: String,
    /// The next five fire times, as local times in the zone
    pub next: Vec<String>,
    pub next_utc: Vec<DateTime<Utc>>,
}

/// The next fire times of a cron string in a zone (the scheduler's own cron code)
pub(crate) async fn cron(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CronQuery>,
) -> ApiResult<Json<CronPreview>> {
    require_editor(&caller)?;
    let parsed = CronSpec::parse(&q.expr).map_err(ApiError::bad_request)?;
    let tz: chrono_tz::Tz = match q.timezone.as_deref().map(str::trim) {
        None | Some("") => state.engine.timezone,
        Some(name) => name
            .parse()
            .map_err(|_| ApiError::bad_request(format!("unknown time zone `{name}`")))?,
    };
    let now = state.engine.store.now().await?;
    let mut next_utc = Vec::new();
    let mut at = now;
    while next_utc.len() < 5 {
        match parsed.spec.next_after(tz, at) {
            Some(t) => {
                next_utc.push(t);
                at = t;
            }
            None => break,
        }
    }
    let normalized = parsed.spec.as_str().to_string();
    Ok(Json(CronPreview {
        summary: summary(&normalized),
        next: next_utc
            .iter()
            .map(|t| t.with_timezone(&tz).format("%a %Y-%m-%d %H:%M").to_string())
            .collect(),
        next_utc,
        timezone: tz.name().to_string(),
        warning: parsed.warning,
        normalized,
    }))
}

/// A cron string in words, for the common shapes; others are described field by field.
fn summary(cron: &str) -> String {
    let f: Vec<&str> = cron.split_whitespace().collect();
    let [min, hour, dom, month, dow] = f[..] else {
        return format!("at the times matching `{cron}`");
    };
    let num = |s: &str| s.parse::<u32>().ok();
    let step = |s: &str| s.strip_prefix("*/").and_then(num);
    const DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];
    let days = match (dom, month, dow) {
        ("*", "*", "*") => Some("every day".to_string()),
        ("*", "*", "1-5") => Some("on weekdays".to_string()),
        ("*", "*", d) if num(d).is_some_and(|d| d <= 7) => {
            Some(format!("every {}", DAYS[num(d).unwrap_or(0) as usize % 7]))
        }
        (d, "*", "*") if num(d).is_some() => Some(format!("on day {d} of every month")),
        _ => None,
    };
    let time = match (num(min), num(hour), step(min), step(hour)) {
        (Some(m), Some(h), _, _) => Some(format!("at {h:02}:{m:02}")),
        (_, _, Some(n), _) if hour == "*" => Some(format!("every {n} minutes")),
        (Some(m), _, _, Some(n)) => Some(format!("every {n} hours at minute {m}")),
        (Some(m), _, _, _) if hour == "*" => Some(format!("every hour at minute {m}")),
        _ if min == "*" && hour == "*" => Some("every minute".to_string()),
        _ => None,
    };
    match (time, days) {
        // "every 20 minutes every day" says nothing more than "every 20 minutes"
        (Some(t), Some(d)) if t.starts_with("every") && d == "every day" => t,
        (Some(t), Some(d)) => format!("{t} {d}"),
        (Some(t), None) => format!("{t}, on days matching `{dom} {month} {dow}`"),
        _ => format!("at the times matching `{cron}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn common_crons_read_as_words() {
        for (cron, words) in [
            ("*/20 * * * *", "every 20 minutes"),
            ("30 1 * * *", "at 01:30 every day"),
            ("0 9 * * 1-5", "at 09:00 on weekdays"),
            ("15 * * * *", "every hour at minute 15"),
            ("0 */2 * * *", "every 2 hours at minute 0"),
            ("0 6 1 * *", "at 06:00 on day 1 of every month"),
            ("0 6 * * 0", "at 06:00 every Sunday"),
        ] {
            assert_eq!(summary(cron), words, "{cron}");
        }
        assert!(summary("0 6 1-7 * 1").contains("1-7 * 1"));
    }
}
