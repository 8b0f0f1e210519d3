//! `akkaflow upgrade SRC OUT`: a converted copy of original akkaflow files that this project loads.
//!
//! Owns: rewriting what the parser refuses into what it accepts, in place in the text, so comments,
//! indentation and everything else of a file stay as they were:
//! - inline connections (`<sql type="MYSQL" jdbc-url=… username=… password=…>`, the same on
//!   `<data-monitor>` sources and bounds and on `<transfer>` sources and targets) become named links
//!   in `OUT/db_links.xml` (one per distinct connection, reusing a link the sources already define),
//!   and the element names its link with `db-link`;
//! - `<min-threshold>`/`<max-threshold>` become `<min>`/`<max>`;
//! - a legacy coordinator file is folded into the workflow(s) it triggers as an inline
//!   `<coordinator>` (six-field crons cut to the five fields the original used).
//!
//! The result is then validated as one set, exactly as `validate OUT` will: a file that still has
//! errors (a workflow that loops) is not written, and is listed with its file:line and the
//! validator's message saying what to do by hand; so is anything that depended on it.
//!
//! Passwords go into `OUT/db_links.xml` only: the report names links, never URLs or passwords.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cron::CronSpec;
use super::model::{DbKind, DbLink};
use super::parser::{self, Parsed};
use super::xml::{self, Element, LineIndex};
use super::{load_sources, Severity, SourceFile};

/// Connection attributes the original wrote inline; their values move to `db_links.xml`.
const CONNECTION_ATTRS: &[&str] = &["jdbc-url", "username", "password"];
/// `type` values that meant "an inline connection of this kind".
const INLINE_TYPES: &[&str] = &["MYSQL", "ORACLE", "HIVE", "POSTGRESQL", "SQLITE"];
const LINKS_FILE: &str = "db_links.xml";

/// What `upgrade` did, and what it left to a person. Paths are relative to the source directory.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UpgradeReport {
    /// Files written to the output directory (converted or copied as they were).
    pub written: Vec<PathBuf>,
    /// Each rewrite, at its line in the source file.
    pub changes: Vec<Note>,
    /// Legacy coordinator files and the workflow file each was folded into.
    pub folded: Vec<(PathBuf, PathBuf)>,
    /// Links added to `OUT/db_links.xml` (never their URL or password).
    pub links: Vec<NewLink>,
    /// What could not be converted: not written; each says what to do by hand.
    pub manual: Vec<Note>,
    /// Warnings the converted set still has (accepted, but worth a look).
    pub warnings: Vec<Note>,
}

/// One line of the report: `file:line: message`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Note {
    pub file: PathBuf,
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// A link created from inline connections.
#[derive(Clone, Debug, Serialize)]
pub struct NewLink {
    pub name: String,
    pub kind: String,
    pub username: String,
    /// How many elements now use it.
    pub uses: usize,
}

/// Why `upgrade` did not start (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("{0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> UpgradeError {
    move |source| UpgradeError::Io { context, source }
}

