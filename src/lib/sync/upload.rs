//! Uploads: one definition file posted over HTTP (the API, the editor, the legacy endpoints),
//! validated together with what the database already holds (links, calendars, pools) before
//! [`super::sync_set`] stores it.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::blocking_load;
use crate::definition::{self, DefinitionSet};
use crate::error::{Error, Result};
use crate::store::Store;

/// One definition file posted over HTTP, validated against what the database already holds.
#[derive(Clone, Debug)]
pub struct PreparedUpload {
    /// What to hand to [`super::sync_set`]: the uploaded file's workflows, or its links.
    pub set: DefinitionSet,
    /// `(name, dir)` of each uploaded workflow, and the dir of the stored version it replaces.
    pub workflows: Vec<UploadedWorkflow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UploadedWorkflow {
    pub name: String,
    pub dir: String,
    /// The stored version's dir, when this upload replaces a workflow.
    pub replaces_dir: Option<String>,
}

/// The `name` of a `<work-flow>` root element, read without validating anything else.
fn root_workflow_name(text: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(text);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                if e.name().as_ref() != b"work-flow" {
                    return None;
                }
                let attr = e.try_get_attribute("name").ok()??;
                return attr.unescape_value().ok().map(|v| v.trim().to_string());
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn root_element(text: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(text);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return Some(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Where a posted file's diagnostics point, unless it replaces a stored workflow (which keeps its
/// stored path). Keyed per workflow: uploads that share a file name must not read as one file
/// (each would list the others as its own).
pub fn upload_path(file_name: &str, text: &str) -> PathBuf {
    match root_workflow_name(text).filter(|n| !n.is_empty()) {
        Some(workflow) => PathBuf::from(format!("upload/{workflow}/{file_name}")),
        None => PathBuf::from(format!("upload/{file_name}")),
    }
}

/// Validates one posted file the way `sync` validates a directory: together with every workflow and
/// link already stored (so references to them resolve and a duplicate name is caught), replacing the
/// stored workflow of the same name. Only the posted file's content goes into the returned set.
///
/// `<coordinator>` files are refused: they change workflows defined elsewhere, which only a directory
/// sync can see whole. Errors in the stored definitions themselves are reported too (they block,
/// as they would block `sync`).
pub async fn prepare_upload(
    store: &Arc<dyn Store>,
    file_name: &str,
    text: String,
) -> Result<PreparedUpload> {
    let upload_path = upload_path(file_name, &text);
    let diag = |message: String| {
        Error::Invalid(vec![definition::Diagnostic {
            severity: definition::Severity::Error,
            file: upload_path.clone(),
            line: 1,
            col: 1,
            element: "file".into(),
            message,
        }])
    };
    let root = root_element(&text);
    match root.as_deref() {
        Some("db-links") | Some("file-links") | Some("pools") => {
            // links and pools depend on nothing else but the stored pools a db link names:
            // validate the file on its own
            let mut files = vec![definition::SourceFile {
                path: upload_path.clone(),
                text,
            }];
            if root.as_deref() == Some("db-links") {
                files.push(stored_pools(store).await?);
            }
            let mut set = blocking_load(files).await?;
            if root.as_deref() != Some("file-links") {
                set.file_links.clear(); // only the implied `local`, already stored by any sync
            }
            if root.as_deref() != Some("pools") {
                set.pools.clear();
            }
            return Ok(PreparedUpload {
                set,
                workflows: vec![],
            });
        }
        Some("calendars") => return Err(diag(
            "calendars change the schedule of workflows defined in other files: put calendars.xml \
                 in the definitions directory and sync it"
                .into(),
        )),
        Some("coordinator") => return Err(diag(
            "a <coordinator> file changes workflows defined in other files: put the coordinator \
                 inside its <work-flow>, or sync the directory"
                .into(),
        )),
        _ => {}
    }
    let name = root_workflow_name(&text);
    let stored = store.workflow_list().await?;
    let mut files = Vec::new();
    let mut path = upload_path.clone();
    let mut replaces_dir = None;
    for w in &stored {
        if Some(&w.name) == name.as_ref() {
            // keep the stored path: file-executor scripts resolve beside it
            path = PathBuf::from(&w.file_path);
            replaces_dir = Some(w.dir.clone());
            continue;
        }
        files.push(definition::SourceFile {
            path: PathBuf::from(&w.file_path),
            text: w.source_xml.clone(),
        });
    }
    let mut db = String::from("<db-links>\n");
    for l in store.db_link_list().await? {
        db.push_str(&format!(
            "<link name=\"{}\" type=\"{}\" jdbc-url=\"{}\" username=\"\" password=\"\" pool=\"{}\"/>\n",
            xml_attr(&l.name),
            xml_attr(&l.kind),
            xml_attr(&l.url),
            xml_attr(&l.pool)
        ));
    }
    db.push_str("</db-links>\n");
    let mut fl = String::from("<file-links>\n");
    for l in store.file_link_list().await? {
        fl.push_str(&format!(
            "<link name=\"{}\" type=\"{}\" host=\"{}\" port=\"{}\"/>\n",
            xml_attr(&l.name),
            xml_attr(&l.kind),
            xml_attr(&l.host),
            l.port
        ));
    }
    fl.push_str("</file-links>\n");
    files.push(definition::SourceFile {
        path: "stored/db_links.xml".into(),
        text: db,
    });
    files.push(definition::SourceFile {
        path: "stored/file_links.xml".into(),
        text: fl,
    });
    files.push(stored_pools(store).await?);
    files.push(definition::SourceFile {
        path: "stored/calendars.xml".into(),
        text: stored_calendars_xml(&store.calendar_list().await?),
    });
    files.push(definition::SourceFile {
        path: path.clone(),
        text,
    });
    let mut set = blocking_load(files).await?;
    set.workflows.retain(|w| w.file == path);
    set.db_links.clear();
    set.calendars.clear();
    set.file_links.clear();
    set.pools.clear();
    set.warnings.retain(|d| d.file == path);
    let workflows = set
        .workflows
        .iter()
        .map(|w| UploadedWorkflow {
            name: w.workflow.name.clone(),
            dir: w.workflow.dir.clone(),
            replaces_dir: replaces_dir.clone(),
        })
        .collect();
    Ok(PreparedUpload { set, workflows })
}

/// The stored calendars written back as a `calendars.xml`, for validating an upload against them.
fn stored_calendars_xml(rows: &[crate::store::CalendarRow]) -> String {
    let mut xml = String::from("<calendars>\n");
    for row in rows {
        let Ok(c) = serde_json::from_str::<definition::calendar::Calendar>(&row.definition) else {
            continue;
        };
        let weekend: Vec<&str> = c
            .weekend
            .iter()
            .filter_map(|d| {
                let i = (*d as usize).checked_sub(1)?;
                definition::calendar::WEEKDAYS.get(i).copied()
            })
            .collect();
        xml.push_str(&format!(
            "<calendar name=\"{}\" weekend=\"{}\">\n",
            xml_attr(&c.name),
            weekend.join(",")
        ));
        for (from, to) in &c.holidays {
            xml.push_str(&format!("<holiday from=\"{from}\" to=\"{to}\"/>\n"));
        }
        for day in &c.workdays {
            xml.push_str(&format!("<workday date=\"{day}\"/>\n"));
        }
        xml.push_str("</calendar>\n");
    }
    xml.push_str("</calendars>\n");
    xml
}

/// The stored pools as a `pools.xml`, for validating an upload against them.
async fn stored_pools(store: &Arc<dyn Store>) -> Result<definition::SourceFile> {
    let mut text = String::from("<pools>\n");
    for p in store.pool_list().await? {
        text.push_str(&format!(
            "<pool name=\"{}\" slots=\"{}\"/>\n",
            xml_attr(&p.name),
            p.slots.max(0)
        ));
    }
    text.push_str("</pools>\n");
    Ok(definition::SourceFile {
        path: "stored/pools.xml".into(),
        text,
    })
}
