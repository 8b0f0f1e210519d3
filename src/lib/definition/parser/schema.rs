//! Every element of the file format, with the attributes and child elements the parser accepts.
//!
//! Owns: the one list of names. The parser checks elements against these entries (an unknown
//! attribute or child is a warning naming it), and `docs/FORMAT.md` must document every entry: a
//! test reads the reference and fails when an element or attribute here is missing from it, so a
//! new element cannot be added without its documentation.
//!
//! `doc` is the heading of the reference's section that documents the element; elements that share
//! a section (a transfer's `<source>` and `<target>`) name the same heading.

/// One element in one place of the format.
#[derive(Clone, Copy, Debug)]
pub struct ElementSpec {
    /// The element's name as written.
    pub name: &'static str,
    /// The heading (in `docs/FORMAT.md`) of the section documenting it.
    pub doc: &'static str,
    pub attrs: &'static [&'static str],
    pub children: &'static [&'static str],
}

macro_rules! schema {
    ($($id:ident = $name:literal in $doc:literal, attrs [$($a:literal),* $(,)?], children [$($c:literal),* $(,)?];)+) => {
        $(
            // a few entries are for the reference only: legacy elements the parser names in a
            // refusal or a warning rather than checks
            #[allow(dead_code)]
            pub(crate) const $id: ElementSpec = ElementSpec {
                name: $name,
                doc: $doc,
                attrs: &[$($a),*],
                children: &[$($c),*],
            };
        )+
        /// Every element of the format (what the reference must document).
        pub const ALL: &[ElementSpec] = &[$($id),+];
    };
}

