//! `workflow history` and `workflow diff`: the versions `sync` has stored of a workflow.

use serde_json::json;

use super::{connect, fmt_time, print_json, table};
use crate::config::Config;
use crate::definition::diff;
use crate::error::{Error, Result};
use crate::store::{Store, WorkflowVersionRow};

async fn versions(store: &dyn Store, name: &str) -> Result<Vec<WorkflowVersionRow>> {
    let all = store.workflow_versions(name).await?;
    if all.is_empty() {
        return Err(Error::refused(format!("unknown workflow `{name}`")));
    }
    Ok(all)
}

pub(super) async fn history(cfg: &Config, name: &str, json: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let all = versions(&*store, name).await?;
    let current = store.workflow_get(name).await?.map(|w| w.version);
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|v| json!({"version": v.version, "created_at": v.created_at, "content_hash": v.content_hash, "current": Some(v.version) == current}))
            .collect();
        print_json(&json!({ "workflow": name, "versions": rows }));
        return Ok(0);
    }
    let mut t = table(&["VERSION", "SYNCED (UTC)", "HASH", ""]);
    for v in all.iter().rev() {
        t.add_row(vec![
            v.version.to_string(),
            fmt_time(Some(v.created_at)),
            v.content_hash.chars().take(12).collect(),
            if Some(v.version) == current {
                "current".into()
            } else {
                String::new()
            },
        ]);
    }
    println!("{t}");
    Ok(0)
}

pub(super) async fn diff(cfg: &Config, name: &str, from: i64, to: Option<i64>) -> Result<i32> {
    let store = connect(cfg).await?;
    let all = versions(&*store, name).await?;
    let to = match to {
        Some(v) => v,
        None => store.workflow_get(name).await?.map_or(from, |w| w.version),
    };
    let sources: Vec<(i64, &str)> = all
        .iter()
        .map(|r| (r.version, r.source_xml.as_str()))
        .collect();
    let text = diff::between(name, &sources, from, to).map_err(|v| {
        Error::refused(format!(
            "workflow `{name}` has no version {v} (it has 1 to {})",
            all.last().map_or(0, |r| r.version)
        ))
    })?;
    if text.is_empty() {
        println!("versions {from} and {to} of `{name}` are the same");
    } else {
        print!("{text}");
    }
    Ok(0)
}
