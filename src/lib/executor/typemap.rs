//! The type map of transfers: a column's type as a database declares it, parsed into one
//! dialect-free [`ColType`], and the type a created target column gets in each dialect. Pure (no
//! I/O), so the whole table is unit-tested (`typemap/tests.rs`).
//!
//! The rule: the nearest target type that holds every value of the source type exactly. Where no
//! such type exists the mapping carries a `loss`, and a transfer refuses to create the table (the
//! node fails naming each such column) rather than narrow it silently; where the target holds the
//! values exactly but spells them differently (a zoned timestamp kept in UTC) it carries a `note`,
//! which the transfer logs. Within one dialect the declared type is copied as it is.
//!
//! SQLite enforces no types, so its declared names are chosen for what they mean on the way back
//! and for their affinity: `DECIMAL(p,s)` up to 15 digits (a REAL holds those exactly), and
//! `DECIMAL TEXT(p,s)` beyond (TEXT affinity: SQLite would round a longer number to a REAL), the
//! same for `JSON TEXT`; `INT` is 4 bytes and `INTEGER` 8, as SQLite's own rowid type.

use super::links::Dialect;

/// A column type, whatever the dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ColType {
    Bool,
    /// `bytes`: 1, 2, 3, 4 or 8.
    Int {
        bytes: u8,
        unsigned: bool,
    },
    /// `precision: None` is PostgreSQL's unbounded NUMERIC.
    Decimal {
        precision: Option<u32>,
        scale: u32,
    },
    Float {
        double: bool,
    },
    Date,
    Time {
        frac: u8,
        tz: bool,
    },
    Timestamp {
        frac: u8,
        tz: bool,
    },
    /// `len: None` is unbounded text.
    Text {
        len: Option<u32>,
        fixed: bool,
    },
    Binary {
        len: Option<u32>,
        fixed: bool,
    },
    Json {
        binary: bool,
    },
    Uuid,
    /// Anything else, as the database spells it.
    Other(String),
}

/// A created column's type in the target dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mapped {
    pub sql: String,
    /// Why some values of the source type would not survive (the table is then not created).
    pub loss: Option<String>,
    /// How the values are kept when the target spells them differently (logged).
    pub note: Option<String>,
}

impl Mapped {
    fn exact(sql: impl Into<String>) -> Self {
        Mapped {
            sql: sql.into(),
            loss: None,
            note: None,
        }
    }

    fn lossy(sql: impl Into<String>, why: impl Into<String>) -> Self {
        Mapped {
            sql: sql.into(),
            loss: Some(why.into()),
            note: None,
        }
    }

    fn noted(sql: impl Into<String>, note: impl Into<String>) -> Self {
        Mapped {
            sql: sql.into(),
            loss: None,
            note: Some(note.into()),
        }
    }
}

/// The numbers in a type's parentheses, and its words without them, lower case:
/// `timestamp(3) with time zone` → (`timestamp with time zone`, [3]).
fn split_declared(declared: &str) -> (String, Vec<u32>, bool) {
    let lower = declared.trim().to_ascii_lowercase();
    let (mut words, args) = match (lower.find('('), lower.find(')')) {
        (Some(open), Some(close)) if close > open => {
            let args = lower[open + 1..close]
                .split(',')
                .filter_map(|a| a.trim().parse::<u32>().ok())
                .collect();
            (format!("{} {}", &lower[..open], &lower[close + 1..]), args)
        }
        _ => (lower, Vec::new()),
    };
    let unsigned = words.split_whitespace().any(|w| w == "unsigned");
    words = words
        .split_whitespace()
        .filter(|w| !matches!(*w, "unsigned" | "signed" | "zerofill"))
        .collect::<Vec<_>>()
        .join(" ");
    (words, args, unsigned)
}

