//! The UI in a real browser: headless Chromium driven by chromedriver over WebDriver (plain HTTP
//! with the same client as the API tests, no Selenium). Logs in with a token, opens the
//! dashboard, opens an instance, kills its running task with the button and sees it killed.
//! Skips with a printed line when chromium or chromedriver is missing, unless
//! `AKKAFLOW_REQUIRE_BROWSER=1`.

mod common;
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use serde_json::{json, Value};
use support::{start, token, workflow};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn chromium() -> Option<&'static str> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

/// chromedriver as a child process, killed when dropped.
struct Driver {
    child: Child,
    base: String,
    agent: ureq::Agent,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(browser: &str, profile: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            agent,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while d.call("GET", "/status", None)["value"]["ready"] != true {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": browser, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()), "--window-size=1400,900",
            ] }
        } } });
        let r = d.call("POST", "/session", Some(caps));
        d.session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let r = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(body.unwrap_or(json!({}))),
        };
        match r {
            Ok(mut r) => r.body_mut().read_json().unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn find(&self, css: &str) -> Option<String> {
        let r = self.call(
            "POST",
            &self.s("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        r["value"][ELEMENT].as_str().map(str::to_string)
    }

    /// Waits for an element to exist (pages reload after actions).
    fn wait(&self, css: &str, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = self.find(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({css}) on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn click(&self, el: &str) {
        self.call("POST", &self.s(&format!("/element/{el}/click")), None);
    }

    fn type_into(&self, el: &str, text: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{el}/value")),
            Some(json!({ "text": text })),
        );
    }

    fn text(&self, el: &str) -> String {
        self.call("GET", &self.s(&format!("/element/{el}/text")), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_logs_in_opens_an_instance_and_kills_its_running_task() {
    let browser = chromium();
    if browser.is_none() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var("AKKAFLOW_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("AKKAFLOW_REQUIRE_BROWSER=1 but chromium or {CHROMEDRIVER} is missing (apt-get install -y chromium chromium-driver)");
        }
        println!("skipped: chromium or chromedriver is missing (apt-get install -y chromium chromium-driver)");
        return;
    }
    let mut env = Env::new(common::Db::Sqlite, "browser")
        .await
        .expect("sqlite always works");
    env.sync(&[
        (
            "sleepy.xml",
            &workflow("sleepy", "/dw", "echo working on it; sleep 120"),
        ),
        ("quick.xml", &workflow("quick", "/dw", "echo done")),
    ]);
    let ops = token(&env, "browser-ops", "operator", None);
    let s = start(&mut env, "server", &[]);
    let quick = s.post("/api/v1/workflows/quick/trigger", Some(&ops), "");
    s.ended(quick.json["instance_id"].as_i64().unwrap(), &ops);
    let id = s
        .post("/api/v1/workflows/sleepy/trigger", Some(&ops), "")
        .json["instance_id"]
        .as_i64()
        .unwrap();
    let detail = s.wait_json(
        &format!("/api/v1/instances/{id}"),
        &ops,
        "the task to run",
        |j| {
            j["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["node"] == "a" && t["status"] == "running")
        },
    );
    let task_id = detail["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["node"] == "a")
        .unwrap()["id"]
        .as_i64()
        .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let d = Driver::start(browser.unwrap(), profile.path());

    // not logged in: the dashboard sends us to the login page
    d.go(&s.url("/ui/"));
    let field = d.wait("input#token", "the login form");
    assert!(d.url().ends_with("/ui/login"), "{}", d.url());
    d.type_into(&field, &ops);
    let submit = d.wait("button[type=submit]", "the login button");
    d.click(&submit);

    // the dashboard, with today's counts and the running instance
    let ok = d.wait("#today-succeeded", "the dashboard");
    assert!(d.url().ends_with("/ui/"), "{}", d.url());
    assert_eq!(d.text(&ok), "1", "one instance succeeded today");
    let running = d.wait(
        &format!("a[href='/ui/instances/{id}']"),
        "the running instance on the dashboard",
    );
    d.click(&running);

    // the instance page: DAG node running, the task row, then kill it (two clicks: confirm)
    d.wait(
        ".dag g.n.st-running[data-node='a']",
        "the running node in the DAG",
    );
    let kill = d.wait(
        &format!("tr[data-task='{task_id}'] button.kill-task"),
        "the task's kill button",
    );
    d.click(&kill);
    d.wait(
        &format!("tr[data-task='{task_id}'] button.kill-task.confirm"),
        "the confirm state",
    );
    d.click(&kill);
    d.wait(
        &format!("tr[data-task='{task_id}'][data-status='killed']"),
        "the task to show killed",
    );
    d.wait(
        ".dag g.n.st-killed[data-node='a']",
        "the DAG node to show killed",
    );
    let title = d.wait("h1", "the heading");
    assert!(d.text(&title).contains("killed"), "{}", d.text(&title));

    // the API agrees, and the kill was recorded with the token's name
    let after = s.ended(id, &ops);
    assert_eq!(after["instance"]["status"], "killed");
    let events = s.get(&format!("/api/v1/events?instance_id={id}"), Some(&ops));
    assert!(
        events.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "task_kill" && e["actor"] == "api:browser-ops"),
        "{}",
        events.text
    );
    drop(d);
    drop(env);
}
