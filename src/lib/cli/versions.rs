//! `workflow history`, `diff`, `show` and `rollback`: the versions `sync` has stored of a workflow.

use serde_json::json;

use super::{connect, fmt_time, os_actor, print_json, table};
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
    let head = store.workflow_get(name).await?;
    let current = head.as_ref().map(|w| w.version);
    let hashes: Vec<(i64, &str)> = all
        .iter()
        .map(|v| (v.version, v.content_hash.as_str()))
        .collect();
    let twins = diff::same_as(&hashes);
    if json {
        let rows: Vec<_> = all
            .iter()
            .zip(&twins)
            .map(|(v, same)| json!({"version": v.version, "created_at": v.created_at, "content_hash": v.content_hash, "current": Some(v.version) == current, "same_as": same}))
            .collect();
        let rolled_back_to = head.and_then(|w| w.rolled_back_to);
        print_json(
            &json!({ "workflow": name, "versions": rows, "rolled_back_to": rolled_back_to }),
        );
        return Ok(0);
    }
    let mut t = table(&["VERSION", "STORED (UTC)", "HASH", ""]);
    for (v, same) in all.iter().zip(&twins).rev() {
        let mut note = Vec::new();
        if Some(v.version) == current {
            note.push("current".to_string());
        }
        if let Some(s) = same {
            note.push(format!("= v{s}"));
        }
        t.add_row(vec![
            v.version.to_string(),
            fmt_time(Some(v.created_at)),
            v.content_hash.chars().take(12).collect(),
            note.join(" "),
        ]);
    }
    println!("{t}");
    if let Some(to) = head.and_then(|w| w.rolled_back_to) {
        println!(
            "rolled back to version {to}: sync keeps this until the workflow's file is updated \
             (`akkaflow workflow show {name} > FILE`) or `sync --overwrite-rollbacks` replaces it"
        );
    }
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

pub(super) async fn show(cfg: &Config, name: &str, version: Option<i64>) -> Result<i32> {
    let store = connect(cfg).await?;
    let all = versions(&*store, name).await?;
    let v = match version {
        Some(v) => v,
        None => store.workflow_get(name).await?.map_or(0, |w| w.version),
    };
    let row = all.iter().find(|r| r.version == v).ok_or_else(|| {
        Error::refused(format!(
            "workflow `{name}` has no version {v} (it has 1 to {})",
            all.last().map_or(0, |r| r.version)
        ))
    })?;
    print!("{}", row.source_xml);
    Ok(0)
}

pub(super) async fn rollback(cfg: &Config, name: &str, to: i64, json: bool) -> Result<i32> {
    let store = connect(cfg).await?;
    let done = crate::rollback::rollback(&store, name, to, &os_actor(), cfg.timezone).await?;
    if json {
        print_json(&done);
    } else {
        println!(
            "workflow `{name}` rolled back: version {} has version {}'s content (it was version {})",
            done.version, done.to, done.from
        );
        println!("note: {}", done.message);
    }
    Ok(0)
}
