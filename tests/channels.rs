//! Alert channels end to end: real scheduler and worker processes on each backend, chat robots and
//! webhooks played by an HTTP server on loopback that records every request (and can refuse the
//! first ones), checked by what it received: each service's body and signature, routing by
//! `kinds`, `dirs` and `alert-channels`, exactly-once delivery after an outage, and no secret in a
//! log or an API answer.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use akkaflow::state::{AlertStatus, InstanceStatus};
use akkaflow::store::{AlertRow, Store};
use common::{ended, exec_sql, instances_of, set_next_fire_at, trigger, wait_for, Db, Env};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const LONG: Duration = Duration::from_secs(60);

/// One request the sink received.
#[derive(Clone, Debug)]
struct Received {
    /// Path and query, as sent.
    target: String,
    body: Value,
    /// The status it was answered with.
    answered: u16,
}

/// An HTTP/1.1 server on loopback that records each POST and answers from a script: the queued
/// `(status, body)` first, then 200 with `ok_body`.
#[derive(Clone)]
struct HttpSink {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
}

impl HttpSink {
    async fn start(ok_body: &'static str) -> HttpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = HttpSink {
            port: listener.local_addr().unwrap().port(),
            got: Arc::default(),
            script: Arc::default(),
        };
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = s.serve(stream, ok_body).await;
                });
            }
        });
        sink
    }

    async fn serve(&self, stream: tokio::net::TcpStream, ok_body: &str) -> std::io::Result<()> {
        let mut r = BufReader::new(stream);
        let mut first = String::new();
        r.read_line(&mut first).await?;
        let target = first.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).await?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).await?;
        let (status, answer) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((200, ok_body.to_string()));
        self.got.lock().unwrap().push(Received {
            target,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            answered: status,
        });
        let reply = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
        r.get_mut().write_all(reply.as_bytes()).await?;
        r.get_mut().shutdown().await
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn refuse_first(&self, answers: &[(u16, &str)]) {
        let mut s = self.script.lock().unwrap();
        s.extend(answers.iter().map(|(c, b)| (*c, b.to_string())));
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Requests to paths starting with `prefix`.
    fn to(&self, prefix: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.target.starts_with(prefix))
            .collect()
    }
}

fn fleet(env: &mut Env) {
    env.spawn("scheduler", &["scheduler"]);
    env.spawn("worker", &["worker", "--slots", "4", "--name", "w1"]);
}

/// Quick delivery retries, `public_url`, and the given `[[alerts.channels]]`.
fn channels(env: &Env, tables: &str) {
    env.config(&format!(
        "public_url = \"https://flow.example.com/\"\n\
         [alerts]\ndeliver_interval_secs = 0.2\nbackoff_initial_secs = 0.3\nbackoff_max_secs = 0.6\n{tables}"
    ));
}

fn failing(name: &str, dir: &str, extra: &str) -> String {
    format!(
        r#"<work-flow name="{name}" dir="{dir}" {extra}>
  <start name="start" to="load"/>
  <action name="load"><shell><command>echo "table ods.orders is locked" >&amp;2; exit 3</command></shell>
    <ok to="end"/></action>
  <end name="end"/>
</work-flow>"#
    )
}

async fn alerts(store: &dyn Store) -> Vec<AlertRow> {
    let mut all = store.alert_list(100).await.expect("alert list");
    all.reverse();
    all
}

