//! `metadata` actions: table and column comments, filled in from a lineage table (`from`) for what
//! the action does not give.
//!
//! MySQL/MariaDB: one `ALTER TABLE t MODIFY COLUMN c <definition> COMMENT '…', …, COMMENT = '…'`.
//! MODIFY COLUMN restates the whole column, so its definition is rebuilt from
//! `information_schema.COLUMNS` (type, character set, nullability, default, generated expression,
//! auto-increment, on-update); MariaDB reports defaults as SQL expressions and MySQL as raw values,
//! and both are handled. PostgreSQL: `COMMENT ON TABLE`/`COMMENT ON COLUMN` in one transaction.
//! SQLite has no comments: a clear error.
//!
//! DDL takes no bound parameters, so comment texts become literals through the server's own quoting
//! function (`QUOTE(?)`, `quote_literal($1)`) with the text bound; identifiers read from the catalog
//! are quoted, and the table name is checked before it is spliced.

use std::collections::BTreeMap;

use super::db::{self, Session};
use super::links::Dialect;
use super::sql::{self, Statement, TxEnd};
use super::{AttemptContext, Outcome, Stopper};
use crate::definition::Metadata;
use crate::state::AttemptEnd;

/// A MySQL column as `information_schema.COLUMNS` describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MysqlColumn {
    pub name: String,
    pub column_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub extra: String,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub generation: Option<String>,
    pub comment: String,
}

/// The column's definition for `MODIFY COLUMN`, without its comment. `quoted_default` is the
/// default as a literal (only used for MySQL's raw default values).
pub(crate) fn mysql_definition(
    c: &MysqlColumn,
    mariadb: bool,
    quoted_default: Option<&str>,
) -> String {
    let mut d = c.column_type.clone();
    if let Some(cs) = &c.charset {
        d.push_str(&format!(" CHARACTER SET {cs}"));
        if let Some(co) = &c.collation {
            d.push_str(&format!(" COLLATE {co}"));
        }
    }
    let extra = c.extra.to_ascii_lowercase();
    if let Some(expr) = c.generation.as_deref().filter(|g| !g.is_empty()) {
        let kind = if extra.contains("stored") || extra.contains("persistent") {
            "STORED"
        } else {
            "VIRTUAL"
        };
        d.push_str(&format!(" GENERATED ALWAYS AS ({expr}) {kind}"));
        if !c.nullable {
            d.push_str(" NOT NULL");
        }
        return d;
    }
    d.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
    match &c.default {
        // MariaDB: already an expression, `NULL` for no default value
        Some(v) if mariadb && (v != "NULL" || c.nullable) => {
            d.push_str(&format!(" DEFAULT {v}"));
        }
        Some(_) if mariadb => {}
        Some(v) if extra.contains("default_generated") => {
            let up = v.to_ascii_uppercase();
            if up.starts_with("CURRENT_TIMESTAMP") || up.starts_with("NOW(") {
                d.push_str(&format!(" DEFAULT {v}"));
            } else {
                d.push_str(&format!(" DEFAULT ({v})"));
            }
        }
        Some(_) => {
            if let Some(q) = quoted_default {
                d.push_str(&format!(" DEFAULT {q}"));
            }
        }
        None => {}
    }
    if let Some(at) = extra.find("on update ") {
        d.push_str(&format!(
            " ON UPDATE {}",
            c.extra[at + "on update ".len()..].trim()
        ));
    }
    if extra.contains("auto_increment") {
        d.push_str(" AUTO_INCREMENT");
    }
    if extra.split_whitespace().any(|w| w == "invisible") {
        d.push_str(" INVISIBLE");
    }
    d
}

/// What to set: the table comment and column comments (by the table's own column names).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub table: Option<String>,
    pub columns: Vec<(String, String)>,
}

/// Matches the given comments to the table's columns (exactly, else ignoring case) and fills the
/// rest from the lineage table's comments.
pub(crate) fn plan(
    columns: &[String],
    given_table: Option<String>,
    given: &BTreeMap<String, String>,
    from_table: Option<String>,
    from: &BTreeMap<String, String>,
) -> Result<Plan, String> {
    let find = |name: &str| {
        columns
            .iter()
            .find(|c| *c == name)
            .or_else(|| columns.iter().find(|c| c.eq_ignore_ascii_case(name)))
            .cloned()
    };
    let mut out = Plan {
        table: given_table.or(from_table.filter(|c| !c.is_empty())),
        columns: Vec::new(),
    };
    let mut set = BTreeMap::new();
    for (name, comment) in given {
        let col = find(name).ok_or_else(|| format!("the table has no column `{name}`"))?;
        set.insert(col, comment.clone());
    }
    for col in columns {
        if set.contains_key(col) {
            continue;
        }
        let lineage = from
            .get(col)
            .or_else(|| {
                from.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(col))
                    .map(|(_, v)| v)
            })
            .filter(|c| !c.is_empty());
        if let Some(c) = lineage {
            set.insert(col.clone(), c.clone());
        }
    }
    // in table order, so the statement reads like the table
    out.columns = columns
        .iter()
        .filter_map(|c| set.remove(c).map(|v| (c.clone(), v)))
        .collect();
    Ok(out)
}

