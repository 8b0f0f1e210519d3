//! Removes the attempt directories of instances nobody has touched for the retention period
//! (`retention_days`, the same period the master keeps ended instances in the database). Every
//! attempt gets a directory of its own (`work_dir/<instance>/<task>-<attempt>`); without this the
//! work directory grows by one per attempt for as long as the worker runs, and a file system with
//! millions of directories makes each new one slower to create.
//!
//! An instance directory goes when its own modification time (a new attempt directory in it
//! updates it) is older than the period, it holds attempt directories and nothing else, and none
//! of this worker's running attempts is in it; an attempt directory made after the look is kept
//! with its instance directory.
//! Each worker prunes its own work directory (workers on one host may share it; removing what
//! another already removed is not an error).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::RunningMap;
use crate::state::TaskId;

#[derive(Clone, Debug)]
pub(super) struct WorkDirPrunerConfig {
    pub root: PathBuf,
    /// Instance directories untouched for longer than this are removed.
    pub keep: Duration,
    /// How often to look.
    pub every: Duration,
}

impl WorkDirPrunerConfig {
    pub(super) const EVERY: Duration = Duration::from_secs(3600);
}

/// Looks once at start, then every `cfg.every`, until `stop`.
pub(super) async fn run(cfg: WorkDirPrunerConfig, running: RunningMap, stop: CancellationToken) {
    loop {
        let busy: HashSet<TaskId> = running
            .lock()
            .expect("never poisoned")
            .keys()
            .copied()
            .collect();
        let (root, keep) = (cfg.root.clone(), cfg.keep);
        match tokio::task::spawn_blocking(move || run_once(&root, keep, &busy, SystemTime::now()))
            .await
        {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(removed = n, work_dir = %cfg.root.display(), "removed the attempt directories of instances past the retention period")
            }
            Ok(Err(e)) => {
                tracing::warn!(work_dir = %cfg.root.display(), error = %e, "could not prune the work directory")
            }
            Err(e) => tracing::warn!(error = %e, "the work directory pruner panicked"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(cfg.every) => {}
        }
    }
}

/// Removes the instance directories under `root` last modified more than `keep` before `now`
/// that hold no attempt of `running`; how many it removed.
pub(super) fn run_once(
    root: &Path,
    keep: Duration,
    running: &HashSet<TaskId>,
    now: SystemTime,
) -> std::io::Result<usize> {
    let Some(cutoff) = now.checked_sub(keep) else {
        return Ok(0);
    };
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        // only what the worker made: a directory named by an instance id
        let is_instance_dir = entry.file_type().is_ok_and(|t| t.is_dir())
            && entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.parse::<i64>().is_ok());
        if !is_instance_dir {
            continue;
        }
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| m < cutoff);
        if !old {
            continue;
        }
        let Some(attempts) = attempt_dirs(&path) else {
            continue;
        };
        if attempts.iter().any(|(task, _)| running.contains(task)) {
            continue;
        }
        match remove_listed(&path, &attempts) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove an old attempt directory")
            }
        }
    }
    Ok(removed)
}

/// Removes the attempt directories listed in instance directory `dir`, then `dir` itself unless
/// something appeared in it meanwhile: an attempt claimed after the listing (the instance was
/// idle for the whole period, but a retry or a rerun may still come) keeps its directory, and
/// `dir` is left for a later look. Whether `dir` is gone.
fn remove_listed(dir: &Path, attempts: &[(TaskId, PathBuf)]) -> std::io::Result<bool> {
    for (_, attempt) in attempts {
        match std::fs::remove_dir_all(attempt) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        // another worker sharing the directory removed it first
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(false),
        Err(e) => Err(e),
    }
}

/// The attempt directories (`<task>-<attempt>`) in `dir` with their tasks, when it holds at least
/// one and nothing else: a `work_dir` pointed at a directory of the user's (a `2024` folder, say)
/// loses nothing the worker did not make. One read of the directory answers both questions the
/// pruner asks: is it the worker's, and is any of its attempts still running.
fn attempt_dirs(dir: &Path) -> Option<Vec<(TaskId, PathBuf)>> {
    let mut attempts = Vec::new();
    for e in std::fs::read_dir(dir).ok()? {
        let e = e.ok()?;
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            return None;
        }
        let name = e.file_name();
        let (task, attempt) = name.to_str()?.split_once('-')?;
        attempt.parse::<i64>().ok()?;
        attempts.push((TaskId(task.parse().ok()?), e.path()));
    }
    (!attempts.is_empty()).then_some(attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn dir_aged(root: &Path, rel: &str, age: Duration, now: SystemTime) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::File::open(&p)
            .unwrap()
            .set_modified(now - age)
            .unwrap();
        p
    }

    #[test]
    fn removes_only_old_instance_directories_without_a_running_attempt() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let now = SystemTime::now();
        // attempt directories first: making them touches their instance directory
        dir_aged(root, "7/70-1", 40 * DAY, now);
        let old = dir_aged(root, "7", 40 * DAY, now);
        dir_aged(root, "8/80-1", 40 * DAY, now);
        let old_running = dir_aged(root, "8", 40 * DAY, now);
        dir_aged(root, "9/90-2", 40 * DAY, now);
        let recent = dir_aged(root, "9", 2 * DAY, now);
        let not_ours = dir_aged(root, "notes", 40 * DAY, now);
        std::fs::write(root.join("42"), "a file named like an instance").unwrap();
        std::fs::create_dir_all(root.join("2024")).unwrap();
        std::fs::write(root.join("2024/report.csv"), "the user's").unwrap();
        let users = dir_aged(root, "2024", 40 * DAY, now);
        let empty = dir_aged(root, "11", 40 * DAY, now);

        let running = HashSet::from([TaskId(80)]);
        assert_eq!(run_once(root, 30 * DAY, &running, now).unwrap(), 1);
        assert!(
            !old.exists(),
            "untouched for 40 days, nothing running in it"
        );
        assert!(old_running.exists(), "an attempt of it is still running");
        assert!(recent.exists(), "touched 2 days ago");
        assert!(
            not_ours.exists() && root.join("42").exists(),
            "not made by a worker"
        );
        assert!(
            users.exists() && empty.exists(),
            "named like an instance, but holding no attempt directory or something else too"
        );

        assert_eq!(run_once(root, 30 * DAY, &HashSet::new(), now).unwrap(), 1);
        assert!(!old_running.exists(), "its attempt ended");
        assert_eq!(
            run_once(&root.join("gone"), 30 * DAY, &HashSet::new(), now).unwrap(),
            0,
            "a work directory not made yet is nothing to prune"
        );
    }

    #[test]
    fn an_attempt_made_after_the_listing_keeps_its_directory_and_its_instance() {
        let tmp = tempfile::tempdir().unwrap();
        let instance = tmp.path().join("12");
        std::fs::create_dir_all(instance.join("120-1")).unwrap();
        std::fs::write(instance.join("120-1/out.csv"), "old").unwrap();
        let listed = attempt_dirs(&instance).unwrap();
        assert_eq!(listed, vec![(TaskId(120), instance.join("120-1"))]);
        // a retry claimed between the listing and the removal
        std::fs::create_dir_all(instance.join("120-2")).unwrap();
        assert!(!remove_listed(&instance, &listed).unwrap());
        assert!(!instance.join("120-1").exists(), "the listed attempt went");
        assert!(
            instance.join("120-2").exists(),
            "the new attempt's directory stays"
        );
        assert!(remove_listed(&instance, &attempt_dirs(&instance).unwrap()).unwrap());
        assert!(!instance.exists());
    }
}