/// Parses a declared type: MySQL's `SHOW COLUMNS` (`decimal(12,2)`, `bigint(20) unsigned`),
/// PostgreSQL's `format_type` (`timestamp(3) with time zone`), SQLite's declared text, or a driver's
/// bare type name (`INT8`, `TIMESTAMPTZ`).
pub(crate) fn parse(dialect: Dialect, declared: &str) -> ColType {
    let (words, args, unsigned) = split_declared(declared);
    let (words, tz) = match words.strip_suffix(" with time zone") {
        Some(w) => (w.to_string(), true),
        None => (
            words
                .strip_suffix(" without time zone")
                .unwrap_or(&words)
                .to_string(),
            false,
        ),
    };
    let arg = |i: usize| args.get(i).copied();
    // PostgreSQL and SQLite (for which we write them) default to microseconds, MySQL to seconds
    let frac = |default: u8| arg(0).map(|f| f.min(9) as u8).unwrap_or(default);
    let time_default = if dialect == Dialect::Mysql { 0 } else { 6 };
    let int = |bytes: u8| ColType::Int { bytes, unsigned };
    match words.as_str() {
        "bool" | "boolean" => ColType::Bool,
        "tinyint" if dialect == Dialect::Mysql && args == [1] => ColType::Bool,
        "tinyint" | "int1" => int(1),
        "smallint" | "int2" | "smallserial" | "serial2" | "year" => int(2),
        "mediumint" | "int3" | "middleint" => int(3),
        "integer" if dialect == Dialect::Sqlite => int(8),
        "int" | "integer" | "int4" | "serial" | "serial4" => int(4),
        "bigint" | "int8" | "bigserial" | "serial8" => int(8),
        "decimal" | "numeric" | "dec" | "fixed" | "decimal text" | "numeric text" => {
            match (arg(0), arg(1)) {
                (Some(p), s) => ColType::Decimal {
                    precision: Some(p),
                    scale: s.unwrap_or(0),
                },
                (None, _) if dialect == Dialect::Mysql => ColType::Decimal {
                    precision: Some(10),
                    scale: 0,
                },
                (None, _) => ColType::Decimal {
                    precision: None,
                    scale: 0,
                },
            }
        }
        "float" if dialect == Dialect::Sqlite => ColType::Float { double: true },
        // MySQL's FLOAT without a size, or FLOAT(p) up to 24 bits, is 4 bytes; PostgreSQL's
        // FLOAT without one is 8
        "float" => ColType::Float {
            double: match arg(0) {
                Some(p) => p > 24,
                None => dialect == Dialect::Postgres,
            },
        },
        "real" | "float4" => ColType::Float {
            double: dialect != Dialect::Postgres,
        },
        "double" | "double precision" | "float8" => ColType::Float { double: true },
        "date" => ColType::Date,
        "time" => ColType::Time {
            frac: frac(time_default),
            tz,
        },
        "timetz" => ColType::Time {
            frac: frac(6),
            tz: true,
        },
        "datetime" => ColType::Timestamp {
            frac: frac(time_default),
            tz,
        },
        // MySQL's TIMESTAMP is an instant (kept in UTC, shown in the session's zone)
        "timestamp" => ColType::Timestamp {
            frac: frac(time_default),
            tz: tz || dialect == Dialect::Mysql,
        },
        "timestamptz" => ColType::Timestamp {
            frac: frac(6),
            tz: true,
        },
        "char" | "character" | "nchar" | "bpchar" => ColType::Text {
            len: Some(arg(0).unwrap_or(1)),
            fixed: true,
        },
        "varchar" | "character varying" | "nvarchar" | "varchar2" | "nvarchar2" => ColType::Text {
            len: arg(0),
            fixed: false,
        },
        "tinytext" => ColType::Text {
            len: Some(255),
            fixed: false,
        },
        "text" | "mediumtext" | "longtext" | "clob" | "string" | "enum" | "set" | "name"
        | "citext" => ColType::Text {
            len: None,
            fixed: false,
        },
        "binary" => ColType::Binary {
            len: Some(arg(0).unwrap_or(1)),
            fixed: true,
        },
        "varbinary" => ColType::Binary {
            len: arg(0),
            fixed: false,
        },
        "bytea" | "blob" | "tinyblob" | "mediumblob" | "longblob" => ColType::Binary {
            len: None,
            fixed: false,
        },
        "json" | "json text" => ColType::Json { binary: false },
        "jsonb" => ColType::Json { binary: true },
        "uuid" => ColType::Uuid,
        // no declared type (a SQLite expression, MySQL's `SELECT NULL`): text holds any value
        "" | "null" => ColType::Text {
            len: None,
            fixed: false,
        },
        _ => ColType::Other(declared.trim().to_string()),
    }
}

/// The type a created column gets in `target` for a source column of type `ty`.
pub(crate) fn map(target: Dialect, ty: &ColType) -> Mapped {
    match target {
        Dialect::Mysql => to_mysql(ty),
        Dialect::Postgres => to_postgres(ty),
        Dialect::Sqlite => to_sqlite(ty),
    }
}

