//! XML → model, one file at a time, with positions.
//!
//! Owns: recognising a file by its root element, reading every element and attribute of the format,
//! refusing the original's constructs we do not support (with what to write instead), and recording
//! where things are ([`Site`]) so the validator can point at them. It reports every problem of a file
//! rather than stopping at the first; what needs the other files (links, upstream workflows, graph
//! shape) is left to `validator`.

mod actions;
mod calendars;
mod coordinator;
mod links;
pub mod schema;
mod transfer;
mod workflow;

use std::path::{Path, PathBuf};

pub(crate) use links::implied_local;

use super::calendar::Calendar;
use super::model::{Coordinator, DbLink, FileLink, Pool, Workflow};
use super::template::Template;
use super::xml::{self, Element, Pos};
use super::{Diagnostic, Severity};

/// Where something is: a position and the element found there.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    pub pos: Pos,
    pub element: String,
}

/// What one file turned out to hold.
pub(crate) enum Parsed {
    Workflow(Box<ParsedWorkflow>),
    Coordinator(Box<LegacyCoordinator>),
    DbLinks(Vec<(DbLink, Site)>),
    FileLinks(Vec<(FileLink, Site)>),
    Calendars(Vec<(Calendar, Site)>),
    Pools(Vec<(Pool, Site)>),
}

/// A workflow plus the positions the validator needs.
pub(crate) struct ParsedWorkflow {
    pub workflow: Workflow,
    pub root: Site,
    /// The inline `<coordinator>`, if any.
    pub coordinator_site: Option<Site>,
    /// Parallel to `workflow.nodes`.
    pub nodes: Vec<NodeInfo>,
    pub refs: Vec<Ref>,
    pub param_uses: Vec<ParamUse>,
    /// Where a time expression counts `workday`s (which needs the coordinator's calendar).
    pub workday_uses: Vec<Site>,
}

pub(crate) struct NodeInfo {
    pub site: Site,
    /// Human name of the node for messages: `action "load"`.
    pub label: String,
    pub edges: Vec<Edge>,
}

