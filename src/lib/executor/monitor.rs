//! Sensors: `file-monitor` (files present, big enough, and no longer changing) and `data-monitor`
//! (a number within bounds).
//!
//! file-monitor lists one directory of the local file system (SFTP and HDFS links fail clearly),
//! matches file names against a shell glob (`*`, `?`, `[a-z]`, `[!x]`), checks `min-num` and
//! `min-each-size`, then waits `file_monitor_recheck_secs` and lists again: the names and sizes must
//! be unchanged, so a file still being written is not taken. With `retry-times`/`interval` it is the
//! "wait for the file" sensor. Listing runs on the blocking pool.
//!
//! data-monitor evaluates its source and bounds (SQL first cell, COMMAND stdout, NUM literal) as
//! numbers, checks once, and records every check in `data_monitor` through the executor port, whether it
//! passed, failed, or could not be evaluated. A violation fails the attempt with the rendered
//! `warn-msg` in the message, or, with `is-exceed-error="false"`, passes with a warning line.

use std::path::{Path, PathBuf};

use super::db::guarded;
use super::db::Guarded;
use super::{links, process, sql, AttemptContext, Outcome, Stopper};
use crate::definition::{DataMonitor, DataSource, FileMonitor};
use crate::state::AttemptEnd;
use crate::store::NewDataMonitorCheck;

/// Whether `name` matches the shell glob `pattern` (a leading `.` must be matched explicitly).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_at(&p, &n)
}

fn matches_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|k| matches_at(&p[1..], &n[k..])),
        Some('?') => !n.is_empty() && matches_at(&p[1..], &n[1..]),
        Some('[') => match class(&p[1..]) {
            Some((set, negated, rest)) => {
                n.first().is_some_and(|c| set.contains(c) != negated)
                    && matches_at(&p[1 + rest..], &n[1..])
            }
            // an unclosed `[` is a literal
            None => n.first() == Some(&'[') && matches_at(&p[1..], &n[1..]),
        },
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && matches_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && matches_at(&p[1..], &n[1..]),
    }
}

/// A bracket class after its `[`: the member characters, whether negated, and how many pattern
/// characters it used (through the `]`).
fn class(p: &[char]) -> Option<(Vec<char>, bool, usize)> {
    let mut i = 0;
    let negated = matches!(p.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut set = Vec::new();
    let first = i;
    while i < p.len() {
        let c = p[i];
        if c == ']' && i > first {
            return Some((set, negated, i + 1));
        }
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|e| *e != ']') {
            let (lo, hi) = (c, p[i + 2]);
            set.extend((lo..=hi).filter(|_| lo <= hi));
            i += 3;
        } else {
            set.push(c);
            i += 1;
        }
    }
    None
}

/// A byte count in the format's own units (base 1024), with the exact number.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    let v = format!("{v:.1}");
    format!(
        "{}{unit} ({bytes} bytes)",
        v.strip_suffix(".0").unwrap_or(&v)
    )
}

/// One matching file: name and size.
type Listing = Vec<(String, u64)>;

/// The regular files in `dir` whose names match `pattern`, sorted by name.
fn list(dir: &Path, pattern: &str) -> Result<Listing, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("directory `{}` does not exist", dir.display()),
        _ => format!("cannot list `{}`: {e}", dir.display()),
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !glob_match(pattern, &name) {
            continue;
        }
        // follows symlinks: a link to a file counts as that file
        match std::fs::metadata(e.path()) {
            Ok(m) if m.is_file() => out.push((name, m.len())),
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}

