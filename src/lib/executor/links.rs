//! Link resolution: from a link name to something an executor can open.
//!
//! Workers read links from akkaflow's own database (`db_link`, `file_link`, written by sync), never
//! from the XML files. A db link's URL is a JDBC URL as the original wrote it
//! (`jdbc:mysql://host:3306/db?useSSL=false`, `jdbc:postgresql://host/db`, `jdbc:sqlite:/path.db`) or a
//! plain sqlx URL (`mysql://`, `postgres://`, `sqlite://`); [`resolve_db`] turns either into an sqlx
//! URL, with the link's `username`/`password` injected percent-encoded and the JDBC properties that
//! have an sqlx equivalent translated (the others are named in the log and ignored).
//!
//! Invariant: the password is only ever in [`DbTarget::url`], which is handed to sqlx and nowhere
//! else. Messages use [`DbTarget::shown`] (password replaced by `***`) and pass driver errors through
//! [`DbTarget::scrub`].

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::AttemptContext;
use crate::definition::{DbKind, DbLink, FileKind, FileLink};

/// The SQL dialects this build can talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Mysql,
    Postgres,
    Sqlite,
}

impl Dialect {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dialect::Mysql => "MySQL",
            Dialect::Postgres => "PostgreSQL",
            Dialect::Sqlite => "SQLite",
        }
    }
}

/// A db link ready to connect to.
#[derive(Clone, Debug)]
pub(crate) struct DbTarget {
    pub link: String,
    pub dialect: Dialect,
    /// The sqlx URL, password included: for the driver only.
    pub url: String,
    /// The same URL with the password replaced, for messages.
    pub shown: String,
    /// JDBC properties without an sqlx equivalent (names only: values may be secrets).
    pub ignored: Vec<String>,
    password: String,
}

impl DbTarget {
    /// `msg` with every occurrence of the password (as written or percent-encoded) replaced.
    pub(crate) fn scrub(&self, msg: impl Into<String>) -> String {
        let mut msg = msg.into();
        // very short passwords would blank out ordinary words; they are not in driver errors anyway
        if self.password.chars().count() >= 3 {
            msg = msg.replace(&self.password, "***");
            let encoded = encode(&self.password);
            if encoded != self.password {
                msg = msg.replace(&encoded, "***");
            }
        }
        msg
    }
}

/// Everything except unreserved characters is escaped: safe in userinfo and in query values.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, ESCAPED).to_string()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Reads the db link `name` through the executor port.
pub(crate) async fn db_link(ctx: &AttemptContext, name: &str) -> Result<DbLink, String> {
    ctx.port
        .db_link(name)
        .await
        .map_err(|e| format!("cannot read db link `{name}`: {e}"))?
        .ok_or_else(|| {
            format!("unknown db link `{name}`: it is not in the database (is it in db_links.xml, and was sync run?)")
        })
}

/// Reads the file link `name`; `local` is implied when no row defines it.
pub(crate) async fn file_link(ctx: &AttemptContext, name: &str) -> Result<FileLink, String> {
    let found = ctx
        .port
        .file_link(name)
        .await
        .map_err(|e| format!("cannot read file link `{name}`: {e}"))?;
    match found {
        Some(l) => Ok(l),
        None if name == "local" => Ok(crate::definition::implied_local()),
        None => Err(format!(
            "unknown file link `{name}`: it is not in the database (is it in file_links.xml, and was sync run?)"
        )),
    }
}

/// Fails clearly for the file link kinds this build cannot reach.
pub(crate) fn require_local(link: &FileLink) -> Result<(), String> {
    match link.kind {
        FileKind::Local => Ok(()),
        other => Err(format!(
            "file link `{}` is {}: {} file links are not supported by this build (only LOCAL)",
            link.name,
            other.as_str(),
            other.as_str()
        )),
    }
}

/// Looks up and resolves a db link in one step.
pub(crate) async fn db_target(ctx: &AttemptContext, name: &str) -> Result<DbTarget, String> {
    resolve_db(&db_link(ctx, name).await?)
}

