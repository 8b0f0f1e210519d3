//! `akkaflow validate` and `akkaflow sync` through the real binary, on each backend: idempotency,
//! versioning, all-or-nothing on a bad set, dry runs, prune, links, and clear exits.

mod common;
mod support;

use common::Env;

fn wf(name: &str, echo: &str) -> String {
    format!(
        r#"<work-flow name="{name}" dir="/sync/test" creator="qa">
  <coordinator is-enabled="true"><depend-list cron="0 3 * * *"/></coordinator>
  <start name="start" to="a"/>
  <action name="a"><shell><command>echo {echo}</command></shell><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#
    )
}

const LINKS: &str = r#"<db-links>
  <link name="warehouse" type="POSTGRESQL" jdbc-url="jdbc:postgresql://db.internal:5432/dw" username="etl" password="s3cret-pw"/>
</db-links>"#;

mod cases {
    use super::*;

    pub async fn sync_twice_changes_nothing_the_second_time(env: &mut Env) {
        env.write("xmlconfig/a.xml", &wf("alpha", "1"));
        env.write("xmlconfig/sub/b.xml", &wf("beta", "1"));
        env.write("xmlconfig/db_links.xml", LINKS);
        assert_eq!(
            env.ok(&["sync", "xmlconfig"]).trim(),
            "added 2, updated 0, unchanged 0, disabled 0"
        );
        assert_eq!(
            env.ok(&["sync", "xmlconfig"]).trim(),
            "added 0, updated 0, unchanged 2, disabled 0"
        );
        let store = env.store().await;
        let alpha = store.workflow_get("alpha").await.unwrap().unwrap();
        assert_eq!(
            (alpha.version, alpha.dir.as_str(), alpha.enabled),
            (1, "/sync/test", true)
        );
        let c = store.coordinator_get("alpha").await.unwrap().unwrap();
        assert_eq!(c.cron.as_deref(), Some("0 3 * * *"));
        let listed = env.ok(&["workflow", "list"]);
        assert!(
            listed.contains("alpha") && listed.contains("beta"),
            "{listed}"
        );
    }

    pub async fn a_changed_file_bumps_the_version_and_keeps_the_old_one(env: &mut Env) {
        env.write("xmlconfig/a.xml", &wf("alpha", "1"));
        env.ok(&["sync", "xmlconfig"]);
        env.write("xmlconfig/a.xml", &wf("alpha", "2"));
        assert_eq!(
            env.ok(&["sync", "xmlconfig"]).trim(),
            "added 0, updated 1, unchanged 0, disabled 0"
        );
        let store = env.store().await;
        assert_eq!(
            store.workflow_get("alpha").await.unwrap().unwrap().version,
            2
        );
        let v1 = store
            .workflow_definition("alpha", 1)
            .await
            .unwrap()
            .expect("version 1 kept");
        let v2 = store
            .workflow_definition("alpha", 2)
            .await
            .unwrap()
            .expect("version 2 stored");
        assert!(v1.contains("echo 1") && v2.contains("echo 2"));
    }

    pub async fn a_bad_file_fails_the_whole_set_and_changes_nothing(env: &mut Env) {
        env.write("xmlconfig/a.xml", &wf("alpha", "1"));
        env.ok(&["sync", "xmlconfig"]);
        env.write("xmlconfig/a.xml", &wf("alpha", "2"));
        env.write("xmlconfig/new.xml", &wf("gamma", "1"));
        env.write(
            "xmlconfig/broken.xml",
            "<work-flow name=\"broken\">\n  <start name=\"start\" to=\"nowhere\"/>\n  <end name=\"end\"/>\n</work-flow>\n",
        );
        let out = env.run(&["sync", "xmlconfig"]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("xmlconfig/broken.xml:2:"),
            "names file and line: {stderr}"
        );
        assert!(stderr.contains("nowhere"), "{stderr}");
        let store = env.store().await;
        assert_eq!(
            store.workflow_get("alpha").await.unwrap().unwrap().version,
            1,
            "nothing changed"
        );
        assert!(
            store.workflow_get("gamma").await.unwrap().is_none(),
            "nothing added"
        );
    }

    pub async fn dry_run_reports_and_writes_nothing(env: &mut Env) {
        env.write("xmlconfig/a.xml", &wf("alpha", "1"));
        let out = env.ok(&["sync", "xmlconfig", "--dry-run"]);
        assert!(out.starts_with("added 1,"), "{out}");
        let store = env.store().await;
        assert!(store.workflow_get("alpha").await.unwrap().is_none());
        let json: serde_json::Value =
            serde_json::from_str(&env.ok(&["sync", "xmlconfig", "--json"])).unwrap();
        assert_eq!(json["added"], 1);
    }