pub(super) async fn run(ctx: &AttemptContext, stop: &Stopper, m: &Metadata) -> Outcome {
    let table = ctx.render(&m.table)?;
    let from = m.from.as_ref().map(|f| ctx.render(f)).transpose()?;
    let table_comment = m
        .table_comment
        .as_ref()
        .map(|c| ctx.render(c))
        .transpose()?;
    let mut given = BTreeMap::new();
    for (name, c) in &m.column_comments {
        given.insert(name.clone(), ctx.render(c)?);
    }
    let mut s = match sql::open(ctx, stop, &m.db_link).await? {
        Ok(s) => s,
        Err(end) => return Ok(end),
    };
    let result = match s.dialect() {
        Dialect::Sqlite => Err(format!(
            "metadata is not supported on SQLite: it has no table or column comments (db link `{}`)",
            m.db_link
        )),
        Dialect::Mysql => {
            mysql(ctx, stop, &mut s, &table, from.as_deref(), table_comment, &given).await
        }
        Dialect::Postgres => {
            postgres(ctx, stop, &mut s, &table, from.as_deref(), table_comment, &given).await
        }
    };
    s.close().await;
    result
}

fn table_parts(dialect: Dialect, name: &str) -> Result<(Option<String>, String, String), String> {
    let parts = db::table_name(dialect, name)?;
    let sql = db::table_sql(&parts);
    let table = parts.last().expect("at least one part").ident.clone();
    let schema = (parts.len() > 1).then(|| parts[parts.len() - 2].ident.clone());
    Ok((schema, table, sql))
}

async fn apply(
    ctx: &AttemptContext,
    stop: &Stopper,
    s: &mut Session,
    stmts: Vec<String>,
) -> Outcome {
    if stmts.is_empty() {
        ctx.log
            .out("nothing to set: no comment given and none in the lineage table")
            .await;
        return Ok(AttemptEnd::Succeeded);
    }
    let stmts: Vec<Statement> = stmts
        .into_iter()
        .map(|text| Statement { text, line: 1 })
        .collect();
    match sql::run_in_transaction(ctx, stop, s, &stmts, "comment statement").await? {
        TxEnd::Committed => Ok(AttemptEnd::Succeeded),
        TxEnd::Stopped(end) => Ok(end),
    }
}

async fn literal(s: &mut Session, sql: &str, text: &str) -> Result<String, String> {
    let got = s
        .conn
        .query_texts(sql, &[text])
        .await
        .map_err(|e| s.error(&e))?;
    got.into_iter()
        .next()
        .flatten()
        .ok_or_else(|| "the server could not quote a comment".to_string())
}

const MYSQL_COLUMNS: &str = "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, \
     CHARACTER_SET_NAME, COLLATION_NAME, GENERATION_EXPRESSION, COLUMN_COMMENT \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

async fn mysql_columns(
    s: &mut Session,
    schema: &str,
    table: &str,
) -> Result<Vec<MysqlColumn>, String> {
    let rows = s
        .conn
        .query_rows(MYSQL_COLUMNS, &[schema, table])
        .await
        .map_err(|e| s.error(&e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let get = |i: usize| r.get(i).cloned().flatten();
            MysqlColumn {
                name: get(0).unwrap_or_default(),
                column_type: get(1).unwrap_or_default(),
                nullable: get(2).as_deref() == Some("YES"),
                default: get(3),
                extra: get(4).unwrap_or_default(),
                charset: get(5),
                collation: get(6),
                generation: get(7),
                comment: get(8).unwrap_or_default(),
            }
        })
        .collect())
}