/// Turns a db link into an sqlx URL for its dialect.
pub(crate) fn resolve_db(link: &DbLink) -> Result<DbTarget, String> {
    let expected = match link.kind {
        DbKind::Mysql => Dialect::Mysql,
        DbKind::Postgresql => Dialect::Postgres,
        DbKind::Sqlite => Dialect::Sqlite,
        DbKind::Oracle | DbKind::Hive => {
            return Err(format!(
                "db link `{}` is {}: {} links are not supported by this build (only MYSQL, POSTGRESQL and SQLITE; \
                 `sql` can run through a command-line client: [sql_clients] {} = \"...\" in akkaflow.toml)",
                link.name,
                link.kind.as_str(),
                link.kind.as_str(),
                link.kind.as_str()
            ))
        }
    };
    let raw = link.url.trim();
    let (jdbc, rest) = match raw.strip_prefix("jdbc:") {
        Some(r) => (true, r),
        None => (false, raw),
    };
    let (scheme, rest) = rest
        .split_once(':')
        .ok_or_else(|| format!("db link `{}`: `{}` is not a URL", link.name, redact(raw)))?;
    let dialect = match scheme.to_ascii_lowercase().as_str() {
        "mysql" | "mariadb" => Dialect::Mysql,
        "postgresql" | "postgres" => Dialect::Postgres,
        "sqlite" => Dialect::Sqlite,
        other => {
            return Err(format!(
                "db link `{}`: URL scheme `{other}` is not supported by this build (expected mysql, mariadb, postgresql or sqlite)",
                link.name
            ))
        }
    };
    if dialect != expected {
        return Err(format!(
            "db link `{}` is {} but its URL `{}` is for {}",
            link.name,
            link.kind.as_str(),
            redact(raw),
            dialect.name()
        ));
    }
    if dialect == Dialect::Sqlite {
        return Ok(sqlite_target(link, jdbc, rest));
    }
    server_target(link, dialect, jdbc, rest)
}

/// SQLite: the path as written (relative paths are relative to the worker's directory); JDBC
/// parameters have no sqlx meaning and are ignored.
fn sqlite_target(link: &DbLink, jdbc: bool, rest: &str) -> DbTarget {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let mut ignored: Vec<String> = link.properties.iter().map(|(k, _)| k.clone()).collect();
    let path = path.strip_prefix("//").unwrap_or(path);
    let url = match query {
        Some(q) if !jdbc => format!("sqlite://{path}?{q}"),
        Some(q) => {
            ignored.extend(
                q.split('&')
                    .filter_map(|kv| kv.split('=').next())
                    .map(String::from),
            );
            format!("sqlite://{path}")
        }
        None => format!("sqlite://{path}"),
    };
    DbTarget {
        link: link.name.clone(),
        dialect: Dialect::Sqlite,
        shown: url.clone(),
        url,
        ignored,
        password: String::new(),
    }
}

