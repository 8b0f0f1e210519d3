//! Typed reads and the bulk write of a transfer, on a [`Conn`]: a source's rows as exact text per
//! column (binary columns as hex) packed into a [`RowBlock`], the declared types of a table or a
//! query's result, and `COPY ... FROM STDIN` of a prepared block of rows.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::mysql::{MySqlConnection, MySqlRow};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column, Executor, Row, TypeInfo};

use super::bulk::{float_text, hex_encode, hex_into};
use super::db::{is_missing_table, table_sql, Conn, NamePart};

/// How a source column's values are read: as text, or (binary columns) as hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadAs {
    Text,
    Hex,
}

/// Rows of text values packed into one buffer: a transfer's batch without an allocation per
/// value or per row.
#[derive(Debug, Default)]
pub(crate) struct RowBlock {
    text: String,
    /// Each value's span in `text`; `None` is NULL.
    cells: Vec<Option<(usize, usize)>>,
    /// Where each row's cells end.
    row_ends: Vec<usize>,
}

impl RowBlock {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        RowBlock {
            text: String::with_capacity(rows * 64),
            cells: Vec::with_capacity(rows * 8),
            row_ends: Vec::with_capacity(rows),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.row_ends.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.row_ends.is_empty()
    }

    pub(crate) fn push_null(&mut self) {
        self.cells.push(None);
    }

    pub(crate) fn push_str(&mut self, v: &str) {
        self.push_with(|t| t.push_str(v));
    }

    /// A value written straight into the buffer by `write`.
    pub(crate) fn push_with(&mut self, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        self.cells.push(Some((start, self.text.len())));
    }

    /// Closes the row the values pushed since the last call belong to.
    pub(crate) fn end_row(&mut self) {
        self.row_ends.push(self.cells.len());
    }

    /// Appends one row of owned values.
    pub(crate) fn push_row(&mut self, row: &[Option<String>]) {
        for v in row {
            match v {
                Some(v) => self.push_str(v),
                None => self.push_null(),
            }
        }
        self.end_row();
    }

    pub(crate) fn row(&self, i: usize) -> RowRef<'_> {
        let start = if i == 0 { 0 } else { self.row_ends[i - 1] };
        RowRef {
            text: &self.text,
            cells: &self.cells[start..self.row_ends[i]],
        }
    }

    pub(crate) fn rows(&self) -> impl Iterator<Item = RowRef<'_>> {
        (0..self.len()).map(|i| self.row(i))
    }
}

/// One row of a [`RowBlock`].
#[derive(Clone, Copy)]
pub(crate) struct RowRef<'a> {
    text: &'a str,
    cells: &'a [Option<(usize, usize)>],
}

impl<'a> RowRef<'a> {
    pub(crate) fn values(self) -> impl Iterator<Item = Option<&'a str>> {
        self.cells
            .iter()
            .map(move |c| c.map(|(start, end)| &self.text[start..end]))
    }
}

/// A source row as its driver returns it, until its values are pushed into a [`RowBlock`].
pub(crate) enum SourceRow {
    Mysql(MySqlRow),
    Postgres(PgRow),
    Sqlite(SqliteRow),
}

impl SourceRow {
    pub(crate) fn len(&self) -> usize {
        match self {
            SourceRow::Mysql(r) => r.len(),
            SourceRow::Postgres(r) => r.len(),
            SourceRow::Sqlite(r) => r.len(),
        }
    }

    /// Appends the row's values as exact text (binary columns as hex, floats exact).
    pub(crate) fn push_to(&self, block: &mut RowBlock, read: &[ReadAs]) {
        let hex = |i: usize| read.get(i) == Some(&ReadAs::Hex);
        match self {
            SourceRow::Mysql(row) => {
                for i in 0..row.len() {
                    match row.try_get_unchecked::<Option<&[u8]>, _>(i).ok().flatten() {
                        None => block.push_null(),
                        Some(b) if hex(i) => block.push_with(|t| hex_into(t, b)),
                        Some(b) => block.push_str(&String::from_utf8_lossy(b)),
                    }
                }
            }
            SourceRow::Postgres(row) => {
                for i in 0..row.len() {
                    match row.try_get_unchecked::<Option<&str>, _>(i).ok().flatten() {
                        None => block.push_null(),
                        // bytea's hex output
                        Some(v) if hex(i) => block.push_str(v.strip_prefix("\\x").unwrap_or(v)),
                        Some(v) => block.push_str(v),
                    }
                }
            }
            SourceRow::Sqlite(row) => {
                use sqlx::ValueRef;
                for i in 0..row.len() {
                    let value = row
                        .try_get_raw(i)
                        .ok()
                        .filter(|raw| !raw.is_null())
                        .and_then(|raw| match raw.type_info().name() {
                            "REAL" => row.try_get_unchecked::<f64, _>(i).ok().map(float_text),
                            "BLOB" => row.try_get_unchecked::<Vec<u8>, _>(i).ok().map(|b| {
                                if hex(i) {
                                    hex_encode(&b)
                                } else {
                                    String::from_utf8_lossy(&b).into_owned()
                                }
                            }),
                            _ => row.try_get_unchecked::<Option<String>, _>(i).ok().flatten(),
                        });
                    match value {
                        Some(v) => block.push_str(&v),
                        None => block.push_null(),
                    }
                }
            }
        }
        block.end_row();
    }
}

