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

mod cases {
    use super::*;

    pub async fn sql_commits_every_statement_in_one_transaction(c: &mut Case) {
        let extra = match c.dialect() {
            Backend::Postgres => "select $$dollar; quoted$$ as x;",
            _ => "select 1 as `back;tick`;",
        };
        let wf = linear(
            "sq",
            &format!(
                r#"<action name="a"><sql db-link="dw"><![CDATA[
                  create table t (id int, s varchar(40)); -- a comment; with a semicolon
                  insert into t values (1, 'a;b'), (2, '${{param:day}}');
                  /* block; comment */
                  update t set s = 'x;y' where id = 1;
                  {extra}
                ]]></sql><ok to="end"/></action>"#
            ),
        );
        c.start(&[("sq.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("sq");
        let inst = ended(&*store, id).await;
        assert_eq!(inst.status, InstanceStatus::Succeeded, "{}", c.logs(id));
        let rows = c.link.peer.rows("select id, s from t order by id").await;
        let rows: Vec<(String, String)> = rows
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("1".to_string(), "x;y".to_string()),
                ("2".to_string(), "2024-05-01".to_string())
            ]
        );
        let logs = c.logs(id);
        assert!(
            logs.contains("statement 2 of 4 (line 2): 2 rows affected"),
            "{logs}"
        );
        assert!(
            logs.contains("statement 3 of 4 (line 4): 1 row affected"),
            "{logs}"
        );
        assert!(
            logs.contains("statement 4 of 4 (line 5): 1 row returned ("),
            "{logs}"
        );
        assert!(logs.contains("committed 4 statement(s)"), "{logs}");
        assert_eq!(
            logs.contains("MySQL commits DDL implicitly"),
            c.dialect() == Backend::Mysql,
            "{logs}"
        );
    }

    pub async fn sql_failure_rolls_back_the_statements_before_it(c: &mut Case) {
        c.link
            .peer
            .exec("create table t (id int, s varchar(10))")
            .await;
        let wf = linear(
            "sf",
            r#"<action name="a"><sql db-link="dw">
insert into t values (1, 'one');
insert into t values (2, 'two');
insert into no_such_table values (3);
            </sql><ok to="end"/></action>"#,
        );
        c.start(&[("sf.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("sf");
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
        let a = task(&*store, id, "a").await;
        let err = a.error.unwrap_or_default();
        assert!(
            err.contains("statement 3 of 3 (line 3) failed, transaction rolled back")
                && err.contains("no_such_table")
                && err.contains("insert into no_such_table values (3)"),
            "{err}"
        );
        assert_eq!(c.link.peer.int("select count(*) from t").await, 0);
    }

    pub async fn sql_kill_cancels_the_query_on_the_server_and_rolls_back(c: &mut Case) {
        c.link.peer.exec("create table t (id int)").await;
        let wf = linear(
            "sk",
            &format!(
                r#"<action name="a"><sql db-link="dw">insert into t values (1); {};</sql><ok to="end"/></action>"#,
                sleeper(c.dialect())
            ),
        );
        c.start(&[("sk.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("sk");
        let a = log_line(&*store, id, "a", "statement 2 of 2 (line 1): ").await;
        if c.dialect() != Backend::Sqlite {
            let link = &c.link;
            wait_for(LONG, "the sleeper to show on the server", || async {
                match sleepers_on_server(link).await {
                    0 => Err("not running".to_string()),
                    _ => Ok(()),
                }
            })
            .await;
        }
        c.env.ok(&["task", "kill", &a.id.to_string()]);
        let inst = ended(&*store, id).await;
        assert_eq!(inst.status, InstanceStatus::Killed);
        assert_eq!(task(&*store, id, "a").await.status, TaskStatus::Killed);
        assert_eq!(
            sleepers_on_server(&c.link).await,
            0,
            "the query is gone from the server: {}",
            c.logs(id)
        );
        assert_eq!(
            c.link.peer.int("select count(*) from t").await,
            0,
            "rolled back"
        );
        let logs = c.logs(id);
        assert!(
            logs.contains("cancelling the running statement on the server"),
            "{logs}"
        );
        assert!(logs.contains("stopped: transaction rolled back"), "{logs}");
    }

    pub async fn sql_timeout_cancels_the_query_and_fails(c: &mut Case) {
        let wf = linear(
            "st",
            &format!(
                r#"<action name="a" timeout="1"><sql db-link="dw">{}</sql><ok to="end"/></action>"#,
                sleeper(c.dialect())
            ),
        );
        c.start(&[("st.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("st");
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
        let attempts = store.task_attempt_list(id).await.unwrap();
        assert_eq!(attempts[0].outcome.as_str(), "timed_out");
        assert!(
            attempts[0]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("timed out after 1s"),
            "{attempts:?}"
        );
        assert_eq!(
            sleepers_on_server(&c.link).await,
            0,
            "the query is gone from the server"
        );
    }

    pub async fn data_monitor_checks_bounds_and_records_every_check(c: &mut Case) {
        c.link
            .peer
            .exec("create table m (id int); insert into m values (1), (2), (3)")
            .await;
        let wf = linear(
            "dm",
            r#"<action name="a"><data-monitor category="dw" source-name="m" time-mark="${param:day}">
      <source type="SQL" db-link="dw">select count(*) from m</source>
      <min type="NUM">1</min>
      <max type="SQL" db-link="dw">select count(*) + 10 from m</max>
    </data-monitor><ok to="b"/></action>
  <action name="b"><data-monitor>
      <source type="COMMAND">echo 5</source>
      <min type="SQL" db-link="dw">select count(*) from m;</min>
    </data-monitor><ok to="c"/></action>
  <action name="c"><data-monitor>
      <source type="SQL" db-link="dw">select count(*) from m</source>
      <max type="NUM">2</max>
      <warn-msg>too many rows in m on ${param:day}</warn-msg>
    </data-monitor><ok to="end"/></action>"#,
        );
        c.start(&[("dm.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("dm");
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
        assert_eq!(task(&*store, id, "a").await.status, TaskStatus::Succeeded);
        assert_eq!(task(&*store, id, "b").await.status, TaskStatus::Succeeded);
        let cerr = task(&*store, id, "c").await.error.unwrap_or_default();
        assert_eq!(
            cerr,
            "too many rows in m on 2024-05-01: value 3 is above the maximum 2"
        );
        let rows = data_monitor_rows(&c.env, id).await;
        let summary: Vec<_> = rows
            .iter()
            .map(|r| (r.0.as_str(), r.1, r.2, r.3, r.4))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a", Some(3.0), Some(1.0), Some(13.0), true),
                ("b", Some(5.0), Some(3.0), None, true),
                ("c", Some(3.0), None, Some(2.0), false),
            ]
        );
        assert_eq!(rows[0].6.as_deref(), Some("2024-05-01"));
        assert_eq!(rows[2].5, cerr);
    }

    pub async fn transfer_copies_tables_across_links_in_batches(c: &mut Case) {
        let (num, dec) = match c.dialect() {
            Backend::Postgres => ("double precision", "numeric(12, 2)"),
            Backend::Mysql => ("double", "decimal(12, 2)"),
            Backend::Sqlite => ("real", "numeric"),
        };
        c.link
            .peer
            .exec(&format!(
                "create table src (id int, name varchar(50), amount {num}, note text); \
                 create table dst (id int not null, name varchar(50), amount {dec}, note text); \
                 create table audit (what varchar(10)); \
                 insert into dst values (-1, 'junk', 0, null)"
            ))
            .await;
        seed(&c.link.peer, "src", 2500).await;
        let wf = linear(
            "tc",
            r#"<action name="a"><transfer>
      <source type="DB" db-link="dw">src</source>
      <target type="DB" db-link="side" table="copy" task-num="3" is-pre-truncate="true"/>
    </transfer><ok to="b"/></action>
  <action name="b"><transfer>
      <source type="DB" db-link="side">select id, name, amount, note from copy where id &lt;= 2000</source>
      <target type="DB" db-link="dw" table="dst" task-num="3" is-pre-truncate="true">
        <pre>insert into audit values ('pre')</pre>
        <after>insert into audit values ('after');</after>
      </target>
    </transfer><ok to="end"/></action>"#,
        );
        c.start(&[("tc.xml", &wf)], "");
        let store = c.env.store().await;
        for run in 1..=2 {
            let id = c.trigger("tc");
            let inst = ended(&*store, id).await;
            assert_eq!(
                inst.status,
                InstanceStatus::Succeeded,
                "run {run}: {}",
                c.logs(id)
            );
            let logs = c.logs(id);
            assert!(
                logs.contains("copied 2500 rows in 25 batch(es) to table \"copy\""),
                "{logs}"
            );
            let dst = match c.dialect() {
                Backend::Mysql => "`dst`",
                _ => "\"dst\"",
            };
            assert!(
                logs.contains(&format!("copied 2000 rows in 20 batch(es) to table {dst}")),
                "{logs}"
            );
            assert!(logs.contains("SQLite takes one writer at a time"), "{logs}");
            if run == 1 {
                // the created table keeps the source's types
                assert!(
                    logs.contains(
                        "created missing table: CREATE TABLE \"copy\" (\"id\" INT, \"name\" "
                    ),
                    "{logs}"
                );
                if c.dialect() != Backend::Sqlite {
                    assert!(logs.contains("\"amount\" DOUBLE, \"note\" TEXT)"), "{logs}");
                }
            }
            if c.dialect() != Backend::Sqlite {
                assert!(logs.contains("(per writer: "), "{logs}");
            }
        }
        let side = &c.side.peer;
        assert_eq!(side.int("select count(*) from copy").await, 2500);
        assert_eq!(side.int("select sum(id) from copy").await, 2500 * 2501 / 2);
        assert_eq!(
            side.int("select count(*) from copy where note is null")
                .await,
            2500 / 7
        );
        let dw = &c.link.peer;
        assert_eq!(dw.int("select count(*) from dst").await, 2000);
        assert_eq!(dw.int("select sum(id) from dst").await, 2000 * 2001 / 2);
        assert_eq!(
            dw.int("select count(*) from dst where note is null").await,
            2000 / 7
        );
        assert_eq!(
            dw.text("select note from dst where id = 1")
                .await
                .as_deref(),
            Some("note '1' 名字")
        );
        assert_eq!(
            dw.int("select count(*) from dst where amount = 42.5").await,
            20
        );
        let audit: Vec<_> = dw
            .rows("select what from audit")
            .await
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect();
        assert_eq!(audit, vec!["pre", "after", "pre", "after"]);
    }

    pub async fn transfer_round_trips_delimited_files(c: &mut Case) {
        let input: Vec<String> = (1..=1000)
            .map(|i| {
                let note = if i % 10 == 0 {
                    String::new()
                } else {
                    format!("n{i} 中")
                };
                format!("{i}---name {i}---{note}")
            })
            .collect();
        c.env.write("in/orders.txt", &(input.join("\n") + "\n"));
        let dir = c.env.path().display().to_string();
        let wf = linear(
            "tf",
            &format!(
                r#"<action name="a"><transfer>
      <source type="FILE" delimited="---">{dir}/in/orders.txt</source>
      <target type="DB" db-link="dw" table="lines" task-num="2"/>
    </transfer><ok to="b"/></action>
  <action name="b"><transfer>
      <source type="DB" db-link="dw">lines</source>
      <target type="FILE" path="{dir}/out/one.txt" delimited="aaaaaa"/>
    </transfer><ok to="c"/></action>
  <action name="c"><transfer>
      <source type="FILE" path="{dir}/out/one.txt" delimited="aaaaaa"/>
      <target type="FILE" path="{dir}/out/two.tsv"/>
    </transfer><ok to="end"/></action>"#
            ),
        );
        c.start(&[("tf.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("tf");
        let inst = ended(&*store, id).await;
        assert_eq!(inst.status, InstanceStatus::Succeeded, "{}", c.logs(id));
        let dw = &c.link.peer;
        // `lines` is reserved in MySQL: the action quotes it, and so must we
        let t = if c.dialect() == Backend::Mysql {
            "`lines`"
        } else {
            "lines"
        };
        assert_eq!(dw.int(&format!("select count(*) from {t}")).await, 1000);
        assert_eq!(
            dw.int(&format!("select count(*) from {t} where col3 is null"))
                .await,
            100
        );
        // NULL (the empty third field) comes back as the explicit marker
        let mut want: Vec<String> = input
            .iter()
            .map(|l| l.replace("---", "\t").replace("\t\t", "\t\\N\t"))
            .map(|l| if l.ends_with('\t') { l + "\\N" } else { l })
            .collect();
        let mut got: Vec<String> = std::fs::read_to_string(c.env.path().join("out/two.tsv"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        let leftovers: Vec<_> = std::fs::read_dir(c.env.path().join("out"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    pub async fn transfer_kill_stops_between_batches(c: &mut Case) {
        let fifo = c.env.path().join("feed");
        let st = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success());
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
                for i in 1..=250 {
                    let _ = writeln!(f, "{i}\trow {i}");
                }
                let _ = f.flush();
                // hold the pipe open: the transfer waits for more lines until it is killed
                let _ = hold.recv_timeout(Duration::from_secs(120));
            })
        };
        let wf = linear(
            "tk",
            &format!(
                r#"<action name="a"><transfer>
      <source type="FILE">{}</source>
      <target type="DB" db-link="dw" table="k"/>
    </transfer><ok to="end"/></action>"#,
                fifo.display()
            ),
        );
        c.start(&[("tk.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("tk");
        let a = log_line(&*store, id, "a", "read 200 rows so far").await;
        let dw = &c.link.peer;
        wait_for(LONG, "two batches in the target", || async {
            match dw.rows("select count(*) from k").await[0][0].as_deref() {
                Some("200") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        c.env.ok(&["task", "kill", &a.id.to_string()]);
        let inst = ended(&*store, id).await;
        assert_eq!(inst.status, InstanceStatus::Killed);
        assert_eq!(task(&*store, id, "a").await.status, TaskStatus::Killed);
        assert_eq!(
            dw.int("select count(*) from k").await,
            200,
            "no batch after the kill"
        );
        let logs = c.logs(id);
        assert!(
            logs.contains("stopped after reading 250 rows and writing 200"),
            "{logs}"
        );
        let _ = release.send(());
        writer.join().unwrap();
    }

    pub async fn metadata_sets_comments_and_fills_in_from_lineage(c: &mut Case) {
        let setup = match c.dialect() {
            Backend::Mysql => {
                "create table src_t (id bigint not null auto_increment primary key comment 'source id', \
                   name varchar(64) not null default 'n/a' comment 'log name', ds date null) comment = 'lineage table'; \
                 create table dst_t (id bigint not null auto_increment primary key, \
                   name varchar(64) character set utf8mb4 collate utf8mb4_bin not null default 'n/a', \
                   updated timestamp not null default current_timestamp on update current_timestamp, \
                   ds date null, amount decimal(10, 2) default 1.50)"
            }
            _ => {
                "create table src_t (id bigserial primary key, name varchar(64) not null default 'n/a', ds date); \
                 comment on table src_t is 'lineage table'; \
                 comment on column src_t.id is 'source id'; \
                 comment on column src_t.name is 'log name'; \
                 create table dst_t (id bigserial primary key, name varchar(64) not null default 'n/a', \
                   updated timestamp not null default now(), ds date, amount numeric(10, 2) default 1.50)"
            }
        };
        c.link.peer.exec(setup).await;
        let definitions = "select column_name, column_type, is_nullable, column_default, extra \
             from information_schema.columns where table_schema = database() and table_name = 'dst_t' order by ordinal_position";
        let before = if c.dialect() == Backend::Mysql {
            c.link.peer.rows(definitions).await
        } else {
            vec![]
        };
        let wf = linear(
            "md",
            r#"<action name="a"><metadata table="dst_t" db-link="dw" from="src_t">
      <column-comment name="id">标识符 (it's ${param:day})</column-comment>
      <column-comment name="updated">last change</column-comment>
    </metadata><ok to="b"/></action>
  <action name="b"><metadata table="dst_t" db-link="dw">
      <table-comment>never set</table-comment>
      <column-comment name="nope">x</column-comment>
    </metadata><ok to="end"/></action>"#,
        );
        c.start(&[("md.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("md");
        assert_eq!(
            ended(&*store, id).await.status,
            InstanceStatus::Failed,
            "{}",
            c.logs(id)
        );
        assert_eq!(task(&*store, id, "a").await.status, TaskStatus::Succeeded);
        let berr = task(&*store, id, "b").await.error.unwrap_or_default();
        assert!(berr.contains("has no column `nope`"), "{berr}");
        let (table, columns) = match c.dialect() {
            Backend::Mysql => (
                "select table_comment from information_schema.tables where table_schema = database() and table_name = 'dst_t'",
                "select column_name, column_comment from information_schema.columns \
                 where table_schema = database() and table_name = 'dst_t' order by ordinal_position",
            ),
            _ => (
                "select obj_description('dst_t'::regclass, 'pg_class')",
                "select attname::text, col_description(attrelid, attnum) from pg_attribute \
                 where attrelid = 'dst_t'::regclass and attnum > 0 and not attisdropped order by attnum",
            ),
        };
        let dw = &c.link.peer;
        assert_eq!(dw.text(table).await.as_deref(), Some("lineage table"));
        let got: Vec<(String, String)> = dw
            .rows(columns)
            .await
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap_or_default()))
            .collect();
        let want: Vec<(String, String)> = [
            ("id", "标识符 (it's 2024-05-01)"),
            ("name", "log name"),
            ("updated", "last change"),
            ("ds", ""),
            ("amount", ""),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
        if c.dialect() == Backend::Mysql {
            assert_eq!(
                dw.rows(definitions).await,
                before,
                "MODIFY COLUMN kept every definition"
            );
        }
    }
}

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
mod local {
    use super::*;

    async fn local(case: &str, extra_config: &str) -> Case {
        let c = setup(Backend::Sqlite, case)
            .await
            .expect("sqlite always runs");
        if !extra_config.is_empty() {
            // replaces the short re-check `setup` wrote
            let p = c.env.path().join("akkaflow.toml");
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(
                &p,
                text.replace("file_monitor_recheck_secs = 0.3", extra_config),
            )
            .unwrap();
        }
        c
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_monitor_waits_for_late_files_through_retries() {
        let mut c = local("fm_late", "").await;
        let inbox = c.env.path().join("inbox");
        c.env.write("inbox/a_1.csv", &"x".repeat(2048));
        c.env.write("inbox/other.txt", "not matched");
        let wf = linear(
            "fl",
            &format!(
                r#"<action name="a" retry-times="30" interval="1"><file-monitor>
      <file file-link="local" min-num="2" min-each-size="1K">{}/a_*.csv</file>
    </file-monitor><ok to="end"/></action>"#,
                inbox.display()
            ),
        );
        c.start(&[("fl.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("fl");
        let first = wait_for(LONG, "a failed first attempt", || async {
            let attempts = store
                .task_attempt_list(id)
                .await
                .map_err(|e| e.to_string())?;
            attempts
                .into_iter()
                .next()
                .ok_or_else(|| "no attempt yet".to_string())
        })
        .await;
        assert_eq!(first.outcome.as_str(), "failed");
        assert!(
            first
                .error
                .as_deref()
                .unwrap_or("")
                .contains("1 file(s) match")
                && first
                    .error
                    .as_deref()
                    .unwrap_or("")
                    .contains("need at least 2"),
            "{first:?}"
        );
        c.env.write("inbox/a_2.csv", &"y".repeat(4096));
        let inst = ended(&*store, id).await;
        assert_eq!(inst.status, InstanceStatus::Succeeded);
        let logs = c.logs(id);
        assert!(
            logs.contains("stable: the listing and sizes did not change"),
            "{logs}"
        );
        assert!(logs.contains("a_2.csv  4K (4096 bytes)"), "{logs}");
        crate::common::assert_invariants(&c.env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_monitor_names_small_files_and_refuses_a_changing_listing() {
        let mut c = local("fm_small", "file_monitor_recheck_secs = 1.0").await;
        c.env.write("inbox/b_1.csv", "0123456789");
        c.env.write("inbox/b_2.csv", &"z".repeat(300));
        c.env.write("grow/g_1.log", "start\n");
        let dir = c.env.path().display().to_string();
        let small = linear(
            "fs",
            &format!(
                r#"<action name="a"><file-monitor>
      <file min-each-size="100B">{dir}/inbox/b_*.csv</file>
      <warn-msg>inbox for ${{param:day}} is incomplete</warn-msg>
    </file-monitor><ok to="end"/></action>"#
            ),
        );
        let growing = linear(
            "fg",
            &format!(
                r#"<action name="a"><file-monitor><file>{dir}/grow/g_*.log</file></file-monitor><ok to="end"/></action>"#
            ),
        );
        c.start(&[("fs.xml", &small), ("fg.xml", &growing)], "");
        let store = c.env.store().await;
        let id = c.trigger("fs");
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
        let err = task(&*store, id, "a").await.error.unwrap_or_default();
        assert_eq!(
            err,
            "inbox for 2024-05-01 is incomplete: 1 file(s) smaller than min-each-size 100B: b_1.csv (10B)"
        );
        // a writer that keeps appending: the re-check sees the size change
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let grower = {
            let stop = stop.clone();
            let path = c.env.path().join("grow/g_1.log");
            std::thread::spawn(move || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = writeln!(f, "more");
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let id = c.trigger("fg");
        let status = ended(&*store, id).await.status;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        grower.join().unwrap();
        assert_eq!(status, InstanceStatus::Failed);
        let err = task(&*store, id, "a").await.error.unwrap_or_default();
        assert!(
            err.contains("changed during the 1.0 s re-check") && err.contains("g_1.log"),
            "{err}"
        );
        crate::common::assert_invariants(&c.env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn file_monitor_kill_during_the_recheck_stops_at_once() {
        let mut c = local("fm_kill", "file_monitor_recheck_secs = 120.0").await;
        c.env.write("inbox/k.csv", "x");
        let wf = linear(
            "fk",
            &format!(
                r#"<action name="a"><file-monitor><file>{}/inbox/k.csv</file></file-monitor><ok to="end"/></action>"#,
                c.env.path().display()
            ),
        );
        c.start(&[("fk.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("fk");
        let a = log_line(&*store, id, "a", "re-checking in 120.0 s").await;
        let asked = std::time::Instant::now();
        c.env.ok(&["task", "kill", &a.id.to_string()]);
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Killed);
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "not the 120 s re-check"
        );
        crate::common::assert_invariants(&c.env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn data_monitor_warns_when_exceeding_is_not_an_error_and_a_kill_records_nothing() {
        let mut c = local("dm_local", "").await;
        let wf = linear(
            "dw",
            r#"<action name="a"><data-monitor is-exceed-error="false">
      <source type="NUM">50</source><max type="NUM">10</max>
    </data-monitor><ok to="b"/></action>
  <action name="b"><data-monitor>
      <source type="COMMAND"><code>echo hello</code></source>
    </data-monitor><ok to="end"/><error to="c"/></action>
  <action name="c"><data-monitor>
      <source type="COMMAND">sleep 30; echo 1</source>
    </data-monitor><ok to="end"/></action>"#,
        );
        c.start(&[("dw.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("dw");
        let t = log_line(&*store, id, "c", "source (COMMAND): sleep 30").await;
        c.env.ok(&["task", "kill", &t.id.to_string()]);
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Killed);
        assert_eq!(task(&*store, id, "a").await.status, TaskStatus::Succeeded);
        let berr = task(&*store, id, "b").await.error.unwrap_or_default();
        assert_eq!(
            berr,
            "source (COMMAND) printed `hello`, which is not a number"
        );
        let logs = c.logs(id);
        assert!(
            logs.contains(
                "warning: value 50 is above the maximum 10 (passing: is-exceed-error=\"false\")"
            ),
            "{logs}"
        );
        let rows = data_monitor_rows(&c.env, id).await;
        let summary: Vec<_> = rows.iter().map(|r| (r.0.as_str(), r.1, r.4)).collect();
        assert_eq!(
            summary,
            vec![("a", Some(50.0), false), ("b", None, false)],
            "c was killed: no row"
        );
        crate::common::assert_invariants(&c.env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transfer_script_runs_like_a_script_and_width_mismatch_fails_clearly() {
        let mut c = local("tr_script", "").await;
        c.link.peer.exec("create table two (a text, b text)").await;
        c.env.write("three.txt", "1,2,3\n");
        let wf = linear(
            "ts",
            &format!(
                r#"<action name="a"><transfer><script><code><![CDATA[
        echo "sqoop-like import for ${{param:day}}"
      ]]></code></script></transfer><ok to="b"/></action>
  <action name="b"><transfer>
      <source type="FILE" delimited=",">{}/three.txt</source>
      <target type="DB" db-link="dw" table="two"/>
    </transfer><ok to="end"/></action>"#,
                c.env.path().display()
            ),
        );
        c.start(&[("ts.xml", &wf)], "");
        let store = c.env.store().await;
        let id = c.trigger("ts");
        assert_eq!(ended(&*store, id).await.status, InstanceStatus::Failed);
        assert!(c.logs(id).contains("sqoop-like import for 2024-05-01"));
        let berr = task(&*store, id, "b").await.error.unwrap_or_default();
        assert_eq!(
            berr,
            "the source has 3 column(s) and target table \"two\" has 2: columns are matched by position"
        );
        crate::common::assert_invariants(&c.env).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unsupported_links_fail_clearly_and_passwords_stay_hidden() {
        let mut c = local("unsupported", "").await;
        let links = r#"<link name="ora" type="ORACLE" jdbc-url="jdbc:oracle:thin:@//o:1521/XE" username="etl" password="Ora-Secret-1"/>
  <link name="down" type="MYSQL" jdbc-url="jdbc:mysql://127.0.0.1:9/wf?useSSL=false" username="etl" password="Sup3r-Secret!"/>"#;
        c.env.write(
            "xmlconfig/file_links.xml",
            r#"<file-links><link name="s1" type="SFTP" host="s1" port="22" username="root" password="Sftp-Secret"/></file-links>"#,
        );
        let wf = r#"<work-flow name="un">
  <start name="start" to="a"/>
  <action name="a"><sql db-link="ora">select 1 from dual</sql><ok to="wrong"/><error to="b"/></action>
  <action name="b"><file-monitor><file file-link="s1">/data/x*</file></file-monitor><ok to="wrong"/><error to="c"/></action>
  <action name="c"><metadata table="t" db-link="dw"><table-comment>x</table-comment></metadata><ok to="wrong"/><error to="d"/></action>
  <action name="d"><sql db-link="down">select 1</sql><ok to="wrong"/><error to="end"/></action>
  <kill name="wrong"><message>an unsupported link ran</message></kill>
  <end name="end"/>
</work-flow>"#;
        c.start(&[("un.xml", wf)], links);
        let store = c.env.store().await;
        // `un` uses no parameter, and a trigger may pass only those a workflow declares or uses
        let out = c.env.ok(&["workflow", "trigger", "un"]);
        let id = InstanceId(out.trim().parse().expect("instance id"));
        assert_eq!(
            ended(&*store, id).await.status,
            InstanceStatus::Succeeded,
            "every action failed into the next"
        );
        let err = |n: &'static str| {
            let store = store.clone();
            async move { task(&*store, id, n).await.error.unwrap_or_default() }
        };
        assert_eq!(
            err("a").await,
            "db link `ora` is ORACLE: ORACLE links are not supported by this build (only MYSQL, POSTGRESQL and SQLITE; \
             `sql` can run through a command-line client: [sql_clients] ORACLE = \"...\" in akkaflow.toml)"
        );
        assert_eq!(
            err("b").await,
            "file link `s1` is SFTP: SFTP file links are not supported by this build (only LOCAL)"
        );
        assert_eq!(
            err("c").await,
            "metadata is not supported on SQLite: it has no table or column comments (db link `dw`)"
        );
        let d = err("d").await;
        assert!(
            d.starts_with("cannot connect to db link `down` at mysql://etl:***@127.0.0.1:9/wf?ssl-mode=DISABLED"),
            "{d}"
        );
        let logs = c.logs(id);
        for secret in [
            "Sup3r-Secret",
            "Sup3r-Secret%21",
            "Ora-Secret-1",
            "Sftp-Secret",
        ] {
            assert!(
                !logs.contains(secret) && !d.contains(secret),
                "{secret} leaked:\n{logs}"
            );
        }
        crate::common::assert_invariants(&c.env).await;
    }

    /// A HIVE link with a configured client: the rendered script goes to the client as a file, the
    /// link's credentials through the environment; the client's exit code is the action's result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sql_on_a_hive_link_runs_the_configured_client() {
        let mut c = local("hive_client", "").await;
        // a real process standing in for beeline: it reads what akkaflow hands it and says so
        let client = c.env.write(
            "fake-beeline.sh",
            r#"#!/usr/bin/env bash
echo "connect $AKKAFLOW_DB_URL as $AKKAFLOW_DB_USER"
[ "$AKKAFLOW_DB_PASSWORD" = "Hive-Secret-9" ] && echo "password received"
cat "$AKKAFLOW_SQL_FILE"
grep -q "boom" "$AKKAFLOW_SQL_FILE" && { echo "Error: table boom not found" >&2; exit 2; }
exit 0
"#,
        );
        c.env.config(&format!(
            "[sql_clients]\nHIVE = \"bash {} --silent=true\"",
            client.display()
        ));
        let links = r#"<link name="hive" type="HIVE" jdbc-url="jdbc:hive2://hs2:10000/dw" username="etl" password="Hive-Secret-9"/>"#;
        let wf = r#"<work-flow name="hq" instance-limit="2">
  <param-list><param name="day" value="2024-01-01"/><param name="table" value="ok_table"/></param-list>
  <start name="start" to="a"/>
  <action name="a"><sql db-link="hive">INSERT OVERWRITE TABLE ${param:table} PARTITION (dt='${param:day}') SELECT 1;</sql><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;
        c.start(&[("hq.xml", wf)], links);
        let store = c.env.store().await;
        let ok = c.trigger("hq");
        assert_eq!(
            ended(&*store, ok).await.status,
            InstanceStatus::Succeeded,
            "{}",
            c.logs(ok)
        );
        let logs = c.logs(ok);
        for line in [
            "connect jdbc:hive2://hs2:10000/dw as etl",
            "password received",
            "INSERT OVERWRITE TABLE ok_table PARTITION (dt='2024-05-01') SELECT 1;",
        ] {
            assert!(logs.contains(line), "`{line}` missing:\n{logs}");
        }
        assert!(!logs.contains("Hive-Secret-9"), "{logs}");

        let out = c.env.ok(&[
            "workflow",
            "trigger",
            "hq",
            "--param",
            "day=2024-05-02",
            "--param",
            "table=boom",
        ]);
        let bad = InstanceId(out.trim().parse().expect("instance id"));
        assert_eq!(ended(&*store, bad).await.status, InstanceStatus::Failed);
        let a = task(&*store, bad, "a").await;
        assert_eq!(
            (a.exit_code, a.error.as_deref()),
            (Some(2), Some("exited with code 2"))
        );
        assert!(c.logs(bad).contains("Error: table boom not found"));
        crate::common::assert_invariants(&c.env).await;
    }

    /// The shipped example runs from a copy of the repository's `xmlconfig/`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn example_sqlite_etl_succeeds_in_standalone() {
        let mut env = Env::new(common::Db::Sqlite, "example")
            .await
            .expect("sqlite store");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("xmlconfig");
        for f in ["db_links.xml", "example/sqlite_etl.xml"] {
            env.write(
                &format!("xmlconfig/{f}"),
                &std::fs::read_to_string(src.join(f)).unwrap(),
            );
        }
        env.config("file_monitor_recheck_secs = 0.3");
        // synced before the role starts, as an operator would: two processes migrating one new
        // SQLite file at once race for its lock
        env.ok(&["sync", "xmlconfig"]);
        env.spawn("standalone", &["standalone", "--listen", "127.0.0.1:0"]);
        let store = env.store().await;
        let out = env.ok(&["workflow", "trigger", "sqlite_etl"]);
        let id = InstanceId(out.trim().parse().expect("instance id"));
        let inst = ended(&*store, id).await;
        assert_eq!(
            inst.status,
            InstanceStatus::Succeeded,
            "{}",
            env.ok(&["logs", &id.to_string()])
        );
        assert!(
            env.path().join("akkaflow-demo.db").exists(),
            "the link's relative path is the worker's directory"
        );
        crate::common::assert_invariants(&env).await;
    }
}

/// Transfers keep every type: for each pair of backends, a table holding each kind of column (with
/// NULLs, extreme values, fractions of a second, non-ASCII text and the characters files quote) is
/// copied into a table the transfer creates, then out to a CSV file with a header and back into a
/// table of the source's own definition; every value is compared with the source's, and the
/// created column types are checked.
mod types {
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
}
