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
        d.starts_with(
            "cannot connect to db link `down` at mysql://etl:***@127.0.0.1:9/wf?ssl-mode=DISABLED"
        ),
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
