//! The typed definition model: what a workflow file means once parsed and validated.
//!
//! The engine reads only these types (serialised as JSON in `workflow.definition`); it never sees XML.
//! Text that may hold `${param:..}` or `${time..}` is a [`Template`], parsed once at load time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::template::Param;
use super::template::Template;

/// One workflow: the root `<work-flow>` element and everything below it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub name: String,
    pub creator: String,
    pub description: String,
    /// Logical folder for browsing (`/dw/ods`), not a file-system path.
    pub dir: String,
    pub mail_level: Vec<MailLevel>,
    pub mail_receivers: Vec<String>,
    /// `alert-channels`: the configured channels this workflow's alerts go to (empty: by their dirs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_channels: Vec<String>,
    pub instance_limit: u32,
    /// `retention-days`: how long ended instances are kept; `None`: the configured `retention_days`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// `lost-times`: how many lost attempts (worker gone) fail an action of this workflow; `None`
    /// leaves it to the configuration's `max_lost_attempts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_times: Option<u32>,
    /// `priority`: the default priority of its actions (higher runs first among ready tasks of the
    /// same queue and pool).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: i64,
    pub coordinator: Option<Coordinator>,
    /// Run-time parameters (ours: `<param-list>` directly under `<work-flow>`), with optional defaults.
    pub params: Vec<ParamDecl>,
    /// Nodes in file order; names are unique (checked by the validator).
    pub nodes: Vec<Node>,
}

impl Workflow {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn start(&self) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| matches!(n.kind, NodeKind::Start { .. }))
    }

    /// Every `${param:x}` the nodes use (coordinator parameters excluded: they are inputs), so a
    /// trigger can refuse an instance that would leave one undefined.
    pub fn param_refs(&self) -> std::collections::BTreeSet<String> {
        let mut templates: Vec<&Template> = Vec::new();
        for node in &self.nodes {
            match &node.kind {
                NodeKind::Kill { message } => templates.push(message),
                NodeKind::Action(a) => a.kind.templates(&mut templates),
                _ => {}
            }
        }
        templates
            .iter()
            .flat_map(|t| t.param_refs())
            .map(str::to_string)
            .collect()
    }

    /// The parameters a caller may give: declared (run-time, coordinator) or used (by a node, a
    /// default or a coordinator parameter).
    pub fn accepted_params(&self) -> std::collections::BTreeSet<String> {
        let mut accepted = self.param_refs();
        accepted.extend(self.params.iter().map(|p| p.name.clone()));
        // what defaults and coordinator parameters are built from is used too
        let defaults = self.params.iter().filter_map(|p| p.default.as_ref());
        let coordinator = self.coordinator.iter().flat_map(|c| &c.params);
        for t in defaults.chain(coordinator.clone().map(|p| &p.value)) {
            accepted.extend(t.param_refs().into_iter().map(str::to_string));
        }
        accepted.extend(coordinator.map(|p| p.name.clone()));
        accepted
    }

    /// Refuses parameters given at trigger or run that this workflow neither declares (its
    /// `<param-list>`, its coordinator's) nor uses (`${param:x}`): they would only reach the
    /// environment of its tasks, which is how `BASH_ENV=$(...)` became a shell on every worker.
    pub fn check_given_params<'a>(
        &self,
        given: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), String> {
        let accepted = self.accepted_params();
        let unknown: Vec<String> = given
            .into_iter()
            .filter(|n| !accepted.contains(*n))
            .map(|n| format!("`{n}`"))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let known: Vec<String> = accepted.iter().map(|n| format!("`{n}`")).collect();
        Err(format!(
            "workflow `{}` neither declares nor uses parameter(s) {}; it accepts {}",
            self.name,
            unknown.join(", "),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    }

    /// The `<sub-workflow>` nodes: (node name, the workflow it starts).
    pub fn sub_workflows(&self) -> Vec<(&str, &str)> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Action(a) => match &a.kind {
                    ActionKind::SubWorkflow { workflow, .. } => {
                        Some((n.name.as_str(), workflow.as_str()))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// Names of the nodes with an edge into `name`, in file order.
    pub fn predecessors(&self, name: &str) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| n.kind.successors().contains(&name))
            .map(|n| n.name.as_str())
            .collect()
    }
}

/// A final instance state that sends the completion mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailLevel {
    Succeeded,
    Failed,
    Killed,
}