/// A transition as written: `<ok to>`, `<error to>`, `<path to>` or a `to` attribute.
pub(crate) struct Edge {
    pub to: String,
    /// `<ok>`, `<error>`, `<path>`, `to`.
    pub via: &'static str,
    pub site: Site,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefKind {
    DbLink,
    FileLink,
    SubWorkflow,
    Depend,
    Calendar,
}

/// A name that must exist elsewhere in the set.
#[derive(Clone, Debug)]
pub(crate) struct Ref {
    pub kind: RefKind,
    pub name: String,
    pub site: Site,
}

/// A `${param:name}` use.
#[derive(Clone, Debug)]
pub(crate) struct ParamUse {
    pub name: String,
    pub site: Site,
    /// Set for a use inside a coordinator parameter's value: the index of that parameter (only
    /// earlier ones are defined by then).
    pub coord_param: Option<usize>,
}

/// A pre-2.9 coordinator file, to be attached to the workflows it triggers.
#[derive(Clone, Debug)]
pub(crate) struct LegacyCoordinator {
    pub name: String,
    pub coordinator: Coordinator,
    pub root: Site,
    pub targets: Vec<(String, Site)>,
    pub refs: Vec<Ref>,
    pub param_uses: Vec<ParamUse>,
}

/// Parses one file. Diagnostics are always returned; the value only when the root was recognised
/// and well-formed enough to build a model (it may still carry errors in the diagnostics).
pub(crate) fn parse_file(path: &Path, text: &str) -> (Option<Parsed>, Vec<Diagnostic>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = match xml::parse(text) {
        Ok(root) => root,
        Err(e) => return (None, vec![e.diagnostic(path)]),
    };
    let mut ctx = Ctx::new(path, text);
    let parsed = match root.name.as_str() {
        "work-flow" | "workflow" => {
            workflow::parse(&mut ctx, &root).map(|w| Parsed::Workflow(Box::new(w)))
        }
        "coordinator" => {
            coordinator::parse_legacy(&mut ctx, &root).map(|c| Parsed::Coordinator(Box::new(c)))
        }
        "db-links" => Some(Parsed::DbLinks(links::parse_db_links(&mut ctx, &root))),
        "file-links" => Some(Parsed::FileLinks(links::parse_file_links(&mut ctx, &root))),
        "calendars" => Some(Parsed::Calendars(calendars::parse_calendars(
            &mut ctx, &root,
        ))),
        "pools" => Some(Parsed::Pools(links::parse_pools(&mut ctx, &root))),
        other => {
            ctx.error(
                &root,
                format!(
                    "unknown root element <{other}>: expected <work-flow>, <coordinator>, <db-links>, <file-links>, <calendars> or <pools>"
                ),
            );
            None
        }
    };
    (parsed, ctx.diags)
}

/// Per-file parsing state: where diagnostics, references and parameter uses accumulate.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    /// The file's directory, against which attachments are resolved.
    pub dir: PathBuf,
    /// The document text, for raw inner XML (`<email>`).
    pub text: &'a str,
    pub diags: Vec<Diagnostic>,
    pub refs: Vec<Ref>,
    pub param_uses: Vec<ParamUse>,
    pub workday_uses: Vec<Site>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a Path, text: &'a str) -> Self {
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ctx {
            file,
            dir,
            text,
            diags: Vec::new(),
            refs: Vec::new(),
            param_uses: Vec::new(),
            workday_uses: Vec::new(),
        }
    }

    pub fn site(&self, el: &Element) -> Site {
        Site {
            pos: el.pos,
            element: el.name.clone(),
        }
    }

    fn push(&mut self, severity: Severity, el: &Element, message: String) {
        self.diags.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            line: el.pos.line,
            col: el.pos.col,
            element: el.name.clone(),
            message,
        });
    }

    pub fn error(&mut self, el: &Element, message: impl Into<String>) {
        self.push(Severity::Error, el, message.into());
    }

    pub fn warn(&mut self, el: &Element, message: impl Into<String>) {
        self.push(Severity::Warning, el, message.into());
    }

    /// Warns about attributes and child elements that `spec` does not list.
    pub fn allow(&mut self, el: &Element, subject: &str, spec: &schema::ElementSpec) {
        self.allow_attrs(el, subject, spec.attrs);
        self.allow_children(el, subject, spec.children);
    }

    /// Warns about attributes not in `known` (typos that would otherwise be silently ignored).
    pub fn allow_attrs(&mut self, el: &Element, subject: &str, known: &[&str]) {
        let unknown: Vec<String> = el
            .attrs
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
        for k in unknown {
            self.warn(
                el,
                format!("unknown attribute `{k}` on {subject} is ignored"),
            );
        }
    }

    /// Warns about child elements not in `known`.
    pub fn allow_children(&mut self, el: &Element, subject: &str, known: &[&str]) {
        for child in el.elements() {
            if !known.contains(&child.name.as_str()) {
                let msg = format!("unknown element <{}> in {subject} is ignored", child.name);
                self.warn(child, msg);
            }
        }
    }

    /// A required, non-blank attribute (trimmed).
    pub fn required(&mut self, el: &Element, subject: &str, name: &str) -> Option<String> {
        match el.attr(name).map(str::trim) {
            Some(v) if !v.is_empty() => Some(v.to_string()),
            Some(_) => {
                self.error(el, format!("{subject} has an empty {name} attribute"));
                None
            }
            None => {
                self.error(el, format!("{subject} has no {name} attribute"));
                None
            }
        }
    }

    /// An optional attribute, trimmed; blank counts as absent.
    pub fn optional(&self, el: &Element, name: &str) -> Option<String> {
        el.attr(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    pub fn bool_attr(&mut self, el: &Element, subject: &str, name: &str, default: bool) -> bool {
        match self.optional(el, name) {
            None => default,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.error(
                    el,
                    format!("{subject}: {name} must be true or false, not \"{v}\""),
                );
                default
            }
        }
    }

    /// A whole number attribute; `min` guards values that make no sense (an instance limit of 0).
    pub fn number_attr<T>(
        &mut self,
        el: &Element,
        subject: &str,
        name: &str,
        default: T,
        min: T,
    ) -> T
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(v) = self.optional(el, name) else {
            return default;
        };
        match v.parse::<T>() {
            Ok(n) if n >= min => n,
            Ok(_) => {
                self.error(
                    el,
                    format!("{subject}: {name} must be at least {min}, not {v}"),
                );
                default
            }
            Err(_) => {
                self.error(
                    el,
                    format!("{subject}: {name} must be a whole number, not \"{v}\""),
                );
                default
            }
        }
    }

    /// Refuses a workflow or node name outside the safe set: letters of any script, digits and
    /// `_ - .`, not starting with `.`. Names end up in URLs, file paths and log lines; a name such
    /// as `../instances/4/kill?x=` once turned a UI button into a request for another route.
    pub fn safe_name(&mut self, el: &Element, what: &str, name: &str) {
        let ok = !name.starts_with('.')
            && !name.contains("..")
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            self.error(
                el,
                format!(
                    "{what} name \"{name}\" may hold only letters, digits, `_`, `-` and `.` (not \
                     first): no spaces, `/`, `?`, `#` or `..`"
                ),
            );
        }
    }

    /// Refuses a parameter name that a shell, the dynamic loader or an interpreter gives meaning to
    /// in the environment (see [`reserved_env_name`]).
    pub fn param_name(&mut self, el: &Element, name: &str) {
        if reserved_env_name(name) {
            self.error(
                el,
                format!(
                    "parameter name \"{name}\" is reserved: the shell, the loader or an interpreter \
                     gives it meaning in the environment; choose another name"
                ),
            );
        }
    }

    /// Parses text that may hold expressions, recording its `${param:..}` uses at `el`.
    pub fn template(&mut self, el: &Element, subject: &str, text: &str) -> Template {
        match Template::parse(text) {
            Ok(t) => {
                for name in t.param_refs() {
                    self.param_name(el, name);
                    self.param_uses.push(ParamUse {
                        name: name.to_string(),
                        site: self.site(el),
                        coord_param: None,
                    });
                }
                if t.counts_workdays() {
                    self.workday_uses.push(self.site(el));
                }
                t
            }
            Err(e) => {
                self.error(el, format!("bad expression in {subject}: {e}"));
                Template::parse("").expect("empty text has no expression")
            }
        }
    }

    pub fn reference(&mut self, kind: RefKind, name: &str, el: &Element) {
        self.refs.push(Ref {
            kind,
            name: name.to_string(),
            site: self.site(el),
        });
    }

    /// The required `db-link` attribute, recorded as a reference to check against the link files.
    pub fn db_link(&mut self, el: &Element, subject: &str) -> Option<String> {
        let link = self.required(el, subject, "db-link")?;
        self.reference(RefKind::DbLink, &link, el);
        Some(link)
    }
}

