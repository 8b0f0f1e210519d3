//! `transfer` actions: copy rows DB→DB, DB→FILE, FILE→DB, FILE→FILE across SQLite, MySQL and
//! PostgreSQL links; `<transfer><script>` just runs its script like a script action.
//!
//! Streaming: the source is read row by row (a `fetch` stream, or a file line by line) into batches
//! of `transfer_batch_rows`; batches go through a bounded channel to `task-num` writers, each with
//! its own connection, that insert them as multi-row INSERTs with every value bound as text
//! (PostgreSQL casts each to its column's type). Memory is a few batches, whatever the table size.
//! A kill or timeout is honoured between batches (and a statement in flight is cancelled on the
//! server); what was written stays written: make reruns idempotent with `is-pre-truncate` or `<pre>`.
//!
//! A DB target: `<pre>` runs first (in one transaction), then a missing table is created from the
//! source's columns (integers and floats keep their kind, the rest is TEXT; a file source gives
//! `col1..colN`), then `is-pre-truncate` empties it, then the copy, then `<after>`. Columns are
//! matched by position and the counts must agree.
//!
//! Files: one row per line, fields split by `delimited` (any string, default tab; no quoting). An
//! empty field is NULL and NULL is written as an empty field; a value holding the delimiter or a line
//! break cannot be written and fails the transfer, naming the row. A FILE target is written to a
//! temporary file beside it and renamed into place only when the copy is complete. Only LOCAL file
//! links are supported; relative paths are relative to the worker's working directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::db::{self, ColumnInfo, Session, TextRow};
use super::links::{self, Dialect};
use super::sql::{self, TxEnd};
use super::{process, AttemptContext, Outcome, Stopper};
use crate::definition::template::Template;
use crate::definition::{Transfer, TransferSource, TransferTarget};
use crate::state::AttemptEnd;

/// Bound parameters per INSERT stay under every backend's limit (SQLite: 32766).
const MAX_BINDS: usize = 30_000;

pub(super) async fn run(ctx: &AttemptContext, stop: &Stopper, t: &Transfer) -> Outcome {
    match t {
        Transfer::Script { code } => process::run_script(ctx, stop, code, None, &[]).await,
        Transfer::Copy { source, target } => copy(ctx, stop, source, target).await,
    }
}

/// A file source: lines split by the delimiter, with the first one peeked for the column count.
struct FileReader {
    path: PathBuf,
    lines: BufReader<tokio::fs::File>,
    delimiter: String,
    line_no: u64,
    peeked: Option<TextRow>,
}

impl FileReader {
    async fn open(path: PathBuf, delimiter: String) -> Result<Self, String> {
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| format!("cannot open source file `{}`: {e}", path.display()))?;
        let mut r = FileReader {
            path,
            lines: BufReader::new(file),
            delimiter,
            line_no: 0,
            peeked: None,
        };
        r.peeked = r.read().await?;
        Ok(r)
    }

    async fn read(&mut self) -> Result<Option<TextRow>, String> {
        let mut buf = Vec::new();
        let n = self
            .lines
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| format!("reading `{}`: {e}", self.path.display()))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        Ok(Some(split_line(
            &String::from_utf8_lossy(&buf),
            &self.delimiter,
        )))
    }

    async fn next(&mut self) -> Result<Option<TextRow>, String> {
        match self.peeked.take() {
            Some(row) => Ok(Some(row)),
            None => self.read().await,
        }
    }
}

/// One line's fields; an empty field is NULL.
pub(crate) fn split_line(line: &str, delimiter: &str) -> TextRow {
    line.split(delimiter)
        .map(|f| (!f.is_empty()).then(|| f.to_string()))
        .collect()
}

/// One row as a line; `Err` names the column whose value cannot be written.
pub(crate) fn join_line(row: &TextRow, delimiter: &str) -> Result<String, usize> {
    let mut line = String::new();
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            line.push_str(delimiter);
        }
        if let Some(v) = v {
            if v.contains(delimiter) || v.contains('\n') || v.contains('\r') {
                return Err(i);
            }
            line.push_str(v);
        }
    }
    line.push('\n');
    Ok(line)
}