fn server_target(
    link: &DbLink,
    dialect: Dialect,
    jdbc: bool,
    rest: &str,
) -> Result<DbTarget, String> {
    let bad = |why: &str| format!("db link `{}`: {why}: `{}`", link.name, redact(&link.url));
    // `jdbc:postgresql:db` and `jdbc:postgresql:/db` mean localhost
    let rest = match rest.strip_prefix("//") {
        Some(r) => r.to_string(),
        None if dialect == Dialect::Postgres && jdbc => {
            format!("localhost/{}", rest.trim_start_matches('/'))
        }
        None => return Err(bad("expected `//host` after the scheme (fail-over and load-balancing URLs are not supported)")),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, q),
        None => (rest.as_str(), ""),
    };
    let (authority, database) = match before_query.split_once('/') {
        Some((a, d)) => (a, d),
        None => (before_query, ""),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if hostport.contains(',') {
        return Err(bad("several hosts in one URL are not supported"));
    }
    if hostport.is_empty() {
        return Err(bad("no host"));
    }
    let (mut user, mut password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((n, p)) => (decode(n), decode(p)),
            None => (decode(u), String::new()),
        },
        None => (String::new(), String::new()),
    };

    let url_params =
        query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (decode(k), decode(v)),
                None => (decode(kv), String::new()),
            });
    let props = link.properties.iter().cloned();
    let mut params: Vec<(String, String)> = Vec::new();
    let mut ignored = Vec::new();
    // a plain sqlx URL's own parameters are already sqlx's; JDBC ones and <properties> are translated
    let translate_url = jdbc;
    for (from_url, (k, v)) in url_params
        .map(|p| (true, p))
        .chain(props.map(|p| (false, p)))
    {
        if k.eq_ignore_ascii_case("user") {
            user = v;
            continue;
        }
        if k.eq_ignore_ascii_case("password") {
            password = v;
            continue;
        }
        if from_url && !translate_url {
            params.push((k, v));
            continue;
        }
        let translated = match dialect {
            Dialect::Mysql => mysql_param(&k, &v),
            _ => postgres_param(&k, &v),
        };
        match translated {
            Some(Translated::Set(k, v)) => {
                params.retain(|(pk, _)| *pk != k);
                params.push((k, v));
            }
            Some(Translated::Keep) => {}
            None => ignored.push(k),
        }
    }
    if !link.username.is_empty() {
        user = link.username.clone();
    }
    if !link.password.is_empty() {
        password = link.password.clone();
    }
    let scheme = match dialect {
        Dialect::Mysql => "mysql",
        _ => "postgres",
    };
    let build = |pass: &str| {
        let mut s = format!("{scheme}://");
        if !user.is_empty() {
            s.push_str(&encode(&user));
            if !password.is_empty() {
                s.push(':');
                s.push_str(pass);
            }
            s.push('@');
        }
        s.push_str(hostport);
        s.push('/');
        s.push_str(database);
        if !params.is_empty() {
            s.push('?');
            let q: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            s.push_str(&q.join("&"));
        }
        s
    };
    Ok(DbTarget {
        link: link.name.clone(),
        dialect,
        url: build(&encode(&password)),
        shown: build("***"),
        ignored,
        password,
    })
}

enum Translated {
    /// Set this sqlx parameter.
    Set(String, String),
    /// Understood, nothing to set (the default already does it).
    Keep,
}

fn set(k: &str, v: impl Into<String>) -> Option<Translated> {
    Some(Translated::Set(k.to_string(), v.into()))
}

fn is_true(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
}

/// Connector/J properties with an sqlx-mysql equivalent.
fn mysql_param(k: &str, v: &str) -> Option<Translated> {
    match k {
        "useSSL" | "requireSSL" => {
            set("ssl-mode", if is_true(v) { "REQUIRED" } else { "DISABLED" })
        }
        "sslMode" | "ssl-mode" | "sslmode" => set("ssl-mode", v.to_ascii_uppercase()),
        "characterEncoding" | "charset" => {
            let cs = match v.to_ascii_lowercase().replace('-', "").as_str() {
                "utf8" | "utf8mb4" => "utf8mb4".to_string(),
                "iso88591" | "latin1" => "latin1".to_string(),
                other => other.to_string(),
            };
            set("charset", cs)
        }
        "connectionCollation" | "collation" => set("collation", v),
        "trustCertificateKeyStoreUrl" | "serverSslCert" | "ssl-ca" => {
            set("ssl-ca", v.trim_start_matches("file:"))
        }
        // sqlx always speaks Unicode
        "useUnicode" => Some(Translated::Keep),
        _ => None,
    }
}

/// pgJDBC properties with an sqlx-postgres equivalent.
fn postgres_param(k: &str, v: &str) -> Option<Translated> {
    match k {
        "ssl" => set("sslmode", if is_true(v) { "require" } else { "disable" }),
        "sslmode" => set("sslmode", v.to_ascii_lowercase()),
        "sslrootcert" => set("sslrootcert", v),
        "sslcert" => set("sslcert", v),
        "sslkey" => set("sslkey", v),
        "currentSchema" => set("options", format!("-c search_path={v}")),
        "ApplicationName" | "application_name" => set("application_name", v),
        "options" => set("options", v),
        _ => None,
    }
}