/// `lost-times="N"` on a workflow or action: `None` when absent; at least 1 (the loss that fails
/// the task).
fn lost_times(ctx: &mut Ctx<'_>, el: &Element, subject: &str) -> Option<u32> {
    ctx.optional(el, "lost-times")?;
    Some(ctx.number_attr(el, subject, "lost-times", 1u32, 1))
}

/// Environment names with a meaning to bash, `sh`, the dynamic loader, libc or a common
/// interpreter, and our own prefix. Tasks get parameters only as `AKKAFLOW_PARAM_<name>`, so these
/// are refused as a second line of defence and so that no one writes a workflow expecting them.
pub(crate) fn reserved_env_name(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "BASH_ENV",
        "ENV",
        "PATH",
        "IFS",
        "SHELLOPTS",
        "BASHOPTS",
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "PROMPT_COMMAND",
        "HOME",
        "CDPATH",
        "GLOBIGNORE",
        "SHELL",
        "TMPDIR",
        "TZ",
        "LANG",
        "LANGUAGE",
        "USER",
        "LOGNAME",
        "PWD",
        "OLDPWD",
        "BASH",
        "MAIL",
        "MAILPATH",
        "HISTFILE",
        "INPUTRC",
        "TERM",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "PYTHONPATH",
        "PYTHONSTARTUP",
        "PYTHONHOME",
        "PYTHONINSPECT",
        "RUBYOPT",
        "RUBYLIB",
        "GCONV_PATH",
        "GLIBC_TUNABLES",
        "MALLOC_CHECK_",
        "HOSTALIASES",
        "RESOLV_HOST_CONF",
        "NLSPATH",
        "LOCALDOMAIN",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "CLASSPATH",
        "http_proxy",
        "https_proxy",
        "ftp_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "FTP_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    ];
    const PREFIXES: &[&str] = &["LD_", "BASH_", "DYLD_", "LC_", "AKKAFLOW_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Attributes that mark an inline connection in the original's pre-db-link files.
const INLINE_CONNECTION: &[&str] = &["jdbc-url", "username", "password"];
const INLINE_DB_TYPES: &[&str] = &["MYSQL", "ORACLE", "HIVE", "POSTGRESQL", "SQLITE"];

/// Whether `el` carries the original's inline connection attributes (jdbc-url, username, password).
fn names_inline_connection(el: &Element) -> bool {
    INLINE_CONNECTION.iter().any(|a| el.attr(a).is_some())
}

/// Whether `el`, declared of type `ty` (upper case), is an inline connection: a database type
/// where a link is expected, or the connection attributes.
fn is_inline_connection(el: &Element, ty: &str) -> bool {
    INLINE_DB_TYPES.contains(&ty) || names_inline_connection(el)
}

/// Drops leading and trailing blank lines and the indentation common to all non-blank lines, so an
/// indented `#!/usr/bin/perl` starts at column 0 and Python's relative indentation survives.
pub(crate) fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = lines.iter().position(|l| !l.trim().is_empty()) else {
        return String::new();
    };
    let last = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .unwrap_or(first);
    let body = &lines[first..=last];
    let indent_of = |l: &str| l.len() - l.trim_start_matches([' ', '\t']).len();
    let mut common: Option<&str> = None;
    for l in body.iter().filter(|l| !l.trim().is_empty()) {
        let ws = &l[..indent_of(l)];
        common = Some(match common {
            None => ws,
            Some(c) => {
                let n = c
                    .bytes()
                    .zip(ws.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &c[..n]
            }
        });
    }
    let cut = common.map_or(0, str::len);
    body.iter()
        .map(|l| if l.trim().is_empty() { "" } else { &l[cut..] })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `100B`, `10K`, `2MB`, `1.5G` (base 1024) into bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        format!("bad size \"{t}\": expected a number and B, K, M, G or T (base 1024), for example 10K or 1.5G")
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" => 1024.0,
        "M" | "MB" => 1024.0 * 1024.0,
        "G" | "GB" => 1024.0 * 1024.0 * 1024.0,
        "T" | "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = (n * mult).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedent_cases() {
        let cases = [
            (
                "\n\n    #!/usr/bin/perl\n    print 1;\n    ",
                "#!/usr/bin/perl\nprint 1;",
            ),
            ("\n  if x:\n      y()\n\n  z()\n", "if x:\n    y()\n\nz()"),
            (" \n\t\techo a\n\t\t  echo b\n\t", "echo a\n  echo b"),
            ("echo one", "echo one"),
            ("   \n  \n", ""),
            ("\r\n    a\r\n    b\r\n", "a\nb"),
            ("\n    a\n  b\n", "  a\nb"),
        ];
        for (input, want) in cases {
            assert_eq!(dedent(input), want, "{input:?}");
        }
    }

    #[test]
    fn sizes_are_base_1024() {
        let cases = [
            ("0B", 0),
            ("100B", 100),
            ("100", 100),
            ("10K", 10240),
            ("10kb", 10240),
            ("2MB", 2 * 1024 * 1024),
            ("1.5G", 1_610_612_736),
            (" 1 T ", 1_099_511_627_776),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), Ok(want), "{input}");
        }
        for bad in ["", "K", "-1K", "12X", "1.2.3M", "1e3"] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.contains("bad size"), "{bad}: {err}");
        }
    }
}
