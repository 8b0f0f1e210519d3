//! Process actions: `script`, `shell`, `file-executor`. Each runs in its own process group with the
//! instance's parameters in its environment (as `AKKAFLOW_PARAM_<name>`, never the plain name); stdout and stderr stream into the log line by line; a
//! kill or timeout stops the whole group (SIGTERM, then SIGKILL after a grace period).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::{AttemptContext, Stopper};
use crate::definition::template::Template;
use crate::state::AttemptEnd;
use crate::store::LogStream;

pub(super) async fn run_script(
    ctx: &AttemptContext,
    stop: &Stopper,
    code: &Template,
    param_line: Option<&Template>,
    attachments: &[String],
) -> Result<AttemptEnd, String> {
    let code = ctx.render(code)?;
    let args = match param_line {
        Some(p) => ctx.render(p)?,
        None => String::new(),
    };
    for file in attachments {
        let src = Path::new(file);
        let name = src
            .file_name()
            .ok_or_else(|| format!("attachment `{file}` has no file name"))?;
        tokio::fs::copy(src, ctx.work_dir.join(name))
            .await
            .map_err(|e| format!("cannot copy attachment `{file}`: {e}"))?;
    }
    let script = ctx.work_dir.join("script");
    tokio::fs::write(&script, &code)
        .await
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    // a shebang picks the interpreter; anything else runs with bash
    let line = if code.starts_with("#!") {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(|e| format!("cannot make the script executable: {e}"))?;
        format!("exec ./script {args}")
    } else {
        format!("exec bash ./script {args}")
    };
    run_command(ctx, stop, &line, &ctx.work_dir).await
}

pub(super) async fn run_shell(
    ctx: &AttemptContext,
    stop: &Stopper,
    command: &Template,
    cwd: Option<PathBuf>,
) -> Result<AttemptEnd, String> {
    let line = ctx.render(command)?;
    let cwd = cwd.unwrap_or_else(|| ctx.work_dir.clone());
    run_command(ctx, stop, &line, &cwd).await
}

/// The most of a captured stdout kept; a number never needs more.
const CAPTURE_MAX: usize = 64 * 1024;

/// Runs a command line (already rendered) in the attempt's directory and returns its stdout;
/// stderr goes to the log. A non-zero exit is an error; a stop kills the group and is `Err(end)`.
pub(super) async fn capture(
    ctx: &AttemptContext,
    stop: &Stopper,
    line: &str,
) -> Result<Result<String, AttemptEnd>, String> {
    use tokio::io::AsyncReadExt;
    let mut child = command(ctx, line, &ctx.work_dir)
        .spawn()
        .map_err(|e| format!("cannot start bash: {e}"))?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let err = tokio::spawn(pump(
        child.stderr.take(),
        ctx.log.clone(),
        LogStream::Stderr,
    ));
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stdout.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) if buf.len() < CAPTURE_MAX => buf.extend_from_slice(&chunk[..n]),
                Ok(_) => {}
            }
        }
        let status = child.wait().await;
        (buf, status)
    };
    tokio::pin!(read);
    let stopped = tokio::select! {
        (buf, status) = &mut read => {
            let _ = tokio::time::timeout(Duration::from_secs(5), err).await;
            let status = status.map_err(|e| format!("waiting for the command failed: {e}"))?;
            return match status.code() {
                Some(0) => Ok(Ok(String::from_utf8_lossy(&buf).into_owned())),
                Some(code) => Err(format!("the command exited with code {code}")),
                None => Err("the command was killed by a signal".into()),
            };
        }
        end = stop.stopped() => end,
    };
    ctx.log
        .system(format!(
            "[akkaflow] stopping the command's process group: {}",
            stopped.error().unwrap_or_default()
        ))
        .await;
    let _ = pgid.map(|g| killpg(g, Signal::SIGTERM));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = pgid.map(|g| killpg(g, Signal::SIGKILL));
    Ok(Err(stopped))
}

/// Prefix of the environment variable each parameter is exported as. Parameters are never
/// exported under their plain names: a caller-given `BASH_ENV`, `PATH` or `LD_PRELOAD` would run
/// code in every task (callers may only give declared or used parameters, and the validator
/// refuses such names, but the prefix keeps the environment safe whatever reaches it).
pub(crate) const PARAM_ENV_PREFIX: &str = "AKKAFLOW_PARAM_";

