//! The data actions (sql, data-monitor, file-monitor, transfer, metadata) end to end: workflows are
//! synced into a temporary SQLite store and run by the real binary (`akkaflow standalone`), against
//! links that point at real databases: an SQLite file, and a fresh MariaDB/MySQL or PostgreSQL
//! database per test from the testkit when `AKKAFLOW_TEST_MYSQL_URL` / `AKKAFLOW_TEST_POSTGRES_URL`
//! are set (else the case prints a skip line, or fails when `AKKAFLOW_REQUIRE_BACKENDS` names the
//! backend).
//!
//! Results are checked in the link databases and in akkaflow's own tables afterwards.

mod common;

use std::time::Duration;

use akkaflow::state::{InstanceId, InstanceStatus, TaskStatus};
use akkaflow::store::{LogQuery, Store, TaskRow};
use common::{ended, task, wait_for, Env};
use sqlx::Row;

const LONG: Duration = Duration::from_secs(60);

/// Which database a link points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Mysql,
    Postgres,
}

/// A direct connection to a link's database, for setting up and checking.
enum Peer {
    Sqlite(sqlx::SqlitePool),
    Mysql(sqlx::MySqlPool),
    Postgres(sqlx::PgPool),
}

impl Peer {
    /// Runs statements (several allowed).
    async fn exec(&self, sql: &str) {
        let r = match self {
            Peer::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Peer::Mysql(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Peer::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Every row as text.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        fn texts<R: Row>(r: &R) -> Vec<Option<String>>
        where
            for<'a> Option<String>: sqlx::Decode<'a, R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            (0..r.len())
                .map(|i| r.try_get_unchecked::<Option<String>, _>(i).unwrap())
                .collect()
        }
        let r = match self {
            Peer::Sqlite(p) => sqlx::raw_sql(sql)
                .fetch_all(p)
                .await
                .map(|rows| rows.iter().map(texts).collect()),
            Peer::Mysql(p) => sqlx::raw_sql(sql)
                .fetch_all(p)
                .await
                .map(|rows| rows.iter().map(texts).collect()),
            Peer::Postgres(p) => sqlx::raw_sql(sql)
                .fetch_all(p)
                .await
                .map(|rows| rows.iter().map(texts).collect()),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn text(&self, sql: &str) -> Option<String> {
        self.rows(sql)
            .await
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten())
    }

    async fn int(&self, sql: &str) -> i64 {
        let t = self
            .text(sql)
            .await
            .unwrap_or_else(|| panic!("{sql}: NULL"));
        t.parse::<f64>().unwrap_or_else(|_| panic!("{sql}: {t}")) as i64
    }
}

/// A link the workflows use, with a peer connection to its database.
struct Link {
    backend: Backend,
    /// The `<link>` element for `db_links.xml`.
    xml: String,
    peer: Peer,
}

/// A fresh SQLite file link in the environment's directory.
async fn sqlite_link(env: &Env, name: &'static str) -> Link {
    let path = env.path().join(format!("{name}.db"));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = common::sqlite_pool(&url).await;
    sqlx::raw_sql("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await
        .unwrap();
    Link {
        backend: Backend::Sqlite,
        xml: format!(
            r#"<link name="{name}" type="SQLITE" jdbc-url="jdbc:sqlite:{}" username="" password=""/>"#,
            path.display()
        ),
        peer: Peer::Sqlite(pool),
    }
}

/// A fresh database on the backend's server (from the testkit: `None`, with a printed line, when
/// the backend is not configured) and a JDBC link to it, so the URL translation runs too.
async fn server_link(backend: Backend, case: &str, name: &str) -> Option<Link> {
    let (kit, scheme, default_port) = match backend {
        Backend::Sqlite => unreachable!("sqlite links need an env"),
        Backend::Mysql => (akkaflow::store::Backend::Mysql, "mysql", 3306),
        Backend::Postgres => (akkaflow::store::Backend::Postgres, "postgresql", 5432),
    };
    let url = akkaflow::testkit::fresh_database_url(kit, case).await?;
    let u = url::Url::parse(&url).unwrap();
    let host = u.host_str().unwrap_or("127.0.0.1");
    let port = u.port().unwrap_or(default_port);
    let db = u.path().trim_start_matches('/');
    let user = percent_decode(u.username());
    let pass = percent_decode(u.password().unwrap_or(""));
    let xml = match backend {
        Backend::Mysql => format!(
            r#"<link name="{name}" type="MYSQL" jdbc-url="jdbc:{scheme}://{host}:{port}/{db}?useSSL=false" username="{user}" password="{pass}">
    <properties><property name="characterEncoding">UTF-8</property><property name="serverTimezone">UTC</property></properties>
  </link>"#
        ),
        _ => format!(
            r#"<link name="{name}" type="POSTGRESQL" jdbc-url="jdbc:{scheme}://{host}:{port}/{db}" username="{user}" password="{pass}"/>"#
        ),
    };
    let peer = match backend {
        Backend::Mysql => Peer::Mysql(sqlx::MySqlPool::connect(&url).await.unwrap()),
        _ => Peer::Postgres(sqlx::PgPool::connect(&url).await.unwrap()),
    };
    Some(Link { backend, xml, peer })
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

/// The case's environment: a SQLite store, the link under test (`dw`) and a second SQLite link
/// (`side`) for copies across link types.
struct Case {
    env: Env,
    link: Link,
    side: Link,
    /// Workflows that take `day` (a trigger may give only the parameters a workflow uses).
    with_day: Vec<String>,
}

async fn setup(backend: Backend, case: &str) -> Option<Case> {
    let env = Env::new(common::Db::Sqlite, case)
        .await
        .expect("sqlite store");
    env.config("transfer_batch_rows = 100\nfile_monitor_recheck_secs = 0.3");
    let link = match backend {
        Backend::Sqlite => sqlite_link(&env, "dw").await,
        other => server_link(other, case, "dw").await?,
    };
    let side = sqlite_link(&env, "side").await;
    Some(Case {
        env,
        link,
        side,
        with_day: Vec::new(),
    })
}

impl Case {
    /// Writes `db_links.xml` and the workflows, syncs, and starts `standalone`.
    fn start(&mut self, workflows: &[(&str, &str)], extra_links: &str) {
        let links = format!(
            "<db-links>\n  {}\n  {}\n  {extra_links}\n</db-links>\n",
            self.link.xml, self.side.xml
        );
        self.env.write("xmlconfig/db_links.xml", &links);
        self.with_day = workflows
            .iter()
            .filter(|(_, xml)| xml.contains("param:day"))
            .filter_map(|(_, xml)| xml.split("name=\"").nth(1)?.split('"').next())
            .map(str::to_string)
            .collect();
        self.env.sync(workflows);
        self.env.spawn(
            "standalone",
            &["standalone", "--slots", "4", "--listen", "127.0.0.1:0"],
        );
    }

    fn trigger(&self, workflow: &str) -> InstanceId {
        let mut args = vec!["workflow", "trigger", workflow];
        if self.with_day.iter().any(|w| w == workflow) {
            args.extend(["--param", "day=2024-05-01"]);
        }
        let out = self.env.ok(&args);
        InstanceId(out.trim().parse().expect("instance id"))
    }

    fn logs(&self, id: InstanceId) -> String {
        self.env.ok(&["logs", &id.to_string()])
    }

    fn dialect(&self) -> Backend {
        self.link.backend
    }
}

fn linear(name: &str, actions: &str) -> String {
    format!(
        r#"<work-flow name="{name}" instance-limit="5">
  <param-list><param name="day" value="2024-01-01"/></param-list>
  <start name="start" to="a"/>
  {actions}
  <end name="end"/>
</work-flow>"#
    )
}

/// Waits until the task's log has a line containing `needle`.
async fn log_line(store: &dyn Store, id: InstanceId, node: &str, needle: &str) -> TaskRow {
    let needle = needle.to_string();
    wait_for(LONG, &format!("`{needle}` in {node}'s log"), || {
        let needle = needle.clone();
        async move {
            let t = task(store, id, node).await;
            let lines = store
                .task_log_read(&LogQuery {
                    task_ids: vec![t.id],
                    after: None,
                    limit: 10_000,
                    contains: None,
                })
                .await
                .map_err(|e| e.to_string())?;
            if lines.iter().any(|l| l.line.contains(&needle)) {
                Ok(t)
            } else {
                Err(format!("{:?}, {} lines", t.status, lines.len()))
            }
        }
    })
    .await
}

/// The store's `data_monitor` rows of an instance: node, value, min, max, passed, message, time mark.
type CheckRow = (
    String,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    bool,
    String,
    Option<String>,
);

async fn data_monitor_rows(env: &Env, id: InstanceId) -> Vec<CheckRow> {
    let store = env.store().await;
    store
        .data_monitor_list(id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.node,
                r.value,
                r.min_value,
                r.max_value,
                r.passed,
                r.message,
                r.time_mark,
            )
        })
        .collect()
}

/// A statement that runs until it is cancelled, per dialect.
fn sleeper(b: Backend) -> &'static str {
    match b {
        Backend::Mysql => "select sleep(30)",
        Backend::Postgres => "select pg_sleep(30)",
        // never ends on its own: only the interrupt stops it
        Backend::Sqlite => {
            "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"
        }
    }
}

/// How many sessions the server shows running the sleeper (SQLite has no server: 0).
async fn sleepers_on_server(link: &Link) -> i64 {
    match link.backend {
        Backend::Mysql => {
            link.peer
                .int("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'select sleep(30)%' AND DB = DATABASE()")
                .await
        }
        Backend::Postgres => {
            link.peer
                .int("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'select pg_sleep(30)%' AND state = 'active' AND datname = current_database()")
                .await
        }
        Backend::Sqlite => 0,
    }
}

/// Test rows `(id, name, amount, note)`: names with a quote and non-ASCII text, every 7th note NULL.
fn seed_rows(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let note = if i % 7 == 0 {
                "NULL".to_string()
            } else {
                format!("'note ''{i}'' 名字'")
            };
            format!("({i}, 'name {i}', {}.5, {note})", i % 100)
        })
        .collect()
}