schema! {
    // a workflow file
    WORKFLOW = "work-flow" in "`<work-flow>`",
        attrs ["name", "creator", "desc", "dir", "mail-level", "mail-receivers", "alert-channels", "instance-limit", "retention-days", "create-time", "lost-times",
               "priority"],
        children ["coordinator", "param-list", "start", "end", "kill", "fork", "join", "action"];
    WORKFLOW_PARAM_LIST = "param-list" in "`<param-list>` of `<work-flow>`", attrs [], children ["param"];
    WORKFLOW_PARAM = "param" in "`<param-list>` of `<work-flow>`", attrs ["name", "value"], children [];
    COORDINATOR = "coordinator" in "`<coordinator>` in `<work-flow>`",
        attrs ["is-enabled", "start-time", "end-time", "timezone", "catchup", "max-catchup", "deadline", "calendar"],
        children ["depend-list", "param-list"];
    DEPEND_LIST = "depend-list" in "`<coordinator>` in `<work-flow>`", attrs ["cron"], children ["workflow"];
    DEPEND_WORKFLOW = "workflow" in "`<coordinator>` in `<work-flow>`", attrs ["name"], children [];
    COORDINATOR_PARAM_LIST = "param-list" in "`<param-list>` of `<coordinator>`", attrs [], children ["param"];
    COORDINATOR_PARAM = "param" in "`<param-list>` of `<coordinator>`", attrs ["name", "value"], children [];
    START = "start" in "Control nodes", attrs ["name", "to"], children [];
    END = "end" in "Control nodes", attrs ["name"], children [];
    KILL = "kill" in "Control nodes", attrs ["name"], children ["message"];
    KILL_MESSAGE = "message" in "Control nodes", attrs [], children [];
    FORK = "fork" in "Control nodes", attrs ["name"], children ["path"];
    FORK_PATH = "path" in "Control nodes", attrs ["to"], children [];
    JOIN = "join" in "Control nodes", attrs ["name", "to"], children [];
    ACTION = "action" in "`<action>`",
        attrs ["name", "host", "retry-times", "lost-times", "interval", "timeout", "is-ignore", "desc", "pool", "pool-slots", "priority"],
        children ["ok", "error", "script", "shell", "file-executor", "sql", "file-monitor",
                  "file-watcher", "data-monitor", "transfer", "email", "metadata", "sub-workflow"];
    OK = "ok" in "`<action>`", attrs ["to"], children [];
    ERROR = "error" in "`<action>`", attrs ["to"], children [];
    // action kinds
    SCRIPT = "script" in "`<script>`", attrs [], children ["code", "param-line", "attach-list"];
    SCRIPT_CODE = "code" in "`<script>`", attrs [], children [];
    PARAM_LINE = "param-line" in "`<script>`", attrs [], children [];
    ATTACH_LIST = "attach-list" in "`<script>`", attrs [], children ["file"];
    ATTACH_FILE = "file" in "`<script>`", attrs [], children [];
    SHELL = "shell" in "`<shell>` and `<file-executor>`", attrs [], children ["command"];
    FILE_EXECUTOR = "file-executor" in "`<shell>` and `<file-executor>`", attrs [], children ["command"];
    COMMAND = "command" in "`<shell>` and `<file-executor>`", attrs [], children [];
    SQL = "sql" in "`<sql>`", attrs ["db-link"], children [];
    FILE_MONITOR = "file-monitor" in "`<file-monitor>`", attrs [], children ["file", "warn-msg", "size-warn-message"];
    FILE_WATCHER = "file-watcher" in "`<file-monitor>`", attrs [], children ["file", "warn-msg", "size-warn-message"];
    MONITOR_FILE = "file" in "`<file-monitor>`", attrs ["file-link", "min-num", "min-each-size", "dir"], children [];
    SIZE_WARN_MESSAGE = "size-warn-message" in "`<file-monitor>`", attrs [], children [];
    WARN_MSG = "warn-msg" in "`<file-monitor>`", attrs [], children [];
    DATA_MONITOR = "data-monitor" in "`<data-monitor>`",
        attrs ["category", "source-name", "is-saved", "is-exceed-error", "time-mark"],
        children ["source", "min", "max", "warn-msg", "min-threshold", "max-threshold"];
    DATA_SOURCE = "source" in "`<data-monitor>`", attrs ["type", "db-link"], children ["code"];
    DATA_MIN = "min" in "`<data-monitor>`", attrs ["type", "db-link"], children ["code"];
    DATA_MAX = "max" in "`<data-monitor>`", attrs ["type", "db-link"], children ["code"];
    MIN_THRESHOLD = "min-threshold" in "`<data-monitor>`", attrs [], children [];
    MAX_THRESHOLD = "max-threshold" in "`<data-monitor>`", attrs [], children [];
    DATA_CODE = "code" in "`<data-monitor>`", attrs [], children [];
    TRANSFER = "transfer" in "`<transfer>`", attrs [], children ["source", "target", "script"];
    TRANSFER_DB_SOURCE = "source" in "`<transfer>`", attrs ["type", "db-link"], children [];
    TRANSFER_FILE_SOURCE = "source" in "`<transfer>`", attrs ["type", "path", "delimited", "file-link", "header"], children [];
    TRANSFER_DB_TARGET = "target" in "`<transfer>`",
        attrs ["type", "db-link", "table", "is-pre-truncate", "task-num"],
        children ["pre", "after", "pre-sql", "after-sql"];
    TRANSFER_FILE_TARGET = "target" in "`<transfer>`", attrs ["type", "path", "delimited", "file-link", "header"], children [];
    TRANSFER_PRE = "pre" in "`<transfer>`", attrs [], children [];
    TRANSFER_AFTER = "after" in "`<transfer>`", attrs [], children [];
    TRANSFER_PRE_SQL = "pre-sql" in "`<transfer>`", attrs [], children [];
    TRANSFER_AFTER_SQL = "after-sql" in "`<transfer>`", attrs [], children [];
    TRANSFER_SCRIPT = "script" in "`<transfer>`", attrs [], children ["code"];
    TRANSFER_CODE = "code" in "`<transfer>`", attrs [], children [];
    EMAIL = "email" in "`<email>`", attrs ["subject"], children [];
    METADATA = "metadata" in "`<metadata>`", attrs ["table", "db-link", "from"], children ["table-comment", "column-comment"];
    TABLE_COMMENT = "table-comment" in "`<metadata>`", attrs [], children [];
    COLUMN_COMMENT = "column-comment" in "`<metadata>`", attrs ["name"], children [];
    SUB_WORKFLOW = "sub-workflow" in "`<sub-workflow>`", attrs ["name", "wait"], children [];
    // a legacy coordinator file
    LEGACY_COORDINATOR = "coordinator" in "Legacy coordinator files",
        attrs ["name", "is-enabled", "dir", "desc", "start", "end", "start-time", "end-time", "timezone"],
        children ["trigger", "depend-list", "trigger-list", "workflow-list", "param-list"];
    LEGACY_TRIGGER = "trigger" in "Legacy coordinator files", attrs [], children ["cron", "depend-list"];
    LEGACY_CRON = "cron" in "Legacy coordinator files", attrs ["config"], children [];
    LEGACY_DEPEND_LIST = "depend-list" in "Legacy coordinator files", attrs ["cron"], children ["workflow", "depend"];
    LEGACY_DEPEND = "depend" in "Legacy coordinator files", attrs ["wf"], children [];
    LEGACY_DEPEND_WORKFLOW = "workflow" in "Legacy coordinator files", attrs ["name"], children [];
    LEGACY_TRIGGER_LIST = "trigger-list" in "Legacy coordinator files", attrs [], children ["workflow"];
    LEGACY_TRIGGER_WORKFLOW = "workflow" in "Legacy coordinator files", attrs ["name"], children [];
    LEGACY_WORKFLOW_LIST = "workflow-list" in "Legacy coordinator files", attrs [], children ["workflow"];
    LEGACY_LISTED_WORKFLOW = "workflow" in "Legacy coordinator files", attrs ["path"], children [];
    // link files
    DB_LINKS = "db-links" in "`db_links.xml`", attrs [], children ["link"];
    DB_LINK = "link" in "`db_links.xml`", attrs ["name", "type", "jdbc-url", "username", "password", "desc", "pool"], children ["properties"];
    DB_LINK_PROPERTIES = "properties" in "`db_links.xml`", attrs [], children ["property"];
    DB_LINK_PROPERTY = "property" in "`db_links.xml`", attrs ["name"], children [];
    FILE_LINKS = "file-links" in "`file_links.xml`", attrs [], children ["link"];
    FILE_LINK = "link" in "`file_links.xml`", attrs ["name", "type", "host", "port", "username", "password", "desc"], children [];
    // business calendars
    CALENDARS = "calendars" in "`calendars.xml`", attrs [], children ["calendar"];
    CALENDAR = "calendar" in "`calendars.xml`", attrs ["name", "weekend"], children ["holiday", "workday"];
    HOLIDAY = "holiday" in "`calendars.xml`", attrs ["date", "from", "to"], children [];
    WORKDAY = "workday" in "`calendars.xml`", attrs ["date"], children [];
    // the pools file
    POOLS = "pools" in "`pools.xml`", attrs [], children ["pool"];
    POOL = "pool" in "`pools.xml`", attrs ["name", "slots", "desc"], children [];
}

