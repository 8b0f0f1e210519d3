//! Logging a database outage once per process, however many loops find it.

use std::time::{Duration, Instant};

use super::budget;

/// Logs a database outage once per process: one line when the first of its loops finds the
/// database gone, one when the database answers again, instead of one per failed call or per loop.
///
/// Each loop (claim, heartbeat, log writer, elector, ...) keeps its own `OutageLog`; they share the
/// process's state. The outage ends when a loop that failed succeeds again. A loop that fails in the
/// first moments after that (its own connection died with the server and is found dead only now)
/// is logged only when it lasts longer than [`OUTAGE_SETTLE`] (when a later call fails too, or at
/// its end when its calls waited it out in the pool), so one restart of the server is two lines in
/// every process and no outage that lasted goes unlogged.
pub struct OutageLog {
    who: &'static str,
    failing: bool,
}

/// How long a failure right after an outage ended must last to be logged as a new outage.
pub const OUTAGE_SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
struct ProcessOutage {
    /// Since when the database is away, and whether that was logged.
    down: Option<(Instant, bool)>,
    recovered_at: Option<Instant>,
}

/// What to log when the database answers again.
#[derive(Debug, PartialEq, Eq)]
enum Recovery {
    /// Nothing: no outage, or a short failure while the last one was settling.
    Quiet,
    /// The outage was announced: say it is over.
    Announced { down: Duration },
    /// A failure inside the settling time that outlasted it without another call failing (the
    /// loop's calls waited in the pool): the outage was real, so both lines go out now.
    Unannounced { down: Duration },
}

impl ProcessOutage {
    /// A call failed at `now`: whether to announce the outage.
    fn fail(&mut self, now: Instant) -> bool {
        match self.down {
            None => {
                let settling = self
                    .recovered_at
                    .is_some_and(|t| now.duration_since(t) < OUTAGE_SETTLE);
                self.down = Some((now, !settling));
                !settling
            }
            Some((since, false)) if now.duration_since(since) >= OUTAGE_SETTLE => {
                self.down = Some((since, true));
                true
            }
            Some(_) => false,
        }
    }

    /// A loop that had failed succeeded at `now`.
    fn recover(&mut self, now: Instant) -> Recovery {
        let Some((since, announced)) = self.down.take() else {
            return Recovery::Quiet;
        };
        self.recovered_at = Some(now);
        let down = now.duration_since(since);
        if announced {
            Recovery::Announced { down }
        } else if down >= OUTAGE_SETTLE {
            Recovery::Unannounced { down }
        } else {
            Recovery::Quiet
        }
    }
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
        let announce = PROCESS_OUTAGE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail(Instant::now());
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
        let recovery = PROCESS_OUTAGE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .recover(Instant::now());
        let down = match recovery {
            Recovery::Quiet => return,
            Recovery::Announced { down } => down,
            Recovery::Unannounced { down } => {
                tracing::warn!(
                    role = self.who,
                    down_s = down.as_secs(),
                    "database was unreachable; a call waited for it"
                );
                down
            }
        };
        tracing::info!(
            role = self.who,
            down_s = down.as_secs(),
            "database reachable again"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn an_outage_is_announced_once_and_its_end_once() {
        let t0 = Instant::now();
        let mut p = ProcessOutage::default();
        assert!(p.fail(t0));
        assert!(
            !p.fail(t0 + SECOND),
            "a second loop's failure is the same outage"
        );
        assert_eq!(
            p.recover(t0 + 5 * SECOND),
            Recovery::Announced { down: 5 * SECOND }
        );
        assert_eq!(p.recover(t0 + 6 * SECOND), Recovery::Quiet);
    }

    #[test]
    fn a_short_failure_while_settling_stays_quiet() {
        let t0 = Instant::now();
        let mut p = ProcessOutage::default();
        p.fail(t0);
        p.recover(t0 + 5 * SECOND);
        // a loop finds its dead connection just after the end: the old outage's tail
        assert!(!p.fail(t0 + 6 * SECOND));
        assert_eq!(p.recover(t0 + 7 * SECOND), Recovery::Quiet);
    }

    #[test]
    fn a_settling_failure_that_lasts_is_announced_when_another_call_fails() {
        let t0 = Instant::now();
        let mut p = ProcessOutage::default();
        p.fail(t0);
        p.recover(t0 + 5 * SECOND);
        assert!(!p.fail(t0 + 6 * SECOND));
        assert!(p.fail(t0 + 10 * SECOND));
        assert_eq!(
            p.recover(t0 + 12 * SECOND),
            Recovery::Announced { down: 6 * SECOND }
        );
    }

    #[test]
    fn a_settling_failure_that_lasts_unannounced_is_logged_at_its_end() {
        let t0 = Instant::now();
        let mut p = ProcessOutage::default();
        p.fail(t0);
        p.recover(t0 + 5 * SECOND);
        assert!(!p.fail(t0 + 6 * SECOND));
        // no other call failed: its calls waited in the pool through a second restart
        assert_eq!(
            p.recover(t0 + 14 * SECOND),
            Recovery::Unannounced { down: 8 * SECOND }
        );
    }
}
