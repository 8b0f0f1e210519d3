//! The connection budget: how many server connections a process keeps, and what it does when the
//! server has none left to give.
//!
//! Each role sizes its pool (`[pool]` in the configuration, `--pool-max`); connections open on
//! demand (`min_connections` 0) and close after `idle_timeout_secs` unused. sqlx hands idle
//! connections out first-in first-out, so two connections that a coincidence opened (a heartbeat
//! during a claim) would take turns and neither would ever sit idle long enough to close: a
//! trimmer closes every idle connection beyond one each idle period, and an idle process settles
//! on the one connection its loops share.
//!
//! A server at its `max_connections` refuses new connections (MySQL/MariaDB error 1040,
//! PostgreSQL SQLSTATE 53300). Those refusals count as an outage (every loop backs off and
//! retries; results wait to be reported), and the process logs one line when the first comes
//! naming the cause and the setting to raise, and one line when a new connection opens again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::StoreError;

/// The server's `max_connections`, read when the process connected; 0 while unknown.
static MAX_CONNECTIONS: AtomicU32 = AtomicU32::new(0);

/// The setting that sized this process's pool, for the saturation message.
static POOL_SETTING: Mutex<&'static str> = Mutex::new("--pool-max");

/// Since when new connections are refused (the current episode), if they are.
static REFUSED_SINCE: Mutex<Option<Instant>> = Mutex::new(None);

pub(crate) fn set_max_connections(n: i64) {
    MAX_CONNECTIONS.store(u32::try_from(n).unwrap_or(0), Ordering::Relaxed);
}

pub(crate) fn set_pool_setting(name: &'static str) {
    *POOL_SETTING.lock().expect("never poisoned") = name;
}

/// The server's `max_connections` if this process has learnt it.
pub fn known_max_connections() -> Option<u32> {
    match MAX_CONNECTIONS.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// "too many (max_connections is 151)", or without the number when it is unknown.
pub(crate) fn too_many_text(max: Option<u32>) -> String {
    match max {
        Some(n) => format!("too many (max_connections is {n})"),
        None => "too many (the server's max_connections is reached)".to_string(),
    }
}

/// Whether a driver error is the server refusing a connection because it has too many.
pub(crate) fn is_too_many_sqlx(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    if let Some(m) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        // ER_CON_COUNT_ERROR
        return m.number() == 1040;
    }
    // too_many_connections (also the message for slots reserved to superusers)
    db.code().as_deref() == Some("53300")
}

/// Whether `e`, or anything it wraps, is a refusal for too many connections.
pub fn is_too_many(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(x) = cur {
        if let Some(s) = x.downcast_ref::<StoreError>() {
            if s.is_too_many() {
                return true;
            }
        }
        if let Some(crate::Error::Store(s)) = x.downcast_ref::<crate::Error>() {
            if s.is_too_many() {
                return true;
            }
        }
        if let Some(s) = x.downcast_ref::<sqlx::Error>() {
            if is_too_many_sqlx(s) {
                return true;
            }
        }
        cur = x.source();
    }
    false
}

/// A loop of role `who` was refused a connection: the first refusal of an episode logs the one
/// line that says why and what to raise.
pub(crate) fn refused(who: &str) {
    let mut since = REFUSED_SINCE.lock().expect("never poisoned");
    if since.is_some() {
        tracing::debug!(role = who, "the database still refuses new connections");
        return;
    }
    *since = Some(Instant::now());
    let setting = *POOL_SETTING.lock().expect("never poisoned");
    tracing::warn!(
        role = who,
        "the database refuses new connections: {}; raise max_connections on the server, or lower \
         this fleet's pools ({setting}); backing off and retrying, running tasks keep running and \
         report later",
        too_many_text(known_max_connections())
    );
}

/// A new connection opened: ends a refusal episode with one line.
pub(crate) fn connected() {
    let mut since = REFUSED_SINCE.lock().expect("never poisoned");
    if let Some(t) = since.take() {
        tracing::info!(
            refused_s = t.elapsed().as_secs(),
            "the database accepts new connections again"
        );
    }
}

/// A connection idle at least this long is pinged before it is handed out; one used more recently
/// is not: sqlx pings every connection as it goes back to the pool, so it was alive a moment ago,
/// and the round trip per checkout (tens of thousands in a busy minute) buys nothing. A connection
/// that died within the window fails its statement, which callers take for an outage and retry.
/// HikariCP skips its check the same way (`aliveBypassWindowMs`, 500 ms).
const PING_AFTER_IDLE: Duration = Duration::from_millis(500);

/// The pool's health check on checkout: only for connections idle past [`PING_AFTER_IDLE`].
pub(crate) fn ping_when_idle<DB: sqlx::Database>(
    options: sqlx::pool::PoolOptions<DB>,
) -> sqlx::pool::PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Closes every idle connection beyond one each `period`, until the guard is dropped (see the
/// module doc for why sqlx's own idle timeout is not enough).
pub(crate) fn trim_idle<DB: sqlx::Database>(
    pool: sqlx::Pool<DB>,
    period: Duration,
) -> tokio_util::sync::DropGuard {
    let stop = tokio_util::sync::CancellationToken::new();
    let guard = stop.clone().drop_guard();
    // owned by the guard the store keeps: it ends with the store
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            while pool.num_idle() > 1 {
                // the longest idle first: sqlx's idle queue is first-in first-out
                let Some(conn) = pool.try_acquire() else {
                    break;
                };
                let _ = conn.close().await;
            }
        }
    });
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_text_names_the_limit_when_known() {
        assert_eq!(
            too_many_text(Some(151)),
            "too many (max_connections is 151)"
        );
        assert!(too_many_text(None).contains("max_connections"));
    }
}