/// A run-time parameter a manual `run` may supply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParamDecl {
    pub name: String,
    pub default: Option<Template>,
}

/// When a workflow fires on its own: cron, dependencies, both, or neither (manual only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coordinator {
    pub enabled: bool,
    /// Normalised five-field crontab string (natural forms and six-field strings already converted).
    pub cron: Option<String>,
    /// IANA zone name; `None` means the server's configured zone.
    pub timezone: Option<String>,
    /// Upstream workflow names that must succeed before this one fires.
    pub depends: Vec<String>,
    pub params: Vec<Param>,
    /// Window outside which the coordinator does not fire, in the coordinator's zone.
    pub start_time: Option<chrono::NaiveDateTime>,
    pub end_time: Option<chrono::NaiveDateTime>,
    /// `catchup`: which cron slots missed while no scheduler ran still fire.
    #[serde(default)]
    pub catchup: Catchup,
    /// `max-catchup`: with `catchup="all"`, at most this many missed slots fire (the newest).
    #[serde(default = "default_max_catchup")]
    pub max_catchup: u32,
    /// When a cron slot's run must have succeeded; missing it writes a `deadline` alert.
    #[serde(default)]
    pub deadline: Option<super::deadline::Deadline>,
    /// `calendar`: the business calendar whose business days its cron slots fall on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// That calendar's days as synced with this version (what `workday` counts in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_days: Option<super::calendar::Calendar>,
}

/// The default `max-catchup`.
pub const DEFAULT_MAX_CATCHUP: u32 = 100;

fn default_max_catchup() -> u32 {
    DEFAULT_MAX_CATCHUP
}

/// The missed-run policy of a coordinator (`catchup`): what fires for cron slots that came due while
/// no scheduler was running.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Catchup {
    /// The most recent missed slot fires, once.
    #[default]
    Latest,
    /// Every missed slot fires, oldest first, at most `max-catchup` (the newest ones).
    All,
    /// Missed slots are skipped: the next slot to come fires.
    None,
}

impl Catchup {
    pub fn as_str(self) -> &'static str {
        match self {
            Catchup::Latest => "latest",
            Catchup::All => "all",
            Catchup::None => "none",
        }
    }

    /// Reads `latest`, `all` or `none`.
    pub fn parse(text: &str) -> Option<Catchup> {
        match text {
            "latest" => Some(Catchup::Latest),
            "all" => Some(Catchup::All),
            "none" => Some(Catchup::None),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// 1-based line of the node's element in its file, for messages.
    pub line: u32,
    pub kind: NodeKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeKind {
    Start { to: String },
    End,
    Kill { message: Template },
    Fork { paths: Vec<String> },
    Join { to: String },
    Action(Box<Action>),
}

impl NodeKind {
    /// Every node this one may transition to (ok and error edges of an action included).
    pub fn successors(&self) -> Vec<&str> {
        match self {
            NodeKind::Start { to } | NodeKind::Join { to } => vec![to.as_str()],
            NodeKind::End | NodeKind::Kill { .. } => vec![],
            NodeKind::Fork { paths } => paths.iter().map(String::as_str).collect(),
            NodeKind::Action(a) => std::iter::once(a.ok.as_str())
                .chain(a.error.as_deref())
                .collect(),
        }
    }

    /// The stable kind name stored in `task.kind`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            NodeKind::Start { .. } => "start",
            NodeKind::End => "end",
            NodeKind::Kill { .. } => "kill",
            NodeKind::Fork { .. } => "fork",
            NodeKind::Join { .. } => "join",
            NodeKind::Action(a) => a.kind.kind_name(),
        }
    }
}

