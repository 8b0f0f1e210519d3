//! The worker's host as its heartbeat reports it: CPU, load, memory and the free space of the work
//! directory's file system, read with `sysinfo`.
//!
//! One [`HostProbe`] per worker, kept for its life: `sysinfo` computes the CPU share from the
//! difference of two readings, so the probe keeps the last one, and each sample refreshes only what
//! it reads (the CPU times, the RAM figures, the one disk of the work directory), a few small reads
//! of `/proc` and one `statvfs`, nothing per process.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sysinfo::{DiskRefreshKind, Disks, MemoryRefreshKind, System, MINIMUM_CPU_UPDATE_INTERVAL};

use crate::store::HostSample;

pub(crate) struct HostProbe {
    sys: System,
    /// When the CPU times were last read: a share over less than sysinfo's minimum is noise.
    cpu_read: Instant,
    disks: Disks,
    /// The disk whose mount point holds the work directory (the longest that is its prefix).
    disk: Option<usize>,
}

impl HostProbe {
    pub(crate) fn new(work_dir: &Path) -> HostProbe {
        let mut sys = System::new();
        sys.refresh_cpu_usage();
        let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing());
        let dir = existing_ancestor(work_dir);
        let disk = disks
            .list()
            .iter()
            .enumerate()
            .filter(|(_, d)| dir.starts_with(d.mount_point()))
            .max_by_key(|(_, d)| d.mount_point().as_os_str().len())
            .map(|(i, _)| i);
        if disk.is_none() {
            tracing::debug!(dir = %dir.display(), "no disk found for the work directory; its free space is not reported");
        }
        HostProbe {
            sys,
            cpu_read: Instant::now(),
            disks,
            disk,
        }
    }

    /// Reads the host now; `running` is the attempts the worker runs.
    pub(crate) fn sample(&mut self, running: usize) -> HostSample {
        let cpu_percent = if self.cpu_read.elapsed() >= MINIMUM_CPU_UPDATE_INTERVAL {
            self.sys.refresh_cpu_usage();
            self.cpu_read = Instant::now();
            let v = f64::from(self.sys.global_cpu_usage());
            v.is_finite().then(|| v.clamp(0.0, 100.0))
        } else {
            None
        };
        self.sys
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let load = System::load_average();
        let disk_free_bytes = self.disk.and_then(|i| {
            let d = self.disks.list_mut().get_mut(i)?;
            d.refresh_specifics(DiskRefreshKind::nothing().with_storage());
            i64::try_from(d.available_space()).ok()
        });
        HostSample {
            cpu_percent,
            load1: load.one,
            load5: load.five,
            load15: load.fifteen,
            mem_used_bytes: i64::try_from(self.sys.used_memory()).unwrap_or(i64::MAX),
            mem_total_bytes: i64::try_from(self.sys.total_memory()).unwrap_or(i64::MAX),
            disk_free_bytes,
            running_tasks: running as i64,
        }
    }
}

/// The work directory made absolute, or its nearest ancestor that exists (it is made on the first
/// attempt), with links resolved so it compares with mount points.
fn existing_ancestor(dir: &Path) -> PathBuf {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    abs.ancestors()
        .find_map(|p| std::fs::canonicalize(p).ok())
        .unwrap_or(abs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_reads_memory_and_the_work_dirs_disk_and_the_cpu_from_the_second_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut probe = HostProbe::new(&dir.path().join("not-made-yet"));
        let first = probe.sample(2);
        assert!(first.mem_total_bytes > 0, "{first:?}");
        assert!(
            first.mem_used_bytes > 0 && first.mem_used_bytes <= first.mem_total_bytes,
            "{first:?}"
        );
        assert!(first.disk_free_bytes.is_some_and(|b| b > 0), "{first:?}");
        assert!(first.load1 >= 0.0, "{first:?}");
        assert_eq!(first.running_tasks, 2);
        std::thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL);
        let second = probe.sample(0);
        let cpu = second
            .cpu_percent
            .expect("a share once two readings are apart");
        assert!((0.0..=100.0).contains(&cpu), "{second:?}");
    }
}