/// A DB source table name becomes `SELECT *`; anything else is taken as the query.
fn source_query(dialect: Dialect, text: &str) -> String {
    let text = text.trim().trim_end_matches(';').trim();
    match db::table_name(dialect, text) {
        Ok(parts) => format!("SELECT * FROM {}", db::table_sql(&parts)),
        Err(_) => text.to_string(),
    }
}

fn file_path(ctx: &AttemptContext, t: &Template) -> Result<PathBuf, String> {
    let p = ctx.render(t)?;
    let p = p.trim();
    if p.is_empty() {
        return Err("the file path is empty".into());
    }
    Ok(PathBuf::from(p))
}

/// Where rows go: the channel to the writers, and the writers' join set.
type Writers = JoinSet<Result<WriterDone, String>>;

struct WriterDone {
    rows: u64,
    stopped: Option<AttemptEnd>,
    /// Returned so the first one can run `<after>`.
    session: Option<Session>,
}

/// A prepared DB target: its insert statement and casts, the extra sessions for parallel writers.
struct DbPlan {
    head: String,
    casts: Vec<String>,
    columns: usize,
    table: String,
}

async fn copy(
    ctx: &AttemptContext,
    stop: &Stopper,
    source: &TransferSource,
    target: &TransferTarget,
) -> Outcome {
    // the source first: its columns shape a table that may have to be created
    enum Src {
        Db { session: Session, query: String },
        File(FileReader),
    }
    let (mut src, src_columns): (Src, Option<Vec<ColumnInfo>>) = match source {
        TransferSource::Db { db_link, query } => {
            let text = ctx.render(query)?;
            let mut session = match sql::open(ctx, stop, db_link).await? {
                Ok(s) => s,
                Err(end) => return Ok(end),
            };
            let query = source_query(session.dialect(), &text);
            ctx.log
                .out(format!("source: {}", sql::preview(&query, 200)))
                .await;
            let cols = session
                .conn
                .columns(&query)
                .await
                .map_err(|e| format!("source query is invalid: {}", session.error(&e)))?;
            (Src::Db { session, query }, Some(cols))
        }
        TransferSource::File {
            file_link,
            path,
            delimiter,
        } => {
            links::require_local(&links::file_link(ctx, file_link).await?)?;
            let path = file_path(ctx, path)?;
            ctx.log
                .out(format!(
                    "source: file `{}` (delimiter {delimiter:?})",
                    path.display()
                ))
                .await;
            let reader = FileReader::open(path, delimiter.clone()).await?;
            let cols = reader.peeked.as_ref().map(|row| {
                (1..=row.len())
                    .map(|i| ColumnInfo {
                        name: format!("col{i}"),
                        type_name: "TEXT".into(),
                    })
                    .collect()
            });
            (Src::File(reader), cols)
        }
    };
    if let Some(end) = stop.check() {
        return Ok(end);
    }

    let batch_cap = ctx.settings.transfer_batch_rows.max(1);
    let (tx, rx) = mpsc::channel::<Vec<TextRow>>(4);
    let rx = Arc::new(Mutex::new(rx));
    let mut writers: Writers = JoinSet::new();
    // a failed writer stops the reader and the other writers
    let abort = CancellationToken::new();
    let mut after: Option<Template> = None;
    let (expect_columns, batch_rows, target_label) = match target {
        TransferTarget::Db {
            db_link,
            table,
            pre_truncate,
            task_num,
            pre,
            after: after_sql,
        } => {
            let mut first = match sql::open(ctx, stop, db_link).await? {
                Ok(s) => s,
                Err(end) => return Ok(end),
            };
            let plan = match prepare_db_target(
                ctx,
                stop,
                &mut first,
                &ctx.render(table)?,
                *pre_truncate,
                pre.as_ref(),
                src_columns.as_deref(),
            )
            .await?
            {
                Ok(p) => p,
                Err(end) => return Ok(end),
            };
            after = after_sql.clone();
            let mut n = (*task_num).max(1) as usize;
            if first.dialect() == Dialect::Sqlite && n > 1 {
                ctx.log
                    .out(format!(
                        "task-num {n}: SQLite takes one writer at a time; using 1"
                    ))
                    .await;
                n = 1;
            }
            let rows = batch_cap.min((MAX_BINDS / plan.columns.max(1)).max(1));
            let plan = Arc::new(plan);
            let mut sessions = vec![first];
            for _ in 1..n {
                match sql::open(ctx, stop, db_link).await? {
                    Ok(s) => sessions.push(s),
                    Err(end) => return Ok(end),
                }
            }
            ctx.log
                .out(format!(
                    "target: table {} on `{db_link}`, {n} writer(s), batches of {rows} rows",
                    plan.table
                ))
                .await;
            for (k, session) in sessions.into_iter().enumerate() {
                writers.spawn(db_writer(
                    k + 1,
                    session,
                    plan.clone(),
                    rx.clone(),
                    stop.clone(),
                    abort.clone(),
                ));
            }
            (Some(plan.columns), rows, format!("table {}", plan.table))
        }
        TransferTarget::File {
            file_link,
            path,
            delimiter,
        } => {
            links::require_local(&links::file_link(ctx, file_link).await?)?;
            let path = file_path(ctx, path)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
            }
            let tmp = PathBuf::from(format!(
                "{}.akkaflow-{}-{}.tmp",
                path.display(),
                ctx.task_id,
                ctx.attempt
            ));
            ctx.log
                .out(format!(
                    "target: file `{}` (delimiter {delimiter:?})",
                    path.display()
                ))
                .await;
            writers.spawn(file_writer(
                tmp,
                path.clone(),
                delimiter.clone(),
                rx.clone(),
                stop.clone(),
                abort.clone(),
            ));
            (None, batch_cap, format!("file `{}`", path.display()))
        }
    };
    drop(rx);

    // the reader: source rows into batches, until the end, an error, or a stop
    let began = Instant::now();
    let mut read = 0u64;
    let mut batches = 0u64;
    let mut batch: Vec<TextRow> = Vec::with_capacity(batch_rows);
    let mut failure: Option<String> = None;
    let mut stopped: Option<AttemptEnd> = None;
    // a table takes rows of its width; a file takes any line
    let width = expect_columns;
    {
        let mut db_rows;
        let mut file_src = None;
        let mut db_cancel = None;
        match &mut src {
            Src::Db { session, query } => {
                let Session { conn, cancel, .. } = session;
                db_rows = Some(conn.rows(query));
                db_cancel = Some(&*cancel);
            }
            Src::File(r) => {
                db_rows = None;
                file_src = Some(r);
            }
        }
        loop {
            let next: Result<Option<TextRow>, String> = tokio::select! {
                biased;
                end = stop.stopped() => {
                    stopped = Some(end);
                    break;
                }
                _ = abort.cancelled() => break,
                row = async {
                    match (&mut db_rows, &mut file_src) {
                        (Some(rows), _) => match rows.next().await {
                            None => Ok(None),
                            Some(Ok(r)) => Ok(Some(r)),
                            Some(Err(e)) => Err(format!("reading the source failed: {}", db::db_error(&e))),
                        },
                        (None, Some(f)) => f.next().await,
                        (None, None) => Ok(None),
                    }
                } => row,
            };
            let row = match next {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            read += 1;
            if let Some(w) = width {
                if row.len() != w {
                    let at = match &file_src {
                        Some(f) => format!("line {} of `{}`", f.line_no, f.path.display()),
                        None => format!("row {read}"),
                    };
                    failure = Some(format!(
                        "{at} has {} field(s), the target has {w} column(s)",
                        row.len()
                    ));
                    break;
                }
            }
            batch.push(row);
            if batch.len() >= batch_rows {
                batches += 1;
                if !send(&tx, std::mem::take(&mut batch), stop, &mut stopped).await {
                    break;
                }
                batch.reserve(batch_rows);
                if batches <= 5 || batches % 20 == 0 {
                    ctx.log.out(format!("read {read} rows so far")).await;
                }
            }
        }
        if stopped.is_some() {
            if let Some(c) = db_cancel {
                // the source query may still be running: stop it on the server too
                let _ = c.cancel().await;
            }
        }
        drop(db_rows);
    }
    if let Src::Db { session, .. } = &mut src {
        // a stream left unfinished leaves the connection mid-result
        session.broken = stopped.is_some() || failure.is_some();
    }
    if failure.is_none() && stopped.is_none() && !batch.is_empty() {
        batches += 1;
        send(&tx, std::mem::take(&mut batch), stop, &mut stopped).await;
    }
    drop(tx);
    if let Src::Db { session, .. } = src {
        session.close().await;
    }

    let mut written = 0u64;
    let mut first_session = None;
    let mut writer_rows = Vec::new();
    while let Some(done) = writers.join_next().await {
        match done {
            Ok(Ok(w)) => {
                written += w.rows;
                writer_rows.push(w.rows);
                if stopped.is_none() {
                    stopped = w.stopped;
                }
                if first_session.is_none() {
                    first_session = w.session;
                } else if let Some(s) = w.session {
                    s.close().await;
                }
            }
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(format!("a writer crashed: {e}"));
            }
        }
    }
    let secs = began.elapsed().as_secs_f64();
    if let Some(e) = failure {
        ctx.log
            .out(format!(
                "read {read} rows, wrote {written} to {target_label} before the failure"
            ))
            .await;
        if let Some(s) = first_session {
            s.close().await;
        }
        return Err(e);
    }
    if let Some(end) = stopped {
        ctx.log
            .out(format!(
                "stopped after reading {read} rows and writing {written} to {target_label}; a table target keeps what was written"
            ))
            .await;
        if let Some(s) = first_session {
            s.close().await;
        }
        return Ok(end);
    }
    let per_writer = if writer_rows.len() > 1 {
        format!(
            " (per writer: {})",
            writer_rows
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        String::new()
    };
    ctx.log
        .out(format!(
            "copied {written} rows in {batches} batch(es) to {target_label} in {secs:.2} s{per_writer}"
        ))
        .await;
    if written != read {
        if let Some(s) = first_session {
            s.close().await;
        }
        return Err(format!(
            "read {read} rows but wrote {written}: the target did not take every row"
        ));
    }
    if let (Some(after_sql), Some(mut s)) = (after, first_session) {
        let text = ctx.render(&after_sql)?;
        let stmts = sql::split_statements(&text, s.dialect());
        let end = sql::run_in_transaction(ctx, stop, &mut s, &stmts, "<after> statement").await;
        s.close().await;
        if let TxEnd::Stopped(end) = end? {
            return Ok(end);
        }
    }
    Ok(AttemptEnd::Succeeded)
}

