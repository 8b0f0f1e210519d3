//! Workflow definitions: the XML format (parser), the typed model, templates, cron strings, and the
//! validator that checks a whole set of files at once.
//!
//! Owns: turning files into a [`DefinitionSet`] or a complete list of [`Diagnostic`]s.
//! Never touches the database; `store` persists what this module produced.

pub mod cron;
pub mod model;
pub mod template;

use std::path::PathBuf;

pub use model::*;

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
    pub warnings: Vec<Diagnostic>,
}

/// Reads every `*.xml` below the given files or directories (recursively) and loads them as one set.
/// `Err` holds every diagnostic (errors and warnings), sorted by file, line and column.
pub fn load_paths(paths: &[PathBuf]) -> Result<DefinitionSet, Vec<Diagnostic>> {
    let _ = paths;
    todo!("definition::load_paths")
}

/// Parses and validates in-memory files as one set (what `load_paths` does after reading).
pub fn load_sources(files: Vec<SourceFile>) -> Result<DefinitionSet, Vec<Diagnostic>> {
    let _ = files;
    todo!("definition::load_sources")
}
