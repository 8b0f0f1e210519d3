//! The type map's whole table, dialect by dialect.

use super::*;
use Dialect::{Mysql, Postgres, Sqlite};

#[test]
fn declared_types_parse_in_every_dialect() {
    let int = |bytes, unsigned| ColType::Int { bytes, unsigned };
    let dec = |p, s| ColType::Decimal {
        precision: Some(p),
        scale: s,
    };
    let text = |len, fixed| ColType::Text { len, fixed };
    let cases: &[(Dialect, &str, ColType)] = &[
        (Mysql, "tinyint(1)", ColType::Bool),
        (Mysql, "tinyint(4)", int(1, false)),
        (Mysql, "smallint(5) unsigned", int(2, true)),
        (Mysql, "mediumint(9)", int(3, false)),
        (Mysql, "int(11)", int(4, false)),
        (Mysql, "bigint(20) unsigned", int(8, true)),
        (Mysql, "BIGINT UNSIGNED", int(8, true)),
        (Mysql, "decimal(12,2)", dec(12, 2)),
        (Mysql, "decimal", dec(10, 0)),
        (Mysql, "float", ColType::Float { double: false }),
        (Mysql, "double", ColType::Float { double: true }),
        (
            Mysql,
            "datetime(6)",
            ColType::Timestamp { frac: 6, tz: false },
        ),
        (Mysql, "datetime", ColType::Timestamp { frac: 0, tz: false }),
        (
            Mysql,
            "timestamp(3)",
            ColType::Timestamp { frac: 3, tz: true },
        ),
        (Mysql, "time(3)", ColType::Time { frac: 3, tz: false }),
        (Mysql, "varchar(40)", text(Some(40), false)),
        (Mysql, "char(3)", text(Some(3), true)),
        (Mysql, "longtext", text(None, false)),
        (Mysql, "enum('a','b')", text(None, false)),
        (
            Mysql,
            "varbinary(16)",
            ColType::Binary {
                len: Some(16),
                fixed: false,
            },
        ),
        (
            Mysql,
            "longblob",
            ColType::Binary {
                len: None,
                fixed: false,
            },
        ),
        (Mysql, "json", ColType::Json { binary: false }),
        (Mysql, "year(4)", int(2, false)),
        (Mysql, "point", ColType::Other("point".into())),
        (Postgres, "boolean", ColType::Bool),
        (Postgres, "smallint", int(2, false)),
        (Postgres, "integer", int(4, false)),
        (Postgres, "numeric(20,0)", dec(20, 0)),
        (
            Postgres,
            "numeric",
            ColType::Decimal {
                precision: None,
                scale: 0,
            },
        ),
        (Postgres, "real", ColType::Float { double: false }),
        (
            Postgres,
            "double precision",
            ColType::Float { double: true },
        ),
        (
            Postgres,
            "time(3) with time zone",
            ColType::Time { frac: 3, tz: true },
        ),
        (
            Postgres,
            "time without time zone",
            ColType::Time { frac: 6, tz: false },
        ),
        (
            Postgres,
            "timestamp(3) without time zone",
            ColType::Timestamp { frac: 3, tz: false },
        ),
        (
            Postgres,
            "timestamp with time zone",
            ColType::Timestamp { frac: 6, tz: true },
        ),
        (
            Postgres,
            "TIMESTAMPTZ",
            ColType::Timestamp { frac: 6, tz: true },
        ),
        (Postgres, "character varying(40)", text(Some(40), false)),
        (Postgres, "character(3)", text(Some(3), true)),
        (
            Postgres,
            "bytea",
            ColType::Binary {
                len: None,
                fixed: false,
            },
        ),
        (Postgres, "jsonb", ColType::Json { binary: true }),
        (Postgres, "uuid", ColType::Uuid),
        (Postgres, "interval", ColType::Other("interval".into())),
        (Sqlite, "INTEGER", int(8, false)),
        (Sqlite, "INT", int(4, false)),
        (Sqlite, "REAL", ColType::Float { double: true }),
        (Sqlite, "FLOAT", ColType::Float { double: true }),
        (Sqlite, "DECIMAL TEXT(30,10)", dec(30, 10)),
        (
            Sqlite,
            "NUMERIC",
            ColType::Decimal {
                precision: None,
                scale: 0,
            },
        ),
        (
            Sqlite,
            "TIMESTAMP WITH TIME ZONE(3)",
            ColType::Timestamp { frac: 3, tz: true },
        ),
        (
            Sqlite,
            "DATETIME",
            ColType::Timestamp { frac: 6, tz: false },
        ),
        (Sqlite, "JSON TEXT", ColType::Json { binary: false }),
        (Sqlite, "", text(None, false)),
    ];
    for (d, declared, want) in cases {
        assert_eq!(&parse(*d, declared), want, "{d:?} {declared}");
    }
}