/// Converts `src` into `out` (which must not exist, or be an empty directory).
pub fn upgrade(src: &Path, out: &Path) -> Result<UpgradeReport, UpgradeError> {
    check_dirs(src, out)?;
    let mut files = Vec::new();
    walk(src, Path::new(""), &mut files).map_err(io(format!("reading {}", src.display())))?;
    files.sort();

    let mut report = UpgradeReport::default();
    let mut docs: Vec<Doc> = Vec::new();
    let mut copies: Vec<PathBuf> = Vec::new();
    for rel in &files {
        let is_xml = rel
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
        if !is_xml {
            copies.push(rel.clone());
            continue;
        }
        let bytes = std::fs::read(src.join(rel))
            .map_err(io(format!("reading {}", src.join(rel).display())))?;
        match String::from_utf8(bytes) {
            Ok(text) => docs.push(Doc::new(rel.clone(), text)),
            Err(_) => report.manual.push(Note {
                file: rel.clone(),
                line: 1,
                message: "file is not valid UTF-8: save it as UTF-8 and run upgrade again".into(),
            }),
        }
    }

    let mut links = Links::default();
    for doc in &docs {
        if let Some(Parsed::DbLinks(existing)) =
            parser::parse_file(&src.join(&doc.rel), &doc.text).0
        {
            for (link, _) in existing {
                links.existing(link);
            }
        }
    }
    for doc in &mut docs {
        if matches!(doc.root_name(), Some("work-flow" | "workflow")) {
            convert_workflow(doc, &mut links, &mut report);
        }
    }
    fold_coordinators(src, &mut docs, &mut report);

    // The new links go into OUT/db_links.xml: appended to a db_links.xml at the top of the
    // sources (keeping its text), or in a new file.
    let links_rel = PathBuf::from(LINKS_FILE);
    if !links.added.is_empty() {
        match docs.iter_mut().find(|d| d.rel == links_rel) {
            Some(doc) if doc.root_name() == Some("db-links") => {
                let root = doc.root.as_ref().expect("root_name implies a root");
                let at = if root.tag.end == root.inner.end {
                    // `<db-links/>`: give it content
                    let tag = doc.text[root.tag.clone()].to_string();
                    let open = tag.trim_end_matches("/>").trim_end().to_string() + ">";
                    doc.edits.push(Edit::replace(
                        root.tag.clone(),
                        format!("{open}\n{}</db-links>", links.xml()),
                    ));
                    None
                } else {
                    Some(root.inner.end)
                };
                if let Some(at) = at {
                    doc.edits.push(Edit::replace(at..at, links.xml()));
                }
            }
            Some(doc) => report.manual.push(Note {
                file: doc.rel.clone(),
                line: 1,
                message: format!(
                    "{LINKS_FILE} is not a <db-links> file, so the converted connections have nowhere to go: rename it and run upgrade again"
                ),
            }),
            None => docs.push(Doc::new(
                links_rel.clone(),
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- written by akkaflow upgrade: the connections that workflows wrote inline, one link per connection -->\n<db-links>\n{}</db-links>\n",
                    links.xml()
                ),
            )),
        }
    }
    report.links = links.report();

    validate_and_drop(src, &mut docs, &mut report);

    std::fs::create_dir_all(out).map_err(io(format!("creating {}", out.display())))?;
    for doc in docs.iter().filter(|d| !d.dropped) {
        let path = out.join(&doc.rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, doc.output()).map_err(io(format!("writing {}", path.display())))?;
        report.written.push(doc.rel.clone());
    }
    for rel in copies {
        let path = out.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::copy(src.join(&rel), &path)
            .map_err(io(format!("copying to {}", path.display())))?;
        report.written.push(rel);
    }
    report.written.sort();
    report
        .changes
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    report
        .manual
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(report)
}

fn check_dirs(src: &Path, out: &Path) -> Result<(), UpgradeError> {
    if !src.is_dir() {
        return Err(UpgradeError::Refused(format!(
            "{} is not a directory: give the directory holding the original files",
            src.display()
        )));
    }
    if out.exists() {
        let empty = out.is_dir()
            && std::fs::read_dir(out)
                .map_err(io(format!("reading {}", out.display())))?
                .next()
                .is_none();
        if !empty {
            return Err(UpgradeError::Refused(format!(
                "{} already exists and is not empty: upgrade writes a fresh copy and never overwrites",
                out.display()
            )));
        }
    }
    let src_abs = std::fs::canonicalize(src).map_err(io(format!("reading {}", src.display())))?;
    let out_abs = match std::fs::canonicalize(out) {
        Ok(p) => p,
        Err(_) => match (out.parent(), out.file_name()) {
            (Some(parent), Some(name)) => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                std::fs::canonicalize(parent)
                    .map_err(io(format!("reading {}", parent.display())))?
                    .join(name)
            }
            _ => out.to_path_buf(),
        },
    };
    if out_abs.starts_with(&src_abs) {
        return Err(UpgradeError::Refused(format!(
            "{} lies inside {}: put the converted copy elsewhere",
            out.display(),
            src.display()
        )));
    }
    Ok(())
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let child = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            walk(root, &child, out)?;
        } else {
            out.push(child);
        }
    }
    Ok(())
}

