//! A DB target: `<pre>`, the table created with lossless types when missing, truncation, then
//! writers loading batches (PostgreSQL `COPY`, MySQL and SQLite multi-row INSERTs of bound values,
//! MySQL's packet-sized), each failure naming its row and column.

use std::sync::Arc;

use sqlx::mysql::MySqlArguments;
use sqlx::Arguments;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::definition::template::Template;
use crate::executor::bulk::{self, Ready, TargetColumn};
use crate::executor::db::{self, Conn, Session};
use crate::executor::db_typed::RowRef;
use crate::executor::links::Dialect;
use crate::executor::sql::{self, TxEnd};
use crate::executor::typemap::{self, ColType};
use crate::executor::{AttemptContext, Stopper};
use crate::state::AttemptEnd;

use super::source::{SourceColumn, SourceShape};
use super::{recv, AbortOnDrop, Batch, Rx, WriterDone};

/// Bound parameters per SQLite INSERT stay under its limit (32766).
pub(super) const MAX_BINDS: usize = 30_000;

/// Placeholders per MySQL prepared statement stay under its limit (65535).
pub(super) const MYSQL_MAX_BINDS: usize = 60_000;

/// What a bound value costs a MySQL packet beyond its bytes, at most: its type (2 bytes) and its
/// length prefix (up to 9), rounded up to cover the NULL bitmap.
const BOUND_VALUE_OVERHEAD: usize = 12;

/// Room left in a MySQL packet for the protocol's own bytes.
pub(super) const PACKET_MARGIN: usize = 1024;

/// A prepared DB target: how to write into it.
pub(super) struct DbPlan {
    pub(super) dialect: Dialect,
    pub(super) table: String,
    /// `(a, b, c)`: the columns written, in the order of the source's.
    pub(super) names: String,
    pub(super) columns: Vec<TargetColumn>,
    /// MySQL: the largest statement (with its bound values) the server takes.
    pub(super) max_statement: usize,
}

/// The type a created column gets: within one dialect the source's own declaration (unless it is a
/// driver's bare name that needs a size), else the type map's.
pub(super) fn created_type(
    target: Dialect,
    source: Option<Dialect>,
    col: &SourceColumn,
) -> typemap::Mapped {
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
pub(super) async fn prepare_db_target(
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
    let max_statement = match dialect {
        Dialect::Mysql => {
            let packet = s
                .conn
                .first_row("SELECT @@max_allowed_packet")
                .await
                .map_err(|e| format!("target session: {}", s.error(&e)))?
                .and_then(|row| row.into_iter().next().flatten())
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(4 << 20);
            // a statement beyond 16 MiB gains nothing and holds that much memory per writer
            packet.min(16 << 20).saturating_sub(PACKET_MARGIN)
        }
        _ => 0,
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
    }))
}

