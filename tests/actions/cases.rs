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