/// Valid environment variable names only; other parameter names are reachable through templates.
fn env_name_ok(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `bash -c line` in its own process group, with the instance's parameters in its environment as
/// `AKKAFLOW_PARAM_<name>`.
fn command(ctx: &AttemptContext, line: &str, cwd: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(line)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.process_group(0).kill_on_drop(true);
    for (k, v) in ctx.params.iter().filter(|(k, _)| env_name_ok(k)) {
        cmd.env(format!("{PARAM_ENV_PREFIX}{k}"), v);
    }
    cmd.env("AKKAFLOW_WORKFLOW", &ctx.workflow)
        .env("AKKAFLOW_INSTANCE_ID", ctx.instance_id.to_string())
        .env("AKKAFLOW_TASK_ID", ctx.task_id.to_string())
        .env("AKKAFLOW_NODE", &ctx.node)
        .env("AKKAFLOW_ATTEMPT", ctx.attempt.to_string())
        .env("AKKAFLOW_WORK_DIR", &ctx.work_dir);
    cmd
}

/// Runs an action's SQL through the command-line client configured for its link's kind: the script
/// is in `$AKKAFLOW_SQL_FILE`, the link in `$AKKAFLOW_DB_URL`, `$AKKAFLOW_DB_USER` and
/// `$AKKAFLOW_DB_PASSWORD` (the environment, not the command line, so `ps` never shows it).
pub(super) async fn run_sql_client(
    ctx: &AttemptContext,
    stop: &Stopper,
    link: &crate::definition::DbLink,
    client: &str,
    sql: &str,
) -> Result<AttemptEnd, String> {
    let file = ctx.work_dir.join("statements.sql");
    tokio::fs::write(&file, sql)
        .await
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    ctx.log
        .system(format!(
            "[akkaflow] running the {} client for db link `{}` on {}",
            link.kind.as_str(),
            link.name,
            file.display()
        ))
        .await;
    let mut cmd = command(ctx, client, &ctx.work_dir);
    cmd.env("AKKAFLOW_SQL_FILE", &file)
        .env("AKKAFLOW_DB_URL", &link.url)
        .env("AKKAFLOW_DB_USER", &link.username)
        .env("AKKAFLOW_DB_PASSWORD", &link.password);
    run_child(ctx, stop, cmd).await
}

async fn run_command(
    ctx: &AttemptContext,
    stop: &Stopper,
    line: &str,
    cwd: &Path,
) -> Result<AttemptEnd, String> {
    run_child(ctx, stop, command(ctx, line, cwd)).await
}

async fn run_child(
    ctx: &AttemptContext,
    stop: &Stopper,
    mut cmd: Command,
) -> Result<AttemptEnd, String> {
    let mut child = cmd.spawn().map_err(|e| format!("cannot start bash: {e}"))?;
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    // the pipes are drained on their own tasks so a chatty child never blocks on a full pipe
    let out = tokio::spawn(pump(
        child.stdout.take(),
        ctx.log.clone(),
        LogStream::Stdout,
    ));
    let err = tokio::spawn(pump(
        child.stderr.take(),
        ctx.log.clone(),
        LogStream::Stderr,
    ));
    let drain = || async {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = out.await;
            let _ = err.await;
        })
        .await;
    };
    let stopped = tokio::select! {
        status = child.wait() => {
            let status = status.map_err(|e| format!("waiting for the process failed: {e}"))?;
            drain().await;
            return Ok(match status.code() {
                Some(0) => AttemptEnd::Succeeded,
                Some(code) => AttemptEnd::Failed { exit_code: Some(code), error: format!("exited with code {code}") },
                None => AttemptEnd::Failed { exit_code: None, error: "killed by a signal".into() },
            });
        }
        end = stop.stopped() => end,
    };
    ctx.log
        .system(format!(
            "[akkaflow] stopping the process group: {}",
            stopped.error().unwrap_or_default()
        ))
        .await;
    stop_group(pgid, &mut child, ctx.kill_grace).await;
    drain().await;
    Ok(stopped)
}

async fn pump<R: AsyncRead + Unpin>(pipe: Option<R>, log: super::LogSink, stream: LogStream) {
    let Some(pipe) = pipe else { return };
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf);
                log.line(stream, text.trim_end_matches(['\n', '\r']).to_string())
                    .await;
            }
        }
    }
}

/// SIGTERM to the group, then SIGKILL if it is still there after `grace`.
async fn stop_group(pgid: Option<Pid>, child: &mut Child, grace: Duration) {
    let Some(pgid) = pgid else { return };
    let _ = killpg(pgid, Signal::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
    } else {
        // the leader is gone; make sure nothing it left in the group survives
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}
