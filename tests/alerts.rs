//! Alerts end to end: real scheduler and worker processes on each backend, mail through a real SMTP
//! server (aiosmtpd, `tests/smtp_sink.py`) on loopback, checked by what the server received.
//!
//! Without aiosmtpd the cases print a skip line, or fail when `AKKAFLOW_REQUIRE_SMTP=1`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use akkaflow::state::{AlertKind, AlertStatus, InstanceStatus};
use akkaflow::store::{AlertRow, Store};
use common::{ended, trigger, wait_for, Env};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

/// A running SMTP sink; killed on drop.
struct Sink {
    child: Child,
    out: PathBuf,
}

impl Sink {
    /// Starts the sink on `port` with extra arguments (`--tls`, `--user`...), once it accepts mail.
    fn start(dir: &Path, port: u16, extra: &[&str]) -> Sink {
        let out = dir.join(format!("mail-{port}.jsonl"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--out"])
            .arg(&out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("read the sink's first line");
        assert_eq!(line.trim(), "READY", "the SMTP sink did not start");
        Sink { child, out }
    }

    fn mails(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// Waits until at least `n` mails arrived; returns all of them.
    async fn wait_mails(&self, n: usize) -> Vec<Value> {
        wait_for(LONG, &format!("{n} mail(s)"), || async {
            let got = self.mails();
            if got.len() >= n {
                Ok(got)
            } else {
                Err(format!("{} mail(s): {got:?}", got.len()))
            }
        })
        .await
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the sink can run here; a missing aiosmtpd fails the test when it is required.
fn smtp_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("AKKAFLOW_REQUIRE_SMTP").as_deref() != Ok("1"),
            "AKKAFLOW_REQUIRE_SMTP=1 but python3 cannot import aiosmtpd (pip install aiosmtpd)"
        );
        eprintln!("skipped: python3 cannot import aiosmtpd (pip install aiosmtpd)");
    }
    ok
}

/// Points the environment's mail at a plain SMTP server on `port`, with quick delivery retries.
fn plain_smtp(env: &Env, port: u16) {
    env.config(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nfrom = \"akkaflow <akkaflow@example.com>\"\ntimeout_secs = 5\n\
         [alerts]\ndeliver_interval_secs = 0.2\nbackoff_initial_secs = 0.5\nbackoff_max_secs = 1\n"
    ));
}

fn fleet(env: &mut Env) {
    env.spawn("scheduler", &["scheduler"]);
    env.spawn("worker", &["worker", "--slots", "4", "--name", "w1"]);
}

/// Starts a plain SMTP sink and points the environment's mail at it.
fn mail_to_sink(env: &Env) -> Sink {
    let port = common::free_port();
    let sink = Sink::start(env.path(), port, &[]);
    plain_smtp(env, port);
    sink
}

/// Syncs `files`, starts the fleet, triggers `workflow` and checks how its instance ended.
async fn run_once(
    env: &mut Env,
    files: &[(&str, &str)],
    workflow: &str,
    want: InstanceStatus,
) -> (Arc<dyn Store>, InstanceId) {
    env.sync(files);
    fleet(env);
    let store = env.store().await;
    let id = trigger(env, workflow);
    assert_eq!(ended(&*store, id).await.status, want);
    (store, id)
}

async fn alerts(store: &dyn Store) -> Vec<AlertRow> {
    let mut all = store.alert_list(100).await.expect("alert list");
    all.reverse();
    all
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

fn rcpts(v: &Value) -> Vec<String> {
    v["rcpt_tos"]
        .as_array()
        .expect("rcpt_tos")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

mod cases {
    use super::*;

    pub async fn failure_mail_reaches_the_workflow_and_its_downstream(env: &mut Env) {
        if !smtp_available() {
            return;
        }
        let sink = mail_to_sink(env);
        let (store, id) = run_once(
            env,
            &[
            (
                "load.xml",
                r#"<work-flow name="load" mail-receivers="ops@example.com">
  <start name="start" to="extract"/>
  <action name="extract"><shell><command>echo "loaded 42 rows"; echo "disk full on /data" >&amp;2; exit 3</command></shell>
    <ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
            ),
            (
                "report.xml",
                r#"<work-flow name="report" mail-receivers="OPS@example.com, bi@example.com">
  <coordinator><depend-list><workflow name="load"/></depend-list></coordinator>
  <start name="start" to="a"/>
  <action name="a"><shell><command>true</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
            ),
        ],
            "load",
            InstanceStatus::Failed,
        )
        .await;
        let mails = sink.wait_mails(1).await;
        let m = &mails[0];
        assert_eq!(
            rcpts(m),
            ["ops@example.com", "bi@example.com"],
            "deduplicated, case-insensitively"
        );
        assert_eq!(
            text(m, "subject"),
            format!("[akkaflow] workflow load failed (instance {id})")
        );
        assert_eq!(text(m, "content_type"), "multipart/alternative");
        let body = text(m, "text");
        for needle in [
            "extract",
            "failed",
            "exit",
            "disk full on /data",
            "loaded 42 rows",
            "Affected downstream workflows: report",
        ] {
            assert!(body.contains(needle), "text part lacks `{needle}`:\n{body}");
        }
        let html = text(m, "html");
        assert!(
            html.contains("<table") && html.contains("disk full on /data"),
            "{html}"
        );
        // the sink has the mail a moment before the deliverer marks its row sent
        let rows = wait_for(Duration::from_secs(30), "the row marked sent", || async {
            let rows = alerts(&*store).await;
            match rows.iter().all(|r| r.status != AlertStatus::Pending) {
                true => Ok(rows),
                false => Err(format!("{rows:?}")),
            }
        })
        .await;
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].kind, rows[0].status),
            (AlertKind::Completion, AlertStatus::Sent)
        );
    }

    /// An `email` channel mails the addresses of its `mailto:` URL the short channel message,
    /// for the kinds it takes only, through the same [smtp] and outbox as the receivers' mail.
    pub async fn an_email_channel_mails_its_addresses(env: &mut Env) {
        if !smtp_available() {
            return;
        }
        let sink = mail_to_sink(env);
        env.config(
            "[[alerts.channels]]\nname = \"dw-mail\"\nkind = \"email\"\n\
             url = \"mailto:dw@example.com,oncall@example.com\"\nkinds = [\"failed\"]\n",
        );
        let (store, id) = run_once(
            env,
            &[(
                "nightly.xml",
                r#"<work-flow name="nightly">
  <start name="start" to="load"/>
  <action name="load"><shell><command>echo "no space left on /dw" >&amp;2; exit 4</command></shell>
    <ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
            )],
            "nightly",
            InstanceStatus::Failed,
        )
        .await;
        let mails = sink.wait_mails(1).await;
        assert_eq!(
            mails.len(),
            1,
            "no receivers: only the channel mails: {mails:?}"
        );
        let m = &mails[0];
        assert_eq!(rcpts(m), ["dw@example.com", "oncall@example.com"]);
        assert_eq!(
            text(m, "subject"),
            format!("[akkaflow] workflow nightly failed (instance {id})")
        );
        assert!(
            text(m, "text").contains("load: exited with code 4"),
            "{}",
            text(m, "text")
        );
        let rows = wait_for(Duration::from_secs(30), "the channel row sent", || async {
            let rows = alerts(&*store).await;
            match rows.iter().all(|r| r.status == AlertStatus::Sent) {
                true => Ok(rows),
                false => Err(format!("{rows:?}")),
            }
        })
        .await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].channel.as_deref(), Some("dw-mail"));
        // a success is not among its kinds: nothing more is written
        env.sync(&[(
            "fine.xml",
            r#"<work-flow name="fine" mail-level="W_SUCCESSED"><start name="start" to="a"/>
  <action name="a"><shell><command>true</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        )]);
        let ok = trigger(env, "fine");
        assert_eq!(ended(&*store, ok).await.status, InstanceStatus::Succeeded);
        assert_eq!(alerts(&*store).await.len(), 1);
    }

    pub async fn success_mails_only_where_mail_level_asks(env: &mut Env) {
        if !smtp_available() {
            return;
        }
        let sink = mail_to_sink(env);
        let ok = |name: &str, level: &str| {
            format!(
                r#"<work-flow name="{name}" mail-level="{level}" mail-receivers="{name}@example.com">
  <start name="start" to="a"/>
  <action name="a"><shell><command>echo fine</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#
            )
        };
        env.sync(&[
            ("loud.xml", &ok("loud", "W_SUCCESSED, W_FAILED")),
            ("quiet.xml", &ok("quiet", "W_FAILED,W_KILLED")),
        ]);
        fleet(env);
        let store = env.store().await;
        let quiet = trigger(env, "quiet");
        let loud = trigger(env, "loud");
        assert_eq!(
            ended(&*store, quiet).await.status,
            InstanceStatus::Succeeded
        );
        assert_eq!(ended(&*store, loud).await.status, InstanceStatus::Succeeded);
        let mails = sink.wait_mails(1).await;
        assert_eq!(rcpts(&mails[0]), ["loud@example.com"]);
        assert!(text(&mails[0], "subject").contains("loud succeeded"));
        // the alert row is written with the instance's end, so none for `quiet` means none ever
        let rows = alerts(&*store).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].workflow.as_deref(), Some("loud"));
    }

    pub async fn retry_failure_then_recovery(env: &mut Env) {
        if !smtp_available() {
            return;
        }
        let sink = mail_to_sink(env);
        let marker = env.path().join("tried-once");
        let (store, _) = run_once(
            env,
            &[(
            "flaky.xml",
            &format!(
                r#"<work-flow name="flaky" mail-receivers="ops@example.com">
  <start name="start" to="pull"/>
  <action name="pull" retry-times="2" interval="0"><shell><command>if [ -f {m} ]; then echo ok; else touch {m}; echo "upstream not ready"; exit 1; fi</command></shell>
    <ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
                m = marker.display()
            ),
        )],
            "flaky",
            InstanceStatus::Succeeded,
        )
        .await;
        let mails = sink.wait_mails(2).await;
        let subjects: Vec<String> = mails.iter().map(|m| text(m, "subject")).collect();
        assert_eq!(
            subjects,
            [
                "[akkaflow] task flaky.pull failed attempt 1 of 3; retrying",
                "[akkaflow] task flaky.pull recovered on attempt 2",
            ]
        );
        assert!(text(&mails[0], "text").contains("exit"), "{mails:?}");
        let kinds: Vec<AlertKind> = alerts(&*store).await.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [AlertKind::RetryFailure, AlertKind::Recovery],
            "no completion mail on success"
        );
    }

    pub async fn timeout_and_kill_node_mails(env: &mut Env) {
        if !smtp_available() {
            return;
        }
        let sink = mail_to_sink(env);
        let (store, id) = run_once(
            env,
            &[(
            "slow.xml",
            r#"<work-flow name="slow" mail-level="W_FAILED,W_KILLED" mail-receivers="dba@example.com">
  <start name="start" to="crunch"/>
  <action name="crunch" timeout="1"><shell><command>sleep 30</command></shell>
    <ok to="end"/><error to="give-up"/></action>
  <kill name="give-up"><message>crunch is too slow, call the DBA</message></kill>
  <end name="end"/>
</work-flow>"#,
        )],
            "slow",
            InstanceStatus::Killed,
        )
        .await;
        let mails = sink.wait_mails(2).await;
        let subjects: Vec<String> = mails.iter().map(|m| text(m, "subject")).collect();
        assert_eq!(
            subjects,
            [
                "[akkaflow] task slow.crunch timed out after 1s (attempt 1 of 1)".to_string(),
                format!("[akkaflow] workflow slow killed (instance {id}): crunch is too slow, call the DBA"),
            ]
        );
        // the kill node's mail stands for the completion mail of a killed instance: one, not two
        let kinds: Vec<AlertKind> = alerts(&*store).await.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [AlertKind::Timeout, AlertKind::Kill]);
    }

    pub async fn email_node_sends_its_rendered_html(env: &mut Env) {
        if !smtp_available() {
            return;
        }
        let sink = mail_to_sink(env);
        env.sync(&[(
            "daily.xml",
            r#"<work-flow name="daily" mail-receivers="boss@example.com;ops@example.com">
  <param-list><param name="day" value="2026-11-30"/></param-list>
  <start name="start" to="tell"/>
  <action name="tell"><email subject="日报 ${param:day}">
      <table><tr><td>day</td><td>${param:day}</td></tr><tr><td>rows</td><td>42</td></tr></table>
    </email><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
        )]);
        fleet(env);
        let store = env.store().await;
        let id = InstanceId(
            env.ok(&["workflow", "run", "daily", "--param", "day=2026-12-01"])
                .trim()
                .parse()
                .expect("instance id"),
        );
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Succeeded);
        let mails = sink.wait_mails(1).await;
        let m = &mails[0];
        assert_eq!(text(m, "subject"), "日报 2026-12-01");
        assert_eq!(rcpts(m), ["boss@example.com", "ops@example.com"]);
        assert!(text(m, "html").contains("<td>2026-12-01</td>"), "{m}");
        assert!(text(m, "text").contains("day\t2026-12-01"), "{m}");
        let task = common::task(&*store, id, "tell").await;
        assert!(
            task.worker_id.is_none(),
            "sent by the engine, not a worker: {task:?}"
        );
    }

    pub async fn smtp_outage_delays_mail_but_loses_none(env: &mut Env) {
        if !smtp_available() {
            return;
        }
        let port = common::free_port(); // nothing listens here yet
        plain_smtp(env, port);
        let (store, _) = run_once(
            env,
            &[(
                "bad.xml",
                r#"<work-flow name="bad" mail-receivers="ops@example.com">
  <start name="start" to="a"/>
  <action name="a"><shell><command>exit 1</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
            )],
            "bad",
            InstanceStatus::Failed,
        )
        .await;
        let failed_try = wait_for(LONG, "a failed delivery attempt", || async {
            let rows = alerts(&*store).await;
            match rows.first() {
                Some(a) if a.attempts >= 2 && a.last_error.is_some() => Ok(a.clone()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(
            failed_try.status,
            AlertStatus::Pending,
            "retried, not given up"
        );
        assert!(
            !env.log("scheduler").contains("hunter"),
            "no secret configured, none logged"
        );

        let sink = Sink::start(env.path(), port, &[]);
        let mails = sink.wait_mails(1).await;
        assert!(text(&mails[0], "subject").contains("bad failed"));
        wait_for(LONG, "the alert marked sent", || async {
            let rows = alerts(&*store).await;
            if rows[0].status == AlertStatus::Sent {
                Ok(())
            } else {
                Err(format!("{:?}", rows[0]))
            }
        })
        .await;
        // a few more delivery passes: still exactly one mail
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(sink.mails().len(), 1);
    }
}

use akkaflow::state::InstanceId;

/// A self-signed certificate for 127.0.0.1 (rustls wants a SAN and a non-CA leaf).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(
        status.success(),
        "openssl could not make a test certificate"
    );
    (cert, key)
}

const PASSWORD: &str = "s3cret-smtp-pw-7741";

/// Sends one failure mail through a TLS sink that requires AUTH; returns what the server saw and
/// the environment (for its logs).
async fn through_tls(mode: &str) -> Option<(Value, Env)> {
    if !smtp_available() {
        return None;
    }
    let mut env = Env::new(common::Db::Sqlite, &format!("tls_{mode}")).await?;
    let (cert, key) = certificate(env.path());
    let port = common::free_port();
    let sink = Sink::start(
        env.path(),
        port,
        &[
            "--tls",
            mode,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--user",
            "akka",
            "--password",
            PASSWORD,
        ],
    );
    env.config(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{mode}\"\nusername = \"akka\"\n\
         ca_file = \"{}\"\nfrom = \"akkaflow@example.com\"\n[alerts]\ndeliver_interval_secs = 0.2\n",
        cert.display()
    ));
    // the password comes from the environment, as operators are told to pass it
    env.vars
        .push(("AKKAFLOW_SMTP_PASSWORD".into(), PASSWORD.into()));
    env.sync(&[(
        "bad.xml",
        r#"<work-flow name="bad" mail-receivers="ops@example.com">
  <start name="start" to="a"/>
  <action name="a"><shell><command>exit 1</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#,
    )]);
    fleet(&mut env);
    let id = trigger(&env, "bad");
    let store = env.store().await;
    assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
    let mail = sink.wait_mails(1).await.remove(0);
    Some((mail, env))
}

fn assert_secure_and_secret(mail: &Value, env: &Env) {
    assert_eq!(mail["tls"], Value::Bool(true), "{mail}");
    assert_eq!(mail["authenticated"], Value::Bool(true), "{mail}");
    for role in ["scheduler", "worker"] {
        assert!(
            !env.log(role).contains(PASSWORD),
            "the {role} logged the SMTP password"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_from_the_environment() {
    if let Some((mail, env)) = through_tls("starttls").await {
        assert_secure_and_secret(&mail, &env);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_with_auth() {
    if let Some((mail, env)) = through_tls("tls").await {
        assert_secure_and_secret(&mail, &env);
    }
}

e2e!(
    failure_mail_reaches_the_workflow_and_its_downstream,
    success_mails_only_where_mail_level_asks,
    retry_failure_then_recovery,
    timeout_and_kill_node_mails,
    email_node_sends_its_rendered_html,
    smtp_outage_delays_mail_but_loses_none,
    an_email_channel_mails_its_addresses,
);