/// MySQL keeps at most 6 fractional digits, as PostgreSQL does.
fn frac6(frac: u8) -> (u8, Option<String>) {
    if frac > 6 {
        (
            6,
            Some(format!(
                "{frac} fractional digits of a second do not fit (at most 6)"
            )),
        )
    } else {
        (frac, None)
    }
}

fn with_loss(mut m: Mapped, loss: Option<String>) -> Mapped {
    if loss.is_some() {
        m.loss = loss;
    }
    m
}

fn to_mysql(ty: &ColType) -> Mapped {
    let unsigned = |u: bool| if u { " UNSIGNED" } else { "" };
    match ty {
        ColType::Bool => Mapped::exact("BOOLEAN"),
        ColType::Int { bytes, unsigned: u } => {
            let name = match bytes {
                1 => "TINYINT",
                2 => "SMALLINT",
                3 => "MEDIUMINT",
                4 => "INT",
                _ => "BIGINT",
            };
            Mapped::exact(format!("{name}{}", unsigned(*u)))
        }
        ColType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= 65 && *scale <= 30 => Mapped::exact(format!("DECIMAL({p},{scale})")),
        ColType::Decimal { precision, scale } => Mapped::lossy(
            format!("DECIMAL(65,{})", (*scale).min(30)),
            match precision {
                Some(p) => format!(
                    "NUMERIC({p},{scale}) is wider than MySQL's widest DECIMAL(65,30)"
                ),
                None => "an unbounded NUMERIC is wider than MySQL's widest DECIMAL(65,30): give it a precision (e.g. cast to NUMERIC(p,s) in the SELECT)".into(),
            },
        ),
        ColType::Float { double } => Mapped::exact(if *double { "DOUBLE" } else { "FLOAT" }),
        ColType::Date => Mapped::exact("DATE"),
        ColType::Time { frac, tz } => {
            let (f, loss) = frac6(*frac);
            let m = if *tz {
                Mapped::lossy(
                    format!("TIME({f})"),
                    "MySQL has no time of day with a zone: the offset would be dropped",
                )
            } else {
                Mapped::exact(format!("TIME({f})"))
            };
            with_loss(m, loss)
        }
        ColType::Timestamp { frac, tz } => {
            let (f, loss) = frac6(*frac);
            let m = if *tz {
                // TIMESTAMP would hold the zone but ends in 2038
                Mapped::noted(
                    format!("DATETIME({f})"),
                    "kept as DATETIME in UTC: MySQL has no zoned type without TIMESTAMP's 1970-2038 range",
                )
            } else {
                Mapped::exact(format!("DATETIME({f})"))
            };
            with_loss(m, loss)
        }
        ColType::Text {
            len: Some(n),
            fixed: true,
        } if *n <= 255 => Mapped::exact(format!("CHAR({n})")),
        // longer VARCHARs count against MySQL's 65,535-byte row limit: TEXT types do not
        ColType::Text { len: Some(n), .. } if *n <= 1024 => {
            Mapped::exact(format!("VARCHAR({n})"))
        }
        ColType::Text { len: Some(n), .. } if *n <= 16_383 => Mapped::exact("TEXT"),
        ColType::Text { len: Some(n), .. } if *n <= 4_194_303 => Mapped::exact("MEDIUMTEXT"),
        ColType::Text { .. } => Mapped::exact("LONGTEXT"),
        ColType::Binary {
            len: Some(n),
            fixed: true,
        } if *n <= 255 => Mapped::exact(format!("BINARY({n})")),
        ColType::Binary { len: Some(n), .. } if *n <= 4096 => {
            Mapped::exact(format!("VARBINARY({n})"))
        }
        ColType::Binary { len: Some(n), .. } if *n <= 65_535 => Mapped::exact("BLOB"),
        ColType::Binary { len: Some(n), .. } if *n <= 16_777_215 => Mapped::exact("MEDIUMBLOB"),
        ColType::Binary { .. } => Mapped::exact("LONGBLOB"),
        ColType::Json { .. } => Mapped::exact("JSON"),
        ColType::Uuid => Mapped::exact("CHAR(36)"),
        ColType::Other(name) => Mapped::lossy(
            "LONGTEXT",
            format!("MySQL has no type for `{name}`: it would become text"),
        ),
    }
}

