//! Statements the database server counted, read from its own counters: MariaDB/MySQL `Questions`
//! (per user from `USER_STATISTICS` when `userstat` is on, since the global counter includes every
//! client of a shared server), PostgreSQL `pg_stat_statements` calls when installed, else committed
//! plus rolled-back transactions of this database from `pg_stat_database`. SQLite has none.

use std::time::Instant;

use serde::Serialize;
use sqlx::Row;

use super::db::Db;
use crate::error::Result;

/// A counter reading.
pub(crate) struct Sample {
    source: &'static str,
    value: i64,
    at: Instant,
}

/// Statements per second over a window.
#[derive(Clone, Debug, Serialize)]
pub struct Rate {
    pub source: String,
    pub count: i64,
    pub seconds: f64,
    pub per_s: f64,
}

/// Reads the counter; `None` on SQLite.
pub(crate) async fn sample(db: &Db) -> Result<Option<Sample>> {
    let at = Instant::now();
    let (source, value) = match db {
        Db::Sqlite(_) => return Ok(None),
        Db::Mysql(p) => {
            let user: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(SELECT_COMMANDS + UPDATE_COMMANDS + OTHER_COMMANDS AS SIGNED) \
                 FROM information_schema.USER_STATISTICS WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1)",
            )
            .fetch_optional(p)
            .await
            .ok()
            .flatten();
            let userstat_on = sqlx::raw_sql("SHOW GLOBAL VARIABLES LIKE 'userstat'")
                .fetch_all(p)
                .await
                .ok()
                .and_then(|rows| rows.first()?.try_get::<String, _>(1).ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("ON"));
            match user.filter(|_| userstat_on) {
                Some(v) => ("mysql USER_STATISTICS (this user, all its sessions)", v),
                None => {
                    // SHOW is not preparable everywhere: plain text
                    let row = sqlx::raw_sql("SHOW GLOBAL STATUS LIKE 'Questions'")
                        .fetch_one(p)
                        .await
                        .map_err(super::db_err)?;
                    let v: String = row.try_get(1).map_err(super::db_err)?;
                    (
                        "mysql global Questions (every client of the server)",
                        v.parse().unwrap_or(0),
                    )
                }
            }
        }
        Db::Postgres(p) => {
            let calls: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(SUM(calls) AS BIGINT) FROM pg_stat_statements \
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(p)
            .await
            .ok()
            .flatten();
            match calls {
                Some(v) => ("postgres pg_stat_statements calls (this database)", v),
                None => {
                    let v: i64 = sqlx::query_scalar(
                        "SELECT CAST(xact_commit + xact_rollback AS BIGINT) FROM pg_stat_database \
                         WHERE datname = current_database()",
                    )
                    .fetch_one(p)
                    .await
                    .map_err(super::db_err)?;
                    (
                        "postgres pg_stat_database xact_commit+xact_rollback (this database)",
                        v,
                    )
                }
            }
        }
    };
    Ok(Some(Sample { source, value, at }))
}

/// The rate between two readings, less the statements the readings themselves cost.
pub(crate) fn rate(from: &Option<Sample>, to: &Option<Sample>) -> Option<Rate> {
    let (a, b) = (from.as_ref()?, to.as_ref()?);
    // one reading is at most three statements (MySQL) or two (PostgreSQL)
    let count = (b.value - a.value - 3).max(0);
    let seconds = (b.at - a.at).as_secs_f64();
    Some(Rate {
        source: b.source.into(),
        count,
        seconds,
        per_s: if seconds > 0.0 {
            count as f64 / seconds
        } else {
            0.0
        },
    })
}