/// One XML file: its text, its tree, and the edits to apply to the text.
struct Doc {
    rel: PathBuf,
    /// A byte order mark, written back as it was.
    bom: &'static str,
    text: String,
    root: Option<Element>,
    edits: Vec<Edit>,
    /// Not written: it could not be converted, or it was folded into another file.
    dropped: bool,
}

/// Replace `range` of the source text with `with` (an insertion when the range is empty).
#[derive(Clone, Debug)]
struct Edit {
    range: Range<usize>,
    with: String,
}

impl Edit {
    fn replace(range: Range<usize>, with: String) -> Self {
        Edit { range, with }
    }
}

impl Doc {
    fn new(rel: PathBuf, text: String) -> Self {
        let (bom, text) = match text.strip_prefix('\u{feff}') {
            Some(rest) => ("\u{feff}", rest.to_string()),
            None => ("", text),
        };
        let root = xml::parse(&text).ok();
        Doc {
            rel,
            bom,
            text,
            root,
            edits: Vec::new(),
            dropped: false,
        }
    }

    fn root_name(&self) -> Option<&str> {
        self.root.as_ref().map(|r| r.name.as_str())
    }

    /// The text with every edit applied, and for each output byte range that was copied, where it
    /// came from (to map a line of the output back to the source).
    fn apply(&self) -> (String, Vec<(usize, usize)>) {
        let mut edits = self.edits.clone();
        // stable: two insertions at one place keep the order they were made in
        edits.sort_by_key(|e| (e.range.start, e.range.end));
        let mut out = String::with_capacity(self.text.len() + 256);
        let mut map = Vec::new();
        let mut at = 0;
        for e in edits {
            if e.range.start < at {
                continue; // overlapping edits cannot happen; never corrupt the text if they do
            }
            map.push((out.len(), at));
            out.push_str(&self.text[at..e.range.start]);
            map.push((out.len(), e.range.start));
            out.push_str(&e.with);
            at = e.range.end;
        }
        map.push((out.len(), at));
        out.push_str(&self.text[at..]);
        (out, map)
    }

    fn output(&self) -> String {
        format!("{}{}", self.bom, self.apply().0)
    }

    /// The source line of a line of the output.
    fn source_line(&self, out_line: u32) -> u32 {
        let (out, map) = self.apply();
        let out_index = LineIndex::new(&out);
        let offset = out_index.offset_of_line(out_line);
        let (out_start, src_start) = map
            .iter()
            .rev()
            .find(|(o, _)| *o <= offset)
            .copied()
            .unwrap_or((0, 0));
        let src_offset = (src_start + (offset - out_start)).min(self.text.len());
        LineIndex::new(&self.text).pos(src_offset).line
    }

    fn line_of(&self, offset: usize) -> u32 {
        LineIndex::new(&self.text).pos(offset).line
    }
}

/// The links the sources define and the ones this run adds, by connection.
#[derive(Default)]
struct Links {
    /// (kind, url, username, password) → name, for every link known.
    by_connection: BTreeMap<(String, String, String, String), String>,
    names: Vec<String>,
    /// Added here, in the order first used: (name, kind, url, username, password, uses).
    added: Vec<(String, String, String, String, String, usize)>,
}

impl Links {
    fn existing(&mut self, link: DbLink) {
        let kind = kind_name(link.kind).to_string();
        self.names.push(link.name.clone());
        self.by_connection
            .entry((kind, link.url, link.username, link.password))
            .or_insert(link.name);
    }

