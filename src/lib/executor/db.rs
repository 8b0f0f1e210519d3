//! Connections to the databases that db links name: one concrete sqlx connection per dialect (never
//! the `Any` driver), the server-side cancel of a running statement, text-only row access, and
//! identifier checks for the names we splice into SQL. A transfer's typed reads and bulk writes on
//! the same connections are in `db_typed.rs`.
//!
//! Invariants:
//! - user statements run through `raw_sql` (MySQL text protocol, PostgreSQL simple query), so any
//!   statement the server accepts runs, and every value reads back as text whatever its type;
//! - a running statement is stopped on the server, never only by dropping the future: MySQL
//!   `KILL QUERY <connection id>` and PostgreSQL `pg_cancel_backend(pid)` from a second connection,
//!   SQLite through a progress handler that interrupts the statement (`sqlite3_interrupt`'s effect);
//! - transactions are plain `BEGIN`/`COMMIT`/`ROLLBACK` statements the caller sends after the guarded
//!   future has ended, so a cancelled statement is always followed by an explicit rollback;
//! - a table name from a definition is spliced only after [`table_name`] accepted it; names read from
//!   a database are always quoted with [`quote_ident`].

use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow};
use sqlx::{Column, ConnectOptions, Connection, Either, Executor, Row, TypeInfo};

use super::links::{DbTarget, Dialect};
use super::{LogSink, Stopper};
use crate::state::AttemptEnd;

/// One open connection on a link.
pub(crate) enum Conn {
    Mysql(MySqlConnection),
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// How to stop the statement running on a connection, from outside it.
pub(crate) enum Canceller {
    Mysql { url: String, id: u64 },
    Postgres { url: String, pid: i32 },
    Sqlite { interrupt: Arc<AtomicBool> },
}

/// A connection with its canceller and the target it was opened on.
pub(crate) struct Session {
    pub conn: Conn,
    pub cancel: Canceller,
    pub target: DbTarget,
    /// Set when a statement was abandoned mid-flight: the connection is dropped, not reused.
    pub broken: bool,
}

/// What a statement did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StmtResult {
    pub rows_affected: u64,
    pub rows_returned: u64,
}

/// A column's name and its type as the database names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ColumnInfo {
    pub name: String,
    pub type_name: String,
}

/// A row as text values (`None` is SQL NULL).
pub(crate) type TextRow = Vec<Option<String>>;

fn mysql_options(url: &str) -> Result<MySqlConnectOptions, sqlx::Error> {
    // the server's own `||` and time zone, not the ones sqlx sets for itself
    Ok(MySqlConnectOptions::from_str(url)?
        .pipes_as_concat(false)
        .timezone(None)
        .disable_statement_logging())
}

fn postgres_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?.disable_statement_logging())
}

impl Session {
    /// Opens a connection; a stop while connecting abandons it.
    pub(crate) async fn open(
        target: &DbTarget,
        stop: &Stopper,
    ) -> Result<Result<Session, AttemptEnd>, String> {
        let connect = Self::connect(target);
        tokio::select! {
            s = connect => s.map(Ok),
            end = stop.stopped() => Ok(Err(end)),
        }
    }

