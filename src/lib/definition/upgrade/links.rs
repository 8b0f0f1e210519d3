//! Inline connections become named links: one per distinct connection (reusing a link the sources
//! already define), the element's start tag rewritten in place to name it with `db-link`.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::definition::model::{DbKind, DbLink};
use crate::definition::xml::Element;

use super::{Doc, Edit, NewLink, Note, UpgradeReport};

/// Connection attributes the original wrote inline; their values move to `db_links.xml`.
pub(super) const CONNECTION_ATTRS: &[&str] = &["jdbc-url", "username", "password"];
/// `type` values that meant "an inline connection of this kind".
pub(super) const INLINE_TYPES: &[&str] = &["MYSQL", "ORACLE", "HIVE", "POSTGRESQL", "SQLITE"];

/// The links the sources define and the ones this run adds, by connection.
#[derive(Default)]
pub(super) struct Links {
    /// (kind, url, username, password) → name, for every link known.
    pub(super) by_connection: BTreeMap<(String, String, String, String), String>,
    pub(super) names: Vec<String>,
    /// Added here, in the order first used: (name, kind, url, username, password, uses).
    pub(super) added: Vec<(String, String, String, String, String, usize)>,
}

impl Links {
    pub(super) fn existing(&mut self, link: DbLink) {
        let kind = kind_name(link.kind).to_string();
        self.names.push(link.name.clone());
        self.by_connection
            .entry((kind, link.url, link.username, link.password))
            .or_insert(link.name);
    }

    /// The link for this connection: an existing one, or a new one named after its kind, host
    /// and database.
    pub(super) fn name_for(
        &mut self,
        kind: &str,
        url: &str,
        username: &str,
        password: &str,
    ) -> String {
        let key = (
            kind.to_string(),
            url.to_string(),
            username.to_string(),
            password.to_string(),
        );
        if let Some(name) = self.by_connection.get(&key) {
            if let Some(a) = self.added.iter_mut().find(|a| &a.0 == name) {
                a.5 += 1;
            }
            return name.clone();
        }
        let base = link_name(kind, url);
        let mut name = base.clone();
        if self.names.contains(&name) && !username.is_empty() {
            name = format!("{base}_{}", sanitize(username));
        }
        let mut n = 2;
        while self.names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.names.push(name.clone());
        self.by_connection.insert(key, name.clone());
        self.added.push((
            name.clone(),
            kind.to_string(),
            url.to_string(),
            username.to_string(),
            password.to_string(),
            1,
        ));
        name
    }

    pub(super) fn xml(&self) -> String {
        self.added
            .iter()
            .map(|(name, kind, url, user, password, _)| {
                format!(
                    "  <link name=\"{}\" type=\"{}\" jdbc-url=\"{}\" username=\"{}\" password=\"{}\"/>\n",
                    attr_escape(name),
                    attr_escape(kind),
                    attr_escape(url),
                    attr_escape(user),
                    attr_escape(password)
                )
            })
            .collect()
    }

    pub(super) fn report(&self) -> Vec<NewLink> {
        self.added
            .iter()
            .map(|(name, kind, _, username, _, uses)| NewLink {
                name: name.clone(),
                kind: kind.clone(),
                username: username.clone(),
                uses: *uses,
            })
            .collect()
    }
}

pub(super) fn kind_name(kind: DbKind) -> &'static str {
    match kind {
        DbKind::Mysql => "MYSQL",
        DbKind::Postgresql => "POSTGRESQL",
        DbKind::Sqlite => "SQLITE",
        DbKind::Oracle => "ORACLE",
        DbKind::Hive => "HIVE",
    }
}

/// `jdbc:mysql://localhost:3306/wf?useSSL=false` → `mysql_localhost_wf`.
pub(super) fn link_name(kind: &str, url: &str) -> String {
    let rest = url.strip_prefix("jdbc:").unwrap_or(url);
    let mut parts = vec![kind.to_ascii_lowercase()];
    if let Some((_, after)) = rest.split_once("://") {
        let authority = after.split(['/', '?', ';']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = host.split(':').next().unwrap_or("");
        let db = after
            .split_once('/')
            .map(|(_, d)| d.split(['?', ';', '/']).next().unwrap_or(""))
            .unwrap_or("");
        parts.extend(
            [host, db]
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| sanitize(p)),
        );
    }
    parts.join("_")
}