    pub async fn prune_disables_workflows_whose_file_is_gone(env: &mut Env) {
        env.write("xmlconfig/a.xml", &wf("alpha", "1"));
        let b = env.write("xmlconfig/b.xml", &wf("beta", "1"));
        env.ok(&["sync", "xmlconfig"]);
        std::fs::remove_file(b).unwrap();
        assert_eq!(
            env.ok(&["sync", "xmlconfig"]).trim(),
            "added 0, updated 0, unchanged 1, disabled 0",
            "no prune, no change"
        );
        assert_eq!(
            env.ok(&["sync", "xmlconfig", "--prune"]).trim(),
            "added 0, updated 0, unchanged 1, disabled 1"
        );
        let store = env.store().await;
        let beta = store
            .workflow_get("beta")
            .await
            .unwrap()
            .expect("history kept");
        assert!(!beta.enabled);
        assert_eq!(
            env.ok(&["sync", "xmlconfig", "--prune"]).trim(),
            "added 0, updated 0, unchanged 1, disabled 0"
        );
        let refused = env.run(&["workflow", "trigger", "beta"]);
        assert_eq!(refused.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("disabled"));
    }

    pub async fn links_are_stored_and_the_password_never_printed(env: &mut Env) {
        env.write("xmlconfig/db_links.xml", LINKS);
        env.write("xmlconfig/a.xml", &wf("alpha", "1"));
        let out = env.run(&["sync", "xmlconfig"]);
        assert!(out.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("s3cret-pw"));
        let info = env.ok(&["workflow", "info", "alpha", "--json"]);
        assert!(!info.contains("s3cret-pw"));
        // the link exists for workers: a second sync of the same links is unchanged
        let mut tx = env.store().await.begin().await.unwrap();
        assert_eq!(
            tx.db_link_names().await.unwrap(),
            vec!["warehouse".to_string()]
        );
        tx.rollback().await.unwrap();
    }

    /// More definitions than any backend takes bound values in one statement (one event each):
    /// the sync must still be one transaction that lands them all.
    pub async fn eight_thousand_definitions_sync_in_one_go(env: &mut Env) {
        for i in 0..8000 {
            env.write(
                &format!("xmlconfig/many/w{i}.xml"),
                &format!(
                    r#"<work-flow name="w{i}"><start name="start" to="a"/><action name="a"><shell><command>true</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#
                ),
            );
        }
        assert_eq!(
            env.ok(&["sync", "xmlconfig"]).trim(),
            "added 8000, updated 0, unchanged 0, disabled 0"
        );
        let store = env.store().await;
        assert_eq!(store.workflow_list().await.unwrap().len(), 8000);
    }

    pub async fn standalone_rescan_disables_gone_files_and_shows_errors_until_fixed(env: &mut Env) {
        use common::wait_for;
        use std::time::Duration;
        const LONG: Duration = Duration::from_secs(60);
        env.write("xmlconfig/a.xml", &wf("alpha", "1"));
        env.write("xmlconfig/b.xml", &wf("beta", "1"));
        // a workflow from another directory: the rescan of xmlconfig leaves it alone
        env.write("elsewhere/c.xml", &wf("gamma", "1"));
        env.ok(&["sync", "elsewhere"]);
        let admin = support::token(env, "admin", "admin", None);
        let s = support::start(env, "standalone", &["--metrics-public"]);
        let store = env.store().await;
        let enabled = |name: &'static str| {
            let store = store.clone();
            async move {
                let w = store.workflow_get(name).await.map_err(|e| e.to_string())?;
                Ok::<_, String>(w.map(|w| (w.enabled, w.version)))
            }
        };
        assert_eq!(enabled("beta").await.unwrap(), Some((true, 1)));