/// Writes batches until the channel closes. A stop is honoured between batches; a batch in flight
/// is one bulk statement and finishes. Batches are spelled for the target by a task of their own,
/// so the next one is encoded while the server loads this one. (No `select!` here: its futures
/// borrow, and rustc cannot then prove the spawned writer `Send`.)
pub(super) async fn db_writer(
    k: usize,
    mut s: Session,
    plan: Arc<DbPlan>,
    rx: Rx,
    stop: Stopper,
    abort: CancellationToken,
) -> Result<WriterDone, String> {
    let guard = AbortOnDrop::new(abort.clone());
    let (encoded_tx, mut encoded) = mpsc::channel::<Result<Encoded, String>>(1);
    let encoder = tokio::spawn({
        let plan = plan.clone();
        async move {
            while let Some(batch) = recv(rx.clone()).await {
                let next = encode(&plan, batch);
                let failed = next.is_err();
                if encoded_tx.send(next).await.is_err() || failed {
                    break;
                }
            }
        }
    });
    // the encoder ends with the writer, whichever way the writer ends
    let _encoder = AbortTaskOnDrop(encoder);
    let mut rows = 0u64;
    let mut stopped = None;
    while let Some(next) = encoded.recv().await {
        if abort.is_cancelled() {
            break;
        }
        if let Some(end) = stop.check() {
            stopped = Some(end);
            break;
        }
        match write_encoded(&mut s.conn, &plan, next?).await {
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

/// Aborts a task when dropped. (tokio-util's `AbortOnDropHandle` is this, but its `rt` feature
/// pulls a proc-macro crate into the build for six lines.)
struct AbortTaskOnDrop(JoinHandle<()>);

impl Drop for AbortTaskOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) enum WriteError {
    /// A value that cannot go into its column: names row and column.
    Value(String),
    /// The database refused a statement whose first row is `first_row`.
    Db { e: sqlx::Error, first_row: u64 },
}

/// The row, counted from 1 within the failed statement, that the database names in `e`:
/// PostgreSQL's COPY context `line N`, MySQL's `at row N`.
pub(super) fn db_error_row(e: &sqlx::Error) -> Option<u64> {
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

/// A row's values, each checked and converted for its column, handed to `put` in order; the first
/// error, of a value or of `put`, ends it.
pub(super) fn each_ready<'a>(
    plan: &DbPlan,
    row: RowRef<'a>,
    row_no: u64,
    mut put: impl FnMut(usize, Ready<'a>) -> Result<(), String>,
) -> Result<(), String> {
    for (j, (col, v)) in plan.columns.iter().zip(row.values()).enumerate() {
        let ready = bulk::ready(plan.dialect, col, v).map_err(|why| {
            format!(
                "row {row_no} column `{}` ({}): {why}: {}",
                col.name,
                col.declared,
                sql::preview(v.unwrap_or(""), 60)
            )
        })?;
        put(j, ready)?;
    }
    Ok(())
}

/// A batch spelled for the target's bulk path.
pub(super) enum Encoded {
    /// PostgreSQL: one `COPY … FROM STDIN` of this text-format data.
    Copy { first_row: u64, data: String },
    /// MySQL: prepared multi-row INSERTs with their values, each with the source row of its first
    /// tuple.
    Inserts(Vec<(String, MySqlArguments, u64)>),
    /// SQLite: values are bound as the batch is written.
    Bound(Batch),
}

/// Checks and spells a batch for the plan's target; `Err` names the value that does not fit.
pub(super) fn encode(plan: &DbPlan, batch: Batch) -> Result<Encoded, String> {
    let row_no = |i: usize| batch.first_row + i as u64;
    match plan.dialect {
        Dialect::Postgres => {
            let mut data = String::with_capacity(batch.rows.len() * 64);
            for (i, row) in batch.rows.rows().enumerate() {
                each_ready(plan, row, row_no(i), |j, v| {
                    if j > 0 {
                        data.push('\t');
                    }
                    bulk::copy_value(&mut data, &v);
                    Ok(())
                })?;
                data.push('\n');
            }
            Ok(Encoded::Copy {
                first_row: batch.first_row,
                data,
            })
        }
        Dialect::Mysql => {
            // values bound to a prepared multi-row INSERT: the server parses the statement once
            // per connection, not every value as an SQL literal
            let width = plan.columns.len().max(1);
            let per_stmt = (MYSQL_MAX_BINDS / width).max(1);
            let mut statements = Vec::new();
            let mut args = MySqlArguments::default();
            let (mut in_stmt, mut bytes, mut stmt_first) = (0usize, 0usize, batch.first_row);
            for (i, row) in batch.rows.rows().enumerate() {
                let row_bytes: usize = row
                    .values()
                    .map(|v| v.map_or(0, str::len) + BOUND_VALUE_OVERHEAD)
                    .sum();
                if in_stmt > 0 && (in_stmt == per_stmt || bytes + row_bytes > plan.max_statement) {
                    let full = std::mem::take(&mut args);
                    statements.push((insert_sql(plan, in_stmt), full, stmt_first));
                    (in_stmt, bytes) = (0, 0);
                }
                if in_stmt == 0 {
                    stmt_first = row_no(i);
                }
                each_ready(plan, row, row_no(i), |_, v| {
                    match v {
                        Ready::Null => args.add(None::<&str>),
                        Ready::Text(t) => args.add(t.as_ref()),
                        Ready::Hex(h) => args.add(bulk::hex_decode(&h)),
                    }
                    .map_err(|e| format!("row {}: {e}", row_no(i)))
                })?;
                in_stmt += 1;
                bytes += row_bytes;
            }
            if in_stmt > 0 {
                statements.push((insert_sql(plan, in_stmt), args, stmt_first));
            }
            Ok(Encoded::Inserts(statements))
        }
        Dialect::Sqlite => Ok(Encoded::Bound(batch)),
    }
}

/// `INSERT INTO t (a, b) VALUES (?, ?), …` for `rows` rows.
fn insert_sql(plan: &DbPlan, rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; plan.columns.len()].join(","));
    let mut sql = format!("INSERT INTO {} {} VALUES ", plan.table, plan.names);
    sql.reserve(rows * (tuple.len() + 1));
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&tuple);
    }
    sql
}

/// Writes one encoded batch by the target's bulk path; the rows written.
pub(super) async fn write_encoded(
    conn: &mut Conn,
    plan: &DbPlan,
    encoded: Encoded,
) -> Result<u64, WriteError> {
    match (conn, encoded) {
        (conn @ Conn::Postgres(_), Encoded::Copy { first_row, data }) => {
            let statement = format!("COPY {} {} FROM STDIN", plan.table, plan.names);
            conn.copy_in(&statement, data.as_bytes())
                .await
                .map_err(|e| WriteError::Db { e, first_row })
        }
        (Conn::Mysql(c), Encoded::Inserts(statements)) => {
            let mut written = 0u64;
            for (stmt, args, first_row) in statements {
                written += sqlx::query_with(&stmt, args)
                    .execute(&mut *c)
                    .await
                    .map_err(|e| WriteError::Db { e, first_row })?
                    .rows_affected();
            }
            Ok(written)
        }
        (Conn::Sqlite(c), Encoded::Bound(batch)) => {
            let row_no = |i: usize| batch.first_row + i as u64;
            let per_stmt = (MAX_BINDS / plan.columns.len().max(1)).max(1);
            let mut written = 0u64;
            for first in (0..batch.rows.len()).step_by(per_stmt) {
                let last = (first + per_stmt).min(batch.rows.len());
                let mut ready = Vec::with_capacity(last - first);
                for i in first..last {
                    let mut values = Vec::with_capacity(plan.columns.len());
                    each_ready(plan, batch.rows.row(i), row_no(i), |_, v| {
                        values.push(v);
                        Ok(())
                    })
                    .map_err(WriteError::Value)?;
                    ready.push(values);
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
        _ => Err(WriteError::Value(
            "the batch was encoded for another database than the target's".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_created_column_copies_its_own_dialect_and_maps_the_others() {
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
