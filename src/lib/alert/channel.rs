//! Alert channels (`[[alerts.channels]]`): where an alert goes besides the workflow's mail receivers,
//! and the one [`Channel`] trait the outbox sends through. Each implementation formats one alert in
//! its service's own documented format and sends it; the outbox knows no service.
//!
//! | kind       | body                                                    | failure in a 200 answer |
//! |------------|---------------------------------------------------------|-------------------------|
//! | `dingtalk` | `{"msgtype":"markdown","markdown":{title,text}}`, `timestamp`+`sign` in the URL with a secret | `errcode` ≠ 0 |
//! | `wecom`    | `{"msgtype":"markdown","markdown":{content}}`           | `errcode` ≠ 0           |
//! | `feishu`   | `{"msg_type":"interactive","card":{..}}`, `timestamp`+`sign` in the body with a secret | `code` ≠ 0 |
//! | `slack`    | `{"text":..,"blocks":[section mrkdwn]}`                  | (non-2xx only)          |
//! | `webhook`  | our JSON: kind, workflow, instance_id, scheduled_for, status, subject, text, url | (non-2xx only) |
//! | `email`    | the mail, to the addresses in `url` (`mailto:a@x,b@y`)  | SMTP 5xx                |

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::http_post::{post_json, Answer};
use crate::error::{Error, Result};
use crate::store::AlertRow;

/// What a channel's `kinds` may name: the `event` of an alert.
pub const EVENTS: &[&str] = &[
    "failed",
    "killed",
    "succeeded",
    "timeout",
    "retry_failure",
    "recovery",
    "deadline",
    "late_done",
    "lost",
];

/// The events a channel gets when it names none: every one but a plain success.
fn default_events() -> Vec<String> {
    EVENTS
        .iter()
        .filter(|e| **e != "succeeded")
        .map(|e| e.to_string())
        .collect()
}

/// The service a channel talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Email,
    Webhook,
    Dingtalk,
    Wecom,
    Feishu,
    Slack,
}

/// `[[alerts.channels]]` as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelFile {
    pub name: String,
    pub kind: ChannelKind,
    /// A secret: the robot's URL is its credential.
    pub url: String,
    /// Signing key (DingTalk, Feishu).
    pub secret: Option<String>,
    pub kinds: Option<Vec<String>>,
    pub dirs: Option<Vec<String>>,
}

impl fmt::Debug for ChannelFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelFile")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &"<redacted>")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("kinds", &self.kinds)
            .field("dirs", &self.dirs)
            .finish()
    }
}

/// Which alerts a channel gets: nothing secret, so the engine can hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRoute {
    pub name: String,
    pub kind: ChannelKind,
    pub events: Vec<String>,
    /// Workflow dirs at or below which it gets alerts; empty: all.
    pub dirs: Vec<String>,
}

impl ChannelRoute {
    /// Whether an alert about `event` of a workflow in `dir` naming `named` channels goes here: a
    /// workflow that names channels gets exactly those; one that names none gets every channel
    /// whose dirs cover it. `kinds` filter both ways.
    pub fn takes(&self, event: &str, dir: &str, named: &[String]) -> bool {
        let addressed = if named.is_empty() {
            self.dirs.is_empty() || self.dirs.iter().any(|d| dir_covers(d, dir))
        } else {
            named.iter().any(|n| n == &self.name)
        };
        addressed && self.events.iter().any(|e| e == event)
    }
}

