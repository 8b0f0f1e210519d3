//! The fleet: scheduler and worker processes spawned from this very binary, their peak memory read
//! from `/proc/<pid>/status` (`VmHWM`: the process itself, never its children), stopped with SIGTERM.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub(crate) struct FleetOptions {
    pub url: String,
    pub config_file: Option<PathBuf>,
    pub schedulers: usize,
    pub workers: usize,
    pub slots: usize,
    pub noop: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Scheduler,
    Worker,
}

pub(crate) struct Fleet {
    children: Vec<(Role, Child)>,
    /// Where the processes run (their work_dir and logs); removed on stop.
    pub dir: PathBuf,
}

fn io(context: &str, source: std::io::Error) -> Error {
    Error::Io {
        context: context.into(),
        source,
    }
}

impl Fleet {
    pub(crate) fn spawn(o: &FleetOptions) -> Result<Fleet> {
        let exe = std::env::current_exe().map_err(|e| io("finding this executable", e))?;
        let dir = std::env::temp_dir().join(format!(
            "akkaflow-bench-{}-{:04x}",
            std::process::id(),
            fastrand::u16(..)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| io("creating the fleet directory", e))?;
        let mut fleet = Fleet {
            children: Vec::new(),
            dir,
        };
        let slots = o.slots.to_string();
        let mut roles = vec![(Role::Scheduler, vec!["scheduler".to_string()]); o.schedulers];
        for i in 0..o.workers {
            let mut args = vec![
                "worker".to_string(),
                "--slots".into(),
                slots.clone(),
                "--name".into(),
                format!("bench{i}"),
            ];
            if o.noop {
                args.push("--bench-noop".into());
            }
            roles.push((Role::Worker, args));
        }
        for (n, (role, args)) in roles.into_iter().enumerate() {
            let log = std::fs::File::create(fleet.dir.join(format!("{n}-{}.log", args[0])))
                .map_err(|e| io("creating a fleet log", e))?;
            let mut cmd = Command::new(&exe);
            cmd.args(&args)
                .current_dir(&fleet.dir)
                .env("AKKAFLOW_DATABASE_URL", &o.url)
                .env("AKKAFLOW_WORK_DIR", fleet.dir.join("work"))
                .env(
                    "AKKAFLOW_LOG",
                    std::env::var("AKKAFLOW_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
                )
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| io("duplicating a log", e))?)
                .stderr(log)
                .kill_on_drop(true);
            match &o.config_file {
                Some(f) => cmd.env("AKKAFLOW_CONFIG", f),
                None => cmd.env_remove("AKKAFLOW_CONFIG"),
            };
            let child = cmd.spawn().map_err(|e| io("starting a fleet process", e))?;
            fleet.children.push((role, child));
        }
        Ok(fleet)
    }

    fn pids(&self, role: Role) -> Vec<i64> {
        self.children
            .iter()
            .filter(|(r, _)| *r == role)
            .filter_map(|(_, c)| c.id().map(i64::from))
            .collect()
    }

    pub(crate) fn worker_pids(&self) -> Vec<i64> {
        self.pids(Role::Worker)
    }

    pub(crate) fn scheduler_pids(&self) -> Vec<i64> {
        self.pids(Role::Scheduler)
    }

    /// Fails when a process has exited (its log says why).
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        for (n, (_, c)) in self.children.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(Error::Config(format!(
                    "fleet process {n} exited ({status}); see its log in {}",
                    self.dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Peak RSS in KiB of each worker and each scheduler, read while they still run.
    pub(crate) fn peak_rss(&self) -> (Vec<u64>, Vec<u64>) {
        let read = |pids: Vec<i64>| {
            pids.into_iter()
                .filter_map(|p| status_kib(p, "VmHWM"))
                .collect()
        };
        (read(self.worker_pids()), read(self.scheduler_pids()))
    }

    /// Current RSS in KiB of each worker.
    pub(crate) fn worker_rss(&self) -> Vec<u64> {
        self.worker_pids()
            .into_iter()
            .filter_map(|p| status_kib(p, "VmRSS"))
            .collect()
    }

    /// SIGTERM to all, then wait (SIGKILL after the grace); removes the directory unless kept.
    pub(crate) async fn stop(mut self) {
        for (_, c) in &self.children {
            if let Some(pid) = c.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for (_, c) in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(20), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
        if std::env::var_os("AKKAFLOW_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A `Vm*` line of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: i64, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