/// What is missing from a listing, or `None` when it satisfies the monitor.
pub(crate) fn shortfall(
    files: &Listing,
    shown: &str,
    min_num: u32,
    min_size: u64,
) -> Option<String> {
    let mut problems = Vec::new();
    if (files.len() as u64) < u64::from(min_num) {
        problems.push(if files.is_empty() {
            format!("no file matches `{shown}` (need at least {min_num})")
        } else {
            format!(
                "{} file(s) match `{shown}`, need at least {min_num}",
                files.len()
            )
        });
    }
    let small: Vec<String> = files
        .iter()
        .filter(|(_, size)| *size < min_size)
        .map(|(name, size)| format!("{name} ({})", human_size(*size)))
        .collect();
    if !small.is_empty() {
        let more = if small.len() > 10 {
            format!(" and {} more", small.len() - 10)
        } else {
            String::new()
        };
        problems.push(format!(
            "{} file(s) smaller than min-each-size {}: {}{more}",
            small.len(),
            human_size(min_size),
            small[..small.len().min(10)].join(", ")
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

fn with_warning(
    ctx: &AttemptContext,
    warn: Option<&crate::definition::template::Template>,
    detail: String,
) -> Result<String, String> {
    Ok(match warn.map(|w| ctx.render(w)).transpose()? {
        Some(w) if !w.trim().is_empty() => format!("{}: {detail}", w.trim()),
        _ => detail,
    })
}

async fn listing(dir: PathBuf, pattern: String) -> Result<Listing, String> {
    tokio::task::spawn_blocking(move || list(&dir, &pattern))
        .await
        .map_err(|e| format!("listing failed: {e}"))?
}

pub(super) async fn run_file(ctx: &AttemptContext, stop: &Stopper, m: &FileMonitor) -> Outcome {
    let link = links::file_link(ctx, &m.file_link).await?;
    links::require_local(&link)?;
    let dir = ctx.render(&m.dir)?;
    let pattern = ctx.render(&m.pattern)?;
    let shown = format!("{}/{pattern}", dir.trim_end_matches('/'));
    let files = listing(PathBuf::from(&dir), pattern.clone())
        .await
        .map_err(|e| with_warning(ctx, m.warn_msg.as_ref(), e).unwrap_or_else(|e| e))?;
    ctx.log
        .out(format!("{} file(s) match `{shown}`", files.len()))
        .await;
    for (name, size) in files.iter().take(50) {
        ctx.log
            .out(format!("  {name}  {}", human_size(*size)))
            .await;
    }
    if let Some(missing) = shortfall(&files, &shown, m.min_num, m.min_each_size_bytes) {
        return Err(with_warning(ctx, m.warn_msg.as_ref(), missing)?);
    }
    let wait = ctx.settings.file_monitor_recheck;
    ctx.log
        .out(format!(
            "re-checking in {:.1} s that the files are no longer changing",
            wait.as_secs_f64()
        ))
        .await;
    if let Some(end) = stop.sleep(wait).await {
        return Ok(end);
    }
    let again = listing(PathBuf::from(&dir), pattern).await?;
    if again != files {
        let changed: Vec<String> = again
            .iter()
            .filter(|f| !files.contains(f))
            .chain(files.iter().filter(|f| !again.iter().any(|g| g.0 == f.0)))
            .take(10)
            .map(|(n, _)| n.clone())
            .collect();
        let detail = format!(
            "the files matching `{shown}` changed during the {:.1} s re-check (still being written?): {}",
            wait.as_secs_f64(),
            changed.join(", ")
        );
        return Err(with_warning(ctx, m.warn_msg.as_ref(), detail)?);
    }
    ctx.log
        .out("stable: the listing and sizes did not change")
        .await;
    Ok(AttemptEnd::Succeeded)
}

/// Parses a number the way a person writes it (surrounding whitespace ignored).
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Evaluates one source or bound: `Ok(Ok(v))`, `Ok(Err(end))` when stopped, `Err` when it has no
/// numeric value.
async fn evaluate(
    ctx: &AttemptContext,
    stop: &Stopper,
    src: &DataSource,
    role: &str,
) -> Result<Result<f64, AttemptEnd>, String> {
    match src {
        DataSource::Num { value } => {
            let text = ctx.render(value)?;
            let v = parse_number(&text)
                .ok_or_else(|| format!("{role} (NUM) `{}` is not a number", text.trim()))?;
            ctx.log.out(format!("{role} (NUM): {v}")).await;
            Ok(Ok(v))
        }
        DataSource::Command { command } => {
            let line = ctx.render(command)?;
            ctx.log
                .out(format!("{role} (COMMAND): {}", sql::preview(&line, 200)))
                .await;
            let out = match process::capture(ctx, stop, &line).await? {
                Ok(out) => out,
                Err(end) => return Ok(Err(end)),
            };
            let v = parse_number(&out).ok_or_else(|| {
                format!(
                    "{role} (COMMAND) printed `{}`, which is not a number",
                    sql::preview(&out, 100)
                )
            })?;
            ctx.log.out(format!("{role} (COMMAND): {v}")).await;
            Ok(Ok(v))
        }
        DataSource::Sql { db_link, query } => {
            let text = ctx.render(query)?;
            let mut s = match sql::open(ctx, stop, db_link).await? {
                Ok(s) => s,
                Err(end) => return Ok(Err(end)),
            };
            ctx.log
                .out(format!("{role} (SQL): {}", sql::preview(&text, 200)))
                .await;
            let text = text.trim().trim_end_matches(';').to_string();
            let got = {
                let crate::executor::db::Session { conn, cancel, .. } = &mut s;
                guarded(cancel, stop, &ctx.log, conn.first_row(&text)).await
            };
            let result = match got {
                Guarded::Done(Ok(row)) => {
                    let cell = row.and_then(|r| r.into_iter().next()).flatten();
                    match cell {
                        None => Err(format!("{role} (SQL) returned no value (no row, or NULL)")),
                        Some(c) => parse_number(&c).map(Ok).ok_or_else(|| {
                            format!("{role} (SQL) returned `{c}`, which is not a number")
                        }),
                    }
                }
                Guarded::Done(Err(e)) => Err(format!("{role} (SQL) failed: {}", s.error(&e))),
                Guarded::Stopped { end, settled } => {
                    s.broken = !settled;
                    Ok(Err(end))
                }
            };
            s.close().await;
            if let Ok(Ok(v)) = &result {
                ctx.log.out(format!("{role} (SQL): {v}")).await;
            }
            result
        }
    }
}

pub(super) async fn run_data(ctx: &AttemptContext, stop: &Stopper, m: &DataMonitor) -> Outcome {
    let time_mark = m.time_mark.as_ref().map(|t| ctx.render(t)).transpose()?;
    let mut check = NewDataMonitorCheck {
        workflow: ctx.workflow.clone(),
        instance_id: ctx.instance_id,
        task_id: ctx.task_id,
        node: ctx.node.clone(),
        category: m.category.clone(),
        source_name: m.source_name.clone(),
        time_mark,
        value: None,
        min_value: None,
        max_value: None,
        passed: false,
        message: String::new(),
    };
    let evaluated = async {
        check.value = Some(match evaluate(ctx, stop, &m.source, "source").await? {
            Ok(v) => v,
            Err(end) => return Ok(Err(end)),
        });
        for (bound, slot, role) in [
            (&m.min, &mut check.min_value, "min"),
            (&m.max, &mut check.max_value, "max"),
        ] {
            if let Some(b) = bound {
                *slot = Some(match evaluate(ctx, stop, b, role).await? {
                    Ok(v) => v,
                    Err(end) => return Ok(Err(end)),
                });
            }
        }
        Ok::<_, String>(Ok(()))
    }
    .await;
    let violation = match evaluated {
        // a stopped check is no check: nothing to record
        Ok(Err(end)) => return Ok(end),
        Err(e) => Some(with_warning(ctx, m.warn_msg.as_ref(), e)?),
        Ok(Ok(())) => {
            let v = check.value.expect("evaluated above");
            match (check.min_value, check.max_value) {
                (Some(lo), _) if v < lo => Some(format!("value {v} is below the minimum {lo}")),
                (_, Some(hi)) if v > hi => Some(format!("value {v} is above the maximum {hi}")),
                _ => None,
            }
            .map(|d| with_warning(ctx, m.warn_msg.as_ref(), d))
            .transpose()?
        }
    };
    let evaluated_ok = check.value.is_some()
        && (m.min.is_none() || check.min_value.is_some())
        && (m.max.is_none() || check.max_value.is_some());
    check.passed = violation.is_none();
    check.message = violation.clone().unwrap_or_else(|| {
        let bound = |b: Option<f64>, dflt: &str| b.map(|x| x.to_string()).unwrap_or(dflt.into());
        format!(
            "value {} is within [{}, {}]",
            check.value.unwrap_or_default(),
            bound(check.min_value, "-∞"),
            bound(check.max_value, "∞")
        )
    });
    ctx.port
        .monitor_check_record(&check)
        .await
        .map_err(|e| format!("cannot record the check in data_monitor: {e}"))?;
    match violation {
        None => {
            ctx.log.out(check.message).await;
            Ok(AttemptEnd::Succeeded)
        }
        Some(msg) if evaluated_ok && !m.exceed_is_error => {
            ctx.log
                .out(format!(
                    "warning: {msg} (passing: is-exceed-error=\"false\")"
                ))
                .await;
            Ok(AttemptEnd::Succeeded)
        }
        Some(msg) => Err(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_the_shell() {
        let cases = [
            ("*", "a.log", true),
            ("*", ".hidden", false),
            (".*", ".hidden", true),
            ("item_*.log", "item_2024.log", true),
            ("item_*.log", "item_2024.log.tmp", false),
            ("item_*.log", "item_.log", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]*", "b1", true),
            ("[ab]*", "c1", false),
            ("[!ab]*", "c1", true),
            ("[^ab]*", "a1", false),
            ("f[0-9].csv", "f7.csv", true),
            ("f[0-9].csv", "fx.csv", false),
            ("[]x]", "]", true),
            ("a[", "a[", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("订单_*.csv", "订单_1.csv", true),
            ("*.csv", "data.CSV", false),
            ("profile", "profile", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n), want, "{p} ~ {n}");
        }
    }

    #[test]
    fn sizes_read_like_the_format() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1023), "1023B");
        assert_eq!(human_size(1024), "1K (1024 bytes)");
        assert_eq!(human_size(1536), "1.5K (1536 bytes)");
        assert_eq!(human_size(2 * 1024 * 1024), "2M (2097152 bytes)");
        assert_eq!(
            human_size(3 * 1024 * 1024 * 1024 / 2),
            "1.5G (1610612736 bytes)"
        );
    }

    #[test]
    fn shortfall_names_what_is_missing() {
        let files: Listing = vec![("a.csv".into(), 10), ("b.csv".into(), 2048)];
        assert_eq!(shortfall(&files, "/d/*.csv", 2, 10), None);
        assert_eq!(shortfall(&files, "/d/*.csv", 0, 0), None);
        let e = shortfall(&files, "/d/*.csv", 3, 0).unwrap();
        assert_eq!(e, "2 file(s) match `/d/*.csv`, need at least 3");
        let e = shortfall(&files, "/d/*.csv", 1, 1024).unwrap();
        assert_eq!(
            e,
            "1 file(s) smaller than min-each-size 1K (1024 bytes): a.csv (10B)"
        );
        let e = shortfall(&vec![], "/d/x*", 1, 0).unwrap();
        assert_eq!(e, "no file matches `/d/x*` (need at least 1)");
    }

    #[test]
    fn listing_matches_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a_1.log"), "x").unwrap();
        std::fs::write(dir.path().join("a_2.log"), "xyz").unwrap();
        std::fs::write(dir.path().join("b_1.log"), "x").unwrap();
        std::fs::create_dir(dir.path().join("a_dir.log")).unwrap();
        let got = list(dir.path(), "a_*.log").unwrap();
        assert_eq!(got, vec![("a_1.log".into(), 1), ("a_2.log".into(), 3)]);
        let e = list(&dir.path().join("missing"), "*").unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn numbers_parse_with_whitespace() {
        assert_eq!(parse_number(" 42\n"), Some(42.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("1e3"), Some(1000.0));
        assert_eq!(parse_number("12 rows"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number(""), None);
    }
}