async fn mysql(
    ctx: &AttemptContext,
    stop: &Stopper,
    s: &mut Session,
    table: &str,
    from: Option<&str>,
    table_comment: Option<String>,
    given: &BTreeMap<String, String>,
) -> Outcome {
    let (schema, name, t) = table_parts(Dialect::Mysql, table)?;
    let info = s
        .conn
        .query_rows("SELECT DATABASE(), VERSION()", &[])
        .await
        .map_err(|e| s.error(&e))?;
    let info = info.into_iter().next().unwrap_or_default();
    let current = info.first().cloned().flatten().unwrap_or_default();
    let mariadb = info
        .get(1)
        .cloned()
        .flatten()
        .is_some_and(|v| v.contains("MariaDB"));
    let schema = schema.unwrap_or_else(|| current.clone());
    let cols = mysql_columns(s, &schema, &name).await?;
    if cols.is_empty() {
        return Err(format!("table {t} does not exist (schema `{schema}`)"));
    }
    let (from_table, from_cols) = match from {
        None => (None, BTreeMap::new()),
        Some(f) => {
            let (fs, fname, ft) = table_parts(Dialect::Mysql, f)?;
            let fs = fs.unwrap_or_else(|| current.clone());
            let fc = mysql_columns(s, &fs, &fname).await?;
            if fc.is_empty() {
                return Err(format!("lineage table {ft} does not exist (schema `{fs}`)"));
            }
            let tc = s
                .conn
                .query_texts(
                    "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    &[&fs, &fname],
                )
                .await
                .map_err(|e| s.error(&e))?;
            ctx.log
                .out(format!("lineage table {ft}: filling in comments not given"))
                .await;
            (
                tc.into_iter().next().flatten(),
                fc.into_iter().map(|c| (c.name, c.comment)).collect(),
            )
        }
    };
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    let p = plan(&names, table_comment, given, from_table, &from_cols)
        .map_err(|e| format!("{t}: {e}"))?;
    let mut clauses = Vec::new();
    for (col, comment) in &p.columns {
        let c = cols
            .iter()
            .find(|c| &c.name == col)
            .expect("planned from these");
        let quoted_default = match (&c.default, mariadb) {
            (Some(v), false) => Some(literal(s, "SELECT QUOTE(?)", v).await?),
            _ => None,
        };
        let def = mysql_definition(c, mariadb, quoted_default.as_deref());
        let lit = literal(s, "SELECT QUOTE(?)", comment).await?;
        clauses.push(format!(
            "MODIFY COLUMN {} {def} COMMENT {lit}",
            db::quote_ident(Dialect::Mysql, col)
        ));
    }
    if let Some(tc) = &p.table {
        clauses.push(format!(
            "COMMENT = {}",
            literal(s, "SELECT QUOTE(?)", tc).await?
        ));
    }
    let stmts = if clauses.is_empty() {
        vec![]
    } else {
        vec![format!("ALTER TABLE {t} {}", clauses.join(", "))]
    };
    apply(ctx, stop, s, stmts).await
}

const PG_COLUMNS: &str =
    "SELECT a.attname::text, col_description(a.attrelid, a.attnum) FROM pg_attribute a \
     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

async fn pg_columns(s: &mut Session, t: &str) -> Result<Vec<(String, String)>, String> {
    let rows = s
        .conn
        .query_rows(PG_COLUMNS, &[t])
        .await
        .map_err(|e| format!("{t}: {}", s.error(&e)))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.first().cloned().flatten().unwrap_or_default(),
                r.get(1).cloned().flatten().unwrap_or_default(),
            )
        })
        .collect())
}