fn dir_covers(base: &str, dir: &str) -> bool {
    let base = base.trim_end_matches('/');
    base.is_empty()
        || dir == base
        || dir
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A resolved channel: its route and how to reach it. `Debug` never shows the URL or secret.
#[derive(Clone)]
pub struct ChannelSettings {
    pub route: ChannelRoute,
    pub url: String,
    pub secret: Option<String>,
}

impl fmt::Debug for ChannelSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelSettings")
            .field("route", &self.route)
            .field("url", &"<redacted>")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Checks `[[alerts.channels]]`: unique names, known kinds, an http(s) URL (or `mailto:` for email).
pub fn resolve_channels(files: Vec<ChannelFile>) -> Result<Vec<ChannelSettings>> {
    let mut out: Vec<ChannelSettings> = Vec::new();
    for f in files {
        let what = format!("[[alerts.channels]] `{}`", f.name);
        if f.name.trim().is_empty() || f.name.contains([',', ' ']) {
            return Err(Error::Config(format!(
                "[[alerts.channels]] name `{}` must be a non-empty word without commas or spaces",
                f.name
            )));
        }
        if out.iter().any(|c| c.route.name == f.name) {
            return Err(Error::Config(format!("{what} is defined twice")));
        }
        let url_ok = match f.kind {
            ChannelKind::Email => f.url.starts_with("mailto:"),
            _ => f.url.starts_with("http://") || f.url.starts_with("https://"),
        };
        if !url_ok {
            // the URL itself is a secret: say what is wrong without it
            return Err(Error::Config(match f.kind {
                ChannelKind::Email => format!("{what}: url must be `mailto:a@x.org,b@x.org`"),
                _ => format!("{what}: url must start with http:// or https://"),
            }));
        }
        if f.secret.is_some() && !matches!(f.kind, ChannelKind::Dingtalk | ChannelKind::Feishu) {
            return Err(Error::Config(format!(
                "{what}: only dingtalk and feishu channels are signed with a secret"
            )));
        }
        let events = match f.kinds {
            None => default_events(),
            Some(kinds) => {
                if let Some(bad) = kinds.iter().find(|k| !EVENTS.contains(&k.as_str())) {
                    return Err(Error::Config(format!(
                        "{what}: unknown kind `{bad}` (known: {})",
                        EVENTS.join(", ")
                    )));
                }
                kinds
            }
        };
        out.push(ChannelSettings {
            route: ChannelRoute {
                name: f.name,
                kind: f.kind,
                events,
                dirs: f.dirs.unwrap_or_default(),
            },
            url: f.url,
            secret: f.secret.filter(|s| !s.is_empty()),
        });
    }
    Ok(out)
}

/// Why a send did not go through.
pub enum SendError {
    /// The service refused this message for good, or it cannot be built: retrying cannot help.
    Permanent(String),
    /// Connection, TLS, timeout, a 5xx or a refusal that may pass: try again later.
    Transient(String),
}

/// One way out for an alert: formats it for its service and sends it.
#[async_trait]
pub trait Channel: Send + Sync {
    async fn send(&self, alert: &AlertRow) -> std::result::Result<(), SendError>;
}

/// What every chat message says, whatever its format.
pub(super) struct Brief<'a> {
    pub alert: &'a AlertRow,
    /// The instance's page in the UI, when `public_url` is set and the alert is about an instance.
    pub link: Option<String>,
}

impl Brief<'_> {
    /// `(label, value)` lines: workflow, slot, state, and the first error line when there is one.
    fn facts(&self) -> Vec<(&'static str, String)> {
        let a = self.alert;
        let mut facts = vec![("Workflow", a.workflow.clone().unwrap_or_default())];
        if let Some(slot) = a.scheduled_for {
            facts.push(("Slot", slot.format("%Y-%m-%d %H:%M UTC").to_string()));
        }
        facts.push(("State", a.state.clone()));
        if !a.body_text.is_empty() {
            facts.push(("Detail", a.body_text.clone()));
        }
        facts
    }

    /// Markdown as DingTalk, WeCom and Feishu cards read it (`**bold**`, `[text](url)`).
    fn markdown(&self) -> String {
        let mut s = format!("**{}**\n\n", self.alert.subject);
        for (k, v) in self.facts() {
            s.push_str(&format!("- {k}: {v}\n"));
        }
        if let Some(link) = &self.link {
            s.push_str(&format!("\n[Open the instance]({link})\n"));
        }
        s
    }

    /// Slack's mrkdwn (`*bold*`, `<url|text>`).
    fn mrkdwn(&self) -> String {
        let mut s = format!("*{}*\n", self.alert.subject);
        for (k, v) in self.facts() {
            s.push_str(&format!("{k}: {v}\n"));
        }
        if let Some(link) = &self.link {
            s.push_str(&format!("<{link}|Open the instance>\n"));
        }
        s
    }
}

