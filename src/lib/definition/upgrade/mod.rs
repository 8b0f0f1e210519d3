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

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::parser::{self, Parsed};
use super::xml::{self, Element, LineIndex};
use super::{load_sources, Severity, SourceFile};

mod coordinators;
mod links;

use coordinators::fold_coordinators;
use links::{convert_workflow, Links};

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
