//! `akkaflow health`: is this one role alive, for a container's health check. A scheduler or worker is
//! healthy when its own heartbeat row is fresh (by the database's clock); an HTTP role when it answers
//! on its address. It says nothing about the rest of the cluster.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::connect;
use crate::config::Config;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    Scheduler,
    Worker,
    Http,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The role running beside this command (in the same container or on the same host)
    #[arg(long, value_enum)]
    role: Role,
    /// Worker: the `--name` it runs with (default: the host name, as the worker's default)
    #[arg(long)]
    name: Option<String>,
    /// HTTP: the `--listen` address it serves (an unspecified IP is checked on loopback)
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Scheduler, worker: the oldest heartbeat still healthy (default: the lease TTL)
    #[arg(long)]
    max_age_secs: Option<f64>,
}

/// Exit 0 when the role is healthy, 1 with the reason on stderr when it is not.
pub(super) async fn health(cfg: &Config, args: HealthArgs) -> Result<i32> {
    let verdict = match args.role {
        Role::Http => http(&args.listen),
        Role::Scheduler | Role::Worker => {
            let max_age = args.max_age_secs.unwrap_or(cfg.lease_ttl.as_secs_f64());
            heartbeat(cfg, &args, max_age).await?
        }
    };
    Ok(match verdict {
        Ok(what) => {
            println!("healthy: {what}");
            0
        }
        Err(why) => {
            eprintln!("unhealthy: {why}");
            1
        }
    })
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// The freshest heartbeat among this role's running rows (a restarted process leaves its old row).
async fn heartbeat(
    cfg: &Config,
    args: &HealthArgs,
    max_age: f64,
) -> Result<std::result::Result<String, String>> {
    let store = connect(cfg).await?;
    let (who, age) = if args.role == Role::Worker {
        let name = args.name.clone().unwrap_or_else(hostname);
        let age = store
            .worker_list()
            .await?
            .into_iter()
            .filter(|w| w.name == name && w.state != "stopped")
            .map(|w| w.heartbeat_age_s)
            .reduce(f64::min);
        (format!("worker {name}"), age)
    } else {
        let host = hostname();
        let now = store.now().await?;
        let age = store
            .scheduler_list()
            .await?
            .into_iter()
            .filter(|s| s.host == host && s.state != "stopped")
            .map(|s| (now - s.heartbeat_at).num_milliseconds() as f64 / 1000.0)
            .reduce(f64::min);
        (format!("scheduler on {host}"), age)
    };
    Ok(match age {
        None => Err(format!("{who} has no running heartbeat row")),
        Some(age) if age > max_age => Err(format!(
            "{who}: last heartbeat {age:.1}s ago (more than {max_age}s)"
        )),
        Some(age) => Ok(format!("{who}: heartbeat {age:.1}s ago")),
    })
}

/// One plain HTTP request: any HTTP response proves the server is serving.
fn http(listen: &str) -> std::result::Result<String, String> {
    let addr = loopback_for(listen).map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(3);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("HTTP on {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("HTTP on {addr}: {e}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("HTTP on {addr}: no answer: {e}"))?;
    if head.starts_with(b"HTTP/1.") {
        Ok(format!(
            "HTTP on {addr} answers {}",
            String::from_utf8_lossy(&head[9..12])
        ))
    } else {
        Err(format!("HTTP on {addr}: not an HTTP answer"))
    }
}

/// The address to connect to for a listen address: `0.0.0.0` and `::` become loopback.
fn loopback_for(listen: &str) -> Result<SocketAddr> {
    let mut addr = listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Error::Config(format!("--listen `{listen}` is not an address")))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_listen_address_is_checked_on_loopback() {
        assert_eq!(
            loopback_for("0.0.0.0:8090").unwrap(),
            "127.0.0.1:8090".parse().unwrap()
        );
        assert_eq!(
            loopback_for("[::]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            loopback_for("10.1.2.3:9").unwrap(),
            "10.1.2.3:9".parse().unwrap()
        );
        assert!(loopback_for("nonsense").is_err());
    }
}