/// A column's name and its type as declared (`decimal(12,2)`, `timestamp(3) with time zone`).
pub(crate) type Declared = (String, String);

impl Conn {
    /// Streams a query's rows, for [`SourceRow::push_to`] to read as exact text.
    pub(crate) fn typed_rows<'c>(
        &'c mut self,
        sql: &'c str,
    ) -> BoxStream<'c, Result<SourceRow, sqlx::Error>> {
        match self {
            Conn::Mysql(c) => sqlx::raw_sql(sql).fetch(c).map_ok(SourceRow::Mysql).boxed(),
            Conn::Postgres(c) => sqlx::raw_sql(sql)
                .fetch(c)
                .map_ok(SourceRow::Postgres)
                .boxed(),
            Conn::Sqlite(c) => sqlx::raw_sql(sql)
                .fetch(c)
                .map_ok(SourceRow::Sqlite)
                .boxed(),
        }
    }

    /// Session settings that make values read and written the same way on every backend: UTC,
    /// ISO dates, exact floats, hex bytes; a MySQL target also refuses (never truncates) a value
    /// that does not fit.
    pub(crate) fn prepare_transfer(&mut self) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let sql = match self {
                Conn::Mysql(_) => {
                    "SET time_zone = '+00:00', \
                     sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'STRICT_ALL_TABLES')"
                }
                Conn::Postgres(_) => {
                    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
                     SET extra_float_digits = 3; SET bytea_output = 'hex'"
                }
                Conn::Sqlite(_) => return Ok(()),
            };
            self.execute(sql).await.map(|_| ())
        })
    }

    /// The declared types of a table's columns; `None` when the table does not exist.
    pub(crate) fn table_columns<'a>(
        &'a mut self,
        parts: &'a [NamePart],
    ) -> BoxFuture<'a, Result<Option<Vec<Declared>>, sqlx::Error>> {
        Box::pin(async move {
            let t = table_sql(parts);
            match self {
                Conn::Mysql(c) => {
                    let show = format!("SHOW COLUMNS FROM {t}");
                    let rows = match sqlx::query(&show).fetch_all(&mut *c).await {
                        Ok(rows) => rows,
                        Err(e) if is_missing_table(&e) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    let mut cols = Vec::new();
                    for r in rows {
                        let name: String = text_at(&r, 0);
                        let ty: String = text_at(&r, 1);
                        cols.push((name, ty));
                    }
                    mark_mariadb_json(c, &t, &mut cols).await?;
                    Ok(Some(cols))
                }
                Conn::Postgres(c) => {
                    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                        .bind(&t)
                        .fetch_one(&mut *c)
                        .await?;
                    if exists.is_none() {
                        return Ok(None);
                    }
                    let cols: Vec<(String, String)> = sqlx::query_as(
                        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                         WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    )
                    .bind(&t)
                    .fetch_all(&mut *c)
                    .await?;
                    Ok(Some(cols))
                }
                Conn::Sqlite(c) => {
                    let pragma = match parts {
                        [schema, table] => {
                            format!("PRAGMA {}.table_info({})", schema.sql, table.sql)
                        }
                        _ => format!("PRAGMA table_info({t})"),
                    };
                    let cols: Vec<Declared> = sqlx::query(&pragma)
                        .fetch_all(&mut *c)
                        .await?
                        .iter()
                        .map(|r| (r.get::<String, _>(1), r.get::<String, _>(2)))
                        .collect();
                    Ok((!cols.is_empty()).then_some(cols))
                }
            }
        })
    }

    /// The declared types of a query's columns, without running it: MySQL through an empty
    /// temporary table made from it, PostgreSQL from the catalog for columns that come from a table,
    /// SQLite through a temporary view. A column without a declared type (an expression) gets the
    /// driver's type name.
    pub(crate) fn query_columns<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Declared>, sqlx::Error>> {
        Box::pin(async move {
            let plain = self.columns(sql).await?;
            let declared: Option<Vec<Declared>> = match self {
                Conn::Mysql(c) => {
                    let probe = "`akkaflow_transfer_probe`";
                    let create = format!(
                        "CREATE TEMPORARY TABLE {probe} AS SELECT * FROM ({sql}) AS q LIMIT 0"
                    );
                    match sqlx::query(&create).execute(&mut *c).await {
                        Ok(_) => {
                            let rows = sqlx::query(&format!("SHOW COLUMNS FROM {probe}"))
                                .fetch_all(&mut *c)
                                .await;
                            let mut cols: Vec<Declared> = match rows {
                                Ok(rows) => rows
                                    .iter()
                                    .map(|r| (text_at(r, 0), text_at(r, 1)))
                                    .collect(),
                                Err(_) => Vec::new(),
                            };
                            let json = mark_mariadb_json(c, probe, &mut cols).await;
                            sqlx::query(&format!("DROP TEMPORARY TABLE {probe}"))
                                .execute(&mut *c)
                                .await?;
                            json?;
                            Some(cols)
                        }
                        Err(_) => None,
                    }
                }
                Conn::Postgres(c) => {
                    let stmt = c.prepare(sql).await?;
                    let mut cols = Vec::new();
                    for col in sqlx::Statement::columns(&stmt) {
                        let ty = match (col.relation_id(), col.relation_attribute_no()) {
                            (Some(rel), Some(attno)) => {
                                sqlx::query_scalar::<_, String>(
                                    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1 AND attnum = $2",
                                )
                                .bind(rel)
                                .bind(attno)
                                .fetch_optional(&mut *c)
                                .await?
                            }
                            _ => None,
                        };
                        cols.push((col.name().to_string(), ty.unwrap_or_default()));
                    }
                    Some(cols)
                }
                Conn::Sqlite(c) => {
                    let view = "\"akkaflow_transfer_probe\"";
                    let create = format!("CREATE TEMP VIEW {view} AS {sql}");
                    match sqlx::query(&create).execute(&mut *c).await {
                        Ok(_) => {
                            let cols = sqlx::query(&format!("PRAGMA temp.table_info({view})"))
                                .fetch_all(&mut *c)
                                .await
                                .map(|rows| {
                                    rows.iter()
                                        .map(|r| (r.get::<String, _>(1), r.get::<String, _>(2)))
                                        .collect()
                                });
                            sqlx::query(&format!("DROP VIEW temp.{view}"))
                                .execute(&mut *c)
                                .await?;
                            cols.ok()
                        }
                        Err(_) => None,
                    }
                }
            };
            let declared = declared.filter(|d| d.len() == plain.len());
            Ok(plain
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let ty = declared
                        .as_ref()
                        .map(|d| d[i].1.clone())
                        .filter(|t| !t.trim().is_empty())
                        .unwrap_or(p.type_name);
                    (p.name, ty)
                })
                .collect())
        })
    }

    /// One `COPY … FROM STDIN` (PostgreSQL) with `data` in its text format; the rows it loaded.
    pub(crate) fn copy_in<'a>(
        &'a mut self,
        statement: &'a str,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
        Box::pin(async move {
            let Conn::Postgres(c) = self else {
                return Err(sqlx::Error::Protocol("COPY is PostgreSQL's".into()));
            };
            let mut copy = c.copy_in_raw(statement).await?;
            for chunk in data.chunks(1 << 20) {
                if let Err(e) = copy.send(chunk).await {
                    let _ = copy.abort("akkaflow: the copy failed").await;
                    return Err(e);
                }
            }
            copy.finish().await
        })
    }
}

/// Column `i` of a catalog row as text (MySQL returns some as bytes).
fn text_at(r: &MySqlRow, i: usize) -> String {
    r.try_get_unchecked::<Option<Vec<u8>>, _>(i)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// MariaDB's JSON is LONGTEXT with a `json_valid` check: name such columns `json`.
fn mark_mariadb_json<'a>(
    c: &'a mut MySqlConnection,
    table: &'a str,
    cols: &'a mut [Declared],
) -> BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move {
        if !cols.iter().any(|(_, t)| t.eq_ignore_ascii_case("longtext")) {
            return Ok(());
        }
        let show = format!("SHOW CREATE TABLE {table}");
        let row = sqlx::query(&show).fetch_one(&mut *c).await?;
        let create = text_at(&row, 1);
        for (name, ty) in cols.iter_mut() {
            let check = format!("json_valid(`{}`)", name.replace('`', "``"));
            if ty.eq_ignore_ascii_case("longtext") && create.contains(&check) {
                *ty = "json".into();
            }
        }
        Ok(())
    })
}