fn to_postgres(ty: &ColType) -> Mapped {
    match ty {
        ColType::Bool => Mapped::exact("boolean"),
        ColType::Int { bytes, unsigned } => Mapped::exact(match (bytes, unsigned) {
            (1, _) | (2, false) => "smallint",
            (2, true) | (3, _) | (4, false) => "integer",
            (4, true) | (8, false) => "bigint",
            _ => "numeric(20,0)",
        }),
        ColType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= 1000 => Mapped::exact(format!("numeric({p},{scale})")),
        ColType::Decimal { .. } => Mapped::exact("numeric"),
        ColType::Float { double } => {
            Mapped::exact(if *double { "double precision" } else { "real" })
        }
        ColType::Date => Mapped::exact("date"),
        ColType::Time { frac, tz } => {
            let (f, loss) = frac6(*frac);
            let zone = if *tz { "with" } else { "without" };
            with_loss(
                Mapped::noted(
                    format!("time({f}) {zone} time zone"),
                    "a time of day: MySQL TIME values outside 00:00:00-24:00:00 fail the node",
                ),
                loss,
            )
        }
        ColType::Timestamp { frac, tz } => {
            let (f, loss) = frac6(*frac);
            let zone = if *tz { "with" } else { "without" };
            with_loss(
                Mapped::exact(format!("timestamp({f}) {zone} time zone")),
                loss,
            )
        }
        ColType::Text {
            len: Some(n),
            fixed: true,
        } if *n <= 10_485_760 => Mapped::exact(format!("character({n})")),
        ColType::Text { len: Some(n), .. } if *n <= 10_485_760 => {
            Mapped::exact(format!("character varying({n})"))
        }
        ColType::Text { .. } => Mapped::exact("text"),
        ColType::Binary { .. } => Mapped::exact("bytea"),
        ColType::Json { binary } => Mapped::exact(if *binary { "jsonb" } else { "json" }),
        ColType::Uuid => Mapped::exact("uuid"),
        ColType::Other(name) => Mapped::lossy(
            "text",
            format!("PostgreSQL has no type for `{name}`: it would become text"),
        ),
    }
}

fn to_sqlite(ty: &ColType) -> Mapped {
    match ty {
        ColType::Bool => Mapped::exact("BOOLEAN"),
        ColType::Int {
            bytes: 8,
            unsigned: true,
        } => Mapped::noted(
            "DECIMAL TEXT(20,0)",
            "kept as text: SQLite's INTEGER stops at 2^63-1",
        ),
        ColType::Int { bytes, unsigned } => {
            let name = match bytes {
                1 => "TINYINT",
                2 => "SMALLINT",
                3 => "MEDIUMINT",
                4 => "INT",
                _ => "BIGINT",
            };
            Mapped::exact(format!(
                "{name}{}",
                if *unsigned { " UNSIGNED" } else { "" }
            ))
        }
        ColType::Decimal {
            precision: Some(p),
            scale,
        } if *p <= 15 => Mapped::exact(format!("DECIMAL({p},{scale})")),
        ColType::Decimal {
            precision: Some(p),
            scale,
        } => Mapped::exact(format!("DECIMAL TEXT({p},{scale})")),
        ColType::Decimal { .. } => Mapped::exact("DECIMAL TEXT"),
        ColType::Float { double } => Mapped::exact(if *double { "DOUBLE" } else { "FLOAT" }),
        ColType::Date => Mapped::exact("DATE"),
        // SQLite takes the size after every word of the name
        ColType::Time { frac, tz: false } => Mapped::exact(format!("TIME({frac})")),
        ColType::Time { frac, tz: true } => Mapped::exact(format!("TIME WITH TIME ZONE({frac})")),
        ColType::Timestamp { frac, tz: false } => Mapped::exact(format!("DATETIME({frac})")),
        ColType::Timestamp { frac, tz: true } => {
            Mapped::exact(format!("TIMESTAMP WITH TIME ZONE({frac})"))
        }
        ColType::Text {
            len: Some(n),
            fixed: true,
        } => Mapped::exact(format!("CHAR({n})")),
        ColType::Text { len: Some(n), .. } => Mapped::exact(format!("VARCHAR({n})")),
        ColType::Text { .. } => Mapped::exact("TEXT"),
        ColType::Binary {
            len: Some(n),
            fixed: true,
        } => Mapped::exact(format!("BINARY({n})")),
        ColType::Binary { len: Some(n), .. } => Mapped::exact(format!("VARBINARY({n})")),
        ColType::Binary { .. } => Mapped::exact("BLOB"),
        ColType::Json { .. } => Mapped::exact("JSON TEXT"),
        ColType::Uuid => Mapped::exact("UUID"),
        // SQLite stores any value in a TEXT column as it was written
        ColType::Other(name) => Mapped::noted("TEXT", format!("`{name}` kept as text")),
    }
}

#[cfg(test)]
mod tests;
