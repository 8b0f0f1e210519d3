//! Workflow definitions: the XML format (parser), the typed model, templates, cron strings, and the
//! validator that checks a whole set of files at once.
//!
//! Owns: turning files into a [`DefinitionSet`] or a complete list of [`Diagnostic`]s.
//! Never touches the database; `store` persists what this module produced.

pub mod calendar;
pub mod cron;
pub mod deadline;
pub mod diff;
pub mod document;
pub mod model;
mod parser;
pub mod template;
pub mod upgrade;
mod validator;
mod xml;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use model::*;
pub(crate) use parser::implied_local;
pub use parser::schema;

/// How bad a diagnostic is: errors fail validation, warnings are shown and do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a definition file, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
    /// The element the problem is about (`action`, `coordinator`, ...).
    pub element: String,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(
            f,
            "{}:{}:{}: {}{}",
            self.file.display(),
            self.line,
            self.col,
            level,
            self.message
        )
    }
}

/// A file to load, already read into memory.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// A workflow as loaded: its model plus where it came from.
#[derive(Clone, Debug)]
pub struct LoadedWorkflow {
    pub workflow: Workflow,
    pub file: PathBuf,
    pub source_xml: String,
    /// sha256 (hex) over the definition JSON and the source XML; the version goes up only when it changes.
    pub content_hash: String,
}

/// A validated set of definitions.
#[derive(Clone, Debug, Default)]
pub struct DefinitionSet {
    pub workflows: Vec<LoadedWorkflow>,
    pub db_links: Vec<DbLink>,
    pub file_links: Vec<FileLink>,
    /// Business calendars (`calendars.xml`).
    pub calendars: Vec<calendar::Calendar>,
    /// From `pools.xml`.
    pub pools: Vec<Pool>,
    pub warnings: Vec<Diagnostic>,
}

/// Reads every `*.xml` below the given files or directories (recursively) and loads them as one set.
/// `Err` holds every diagnostic (errors and warnings), sorted by file, line and column.
///
/// Directories are walked in sorted order, so the same tree always gives the same set and messages.
/// A path given explicitly is read whatever its extension.
pub fn load_paths(paths: &[PathBuf]) -> Result<DefinitionSet, Vec<Diagnostic>> {
    let mut found = Vec::new();
    let mut diags = Vec::new();
    for path in paths {
        if path.is_dir() {
            if let Err((p, e)) = collect_xml(path, &mut found) {
                diags.push(io_diagnostic(&p, &format!("cannot read directory: {e}")));
            }
        } else {
            found.push(path.clone());
        }
    }
    found.sort();
    found.dedup();
    let mut files = Vec::new();
    for path in found {
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => files.push(SourceFile { path, text }),
                Err(_) => diags.push(io_diagnostic(
                    &path,
                    "file is not valid UTF-8: save it as UTF-8",
                )),
            },
            Err(e) => diags.push(io_diagnostic(&path, &format!("cannot read file: {e}"))),
        }
    }
    match load_sources(files) {
        Ok(set) if diags.is_empty() => Ok(set),
        Ok(set) => Err(finish(diags.into_iter().chain(set.warnings).collect())),
        Err(more) => Err(finish(diags.into_iter().chain(more).collect())),
    }
}

/// The link files' conventional names, which `validate FILE` looks for beside and above the file.
pub const LINK_FILE_NAMES: [&str; 3] = ["db_links.xml", "file_links.xml", "pools.xml"];

/// For `validate one_file.xml`: the `db_links.xml` and `file_links.xml` nearest to each file given
/// on its own (in its directory or the closest one above it, not above the working directory when
/// the file lies below it), so its links resolve as they do when `sync` loads the whole directory.
/// Files already covered by the given paths are not added again.
pub fn nearby_link_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let given: Vec<PathBuf> = paths.iter().filter_map(|p| canonical(p)).collect();
    let covered = |found: &Path| given.iter().any(|g| found.starts_with(g));
    let cwd = std::env::current_dir().ok().and_then(|d| canonical(&d));
    let mut out: Vec<PathBuf> = Vec::new();
    for file in paths.iter().filter(|p| p.is_file()) {
        let Some(abs) = canonical(file) else { continue };
        let stop = cwd.as_ref().filter(|c| abs.starts_with(c));
        for name in LINK_FILE_NAMES {
            let mut dir = abs.parent();
            while let Some(d) = dir {
                let candidate = d.join(name);
                if candidate.is_file() {
                    if !covered(&candidate) && !out.contains(&candidate) {
                        out.push(candidate);
                    }
                    break;
                }
                if stop.is_some_and(|s| d == s.as_path()) {
                    break;
                }
                dir = d.parent();
            }
        }
    }
    out
}

fn collect_xml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), (PathBuf, std::io::Error)> {
    let entries = std::fs::read_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        paths.push(entry.map_err(|e| (dir.to_path_buf(), e))?.path());
    }
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect_xml(&p, out)?;
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")) {
            out.push(p);
        }
    }
    Ok(())
}

fn io_diagnostic(path: &Path, message: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        file: path.to_path_buf(),
        line: 1,
        col: 1,
        element: "file".to_string(),
        message: message.to_string(),
    }
}

/// Sorted by file, line, column (stable, so one element's messages keep their order), duplicates
/// dropped.
fn finish(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    diags.dedup();
    diags
}

/// Refuses a document nested too deep or holding too many elements, before anything else reads it:
/// the HTTP role answers this one with 400, as a malformed request rather than a definition to fix.
pub fn check_document_limits(path: &Path, text: &str) -> Result<(), Diagnostic> {
    xml::check_limits(text).map_err(|e| e.diagnostic(path))
}

/// Parses and validates in-memory files as one set (what `load_paths` does after reading).
pub fn load_sources(files: Vec<SourceFile>) -> Result<DefinitionSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut parsed = Vec::new();
    for f in files {
        let (value, mut file_diags) = parser::parse_file(&f.path, &f.text);
        diags.append(&mut file_diags);
        parsed.push(validator::ParsedSource {
            path: f.path,
            text: f.text,
            parsed: value,
        });
    }
    let valid = validator::validate(parsed, &mut diags);
    let diags = finish(diags);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(diags);
    }
    let workflows = valid
        .workflows
        .into_iter()
        .map(|w| {
            let content_hash = content_hash(&w.workflow, &w.text);
            LoadedWorkflow {
                workflow: w.workflow,
                file: w.file,
                source_xml: w.text,
                content_hash,
            }
        })
        .collect();
    Ok(DefinitionSet {
        workflows,
        db_links: valid.db_links,
        file_links: valid.file_links,
        calendars: valid.calendars,
        pools: valid.pools,
        warnings: diags,
    })
}

/// sha256 hex of the definition JSON, a NUL, and the source XML: a change to either (including an
/// attached legacy coordinator, which is part of the JSON) gives a new version.
fn content_hash(workflow: &Workflow, source_xml: &str) -> String {
    let json =
        serde_json::to_string(workflow).expect("the model serialises: plain data, string keys");
    let mut h = Sha256::new();
    h.update(json.as_bytes());
    h.update([0u8]);
    h.update(source_xml.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
