//! The mails: subject, plain text and HTML composed from run facts, never from anything secret.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped};

use crate::state::{AlertKind, InstanceStatus};
use crate::store::{InstanceRow, NewAlert, TaskRow};

/// What a mail about an instance says: the instance, its nodes, who else is affected, the log tails.
pub struct InstanceFacts<'a> {
    pub instance: &'a InstanceRow,
    pub status: InstanceStatus,
    pub reason: &'a str,
    pub ended_at: DateTime<Utc>,
    /// In node order of the run (task id order).
    pub tasks: &'a [TaskRow],
    /// Workflows whose coordinators depend on this one.
    pub downstream: &'a [String],
    /// `(node, last lines)` of each failed node.
    pub log_tails: &'a [(String, Vec<String>)],
}

/// What a mail about one task attempt says.
pub struct TaskFacts<'a> {
    pub instance: &'a InstanceRow,
    pub task: &'a TaskRow,
    pub error: Option<&'a str>,
}

/// The completion mail of an instance whose final state is in the workflow's `mail-level`.
pub fn completion(f: &InstanceFacts<'_>, recipients: Vec<String>) -> NewAlert {
    let subject = format!(
        "[akkaflow] workflow {} {} (instance {})",
        f.instance.workflow, f.status, f.instance.id
    );
    instance_mail(AlertKind::Completion, subject, f, recipients)
}

/// The mail of a kill node: its message first, then the same facts as a completion mail.
pub fn kill_node(
    f: &InstanceFacts<'_>,
    node: &str,
    message: &str,
    recipients: Vec<String>,
) -> NewAlert {
    let what = if message.is_empty() {
        format!("reached kill node {node}")
    } else {
        message.to_string()
    };
    let subject = format!(
        "[akkaflow] workflow {} killed (instance {}): {}",
        f.instance.workflow,
        f.instance.id,
        one_line(&what)
    );
    instance_mail(AlertKind::Kill, subject, f, recipients)
}

/// A task failed an attempt and will be retried.
pub fn retry_failure(f: &TaskFacts<'_>, retry_in_secs: u64, recipients: Vec<String>) -> NewAlert {
    let t = f.task;
    let subject = format!(
        "[akkaflow] task {}.{} failed attempt {} of {}; retrying",
        f.instance.workflow, t.node, t.attempt, t.max_attempts
    );
    let line = format!(
        "Attempt {} of {} failed; the next attempt starts in {retry_in_secs}s.",
        t.attempt, t.max_attempts
    );
    task_mail(AlertKind::RetryFailure, subject, line, f, recipients)
}

/// A task succeeded after failed attempts that had been alerted.
pub fn recovery(f: &TaskFacts<'_>, recipients: Vec<String>) -> NewAlert {
    let t = f.task;
    let subject = format!(
        "[akkaflow] task {}.{} recovered on attempt {}",
        f.instance.workflow, t.node, t.attempt
    );
    let line = format!(
        "Attempt {} succeeded after {} failed attempt(s).",
        t.attempt,
        t.attempt - 1
    );
    task_mail(AlertKind::Recovery, subject, line, f, recipients)
}

/// A task attempt ran past its `timeout` and was killed.
pub fn timeout(f: &TaskFacts<'_>, after_secs: u64, recipients: Vec<String>) -> NewAlert {
    let t = f.task;
    let subject = format!(
        "[akkaflow] task {}.{} timed out after {after_secs}s (attempt {} of {})",
        f.instance.workflow, t.node, t.attempt, t.max_attempts
    );
    let line = format!(
        "Attempt {} of {} was killed after its timeout of {after_secs}s.",
        t.attempt, t.max_attempts
    );
    task_mail(AlertKind::Timeout, subject, line, f, recipients)
}

/// A task was lost with its worker `lost` times (its lost budget) and failed: it may be what kills
/// its worker (out of memory, `kill` of its parent).
pub fn lost(f: &TaskFacts<'_>, lost: i64, recipients: Vec<String>) -> NewAlert {
    let t = f.task;
    let subject = format!(
        "[akkaflow] task {}.{} failed: lost {lost} times with its worker",
        f.instance.workflow, t.node
    );
    let line = format!(
        "The task's worker stopped heartbeating during {lost} of its attempts, so it was not run \
         again: the task may be killing its worker (out of memory, a kill of its parent process). \
         Check the last attempts' logs and the workers' hosts, then retry the task."
    );
    task_mail(AlertKind::Lost, subject, line, f, recipients)
}

/// An `<email>` node's mail: the user's HTML as written, and a text part derived from it.
pub fn email_node(
    instance: &InstanceRow,
    task: &TaskRow,
    subject: Option<String>,
    body_html: &str,
    recipients: Vec<String>,
) -> NewAlert {
    let subject = subject
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("[akkaflow] {}.{}", instance.workflow, task.node));
    NewAlert {
        kind: AlertKind::Email,
        workflow: Some(instance.workflow.clone()),
        instance_id: Some(instance.id),
        task_id: Some(task.id),
        recipients,
        subject: one_line(&subject),
        body_text: html_to_text(body_html),
        body_html: body_html.to_string(),
        channel: None,
        event: "email".into(),
        state: task.status.as_str().into(),
        scheduled_for: Some(instance.scheduled_for),
    }
}