        // a file that disappears disables its workflow (history kept), and the log says so
        std::fs::remove_file(env.path().join("xmlconfig/b.xml")).unwrap();
        wait_for(
            LONG,
            "beta to be disabled, and the log to say so",
            || async {
                match enabled("beta").await? {
                    // the line follows the commit
                    Some((false, 1)) if env.log("standalone").contains("its file is gone") => {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
        assert_eq!(enabled("gamma").await.unwrap(), Some((true, 1)));

        // a broken file, and a valid change in another: nothing syncs, the problem shows everywhere
        env.write(
            "xmlconfig/broken.xml",
            "<work-flow name=\"broken\">\n  <start name=\"start\" to=\"end\"/>\n",
        );
        env.write("xmlconfig/a.xml", &wf("alpha", "2"));
        let status = wait_for(LONG, "status to show the errors", || async {
            let out = env.ok(&["status"]);
            if out.contains("definitions: ") {
                Ok(out)
            } else {
                Err(out)
            }
        })
        .await;
        assert!(status.contains("running the set synced at"), "{status}");
        assert!(status.contains("broken.xml"), "{status}");
        assert!(status.contains("held back"), "{status}");
        assert_eq!(
            enabled("alpha").await.unwrap(),
            Some((true, 1)),
            "held back"
        );
        let json: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
        let n = json["definitions"][0]["error_count"].as_i64().unwrap();
        assert!(n >= 1, "{json}");
        let cluster = s.get("/api/v1/cluster", Some(&admin));
        assert_eq!(cluster.status, 200, "{}", cluster.text);
        assert!(
            cluster.json["definitions"][0]["errors"][0]
                .as_str()
                .unwrap()
                .contains("broken.xml"),
            "{}",
            cluster.text
        );
        let metrics = s.get("/metrics", None);
        assert!(
            metrics
                .text
                .contains(&format!("akkaflow_definitions_errors {n}\n")),
            "{}",
            metrics.text
        );
        let ui = s.get("/ui/", Some(&admin));
        assert!(
            ui.text.contains("class=\"banner\"")
                && ui.text.contains("broken.xml")
                && ui.text.contains("held back"),
            "{}",
            ui.text
        );

        // fixed: the held-back change syncs and the problem is gone
        std::fs::remove_file(env.path().join("xmlconfig/broken.xml")).unwrap();
        wait_for(LONG, "alpha's change to sync", || async {
            match enabled("alpha").await? {
                Some((true, 2)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        let status = env.ok(&["status"]);
        assert!(!status.contains("definitions: "), "{status}");
        assert!(s
            .get("/metrics", None)
            .text
            .contains("akkaflow_definitions_errors 0\n"));
        assert!(!s
            .get("/ui/", Some(&admin))
            .text
            .contains("class=\"banner\""));
    }
}

e2e!(
    eight_thousand_definitions_sync_in_one_go,
    sync_twice_changes_nothing_the_second_time,
    a_changed_file_bumps_the_version_and_keeps_the_old_one,
    a_bad_file_fails_the_whole_set_and_changes_nothing,
    dry_run_reports_and_writes_nothing,
    prune_disables_workflows_whose_file_is_gone,
    links_are_stored_and_the_password_never_printed,
    standalone_rescan_disables_gone_files_and_shows_errors_until_fixed,
);

#[test]
fn validate_needs_no_database_and_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ok.xml"), wf("alpha", "1")).unwrap();
    std::fs::write(
        dir.path().join("bad.xml"),
        "<work-flow name=\"bad\">\n  <start name=\"start\" to=\"a\"/>\n  <action name=\"a\"><shell><command>x</command></shell></action>\n  <action name=\"a\"><shell><command>y</command></shell><ok to=\"end\"/></action>\n  <end name=\"end\"/>\n</work-flow>\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["validate", "."])
        .current_dir(dir.path())
        .env(
            "AKKAFLOW_DATABASE_URL",
            "mysql://nobody:pw@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.xml:3:"), "missing <ok>: {stderr}");
    assert!(stderr.contains("bad.xml:4:"), "duplicate name: {stderr}");
    std::fs::remove_file(dir.path().join("bad.xml")).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["validate", ".", "--json"])
        .current_dir(dir.path())
        .env(
            "AKKAFLOW_DATABASE_URL",
            "mysql://nobody:pw@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["valid"], true);
}

#[test]
fn an_unreachable_database_is_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "mysql://akkaflow:secretpw@127.0.0.1:1/none",
        "postgres://akkaflow:secretpw@127.0.0.1:1/none",
        "oracle://x",
    ] {
        let out = std::process::Command::new(common::BIN)
            .args(["workflow", "list"])
            .current_dir(dir.path())
            .env("AKKAFLOW_DATABASE_URL", url)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            !stderr.contains("secretpw"),
            "no password in the message: {stderr}"
        );
        assert!(!stderr.contains("panicked"));
    }
}