/// Hands a batch to the writers; `false` when they are gone or the attempt was stopped.
async fn send(
    tx: &mpsc::Sender<Vec<TextRow>>,
    batch: Vec<TextRow>,
    stop: &Stopper,
    stopped: &mut Option<AttemptEnd>,
) -> bool {
    tokio::select! {
        biased;
        end = stop.stopped() => {
            *stopped = Some(end);
            false
        }
        sent = tx.send(batch) => sent.is_ok(),
    }
}

/// `<pre>`, create if missing, truncate; returns how to insert.
async fn prepare_db_target(
    ctx: &AttemptContext,
    stop: &Stopper,
    s: &mut Session,
    table: &str,
    pre_truncate: bool,
    pre: Option<&Template>,
    src_columns: Option<&[ColumnInfo]>,
) -> Result<Result<DbPlan, AttemptEnd>, String> {
    let dialect = s.dialect();
    let parts = db::table_name(dialect, table).map_err(|e| format!("target table: {e}"))?;
    let t = db::table_sql(&parts);
    if let Some(pre) = pre {
        let text = ctx.render(pre)?;
        let stmts = sql::split_statements(&text, dialect);
        if let TxEnd::Stopped(end) =
            sql::run_in_transaction(ctx, stop, s, &stmts, "<pre> statement").await?
        {
            return Ok(Err(end));
        }
    }
    let probe = format!("SELECT * FROM {t} WHERE 1 = 0");
    let columns = match s.conn.columns(&probe).await {
        Ok(cols) => cols,
        Err(e) if db::is_missing_table(&e) => {
            let Some(src) = src_columns else {
                return Err(format!(
                    "target table {t} does not exist and the source is empty: nothing to create it from"
                ));
            };
            let defs: Vec<String> = src
                .iter()
                .map(|c| {
                    format!(
                        "{} {}",
                        db::quote_ident(dialect, &c.name),
                        db::column_type(dialect, &c.type_name)
                    )
                })
                .collect();
            let create = format!("CREATE TABLE {t} ({})", defs.join(", "));
            s.conn
                .execute(&create)
                .await
                .map_err(|e| format!("cannot create target table {t}: {}", s.error(&e)))?;
            ctx.log
                .out(format!("created missing table: {create}"))
                .await;
            s.conn
                .columns(&probe)
                .await
                .map_err(|e| format!("target table {t}: {}", s.error(&e)))?
        }
        Err(e) => return Err(format!("target table {t}: {}", s.error(&e))),
    };
    if let Some(src) = src_columns {
        if src.len() != columns.len() {
            return Err(format!(
                "the source has {} column(s) and target table {t} has {}: columns are matched by position",
                src.len(),
                columns.len()
            ));
        }
    }
    if pre_truncate {
        let sql = match dialect {
            Dialect::Sqlite => format!("DELETE FROM {t}"),
            _ => format!("TRUNCATE TABLE {t}"),
        };
        let r = s
            .conn
            .execute(&sql)
            .await
            .map_err(|e| format!("is-pre-truncate: {}", s.error(&e)))?;
        ctx.log
            .out(format!(
                "{sql}: emptied ({} rows affected)",
                r.rows_affected
            ))
            .await;
    }
    let casts = match dialect {
        Dialect::Postgres => {
            let types = s
                .conn
                .query_texts(
                    "SELECT format_type(a.atttypid, NULL) FROM pg_attribute a \
                     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    &[&t],
                )
                .await
                .map_err(|e| format!("target table {t}: {}", s.error(&e)))?;
            types
                .into_iter()
                .map(|ty| format!("::{}", ty.unwrap_or_else(|| "text".into())))
                .collect()
        }
        _ => Vec::new(),
    };
    let names: Vec<String> = columns
        .iter()
        .map(|c| db::quote_ident(dialect, &c.name))
        .collect();
    Ok(Ok(DbPlan {
        head: format!("INSERT INTO {t} ({})", names.join(", ")),
        casts,
        columns: columns.len(),
        table: t,
    }))
}