/// An `<action>`: one unit of work with its retry policy and transitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// Worker name or label this action is pinned to; `None` for any worker (`host="-1"`).
    pub host: Option<String>,
    pub retry_times: u32,
    /// `lost-times`: how many lost attempts (worker gone) fail this action; `None`: the workflow's,
    /// else the configuration's. Lost attempts never spend `retry_times`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_times: Option<u32>,
    pub interval_secs: u64,
    pub timeout_secs: Option<u64>,
    pub is_ignore: bool,
    pub description: String,
    pub ok: String,
    pub error: Option<String>,
    pub kind: ActionKind,
    /// The pool this action runs in: its `pool`, or (resolved by the validator) the pool of the db
    /// link it works on. `None`: no pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// `pool-slots`: how many of the pool's slots one attempt takes (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub pool_slots: u32,
    /// `priority`, overriding the workflow's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Action {
    /// The db links this action works on, in document order (a transfer's source, then its target).
    pub fn db_links(&self) -> Vec<&str> {
        fn source(s: &DataSource) -> Option<&str> {
            match s {
                DataSource::Sql { db_link, .. } => Some(db_link),
                _ => None,
            }
        }
        match &self.kind {
            ActionKind::Sql { db_link, .. } => vec![db_link],
            ActionKind::DataMonitor(m) => std::iter::once(&m.source)
                .chain(&m.min)
                .chain(&m.max)
                .filter_map(source)
                .collect(),
            ActionKind::Transfer(Transfer::Copy { source, target }) => {
                let mut out = vec![];
                if let TransferSource::Db { db_link, .. } = source {
                    out.push(db_link.as_str());
                }
                if let TransferTarget::Db { db_link, .. } = target {
                    out.push(db_link.as_str());
                }
                out
            }
            ActionKind::Metadata(m) => vec![m.db_link.as_str()],
            _ => vec![],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActionKind {
    /// Inline script; `code` already has leading blank lines and common indentation removed.
    Script {
        code: Template,
        param_line: Option<Template>,
        /// Paths resolved against the workflow file's directory at load time.
        attachments: Vec<String>,
    },
    Shell {
        command: Template,
    },
    /// A script file that ships beside the workflow file; `command` is resolved at run time in the
    /// workflow file's directory (`dir_of_file`).
    FileExecutor {
        command: Template,
        dir_of_file: String,
    },
    Sql {
        db_link: String,
        sql: Template,
    },
    FileMonitor(FileMonitor),
    DataMonitor(DataMonitor),
    Transfer(Transfer),
    Email {
        subject: Option<Template>,
        body_html: Template,
    },
    Metadata(Metadata),
    SubWorkflow {
        workflow: String,
        wait: bool,
    },
}

impl ActionKind {
    /// Every template this action renders.
    fn templates<'a>(&'a self, out: &mut Vec<&'a Template>) {
        fn source<'a>(s: &'a DataSource, out: &mut Vec<&'a Template>) {
            match s {
                DataSource::Sql { query, .. } => out.push(query),
                DataSource::Command { command } => out.push(command),
                DataSource::Num { value } => out.push(value),
            }
        }
        match self {
            ActionKind::Script {
                code, param_line, ..
            } => out.extend(std::iter::once(code).chain(param_line)),
            ActionKind::Shell { command } | ActionKind::FileExecutor { command, .. } => {
                out.push(command)
            }
            ActionKind::Sql { sql, .. } => out.push(sql),
            ActionKind::FileMonitor(m) => {
                out.extend([&m.dir, &m.pattern].into_iter().chain(&m.warn_msg))
            }
            ActionKind::DataMonitor(m) => {
                source(&m.source, out);
                m.min.iter().chain(&m.max).for_each(|s| source(s, out));
                out.extend(m.warn_msg.iter().chain(&m.time_mark));
            }
            ActionKind::Transfer(Transfer::Script { code }) => out.push(code),
            ActionKind::Transfer(Transfer::Copy { source, target }) => {
                match source {
                    TransferSource::Db { query, .. } => out.push(query),
                    TransferSource::File { path, .. } => out.push(path),
                }
                match target {
                    TransferTarget::Db {
                        table, pre, after, ..
                    } => out.extend(std::iter::once(table).chain(pre).chain(after)),
                    TransferTarget::File { path, .. } => out.push(path),
                }
            }
            ActionKind::Email { subject, body_html } => {
                out.extend(subject.iter().chain(std::iter::once(body_html)))
            }
            ActionKind::Metadata(m) => out.extend(
                std::iter::once(&m.table)
                    .chain(&m.from)
                    .chain(&m.table_comment)
                    .chain(m.column_comments.values()),
            ),
            ActionKind::SubWorkflow { .. } => {}
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            ActionKind::Script { .. } => "script",
            ActionKind::Shell { .. } => "shell",
            ActionKind::FileExecutor { .. } => "file-executor",
            ActionKind::Sql { .. } => "sql",
            ActionKind::FileMonitor(_) => "file-monitor",
            ActionKind::DataMonitor(_) => "data-monitor",
            ActionKind::Transfer(_) => "transfer",
            ActionKind::Email { .. } => "email",
            ActionKind::Metadata(_) => "metadata",
            ActionKind::SubWorkflow { .. } => "sub-workflow",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileMonitor {
    pub file_link: String,
    /// Directory part and glob part of the watched path (legacy `dir` attribute joined in).
    pub dir: Template,
    pub pattern: Template,
    pub min_num: u32,
    pub min_each_size_bytes: u64,
    pub warn_msg: Option<Template>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataMonitor {
    pub source: DataSource,
    pub min: Option<DataSource>,
    pub max: Option<DataSource>,
    pub warn_msg: Option<Template>,
    /// The original's bookkeeping attributes, recorded with each check in `data_monitor`.
    pub category: Option<String>,
    pub source_name: Option<String>,
    pub time_mark: Option<Template>,
    /// `is-exceed-error="false"` turns a bound violation into a warning (default true).
    pub exceed_is_error: bool,
}

/// Where a data-monitor number comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DataSource {
    Sql { db_link: String, query: Template },
    Command { command: Template },
    Num { value: Template },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Transfer {
    Copy {
        source: TransferSource,
        target: TransferTarget,
    },
    Script {
        code: Template,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransferSource {
    /// `query` is a table name or a SELECT.
    Db { db_link: String, query: Template },
    File {
        file_link: String,
        path: Template,
        delimiter: String,
        /// `header="true"`: the first record holds the column names.
        #[serde(default)]
        header: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransferTarget {
    Db {
        db_link: String,
        table: Template,
        pre_truncate: bool,
        task_num: u32,
        pre: Option<Template>,
        after: Option<Template>,
    },
    File {
        file_link: String,
        path: Template,
        delimiter: String,
        /// `header="true"`: a first line with the column names.
        #[serde(default)]
        header: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub db_link: String,
    pub table: Template,
    /// Lineage source table whose comments fill in what is not given here.
    pub from: Option<Template>,
    pub table_comment: Option<Template>,
    pub column_comments: BTreeMap<String, Template>,
}

/// `db_links.xml`: a named database connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbLink {
    pub name: String,
    pub kind: DbKind,
    /// As written: a JDBC URL or a plain sqlx URL.
    pub url: String,
    pub username: String,
    pub password: String,
    pub properties: Vec<(String, String)>,
    /// `pool`: the pool of every sql, data-monitor, transfer and metadata action on this link that
    /// names none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

/// `pools.xml`: a named limit on how many slots its running tasks may take, fleet-wide.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    pub slots: u32,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DbKind {
    Mysql,
    Postgresql,
    Sqlite,
    Oracle,
    Hive,
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Mysql => "MYSQL",
            DbKind::Postgresql => "POSTGRESQL",
            DbKind::Sqlite => "SQLITE",
            DbKind::Oracle => "ORACLE",
            DbKind::Hive => "HIVE",
        }
    }
}

impl std::str::FromStr for DbKind {
    type Err = String;

    /// The spelling `as_str` writes (case-insensitive, as in `db_links.xml`).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "MYSQL" => Ok(DbKind::Mysql),
            "POSTGRESQL" => Ok(DbKind::Postgresql),
            "SQLITE" => Ok(DbKind::Sqlite),
            "ORACLE" => Ok(DbKind::Oracle),
            "HIVE" => Ok(DbKind::Hive),
            _ => Err(s.to_string()),
        }
    }
}

/// `file_links.xml`: a named file system.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileLink {
    pub name: String,
    pub kind: FileKind,
    pub host: String,
    pub port: i32,
    pub username: String,
    pub password: String,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FileKind {
    Local,
    Sftp,
    Hdfs,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Local => "LOCAL",
            FileKind::Sftp => "SFTP",
            FileKind::Hdfs => "HDFS",
        }
    }
}

impl std::str::FromStr for FileKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "LOCAL" => Ok(FileKind::Local),
            "SFTP" => Ok(FileKind::Sftp),
            "HDFS" => Ok(FileKind::Hdfs),
            _ => Err(s.to_string()),
        }
    }
}
