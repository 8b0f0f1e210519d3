//! Logging a database outage once per process, however many loops find it.

use std::time::Duration;

use super::budget;

/// Logs a database outage once per process: one line when the first of its loops finds the
/// database gone, one when the database answers again, instead of one per failed call or per loop.
///
/// Each loop (claim, heartbeat, log writer, elector, ...) keeps its own `OutageLog`; they share the
/// process's state. The outage ends when a loop that failed succeeds again. A loop that fails in the
/// first moments after that (its own connection died with the server and is found dead only now)
/// is logged only when it lasts longer than [`OUTAGE_SETTLE`], so one restart of the server is two
/// lines in every process.
pub struct OutageLog {
    who: &'static str,
    failing: bool,
}

/// How long a failure right after an outage ended must last to be logged as a new outage.
pub const OUTAGE_SETTLE: Duration = Duration::from_secs(3);

struct ProcessOutage {
    /// Since when the database is away, and whether that was logged.
    down: Option<(std::time::Instant, bool)>,
    recovered_at: Option<std::time::Instant>,
}

static PROCESS_OUTAGE: std::sync::Mutex<ProcessOutage> = std::sync::Mutex::new(ProcessOutage {
    down: None,
    recovered_at: None,
});

impl OutageLog {
    pub fn new(who: &'static str) -> Self {
        OutageLog {
            who,
            failing: false,
        }
    }

    /// A call failed for want of the database. A server refusing new connections for too many is
    /// logged once per process and episode instead (see [`budget`]), naming what to raise.
    pub fn failed(&mut self, e: &(dyn std::error::Error + 'static)) {
        if budget::is_too_many(e) {
            budget::refused(self.who);
            return;
        }
        self.failing = true;
        let now = std::time::Instant::now();
        let mut p = PROCESS_OUTAGE.lock().unwrap_or_else(|e| e.into_inner());
        let announce = match p.down {
            None => {
                let settling = p
                    .recovered_at
                    .is_some_and(|t| now.duration_since(t) < OUTAGE_SETTLE);
                p.down = Some((now, !settling));
                !settling
            }
            Some((since, false)) if now.duration_since(since) >= OUTAGE_SETTLE => {
                p.down = Some((since, true));
                true
            }
            Some(_) => false,
        };
        if announce {
            tracing::warn!(role = self.who, error = %e, "database unreachable; retrying with backoff");
        } else {
            tracing::debug!(role = self.who, error = %e, "database still unreachable");
        }
    }

    pub fn recovered(&mut self) {
        if !std::mem::take(&mut self.failing) {
            return;
        }
        let mut p = PROCESS_OUTAGE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((since, announced)) = p.down.take() {
            p.recovered_at = Some(std::time::Instant::now());
            if announced {
                tracing::info!(
                    role = self.who,
                    down_s = since.elapsed().as_secs(),
                    "database reachable again"
                );
            }
        }
    }
}
