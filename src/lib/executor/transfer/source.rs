//! The source of a transfer: a DB query or table, described with its declared column types, or a
//! delimited file (with its header's names); read row by row.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::BufReader;

use crate::definition::TransferSource;
use crate::executor::db::{self, Session, TextRow};
use crate::executor::db_typed::ReadAs;
use crate::executor::delimited::RecordReader;
use crate::executor::links::{self, Dialect};
use crate::executor::sql::{self};
use crate::executor::typemap::{self, ColType};
use crate::executor::{AttemptContext, Stopper};
use crate::state::AttemptEnd;

use super::file_path;

/// A DB source table name becomes `SELECT *`; anything else is taken as the query.
pub(super) fn source_query(dialect: Dialect, text: &str) -> String {
    let text = text.trim().trim_end_matches(';').trim();
    match db::table_name(dialect, text) {
        Ok(parts) => format!("SELECT * FROM {}", db::table_sql(&parts)),
        Err(_) => text.to_string(),
    }
}

/// MySQL sends a FLOAT as text with 6 digits, which does not read back as the same number: such
/// columns are read through a DOUBLE, which holds every FLOAT exactly.
pub(super) fn exact_floats(dialect: Dialect, query: String, columns: &[SourceColumn]) -> String {
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
pub(super) struct SourceColumn {
    pub(super) name: String,
    pub(super) declared: String,
    pub(super) ty: ColType,
}

/// The source's columns, and where their types come from.
pub(super) struct SourceShape {
    /// `None`: a file without header that is empty (nothing to create a table from).
    pub(super) columns: Option<Vec<SourceColumn>>,
    /// The dialect of a DB source (`None`: a file, whose values are untyped text).
    pub(super) dialect: Option<Dialect>,
    /// A file's header named the columns: an existing table takes them by name.
    pub(super) by_name: bool,
}

/// A file source: records, with the first one peeked for the column count.
pub(super) struct FileSource {
    pub(super) path: PathBuf,
    pub(super) reader: RecordReader<BufReader<tokio::fs::File>>,
    pub(super) peeked: Option<TextRow>,
}

impl FileSource {
    pub(super) async fn next(&mut self) -> Result<Option<TextRow>, String> {
        match self.peeked.take() {
            Some(row) => Ok(Some(row)),
            None => self.reader.next().await,
        }
    }
}

pub(super) enum Src {
    Db {
        session: Session,
        query: String,
        read: Arc<[ReadAs]>,
    },
    File(FileSource),
}

pub(super) async fn open_source(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_table_name_becomes_select_star_and_a_query_stays() {
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