async fn postgres(
    ctx: &AttemptContext,
    stop: &Stopper,
    s: &mut Session,
    table: &str,
    from: Option<&str>,
    table_comment: Option<String>,
    given: &BTreeMap<String, String>,
) -> Outcome {
    let (_, _, t) = table_parts(Dialect::Postgres, table)?;
    let cols = pg_columns(s, &t).await?;
    let (from_table, from_cols) = match from {
        None => (None, BTreeMap::new()),
        Some(f) => {
            let (_, _, ft) = table_parts(Dialect::Postgres, f)?;
            let fc = pg_columns(s, &ft).await?;
            let tc = s
                .conn
                .query_texts("SELECT obj_description($1::regclass, 'pg_class')", &[&ft])
                .await
                .map_err(|e| s.error(&e))?;
            ctx.log
                .out(format!("lineage table {ft}: filling in comments not given"))
                .await;
            (tc.into_iter().next().flatten(), fc.into_iter().collect())
        }
    };
    let names: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
    let p = plan(&names, table_comment, given, from_table, &from_cols)
        .map_err(|e| format!("{t}: {e}"))?;
    let mut stmts = Vec::new();
    if let Some(tc) = &p.table {
        let lit = literal(s, "SELECT quote_literal($1)", tc).await?;
        stmts.push(format!("COMMENT ON TABLE {t} IS {lit}"));
    }
    for (col, comment) in &p.columns {
        let lit = literal(s, "SELECT quote_literal($1)", comment).await?;
        stmts.push(format!(
            "COMMENT ON COLUMN {t}.{} IS {lit}",
            db::quote_ident(Dialect::Postgres, col)
        ));
    }
    apply(ctx, stop, s, stmts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str) -> MysqlColumn {
        MysqlColumn {
            name: name.into(),
            column_type: ty.into(),
            nullable: true,
            ..Default::default()
        }
    }

    #[test]
    fn mysql_definitions_restate_the_column() {
        let id = MysqlColumn {
            nullable: false,
            extra: "auto_increment".into(),
            ..col("id", "bigint(20)")
        };
        assert_eq!(
            mysql_definition(&id, true, None),
            "bigint(20) NOT NULL AUTO_INCREMENT"
        );
        let name = MysqlColumn {
            charset: Some("utf8mb4".into()),
            collation: Some("utf8mb4_bin".into()),
            default: Some("'n/a'".into()),
            ..col("name", "varchar(64)")
        };
        assert_eq!(
            mysql_definition(&name, true, None),
            "varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL DEFAULT 'n/a'"
        );
        let raw = MysqlColumn {
            default: Some("n/a".into()),
            ..col("name", "varchar(64)")
        };
        assert_eq!(
            mysql_definition(&raw, false, Some("'n/a'")),
            "varchar(64) NULL DEFAULT 'n/a'"
        );
        let maria_null = MysqlColumn {
            default: Some("NULL".into()),
            ..col("x", "int(11)")
        };
        assert_eq!(
            mysql_definition(&maria_null, true, None),
            "int(11) NULL DEFAULT NULL"
        );
        let ts = MysqlColumn {
            nullable: false,
            default: Some("current_timestamp()".into()),
            extra: "on update current_timestamp()".into(),
            ..col("updated", "timestamp")
        };
        assert_eq!(
            mysql_definition(&ts, true, None),
            "timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp()"
        );
        let ts8 = MysqlColumn {
            nullable: false,
            default: Some("CURRENT_TIMESTAMP".into()),
            extra: "DEFAULT_GENERATED on update CURRENT_TIMESTAMP".into(),
            ..col("updated", "timestamp")
        };
        assert_eq!(
            mysql_definition(&ts8, false, Some("'CURRENT_TIMESTAMP'")),
            "timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
        );
        let expr8 = MysqlColumn {
            default: Some("(rand() * 10)".into()),
            extra: "DEFAULT_GENERATED".into(),
            ..col("r", "double")
        };
        assert_eq!(
            mysql_definition(&expr8, false, None),
            "double NULL DEFAULT ((rand() * 10))"
        );
        let generated = MysqlColumn {
            generation: Some("`a` + 1".into()),
            extra: "STORED GENERATED".into(),
            ..col("b", "int(11)")
        };
        assert_eq!(
            mysql_definition(&generated, false, None),
            "int(11) GENERATED ALWAYS AS (`a` + 1) STORED"
        );
        let empty_generation = MysqlColumn {
            generation: Some(String::new()),
            ..col("c", "int")
        };
        assert_eq!(mysql_definition(&empty_generation, false, None), "int NULL");
    }

    #[test]
    fn plans_fill_in_from_the_lineage_table() {
        let cols: Vec<String> = ["id", "name", "ds"].iter().map(|s| s.to_string()).collect();
        let given: BTreeMap<String, String> = [("ID".to_string(), "identifier".to_string())].into();
        let from: BTreeMap<String, String> = [
            ("id".to_string(), "old id".to_string()),
            ("name".to_string(), "log name".to_string()),
            ("ds".to_string(), String::new()),
            ("gone".to_string(), "x".to_string()),
        ]
        .into();
        let p = plan(&cols, None, &given, Some("lineage".into()), &from).unwrap();
        assert_eq!(
            p,
            Plan {
                table: Some("lineage".into()),
                columns: vec![
                    ("id".into(), "identifier".into()),
                    ("name".into(), "log name".into())
                ],
            }
        );
        let p = plan(
            &cols,
            Some("mine".into()),
            &BTreeMap::new(),
            Some("lineage".into()),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(p.table.as_deref(), Some("mine"));
        let p = plan(
            &cols,
            None,
            &BTreeMap::new(),
            Some(String::new()),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(p, Plan::default());
        let missing: BTreeMap<String, String> = [("nope".to_string(), "x".to_string())].into();
        let e = plan(&cols, None, &missing, None, &BTreeMap::new()).unwrap_err();
        assert!(e.contains("no column `nope`"), "{e}");
    }
}
