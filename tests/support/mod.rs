//! HTTP test helpers: start `akkaflow standalone` on a free port, create tokens, and call the API
//! with a small blocking client (ureq).

#![allow(dead_code)]

pub mod browser;

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Env;

/// A running server and how to reach it.
pub struct Server {
    pub base: String,
    agent: ureq::Agent,
}

/// A response: status, headers we look at, and the body (JSON when it parses).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub set_cookie: Option<String>,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub headers: ureq::http::HeaderMap,
}

impl Resp {
    /// The error code of an `{"error": {"code"}}` body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        // a fresh connection per request: a refusal sent before the body was read (a cross-origin
        // POST) lets the server close its connection, and a POST sent on that pooled connection
        // a moment later met its end (seen in CI: "Peer disconnected")
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Starts `akkaflow standalone` with the given extra flags and waits until it serves.
pub fn start(env: &mut Env, label: &str, extra: &[&str]) -> Server {
    let mut args = vec![
        "standalone",
        "--listen",
        "127.0.0.1:0",
        "--xmlconfig",
        "xmlconfig",
        "--slots",
        "4",
        "--name",
        "w1",
    ];
    args.extend_from_slice(extra);
    env.spawn(label, &args);
    served(env, label)
}

/// Starts `akkaflow http` on a free port under the database user in `url`.
pub fn start_http_as(env: &mut Env, label: &str, url: &str) -> Server {
    env.spawn_as(label, &["http", "--listen", "127.0.0.1:0"], url);
    served(env, label)
}

/// Waits for the start-up line naming the bound address (`--listen 127.0.0.1:0` picks a free port).
fn served(env: &Env, label: &str) -> Server {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = env.log(label);
        if let Some(pos) = log.find("http://127.0.0.1:") {
            let rest = &log[pos + "http://127.0.0.1:".len()..];
            let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !port.is_empty() {
                return Server {
                    base: format!("http://127.0.0.1:{port}"),
                    agent: agent(),
                };
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server did not start:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates a token with the CLI; returns its secret.
pub fn token(env: &Env, name: &str, role: &str, dir: Option<&str>) -> String {
    let mut args = vec!["token", "create", "--name", name, "--role", role];
    if let Some(d) = dir {
        args.extend_from_slice(&["--dir", d]);
    }
    env.ok(&args).trim().to_string()
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("the request reached the server");
    let header = |r: &ureq::http::Response<ureq::Body>, h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let status = r.status().as_u16();
    let set_cookie = header(&r, "set-cookie");
    let content_type = header(&r, "content-type").unwrap_or_default();
    let www_authenticate = header(&r, "www-authenticate");
    let headers = r.headers().clone();
    let text = r
        .body_mut()
        .with_config()
        .limit(50 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        text,
        json,
        set_cookie,
        content_type,
        www_authenticate,
        headers,
    }
}

/// Request options beyond the bearer token.
#[derive(Default, Clone)]
pub struct Opts<'a> {
    pub cookie: Option<&'a str>,
    pub csrf: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub content_type: Option<&'a str>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.get_with(path, token, &Opts::default())
    }

    pub fn get_with(&self, path: &str, token: Option<&str>, o: &Opts) -> Resp {
        let mut req = self.agent.get(self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(c) = o.cookie {
            req = req.header("Cookie", c);
        }
        finish(req.call())
    }

    /// POSTs `body` (JSON unless `o.content_type` says otherwise; empty string: no body).
    pub fn post_with(&self, path: &str, token: Option<&str>, body: &str, o: &Opts) -> Resp {
        let mut req = self.agent.post(self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        if let Some(c) = o.cookie {
            req = req.header("Cookie", c);
        }
        if let Some(c) = o.csrf {
            req = req.header("X-CSRF-Token", c);
        }
        if let Some(c) = o.origin {
            req = req.header("Origin", c);
        }
        req = req.header("Content-Type", o.content_type.unwrap_or("application/json"));
        finish(req.send(body))
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> Resp {
        self.post_with(path, token, body, &Opts::default())
    }

    pub fn post_xml(&self, path: &str, token: Option<&str>, xml: &str) -> Resp {
        self.post_with(
            path,
            token,
            xml,
            &Opts {
                content_type: Some("application/xml"),
                ..Default::default()
            },
        )
    }

    pub fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        let mut req = self.agent.delete(self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        finish(req.call())
    }

    /// Announces a body of `len` bytes and sends only its start: the server must refuse it by its
    /// length alone (413) without reading it. Returns the raw response.
    pub fn oversized(&self, path: &str, token: &str, len: usize) -> String {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{{"
        );
        c.write_all(head.as_bytes()).expect("send");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Sends `request` (a whole HTTP/1.1 request, head and body) as it is, over a new connection;
    /// returns the status and the raw response. For what a client library would not send (a
    /// forged `Host`).
    pub fn raw(&self, request: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let addr = self.base.trim_start_matches("http://");
        let mut c = std::net::TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(request.as_bytes()).expect("send");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    /// Reads a `text/event-stream` until `end` (or the deadline); returns the raw text.
    pub fn sse(&self, path: &str, token: &str, timeout: Duration) -> String {
        use std::io::Read;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        let mut r = agent
            .get(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .expect("sse request");
        assert_eq!(r.status().as_u16(), 200, "follow answered {}", r.status());
        let mut reader = r.body_mut().as_reader();
        let mut out = String::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if out.contains("event: end") {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        out
    }

    /// Polls `GET path` until `check` accepts the JSON; panics with the last body on timeout.
    pub fn wait_json(
        &self,
        path: &str,
        token: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.get(path, Some(token));
            if r.status == 200 && check(&r.json) {
                return r.json;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last: {} {}",
                r.status,
                r.text
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until an instance has ended; returns its detail.
    pub fn ended(&self, id: i64, token: &str) -> Value {
        self.wait_json(
            &format!("/api/v1/instances/{id}"),
            token,
            &format!("instance {id} to end"),
            |j| {
                matches!(
                    j["instance"]["status"].as_str(),
                    Some("succeeded" | "failed" | "killed")
                )
            },
        )
    }
}

/// A workflow file with one shell action.
pub fn workflow(name: &str, dir: &str, command: &str) -> String {
    format!(
        r#"<work-flow name="{name}" dir="{dir}" desc="test workflow {name}">
  <start name="start" to="a"/>
  <action name="a"><shell><command><![CDATA[{command}]]></command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#
    )
}