/// What a deadline alert is about: the slot, its deadline, and the run (if any) it concerns.
pub struct DeadlineFacts<'a> {
    pub workflow: &'a str,
    pub slot: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
    /// The deadline as written (`07:00`, `+2h`).
    pub deadline: &'a str,
    pub instance_id: Option<crate::state::InstanceId>,
    /// The run's state now (`running`, `failed`, `missing`, `succeeded`).
    pub state: &'a str,
}

/// A slot that had not succeeded by its deadline, and why.
pub fn deadline(f: &DeadlineFacts<'_>, why: &str, recipients: Vec<String>) -> NewAlert {
    let subject = format!(
        "[akkaflow] {} is late: the {} run had not succeeded by {}",
        f.workflow,
        stamp(Some(f.slot)),
        stamp(Some(f.deadline_at))
    );
    deadline_mail(AlertKind::Deadline, subject, why, f, recipients)
}

/// A slot that missed its deadline has succeeded since.
pub fn late_done(
    f: &DeadlineFacts<'_>,
    ended_at: DateTime<Utc>,
    recipients: Vec<String>,
) -> NewAlert {
    let subject = format!(
        "[akkaflow] {} was late, now done: the {} run succeeded at {}",
        f.workflow,
        stamp(Some(f.slot)),
        stamp(Some(ended_at))
    );
    let line = format!(
        "Succeeded at {}, {} after its deadline.",
        stamp(Some(ended_at)),
        duration(Some(f.deadline_at), Some(ended_at))
    );
    deadline_mail(AlertKind::LateDone, subject, &line, f, recipients)
}

fn deadline_mail(
    kind: AlertKind,
    subject: String,
    line: &str,
    f: &DeadlineFacts<'_>,
    recipients: Vec<String>,
) -> NewAlert {
    let facts = [
        ("Workflow", f.workflow.to_string()),
        ("Slot", stamp(Some(f.slot))),
        (
            "Deadline",
            format!("{} ({})", stamp(Some(f.deadline_at)), f.deadline),
        ),
        (
            "Instance",
            f.instance_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "none".into()),
        ),
    ];
    let (text, body) = line_and_facts(&subject, line, &facts);
    NewAlert {
        kind,
        workflow: Some(f.workflow.to_string()),
        instance_id: f.instance_id,
        task_id: None,
        recipients,
        subject: one_line(&subject),
        body_text: text,
        body_html: body,
        channel: None,
        event: kind.to_string(),
        state: f.state.to_string(),
        scheduled_for: Some(f.slot),
    }
}

fn instance_mail(
    kind: AlertKind,
    subject: String,
    f: &InstanceFacts<'_>,
    recipients: Vec<String>,
) -> NewAlert {
    let inst = f.instance;
    let facts = [
        ("Workflow", inst.workflow.clone()),
        ("Instance", inst.id.to_string()),
        ("Status", f.status.to_string()),
        ("Reason", f.reason.to_string()),
        ("Trigger", inst.trigger_kind.to_string()),
        ("Scheduled for", stamp(Some(inst.scheduled_for))),
        ("Started", stamp(inst.started_at)),
        ("Ended", stamp(Some(f.ended_at))),
        (
            "Duration",
            duration(inst.started_at.or(Some(inst.created_at)), Some(f.ended_at)),
        ),
        ("Parameters", inst.params.clone()),
    ];
    let downstream = if f.downstream.is_empty() {
        "none".to_string()
    } else {
        f.downstream.join(", ")
    };

    let mut text = String::new();
    for (k, v) in &facts {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!(
        "Affected downstream workflows: {downstream}\n\nNodes:\n"
    ));
    for t in f.tasks {
        text.push_str(&format!(
            "  {:<24} {:<10} {:<9} attempt {:<5} {}{}\n",
            t.node,
            t.kind,
            t.status.as_str(),
            attempts(t),
            duration(t.started_at, t.ended_at),
            t.error
                .as_deref()
                .map(|e| format!("  {}", one_line(e)))
                .unwrap_or_default()
        ));
    }
    for (node, lines) in f.log_tails {
        text.push_str(&format!("\nLast log lines of {node}:\n"));
        for l in lines {
            text.push_str(&format!("  {l}\n"));
        }
    }

    let body: Markup = html! {
        h2 { (subject) }
        table border="0" cellpadding="3" {
            @for (k, v) in &facts { tr { th align="left" { (k) } td { (v) } } }
            tr { th align="left" { "Affected downstream workflows" } td { (downstream) } }
        }
        h3 { "Nodes" }
        table border="1" cellpadding="3" cellspacing="0" {
            tr { th { "Node" } th { "Kind" } th { "Status" } th { "Attempt" } th { "Duration" } th { "Error" } }
            @for t in f.tasks {
                tr {
                    td { (t.node) } td { (t.kind) } td { (t.status.as_str()) }
                    td { (attempts(t)) }
                    td { (duration(t.started_at, t.ended_at)) }
                    td { (t.error.as_deref().unwrap_or("")) }
                }
            }
        }
        @for (node, lines) in f.log_tails {
            h3 { "Last log lines of " (node) }
            pre { @for l in lines { (l) "\n" } }
        }
    };
    NewAlert {
        kind,
        workflow: Some(inst.workflow.clone()),
        instance_id: Some(inst.id),
        task_id: None,
        recipients,
        subject,
        body_text: text,
        body_html: page(body),
        channel: None,
        event: match kind {
            AlertKind::Kill => "killed".into(),
            _ => f.status.to_string(),
        },
        state: f.status.to_string(),
        scheduled_for: Some(inst.scheduled_for),
    }
}