    // Boxed (here and below) with an explicit `Send`: rustc cannot prove it for these futures once
    // they sit inside an attempt's spawned task ("Send is not general enough").
    fn connect(target: &DbTarget) -> BoxFuture<'_, Result<Session, String>> {
        Box::pin(async move {
            let fail = |e: sqlx::Error| {
                target.scrub(format!(
                    "cannot connect to db link `{}` at {}: {e}",
                    target.link, target.shown
                ))
            };
            let (conn, cancel) = match target.dialect {
                Dialect::Mysql => {
                    let mut c = mysql_options(&target.url)
                        .map_err(fail)?
                        .connect()
                        .await
                        .map_err(fail)?;
                    let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
                        .fetch_one(&mut c)
                        .await
                        .map_err(fail)?;
                    let cancel = Canceller::Mysql {
                        url: target.url.clone(),
                        id,
                    };
                    (Conn::Mysql(c), cancel)
                }
                Dialect::Postgres => {
                    let mut c = postgres_options(&target.url)
                        .map_err(fail)?
                        .connect()
                        .await
                        .map_err(fail)?;
                    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                        .fetch_one(&mut c)
                        .await
                        .map_err(fail)?;
                    let cancel = Canceller::Postgres {
                        url: target.url.clone(),
                        pid,
                    };
                    (Conn::Postgres(c), cancel)
                }
                Dialect::Sqlite => {
                    // WAL lets a transfer read and write the same file at once; the busy timeout covers
                    // other writers
                    let mut c = SqliteConnectOptions::from_str(&target.url)
                        .map_err(fail)?
                        .create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .busy_timeout(Duration::from_secs(30))
                        .disable_statement_logging()
                        .connect()
                        .await
                        .map_err(fail)?;
                    let interrupt = Arc::new(AtomicBool::new(false));
                    let flag = interrupt.clone();
                    c.lock_handle()
                        .await
                        .map_err(fail)?
                        .set_progress_handler(1000, move || !flag.load(Ordering::Relaxed));
                    (Conn::Sqlite(c), Canceller::Sqlite { interrupt })
                }
            };
            Ok(Session {
                conn,
                cancel,
                target: target.clone(),
                broken: false,
            })
        })
    }

    /// A driver error as a message: password scrubbed.
    pub(crate) fn error(&self, e: &sqlx::Error) -> String {
        self.target.scrub(db_error(e))
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.target.dialect
    }

    /// Opens a transaction; SQLite takes the write lock at once so it cannot fail halfway on a busy
    /// upgrade.
    pub(crate) async fn begin(&mut self) -> Result<(), sqlx::Error> {
        let sql = match self.dialect() {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            _ => "BEGIN",
        };
        self.conn.execute(sql).await.map(|_| ())
    }

    pub(crate) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.conn.execute("COMMIT").await.map(|_| ())
    }

    pub(crate) async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        self.conn.execute("ROLLBACK").await.map(|_| ())
    }

    /// Closes the connection politely, or just drops it when it is mid-statement.
    pub(crate) fn close(self) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if self.broken {
                return;
            }
            let _ = match self.conn {
                Conn::Mysql(c) => c.close().await,
                Conn::Postgres(c) => c.close().await,
                Conn::Sqlite(c) => c.close().await,
            };
        })
    }
}

/// A driver error without sqlx's "error returned from database:" prefix.
pub(crate) fn db_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => match d.code() {
            Some(code) => format!("{} (code {code})", d.message()),
            None => d.message().to_string(),
        },
        other => other.to_string(),
    }
}

impl Canceller {
    /// Asks the server to stop the statement now running on the session's connection.
    pub(crate) fn cancel(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let work = async {
                match self {
                    Canceller::Mysql { url, id } => {
                        let mut c = mysql_options(url)?.connect().await?;
                        // the id is the server's own integer, not a value from a definition
                        let kill = format!("KILL QUERY {id}");
                        c.execute(kill.as_str()).await?;
                        c.close().await?;
                    }
                    Canceller::Postgres { url, pid } => {
                        let mut c = postgres_options(url)?.connect().await?;
                        sqlx::query("SELECT pg_cancel_backend($1)")
                            .bind(pid)
                            .execute(&mut c)
                            .await?;
                        c.close().await?;
                    }
                    Canceller::Sqlite { interrupt } => interrupt.store(true, Ordering::Relaxed),
                }
                Ok::<_, sqlx::Error>(())
            };
            match tokio::time::timeout(Duration::from_secs(5), work).await {
                Ok(r) => r.map_err(|e| db_error(&e)),
                Err(_) => Err("the cancel request timed out".into()),
            }
        })
    }

    /// Lets statements run again after a cancel (SQLite's interrupt flag stays set otherwise).
    pub(crate) fn reset(&self) {
        if let Canceller::Sqlite { interrupt } = self {
            interrupt.store(false, Ordering::Relaxed);
        }
    }

    fn describe(&self) -> String {
        match self {
            Canceller::Mysql { id, .. } => format!("KILL QUERY {id}"),
            Canceller::Postgres { pid, .. } => format!("pg_cancel_backend({pid})"),
            Canceller::Sqlite { .. } => "interrupting the statement".into(),
        }
    }
}