/// Waits until every alert row is sent or failed; returns them.
async fn settled(store: &dyn Store, n: usize) -> Vec<AlertRow> {
    wait_for(LONG, &format!("{n} settled alert(s)"), || async {
        let rows = alerts(store).await;
        if rows.len() >= n && rows.iter().all(|r| r.status != AlertStatus::Pending) {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await
}

/// Moves how far a coordinator's deadlines are checked, as a master that lost its last checks
/// would have left it.
async fn set_checked_through(env: &Env, workflow: &str, at: chrono::DateTime<chrono::Utc>) {
    let at = match env.db {
        Db::Sqlite => at.format("'%Y-%m-%d %H:%M:%S%.3f'").to_string(),
        Db::Mysql => at.format("'%Y-%m-%d %H:%M:%S'").to_string(),
        Db::Postgres => at.format("'%Y-%m-%d %H:%M:%S+00'").to_string(),
    };
    exec_sql(
        env,
        &format!(
            "UPDATE coordinator_deadline SET checked_through = {at} WHERE workflow = '{workflow}'"
        ),
    )
    .await;
}

fn query_param(target: &str, key: &str) -> String {
    let q = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {target}"))
        .to_string()
}

const TOKEN: &str = "tok-8f3a1c";
const DING_SECRET: &str = "SECd1ng7a1k";
const FEISHU_SECRET: &str = "fe1shu-s3cret";

mod cases {
    use super::*;

    pub async fn each_channel_gets_its_own_format_and_signature(env: &mut Env) {
        let sink = HttpSink::start(r#"{"errcode":0,"code":0,"errmsg":"ok"}"#).await;
        channels(
            env,
            &format!(
                "[[alerts.channels]]\nname = \"ding\"\nkind = \"dingtalk\"\nurl = \"{}\"\nsecret = \"{DING_SECRET}\"\n\
                 [[alerts.channels]]\nname = \"wecom\"\nkind = \"wecom\"\nurl = \"{}\"\n\
                 [[alerts.channels]]\nname = \"feishu\"\nkind = \"feishu\"\nurl = \"{}\"\nsecret = \"{FEISHU_SECRET}\"\n\
                 [[alerts.channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"{}\"\n\
                 [[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
                sink.url(&format!("/ding/send?access_token={TOKEN}")),
                sink.url(&format!("/wecom/send?key={TOKEN}")),
                sink.url(&format!("/feishu/hook/{TOKEN}")),
                sink.url(&format!("/slack/{TOKEN}")),
                sink.url(&format!("/hook/{TOKEN}")),
            ),
        );
        env.sync(&[("orders.xml", &failing("orders", "/dw/ods", ""))]);
        fleet(env);
        let store = env.store().await;
        let id = trigger(env, "orders");
        let inst = ended(&*store, id).await;
        assert_eq!(inst.status, InstanceStatus::Failed);
        let rows = settled(&*store, 5).await;
        assert_eq!(rows.len(), 5, "one row per channel, no mail: {rows:?}");
        assert!(
            rows.iter().all(|r| r.status == AlertStatus::Sent),
            "{rows:?}"
        );
        let subject = format!("[akkaflow] workflow orders failed (instance {id})");
        let link = format!("https://flow.example.com/ui/instances/{id}");
        let slot = inst.scheduled_for.format("%Y-%m-%d %H:%M UTC").to_string();
        let markdown = format!(
            "**{subject}**\n\n- Workflow: orders\n- Slot: {slot}\n- State: failed\n- Detail: load: exited with code 3\n\n[Open the instance]({link})\n"
        );

        let ding = sink.to("/ding/");
        assert_eq!(ding.len(), 1, "{ding:?}");
        assert_eq!(
            ding[0].body,
            serde_json::json!({"msgtype": "markdown", "markdown": {"title": subject, "text": markdown}})
        );
        let ts: i64 = query_param(&ding[0].target, "timestamp").parse().unwrap();
        assert_eq!(query_param(&ding[0].target, "access_token"), TOKEN);
        assert_eq!(
            query_param(&ding[0].target, "sign"),
            akkaflow::alert::dingtalk_sign(DING_SECRET, ts)
        );
        assert!((chrono::Utc::now().timestamp_millis() - ts).abs() < 120_000);

        let wecom = sink.to("/wecom/");
        assert_eq!(wecom.len(), 1);
        assert_eq!(
            wecom[0].body,
            serde_json::json!({"msgtype": "markdown", "markdown": {"content": markdown}})
        );

        let feishu = sink.to("/feishu/");
        assert_eq!(feishu.len(), 1);
        let f = &feishu[0].body;
        assert_eq!(f["msg_type"], "interactive");
        assert_eq!(f["card"]["header"]["title"]["content"], subject.as_str());
        assert_eq!(f["card"]["elements"][0]["content"], markdown.as_str());
        let fts: i64 = f["timestamp"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            f["sign"].as_str().unwrap(),
            akkaflow::alert::feishu_sign(FEISHU_SECRET, fts)
        );

        let slack = sink.to("/slack/");
        assert_eq!(slack.len(), 1);
        assert_eq!(slack[0].body["text"], subject.as_str());
        assert_eq!(
            slack[0].body["blocks"][0]["text"],
            serde_json::json!({"type": "mrkdwn", "text": format!(
                "*{subject}*\nWorkflow: orders\nSlot: {slot}\nState: failed\nDetail: load: exited with code 3\n<{link}|Open the instance>\n")})
        );

        let hook = sink.to("/hook/");
        assert_eq!(hook.len(), 1);
        assert_eq!(
            hook[0].body,
            serde_json::json!({
                "kind": "failed",
                "workflow": "orders",
                "instance_id": id.0,
                "scheduled_for": inst.scheduled_for.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "status": "failed",
                "subject": subject,
                "text": "load: exited with code 3",
                "url": link,
            })
        );

        // the URLs and secrets are nowhere but in the configuration
        let stored = serde_json::to_string(&rows).unwrap();
        for secret in [TOKEN, DING_SECRET, FEISHU_SECRET] {
            for role in ["scheduler", "worker"] {
                assert!(
                    !env.log(role).contains(secret),
                    "the {role} logged `{secret}`"
                );
            }
            assert!(!stored.contains(secret), "the outbox holds `{secret}`");
        }
        // nor in what the API and the Alerts page show of those rows
        let port = env.spawn_http();
        let get = |path: &'static str| async move {
            let mut resp = ureq::get(&format!("http://127.0.0.1:{port}{path}"))
                .call()
                .map_err(|e| e.to_string())?;
            resp.body_mut().read_to_string().map_err(|e| e.to_string())
        };
        let api = wait_for(LONG, "the alerts API", || get("/api/v1/alerts")).await;
        let page = wait_for(LONG, "the Alerts page", || get("/ui/alerts")).await;
        for name in ["ding", "wecom", "feishu", "slack", "hook"] {
            assert!(api.contains(&format!("\"{name}\"")), "{name} in {api}");
            assert!(page.contains(name), "{name} in the page");
        }
        for secret in [TOKEN, DING_SECRET, FEISHU_SECRET] {
            assert!(!api.contains(secret), "the API shows `{secret}`: {api}");
            assert!(!page.contains(secret), "the Alerts page shows `{secret}`");
            assert!(
                !env.log("http").contains(secret),
                "the http role logged `{secret}`"
            );
        }
    }

    pub async fn routing_follows_kinds_dirs_and_alert_channels(env: &mut Env) {
        let sink = HttpSink::start("ok").await;
        channels(
            env,
            &format!(
                "[[alerts.channels]]\nname = \"dw\"\nkind = \"webhook\"\nurl = \"{}\"\nkinds = [\"failed\"]\ndirs = [\"/dw\"]\n\
                 [[alerts.channels]]\nname = \"timeouts\"\nkind = \"webhook\"\nurl = \"{}\"\nkinds = [\"timeout\"]\n\
                 [[alerts.channels]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"{}\"\ndirs = [\"/ops\"]\n",
                sink.url("/dw"),
                sink.url("/timeouts"),
                sink.url("/ops"),
            ),
        );
        // a name the configuration does not have is refused with the file and line
        env.write(
            "bad/typo.xml",
            &failing("typo", "/dw", "\n  alert-channels=\"dw,opps\""),
        );
        let out = env.run(&["sync", "bad"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("typo.xml:2") && err.contains("`opps`"),
            "{err}"
        );

        env.sync(&[
            ("ods.xml", &failing("ods", "/dw/ods", "")),
            ("dwx.xml", &failing("dwx", "/dwx", "")),
            (
                "named.xml",
                &failing("named", "/finance", r#"alert-channels="ops""#),
            ),
        ]);
        fleet(env);
        let store = env.store().await;
        for wf in ["ods", "dwx", "named"] {
            let id = trigger(env, wf);
            assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
        }
        let rows = settled(&*store, 2).await;
        let mut routed: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.workflow.clone().unwrap_or_default(),
                    r.channel.clone().unwrap_or_default(),
                )
            })
            .collect();
        routed.sort();
        assert_eq!(
            routed,
            [("named".into(), "ops".into()), ("ods".into(), "dw".into())],
            "dwx is not below /dw, named names ops only, no channel takes timeouts here"
        );
        assert_eq!(sink.to("/dw").len(), 1);
        assert_eq!(sink.to("/ops").len(), 1);
        assert!(sink.to("/timeouts").is_empty());
    }

    pub async fn a_channel_down_then_up_gets_its_alert_once(env: &mut Env) {
        let sink = HttpSink::start(r#"{"errcode":0,"errmsg":"ok"}"#).await;
        // down, then a DingTalk refusal in a 200 answer, then up
        sink.refuse_first(&[
            (502, "bad gateway"),
            (503, "unavailable"),
            (200, r#"{"errcode":130101,"errmsg":"send too fast"}"#),
        ]);
        channels(
            env,
            &format!(
                "[[alerts.channels]]\nname = \"ding\"\nkind = \"dingtalk\"\nurl = \"{}\"\n",
                sink.url(&format!("/robot/send?access_token={TOKEN}"))
            ),
        );
        env.sync(&[("orders.xml", &failing("orders", "/dw", ""))]);
        fleet(env);
        let store = env.store().await;
        let id = trigger(env, "orders");
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
        let rows = settled(&*store, 1).await;
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].status, rows[0].attempts), (AlertStatus::Sent, 4));
        let got = sink.received();
        let answered: Vec<u16> = got.iter().map(|r| r.answered).collect();
        assert_eq!(answered, [502, 503, 200, 200], "{got:?}");
        assert!(got.windows(2).all(|w| w[0].body == w[1].body));
        // delivered once: a later alert goes through the same passes and the first is not resent
        let second = trigger(env, "orders");
        assert_eq!(ended(&*store, second).await.status, InstanceStatus::Failed);
        let rows = settled(&*store, 2).await;
        assert_eq!(rows[1].attempts, 1);
        let per_instance = |id: i64| {
            sink.received()
                .iter()
                .filter(|r| {
                    r.body["markdown"]["title"]
                        .as_str()
                        .unwrap_or("")
                        .contains(&format!("instance {id})"))
                })
                .count()
        };
        assert_eq!((per_instance(id.0), per_instance(second.0)), (4, 1));
        assert!(!env.log("scheduler").contains(TOKEN));
        assert!(env.log("scheduler").contains("errcode 130101"));
    }
    /// A slot whose run is still going at its deadline and a slot that never got a run because
    /// its upstream failed: one `deadline` alert each, saying why; a check repeated after a
    /// failover writes nothing twice; the late run's success then sends `late_done`.
    pub async fn deadlines_say_what_is_late_and_why_once(env: &mut Env) {
        use chrono::{Timelike, Utc};
        let sink = HttpSink::start("ok").await;
        channels(
            env,
            &format!(
                "[[alerts.channels]]\nname = \"late\"\nkind = \"webhook\"\nurl = \"{}\"\nkinds = [\"deadline\", \"late_done\"]\n",
                sink.url("/late")
            ),
        );
        // a daily slot ten minutes ago whose deadline, five minutes after it, has passed
        let slot = (Utc::now() - chrono::Duration::minutes(10))
            .with_second(0)
            .unwrap()
            .with_nanosecond(0)
            .unwrap();
        let cron = format!("{} {} * * *", slot.minute(), slot.hour());
        let go = env.path().join("go");
        let slow = format!(
            r#"<work-flow name="slow" dir="/dw" mail-receivers="oncall@example.com">
  <coordinator timezone="UTC" deadline="+5m"><depend-list cron="{cron}"/></coordinator>
  <start name="start" to="load"/>
  <action name="load"><shell><command>while [ ! -f {} ]; do sleep 0.2; done</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
            go.display()
        );
        let down = format!(
            r#"<work-flow name="down" dir="/dw">
  <coordinator timezone="UTC" deadline="+5m"><depend-list cron="{cron}"><workflow name="up"/></depend-list></coordinator>
  <start name="start" to="report"/>
  <action name="report"><shell><command>echo ok</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#
        );
        env.sync(&[
            ("up.xml", &failing("up", "/dw", "")),
            ("slow.xml", &slow),
            ("down.xml", &down),
        ]);
        fleet(env);
        let store = env.store().await;
        let up = trigger(env, "up");
        assert_eq!(ended(&*store, up).await.status, InstanceStatus::Failed);
        for wf in ["slow", "down"] {
            set_next_fire_at(env, wf, slot).await;
        }
        let late = wait_for(LONG, "the slow slot fired", || async {
            match instances_of(&*store, "slow").await?.first() {
                Some(i) => Ok(i.clone()),
                None => Err("no instance yet".into()),
            }
        })
        .await;
        assert_eq!(late.scheduled_for, slot);
        // watched since before the slot (the first check only starts the watch)
        for wf in ["slow", "down"] {
            set_checked_through(env, wf, slot - chrono::Duration::hours(1)).await;
        }
        let deadline_posts = || {
            sink.to("/late")
                .into_iter()
                .filter(|r| r.body["kind"] == "deadline")
                .collect::<Vec<_>>()
        };
        wait_for(LONG, "two deadline alerts", || async {
            let got = deadline_posts();
            (got.len() >= 2).then_some(()).ok_or(format!("{got:?}"))
        })
        .await;
        let got = deadline_posts();
        let about = |wf: &str| -> String {
            let mine: Vec<_> = got.iter().filter(|r| r.body["workflow"] == wf).collect();
            assert_eq!(mine.len(), 1, "one deadline alert for {wf}: {got:?}");
            assert_eq!(
                mine[0].body["scheduled_for"],
                slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            mine[0].body["text"].as_str().unwrap().to_string()
        };
        let why_slow = about("slow");
        assert!(
            why_slow.starts_with(&format!("instance {} is ", late.id)),
            "{why_slow}"
        );
        let why_down = about("down");
        assert!(
            why_down.contains(&format!(
                "waiting for upstream up (its latest run, instance {up}"
            )) && why_down.contains("is failed"),
            "{why_down}"
        );
        // the mail to the receivers is in the outbox too, with the same why
        let mails: Vec<AlertRow> = alerts(&*store)
            .await
            .into_iter()
            .filter(|a| a.channel.is_none() && a.event == "deadline")
            .collect();
        assert_eq!(mails.len(), 1, "{mails:?}");
        assert_eq!(mails[0].recipients, "oncall@example.com");
        assert!(
            mails[0].body_text.contains(&why_slow),
            "{}",
            mails[0].body_text
        );

        // a failover whose new master checks the same slots again writes nothing twice
        env.stop(0, nix::sys::signal::Signal::SIGKILL);
        for wf in ["slow", "down"] {
            set_checked_through(env, wf, slot - chrono::Duration::hours(1)).await;
        }
        env.spawn("scheduler2", &["scheduler"]);
        wait_for(LONG, "the new master re-checked both slots", || async {
            let watched = store
                .deadline_watch_list()
                .await
                .map_err(|e| e.to_string())?;
            let rechecked = watched
                .iter()
                .all(|w| w.checked_through.is_some_and(|t| t > slot));
            rechecked.then_some(()).ok_or(format!("{watched:?}"))
        })
        .await;
        let misses = store.deadline_miss_list(None, 10).await.unwrap();
        assert_eq!(misses.len(), 2, "{misses:?}");

        // the late run succeeds: one late_done, and the miss is closed
        std::fs::write(&go, "").unwrap();
        assert_eq!(
            ended(&*store, late.id).await.status,
            InstanceStatus::Succeeded
        );
        wait_for(LONG, "the late_done alert", || async {
            let done: Vec<_> = sink
                .to("/late")
                .into_iter()
                .filter(|r| r.body["kind"] == "late_done")
                .collect();
            (done.len() == 1 && done[0].body["workflow"] == "slow")
                .then_some(())
                .ok_or(format!("{done:?}"))
        })
        .await;
        assert_eq!(deadline_posts().len(), 2, "no deadline alert twice");
        let slow_miss = store.deadline_miss_list(Some("slow"), 10).await.unwrap();
        assert!(slow_miss[0].done_at.is_some(), "{slow_miss:?}");
        let info = env.ok(&["workflow", "info", "down"]);
        assert!(info.contains("deadline   +5m"), "{info}");
        assert!(info.contains("waiting for upstream up"), "{info}");
    }
}

e2e!(
    each_channel_gets_its_own_format_and_signature,
    routing_follows_kinds_dirs_and_alert_channels,
    a_channel_down_then_up_gets_its_alert_once,
    deadlines_say_what_is_late_and_why_once,
);