fn task_mail(
    kind: AlertKind,
    subject: String,
    line: String,
    f: &TaskFacts<'_>,
    recipients: Vec<String>,
) -> NewAlert {
    let (inst, t) = (f.instance, f.task);
    let facts = [
        ("Workflow", inst.workflow.clone()),
        ("Instance", inst.id.to_string()),
        ("Node", format!("{} ({})", t.node, t.kind)),
        ("Attempt", format!("{} of {}", t.attempt, t.max_attempts)),
        ("Worker", t.worker_id.clone().unwrap_or_default()),
        ("Started", stamp(t.started_at)),
        ("Error", f.error.unwrap_or("").to_string()),
    ];
    let (text, body) = line_and_facts(&subject, &line, &facts);
    NewAlert {
        kind,
        workflow: Some(inst.workflow.clone()),
        instance_id: Some(inst.id),
        task_id: Some(t.id),
        recipients,
        subject,
        body_text: text,
        body_html: body,
        channel: None,
        event: kind.to_string(),
        state: t.status.as_str().into(),
        scheduled_for: Some(inst.scheduled_for),
    }
}

/// A short mail: one line saying what happened, then a table of facts; as text and as HTML.
fn line_and_facts(subject: &str, line: &str, facts: &[(&str, String)]) -> (String, String) {
    let mut text = format!("{line}\n\n");
    for (k, v) in facts {
        text.push_str(&format!("{k}: {v}\n"));
    }
    let body = html! {
        h2 { (subject) }
        p { (line) }
        table border="0" cellpadding="3" {
            @for (k, v) in facts { tr { th align="left" { (k) } td { (v) } } }
        }
    };
    (text, page(body))
}

/// The copy of `alert` for one chat or webhook channel: the subject and one line of detail (the
/// first error line, or why), which each channel formats its own way when it sends.
pub fn for_channel(alert: &NewAlert, channel: &str, detail: &str) -> NewAlert {
    NewAlert {
        recipients: Vec::new(),
        body_text: first_line(detail),
        body_html: String::new(),
        channel: Some(channel.to_string()),
        ..alert.clone()
    }
}

/// The first non-empty line of `s`, trimmed.
pub fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// `2/3` for an action that ran; `-` for control nodes and nodes never reached.
fn attempts(t: &TaskRow) -> String {
    if t.attempt == 0 {
        "-".into()
    } else {
        format!("{}/{}", t.attempt, t.max_attempts)
    }
}

fn page(body: Markup) -> String {
    html! {
        (PreEscaped("<!DOCTYPE html>"))
        html { head { meta charset="utf-8"; } body style="font-family: sans-serif" { (body) } }
    }
    .into_string()
}

fn stamp(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn duration(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> String {
    match (from, to) {
        (Some(a), Some(b)) if b >= a => {
            let ms = (b - a).num_milliseconds();
            if ms < 60_000 {
                format!("{:.1}s", ms as f64 / 1000.0)
            } else {
                format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
            }
        }
        _ => "-".into(),
    }
}

/// Subjects are one line: a header cannot carry a newline.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A readable plain-text part for a user's HTML: tags dropped, block ends as line breaks, the five
/// basic entities decoded.
fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut tag = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match (in_tag, c) {
            (false, '<') => {
                in_tag = true;
                tag.clear();
            }
            (true, '>') => {
                in_tag = false;
                let closing = tag.starts_with('/');
                let name = tag
                    .trim_start_matches('/')
                    .split(|c: char| c.is_whitespace() || c == '/')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                match name.as_str() {
                    "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "table" => {
                        out.push('\n')
                    }
                    "td" | "th" if closing => out.push('\t'),
                    _ => {}
                }
            }
            (true, c) => tag.push(c),
            (false, c) => out.push(c),
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    let lines: Vec<&str> = decoded
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_readable_text() {
        let got = html_to_text("<p>Load of <b>2026-11-30</b> done</p><table><tr><td>rows</td><td>42 &amp; more</td></tr></table>");
        assert_eq!(got, "Load of 2026-11-30 done\nrows\t42 & more\n");
    }

    #[test]
    fn subjects_are_one_line() {
        assert_eq!(one_line("a\r\n  b\tc"), "a b c");
    }
}
