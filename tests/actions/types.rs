use super::*;

/// (column, MySQL, PostgreSQL, SQLite) definitions of the source table.
const COLUMNS: &[(&str, &str, &str, &str)] = &[
    (
        "id",
        "int primary key",
        "integer primary key",
        "INTEGER PRIMARY KEY",
    ),
    ("b", "boolean", "boolean", "BOOLEAN"),
    ("i8", "tinyint", "smallint", "TINYINT"),
    ("i16", "smallint", "smallint", "SMALLINT"),
    ("i32", "int", "integer", "INT"),
    ("i64", "bigint", "bigint", "BIGINT"),
    (
        "u64",
        "bigint unsigned",
        "numeric(20,0)",
        "DECIMAL TEXT(20,0)",
    ),
    ("d12", "decimal(12,2)", "numeric(12,2)", "DECIMAL(12,2)"),
    (
        "d30",
        "decimal(30,10)",
        "numeric(30,10)",
        "DECIMAL TEXT(30,10)",
    ),
    ("f32", "float", "real", "FLOAT"),
    ("f64", "double", "double precision", "DOUBLE"),
    ("dt", "date", "date", "DATE"),
    ("tm", "time(3)", "time(3)", "TIME(3)"),
    ("ts", "datetime(6)", "timestamp(6)", "DATETIME(6)"),
    (
        "tz",
        "timestamp(6) null",
        "timestamp(6) with time zone",
        "TIMESTAMP WITH TIME ZONE(6)",
    ),
    ("vc", "varchar(40)", "varchar(40)", "VARCHAR(40)"),
    ("ch", "char(3)", "char(3)", "CHAR(3)"),
    ("tx", "text", "text", "TEXT"),
    ("bin", "varbinary(16)", "bytea", "BLOB"),
    ("js", "json", "jsonb", "JSON TEXT"),
];

/// Rows as (kind-neutral) text; `None` is NULL. Bytes are hex.
fn rows() -> Vec<Vec<Option<&'static str>>> {
    vec![
        vec![
            Some("1"),
            Some("1"),
            Some("127"),
            Some("32767"),
            Some("2147483647"),
            Some("9223372036854775807"),
            Some("18446744073709551615"),
            Some("9999999999.99"),
            Some("99999999999999999999.9999999999"),
            Some("3.4028234663852886e38"),
            Some("1.7976931348623157e308"),
            Some("9999-12-31"),
            Some("23:59:59.999"),
            Some("9999-12-31 23:59:59.999999"),
            Some("2038-01-19 03:14:07.999999"),
            Some("名字, \"quoted\"\nnew\tline \\ end"),
            Some("abc"),
            Some("ü,;|\r\n\"x\" \\N"),
            Some("00ff10"),
            Some("{\"a\": [1, null, \"ü\"]}"),
        ],
        vec![
            Some("2"),
            Some("0"),
            Some("-128"),
            Some("-32768"),
            Some("-2147483648"),
            Some("-9223372036854775808"),
            Some("0"),
            Some("-9999999999.99"),
            Some("-0.0000000001"),
            Some("-1.5e-10"),
            Some("-2.2250738585072014e-308"),
            Some("1000-01-01"),
            Some("00:00:00.001"),
            Some("1000-01-01 00:00:00.000001"),
            Some("1970-01-01 00:00:01.5"),
            Some(""),
            Some("a"),
            Some(","),
            Some(""),
            Some("[]"),
        ],
        std::iter::once(Some("3"))
            .chain(std::iter::repeat_n(None, 19))
            .collect(),
    ]
}

fn literal(b: Backend, col: &str, v: Option<&str>) -> String {
    let Some(v) = v else { return "NULL".into() };
    let quoted = |v: &str| match b {
        Backend::Mysql => format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''")),
        _ => format!("'{}'", v.replace('\'', "''")),
    };
    match (col, b) {
        ("b", Backend::Postgres) => (if v == "1" { "true" } else { "false" }).into(),
        ("bin", Backend::Postgres) => format!("decode('{v}', 'hex')"),
        ("bin", _) => format!("X'{v}'"),
        ("tz", Backend::Mysql) => quoted(v),
        ("tz", _) => quoted(&format!("{v}+00")),
        _ => quoted(v),
    }
}

