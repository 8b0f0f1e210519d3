//! `sql` actions: statements on a db link, split by a real tokenizer and run in one transaction.
//!
//! The tokenizer knows each dialect's quotes and comments: `'…'`, `"…"` (doubled quotes; MySQL also
//! backslash escapes), MySQL and SQLite backticks, SQLite `[…]`, `-- ` and `/* */` comments (nested in
//! PostgreSQL), MySQL `#` comments, PostgreSQL `E'…'` strings and dollar quoting (`$$…$$`,
//! `$tag$…$tag$`), and SQLite `CREATE TRIGGER … BEGIN …; END` bodies. A `;` inside any of them does not
//! split; statements holding only comments are dropped.
//!
//! Invariants: every statement of an action runs inside one transaction that is committed only when
//! all of them succeeded; a failure, kill or timeout rolls it back, and a kill or timeout first
//! cancels the running statement on the server (see `db`). MySQL commits DDL implicitly, which no
//! client can undo: the log says so when such a statement runs.

use std::time::Instant;

use super::db::{guarded, Guarded, Session};
use super::links::{self, Dialect};
use super::{AttemptContext, Outcome, Stopper};
use crate::definition::template::Template;
use crate::state::AttemptEnd;

/// One statement of a script, with where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Statement {
    /// The statement without its `;`, surrounding whitespace trimmed (comments inside are kept).
    pub text: String,
    /// 1-based line of its first character that is not whitespace or a comment.
    pub line: usize,
}

/// Splits a script into statements at the `;` that are outside quotes, comments and bodies.
pub(crate) fn split_statements(sql: &str, dialect: Dialect) -> Vec<Statement> {
    Splitter::new(sql, dialect).run()
}

struct Splitter<'a> {
    sql: &'a str,
    b: &'a [u8],
    dialect: Dialect,
    out: Vec<Statement>,
    /// Byte where the current statement begins.
    start: usize,
    /// Byte of the current statement's first code character.
    code: Option<usize>,
    /// Leading keywords of the current statement (SQLite triggers) and the last one seen.
    words: Vec<String>,
    last_word: String,
    /// End of the last word, to spot PostgreSQL `E'…'`.
    word_end: usize,
}

fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

impl<'a> Splitter<'a> {
    fn new(sql: &'a str, dialect: Dialect) -> Self {
        Splitter {
            sql,
            b: sql.as_bytes(),
            dialect,
            out: Vec::new(),
            start: 0,
            code: None,
            words: Vec::new(),
            last_word: String::new(),
            word_end: usize::MAX,
        }
    }

