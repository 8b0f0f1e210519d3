//! `<action>`: its attributes, transitions and every kind element (`<transfer>` in `transfer.rs`).
//!
//! The original's inline connections (`type="MYSQL" jdbc-url=...` on `<sql>`, data-monitor sources,
//! transfer targets) are refused with the replacement spelled out: connections live in
//! `db_links.xml`, so passwords are in one place and never in a workflow's stored definition.

use std::collections::BTreeMap;
use std::path::Path;

use super::super::model::{Action, ActionKind, DataMonitor, DataSource, FileMonitor, Metadata};
use super::super::template::Template;
use super::super::xml::Element;
use super::schema::{self, ElementSpec};
use super::{
    dedent, is_inline_connection, names_inline_connection, parse_size, Ctx, Edge, RefKind,
};

pub(super) fn parse(ctx: &mut Ctx<'_>, el: &Element, label: &str, edges: &mut Vec<Edge>) -> Action {
    ctx.allow(el, label, &schema::ACTION);
    let kinds_known: Vec<&str> = schema::action_kinds().collect();

    let host = ctx.optional(el, "host").filter(|h| h != "-1");
    let retry_times = ctx.number_attr(el, label, "retry-times", 0u32, 0);
    let lost_times = super::lost_times(ctx, el, label);
    let interval_secs = ctx.number_attr(el, label, "interval", 0u64, 0);
    // The original wrote `-1` for "no timeout".
    let timeout_secs = match ctx.optional(el, "timeout").as_deref() {
        None | Some("-1") => None,
        Some(_) => Some(ctx.number_attr(el, label, "timeout", 0u64, 1)).filter(|t| *t > 0),
    };
    let is_ignore = ctx.bool_attr(el, label, "is-ignore", false);
    let description = el.attr("desc").unwrap_or("").trim().to_string();
    let pool = ctx.optional(el, "pool");
    let pool_slots = ctx.number_attr(el, label, "pool-slots", 1u32, 1);
    let priority = ctx
        .optional(el, "priority")
        .map(|_| ctx.number_attr(el, label, "priority", 0i64, i64::MIN));

    let ok = transition(ctx, el, label, "ok", edges);
    if ok.is_none() && el.child("ok").is_none() {
        ctx.error(el, format!("{label} has no <ok> transition"));
    }
    let error = transition(ctx, el, label, "error", edges);

    let kinds: Vec<&Element> = el
        .elements()
        .filter(|c| kinds_known.contains(&c.name.as_str()))
        .collect();
    let kind = match kinds.as_slice() {
        [] => {
            ctx.error(
                el,
                format!(
                    "{label} has no kind element: expected one of <{}>",
                    kinds_known.join(">, <")
                ),
            );
            None
        }
        [one] => kind(ctx, one, label),
        [_, second, ..] => {
            let names: Vec<String> = kinds.iter().map(|k| format!("<{}>", k.name)).collect();
            ctx.error(
                second,
                format!(
                    "{label} has more than one kind element: {}",
                    names.join(", ")
                ),
            );
            None
        }
    };
    Action {
        host,
        retry_times,
        lost_times,
        interval_secs,
        timeout_secs,
        is_ignore,
        description,
        ok: ok.unwrap_or_default(),
        error,
        // A placeholder keeps the node in the graph so one bad kind does not also produce "unknown
        // node" errors for every transition into it; its error already fails the load.
        kind: kind.unwrap_or_else(|| ActionKind::Shell { command: empty() }),
        pool,
        pool_slots,
        priority,
    }
}

fn empty() -> Template {
    Template::parse("").expect("empty text has no expression")
}