/// Inserts batches until the channel closes. A stop is honoured between batches; a batch in flight
/// is one short INSERT and finishes. (No `select!` here: its futures borrow, and rustc cannot then
/// prove the spawned writer `Send`.)
async fn db_writer(
    k: usize,
    mut s: Session,
    plan: Arc<DbPlan>,
    rx: Arc<Mutex<mpsc::Receiver<Vec<TextRow>>>>,
    stop: Stopper,
    abort: CancellationToken,
) -> Result<WriterDone, String> {
    let guard = AbortOnDrop::new(abort.clone());
    let mut rows = 0u64;
    let mut stopped = None;
    while let Some(batch) = recv(rx.clone()).await {
        if abort.is_cancelled() {
            break;
        }
        if let Some(end) = stop.check() {
            stopped = Some(end);
            break;
        }
        match s.conn.insert_rows(&plan.head, &plan.casts, &batch).await {
            Ok(n) => rows += n,
            Err(e) => {
                return Err(format!(
                    "writer {k}: inserting into {} failed after {rows} rows: {}",
                    plan.table,
                    s.error(&e)
                ))
            }
        }
    }
    guard.disarm();
    Ok(WriterDone {
        rows,
        stopped,
        session: Some(s),
    })
}

/// The next batch for a writer (writers share one receiver).
async fn recv(rx: Arc<Mutex<mpsc::Receiver<Vec<TextRow>>>>) -> Option<Vec<TextRow>> {
    rx.lock().await.recv().await
}