    fn run(mut self) -> Vec<Statement> {
        let b = self.b;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let next = b.get(i + 1).copied();
            // comments first: they are not code
            if c == b'-' && next == Some(b'-') && self.dash_comment_at(i) {
                i = self.skip_line(i);
                continue;
            }
            if c == b'#' && self.dialect == Dialect::Mysql {
                i = self.skip_line(i);
                continue;
            }
            if c == b'/' && next == Some(b'*') {
                i = self.skip_block_comment(i);
                continue;
            }
            if c.is_ascii_whitespace() {
                i += 1;
                continue;
            }
            if c == b';' && self.ends_statement() {
                self.finish(i);
                i += 1;
                self.start = i;
                continue;
            }
            self.code.get_or_insert(i);
            i = match c {
                b'\'' => {
                    let backslash = match self.dialect {
                        Dialect::Mysql => true,
                        Dialect::Postgres => {
                            self.word_end == i && self.last_word.eq_ignore_ascii_case("E")
                        }
                        Dialect::Sqlite => false,
                    };
                    self.skip_quoted(i, b'\'', backslash)
                }
                b'"' => self.skip_quoted(i, b'"', self.dialect == Dialect::Mysql),
                b'`' if self.dialect != Dialect::Postgres => self.skip_quoted(i, b'`', false),
                b'[' if self.dialect == Dialect::Sqlite => self.skip_until(i + 1, b"]"),
                b'$' if self.dialect == Dialect::Postgres => self.skip_dollar(i),
                c if ident_byte(c) => self.word(i),
                _ => i + 1,
            };
        }
        self.finish(b.len());
        self.out
    }

    /// MySQL needs whitespace (or the end) after `--`; the others take any `--`.
    fn dash_comment_at(&self, i: usize) -> bool {
        self.dialect != Dialect::Mysql
            || self
                .b
                .get(i + 2)
                .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    }

    /// A `;` ends the statement, except inside an SQLite trigger body not yet closed by `END`.
    fn ends_statement(&self) -> bool {
        if self.dialect != Dialect::Sqlite {
            return true;
        }
        let w: Vec<&str> = self.words.iter().map(String::as_str).collect();
        let trigger = matches!(
            w.as_slice(),
            ["CREATE", "TRIGGER", ..] | ["CREATE", "TEMP" | "TEMPORARY", "TRIGGER", ..]
        );
        !trigger || self.last_word == "END"
    }

    fn word(&mut self, i: usize) -> usize {
        let mut j = i;
        while j < self.b.len() && ident_byte(self.b[j]) {
            j += 1;
        }
        let w = self.sql[i..j].to_ascii_uppercase();
        if self.words.len() < 3 {
            self.words.push(w.clone());
        }
        self.last_word = w;
        self.word_end = j;
        j
    }

    fn finish(&mut self, end: usize) {
        if let Some(code) = self.code.take() {
            let text = self.sql[self.start..end].trim().to_string();
            let line = 1 + self.b[..code].iter().filter(|&&c| c == b'\n').count();
            self.out.push(Statement { text, line });
        }
        self.words.clear();
        self.last_word.clear();
    }

    fn skip_line(&self, i: usize) -> usize {
        match self.b[i..].iter().position(|&c| c == b'\n') {
            Some(p) => i + p + 1,
            None => self.b.len(),
        }
    }

    fn skip_block_comment(&self, i: usize) -> usize {
        let nested = self.dialect == Dialect::Postgres;
        let mut depth = 0usize;
        let mut j = i;
        while j < self.b.len() {
            if self.b[j] == b'/' && self.b.get(j + 1) == Some(&b'*') && (depth == 0 || nested) {
                depth += 1;
                j += 2;
            } else if self.b[j] == b'*' && self.b.get(j + 1) == Some(&b'/') {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return j;
                }
            } else {
                j += 1;
            }
        }
        j
    }

    /// Past the closing quote; a doubled quote is an escaped one, and so is `\x` when allowed.
    fn skip_quoted(&self, i: usize, q: u8, backslash: bool) -> usize {
        let mut j = i + 1;
        while j < self.b.len() {
            let c = self.b[j];
            if backslash && c == b'\\' {
                j += 2;
            } else if c == q {
                if self.b.get(j + 1) == Some(&q) {
                    j += 2;
                } else {
                    return j + 1;
                }
            } else {
                j += 1;
            }
        }
        self.b.len()
    }

    fn skip_until(&self, from: usize, end: &[u8]) -> usize {
        match self.b[from.min(self.b.len())..]
            .windows(end.len())
            .position(|w| w == end)
        {
            Some(p) => from + p + end.len(),
            None => self.b.len(),
        }
    }

    /// `$tag$ … $tag$`; a `$` that opens no tag (`$1`) is an ordinary character.
    fn skip_dollar(&self, i: usize) -> usize {
        let mut j = i + 1;
        if j < self.b.len() && !self.b[j].is_ascii_digit() {
            while j < self.b.len() && ident_byte(self.b[j]) && self.b[j] != b'$' {
                j += 1;
            }
        }
        if self.b.get(j) != Some(&b'$') {
            return i + 1;
        }
        let tag = &self.b[i..=j];
        self.skip_until(j + 1, tag)
    }
}

/// The statement on one line, cut to `max` characters, for messages.
pub(crate) fn preview(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

fn rows(n: u64) -> String {
    if n == 1 {
        "1 row".into()
    } else {
        format!("{n} rows")
    }
}

/// Whether MySQL commits this statement implicitly (DDL).
fn implicit_commit(text: &str) -> bool {
    let first = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "CREATE" | "DROP" | "ALTER" | "TRUNCATE" | "RENAME" | "LOCK" | "UNLOCK"
    )
}

/// How a transaction run ended when it did not fail.
pub(crate) enum TxEnd {
    Committed,
    /// Stopped and rolled back (or abandoned, when the server did not let go).
    Stopped(AttemptEnd),
}

