//! Running a transaction again after a deadlock or lock wait timeout (MariaDB 1213/1205, PostgreSQL
//! 40P01/55P03, SQLite busy): one policy and one loop for the store's own statements, the engine's
//! operations and `sync`. Only for work that is one statement or opens its own transaction: the
//! server rolled the whole of it back, so running it again is safe.

use std::future::Future;
use std::time::Duration;

/// How often to try and how long to pause between tries.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The first pause; each next one doubles, plus up to as much again of jitter.
    pub base: Duration,
    /// No pause is longer than this.
    pub max: Duration,
}

/// A store statement (the backend retries it before the caller sees the error).
pub const STATEMENT: RetryPolicy = RetryPolicy {
    attempts: 5,
    base: Duration::from_millis(10),
    max: Duration::from_millis(200),
};

/// An engine operation or a `sync`: several statements under row locks, more likely to meet a
/// concurrent writer than a single statement.
pub const ENGINE: RetryPolicy = RetryPolicy {
    attempts: 9,
    base: Duration::from_millis(5),
    max: Duration::from_millis(200),
};

impl RetryPolicy {
    /// The pause before try `failed + 2` after `failed + 1` tries failed; `None` when none is left.
    pub fn backoff(&self, failed: u32) -> Option<Duration> {
        if failed + 1 >= self.attempts {
            return None;
        }
        let step = self.base.saturating_mul(1 << failed.min(16)).min(self.max);
        let jitter = fastrand::u64(0..=step.as_millis() as u64);
        Some((step + Duration::from_millis(jitter)).min(self.max))
    }
}

/// Errors that say "the same work may simply run again".
pub trait Retryable: std::fmt::Display {
    fn is_retryable(&self) -> bool;
}

impl Retryable for super::StoreError {
    fn is_retryable(&self) -> bool {
        super::StoreError::is_retryable(self)
    }
}

impl Retryable for crate::Error {
    fn is_retryable(&self) -> bool {
        crate::Error::is_retryable(self)
    }
}

/// Runs `op` until it succeeds, fails for another reason, or `policy` has no try left.
pub async fn retrying<T, E, F, Fut>(policy: RetryPolicy, mut op: F) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut failed = 0;
    loop {
        match op().await {
            Err(e) if e.is_retryable() => match policy.backoff(failed) {
                Some(pause) => {
                    failed += 1;
                    tracing::debug!(error = %e, attempt = failed, "deadlock or lock wait timeout; retrying");
                    tokio::time::sleep(pause).await;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_ends() {
        let p = RetryPolicy {
            attempts: 4,
            base: Duration::from_millis(10),
            max: Duration::from_millis(25),
        };
        let first = p.backoff(0).expect("a second try");
        assert!(first >= Duration::from_millis(10) && first <= Duration::from_millis(20));
        assert!(p.backoff(2).expect("a fourth try") <= Duration::from_millis(25));
        assert_eq!(p.backoff(3), None, "four tries in all");
    }
}