/// Cancels the transfer when a writer ends without disarming it (an error or a panic).
struct AbortOnDrop(Option<CancellationToken>);

impl AbortOnDrop {
    fn new(t: CancellationToken) -> Self {
        AbortOnDrop(Some(t))
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.cancel();
        }
    }
}

async fn file_writer(
    tmp: PathBuf,
    path: PathBuf,
    delimiter: String,
    rx: Arc<Mutex<mpsc::Receiver<Vec<TextRow>>>>,
    stop: Stopper,
    abort: CancellationToken,
) -> Result<WriterDone, String> {
    let guard = AbortOnDrop::new(abort);
    let result = write_file(&tmp, &delimiter, rx, &stop).await;
    if result.is_ok() {
        guard.disarm();
    }
    match result {
        Ok((rows, None)) => {
            tokio::fs::rename(&tmp, &path).await.map_err(|e| {
                format!(
                    "cannot move `{}` into place as `{}`: {e}",
                    tmp.display(),
                    path.display()
                )
            })?;
            Ok(WriterDone {
                rows,
                stopped: None,
                session: None,
            })
        }
        other => {
            let _ = tokio::fs::remove_file(&tmp).await;
            other.map(|(rows, stopped)| WriterDone {
                rows,
                stopped,
                session: None,
            })
        }
    }
}