pub(super) fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

pub(super) fn attr_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// The attributes of a start tag as written: each with its span including the whitespace before
/// it (what deleting it removes), and the span of its value inside the quotes.
pub(super) struct RawAttr {
    pub(super) name: String,
    pub(super) span: Range<usize>,
    pub(super) value: Range<usize>,
}

/// `tag` is the text of a well-formed start tag (quick-xml has checked it), `base` its offset.
pub(super) fn raw_attrs(tag: &str, base: usize) -> Vec<RawAttr> {
    let b = tag.as_bytes();
    let mut i = 1;
    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' && b[i] != b'/' {
        i += 1;
    }
    let mut out = Vec::new();
    loop {
        let ws = i;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' || b[i] == b'/' {
            return out;
        }
        let name_start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let name = tag[name_start..i].to_string();
        while i < b.len() && b[i] != b'"' && b[i] != b'\'' {
            i += 1;
        }
        if i >= b.len() {
            return out;
        }
        let quote = b[i];
        let value_start = i + 1;
        i += 1;
        while i < b.len() && b[i] != quote {
            i += 1;
        }
        let value_end = i;
        i += 1;
        out.push(RawAttr {
            name,
            span: base + ws..base + i.min(b.len()),
            value: base + value_start..base + value_end,
        });
    }
}

pub(super) fn convert_workflow(doc: &mut Doc, links: &mut Links, report: &mut UpgradeReport) {
    let root = doc.root.clone().expect("a workflow has a root");
    let mut edits = Vec::new();
    let mut notes = Vec::new();
    let mut manual = Vec::new();
    for action in root.children_named("action") {
        let action_name = action.attr("name").unwrap_or("?");
        for kind in action.elements() {
            let targets: Vec<(&Element, &'static str)> = match kind.name.as_str() {
                "sql" => vec![(kind, "")],
                "data-monitor" => kind
                    .elements()
                    .filter(|c| {
                        matches!(
                            c.name.as_str(),
                            "source" | "min" | "max" | "min-threshold" | "max-threshold"
                        )
                    })
                    .map(|c| (c, "SQL"))
                    .collect(),
                "transfer" => kind
                    .elements()
                    .filter(|c| matches!(c.name.as_str(), "source" | "target"))
                    .map(|c| (c, "DB"))
                    .collect(),
                _ => Vec::new(),
            };
            for (el, new_type) in targets {
                let line = doc.line_of(el.tag.start);
                let what = format!("<{}> of action \"{action_name}\"", el.name);
                let renamed = match el.name.as_str() {
                    "min-threshold" => Some("min"),
                    "max-threshold" => Some("max"),
                    _ => None,
                };
                match element_edits(&doc.text, el, renamed, new_type, links) {
                    Ok((mut e, link)) => {
                        edits.append(&mut e);
                        if let Some(new) = renamed {
                            notes.push(Note {
                                file: doc.rel.clone(),
                                line,
                                message: format!("{what} → <{new}>"),
                            });
                        }
                        if let Some(link) = link {
                            notes.push(Note {
                                file: doc.rel.clone(),
                                line,
                                message: format!("{what}: inline connection → db-link=\"{link}\""),
                            });
                        }
                    }
                    Err(message) => manual.push(Note {
                        file: doc.rel.clone(),
                        line,
                        message: format!("{what}: {message}"),
                    }),
                }
            }
        }
    }
    doc.edits.extend(edits);
    report.changes.extend(notes);
    report.manual.extend(manual);
}