async fn seed(peer: &Peer, table: &str, n: usize) {
    for chunk in seed_rows(n).chunks(500) {
        peer.exec(&format!("INSERT INTO {table} VALUES {}", chunk.join(", ")))
            .await;
    }
}

#[path = "actions/cases.rs"]
mod cases;

/// One test per link backend for each case.
macro_rules! per_backend {
    ($($case:ident),+ $(,)?) => {
        mod sqlite { per_backend!(@stamp Sqlite; $($case),+); }
        mod mysql { per_backend!(@stamp Mysql; $($case),+); }
        mod postgres { per_backend!(@stamp Postgres; $($case),+); }
    };
    (@stamp $b:ident; $($case:ident),+) => { $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let Some(mut c) = super::setup(super::Backend::$b, stringify!($case)).await else { return };
            super::cases::$case(&mut c).await;
            crate::common::assert_invariants(&c.env).await;
        }
    )+ };
}

per_backend!(
    sql_commits_every_statement_in_one_transaction,
    sql_failure_rolls_back_the_statements_before_it,
    sql_kill_cancels_the_query_on_the_server_and_rolls_back,
    sql_timeout_cancels_the_query_and_fails,
    data_monitor_checks_bounds_and_records_every_check,
    transfer_copies_tables_across_links_in_batches,
    transfer_round_trips_delimited_files,
    transfer_kill_stops_between_batches,
);

/// Metadata needs comments: MySQL and PostgreSQL only (SQLite's clear error is tested below).
mod comments {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql_metadata_sets_comments_and_fills_in_from_lineage() {
        let Some(mut c) = super::setup(super::Backend::Mysql, "metadata_mysql").await else {
            return;
        };
        super::cases::metadata_sets_comments_and_fills_in_from_lineage(&mut c).await;
        crate::common::assert_invariants(&c.env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_metadata_sets_comments_and_fills_in_from_lineage() {
        let Some(mut c) = super::setup(super::Backend::Postgres, "metadata_postgres").await else {
            return;
        };
        super::cases::metadata_sets_comments_and_fills_in_from_lineage(&mut c).await;
        crate::common::assert_invariants(&c.env).await;
    }
}

/// Cases that need no server: sensors on the local file system, and the clear failures.
#[path = "actions/local.rs"]
mod local;

/// Transfers keep every type: for each pair of backends, a table holding each kind of column (with
/// NULLs, extreme values, fractions of a second, non-ASCII text and the characters files quote) is
/// copied into a table the transfer creates, then out to a CSV file with a header and back into a
/// table of the source's own definition; every value is compared with the source's, and the
/// created column types are checked.
#[path = "actions/types.rs"]
mod types;
