//! `transfer` actions: copy rows DB→DB, DB→FILE, FILE→DB, FILE→FILE across SQLite, MySQL and
//! PostgreSQL links; `<transfer><script>` just runs its script like a script action.
//!
//! Types are kept. The source's columns are described with their declared types (`decimal(12,2)`,
//! `timestamp(3) with time zone`); a missing target table is created with the nearest lossless type
//! of the target dialect for each ([`typemap`]); a column with no such type fails the node before
//! anything is created, naming it. An existing table is used as it is: values are checked against
//! and converted to its column types ([`bulk`]), and one that does not fit fails the node naming its
//! row and column. NULL stays NULL. Sessions on both sides run in UTC.
//!
//! Streaming at bulk speed: the source is read row by row (a `fetch` stream, or a file record by
//! record) into batches of `transfer_batch_rows`; batches go through a bounded channel to `task-num`
//! writers, each with its own connection: PostgreSQL loads a batch with one `COPY … FROM STDIN`,
//! MySQL with multi-row INSERTs each as large as `max_allowed_packet` allows, SQLite with multi-row
//! INSERTs of bound values. Memory is a few batches, whatever the table size. A kill or timeout is
//! honoured between batches (and a statement in flight is cancelled on the server); what was written
//! stays written: make reruns idempotent with `is-pre-truncate` or `<pre>`.
//!
//! A DB target: `<pre>` runs first (in one transaction), then a missing table is created, then
//! `is-pre-truncate` empties it, then the copy, then `<after>` (on a fresh connection). Columns are
//! matched by position and the counts must agree, except from a file with `header="true"` into an
//! existing table: then by the header's names.
//!
//! Files: see [`delimited`] (quoting, `\N` for NULL, UTF-8, hex for binary). A FILE target is
//! written to a temporary file beside it and renamed into place only when the copy is complete.
//! Only LOCAL file links are supported; relative paths are relative to the worker's working
//! directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::bulk::{self, Ready, TargetColumn};
use super::db::{self, Conn, Session, TextRow};
use super::db_typed::ReadAs;
use super::delimited::{self, RecordReader};
use super::links::{self, Dialect};
use super::sql::{self, TxEnd};
use super::typemap::{self, ColType};
use super::{process, AttemptContext, Outcome, Stopper};
use crate::definition::template::Template;
use crate::definition::{Transfer, TransferSource, TransferTarget};
use crate::state::AttemptEnd;

/// Bound parameters per SQLite INSERT stay under its limit (32766).
const MAX_BINDS: usize = 30_000;

/// Room left in a MySQL packet for the protocol's own bytes.
const PACKET_MARGIN: usize = 1024;