/// The type map itself: every kind of source column, into each dialect.
#[test]
fn every_type_maps_to_the_nearest_lossless_type() {
    // (source dialect, declared, MySQL, PostgreSQL, SQLite)
    let table: &[(Dialect, &str, &str, &str, &str)] = &[
        (Mysql, "tinyint(1)", "BOOLEAN", "boolean", "BOOLEAN"),
        (Postgres, "boolean", "BOOLEAN", "boolean", "BOOLEAN"),
        (Mysql, "tinyint(4)", "TINYINT", "smallint", "TINYINT"),
        (
            Mysql,
            "tinyint(3) unsigned",
            "TINYINT UNSIGNED",
            "smallint",
            "TINYINT UNSIGNED",
        ),
        (Mysql, "smallint(6)", "SMALLINT", "smallint", "SMALLINT"),
        (
            Mysql,
            "smallint(5) unsigned",
            "SMALLINT UNSIGNED",
            "integer",
            "SMALLINT UNSIGNED",
        ),
        (Mysql, "mediumint(9)", "MEDIUMINT", "integer", "MEDIUMINT"),
        (Mysql, "int(11)", "INT", "integer", "INT"),
        (
            Mysql,
            "int(10) unsigned",
            "INT UNSIGNED",
            "bigint",
            "INT UNSIGNED",
        ),
        (Mysql, "bigint(20)", "BIGINT", "bigint", "BIGINT"),
        (
            Mysql,
            "bigint(20) unsigned",
            "BIGINT UNSIGNED",
            "numeric(20,0)",
            "DECIMAL TEXT(20,0)",
        ),
        (Sqlite, "INTEGER", "BIGINT", "bigint", "BIGINT"),
        (
            Mysql,
            "decimal(12,2)",
            "DECIMAL(12,2)",
            "numeric(12,2)",
            "DECIMAL(12,2)",
        ),
        (
            Mysql,
            "decimal(65,30)",
            "DECIMAL(65,30)",
            "numeric(65,30)",
            "DECIMAL TEXT(65,30)",
        ),
        (
            Postgres,
            "numeric(12,2)",
            "DECIMAL(12,2)",
            "numeric(12,2)",
            "DECIMAL(12,2)",
        ),
        (
            Postgres,
            "numeric",
            "DECIMAL(65,0)",
            "numeric",
            "DECIMAL TEXT",
        ),
        (Mysql, "float", "FLOAT", "real", "FLOAT"),
        (Postgres, "real", "FLOAT", "real", "FLOAT"),
        (Mysql, "double", "DOUBLE", "double precision", "DOUBLE"),
        (Sqlite, "REAL", "DOUBLE", "double precision", "DOUBLE"),
        (Mysql, "date", "DATE", "date", "DATE"),
        (
            Mysql,
            "time(3)",
            "TIME(3)",
            "time(3) without time zone",
            "TIME(3)",
        ),
        (
            Postgres,
            "time(6) with time zone",
            "TIME(6)",
            "time(6) with time zone",
            "TIME WITH TIME ZONE(6)",
        ),
        (
            Mysql,
            "datetime(6)",
            "DATETIME(6)",
            "timestamp(6) without time zone",
            "DATETIME(6)",
        ),
        (
            Mysql,
            "datetime",
            "DATETIME(0)",
            "timestamp(0) without time zone",
            "DATETIME(0)",
        ),
        (
            Mysql,
            "timestamp(3)",
            "DATETIME(3)",
            "timestamp(3) with time zone",
            "TIMESTAMP WITH TIME ZONE(3)",
        ),
        (
            Postgres,
            "timestamp(3) with time zone",
            "DATETIME(3)",
            "timestamp(3) with time zone",
            "TIMESTAMP WITH TIME ZONE(3)",
        ),
        (
            Mysql,
            "varchar(40)",
            "VARCHAR(40)",
            "character varying(40)",
            "VARCHAR(40)",
        ),
        (
            Mysql,
            "varchar(5000)",
            "TEXT",
            "character varying(5000)",
            "VARCHAR(5000)",
        ),
        (Mysql, "char(3)", "CHAR(3)", "character(3)", "CHAR(3)"),
        (Postgres, "text", "LONGTEXT", "text", "TEXT"),
        (Mysql, "binary(16)", "BINARY(16)", "bytea", "BINARY(16)"),
        (
            Mysql,
            "varbinary(64)",
            "VARBINARY(64)",
            "bytea",
            "VARBINARY(64)",
        ),
        (Postgres, "bytea", "LONGBLOB", "bytea", "BLOB"),
        (Mysql, "json", "JSON", "json", "JSON TEXT"),
        (Postgres, "jsonb", "JSON", "jsonb", "JSON TEXT"),
        (Postgres, "uuid", "CHAR(36)", "uuid", "UUID"),
    ];
    for (from, declared, mysql, postgres, sqlite) in table {
        let ty = parse(*from, declared);
        for (to, want) in [(Mysql, mysql), (Postgres, postgres), (Sqlite, sqlite)] {
            assert_eq!(&map(to, &ty).sql, want, "{from:?} {declared} -> {to:?}");
        }
        // what a SQLite target declares reads back as the same kind, for the way onwards
        let back = parse(Sqlite, &map(Sqlite, &ty).sql);
        let widened = matches!(
            ty,
            ColType::Int {
                bytes: 8,
                unsigned: true
            } | ColType::Float { double: false }
                | ColType::Json { binary: true }
        );
        assert!(widened || back == ty, "{from:?} {declared}: {back:?}");
    }
}

#[test]
fn types_without_a_lossless_target_say_why() {
    let lossy: &[(Dialect, &str, Dialect)] = &[
        (Postgres, "numeric", Mysql),
        (Postgres, "numeric(80,10)", Mysql),
        (Postgres, "time with time zone", Mysql),
        (Postgres, "interval", Mysql),
        (Mysql, "point", Postgres),
        (Sqlite, "TIMESTAMP(9)", Postgres),
    ];
    for (from, declared, to) in lossy {
        let m = map(*to, &parse(*from, declared));
        assert!(m.loss.is_some(), "{from:?} {declared} -> {to:?}: {m:?}");
    }
    let noted: &[(Dialect, &str, Dialect)] = &[
        (Postgres, "timestamp with time zone", Mysql),
        (Mysql, "time", Postgres),
        (Mysql, "bigint unsigned", Sqlite),
        (Postgres, "interval", Sqlite),
    ];
    for (from, declared, to) in noted {
        let m = map(*to, &parse(*from, declared));
        assert!(
            m.loss.is_none() && m.note.is_some(),
            "{from:?} {declared} -> {to:?}: {m:?}"
        );
    }
}
