//! Which names and origins this server answers to, and the guard that applies them when auth is
//! off.
//!
//! With `--no-auth` every request acts as an admin, so the loopback address is the only fence, and
//! a browser is the way over it: a page on any website can make the browser send "simple" requests
//! to `127.0.0.1` (a `text/plain` POST, an `<img>` GET of a legacy route), and a DNS-rebinding page
//! can even read the answers under its own name. So, with auth off, a request is answered only when
//! - its `Host` names this server: the bound address, `localhost` or `127.0.0.1` (with the bound
//!   port), or the configured `public_url` (a rebinding page sends its own name);
//! - its `Origin`, when it has one, is this server's own, whatever the method (a cross-origin page
//!   has no business here, not even reading);
//! - its `Sec-Fetch-Site`, when the browser sends one, is `same-origin` or `none`, except for a
//!   top-level navigation GET to a page (a link from elsewhere to the UI is harmless; the legacy
//!   GET routes change things, so they are never exempt).
//!
//! Clients that are not browsers send neither `Origin` nor `Sec-Fetch-Site` and pass. With auth on,
//! tokens and `SameSite=Strict` cookies do this job; the session's CSRF check uses
//! [`Origins::origin_ok`] too, so a `public_url` behind a proxy works.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::error::{Error, Result};

/// The `Host` values and origins that name this server, lowercased.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origins {
    hosts: Vec<String>,
    origins: Vec<String>,
}

/// A configured `public_url`: `http(s)://host[:port][/path]`, as far as names and origins go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    pub https: bool,
    /// Lowercased; an IPv6 address keeps its brackets.
    pub host: String,
    /// `None` when the URL names none (the scheme's default).
    pub port: Option<u16>,
}

/// Checks a configured `public_url` (parsed by hand: only its scheme, host and port matter here).
pub(crate) fn parse_public_url(text: &str) -> Result<PublicUrl> {
    let bad = |why: &str| {
        Error::Config(format!(
            "bad public_url `{text}`: {why} (expected e.g. https://akkaflow.example.com)"
        ))
    };
    let (scheme, rest) = text
        .trim()
        .split_once("://")
        .ok_or_else(|| bad("no scheme"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return Err(bad("the scheme must be http or https")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("no user or password in it"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (authority, None), // bare IPv6
        Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad("bad port"))?)),
        None => (authority, None),
    };
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if !valid {
        return Err(bad("bad host name"));
    }
    Ok(PublicUrl {
        https,
        host: host.to_ascii_lowercase(),
        port: port.filter(|p| *p != if https { 443 } else { 80 }),
    })
}

impl Origins {
    pub fn new(bound: SocketAddr, public_url: Option<&PublicUrl>) -> Origins {
        let port = bound.port();
        let ip = match bound.ip() {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        let mut names = vec![ip, "localhost".to_string(), "127.0.0.1".to_string()];
        if bound.ip().is_loopback() {
            names.push("[::1]".to_string());
        }
        let mut hosts: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
        if port == 80 {
            hosts.extend(names);
        }
        let mut origins: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
        if let Some(u) = public_url {
            let scheme = if u.https { "https" } else { "http" };
            let authority = match u.port {
                Some(p) => format!("{}:{p}", u.host),
                None => {
                    let default = if u.https { 443 } else { 80 };
                    hosts.push(format!("{}:{default}", u.host));
                    u.host.clone()
                }
            };
            origins.push(format!("{scheme}://{authority}"));
            hosts.push(authority);
        }
        Origins { hosts, origins }
    }

    pub fn host_ok(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    pub fn origin_ok(&self, origin: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        self.origins.contains(&origin)
    }
}

fn refuse(code: &'static str, message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, code, message).into_response()
}

/// The auth-off guard described in the module doc; with auth on it passes everything.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.auth {
        return next.run(req).await;
    }
    let h = req.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST.as_str())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if !state.origins.host_ok(&host) {
        return refuse(
            "bad_host",
            format!(
                "Host `{host}` does not name this server: with auth off it answers only to its \
                 own address, localhost or the configured public_url"
            ),
        );
    }
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        if !state.origins.origin_ok(origin) {
            return refuse(
                "cross_origin",
                format!("cross-site request from `{origin}` refused (auth is off)"),
            );
        }
    }
    if let Some(site) = text("sec-fetch-site") {
        let navigation = matches!(*req.method(), Method::GET | Method::HEAD)
            && text("sec-fetch-mode") == Some("navigate")
            && !req.uri().path().starts_with("/akkaflow");
        if !matches!(site, "same-origin" | "none") && !navigation {
            return refuse(
                "cross_origin",
                format!("request from another site (Sec-Fetch-Site: {site}) refused (auth is off)"),
            );
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_loopback_server_and_its_public_url() {
        let url = parse_public_url("https://Flow.Example.com/").unwrap();
        let o = Origins::new("127.0.0.1:8090".parse().unwrap(), Some(&url));
        for ok in [
            "127.0.0.1:8090",
            "localhost:8090",
            "LOCALHOST:8090",
            "[::1]:8090",
            "flow.example.com",
            "flow.example.com:443",
        ] {
            assert!(o.host_ok(ok), "{ok}");
        }
        for bad in [
            "evil.example:8090",
            "127.0.0.1:8091",
            "127.0.0.1",
            "localhost",
            "",
            "flow.example.com:8090",
        ] {
            assert!(!o.host_ok(bad), "{bad}");
        }
        for ok in [
            "http://127.0.0.1:8090",
            "http://localhost:8090/",
            "https://flow.example.com",
        ] {
            assert!(o.origin_ok(ok), "{ok}");
        }
        for bad in [
            "http://evil.example",
            "null",
            "https://127.0.0.1:8090",
            "http://flow.example.com",
        ] {
            assert!(!o.origin_ok(bad), "{bad}");
        }
        for bad in [
            "ftp://x",
            "not a url",
            "https://",
            "https://u:p@host",
            "http://host:99999",
        ] {
            assert!(parse_public_url(bad).is_err(), "{bad}");
        }
        let u = parse_public_url("http://Proxy:8443/akkaflow").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port),
            (false, "proxy", Some(8443))
        );
    }
}