pub(super) async fn run(ctx: &AttemptContext, stop: &Stopper, t: &Transfer) -> Outcome {
    match t {
        Transfer::Script { code } => process::run_script(ctx, stop, code, None, &[]).await,
        Transfer::Copy { source, target } => copy(ctx, stop, source, target).await,
    }
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

/// MySQL sends a FLOAT as text with 6 digits, which does not read back as the same number: such
/// columns are read through a DOUBLE, which holds every FLOAT exactly.
fn exact_floats(dialect: Dialect, query: String, columns: &[SourceColumn]) -> String {
    let float = |c: &SourceColumn| matches!(c.ty, ColType::Float { double: false });
    if dialect != Dialect::Mysql || !columns.iter().any(float) {
        return query;
    }
    let list: Vec<String> = columns
        .iter()
        .map(|c| {
            let name = db::quote_ident(dialect, &c.name);
            if float(c) {
                format!("CAST(q.{name} AS DOUBLE) AS {name}")
            } else {
                format!("q.{name}")
            }
        })
        .collect();
    format!("SELECT {} FROM ({query}) AS q", list.join(", "))
}

/// A source column: its name and type.
#[derive(Clone, Debug)]
struct SourceColumn {
    name: String,
    declared: String,
    ty: ColType,
}

/// The source's columns, and where their types come from.
struct SourceShape {
    /// `None`: a file without header that is empty (nothing to create a table from).
    columns: Option<Vec<SourceColumn>>,
    /// The dialect of a DB source (`None`: a file, whose values are untyped text).
    dialect: Option<Dialect>,
    /// A file's header named the columns: an existing table takes them by name.
    by_name: bool,
}

/// A batch of rows and the 1-based number of its first row in the source.
struct Batch {
    first_row: u64,
    rows: Vec<TextRow>,
}

type Rx = Arc<Mutex<mpsc::Receiver<Batch>>>;

/// Where rows go: the writers' join set.
type Writers = JoinSet<Result<WriterDone, String>>;

struct WriterDone {
    rows: u64,
    stopped: Option<AttemptEnd>,
}

/// A prepared DB target: how to write into it.
struct DbPlan {
    dialect: Dialect,
    table: String,
    /// `(a, b, c)`: the columns written, in the order of the source's.
    names: String,
    columns: Vec<TargetColumn>,
    /// MySQL: the largest statement the server takes, and whether `\` escapes in strings.
    max_statement: usize,
    backslash: bool,
}

/// A file source: records, with the first one peeked for the column count.
struct FileSource {
    path: PathBuf,
    reader: RecordReader<BufReader<tokio::fs::File>>,
    peeked: Option<TextRow>,
}

impl FileSource {
    async fn next(&mut self) -> Result<Option<TextRow>, String> {
        match self.peeked.take() {
            Some(row) => Ok(Some(row)),
            None => self.reader.next().await,
        }
    }
}

enum Src {
    Db {
        session: Session,
        query: String,
        read: Arc<[ReadAs]>,
    },
    File(FileSource),
}

async fn open_source(
    ctx: &AttemptContext,
    stop: &Stopper,
    source: &TransferSource,
) -> Result<Result<(Src, SourceShape), AttemptEnd>, String> {
    match source {
        TransferSource::Db { db_link, query } => {
            let text = ctx.render(query)?;
            let mut session = match sql::open(ctx, stop, db_link).await? {
                Ok(s) => s,
                Err(end) => return Ok(Err(end)),
            };
            let dialect = session.dialect();
            let query = source_query(dialect, &text);
            ctx.log
                .out(format!("source: {}", sql::preview(&query, 200)))
                .await;
            session
                .conn
                .prepare_transfer()
                .await
                .map_err(|e| format!("source session: {}", session.error(&e)))?;
            // a table is described from its own definition (MariaDB's JSON shows only there)
            let declared = match db::table_name(dialect, text.trim().trim_end_matches(';').trim()) {
                Ok(parts) => session
                    .conn
                    .table_columns(&parts)
                    .await
                    .map_err(|e| format!("source table: {}", session.error(&e)))?
                    .ok_or_else(|| {
                        format!("source table {} does not exist", db::table_sql(&parts))
                    })?,
                Err(_) => session
                    .conn
                    .query_columns(&query)
                    .await
                    .map_err(|e| format!("source query is invalid: {}", session.error(&e)))?,
            };
            let columns: Vec<SourceColumn> = declared
                .into_iter()
                .map(|(name, declared)| SourceColumn {
                    ty: typemap::parse(dialect, &declared),
                    name,
                    declared,
                })
                .collect();
            let query = exact_floats(dialect, query, &columns);
            let read = columns
                .iter()
                .map(|c| match c.ty {
                    ColType::Binary { .. } => ReadAs::Hex,
                    _ => ReadAs::Text,
                })
                .collect();
            let shape = SourceShape {
                columns: Some(columns),
                dialect: Some(dialect),
                by_name: false,
            };
            Ok(Ok((
                Src::Db {
                    session,
                    query,
                    read,
                },
                shape,
            )))
        }
        TransferSource::File {
            file_link,
            path,
            delimiter,
            header,
        } => {
            links::require_local(&links::file_link(ctx, file_link).await?)?;
            let path = file_path(ctx, path)?;
            ctx.log
                .out(format!(
                    "source: file `{}` (delimiter {delimiter:?}{})",
                    path.display(),
                    if *header { ", header" } else { "" }
                ))
                .await;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| format!("cannot open source file `{}`: {e}", path.display()))?;
            let mut reader =
                RecordReader::new(path.clone(), BufReader::new(file), delimiter.clone());
            let text = |name: String| SourceColumn {
                name,
                declared: "TEXT".into(),
                ty: ColType::Text {
                    len: None,
                    fixed: false,
                },
            };
            let (columns, peeked) = if *header {
                let names = reader.next().await?.ok_or_else(|| {
                    format!(
                        "source file `{}` is empty: header=\"true\" needs a first line with the column names",
                        path.display()
                    )
                })?;
                let mut cols = Vec::new();
                for (i, n) in names.into_iter().enumerate() {
                    let n = n.filter(|n| !n.trim().is_empty()).ok_or_else(|| {
                        format!(
                            "the header of `{}` has no name for column {}",
                            path.display(),
                            i + 1
                        )
                    })?;
                    cols.push(text(n));
                }
                (Some(cols), None)
            } else {
                let first = reader.next().await?;
                let cols = first
                    .as_ref()
                    .map(|row| (1..=row.len()).map(|i| text(format!("col{i}"))).collect());
                (cols, first)
            };
            let shape = SourceShape {
                columns,
                dialect: None,
                by_name: *header,
            };
            Ok(Ok((
                Src::File(FileSource {
                    path,
                    reader,
                    peeked,
                }),
                shape,
            )))
        }
    }
}