fn create(b: Backend, table: &str) -> String {
    let defs: Vec<String> = COLUMNS
        .iter()
        .map(|(n, m, p, s)| {
            let t = match b {
                Backend::Mysql => m,
                Backend::Postgres => p,
                Backend::Sqlite => s,
            };
            format!("{n} {t}")
        })
        .collect();
    let charset = if b == Backend::Mysql {
        " DEFAULT CHARSET = utf8mb4"
    } else {
        ""
    };
    format!("create table {table} ({}){charset}", defs.join(", "))
}

/// Every value of a table, spelled so that equal values compare equal across backends.
async fn values(link: &Link, table: &str) -> Vec<Vec<Option<String>>> {
    let list: Vec<String> = COLUMNS
        .iter()
        .map(|(n, ..)| match (*n, link.backend) {
            ("f32", Backend::Mysql) => "cast(f32 as double)".to_string(),
            // prefixed: the driver reads MySQL's empty HEX('') as NULL
            ("bin", Backend::Mysql) => "concat('x', hex(bin))".into(),
            ("bin", Backend::Postgres) => "'x' || encode(bin, 'hex')".into(),
            // SQLite's hex(NULL) is ''
            ("bin", Backend::Sqlite) => {
                "case when bin is null then null else 'x' || hex(bin) end".into()
            }
            ("tz", Backend::Postgres) => {
                "to_char(tz at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')".into()
            }
            (n, Backend::Postgres) => format!("{n}::text"),
            (n, _) => n.to_string(),
        })
        .collect();
    let mut rows = link
        .peer
        .rows(&format!(
            "select {} from {table} order by id",
            list.join(", ")
        ))
        .await;
    if let Peer::Sqlite(pool) = &link.peer {
        // SQLite's own text for a REAL keeps 15 digits: read the numbers themselves
        let sql = format!("select d12, f32, f64 from {table} order by id");
        let exact: Vec<(Option<f64>, Option<f64>, Option<f64>)> =
            sqlx::query_as(&sql).fetch_all(pool).await.unwrap();
        for (row, (d12, f32, f64)) in rows.iter_mut().zip(exact) {
            row[7] = d12.map(|f| format!("{f}"));
            row[9] = f32.map(|f| format!("{f:e}"));
            row[10] = f64.map(|f| format!("{f:e}"));
        }
    }
    rows.into_iter()
        .map(|r| {
            r.into_iter()
                .zip(COLUMNS)
                .map(|(v, (n, ..))| v.map(|v| normalize(n, &v)))
                .collect()
        })
        .collect()
}

fn normalize(col: &str, v: &str) -> String {
    let fraction = |v: &str| -> String {
        let v = v.replace('T', " ");
        let v = v.split(['+']).next().unwrap_or(&v).to_string();
        match v.split_once('.') {
            Some((a, f)) => {
                let f = f.trim_end_matches('0');
                if f.is_empty() {
                    a.to_string()
                } else {
                    format!("{a}.{f}")
                }
            }
            None => v,
        }
    };
    match col {
        "b" => match v {
            "t" | "true" | "1" => "1".into(),
            _ => "0".into(),
        },
        "u64" | "d12" | "d30" => {
            // numerically: SQLite keeps a short DECIMAL as a REAL
            let t = if v.contains('e') || v.contains('E') {
                format!("{}", v.parse::<f64>().unwrap())
            } else {
                v.to_string()
            };
            let t = fraction(&t);
            if t == "-0" {
                "0".into()
            } else {
                t
            }
        }
        "f32" => format!("{:e}", v.parse::<f64>().unwrap() as f32),
        "f64" => format!("{:e}", v.parse::<f64>().unwrap()),
        "tm" | "ts" | "tz" => fraction(v),
        "ch" => v.trim_end().into(),
        "bin" => v.to_ascii_lowercase(),
        "js" => serde_json::from_str::<serde_json::Value>(v)
            .unwrap()
            .to_string(),
        _ => v.into(),
    }
}