/// How a guarded database call ended.
pub(crate) enum Guarded<T> {
    Done(T),
    /// The attempt was stopped; `settled` when the call ended after the cancel, so the connection is
    /// usable again (for the rollback); otherwise it must be dropped.
    Stopped {
        end: AttemptEnd,
        settled: bool,
    },
}

/// Runs `fut` (a call on the session's connection) until it ends or the attempt is stopped; on a
/// stop, cancels the statement on the server, repeatedly, until the call gives up.
pub(crate) async fn guarded<T>(
    cancel: &Canceller,
    stop: &Stopper,
    log: &LogSink,
    fut: impl Future<Output = T>,
) -> Guarded<T> {
    tokio::pin!(fut);
    let end = tokio::select! {
        out = &mut fut => return Guarded::Done(out),
        end = stop.stopped() => end,
    };
    log.out(format!(
        "{}: cancelling the running statement on the server ({})",
        end.error().unwrap_or_default(),
        cancel.describe()
    ))
    .await;
    // a cancel can arrive between two statements of a batch and miss; ask again until it lands
    for _ in 0..20 {
        if let Err(e) = cancel.cancel().await {
            log.out(format!("cancel request failed: {e}")).await;
        }
        if tokio::time::timeout(Duration::from_millis(500), &mut fut)
            .await
            .is_ok()
        {
            cancel.reset();
            return Guarded::Stopped { end, settled: true };
        }
    }
    log.out("the statement did not stop after 10 s of cancel requests; dropping the connection")
        .await;
    Guarded::Stopped {
        end,
        settled: false,
    }
}

fn mysql_texts(row: &MySqlRow) -> TextRow {
    (0..row.len())
        .map(|i| {
            row.try_get_unchecked::<Option<Vec<u8>>, _>(i)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
        .collect()
}

fn postgres_texts(row: &PgRow) -> TextRow {
    (0..row.len())
        .map(|i| row.try_get_unchecked::<Option<String>, _>(i).ok().flatten())
        .collect()
}

fn sqlite_texts(row: &SqliteRow) -> TextRow {
    (0..row.len())
        .map(|i| match row.try_get_unchecked::<Option<String>, _>(i) {
            Ok(v) => v,
            Err(_) => row
                .try_get_unchecked::<Option<Vec<u8>>, _>(i)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        })
        .collect()
}

macro_rules! each_conn {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            Conn::Mysql($c) => $body,
            Conn::Postgres($c) => $body,
            Conn::Sqlite($c) => $body,
        }
    };
}

impl Conn {
    /// Runs one statement as text; counts the rows it changed and the rows it returned.
    pub(crate) fn execute<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<StmtResult, sqlx::Error>> {
        Box::pin(async move {
            each_conn!(self, c => {
                let mut out = StmtResult::default();
                let mut results = sqlx::raw_sql(sql).fetch_many(&mut *c);
                while let Some(item) = results.try_next().await? {
                    match item {
                        Either::Left(done) => out.rows_affected += done.rows_affected(),
                        Either::Right(_) => out.rows_returned += 1,
                    }
                }
                Ok(out)
            })
        })
    }

    /// The first row of a query as text, `None` when it returns no row (the rest is read and
    /// dropped, so the connection is ready for the next statement).
    pub(crate) fn first_row<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<Option<TextRow>, sqlx::Error>> {
        Box::pin(async move {
            let mut first = None;
            let mut rows = self.rows(sql);
            while let Some(row) = rows.try_next().await? {
                first.get_or_insert(row);
            }
            Ok(first)
        })
    }