    /// The link for this connection: an existing one, or a new one named after its kind, host
    /// and database.
    fn name_for(&mut self, kind: &str, url: &str, username: &str, password: &str) -> String {
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

    fn xml(&self) -> String {
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

    fn report(&self) -> Vec<NewLink> {
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

fn kind_name(kind: DbKind) -> &'static str {
    match kind {
        DbKind::Mysql => "MYSQL",
        DbKind::Postgresql => "POSTGRESQL",
        DbKind::Sqlite => "SQLITE",
        DbKind::Oracle => "ORACLE",
        DbKind::Hive => "HIVE",
    }
}

/// `jdbc:mysql://localhost:3306/wf?useSSL=false` → `mysql_localhost_wf`.
fn link_name(kind: &str, url: &str) -> String {
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

fn sanitize(text: &str) -> String {
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

fn attr_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// The attributes of a start tag as written: each with its span including the whitespace before
/// it (what deleting it removes), and the span of its value inside the quotes.
struct RawAttr {
    name: String,
    span: Range<usize>,
    value: Range<usize>,
}

/// `tag` is the text of a well-formed start tag (quick-xml has checked it), `base` its offset.
fn raw_attrs(tag: &str, base: usize) -> Vec<RawAttr> {
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

fn convert_workflow(doc: &mut Doc, links: &mut Links, report: &mut UpgradeReport) {
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
fn element_edits(
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
fn inline_link(el: &Element, new_type: &str, links: &mut Links) -> Result<Option<String>, String> {
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
fn link_tag(text: &str, el: &Element, name: &str, new_type: &str, link: &str) -> String {
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

fn kind_from_url(url: &str) -> Option<&'static str> {
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

/// Each legacy coordinator file becomes an inline `<coordinator>` of the workflow(s) it triggers.
fn fold_coordinators(src: &Path, docs: &mut [Doc], report: &mut UpgradeReport) {
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
fn inline_coordinator(
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
fn raw_cron(root: &Element) -> Option<String> {
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
fn line_indent(text: &str, offset: usize) -> String {
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
fn reindent(text: &str, el: &Element, indent: &str) -> String {
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

/// Validates the converted set as `validate OUT` will, dropping files that still have errors
/// (and then what fails without them) until the rest is valid; each dropped file is reported at
/// its source lines.
fn validate_and_drop(src: &Path, docs: &mut [Doc], report: &mut UpgradeReport) {
    // A file a person has to fix anyway (its conversion failed) is not written half-done.
    for doc in docs.iter_mut() {
        if report.manual.iter().any(|n| n.file == doc.rel) {
            doc.dropped = true;
        }
    }
    let path_of = |d: &Doc| -> PathBuf { src.join(&d.rel) };
    loop {
        let files: Vec<SourceFile> = docs
            .iter()
            .filter(|d| !d.dropped)
            .map(|d| SourceFile {
                path: path_of(d),
                text: d.apply().0,
            })
            .collect();
        let diags = match load_sources(files) {
            Ok(set) => {
                for w in set.warnings {
                    if let Some(d) = docs.iter().find(|d| path_of(d) == w.file) {
                        report.warnings.push(Note {
                            file: d.rel.clone(),
                            line: d.source_line(w.line),
                            message: w.message,
                        });
                    }
                }
                return;
            }
            Err(diags) => diags,
        };
        let mut dropped_now = false;
        for d in diags.iter().filter(|d| d.severity == Severity::Error) {
            let Some(doc) = docs.iter_mut().find(|doc| path_of(doc) == d.file) else {
                continue;
            };
            let line = doc.source_line(d.line);
            let rel = doc.rel.clone();
            doc.dropped = true;
            dropped_now = true;
            report.manual.push(Note {
                file: rel,
                line,
                message: d.message.clone(),
            });
        }
        // coordinators folded into a file that is not written are not written either
        for (coordinator, workflow) in &report.folded {
            let gone = docs.iter().any(|d| &d.rel == workflow && d.dropped);
            if gone {
                report.manual.push(Note {
                    file: coordinator.clone(),
                    line: 1,
                    message: format!(
                        "folded into {}, which is not written: it comes over with that workflow once the workflow is fixed",
                        workflow.display()
                    ),
                });
            }
        }
        report
            .folded
            .retain(|(_, w)| !docs.iter().any(|d| &d.rel == w && d.dropped));
        if !dropped_now {
            return; // errors in no file of ours: nothing more to drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_come_from_kind_host_and_database() {
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
    fn connections_are_deduplicated_and_names_kept_apart() {
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
    fn start_tags_are_rewritten_in_place() {
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
