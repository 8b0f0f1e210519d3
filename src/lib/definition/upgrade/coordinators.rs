//! A legacy coordinator file folded into the workflow(s) it triggers as an inline `<coordinator>`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::definition::cron::CronSpec;
use crate::definition::parser::{self, Parsed};
use crate::definition::xml::Element;

use super::links::attr_escape;
use super::{Doc, Edit, Note, UpgradeReport};

/// Each legacy coordinator file becomes an inline `<coordinator>` of the workflow(s) it triggers.
pub(super) fn fold_coordinators(src: &Path, docs: &mut [Doc], report: &mut UpgradeReport) {
    let mut workflow_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut has_coordinator: Vec<bool> = vec![false; docs.len()];
    for (i, d) in docs.iter().enumerate() {
        if let (Some("work-flow" | "workflow"), Some(root)) = (d.root_name(), &d.root) {
            if let Some(name) = root.attr("name") {
                workflow_of.insert(name.trim().to_string(), i);
            }
            has_coordinator[i] = root.child("coordinator").is_some();
        }
    }
    for ci in 0..docs.len() {
        if docs[ci].root_name() != Some("coordinator") {
            continue;
        }
        let (parsed, _) = parser::parse_file(&src.join(&docs[ci].rel), &docs[ci].text);
        let Some(Parsed::Coordinator(legacy)) = parsed else {
            continue; // its errors come out of the validation below
        };
        let root = docs[ci].root.clone().expect("parsed");
        let mut folded_any = false;
        for (target, site) in &legacy.targets {
            let line = site.pos.line;
            let Some(&wi) = workflow_of.get(target) else {
                report.manual.push(Note {
                    file: docs[ci].rel.clone(),
                    line,
                    message: format!(
                        "coordinator \"{}\" triggers workflow \"{target}\", which is in none of the files: copy the workflow's file in and run upgrade again",
                        legacy.name
                    ),
                });
                continue;
            };
            if has_coordinator[wi] {
                report.manual.push(Note {
                    file: docs[ci].rel.clone(),
                    line,
                    message: format!(
                        "coordinator \"{}\" triggers workflow \"{target}\" in {}, which already has a coordinator: merge the two by hand into one <coordinator> there",
                        legacy.name,
                        docs[wi].rel.display()
                    ),
                });
                continue;
            }
            let element = inline_coordinator(&docs[ci], &root, &legacy, &docs[wi]);
            let wroot = docs[wi].root.as_ref().expect("a workflow has a root");
            let at = wroot.tag.end;
            docs[wi].edits.push(Edit::replace(at..at, element));
            has_coordinator[wi] = true;
            folded_any = true;
            report
                .folded
                .push((docs[ci].rel.clone(), docs[wi].rel.clone()));
        }
        if folded_any || !legacy.targets.is_empty() {
            docs[ci].dropped = true;
        }
    }
}

/// The `<coordinator>` element (with a comment saying where it came from), indented like the
/// workflow's first child.
pub(super) fn inline_coordinator(
    coord: &Doc,
    croot: &Element,
    legacy: &parser::LegacyCoordinator,
    workflow: &Doc,
) -> String {
    let wroot = workflow.root.as_ref().expect("a workflow has a root");
    let indent = wroot
        .elements()
        .next()
        .map(|first| line_indent(&workflow.text, first.tag.start))
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| "  ".to_string());
    // one level deeper, as the file nests its elements (an action's kind under the action)
    let step = wroot
        .elements()
        .find_map(|node| {
            let outer = line_indent(&workflow.text, node.tag.start);
            let inner = line_indent(&workflow.text, node.elements().next()?.tag.start);
            inner
                .strip_prefix(outer.as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| indent.clone());
    let (indent1, indent2) = (format!("{indent}{step}"), format!("{indent}{step}{step}"));
    let c = &legacy.coordinator;
    let mut attrs = String::new();
    if !c.enabled {
        attrs.push_str(" is-enabled=\"false\"");
    }
    for (name, value) in [("start-time", c.start_time), ("end-time", c.end_time)] {
        if let Some(t) = value {
            attrs.push_str(&format!(" {name}=\"{}\"", t.format("%Y-%m-%d %H:%M:%S")));
        }
    }
    if let Some(tz) = &c.timezone {
        attrs.push_str(&format!(" timezone=\"{}\"", attr_escape(tz)));
    }
    // the cron as written, cut to five fields as the parser would (its warning then goes away)
    let cron = raw_cron(croot).map(|raw| match CronSpec::parse(&raw) {
        Ok(parsed) => parsed.spec.as_str().to_string(),
        Err(_) => raw,
    });
    let mut about = format!(
        "coordinator \"{}\" from {}, folded in by akkaflow upgrade",
        legacy.name,
        coord.rel.display()
    );
    if let Some(desc) = croot.attr("desc").map(str::trim).filter(|d| !d.is_empty()) {
        about.push_str(": ");
        about.push_str(desc);
    }
    let about = about.replace("--", "- -");
    let mut out = format!("\n{indent}<!-- {about} -->\n{indent}<coordinator{attrs}>");
    let cron_attr = cron
        .map(|c| format!(" cron=\"{}\"", attr_escape(&c)))
        .unwrap_or_default();
    if c.depends.is_empty() {
        out.push_str(&format!("\n{indent1}<depend-list{cron_attr}/>"));
    } else {
        out.push_str(&format!("\n{indent1}<depend-list{cron_attr}>"));
        for d in &c.depends {
            out.push_str(&format!(
                "\n{indent2}<workflow name=\"{}\"/>",
                attr_escape(d)
            ));
        }
        out.push_str(&format!("\n{indent1}</depend-list>"));
    }
    if let Some(list) = croot.child("param-list") {
        out.push_str(&format!("\n{indent1}"));
        out.push_str(&reindent(&coord.text, list, &indent1));
    }
    out.push_str(&format!("\n{indent}</coordinator>"));
    out
}

/// The cron as the legacy file wrote it, in either shape.
pub(super) fn raw_cron(root: &Element) -> Option<String> {
    let from_list = |list: &Element| list.attr("cron").map(str::trim).map(str::to_string);
    root.children_named("depend-list")
        .find_map(from_list)
        .or_else(|| {
            root.children_named("trigger").find_map(|t| {
                t.children_named("cron")
                    .find_map(|c| c.attr("config").map(|v| v.trim().to_string()))
                    .or_else(|| t.children_named("depend-list").find_map(from_list))
            })
        })
        .filter(|c| !c.is_empty())
}

/// The whitespace before the element on its line (empty when something else precedes it).
pub(super) fn line_indent(text: &str, offset: usize) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..offset];
    if before.chars().all(|c| c == ' ' || c == '\t') {
        before.to_string()
    } else {
        String::new()
    }
}

/// An element's raw text (comments and all), its lines moved from their old indentation to
/// `indent`.
pub(super) fn reindent(text: &str, el: &Element, indent: &str) -> String {
    let end = if text[el.tag.clone()].ends_with("/>") {
        el.tag.end
    } else {
        text[el.inner.end..]
            .find('>')
            .map_or(el.inner.end, |i| el.inner.end + i + 1)
    };
    let old = line_indent(text, el.tag.start);
    let raw = &text[el.tag.start..end];
    let mut lines = raw.lines();
    let mut out = lines.next().unwrap_or("").trim_end().to_string();
    for l in lines {
        out.push('\n');
        let l = l.trim_end();
        if l.is_empty() {
            continue;
        }
        let stripped = l.strip_prefix(old.as_str()).unwrap_or(l.trim_start());
        out.push_str(indent);
        out.push_str(stripped);
    }
    out
}