    /// Streams a query's rows as text; the driver reads them off the wire as they are consumed.
    pub(crate) fn rows<'c>(
        &'c mut self,
        sql: &'c str,
    ) -> BoxStream<'c, Result<TextRow, sqlx::Error>> {
        match self {
            Conn::Mysql(c) => sqlx::raw_sql(sql)
                .fetch(c)
                .map_ok(|r| mysql_texts(&r))
                .boxed(),
            Conn::Postgres(c) => sqlx::raw_sql(sql)
                .fetch(c)
                .map_ok(|r| postgres_texts(&r))
                .boxed(),
            Conn::Sqlite(c) => sqlx::raw_sql(sql)
                .fetch(c)
                .map_ok(|r| sqlite_texts(&r))
                .boxed(),
        }
    }

    /// The columns a query would return, without running it.
    pub(crate) fn columns<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ColumnInfo>, sqlx::Error>> {
        Box::pin(async move {
            each_conn!(self, c => {
                let stmt = c.prepare(sql).await?;
                Ok(sqlx::Statement::columns(&stmt)
                    .iter()
                    .map(|col| ColumnInfo {
                        name: col.name().to_string(),
                        type_name: col.type_info().name().to_string(),
                    })
                    .collect())
            })
        })
    }

    /// One value-returning query with text parameters bound, first column of every row.
    pub(crate) fn query_texts<'a>(
        &'a mut self,
        sql: &'a str,
        binds: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, sqlx::Error>> {
        Box::pin(async move {
            each_conn!(self, c => {
                let mut q = sqlx::query_scalar::<_, Option<String>>(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_all(&mut *c).await
            })
        })
    }

    /// Like [`Conn::query_texts`], every column of every row as text.
    pub(crate) fn query_rows<'a>(
        &'a mut self,
        sql: &'a str,
        binds: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<TextRow>, sqlx::Error>> {
        Box::pin(async move {
            Ok(match self {
                Conn::Mysql(c) => {
                    let mut q = sqlx::query(sql);
                    for b in binds {
                        q = q.bind(*b);
                    }
                    q.fetch_all(&mut *c)
                        .await?
                        .iter()
                        .map(|r| {
                            (0..r.len())
                                .map(|i| {
                                    r.try_get::<Option<String>, _>(i)
                                        .or_else(|_| {
                                            r.try_get::<Option<Vec<u8>>, _>(i).map(|b| {
                                                b.map(|b| String::from_utf8_lossy(&b).into_owned())
                                            })
                                        })
                                        .ok()
                                        .flatten()
                                })
                                .collect()
                        })
                        .collect()
                }
                Conn::Postgres(c) => {
                    let mut q = sqlx::query(sql);
                    for b in binds {
                        q = q.bind(*b);
                    }
                    q.fetch_all(&mut *c)
                        .await?
                        .iter()
                        .map(|r| {
                            (0..r.len())
                                .map(|i| r.try_get::<Option<String>, _>(i).ok().flatten())
                                .collect()
                        })
                        .collect()
                }
                Conn::Sqlite(c) => {
                    let mut q = sqlx::query(sql);
                    for b in binds {
                        q = q.bind(*b);
                    }
                    q.fetch_all(&mut *c)
                        .await?
                        .iter()
                        .map(sqlite_texts)
                        .collect()
                }
            })
        })
    }
}

/// Whether `e` says the table does not exist.
pub(crate) fn is_missing_table(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    matches!(d.code().as_deref(), Some("42S02" | "1146" | "42P01"))
        || d.message().contains("no such table")
        || d.message().contains("doesn't exist")
}

/// `name` quoted as an identifier of `dialect` (for names read from a database).
pub(crate) fn quote_ident(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
        _ => format!("\"{}\"", name.replace('"', "\"\"")),
    }
}

/// One part of a qualified name as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamePart {
    /// As it goes into SQL (quotes kept).
    pub sql: String,
    /// The identifier itself (quotes removed), for catalog lookups.
    pub ident: String,
    pub quoted: bool,
}