async fn copy(
    ctx: &AttemptContext,
    stop: &Stopper,
    source: &TransferSource,
    target: &TransferTarget,
) -> Outcome {
    // the source first: its columns shape a table that may have to be created
    let (mut src, shape) = match open_source(ctx, stop, source).await? {
        Ok(s) => s,
        Err(end) => return Ok(end),
    };
    if let Some(end) = stop.check() {
        return Ok(end);
    }

    let batch_rows = ctx.settings.transfer_batch_rows.max(1);
    let (tx, rx) = mpsc::channel::<Batch>(4);
    let rx = Arc::new(Mutex::new(rx));
    let mut writers: Writers = JoinSet::new();
    // a failed writer stops the reader and the other writers
    let abort = CancellationToken::new();
    let mut after: Option<(String, Template)> = None;
    let (expect_columns, target_label) = match target {
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
                &shape,
            )
            .await?
            {
                Ok(p) => p,
                Err(end) => return Ok(end),
            };
            after = after_sql.clone().map(|a| (db_link.clone(), a));
            let mut n = (*task_num).max(1) as usize;
            if first.dialect() == Dialect::Sqlite && n > 1 {
                ctx.log
                    .out(format!(
                        "task-num {n}: SQLite takes one writer at a time; using 1"
                    ))
                    .await;
                n = 1;
            }
            let how = match plan.dialect {
                Dialect::Postgres => "COPY".to_string(),
                Dialect::Mysql => format!(
                    "multi-row INSERTs of up to {} KiB",
                    (plan.max_statement + PACKET_MARGIN) / 1024
                ),
                Dialect::Sqlite => "multi-row INSERTs".to_string(),
            };
            let plan = Arc::new(plan);
            let mut sessions = vec![first];
            for _ in 1..n {
                let mut s = match sql::open(ctx, stop, db_link).await? {
                    Ok(s) => s,
                    Err(end) => return Ok(end),
                };
                s.conn
                    .prepare_transfer()
                    .await
                    .map_err(|e| format!("target session: {}", s.error(&e)))?;
                sessions.push(s);
            }
            ctx.log
                .out(format!(
                    "target: table {} on `{db_link}`, {n} writer(s), batches of {batch_rows} rows by {how}",
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
            (Some(plan.columns.len()), format!("table {}", plan.table))
        }
        TransferTarget::File {
            file_link,
            path,
            delimiter,
            header,
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
                    "target: file `{}` (delimiter {delimiter:?}{})",
                    path.display(),
                    if *header { ", header" } else { "" }
                ))
                .await;
            let header_line = header.then(|| {
                shape
                    .columns
                    .iter()
                    .flatten()
                    .map(|c| Some(c.name.clone()))
                    .collect::<TextRow>()
            });
            writers.spawn(file_writer(
                FileTarget {
                    tmp,
                    path: path.clone(),
                    delimiter: delimiter.clone(),
                    header: header_line,
                },
                rx.clone(),
                stop.clone(),
                abort.clone(),
            ));
            (None, format!("file `{}`", path.display()))
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
    {
        let mut db_rows;
        let mut file_src = None;
        let mut db_cancel = None;
        match &mut src {
            Src::Db {
                session,
                query,
                read,
            } => {
                let Session { conn, cancel, .. } = session;
                db_rows = Some(conn.typed_rows(query, read.clone()));
                db_cancel = Some(&*cancel);
            }
            Src::File(f) => {
                db_rows = None;
                file_src = Some(f);
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
            if let Some(w) = expect_columns {
                if row.len() != w {
                    let at = match &file_src {
                        Some(f) => format!("line {} of `{}`", f.reader.line_no, f.path.display()),
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
                let full = Batch {
                    first_row: read + 1 - batch.len() as u64,
                    rows: std::mem::replace(&mut batch, Vec::with_capacity(batch_rows)),
                };
                if !send(&tx, full, stop, &mut stopped).await {
                    break;
                }
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
        let last = Batch {
            first_row: read + 1 - batch.len() as u64,
            rows: std::mem::take(&mut batch),
        };
        send(&tx, last, stop, &mut stopped).await;
    }
    drop(tx);
    if let Src::Db { session, .. } = src {
        session.close().await;
    }

    let mut written = 0u64;
    let mut writer_rows = Vec::new();
    while let Some(done) = writers.join_next().await {
        match done {
            Ok(Ok(w)) => {
                written += w.rows;
                writer_rows.push(w.rows);
                if stopped.is_none() {
                    stopped = w.stopped;
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
        return Err(e);
    }
    if let Some(end) = stopped {
        ctx.log
            .out(format!(
                "stopped after reading {read} rows and writing {written} to {target_label}; a table target keeps what was written"
            ))
            .await;
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
        return Err(format!(
            "read {read} rows but wrote {written}: the target did not take every row"
        ));
    }
    if let Some((link, after_sql)) = after {
        let text = ctx.render(&after_sql)?;
        let mut s = match sql::open(ctx, stop, &link).await? {
            Ok(s) => s,
            Err(end) => return Ok(end),
        };
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
    tx: &mpsc::Sender<Batch>,
    batch: Batch,
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

/// The type a created column gets: within one dialect the source's own declaration (unless it is a
/// driver's bare name that needs a size), else the type map's.
fn created_type(target: Dialect, source: Option<Dialect>, col: &SourceColumn) -> typemap::Mapped {
    let bare = matches!(
        col.declared.to_ascii_uppercase().as_str(),
        "VARCHAR" | "CHAR" | "VARBINARY" | "BINARY" | "NULL" | ""
    );
    if source == Some(target) && !bare {
        return typemap::Mapped {
            sql: col.declared.clone(),
            loss: None,
            note: None,
        };
    }
    typemap::map(target, &col.ty)
}

/// `<pre>`, create if missing, truncate; returns how to write.
async fn prepare_db_target(
    ctx: &AttemptContext,
    stop: &Stopper,
    s: &mut Session,
    table: &str,
    pre_truncate: bool,
    pre: Option<&Template>,
    shape: &SourceShape,
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
    s.conn
        .prepare_transfer()
        .await
        .map_err(|e| format!("target session: {}", s.error(&e)))?;
    let existing = s
        .conn
        .table_columns(&parts)
        .await
        .map_err(|e| format!("target table {t}: {}", s.error(&e)))?;
    let created = existing.is_none();
    let declared = match existing {
        Some(cols) => cols,
        None => {
            let Some(src) = &shape.columns else {
                return Err(format!(
                    "target table {t} does not exist and the source is empty: nothing to create it from"
                ));
            };
            let mapped: Vec<typemap::Mapped> = src
                .iter()
                .map(|c| created_type(dialect, shape.dialect, c))
                .collect();
            let losses: Vec<String> = src
                .iter()
                .zip(&mapped)
                .filter_map(|(c, m)| {
                    m.loss
                        .as_ref()
                        .map(|why| format!("column `{}` ({}): {why}", c.name, c.declared))
                })
                .collect();
            if !losses.is_empty() {
                for l in &losses {
                    ctx.log.out(format!("no lossless type: {l}")).await;
                }
                return Err(format!(
                    "target table {t} was not created: {} column(s) have no lossless {} type: {}. \
                     Create the table yourself (values are then converted to its types, and one that \
                     does not fit fails the node) or cast the column in the source query",
                    losses.len(),
                    dialect.name(),
                    losses.join("; ")
                ));
            }
            let defs: Vec<String> = src
                .iter()
                .zip(&mapped)
                .map(|(c, m)| format!("{} {}", db::quote_ident(dialect, &c.name), m.sql))
                .collect();
            let charset = match dialect {
                // whatever the database's default: text keeps every character
                Dialect::Mysql => " DEFAULT CHARACTER SET utf8mb4",
                _ => "",
            };
            let create = format!("CREATE TABLE {t} ({}){charset}", defs.join(", "));
            s.conn
                .execute(&create)
                .await
                .map_err(|e| format!("cannot create target table {t}: {}", s.error(&e)))?;
            ctx.log
                .out(format!("created missing table: {create}"))
                .await;
            for (c, m) in src.iter().zip(&mapped) {
                if let Some(note) = &m.note {
                    ctx.log
                        .out(format!(
                            "column `{}`: {} as {}: {note}",
                            c.name, c.declared, m.sql
                        ))
                        .await;
                }
            }
            s.conn
                .table_columns(&parts)
                .await
                .map_err(|e| format!("target table {t}: {}", s.error(&e)))?
                .ok_or_else(|| format!("target table {t} is missing right after CREATE TABLE"))?
        }
    };
    // which target column takes each source column
    let order: Vec<usize> = match (&shape.columns, shape.by_name && !created) {
        (Some(src), true) => {
            let mut order = Vec::new();
            for c in src {
                let i = declared
                    .iter()
                    .position(|(n, _)| n.eq_ignore_ascii_case(&c.name))
                    .ok_or_else(|| {
                        format!(
                            "the header names column `{}`, which target table {t} does not have",
                            c.name
                        )
                    })?;
                order.push(i);
            }
            order
        }
        (src, _) => {
            if let Some(src) = src {
                if src.len() != declared.len() {
                    return Err(format!(
                        "the source has {} column(s) and target table {t} has {}: columns are matched by position",
                        src.len(),
                        declared.len()
                    ));
                }
            }
            (0..declared.len()).collect()
        }
    };
    let columns: Vec<TargetColumn> = order
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let (name, decl) = &declared[i];
            let src = shape.columns.as_ref().and_then(|c| c.get(k));
            // a table made from a typed source takes its values as they are, unless the map noted
            // a narrower range (MySQL TIME into a time of day)
            let trusted = created
                && shape.dialect.is_some()
                && src.is_some_and(|c| created_type(dialect, shape.dialect, c).note.is_none());
            TargetColumn {
                name: name.clone(),
                declared: decl.clone(),
                ty: typemap::parse(dialect, decl),
                check: !trusted,
                hex_in: shape.dialect.is_none()
                    || src.is_some_and(|c| matches!(c.ty, ColType::Binary { .. })),
            }
        })
        .collect();
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
    let (max_statement, backslash) = match dialect {
        Dialect::Mysql => {
            let row = s
                .conn
                .first_row("SELECT @@max_allowed_packet, @@sql_mode")
                .await
                .map_err(|e| format!("target session: {}", s.error(&e)))?
                .unwrap_or_default();
            let packet = row
                .first()
                .cloned()
                .flatten()
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(4 << 20);
            let mode = row.get(1).cloned().flatten().unwrap_or_default();
            // a statement beyond 16 MiB gains nothing and holds that much memory per writer
            (
                packet.min(16 << 20).saturating_sub(PACKET_MARGIN),
                !mode.contains("NO_BACKSLASH_ESCAPES"),
            )
        }
        _ => (0, false),
    };
    let names: Vec<String> = columns
        .iter()
        .map(|c| db::quote_ident(dialect, &c.name))
        .collect();
    Ok(Ok(DbPlan {
        dialect,
        names: format!("({})", names.join(", ")),
        columns,
        table: t,
        max_statement,
        backslash,
    }))
}

/// Writes batches until the channel closes. A stop is honoured between batches; a batch in flight
/// is one bulk statement and finishes. (No `select!` here: its futures borrow, and rustc cannot
/// then prove the spawned writer `Send`.)
async fn db_writer(
    k: usize,
    mut s: Session,
    plan: Arc<DbPlan>,
    rx: Rx,
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
        match write_batch(&mut s.conn, &plan, &batch).await {
            Ok(n) => rows += n,
            Err(WriteError::Value(e)) => return Err(e),
            Err(WriteError::Db { e, first_row }) => {
                let at = db_error_row(&e)
                    .map(|r| format!(" at row {} of the source", first_row + r - 1))
                    .unwrap_or_default();
                return Err(format!(
                    "writer {k}: writing into {} failed{at} after {rows} rows: {}",
                    plan.table,
                    s.error(&e)
                ));
            }
        }
    }
    guard.disarm();
    s.close().await;
    Ok(WriterDone { rows, stopped })
}

enum WriteError {
    /// A value that cannot go into its column: names row and column.
    Value(String),
    /// The database refused a statement whose first row is `first_row`.
    Db { e: sqlx::Error, first_row: u64 },
}

/// The row, counted from 1 within the failed statement, that the database names in `e`:
/// PostgreSQL's COPY context `line N`, MySQL's `at row N`.
fn db_error_row(e: &sqlx::Error) -> Option<u64> {
    let d = e.as_database_error()?;
    let context = d
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|p| p.r#where())
        .unwrap_or_default()
        .to_string();
    for (text, key) in [(context.as_str(), "line "), (d.message(), "at row ")] {
        if let Some(at) = text.find(key) {
            let digits: String = text[at + key.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

/// One row's values, ready for the plan's columns.
fn ready_row<'a>(plan: &DbPlan, row: &'a TextRow, row_no: u64) -> Result<Vec<Ready<'a>>, String> {
    plan.columns
        .iter()
        .zip(row)
        .map(|(col, v)| {
            bulk::ready(plan.dialect, col, v.as_deref()).map_err(|why| {
                format!(
                    "row {row_no} column `{}` ({}): {why}: {}",
                    col.name,
                    col.declared,
                    sql::preview(v.as_deref().unwrap_or(""), 60)
                )
            })
        })
        .collect()
}

/// Writes one batch by the target's bulk path; the rows written.
async fn write_batch(conn: &mut Conn, plan: &DbPlan, batch: &Batch) -> Result<u64, WriteError> {
    let row_no = |i: usize| batch.first_row + i as u64;
    match conn {
        Conn::Postgres(_) => {
            let mut data = String::with_capacity(batch.rows.len() * 64);
            for (i, row) in batch.rows.iter().enumerate() {
                let values = ready_row(plan, row, row_no(i)).map_err(WriteError::Value)?;
                for (j, v) in values.iter().enumerate() {
                    if j > 0 {
                        data.push('\t');
                    }
                    bulk::copy_value(&mut data, v);
                }
                data.push('\n');
            }
            let statement = format!("COPY {} {} FROM STDIN", plan.table, plan.names);
            conn.copy_in(&statement, data.as_bytes())
                .await
                .map_err(|e| WriteError::Db {
                    e,
                    first_row: batch.first_row,
                })
        }
        Conn::Mysql(_) => {
            let head = format!("INSERT INTO {} {} VALUES ", plan.table, plan.names);
            let mut written = 0u64;
            let mut stmt = String::with_capacity(plan.max_statement.min(1 << 20));
            let mut stmt_first = 0usize;
            let mut in_stmt = 0usize;
            let mut tuple = String::new();
            for (i, row) in batch.rows.iter().enumerate() {
                let values = ready_row(plan, row, row_no(i)).map_err(WriteError::Value)?;
                tuple.clear();
                tuple.push('(');
                for (j, v) in values.iter().enumerate() {
                    if j > 0 {
                        tuple.push(',');
                    }
                    bulk::mysql_literal(&mut tuple, v, plan.backslash);
                }
                tuple.push(')');
                if in_stmt > 0 && stmt.len() + 1 + tuple.len() > plan.max_statement {
                    written += run_insert(conn, &stmt, row_no(stmt_first)).await?;
                    in_stmt = 0;
                }
                if in_stmt == 0 {
                    stmt.clear();
                    stmt.push_str(&head);
                    stmt_first = i;
                } else {
                    stmt.push(',');
                }
                stmt.push_str(&tuple);
                in_stmt += 1;
            }
            if in_stmt > 0 {
                written += run_insert(conn, &stmt, row_no(stmt_first)).await?;
            }
            Ok(written)
        }
        Conn::Sqlite(c) => {
            let per_stmt = (MAX_BINDS / plan.columns.len().max(1)).max(1);
            let mut written = 0u64;
            for (n, chunk) in batch.rows.chunks(per_stmt).enumerate() {
                let first = n * per_stmt;
                let mut ready = Vec::with_capacity(chunk.len());
                for (i, row) in chunk.iter().enumerate() {
                    ready.push(ready_row(plan, row, row_no(first + i)).map_err(WriteError::Value)?);
                }
                let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                    "INSERT INTO {} {} ",
                    plan.table, plan.names
                ));
                qb.push_values(ready, |mut b, row| {
                    for v in row {
                        match v {
                            Ready::Null => b.push_bind(None::<String>),
                            Ready::Text(t) => b.push_bind(t.into_owned()),
                            Ready::Hex(h) => b.push_bind(bulk::hex_decode(&h)),
                        };
                    }
                });
                written += qb
                    .build()
                    .execute(&mut *c)
                    .await
                    .map_err(|e| WriteError::Db {
                        e,
                        first_row: row_no(first),
                    })?
                    .rows_affected();
            }
            Ok(written)
        }
    }
}

async fn run_insert(conn: &mut Conn, stmt: &str, first_row: u64) -> Result<u64, WriteError> {
    conn.execute(stmt)
        .await
        .map(|r| r.rows_affected)
        .map_err(|e| WriteError::Db { e, first_row })
}

/// The next batch for a writer (writers share one receiver).
async fn recv(rx: Rx) -> Option<Batch> {
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

struct FileTarget {
    tmp: PathBuf,
    path: PathBuf,
    delimiter: String,
    /// The header record, when asked for.
    header: Option<TextRow>,
}

async fn file_writer(
    f: FileTarget,
    rx: Rx,
    stop: Stopper,
    abort: CancellationToken,
) -> Result<WriterDone, String> {
    let guard = AbortOnDrop::new(abort);
    let result = write_file(&f, rx, &stop).await;
    if result.is_ok() {
        guard.disarm();
    }
    match result {
        Ok((rows, None)) => {
            tokio::fs::rename(&f.tmp, &f.path).await.map_err(|e| {
                format!(
                    "cannot move `{}` into place as `{}`: {e}",
                    f.tmp.display(),
                    f.path.display()
                )
            })?;
            Ok(WriterDone {
                rows,
                stopped: None,
            })
        }
        other => {
            let _ = tokio::fs::remove_file(&f.tmp).await;
            other.map(|(rows, stopped)| WriterDone { rows, stopped })
        }
    }
}

async fn write_file(
    f: &FileTarget,
    rx: Rx,
    stop: &Stopper,
) -> Result<(u64, Option<AttemptEnd>), String> {
    let tmp: &Path = &f.tmp;
    let file = tokio::fs::File::create(tmp)
        .await
        .map_err(|e| format!("cannot create `{}`: {e}", tmp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rows = 0u64;
    let io = |e: std::io::Error| format!("writing `{}`: {e}", tmp.display());
    let mut text = String::new();
    if let Some(h) = &f.header {
        delimited::write_record(&mut text, h, &f.delimiter);
    }
    loop {
        let Some(batch) = recv(rx.clone()).await else {
            break;
        };
        if let Some(end) = stop.check() {
            return Ok((rows, Some(end)));
        }
        for row in &batch.rows {
            delimited::write_record(&mut text, row, &f.delimiter);
            rows += 1;
        }
        out.write_all(text.as_bytes()).await.map_err(io)?;
        text.clear();
    }
    out.write_all(text.as_bytes()).await.map_err(io)?;
    out.flush().await.map_err(io)?;
    out.into_inner().sync_all().await.map_err(io)?;
    Ok((rows, None))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_created_column_copies_its_own_dialect_and_maps_the_others() {
        let col = |declared: &str, d| SourceColumn {
            name: "c".into(),
            declared: declared.into(),
            ty: typemap::parse(d, declared),
        };
        let m = created_type(
            Dialect::Mysql,
            Some(Dialect::Mysql),
            &col("bigint(20) unsigned", Dialect::Mysql),
        );
        assert_eq!(m.sql, "bigint(20) unsigned");
        let m = created_type(
            Dialect::Mysql,
            Some(Dialect::Mysql),
            &col("VARCHAR", Dialect::Mysql),
        );
        assert_eq!(m.sql, "LONGTEXT");
        let m = created_type(
            Dialect::Postgres,
            Some(Dialect::Mysql),
            &col("decimal(12,2)", Dialect::Mysql),
        );
        assert_eq!(m.sql, "numeric(12,2)");
    }
}
