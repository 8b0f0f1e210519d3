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
//! record) into batches of `transfer_batch_rows`, each batch's values packed into one buffer
//! ([`RowBlock`]; a kill or timeout is raced once per batch, not per row); batches go through a
//! bounded channel to `task-num` writers, each with its own connection and an encoder task that
//! spells the next batch while the server loads this one: PostgreSQL loads a batch with one
//! `COPY … FROM STDIN`, MySQL and SQLite with prepared multi-row INSERTs of bound values (MySQL's
//! each as large as `max_allowed_packet` allows: bound values spare the server parsing every value
//! as an SQL literal). Memory is a few batches, whatever the table size. A kill or timeout is
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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::db::{self, Session, TextRow};
use super::db_typed::{ReadAs, RowBlock, SourceRow};
use super::links::{self, Dialect};
use super::sql::{self, TxEnd};
use super::{process, AttemptContext, Outcome, Stopper};
use crate::definition::template::Template;
use crate::definition::{Transfer, TransferSource, TransferTarget};
use crate::state::AttemptEnd;

mod db_target;
mod file_target;
mod source;

use db_target::{db_writer, prepare_db_target, PACKET_MARGIN};
use file_target::{file_writer, FileTarget};
use source::{open_source, FileSource, Src};

pub(super) async fn run(ctx: &AttemptContext, stop: &Stopper, t: &Transfer) -> Outcome {
    match t {
        Transfer::Script { code } => process::run_script(ctx, stop, code, None, &[]).await,
        Transfer::Copy { source, target } => copy(ctx, stop, source, target).await,
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

/// A batch of rows and the 1-based number of its first row in the source.
struct Batch {
    first_row: u64,
    rows: RowBlock,
}

type Rx = Arc<Mutex<mpsc::Receiver<Batch>>>;

/// The source's rows as the reader takes them.
enum Rows<'a> {
    Db {
        rows: BoxStream<'a, Result<SourceRow, sqlx::Error>>,
        read: Arc<[ReadAs]>,
    },
    File(&'a mut FileSource),
}

impl Rows<'_> {
    /// Reads rows into `batch` until it holds `batch_rows`; `false` once the source is done.
    /// `read` counts the rows read; a row whose width is not `expect_columns` is an error.
    async fn fill(
        &mut self,
        batch: &mut RowBlock,
        batch_rows: usize,
        read: &mut u64,
        expect_columns: Option<usize>,
    ) -> Result<bool, String> {
        // a row that does not fit the target's width: what it is, without where
        let misfit = |width: usize| {
            expect_columns
                .filter(|w| *w != width)
                .map(|w| format!("has {width} field(s), the target has {w} column(s)"))
        };
        while batch.len() < batch_rows {
            match self {
                Rows::Db { rows, read: how } => match rows.next().await {
                    None => return Ok(false),
                    Some(Err(e)) => {
                        return Err(format!("reading the source failed: {}", db::db_error(&e)))
                    }
                    Some(Ok(row)) => {
                        *read += 1;
                        if let Some(why) = misfit(row.len()) {
                            return Err(format!("row {read} {why}"));
                        }
                        row.push_to(batch, how);
                    }
                },
                Rows::File(f) => match f.next().await? {
                    None => return Ok(false),
                    Some(row) => {
                        *read += 1;
                        if let Some(why) = misfit(row.len()) {
                            let at = format!("line {} of `{}`", f.reader.line_no, f.path.display());
                            return Err(format!("{at} {why}"));
                        }
                        batch.push_row(&row);
                    }
                },
            }
        }
        Ok(true)
    }
}

/// Where rows go: the writers' join set.
type Writers = JoinSet<Result<WriterDone, String>>;

struct WriterDone {
    rows: u64,
    stopped: Option<AttemptEnd>,
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
                    "prepared multi-row INSERTs of up to {} KiB",
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
    let mut batch = RowBlock::with_capacity(batch_rows);
    let mut failure: Option<String> = None;
    let mut stopped: Option<AttemptEnd> = None;
    {
        let mut db_cancel = None;
        let mut rows = match &mut src {
            Src::Db {
                session,
                query,
                read,
            } => {
                let Session { conn, cancel, .. } = session;
                db_cancel = Some(&*cancel);
                Rows::Db {
                    rows: conn.typed_rows(query),
                    read: read.clone(),
                }
            }
            Src::File(f) => Rows::File(f),
        };
        loop {
            // stop and abort are raced once per batch: per row, their timer and waiter
            // registrations cost more than reading the row
            let filled = tokio::select! {
                biased;
                end = stop.stopped() => {
                    stopped = Some(end);
                    break;
                }
                _ = abort.cancelled() => break,
                more = rows.fill(&mut batch, batch_rows, &mut read, expect_columns) => more,
            };
            let more = match filled {
                Ok(more) => more,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            if batch.len() >= batch_rows {
                batches += 1;
                let full = Batch {
                    first_row: read + 1 - batch.len() as u64,
                    rows: std::mem::replace(&mut batch, RowBlock::with_capacity(batch_rows)),
                };
                if !send(&tx, full, stop, &mut stopped).await {
                    break;
                }
                if batches <= 5 || batches % 20 == 0 {
                    ctx.log.out(format!("read {read} rows so far")).await;
                }
            }
            if !more {
                break;
            }
        }
        if stopped.is_some() {
            if let Some(c) = db_cancel {
                // the source query may still be running: stop it on the server too
                let _ = c.cancel().await;
            }
        }
        drop(rows);
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