/// The kind elements of an action (its children other than the transitions).
pub(crate) fn action_kinds() -> impl Iterator<Item = &'static str> {
    ACTION
        .children
        .iter()
        .copied()
        .filter(|c| !matches!(*c, "ok" | "error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sections of the reference: heading line → the text up to the next heading of the same
    /// or a higher level.
    fn sections(doc: &str) -> Vec<(String, String)> {
        let lines: Vec<&str> = doc.lines().collect();
        let level = |l: &str| l.chars().take_while(|c| *c == '#').count();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            let n = level(l);
            if n == 0 || !l[n..].starts_with(' ') {
                continue;
            }
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|m| {
                    let k = level(m);
                    k == 0 || k > n || !m[k..].starts_with(' ')
                })
                .copied()
                .collect();
            out.push((l[n..].trim().to_string(), body.join("\n")));
        }
        out
    }

    #[test]
    fn every_element_and_attribute_is_documented_in_format_md() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md");
        let doc = std::fs::read_to_string(path).expect("docs/FORMAT.md exists");
        let sections = sections(&doc);
        let mut missing = Vec::new();
        for spec in ALL {
            let Some((heading, body)) = sections.iter().find(|(h, _)| h == spec.doc) else {
                missing.push(format!("<{}>: no section headed `{}`", spec.name, spec.doc));
                continue;
            };
            let named = format!("`<{}", spec.name);
            if !heading.contains(&named) && !body.contains(&named) {
                missing.push(format!(
                    "<{}>: not named in section `{}`",
                    spec.name, spec.doc
                ));
            }
            for a in spec.attrs {
                if !body.contains(&format!("`{a}`")) {
                    missing.push(format!(
                        "attribute `{a}` of <{}>: not in section `{}`",
                        spec.name, spec.doc
                    ));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "docs/FORMAT.md does not document:\n  {}",
            missing.join("\n  ")
        );
    }

    #[test]
    fn every_child_element_has_an_entry() {
        for spec in ALL {
            for c in spec.children {
                assert!(
                    ALL.iter().any(|s| s.name == *c),
                    "<{}> lists child <{c}>, which has no entry of its own",
                    spec.name
                );
            }
        }
    }
}