/// The edits that convert one element: a new name (`<min-threshold>` → `<min>`), and a start tag
/// naming a link instead of an inline connection. `new_type` is the `type` such an element gets
/// (`SQL`, `DB`), or empty for none (`<sql>`). Returns the link it now names, if any.
pub(super) fn element_edits(
    text: &str,
    el: &Element,
    new_name: Option<&str>,
    new_type: &str,
    links: &mut Links,
) -> Result<(Vec<Edit>, Option<String>), String> {
    let mut edits = Vec::new();
    let link = inline_link(el, new_type, links)?;
    let name_start = el.tag.start + 1;
    let name_end = name_start + el.name.len();
    let name = new_name.unwrap_or(&el.name);
    match &link {
        Some(link) => edits.push(Edit::replace(
            el.tag.clone(),
            link_tag(text, el, name, new_type, link),
        )),
        None if new_name.is_some() => {
            edits.push(Edit::replace(name_start..name_end, name.to_string()))
        }
        None => {}
    }
    let self_closing = text[el.tag.clone()].ends_with("/>");
    if new_name.is_some() && !self_closing {
        let close = el.inner.end + 2;
        if text[close..].starts_with(el.name.as_str()) {
            edits.push(Edit::replace(
                close..close + el.name.len(),
                name.to_string(),
            ));
        }
    }
    Ok((edits, link))
}

/// The link an element with an inline connection is to name (creating it), or `None` when it has
/// no inline connection.
pub(super) fn inline_link(
    el: &Element,
    new_type: &str,
    links: &mut Links,
) -> Result<Option<String>, String> {
    let ty = el.attr("type").map(|t| t.trim().to_ascii_uppercase());
    let has_connection = CONNECTION_ATTRS.iter().any(|a| el.attr(a).is_some());
    let inline_type = ty.as_deref().is_some_and(|t| INLINE_TYPES.contains(&t));
    let needs = has_connection || inline_type || (new_type.is_empty() && ty.is_some());
    if !needs {
        return Ok(None);
    }
    if let Some(existing) = el.attr("db-link").map(str::trim).filter(|l| !l.is_empty()) {
        return Ok(Some(existing.to_string()));
    }
    let Some(url) = el.attr("jdbc-url").map(str::trim).filter(|u| !u.is_empty()) else {
        return Err(
            "has a database type but no jdbc-url, so there is no connection to move: define a link in db_links.xml and write db-link=\"name\" by hand"
                .into(),
        );
    };
    let kind = match ty.as_deref() {
        Some(t) if INLINE_TYPES.contains(&t) => t,
        _ => kind_from_url(url).ok_or(
            "cannot tell the database type from its jdbc-url: define a link of the right type in db_links.xml and write db-link=\"name\" by hand",
        )?,
    };
    Ok(Some(links.name_for(
        kind,
        url,
        el.attr("username").unwrap_or(""),
        el.attr("password").unwrap_or(""),
    )))
}

/// The start tag with the connection attributes gone, `type` set to `new_type` (or gone) and
/// `db-link` after it; everything else (other attributes, line breaks, quotes) as written.
pub(super) fn link_tag(text: &str, el: &Element, name: &str, new_type: &str, link: &str) -> String {
    let attrs = raw_attrs(&text[el.tag.clone()], el.tag.start);
    let keep_type = !new_type.is_empty() && attrs.iter().any(|a| a.name == "type");
    let db_link = format!(" db-link=\"{}\"", attr_escape(link));
    let mut out = format!("<{name}");
    if !keep_type {
        if !new_type.is_empty() {
            out.push_str(&format!(" type=\"{new_type}\""));
        }
        out.push_str(&db_link);
    }
    let mut at = el.tag.start + 1 + el.name.len();
    for a in &attrs {
        out.push_str(&text[at..a.span.start]);
        at = a.span.end;
        let is_type = a.name == "type";
        if CONNECTION_ATTRS.contains(&a.name.as_str())
            || a.name == "db-link"
            || (is_type && !keep_type)
        {
            continue;
        }
        if is_type {
            out.push_str(&text[a.span.start..a.value.start]);
            out.push_str(new_type);
            out.push_str(&text[a.value.end..a.span.end]);
            out.push_str(&db_link);
        } else {
            out.push_str(&text[a.span.clone()]);
        }
    }
    out.push_str(&text[at..el.tag.end]);
    out
}

