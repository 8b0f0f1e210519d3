//! `db_links.xml` and `file_links.xml`: named connections that actions refer to by name.
//!
//! Recognised by their root element (`<db-links>`, `<file-links>`), wherever they lie in the set.
//! A file link named `local` (the local file system) is implied when no file defines one.

use super::super::model::{DbKind, DbLink, FileKind, FileLink, Pool};
use super::super::xml::Element;
use super::schema;
use super::{Ctx, Site};

pub(crate) fn parse_db_links(ctx: &mut Ctx<'_>, root: &Element) -> Vec<(DbLink, Site)> {
    ctx.allow(root, "<db-links>", &schema::DB_LINKS);
    let mut out = Vec::new();
    for el in root.children_named("link") {
        let Some(name) = ctx.required(el, "db <link>", "name") else {
            continue;
        };
        let subject = format!("db link \"{name}\"");
        ctx.allow(el, &subject, &schema::DB_LINK);
        let kind = ctx.required(el, &subject, "type").and_then(|t| {
            let kind = match t.to_ascii_uppercase().as_str() {
                "MYSQL" => DbKind::Mysql,
                "POSTGRESQL" => DbKind::Postgresql,
                "SQLITE" => DbKind::Sqlite,
                "ORACLE" => DbKind::Oracle,
                "HIVE" => DbKind::Hive,
                _ => {
                    ctx.error(
                        el,
                        format!("{subject} has unknown type \"{t}\": expected MYSQL, POSTGRESQL, SQLITE, ORACLE or HIVE"),
                    );
                    return None;
                }
            };
            Some(kind)
        });
        let url = ctx.required(el, &subject, "jdbc-url");
        let mut properties = Vec::new();
        for props in el.children_named("properties") {
            ctx.allow(
                props,
                &format!("<properties> of {subject}"),
                &schema::DB_LINK_PROPERTIES,
            );
            for p in props.children_named("property") {
                let psub = format!("<property> of {subject}");
                ctx.allow(p, &psub, &schema::DB_LINK_PROPERTY);
                if let Some(pname) = ctx.required(p, &psub, "name") {
                    properties.push((pname, p.text().trim().to_string()));
                }
            }
        }
        let (Some(kind), Some(url)) = (kind, url) else {
            continue;
        };
        let link = DbLink {
            name,
            kind,
            url,
            username: el.attr("username").unwrap_or("").to_string(),
            password: el.attr("password").unwrap_or("").to_string(),
            properties,
            pool: ctx.optional(el, "pool"),
        };
        out.push((link, ctx.site(el)));
    }
    out
}

pub(crate) fn parse_file_links(ctx: &mut Ctx<'_>, root: &Element) -> Vec<(FileLink, Site)> {
    ctx.allow(root, "<file-links>", &schema::FILE_LINKS);
    let mut out = Vec::new();
    for el in root.children_named("link") {
        let Some(name) = ctx.required(el, "file <link>", "name") else {
            continue;
        };
        let subject = format!("file link \"{name}\"");
        ctx.allow(el, &subject, &schema::FILE_LINK);
        let kind = ctx.required(el, &subject, "type").and_then(|t| {
            match t.to_ascii_uppercase().as_str() {
                "LOCAL" => Some(FileKind::Local),
                "SFTP" => Some(FileKind::Sftp),
                "HDFS" => Some(FileKind::Hdfs),
                _ => {
                    ctx.error(
                        el,
                        format!("{subject} has unknown type \"{t}\": expected LOCAL, SFTP or HDFS"),
                    );
                    None
                }
            }
        });
        let port = ctx.number_attr(el, &subject, "port", -1i32, -1);
        let Some(kind) = kind else { continue };
        let link = FileLink {
            name,
            kind,
            host: el.attr("host").unwrap_or("").trim().to_string(),
            port,
            username: el.attr("username").unwrap_or("").to_string(),
            password: el.attr("password").unwrap_or("").to_string(),
            description: el.attr("desc").unwrap_or("").trim().to_string(),
        };
        out.push((link, ctx.site(el)));
    }
    out
}

/// The `local` file link every set has, unless a file defines its own.
pub(crate) fn implied_local() -> FileLink {
    FileLink {
        name: "local".to_string(),
        kind: FileKind::Local,
        host: "local".to_string(),
        port: -1,
        username: String::new(),
        password: String::new(),
        description: "implied: the worker's local file system".to_string(),
    }
}

/// `pools.xml`: `<pools><pool name="warehouse" slots="4" desc="..."/></pools>`.
pub(crate) fn parse_pools(ctx: &mut Ctx<'_>, root: &Element) -> Vec<(Pool, Site)> {
    ctx.allow(root, "<pools>", &schema::POOLS);
    let mut out = Vec::new();
    for el in root.children_named("pool") {
        let Some(name) = ctx.required(el, "<pool>", "name") else {
            continue;
        };
        ctx.safe_name(el, "pool", &name);
        let subject = format!("pool \"{name}\"");
        ctx.allow(el, &subject, &schema::POOL);
        if ctx.required(el, &subject, "slots").is_none() {
            continue;
        }
        let slots = ctx.number_attr(el, &subject, "slots", 0u32, 0);
        let pool = Pool {
            name,
            slots,
            description: el.attr("desc").unwrap_or("").trim().to_string(),
        };
        out.push((pool, ctx.site(el)));
    }
    out
}