/// Runs `stmts` in one transaction on `s` (`label` names them in messages: "statement", "<pre>
/// statement"); a failure rolls back and is the error message.
pub(crate) async fn run_in_transaction(
    ctx: &AttemptContext,
    stop: &Stopper,
    s: &mut Session,
    stmts: &[Statement],
    label: &str,
) -> Result<TxEnd, String> {
    let n = stmts.len();
    if let Err(e) = s.begin().await {
        return Err(format!("cannot open a transaction: {}", s.error(&e)));
    }
    let mut warned_ddl = false;
    for (k, st) in stmts.iter().enumerate() {
        let at = format!("{label} {} of {n} (line {})", k + 1, st.line);
        if let Some(end) = stop.check() {
            rollback(ctx, s, "stopped").await;
            return Ok(TxEnd::Stopped(end));
        }
        ctx.log
            .out(format!("{at}: {}", preview(&st.text, 200)))
            .await;
        if s.dialect() == Dialect::Mysql && !warned_ddl && implicit_commit(&st.text) {
            warned_ddl = true;
            ctx.log
                .out(
                    "note: MySQL commits DDL implicitly; what ran up to here cannot be rolled back",
                )
                .await;
        }
        let began = Instant::now();
        let Session { conn, cancel, .. } = s;
        match guarded(cancel, stop, &ctx.log, conn.execute(&st.text)).await {
            Guarded::Done(Ok(r)) => {
                // a query's "affected" count is noise: PostgreSQL repeats the row count, SQLite
                // reports the previous statement's changes
                let what = if r.rows_returned > 0 {
                    format!("{} returned", rows(r.rows_returned))
                } else {
                    format!("{} affected", rows(r.rows_affected))
                };
                ctx.log
                    .out(format!(
                        "{at}: {what} ({:.3} s)",
                        began.elapsed().as_secs_f64()
                    ))
                    .await;
            }
            Guarded::Done(Err(e)) => {
                let msg = s.error(&e);
                rollback(ctx, s, "failed").await;
                return Err(format!(
                    "{at} failed, transaction rolled back: {msg}: {}",
                    preview(&st.text, 120)
                ));
            }
            Guarded::Stopped { end, settled } => {
                if settled {
                    rollback(ctx, s, "stopped").await;
                } else {
                    s.broken = true;
                    ctx.log
                        .out("the server rolls the transaction back when the connection closes")
                        .await;
                }
                return Ok(TxEnd::Stopped(end));
            }
        }
        // SLEEP() that is killed returns normally on MySQL: the stop is seen here
        if let Some(end) = stop.check() {
            rollback(ctx, s, "stopped").await;
            return Ok(TxEnd::Stopped(end));
        }
    }
    match s.commit().await {
        Ok(()) => {
            ctx.log.out(format!("committed {n} {label}(s)")).await;
            Ok(TxEnd::Committed)
        }
        Err(e) => {
            let msg = s.error(&e);
            rollback(ctx, s, "commit failed").await;
            Err(format!("commit failed: {msg}"))
        }
    }
}

async fn rollback(ctx: &AttemptContext, s: &mut Session, why: &str) {
    match s.rollback().await {
        Ok(()) => ctx.log.out(format!("{why}: transaction rolled back")).await,
        Err(e) => {
            s.broken = true;
            ctx.log
                .out(format!(
                    "{why}: rollback failed ({}); the server rolls back when the connection closes",
                    s.error(&e)
                ))
                .await
        }
    }
}

/// Opens a session on `link`, logging where (password hidden) and what was ignored.
pub(crate) async fn open(
    ctx: &AttemptContext,
    stop: &Stopper,
    link: &str,
) -> Result<Result<Session, AttemptEnd>, String> {
    let target = links::db_target(ctx, link).await?;
    ctx.log
        .out(format!(
            "connecting to db link `{link}` ({}, {})",
            target.dialect.name(),
            target.shown
        ))
        .await;
    if !target.ignored.is_empty() {
        ctx.log
            .out(format!(
                "ignoring JDBC properties without an equivalent here: {}",
                target.ignored.join(", ")
            ))
            .await;
    }
    Session::open(&target, stop).await
}