/// The created table's column types, lower case.
async fn created_types(link: &Link, table: &str) -> Vec<String> {
    let sql = match link.backend {
            Backend::Mysql => format!("select column_type from information_schema.columns where table_schema = database() and table_name = '{table}' order by ordinal_position"),
            Backend::Postgres => format!("select format_type(atttypid, atttypmod) from pg_attribute where attrelid = '{table}'::regclass and attnum > 0 and not attisdropped order by attnum"),
            Backend::Sqlite => format!("select type from pragma_table_info('{table}')"),
        };
    link.peer
        .rows(&sql)
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap().to_lowercase())
        .collect()
}

/// The type each key column must get in `to` when copied from `from`.
fn expected_type(from: Backend, to: Backend, col: &str) -> &'static str {
    use Backend::*;
    match (to, col) {
        (Postgres, "b") => "boolean",
        (Postgres, "i8" | "i16") => "smallint",
        (Postgres, "i32") => "integer",
        (Postgres, "i64") => "bigint",
        (Postgres, "u64") => "numeric(20,0)",
        (Postgres, "d12") => "numeric(12,2)",
        (Postgres, "d30") => "numeric(30,10)",
        (Postgres, "f32") if from == Sqlite => "double precision",
        (Postgres, "f32") => "real",
        (Postgres, "f64") => "double precision",
        (Postgres, "dt") => "date",
        (Postgres, "tm") => "time(3) without time zone",
        (Postgres, "ts") => "timestamp(6) without time zone",
        (Postgres, "tz") => "timestamp(6) with time zone",
        (Postgres, "vc") => "character varying(40)",
        (Postgres, "ch") => "character(3)",
        (Postgres, "tx") => "text",
        (Postgres, "bin") => "bytea",
        (Postgres, "js") if from == Postgres => "jsonb",
        (Postgres, "js") => "json",
        (Mysql, "b") => "tinyint(1)",
        (Mysql, "i8") if from == Postgres => "smallint(6)",
        (Mysql, "i8") => "tinyint(4)",
        (Mysql, "i16") => "smallint(6)",
        (Mysql, "i32") => "int(11)",
        (Mysql, "i64") => "bigint(20)",
        (Mysql, "u64") if from == Mysql => "bigint(20) unsigned",
        (Mysql, "u64") => "decimal(20,0)",
        (Mysql, "d12") => "decimal(12,2)",
        (Mysql, "d30") => "decimal(30,10)",
        (Mysql, "f32") if from == Sqlite => "double",
        (Mysql, "f32") => "float",
        (Mysql, "f64") => "double",
        (Mysql, "dt") => "date",
        (Mysql, "tm") => "time(3)",
        (Mysql, "ts") => "datetime(6)",
        (Mysql, "tz") if from == Mysql => "timestamp(6)",
        (Mysql, "tz") => "datetime(6)",
        (Mysql, "vc") => "varchar(40)",
        (Mysql, "ch") => "char(3)",
        (Mysql, "tx") if from == Mysql => "text",
        (Mysql, "tx") => "longtext",
        (Mysql, "bin") if from == Mysql => "varbinary(16)",
        (Mysql, "bin") => "longblob",
        // MariaDB's JSON is LONGTEXT with a check
        (Mysql, "js") => "longtext",
        (Sqlite, "b") => "boolean",
        (Sqlite, "i8") if from == Postgres => "smallint",
        (Sqlite, "i8") => "tinyint",
        (Sqlite, "i16") => "smallint",
        (Sqlite, "i32") => "int",
        (Sqlite, "i64") => "bigint",
        (Sqlite, "u64") => "decimal text(20,0)",
        (Sqlite, "d12") => "decimal(12,2)",
        (Sqlite, "d30") => "decimal text(30,10)",
        (Sqlite, "f32") => "float",
        (Sqlite, "f64") => "double",
        (Sqlite, "dt") => "date",
        (Sqlite, "tm") => "time(3)",
        (Sqlite, "ts") => "datetime(6)",
        (Sqlite, "tz") => "timestamp with time zone(6)",
        (Sqlite, "vc") => "varchar(40)",
        (Sqlite, "ch") => "char(3)",
        (Sqlite, "tx") => "text",
        (Sqlite, "bin") if from == Mysql => "varbinary(16)",
        (Sqlite, "bin") => "blob",
        (Sqlite, "js") => "json text",
        _ => unreachable!("{col}"),
    }
}

