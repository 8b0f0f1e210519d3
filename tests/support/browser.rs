//! A headless Chromium driven by chromedriver over WebDriver (plain HTTP with the same client as
//! the API tests, no Selenium), for the UI tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser to test with; `None` (the test prints why and returns) when chromium or chromedriver
/// is missing, unless `AKKAFLOW_REQUIRE_BROWSER=1`, where that fails the test.
pub fn browser_or_skip() -> Option<&'static str> {
    let browser = chromium();
    if browser.is_none() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var("AKKAFLOW_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("AKKAFLOW_REQUIRE_BROWSER=1 but chromium or {CHROMEDRIVER} is missing (apt-get install -y chromium chromium-driver)");
        }
        println!("skipped: chromium or chromedriver is missing (apt-get install -y chromium chromium-driver)");
        return None;
    }
    browser
}

pub fn chromium() -> Option<&'static str> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

/// chromedriver as a child process, killed when dropped.
pub struct Driver {
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
    pub fn start(browser: &str, profile: &Path) -> Driver {
        let port = crate::common::free_port();
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

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
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

    pub fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn find(&self, css: &str) -> Option<String> {
        let r = self.call(
            "POST",
            &self.s("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        );
        r["value"][ELEMENT].as_str().map(str::to_string)
    }

    /// Waits for an element to exist (pages reload after actions).
    pub fn wait(&self, css: &str, what: &str) -> String {
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

    pub fn click(&self, el: &str) {
        self.call("POST", &self.s(&format!("/element/{el}/click")), None);
    }

    pub fn type_into(&self, el: &str, text: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{el}/value")),
            Some(json!({ "text": text })),
        );
    }

    pub fn text(&self, el: &str) -> String {
        self.call("GET", &self.s(&format!("/element/{el}/text")), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a script in the page (WebDriver's execute, not subject to the page's CSP).
    pub fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )["value"]
            .clone()
    }

    /// Waits until a script returns true.
    pub fn wait_true(&self, script: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.exec(script, vec![]) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", &self.s("/screenshot"), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let png = decode_base64(&b64);
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Logs in on the login page with a token secret.
    pub fn login(&self, base_url: &str, secret: &str) {
        self.go(&format!("{base_url}/ui/login"));
        let field = self.wait("input#token", "the login form");
        self.type_into(&field, secret);
        let submit = self.wait("button[type=submit]", "the login button");
        self.click(&submit);
        self.wait("nav.nav", "the page after logging in");
    }
}

/// Standard base64 (WebDriver's screenshot encoding), without pulling in a crate for one test use.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