/// `<ok to>` / `<error to>`: at most one each.
fn transition(
    ctx: &mut Ctx<'_>,
    el: &Element,
    label: &str,
    which: &'static str,
    edges: &mut Vec<Edge>,
) -> Option<String> {
    let mut found = el.children_named(which);
    let first = found.next()?;
    if let Some(second) = found.next() {
        ctx.error(second, format!("{label} has more than one <{which}>"));
    }
    let subject = format!("<{which}> of {label}");
    let spec = if which == "ok" {
        &schema::OK
    } else {
        &schema::ERROR
    };
    ctx.allow(first, &subject, spec);
    let to = ctx.required(first, &subject, "to")?;
    let via = if which == "ok" { "<ok>" } else { "<error>" };
    edges.push(Edge {
        to: to.clone(),
        via,
        site: ctx.site(first),
    });
    Some(to)
}

fn kind(ctx: &mut Ctx<'_>, el: &Element, label: &str) -> Option<ActionKind> {
    let subject = format!("<{}> of {label}", el.name);
    match el.name.as_str() {
        "script" => script(ctx, el, &subject),
        "shell" | "file-executor" => {
            let spec = if el.name == "shell" {
                &schema::SHELL
            } else {
                &schema::FILE_EXECUTOR
            };
            ctx.allow(el, &subject, spec);
            let command = required_body(ctx, el, &subject, &schema::COMMAND)?;
            if el.name == "shell" {
                Some(ActionKind::Shell { command })
            } else {
                Some(ActionKind::FileExecutor {
                    command,
                    dir_of_file: ctx.dir.display().to_string(),
                })
            }
        }
        "sql" => sql(ctx, el, &subject),
        "file-monitor" | "file-watcher" => file_monitor(ctx, el, &subject),
        "data-monitor" => data_monitor(ctx, el, &subject),
        "transfer" => super::transfer::transfer(ctx, el, &subject),
        "email" => email(ctx, el, &subject),
        "metadata" => metadata(ctx, el, &subject),
        "sub-workflow" => {
            ctx.allow(el, &subject, &schema::SUB_WORKFLOW);
            let workflow = ctx.required(el, &subject, "name")?;
            ctx.reference(RefKind::SubWorkflow, &workflow, el);
            let wait = ctx.bool_attr(el, &subject, "wait", true);
            Some(ActionKind::SubWorkflow { workflow, wait })
        }
        _ => unreachable!("caller passes only kind elements"),
    }
}

/// The dedented text of a required child (`<code>`, `<command>`), as a template.
fn required_body(
    ctx: &mut Ctx<'_>,
    el: &Element,
    subject: &str,
    spec: &ElementSpec,
) -> Option<Template> {
    let child = spec.name;
    let Some(c) = el.child(child) else {
        ctx.error(el, format!("{subject} has no <{child}>"));
        return None;
    };
    ctx.allow(c, &format!("<{child}> of {subject}"), spec);
    let text = dedent(&c.text());
    if text.is_empty() {
        ctx.error(c, format!("<{child}> of {subject} is empty"));
        return None;
    }
    Some(ctx.template(c, &format!("<{child}> of {subject}"), &text))
}