pub(super) async fn run(
    ctx: &AttemptContext,
    stop: &Stopper,
    link: &str,
    sql: &Template,
) -> Outcome {
    let text = ctx.render(sql)?;
    let db = links::db_link(ctx, link).await?;
    if let Some(client) = ctx.settings.sql_clients.get(&db.kind) {
        return super::process::run_sql_client(ctx, stop, &db, client, &text).await;
    }
    let mut s = match open(ctx, stop, link).await? {
        Ok(s) => s,
        Err(end) => return Ok(end),
    };
    let stmts = split_statements(&text, s.dialect());
    if stmts.is_empty() {
        s.close().await;
        return Err("the sql action holds no statement (only comments or whitespace)".into());
    }
    let end = run_in_transaction(ctx, stop, &mut s, &stmts, "statement").await;
    s.close().await;
    match end? {
        TxEnd::Committed => Ok(AttemptEnd::Succeeded),
        TxEnd::Stopped(end) => Ok(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str, d: Dialect) -> Vec<String> {
        split_statements(sql, d)
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn semicolons_inside_quotes_and_comments_do_not_split() {
        use Dialect::*;
        let all = [Mysql, Postgres, Sqlite];
        let cases: &[(&[Dialect], &str, &[&str])] = &[
            (&all, "select 1; select 2;", &["select 1", "select 2"]),
            (&all, "select 1;select 2", &["select 1", "select 2"]),
            (&all, "  ;; select 1 ;  ; ", &["select 1"]),
            (&all, "insert into t values ('a;b'); select 2", &["insert into t values ('a;b')", "select 2"]),
            (&all, "select 'it''s; fine'; x", &["select 'it''s; fine'", "x"]),
            (&all, "select \"a;b\" from t; x", &["select \"a;b\" from t", "x"]),
            (&all, "select 1 -- not; split\n; x", &["select 1 -- not; split", "x"]),
            (&all, "select /* a; b */ 1; x", &["select /* a; b */ 1", "x"]),
            (&all, "-- only a comment; really\n", &[]),
            (&all, "/* c */ ; select 1", &["select 1"]),
            (&all, "select 1 /* unterminated; ", &["select 1 /* unterminated;"]),
            (&[Mysql, Sqlite], "select `a;b` from t; x", &["select `a;b` from t", "x"]),
            (&[Mysql], "select 'a\\';b'; x", &["select 'a\\';b'", "x"]),
            (&[Mysql], "select \"a\\\";b\"; x", &["select \"a\\\";b\"", "x"]),
            (&[Mysql], "select 1 # hash; comment\n; x", &["select 1 # hash; comment", "x"]),
            (&[Mysql], "select 1--1; x", &["select 1--1", "x"]),
            (&[Postgres, Sqlite], "select 'a\\'; x", &["select 'a\\'", "x"]),
            (&[Postgres], "select E'a\\';b'; x", &["select E'a\\';b'", "x"]),
            (&[Postgres], "select e'\\\\'; x", &["select e'\\\\'", "x"]),
            (
                &[Postgres],
                "create function f() returns int as $$ begin return 1; end; $$ language plpgsql; select f()",
                &["create function f() returns int as $$ begin return 1; end; $$ language plpgsql", "select f()"],
            ),
            (
                &[Postgres],
                "do $body$ begin perform 1; $x$ not; $x$ end $body$; select 2",
                &["do $body$ begin perform 1; $x$ not; $x$ end $body$", "select 2"],
            ),
            (&[Postgres], "select $1, a$b; x", &["select $1, a$b", "x"]),
            (&[Postgres], "select /* a /* nested; */ still; */ 1; x", &["select /* a /* nested; */ still; */ 1", "x"]),
            (&[Sqlite], "select [a;b] from t; x", &["select [a;b] from t", "x"]),
            (
                &[Sqlite],
                "create trigger tr after insert on t begin insert into u values (1); update v set n = n + 1; end; select 1",
                &["create trigger tr after insert on t begin insert into u values (1); update v set n = n + 1; end", "select 1"],
            ),
            (
                &[Sqlite],
                "CREATE TEMP TRIGGER tr AFTER DELETE ON t BEGIN DELETE FROM u; END;",
                &["CREATE TEMP TRIGGER tr AFTER DELETE ON t BEGIN DELETE FROM u; END"],
            ),
            (&all, "select '中文;字符' ; select 2", &["select '中文;字符'", "select 2"]),
        ];
        for (dialects, sql, want) in cases {
            for d in *dialects {
                assert_eq!(texts(sql, *d), *want, "{d:?}: {sql}");
            }
        }
    }

    #[test]
    fn statements_know_their_line() {
        let sql = "\n  select 1;\n-- comment\n\n  insert into t\n values (1);\n/* x\n */ select 3";
        let lines: Vec<usize> = split_statements(sql, Dialect::Mysql)
            .iter()
            .map(|s| s.line)
            .collect();
        assert_eq!(lines, vec![2, 5, 8]);
    }

    #[test]
    fn previews_are_flat_and_short() {
        assert_eq!(preview("select\n   1,\t2", 50), "select 1, 2");
        assert_eq!(preview("abcdefghij", 4), "abcd…");
        assert_eq!(preview("日本語です", 3), "日本語…");
    }

    #[test]
    fn mysql_ddl_is_recognised() {
        assert!(implicit_commit("  create table t (a int)"));
        assert!(implicit_commit("DROP TABLE x"));
        assert!(!implicit_commit("insert into t select 1"));
        assert!(!implicit_commit("/* x */ update t set a = 1"));
    }
}