async fn write_file(
    tmp: &Path,
    delimiter: &str,
    rx: Arc<Mutex<mpsc::Receiver<Vec<TextRow>>>>,
    stop: &Stopper,
) -> Result<(u64, Option<AttemptEnd>), String> {
    let file = tokio::fs::File::create(tmp)
        .await
        .map_err(|e| format!("cannot create `{}`: {e}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    let mut rows = 0u64;
    let io = |e: std::io::Error| format!("writing `{}`: {e}", tmp.display());
    loop {
        let Some(batch) = recv(rx.clone()).await else {
            break;
        };
        if let Some(end) = stop.check() {
            return Ok((rows, Some(end)));
        }
        for row in &batch {
            let line = join_line(row, delimiter).map_err(|col| {
                format!(
                    "row {} column {}: the value holds the delimiter {delimiter:?} or a line break, which a delimited file cannot hold",
                    rows + 1,
                    col + 1
                )
            })?;
            out.write_all(line.as_bytes()).await.map_err(io)?;
            rows += 1;
        }
    }
    out.flush().await.map_err(io)?;
    out.into_inner().sync_all().await.map_err(io)?;
    Ok((rows, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_multi_character_delimiters() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(split_line("a\tb\tc", "\t"), vec![s("a"), s("b"), s("c")]);
        assert_eq!(split_line("a---b", "---"), vec![s("a"), s("b")]);
        assert_eq!(split_line("a--b", "---"), vec![s("a--b")]);
        assert_eq!(
            split_line("export PATH=x", "aaaaaa"),
            vec![s("export PATH=x")]
        );
        assert_eq!(split_line("a,,c", ","), vec![s("a"), None, s("c")]);
        assert_eq!(split_line("", ","), vec![None]);
        assert_eq!(split_line("x,", ","), vec![s("x"), None]);
    }

    #[test]
    fn rows_join_back_and_refuse_values_that_would_break_the_file() {
        let row = vec![Some("a".to_string()), None, Some("c".to_string())];
        assert_eq!(join_line(&row, "---").unwrap(), "a------c\n");
        assert_eq!(
            split_line(join_line(&row, "|").unwrap().trim_end(), "|"),
            row
        );
        assert_eq!(join_line(&vec![Some("a|b".into())], "|"), Err(0));
        assert_eq!(
            join_line(&vec![Some("ok".into()), Some("two\nlines".into())], "\t"),
            Err(1)
        );
    }

    #[test]
    fn a_table_name_becomes_select_star_and_a_query_stays() {
        assert_eq!(
            source_query(Dialect::Mysql, " wf.log_record "),
            "SELECT * FROM `wf`.`log_record`"
        );
        assert_eq!(
            source_query(Dialect::Postgres, "select a, b from t where x = 1;"),
            "select a, b from t where x = 1"
        );
        assert_eq!(
            source_query(Dialect::Sqlite, "\"my table\""),
            "SELECT * FROM \"my table\""
        );
    }
}