fn script(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<ActionKind> {
    ctx.allow(el, subject, &schema::SCRIPT);
    let code = required_body(ctx, el, subject, &schema::SCRIPT_CODE);
    let param_line = el.child("param-line").map(|p| {
        ctx.allow(
            p,
            &format!("<param-line> of {subject}"),
            &schema::PARAM_LINE,
        );
        let text = p.text().trim().to_string();
        ctx.template(p, &format!("<param-line> of {subject}"), &text)
    });
    let mut attachments = Vec::new();
    for list in el.children_named("attach-list") {
        ctx.allow(
            list,
            &format!("<attach-list> of {subject}"),
            &schema::ATTACH_LIST,
        );
        for f in list.children_named("file") {
            ctx.allow(
                f,
                &format!("<file> in <attach-list> of {subject}"),
                &schema::ATTACH_FILE,
            );
            let path = f.text().trim().to_string();
            if path.is_empty() {
                ctx.error(f, format!("<file> in <attach-list> of {subject} is empty"));
                continue;
            }
            let resolved = if Path::new(&path).is_absolute() {
                path.into()
            } else {
                ctx.dir.join(&path)
            };
            attachments.push(resolved.display().to_string());
        }
    }
    Some(ActionKind::Script {
        code: code?,
        param_line,
        attachments,
    })
}

fn sql(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<ActionKind> {
    if el.attr("type").is_some() || names_inline_connection(el) {
        ctx.error(
            el,
            format!(
                "{subject} has an inline connection (type, jdbc-url, username, password), which is not supported: connections and their passwords live only in db_links.xml; define a link there and write <sql db-link=\"name\">"
            ),
        );
        return None;
    }
    ctx.allow(el, subject, &schema::SQL);
    let db_link = ctx.db_link(el, subject);
    let text = dedent(&el.text());
    if text.is_empty() {
        ctx.error(el, format!("{subject} has no statements"));
        return None;
    }
    let sql = ctx.template(el, subject, &text);
    Some(ActionKind::Sql {
        db_link: db_link?,
        sql,
    })
}

fn file_monitor(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<ActionKind> {
    let spec = if el.name == "file-watcher" {
        &schema::FILE_WATCHER
    } else {
        &schema::FILE_MONITOR
    };
    ctx.allow_attrs(el, subject, spec.attrs);
    let legacy = el.name == "file-watcher";
    for c in el.elements() {
        match c.name.as_str() {
            "file" => {}
            "warn-msg" => ctx.allow(c, &format!("<warn-msg> of {subject}"), &schema::WARN_MSG),
            "size-warn-message" if legacy => ctx.warn(
                c,
                format!(
                    "legacy <size-warn-message> in {subject} is ignored: it only warned; use min-each-size on <file> to require a size"
                ),
            ),
            other => ctx.warn(c, format!("unknown element <{other}> in {subject} is ignored")),
        }
    }
    let Some(file) = el.child("file") else {
        ctx.error(el, format!("{subject} has no <file>"));
        return None;
    };
    let fsub = format!("<file> of {subject}");
    ctx.allow(file, &fsub, &schema::MONITOR_FILE);
    let file_link = ctx
        .optional(file, "file-link")
        .unwrap_or_else(|| "local".to_string());
    ctx.reference(RefKind::FileLink, &file_link, file);
    let min_num = ctx.number_attr(file, &fsub, "min-num", 1u32, 0);
    let min_each_size_bytes = match ctx.optional(file, "min-each-size") {
        None => 0,
        Some(s) => parse_size(&s).unwrap_or_else(|e| {
            ctx.error(file, format!("{fsub}: min-each-size: {e}"));
            0
        }),
    };
    let text = file.text().trim().to_string();
    if text.is_empty() {
        ctx.error(file, format!("{fsub} has no path"));
        return None;
    }
    // Legacy `<file dir="d">pattern</file>`; otherwise the text is `dir/pattern`.
    let (dir, pattern) = match ctx.optional(file, "dir") {
        Some(d) => (d, text),
        None => split_path(&text),
    };
    if pattern.is_empty() {
        ctx.error(
            file,
            format!("{fsub}: path \"{dir}/\" has no file name pattern"),
        );
        return None;
    }
    let dir = ctx.template(file, &fsub, &dir);
    let pattern = ctx.template(file, &fsub, &pattern);
    let warn_msg = warn_msg(ctx, el, subject);
    Some(ActionKind::FileMonitor(FileMonitor {
        file_link,
        dir,
        pattern,
        min_num,
        min_each_size_bytes,
        warn_msg,
    }))
}

/// Splits at the last `/` outside `${...}` (a date format may contain slashes).
fn split_path(path: &str) -> (String, String) {
    let bytes = path.as_bytes();
    let mut cut = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
            match path[i..].find('}') {
                Some(end) => i += end,
                None => break,
            }
        } else if bytes[i] == b'/' {
            cut = Some(i);
        }
        i += 1;
    }
    match cut {
        Some(0) => ("/".to_string(), path[1..].to_string()),
        Some(c) => (path[..c].to_string(), path[c + 1..].to_string()),
        None => (".".to_string(), path.to_string()),
    }
}

fn warn_msg(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<Template> {
    let w = el.child("warn-msg")?;
    let text = w.text().trim().to_string();
    Some(ctx.template(w, &format!("<warn-msg> of {subject}"), &text))
}

fn data_monitor(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<ActionKind> {
    // `is-saved` is accepted and ignored: every check is recorded in the history table.
    ctx.allow_attrs(el, subject, schema::DATA_MONITOR.attrs);
    for c in el.elements() {
        match c.name.as_str() {
            "source" | "min" | "max" => {}
            "warn-msg" => ctx.allow(c, &format!("<warn-msg> of {subject}"), &schema::WARN_MSG),
            legacy @ ("min-threshold" | "max-threshold") => {
                let new = if legacy == "min-threshold" {
                    "min"
                } else {
                    "max"
                };
                ctx.error(
                    c,
                    format!(
                        "legacy <{legacy}> in {subject} is not supported: it was replaced by <{new}>; write <{new} type=\"NUM|SQL|COMMAND\">, with db-link naming a link in db_links.xml instead of an inline connection"
                    ),
                );
            }
            other => ctx.warn(
                c,
                format!("unknown element <{other}> in {subject} is ignored"),
            ),
        }
    }
    let _ = ctx.bool_attr(el, subject, "is-saved", true);
    let exceed_is_error = ctx.bool_attr(el, subject, "is-exceed-error", true);
    let time_mark = el
        .attr("time-mark")
        .map(|t| ctx.template(el, subject, t.trim()));
    let source = match el.child("source") {
        Some(s) => data_source(ctx, s, subject),
        None => {
            ctx.error(el, format!("{subject} has no <source>"));
            None
        }
    };
    // Outer `Some` when the bound is written, inner `None` when it was refused.
    let min = el.child("min").map(|m| data_source(ctx, m, subject));
    let max = el.child("max").map(|m| data_source(ctx, m, subject));
    let warn_msg = warn_msg(ctx, el, subject);
    if matches!(min, Some(None)) || matches!(max, Some(None)) {
        return None;
    }
    Some(ActionKind::DataMonitor(DataMonitor {
        source: source?,
        min: min.flatten(),
        max: max.flatten(),
        warn_msg,
        category: ctx.optional(el, "category"),
        source_name: ctx.optional(el, "source-name"),
        time_mark,
        exceed_is_error,
    }))
}

/// `<source>`, `<min>`, `<max>`; `None` when refused (the error is reported).
fn data_source(ctx: &mut Ctx<'_>, el: &Element, parent: &str) -> Option<DataSource> {
    let subject = format!("<{}> of {parent}", el.name);
    let ty = ctx.required(el, &subject, "type")?.to_ascii_uppercase();
    if is_inline_connection(el, &ty) {
        ctx.error(
            el,
            format!(
                "<{} type=\"{ty}\"> of {parent} has an inline connection, which is not supported: connections and their passwords live only in db_links.xml; define a link there and write type=\"SQL\" db-link=\"name\"",
                el.name
            ),
        );
        return None;
    }
    let spec = match el.name.as_str() {
        "min" => &schema::DATA_MIN,
        "max" => &schema::DATA_MAX,
        _ => &schema::DATA_SOURCE,
    };
    ctx.allow_attrs(el, &subject, spec.attrs);
    let body = match el.child("code") {
        Some(code) if ty == "COMMAND" => {
            ctx.allow(code, &format!("<code> of {subject}"), &schema::DATA_CODE);
            dedent(&code.text())
        }
        _ => dedent(&el.text()),
    };
    ctx.allow_children(
        el,
        &subject,
        if ty == "COMMAND" { spec.children } else { &[] },
    );
    if body.is_empty() {
        ctx.error(el, format!("{subject} is empty"));
        return None;
    }
    let value = ctx.template(el, &subject, &body);
    match ty.as_str() {
        "SQL" => {
            let db_link = ctx.db_link(el, &subject)?;
            Some(DataSource::Sql {
                db_link,
                query: value,
            })
        }
        "COMMAND" => Some(DataSource::Command { command: value }),
        "NUM" => {
            if !body.contains("${") && body.trim().parse::<f64>().is_err() {
                ctx.error(el, format!("{subject}: \"{body}\" is not a number"));
                return None;
            }
            Some(DataSource::Num { value })
        }
        other => {
            ctx.error(
                el,
                format!("{subject} has unknown type \"{other}\": expected SQL, COMMAND or NUM"),
            );
            None
        }
    }
}

fn email(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<ActionKind> {
    ctx.allow_attrs(el, subject, schema::EMAIL.attrs);
    // The body is HTML: with markup inside, keep it as written; plain text or CDATA is unescaped.
    let body = if el.elements().next().is_some() {
        dedent(&ctx.text[el.inner.clone()])
    } else {
        dedent(&el.text())
    };
    if body.is_empty() {
        ctx.error(el, format!("{subject} has no body"));
        return None;
    }
    let mail_subject = el
        .attr("subject")
        .map(|s| ctx.template(el, subject, s.trim()));
    let body_html = ctx.template(el, subject, &body);
    Some(ActionKind::Email {
        subject: mail_subject,
        body_html,
    })
}

fn metadata(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<ActionKind> {
    ctx.allow(el, subject, &schema::METADATA);
    let db_link = ctx.db_link(el, subject);
    let table = ctx
        .required(el, subject, "table")
        .map(|t| ctx.template(el, subject, &t));
    let from = ctx
        .optional(el, "from")
        .map(|f| ctx.template(el, subject, &f));
    let mut table_comment = None;
    for (i, c) in el.children_named("table-comment").enumerate() {
        if i > 0 {
            ctx.error(c, format!("{subject} has more than one <table-comment>"));
            continue;
        }
        ctx.allow(
            c,
            &format!("<table-comment> of {subject}"),
            &schema::TABLE_COMMENT,
        );
        let text = c.text().trim().to_string();
        table_comment = Some(ctx.template(c, &format!("<table-comment> of {subject}"), &text));
    }
    let mut column_comments = BTreeMap::new();
    for c in el.children_named("column-comment") {
        let csub = format!("<column-comment> of {subject}");
        ctx.allow(c, &csub, &schema::COLUMN_COMMENT);
        let Some(name) = ctx.required(c, &csub, "name") else {
            continue;
        };
        let text = c.text().trim().to_string();
        let comment = ctx.template(c, &csub, &text);
        if column_comments.insert(name.clone(), comment).is_some() {
            ctx.error(c, format!("{subject} comments column \"{name}\" twice"));
        }
    }
    Some(ActionKind::Metadata(Metadata {
        db_link: db_link?,
        table: table?,
        from,
        table_comment,
        column_comments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_keeps_slashes_inside_expressions() {
        let cases = [
            ("/etc/profile", "/etc", "profile"),
            ("/data/in/item_*.log", "/data/in", "item_*.log"),
            ("item.log", ".", "item.log"),
            ("/x", "/", "x"),
            (
                "/d/${time.today|yyyy/MM/dd}.csv",
                "/d",
                "${time.today|yyyy/MM/dd}.csv",
            ),
            (
                "/d/${time.today|yyyy/MM}/a*",
                "/d/${time.today|yyyy/MM}",
                "a*",
            ),
            ("/d/", "/d", ""),
        ];
        for (path, dir, pattern) in cases {
            assert_eq!(
                split_path(path),
                (dir.to_string(), pattern.to_string()),
                "{path}"
            );
        }
    }
}