/// A URL as written with any `user:password@` replaced, for messages about unparseable URLs.
fn redact(url: &str) -> String {
    let mut out = crate::store::redact_url(url);
    // JDBC query-string passwords
    if let Some((head, query)) = out.clone().split_once('?') {
        let q: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}?{}", q.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: DbKind, url: &str, user: &str, pass: &str, props: &[(&str, &str)]) -> DbLink {
        DbLink {
            name: "l".into(),
            kind,
            url: url.into(),
            username: user.into(),
            password: pass.into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            pool: None,
        }
    }

    #[test]
    fn jdbc_urls_become_sqlx_urls() {
        use DbKind::*;
        // kind, url, username, password, properties, sqlx url, shown url
        type Case<'a> = (
            DbKind,
            &'a str,
            &'a str,
            &'a str,
            &'a [(&'a str, &'a str)],
            &'a str,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                Mysql,
                "jdbc:mysql://localhost:3306/wf?useSSL=false",
                "root",
                "root",
                &[("characterEncoding", "UTF-8")],
                "mysql://root:root@localhost:3306/wf?ssl-mode=DISABLED&charset=utf8mb4",
                "mysql://root:***@localhost:3306/wf?ssl-mode=DISABLED&charset=utf8mb4",
            ),
            (
                Mysql,
                "jdbc:mariadb://db.example:3307/dw",
                "etl",
                "p@ss:w/rd%",
                &[],
                "mysql://etl:p%40ss%3Aw%2Frd%25@db.example:3307/dw",
                "mysql://etl:***@db.example:3307/dw",
            ),
            (
                Mysql,
                "jdbc:mysql://h/db?user=u&password=secret&zeroDateTimeBehavior=convertToNull",
                "",
                "",
                &[("useSSL", "true")],
                "mysql://u:secret@h/db?ssl-mode=REQUIRED",
                "mysql://u:***@h/db?ssl-mode=REQUIRED",
            ),
            (
                Postgresql,
                "jdbc:postgresql://pg:5432/dw?currentSchema=ods&ssl=true",
                "etl",
                "x y",
                &[],
                "postgres://etl:x%20y@pg:5432/dw?options=-c%20search_path%3Dods&sslmode=require",
                "postgres://etl:***@pg:5432/dw?options=-c%20search_path%3Dods&sslmode=require",
            ),
            (
                Postgresql,
                "jdbc:postgresql:dw",
                "etl",
                "",
                &[],
                "postgres://etl@localhost/dw",
                "postgres://etl@localhost/dw",
            ),
            (
                Postgresql,
                "postgres://old:old@pg/dw?sslmode=disable",
                "new",
                "pw",
                &[],
                "postgres://new:pw@pg/dw?sslmode=disable",
                "postgres://new:***@pg/dw?sslmode=disable",
            ),
            (
                Mysql,
                "mysql://u:keep%2Fme@h:3306/db",
                "",
                "",
                &[],
                "mysql://u:keep%2Fme@h:3306/db",
                "mysql://u:***@h:3306/db",
            ),
            (
                Sqlite,
                "jdbc:sqlite:/var/data/dw.db",
                "",
                "",
                &[],
                "sqlite:///var/data/dw.db",
                "sqlite:///var/data/dw.db",
            ),
            (
                Sqlite,
                "sqlite://akkaflow-demo.db",
                "",
                "",
                &[],
                "sqlite://akkaflow-demo.db",
                "sqlite://akkaflow-demo.db",
            ),
            (
                Sqlite,
                "jdbc:sqlite:rel/dw.db?journal_mode=WAL",
                "",
                "",
                &[],
                "sqlite://rel/dw.db",
                "sqlite://rel/dw.db",
            ),
        ];
        for (kind, url, user, pass, props, want, shown) in cases {
            let t = resolve_db(&link(*kind, url, user, pass, props)).unwrap();
            assert_eq!(t.url, *want, "{url}");
            assert_eq!(t.shown, *shown, "{url}");
        }
    }

    #[test]
    fn translated_urls_parse_in_sqlx_with_the_password_intact() {
        use std::str::FromStr;
        let t = resolve_db(&link(
            DbKind::Mysql,
            "jdbc:mysql://h:3306/wf?useSSL=false",
            "etl",
            "p@ss:w/rd%&?",
            &[],
        ))
        .unwrap();
        let opts = sqlx::mysql::MySqlConnectOptions::from_str(&t.url).unwrap();
        assert_eq!(opts.get_username(), "etl");
        assert_eq!(opts.get_database(), Some("wf"));
        assert_eq!(opts.get_port(), 3306);
        let parsed = url::Url::parse(&t.url).unwrap();
        assert_eq!(decode(parsed.password().unwrap()), "p@ss:w/rd%&?");
        let t = resolve_db(&link(
            DbKind::Postgresql,
            "jdbc:postgresql://h/dw?currentSchema=ods",
            "etl",
            "a b",
            &[],
        ))
        .unwrap();
        sqlx::postgres::PgConnectOptions::from_str(&t.url).unwrap();
    }

    #[test]
    fn unknown_jdbc_properties_are_named_not_valued() {
        let t = resolve_db(&link(
            DbKind::Mysql,
            "jdbc:mysql://h/db?autoReconnect=true",
            "u",
            "p",
            &[("serverTimezone", "Asia/Shanghai"), ("useUnicode", "true")],
        ))
        .unwrap();
        assert_eq!(t.ignored, vec!["autoReconnect", "serverTimezone"]);
    }

    #[test]
    fn unsupported_links_fail_clearly() {
        let cases: &[(DbKind, &str, &str)] = &[
            (
                DbKind::Oracle,
                "jdbc:oracle:thin:@//o:1521/XE",
                "ORACLE links are not supported by this build",
            ),
            (
                DbKind::Hive,
                "jdbc:hive2://q:10000/",
                "HIVE links are not supported by this build",
            ),
            (
                DbKind::Mysql,
                "jdbc:postgresql://h/db",
                "is MYSQL but its URL",
            ),
            (DbKind::Mysql, "jdbc:mysql://h1,h2/db", "several hosts"),
            (
                DbKind::Mysql,
                "jdbc:mysql:loadbalance://h1/db",
                "expected `//host`",
            ),
            (
                DbKind::Postgresql,
                "jdbc:db2://h/db",
                "scheme `db2` is not supported",
            ),
        ];
        for (kind, url, want) in cases {
            let e = resolve_db(&link(*kind, url, "u", "secret", &[])).unwrap_err();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
        let e = resolve_db(&link(
            DbKind::Mysql,
            "jdbc:mysql://u:hunter2@h1,h2/db?password=hunter3",
            "",
            "",
            &[],
        ))
        .unwrap_err();
        assert!(!e.contains("hunter2") && !e.contains("hunter3"), "{e}");
    }

    #[test]
    fn scrub_removes_the_password_in_both_spellings() {
        let t = resolve_db(&link(
            DbKind::Mysql,
            "jdbc:mysql://h/db",
            "u",
            "p@ssword",
            &[],
        ))
        .unwrap();
        let msg = t.scrub("failed for mysql://u:p%40ssword@h/db (p@ssword)");
        assert!(!msg.contains("ssword"), "{msg}");
    }

    #[test]
    fn file_links_other_than_local_fail_clearly() {
        let mut l = crate::definition::implied_local();
        assert!(require_local(&l).is_ok());
        l.kind = FileKind::Sftp;
        l.name = "s1".into();
        let e = require_local(&l).unwrap_err();
        assert!(
            e.contains("SFTP file links are not supported by this build"),
            "{e}"
        );
    }
}