/// A chat robot or webhook reached by one JSON POST.
pub struct RobotChannel {
    kind: ChannelKind,
    url: String,
    secret: Option<String>,
    public_url: Option<String>,
    timeout: Duration,
}

impl RobotChannel {
    pub fn new(settings: &ChannelSettings, public_url: Option<String>, timeout: Duration) -> Self {
        RobotChannel {
            kind: settings.route.kind,
            url: settings.url.clone(),
            secret: settings.secret.clone(),
            public_url,
            timeout,
        }
    }

    /// The URL and JSON body of one alert, signed at `now_ms` (milliseconds since the epoch).
    pub fn request(&self, alert: &AlertRow, now_ms: i64) -> (String, Value) {
        let brief = Brief {
            alert,
            link: instance_link(self.public_url.as_deref(), alert),
        };
        format_request(self.kind, &self.url, self.secret.as_deref(), &brief, now_ms)
    }
}

/// The UI page of the alert's instance under `public_url`.
pub fn instance_link(public_url: Option<&str>, alert: &AlertRow) -> Option<String> {
    let base = public_url?.trim_end_matches('/');
    Some(format!("{base}/ui/instances/{}", alert.instance_id?))
}

pub(super) fn format_request(
    kind: ChannelKind,
    url: &str,
    secret: Option<&str>,
    brief: &Brief<'_>,
    now_ms: i64,
) -> (String, Value) {
    let a = brief.alert;
    match kind {
        // open.dingtalk.com/document/robots/custom-robot-access, .../customize-robot-security-settings
        ChannelKind::Dingtalk => {
            let body = json!({
                "msgtype": "markdown",
                "markdown": { "title": a.subject, "text": brief.markdown() },
            });
            let url = match secret {
                Some(secret) => {
                    let sign = dingtalk_sign(secret, now_ms);
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}timestamp={now_ms}&sign={sign}")
                }
                None => url.to_string(),
            };
            (url, body)
        }
        // developer.work.weixin.qq.com/document/path/91770
        ChannelKind::Wecom => (
            url.to_string(),
            json!({ "msgtype": "markdown", "markdown": { "content": brief.markdown() } }),
        ),
        // open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
        ChannelKind::Feishu => {
            let mut body = json!({
                "msg_type": "interactive",
                "card": {
                    "header": {
                        "title": { "tag": "plain_text", "content": a.subject },
                        "template": if a.event == "late_done" || a.event == "recovery" || a.event == "succeeded" { "green" } else { "red" },
                    },
                    "elements": [ { "tag": "markdown", "content": brief.markdown() } ],
                },
            });
            if let Some(secret) = secret {
                let ts = now_ms / 1000;
                body["timestamp"] = json!(ts.to_string());
                body["sign"] = json!(feishu_sign(secret, ts));
            }
            (url.to_string(), body)
        }
        // api.slack.com/messaging/webhooks
        ChannelKind::Slack => (
            url.to_string(),
            json!({
                "text": a.subject,
                "blocks": [ { "type": "section", "text": { "type": "mrkdwn", "text": brief.mrkdwn() } } ],
            }),
        ),
        ChannelKind::Webhook | ChannelKind::Email => (
            url.to_string(),
            json!({
                "kind": a.event,
                "workflow": a.workflow,
                "instance_id": a.instance_id.map(|i| i.0),
                "scheduled_for": a.scheduled_for.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "status": a.state,
                "subject": a.subject,
                "text": a.body_text,
                "url": brief.link,
            }),
        ),
    }
}