async fn link(env: &Env, b: Backend, case: &str, name: &'static str) -> Option<Link> {
    match b {
        Backend::Sqlite => Some(sqlite_link(env, name).await),
        other => server_link(other, &format!("{case}_{name}"), name).await,
    }
}

pub async fn keeps_every_type(from: Backend, to: Backend, case: &str) {
    let Some(mut env) = Env::new(common::Db::Sqlite, case).await else {
        return;
    };
    env.config("transfer_batch_rows = 2");
    let Some(src) = link(&env, from, case, "src").await else {
        return;
    };
    let Some(dst) = link(&env, to, case, "dst").await else {
        return;
    };
    src.peer.exec(&create(from, "src")).await;
    src.peer.exec(&create(from, "back")).await;
    for row in rows() {
        let values: Vec<String> = row
            .iter()
            .zip(COLUMNS)
            .map(|(v, (n, ..))| literal(from, n, *v))
            .collect();
        src.peer
            .exec(&format!("insert into src values ({})", values.join(", ")))
            .await;
    }
    let dir = env.path().display().to_string();
    let wf = linear(
        "ty",
        &format!(
            r#"<action name="a"><transfer>
      <source type="DB" db-link="src">src</source>
      <target type="DB" db-link="dst" table="dst"/>
    </transfer><ok to="b"/></action>
  <action name="b"><transfer>
      <source type="DB" db-link="dst">dst</source>
      <target type="FILE" path="{dir}/out/all.csv" delimited="," header="true"/>
    </transfer><ok to="c"/></action>
  <action name="c"><transfer>
      <source type="FILE" path="{dir}/out/all.csv" delimited="," header="true"/>
      <target type="DB" db-link="src" table="back"/>
    </transfer><ok to="end"/></action>"#
        ),
    );
    let links = format!("<db-links>\n  {}\n  {}\n</db-links>\n", src.xml, dst.xml);
    env.write("xmlconfig/db_links.xml", &links);
    env.sync(&[("ty.xml", &wf)]);
    env.spawn(
        "standalone",
        &["standalone", "--slots", "2", "--listen", "127.0.0.1:0"],
    );
    let store = env.store().await;
    let out = env.ok(&["workflow", "trigger", "ty"]);
    let id = InstanceId(out.trim().parse().expect("instance id"));
    let inst = ended(&*store, id).await;
    let logs = env.ok(&["logs", &id.to_string()]);
    assert_eq!(inst.status, InstanceStatus::Succeeded, "{logs}");

    let want = values(&src, "src").await;
    assert_eq!(want.len(), 3);
    assert_eq!(
        values(&dst, "dst").await,
        want,
        "{from:?} -> {to:?}: {logs}"
    );
    assert_eq!(values(&src, "back").await, want, "through the file: {logs}");

    let types = created_types(&dst, "dst").await;
    for ((name, ..), got) in COLUMNS.iter().zip(&types).skip(1) {
        assert_eq!(
            got,
            expected_type(from, to, name),
            "{from:?} -> {to:?} column {name}"
        );
    }
    let csv = std::fs::read_to_string(env.path().join("out/all.csv")).unwrap();
    assert!(csv.starts_with("id,b,i8,"), "{csv}");
    assert!(
        csv.contains("\"名字, \"\"quoted\"\"\nnew\tline \\ end\""),
        "{csv}"
    );
    crate::common::assert_invariants(&env).await;
}

macro_rules! pairs {
        ($($name:ident: $from:ident -> $to:ident),+ $(,)?) => { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                keeps_every_type(Backend::$from, Backend::$to, stringify!($name)).await;
            }
        )+ };
    }

pairs!(
    mysql_to_postgres: Mysql -> Postgres,
    mysql_to_sqlite: Mysql -> Sqlite,
    mysql_to_mysql: Mysql -> Mysql,
    postgres_to_mysql: Postgres -> Mysql,
    postgres_to_sqlite: Postgres -> Sqlite,
    postgres_to_postgres: Postgres -> Postgres,
    sqlite_to_mysql: Sqlite -> Mysql,
    sqlite_to_postgres: Sqlite -> Postgres,
    sqlite_to_sqlite: Sqlite -> Sqlite,
);
