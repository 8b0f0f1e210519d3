//! `<transfer>`: a script, or a copy from a source to a target, each a table on a db link or a
//! delimited file on a file link.

use super::super::model::{ActionKind, Transfer, TransferSource, TransferTarget};
use super::super::template::Template;
use super::super::xml::Element;
use super::schema::{self, ElementSpec};
use super::{dedent, is_inline_connection, Ctx, RefKind};

pub(super) fn transfer(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<ActionKind> {
    ctx.allow(el, subject, &schema::TRANSFER);
    if let Some(s) = el.child("script") {
        if el.child("source").is_some() || el.child("target").is_some() {
            ctx.error(
                s,
                format!("{subject} has both <script> and <source>/<target>: use one form"),
            );
            return None;
        }
        ctx.allow(
            s,
            &format!("<script> of {subject}"),
            &schema::TRANSFER_SCRIPT,
        );
        let body = match s.child("code") {
            Some(code) => {
                ctx.allow(
                    code,
                    &format!("<code> of {subject}"),
                    &schema::TRANSFER_CODE,
                );
                dedent(&code.text())
            }
            None => dedent(&s.text()),
        };
        if body.is_empty() {
            ctx.error(s, format!("<script> of {subject} is empty"));
            return None;
        }
        let code = ctx.template(s, &format!("<script> of {subject}"), &body);
        return Some(ActionKind::Transfer(Transfer::Script { code }));
    }
    let source = match el.child("source") {
        Some(s) => transfer_source(ctx, s, subject),
        None => {
            ctx.error(el, format!("{subject} has no <source> (or <script>)"));
            None
        }
    };
    let target = match el.child("target") {
        Some(t) => transfer_target(ctx, t, subject),
        None => {
            ctx.error(el, format!("{subject} has no <target>"));
            None
        }
    };
    Some(ActionKind::Transfer(Transfer::Copy {
        source: source?,
        target: target?,
    }))
}

/// `DB`, `FILE`, or the original's `LFS` (local file system), which is `FILE` on link `local`.
fn endpoint_type(
    ctx: &mut Ctx<'_>,
    el: &Element,
    subject: &str,
    parent: &str,
) -> Option<&'static str> {
    let ty = ctx.required(el, subject, "type")?.to_ascii_uppercase();
    if is_inline_connection(el, &ty) {
        ctx.error(
            el,
            format!(
                "<{} type=\"{ty}\"> of {parent} has an inline connection (jdbc-url, username, password), which is not supported: connections and their passwords live only in db_links.xml; define a link there and write type=\"DB\" db-link=\"name\"",
                el.name
            ),
        );
        return None;
    }
    match ty.as_str() {
        "DB" => Some("DB"),
        "FILE" | "LFS" => Some("FILE"),
        other => {
            ctx.error(
                el,
                format!("{subject} has unknown type \"{other}\": expected DB or FILE"),
            );
            None
        }
    }
}

/// `delimited`, default tab; `\t` may be written for a tab (XML turns a literal tab in an attribute
/// into a space).
fn delimiter(el: &Element) -> String {
    match el.attr("delimited") {
        Some(d) if !d.is_empty() => d.replace("\\t", "\t"),
        _ => "\t".to_string(),
    }
}

/// A file path: the `path` attribute or the element's text, not both.
fn file_path(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<Template> {
    let text = el.text().trim().to_string();
    let path = match (ctx.optional(el, "path"), text.is_empty()) {
        (Some(_), false) => {
            ctx.error(
                el,
                format!("{subject} has both a path attribute and a path as text: keep one"),
            );
            return None;
        }
        (Some(p), true) => p,
        (None, false) => text,
        (None, true) => {
            ctx.error(el, format!("{subject} has no path"));
            return None;
        }
    };
    Some(ctx.template(el, subject, &path))
}

fn file_link(ctx: &mut Ctx<'_>, el: &Element) -> String {
    let link = ctx
        .optional(el, "file-link")
        .unwrap_or_else(|| "local".to_string());
    ctx.reference(RefKind::FileLink, &link, el);
    link
}

fn transfer_source(ctx: &mut Ctx<'_>, el: &Element, parent: &str) -> Option<TransferSource> {
    let subject = format!("<source> of {parent}");
    match endpoint_type(ctx, el, &subject, parent)? {
        "DB" => {
            ctx.allow(el, &subject, &schema::TRANSFER_DB_SOURCE);
            let db_link = ctx.db_link(el, &subject);
            let text = dedent(&el.text());
            if text.is_empty() {
                ctx.error(el, format!("{subject} has no table name or SELECT"));
                return None;
            }
            let query = ctx.template(el, &subject, &text);
            Some(TransferSource::Db {
                db_link: db_link?,
                query,
            })
        }
        _ => {
            ctx.allow(el, &subject, &schema::TRANSFER_FILE_SOURCE);
            let file_link = file_link(ctx, el);
            let delimiter = delimiter(el);
            let header = ctx.bool_attr(el, &subject, "header", false);
            let path = file_path(ctx, el, &subject)?;
            Some(TransferSource::File {
                file_link,
                path,
                delimiter,
                header,
            })
        }
    }
}

fn transfer_target(ctx: &mut Ctx<'_>, el: &Element, parent: &str) -> Option<TransferTarget> {
    let subject = format!("<target> of {parent}");
    match endpoint_type(ctx, el, &subject, parent)? {
        "DB" => {
            // `<pre-sql>`/`<after-sql>` are the original's older names.
            ctx.allow(el, &subject, &schema::TRANSFER_DB_TARGET);
            let db_link = ctx.db_link(el, &subject);
            let table = ctx
                .required(el, &subject, "table")
                .map(|t| ctx.template(el, &subject, &t));
            let pre_truncate = ctx.bool_attr(el, &subject, "is-pre-truncate", false);
            let task_num = ctx.number_attr(el, &subject, "task-num", 1u32, 1);
            let mut sql_child = |specs: [&ElementSpec; 2]| {
                let c = el
                    .elements()
                    .find(|c| specs.iter().any(|s| s.name == c.name))?;
                let spec = specs
                    .iter()
                    .find(|s| s.name == c.name)
                    .expect("found by this name");
                ctx.allow(c, &format!("<{}> of {subject}", c.name), spec);
                let text = dedent(&c.text());
                if text.is_empty() {
                    return None;
                }
                Some(ctx.template(c, &format!("<{}> of {subject}", c.name), &text))
            };
            let pre = sql_child([&schema::TRANSFER_PRE, &schema::TRANSFER_PRE_SQL]);
            let after = sql_child([&schema::TRANSFER_AFTER, &schema::TRANSFER_AFTER_SQL]);
            Some(TransferTarget::Db {
                db_link: db_link?,
                table: table?,
                pre_truncate,
                task_num,
                pre,
                after,
            })
        }
        _ => {
            ctx.allow(el, &subject, &schema::TRANSFER_FILE_TARGET);
            let file_link = file_link(ctx, el);
            let delimiter = delimiter(el);
            let header = ctx.bool_attr(el, &subject, "header", false);
            let path = file_path(ctx, el, &subject)?;
            Some(TransferTarget::File {
                file_link,
                path,
                delimiter,
                header,
            })
        }
    }
}