/// DingTalk: HmacSHA256 keyed by the secret over `"{timestamp}\n{secret}"`, Base64, then URL-encoded.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Feishu: HmacSHA256 keyed by `"{timestamp}\n{secret}"` over an empty message, Base64.
pub fn feishu_sign(secret: &str, timestamp_s: i64) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{timestamp_s}\n{secret}").as_bytes())
        .expect("HMAC takes any key");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether an answer means delivered: a 2xx, and for the Chinese robots a zero error code (they
/// answer 200 with `errcode`/`code` when they refuse).
fn judge(kind: ChannelKind, answer: &Answer) -> std::result::Result<(), SendError> {
    let short: String = answer.body.chars().take(300).collect();
    if !(200..300).contains(&answer.status) {
        let msg = format!("HTTP {}: {short}", answer.status);
        // 429 and 5xx pass; another 4xx is this message or this channel's configuration
        return Err(if answer.status == 429 || answer.status >= 500 {
            SendError::Transient(msg)
        } else {
            SendError::Permanent(msg)
        });
    }
    let field = match kind {
        ChannelKind::Dingtalk | ChannelKind::Wecom => "errcode",
        ChannelKind::Feishu => "code",
        _ => return Ok(()),
    };
    let parsed: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    // Feishu's older answers say `StatusCode`
    let code = parsed
        .get(field)
        .or_else(|| parsed.get("StatusCode"))
        .and_then(Value::as_i64);
    match code {
        Some(0) => Ok(()),
        // a refusal in a 200 may be a rate limit or a clock skew: retry with back-off
        Some(c) => Err(SendError::Transient(format!("{field} {c}: {short}"))),
        None => Err(SendError::Transient(format!(
            "the answer has no {field}: {short}"
        ))),
    }
}

#[async_trait]
impl Channel for RobotChannel {
    async fn send(&self, alert: &AlertRow) -> std::result::Result<(), SendError> {
        let (url, body) = self.request(alert, chrono::Utc::now().timestamp_millis());
        let answer = post_json(&url, &body, self.timeout)
            .await
            .map_err(SendError::Transient)?;
        judge(self.kind, &answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_services_examples() {
        // computed with the Python of each service's document
        assert_eq!(
            dingtalk_sign("this is secret", 1_700_000_000_000),
            "sSFWELbV2YwjdDQhWZwTcWlX5BWUx5J6TPpsZmuPii0%3D"
        );
        assert_eq!(
            feishu_sign("this is secret", 1_700_000_000),
            "OfGzRzoUICBOoc8wVra1e4A1hPfbZ9zqXozA8CWVUuY="
        );
    }

    #[test]
    fn routes_follow_kinds_dirs_and_named_channels() {
        let r = ChannelRoute {
            name: "dw".into(),
            kind: ChannelKind::Slack,
            events: vec!["failed".into()],
            dirs: vec!["/dw".into()],
        };
        assert!(r.takes("failed", "/dw/ods", &[]));
        assert!(r.takes("failed", "/dw", &[]));
        assert!(!r.takes("failed", "/dwx", &[]));
        assert!(!r.takes("timeout", "/dw", &[]));
        assert!(r.takes("failed", "/ops", &["dw".into()]));
        assert!(!r.takes("failed", "/dw", &["other".into()]));
    }

    #[test]
    fn debug_hides_url_and_secret() {
        let f = ChannelFile {
            name: "x".into(),
            kind: ChannelKind::Dingtalk,
            url: "https://robot/send?access_token=tok-123".into(),
            secret: Some("SEC-456".into()),
            kinds: None,
            dirs: None,
        };
        let shown = format!("{f:?} {:?}", resolve_channels(vec![f.clone()]).unwrap());
        assert!(
            !shown.contains("tok-123") && !shown.contains("SEC-456"),
            "{shown}"
        );
    }
}