pub(super) fn kind_from_url(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("jdbc:")
        .unwrap_or(url)
        .to_ascii_lowercase();
    [
        ("mysql", "MYSQL"),
        ("mariadb", "MYSQL"),
        ("postgresql", "POSTGRESQL"),
        ("postgres", "POSTGRESQL"),
        ("sqlite", "SQLITE"),
        ("oracle", "ORACLE"),
        ("hive", "HIVE"),
    ]
    .iter()
    .find(|(prefix, _)| rest.starts_with(prefix))
    .map(|(_, k)| *k)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::definition::xml;

    #[test]
    pub(super) fn link_names_come_from_kind_host_and_database() {
        let cases = [
            (
                "MYSQL",
                "jdbc:mysql://localhost:3306/wf?useSSL=false",
                "mysql_localhost_wf",
            ),
            (
                "POSTGRESQL",
                "jdbc:postgresql://db.example.com/dw",
                "postgresql_db_example_com_dw",
            ),
            ("ORACLE", "jdbc:oracle:thin:@host:1521:orcl", "oracle"),
            ("MYSQL", "mysql://u:p@h/x", "mysql_h_x"),
        ];
        for (kind, url, want) in cases {
            assert_eq!(link_name(kind, url), want, "{url}");
        }
    }

    #[test]
    pub(super) fn connections_are_deduplicated_and_names_kept_apart() {
        let mut links = Links::default();
        links.existing(DbLink {
            name: "dw".into(),
            kind: DbKind::Mysql,
            url: "jdbc:mysql://h/dw".into(),
            username: "etl".into(),
            password: "pw".into(),
            properties: Vec::new(),
            pool: None,
        });
        assert_eq!(
            links.name_for("MYSQL", "jdbc:mysql://h/dw", "etl", "pw"),
            "dw"
        );
        let a = links.name_for("MYSQL", "jdbc:mysql://h/wf", "root", "root");
        let b = links.name_for("MYSQL", "jdbc:mysql://h/wf", "root", "root");
        let c = links.name_for("MYSQL", "jdbc:mysql://h/wf", "other", "x");
        assert_eq!(
            (a.as_str(), b.as_str(), c.as_str()),
            ("mysql_h_wf", "mysql_h_wf", "mysql_h_wf_other")
        );
        assert_eq!(
            links.report().iter().map(|l| l.uses).collect::<Vec<_>>(),
            [2, 1]
        );
        assert!(links.xml().contains("password=\"root\""));
    }

    #[test]
    pub(super) fn start_tags_are_rewritten_in_place() {
        let text = "<r>\n  <target type=\"MYSQL\" jdbc-url=\"jdbc:mysql://h/db\"\n          username=\"u\" password=\"p&amp;q\" table=\"t\">\n    <pre-sql>x</pre-sql>\n  </target>\n  <sql type='MYSQL' jdbc-url='jdbc:mysql://h/db' username='u' password='p&amp;q'>select 1</sql>\n  <max-threshold type=\"MYSQL\" jdbc-url=\"jdbc:mysql://h/db\" username=\"u\" password=\"p&amp;q\">select 2</max-threshold>\n</r>";
        let root = xml::parse(text).unwrap();
        let mut links = Links::default();
        let mut doc = Doc::new(PathBuf::from("w.xml"), text.to_string());
        let (e, name) =
            element_edits(text, root.child("target").unwrap(), None, "DB", &mut links).unwrap();
        assert_eq!(name.as_deref(), Some("mysql_h_db"));
        doc.edits.extend(e);
        let (e, _) = element_edits(text, root.child("sql").unwrap(), None, "", &mut links).unwrap();
        doc.edits.extend(e);
        let max = root.child("max-threshold").unwrap();
        let (e, _) = element_edits(text, max, Some("max"), "SQL", &mut links).unwrap();
        doc.edits.extend(e);
        assert_eq!(
            doc.output(),
            "<r>\n  <target type=\"DB\" db-link=\"mysql_h_db\" table=\"t\">\n    <pre-sql>x</pre-sql>\n  </target>\n  <sql db-link=\"mysql_h_db\">select 1</sql>\n  <max type=\"SQL\" db-link=\"mysql_h_db\">select 2</max>\n</r>"
        );
        assert_eq!(links.report().len(), 1, "one connection, one link");
        assert!(
            links.xml().contains("password=\"p&amp;q\""),
            "{}",
            links.xml()
        );
        // line 6 of the output (`<sql>`) was line 7 of the source: the target lost a line break
        assert_eq!(doc.source_line(5), 6);
    }
}