/// Checks a table name from a definition: dot-separated parts, each a plain identifier (letters,
/// digits, `_`, `$`, not starting with a digit) or one quoted the dialect's way. Anything else is
/// refused; what is accepted goes into SQL quoted, with its meaning unchanged.
pub(crate) fn table_name(dialect: Dialect, name: &str) -> Result<Vec<NamePart>, String> {
    let bad = |why: &str| {
        format!(
            "`{name}` is not a valid table name for {}: {why}",
            dialect.name()
        )
    };
    let quotes: &[char] = match dialect {
        Dialect::Mysql => &['`'],
        Dialect::Postgres => &['"'],
        Dialect::Sqlite => &['"', '`'],
    };
    let chars: Vec<char> = name.trim().chars().collect();
    if chars.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut parts = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        if i < chars.len() && quotes.contains(&chars[i]) {
            let q = chars[i];
            let mut ident = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(bad("unterminated quoted identifier")),
                    Some(&c) if c == q && chars.get(i + 1) == Some(&q) => {
                        ident.push(q);
                        i += 2;
                    }
                    Some(&c) if c == q => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        ident.push(c);
                        i += 1;
                    }
                }
            }
            if ident.is_empty() {
                return Err(bad("empty quoted identifier"));
            }
            parts.push(NamePart {
                sql: chars[start..i].iter().collect(),
                ident,
                quoted: true,
            });
        } else {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            if ident.is_empty() {
                return Err(bad("expected an identifier"));
            }
            if ident.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(bad("an identifier cannot start with a digit"));
            }
            // quoted, so reserved words (`lines`, `order`) work; PostgreSQL folds an unquoted name
            // to lower case, and quoting the folded name keeps that meaning
            let ident = match dialect {
                Dialect::Postgres => ident.to_ascii_lowercase(),
                _ => ident,
            };
            parts.push(NamePart {
                sql: quote_ident(dialect, &ident),
                ident,
                quoted: false,
            });
        }
        match chars.get(i) {
            None => break,
            Some('.') => i += 1,
            Some(c) => return Err(bad(&format!("unexpected `{c}`"))),
        }
    }
    if parts.len() > 3 {
        return Err(bad("more than three parts"));
    }
    Ok(parts)
}

/// The checked name as SQL text.
pub(crate) fn table_sql(parts: &[NamePart]) -> String {
    parts
        .iter()
        .map(|p| p.sql.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_accept_identifiers_and_refuse_the_rest() {
        let ok: &[(Dialect, &str, &[&str])] = &[
            (Dialect::Mysql, "wf.log_record", &["wf", "log_record"]),
            (Dialect::Mysql, "`my db`.`t``x`", &["my db", "t`x"]),
            (Dialect::Postgres, "ods.\"Orders\"", &["ods", "Orders"]),
            (Dialect::Postgres, "订单", &["订单"]),
            (Dialect::Sqlite, "main.t$1", &["main", "t$1"]),
            (Dialect::Sqlite, "\"a b\"", &["a b"]),
        ];
        for (d, name, idents) in ok {
            let parts = table_name(*d, name).unwrap();
            let got: Vec<&str> = parts.iter().map(|p| p.ident.as_str()).collect();
            assert_eq!(&got, idents, "{name}");
        }
        let sql: &[(Dialect, &str, &str)] = &[
            (Dialect::Mysql, "wf.lines", "`wf`.`lines`"),
            (Dialect::Mysql, "`my db`.t", "`my db`.`t`"),
            (Dialect::Postgres, "Ods.\"Orders\"", "\"ods\".\"Orders\""),
            (Dialect::Sqlite, "main.Order", "\"main\".\"Order\""),
        ];
        for (d, name, want) in sql {
            assert_eq!(table_sql(&table_name(*d, name).unwrap()), *want, "{name}");
        }
        let bad: &[(Dialect, &str)] = &[
            (Dialect::Mysql, "t; drop table x"),
            (Dialect::Mysql, "\"t\""),
            (Dialect::Postgres, "`t`"),
            (Dialect::Postgres, "select * from t"),
            (Dialect::Sqlite, "1t"),
            (Dialect::Sqlite, "a..b"),
            (Dialect::Sqlite, "\"open"),
            (Dialect::Mysql, "a.b.c.d"),
            (Dialect::Mysql, ""),
        ];
        for (d, name) in bad {
            assert!(table_name(*d, name).is_err(), "{name}");
        }
    }

    #[test]
    fn identifiers_from_the_database_are_always_quoted() {
        assert_eq!(quote_ident(Dialect::Mysql, "a`b"), "`a``b`");
        assert_eq!(quote_ident(Dialect::Postgres, "a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(Dialect::Sqlite, "x"), "\"x\"");
    }
}
