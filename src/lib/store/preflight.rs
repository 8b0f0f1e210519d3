//! A quick look at the database's address before the pool is built, so a wrong address fails at
//! once with its real cause ("connection refused at db:3306", "directory /var/lib/akkaflow does not
//! exist") instead of the pool's "timed out while waiting for an open connection" after 5 s.
//!
//! Owns nothing and changes nothing: one TCP connect that is closed at once, or a stat of the
//! SQLite file's directory. When the address is unusual (a Unix socket, no host), it says nothing
//! and lets the driver report.

use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use super::{redact_url, StoreError};

/// How long the TCP look waits; a server that does not answer in this time is reported as such.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn check(url: &str) -> Result<(), StoreError> {
    let reason = if let Some(path) = sqlite_path(url) {
        sqlite_dir_missing(Path::new(&path))
    } else if let Some((host, port)) = host_port(url) {
        tcp_unreachable(&host, port).await
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::Unreachable {
            url: redact_url(url),
            reason,
        }),
        None => Ok(()),
    }
}

/// The file of a `sqlite://FILE` or `sqlite:FILE` URL; `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && path != ":memory:").then(|| path.to_string())
}

fn sqlite_dir_missing(file: &Path) -> Option<String> {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty())?;
    (!dir.is_dir()).then(|| {
        format!(
            "directory {} does not exist: create it, or point the database URL at a file in an existing directory",
            dir.display()
        )
    })
}

/// Host and port of a `mysql://`, `mariadb://` or `postgres://` URL (default ports filled in);
/// `None` when it names no TCP host (a Unix socket).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        "mysql" | "mariadb" => 3306,
        "postgres" | "postgresql" => 5432,
        _ => return None,
    };
    if rest.contains("socket=") || rest.contains("host=/") {
        return None;
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host.to_string(), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (hostport.to_string(), None),
        }
    };
    if host.is_empty() || host.starts_with('%') {
        return None;
    }
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some((host, port))
}

async fn tcp_unreachable(host: &str, port: u16) -> Option<String> {
    let at = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(match e.kind() {
            ErrorKind::ConnectionRefused => {
                format!("connection refused at {at}: is the database server running there?")
            }
            _ if is_name_error(&e) => format!("cannot resolve host `{host}`: {e}"),
            _ => format!("{e} at {at}"),
        }),
        Err(_) => Some(format!(
            "no answer from {at} within {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// getaddrinfo failures surface as `Other`/`Uncategorized` errors with a resolver message.
fn is_name_error(e: &std::io::Error) -> bool {
    let text = e.to_string();
    text.contains("failed to lookup address") || text.contains("Name or service not known")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_urls() {
        let cases = [
            ("mysql://u:p@db:3307/x", Some(("db", 3307))),
            ("mariadb://u@db/x", Some(("db", 3306))),
            (
                "postgres://u:p@127.0.0.1/x?sslmode=disable",
                Some(("127.0.0.1", 5432)),
            ),
            ("postgresql://u:p:q@[::1]:6432/x", Some(("::1", 6432))),
            ("postgres:///x?host=/run/postgresql", None),
            ("mysql://u:p@localhost/x?socket=/tmp/m.sock", None),
            ("sqlite://a.db", None),
        ];
        for (url, want) in cases {
            assert_eq!(
                host_port(url),
                want.map(|(h, p)| (h.to_string(), p)),
                "{url}"
            );
        }
        assert_eq!(
            sqlite_path("sqlite:///var/x/a.db?mode=rwc").as_deref(),
            Some("/var/x/a.db")
        );
        assert_eq!(sqlite_path("sqlite://a.db").as_deref(), Some("a.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_refused_by_name_and_a_missing_directory_is_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = check(&format!("mysql://u:secret@127.0.0.1:{port}/x"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("connection refused at 127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");

        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("no/such");
        let err = check(&format!("sqlite://{}/a.db", missing.display()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("directory {} does not exist", missing.display())),
            "{err}"
        );
        check(&format!("sqlite://{}/a.db", tmp.path().display()))
            .await
            .unwrap();
    }
}
