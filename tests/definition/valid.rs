//! The valid fixtures: every element and attribute read into the model.

use super::*;

#[test]
fn valid_fixtures_load_with_every_element_read() {
    let set = load_valid();
    assert!(set.warnings.is_empty(), "{}", render(&set.warnings));
    let names: Vec<&str> = set
        .workflows
        .iter()
        .map(|w| w.workflow.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["daily_sales", "import_orders", "import_users", "publish"]
    );

    // Links: all five db types with properties; `local` implied next to the two file links.
    let kinds: Vec<(&str, DbKind)> = set
        .db_links
        .iter()
        .map(|l| (l.name.as_str(), l.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("dw", DbKind::Mysql),
            ("reports", DbKind::Postgresql),
            ("scratch", DbKind::Sqlite),
            ("erp", DbKind::Oracle),
            ("lake_sql", DbKind::Hive)
        ]
    );
    let dw = &set.db_links[0];
    assert_eq!(
        (dw.url.as_str(), dw.username.as_str(), dw.password.as_str()),
        ("jdbc:mysql://db.internal:3306/dw", "etl", "s3cret")
    );
    assert_eq!(
        dw.properties,
        [
            ("useSSL".into(), "false".into()),
            ("characterEncoding".into(), "UTF-8".into())
        ]
    );
    let files: Vec<(&str, FileKind, i32)> = set
        .file_links
        .iter()
        .map(|l| (l.name.as_str(), l.kind, l.port))
        .collect();
    assert_eq!(
        files,
        [
            ("partner_sftp", FileKind::Sftp, 22),
            ("lake", FileKind::Hdfs, 8020),
            ("local", FileKind::Local, -1)
        ]
    );

    let ds = workflow(&set, "daily_sales");
    assert_eq!(
        (
            ds.creator.as_str(),
            ds.description.as_str(),
            ds.dir.as_str()
        ),
        ("Ana", "daily sales load", "/dw/sales")
    );
    assert_eq!(
        ds.mail_level,
        [MailLevel::Succeeded, MailLevel::Failed, MailLevel::Killed]
    );
    assert_eq!(ds.mail_receivers, ["ana@example.com", "ops@example.com"]);
    assert_eq!(ds.instance_limit, 3);
    let c = ds.coordinator.as_ref().unwrap();
    assert!(c.enabled);
    assert_eq!(c.cron.as_deref(), Some("30 1 * * *"));
    assert_eq!(c.timezone.as_deref(), Some("Asia/Shanghai"));
    assert_eq!(c.depends, ["import_users", "import_orders"]);
    let day = |y, m, d| {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    };
    assert_eq!(
        (c.start_time, c.end_time),
        (Some(day(2019, 1, 1)), Some(day(2090, 12, 29)))
    );
    let params: Vec<(&str, &str)> = c
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        params,
        [
            ("stadate", "${time.today|yyyy-MM-dd|-1 day}"),
            ("month", "${time.today|yyyyMM}"),
            ("table", "sales_${param:month}")
        ]
    );
    let decls: Vec<(&str, Option<&str>)> = ds
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.default.as_ref().map(|t| t.as_str())))
        .collect();
    assert_eq!(decls, [("region", Some("north")), ("limit", None)]);

    // Control nodes.
    assert!(matches!(&ds.start().unwrap().kind, NodeKind::Start { to } if to == "fan_out"));
    assert_eq!(ds.start().unwrap().line, 23);
    assert!(
        matches!(&ds.node("fan_out").unwrap().kind, NodeKind::Fork { paths } if paths == &["wait_for_file", "prepare"])
    );
    assert!(matches!(&ds.node("gather").unwrap().kind, NodeKind::Join { to } if to == "load"));
    assert_eq!(ds.predecessors("gather"), ["wait_for_file", "prepare"]);
    match &ds.node("alert_late").unwrap().kind {
        NodeKind::Kill { message } => {
            assert_eq!(message.as_str(), "files for ${param:stadate} never arrived")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&ds.node("failed").unwrap().kind, NodeKind::Kill { message } if message.as_str().is_empty())
    );

    // Action attributes.
    let NodeKind::Action(wait) = &ds.node("wait_for_file").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (wait.retry_times, wait.interval_secs, wait.timeout_secs),
        (12, 300, Some(60))
    );
    assert_eq!(
        (
            wait.ok.as_str(),
            wait.error.as_deref(),
            wait.description.as_str()
        ),
        ("gather", Some("alert_late"), "sensor")
    );
    let NodeKind::Action(prepare) = &ds.node("prepare").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (prepare.host.as_deref(), prepare.is_ignore),
        (Some("etl-01"), false)
    );
    let NodeKind::Action(load) = &ds.node("load").unwrap().kind else {
        panic!()
    };
    assert_eq!(load.host, None, "host=\"-1\" is any worker");

    // Kinds.
    match action(ds, "wait_for_file") {
        ActionKind::FileMonitor(m) => {
            assert_eq!(
                (m.file_link.as_str(), m.dir.as_str(), m.pattern.as_str()),
                ("partner_sftp", "/drop/${param:stadate}", "sales_*.csv")
            );
            assert_eq!((m.min_num, m.min_each_size_bytes), (2, 1536));
            assert_eq!(
                m.warn_msg.as_ref().unwrap().as_str(),
                "sales files for ${param:stadate} are late"
            );
        }
        other => panic!("{other:?}"),
    }
    let valid_dir = fixtures().join("valid");
    match action(ds, "prepare") {
        ActionKind::Script {
            code,
            param_line,
            attachments,
        } => {
            assert_eq!(
                code.as_str(),
                "#!/usr/bin/env python3\nimport sys\nfor arg in sys.argv[1:]:\n    print(arg)"
            );
            assert_eq!(
                param_line.as_ref().unwrap().as_str(),
                "--date ${param:stadate} --region ${param:region}"
            );
            assert_eq!(
                attachments,
                &[
                    valid_dir.join("scripts/lookup.csv").display().to_string(),
                    "/etc/hosts".to_string()
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    match action(ds, "load") {
        ActionKind::Sql { db_link, sql } => {
            assert_eq!(db_link, "dw");
            assert!(
                sql.as_str()
                    .starts_with("delete from sales where ds = '${param:stadate}';\ninsert into"),
                "{}",
                sql.as_str()
            );
            assert!(sql.as_str().ends_with("amount > 0;"));
        }
        other => panic!("{other:?}"),
    }
    match action(ds, "check") {
        ActionKind::DataMonitor(m) => {
            assert!(
                matches!(&m.source, DataSource::Sql { db_link, query } if db_link == "dw" && query.as_str().starts_with("select count(1)"))
            );
            assert!(matches!(&m.min, Some(DataSource::Num { value }) if value.as_str() == "100"));
            assert!(
                matches!(&m.max, Some(DataSource::Command { command }) if command.as_str() == "echo 1000000")
            );
            assert_eq!(
                m.warn_msg.as_ref().unwrap().as_str(),
                "row count out of range"
            );
            assert_eq!(
                (m.category.as_deref(), m.source_name.as_deref()),
                (Some("dw"), Some("sales"))
            );
            assert_eq!(m.time_mark.as_ref().unwrap().as_str(), "${param:stadate}");
            assert!(!m.exceed_is_error);
        }
        other => panic!("{other:?}"),
    }
    match action(ds, "export") {
        ActionKind::Transfer(Transfer::Copy {
            source: TransferSource::Db { db_link, query },
            target:
                TransferTarget::File {
                    file_link,
                    path,
                    delimiter,
                    header: false,
                },
        }) => {
            assert_eq!(
                (db_link.as_str(), query.as_str()),
                (
                    "reports",
                    "select region, sum(amount) from sales group by region"
                )
            );
            assert_eq!(
                (file_link.as_str(), path.as_str(), delimiter.as_str()),
                ("lake", "/lake/sales/${param:stadate}.tsv", "\t")
            );
        }
        other => panic!("{other:?}"),
    }
    match action(ds, "reload") {
        ActionKind::Transfer(Transfer::Copy {
            source:
                TransferSource::File {
                    file_link,
                    path,
                    delimiter,
                    header: false,
                },
            target:
                TransferTarget::Db {
                    db_link,
                    table,
                    pre_truncate,
                    task_num,
                    pre,
                    after,
                },
        }) => {
            assert_eq!(
                (file_link.as_str(), path.as_str(), delimiter.as_str()),
                ("lake", "/lake/sales/${param:stadate}.psv", "|")
            );
            assert_eq!(
                (db_link.as_str(), table.as_str(), *pre_truncate, *task_num),
                ("scratch", "${param:table}", true, 4)
            );
            assert_eq!(
                pre.as_ref().unwrap().as_str(),
                "create table if not exists ${param:table} (region text, amount real)"
            );
            assert_eq!(after.as_ref().unwrap().as_str(), "analyze ${param:table}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(action(ds, "sqoop"), ActionKind::Transfer(Transfer::Script { code }) if code.as_str() == "sqoop export --table sales --export-dir /lake/sales")
    );
    match action(ds, "run_file") {
        ActionKind::FileExecutor {
            command,
            dir_of_file,
        } => {
            assert_eq!(command.as_str(), "scripts/cleanup.sh ${param:stadate}");
            assert_eq!(dir_of_file, &valid_dir.display().to_string());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(action(ds, "shell"), ActionKind::Shell { command } if command.as_str() == "echo \"$HOME ${HOME} ${param:stadate}\" > /tmp/daily_sales.log")
    );
    match action(ds, "comment") {
        ActionKind::Metadata(m) => {
            assert_eq!(
                (
                    m.db_link.as_str(),
                    m.table.as_str(),
                    m.from.as_ref().unwrap().as_str()
                ),
                ("dw", "sales", "staging_sales")
            );
            assert_eq!(
                m.table_comment.as_ref().unwrap().as_str(),
                "daily sales, one row per order line"
            );
            let cols: Vec<(&str, &str)> = m
                .column_comments
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(
                cols,
                [("amount", "amount in cents"), ("ds", "business date")]
            );
        }
        other => panic!("{other:?}"),
    }
    match action(ds, "notify") {
        ActionKind::Email { subject, body_html } => {
            assert_eq!(
                subject.as_ref().unwrap().as_str(),
                "sales for ${param:stadate}"
            );
            assert_eq!(
                body_html.as_str(),
                "<table>\n  <tr><td>date</td><td>${param:stadate}</td></tr>\n</table>"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(action(ds, "downstream"), ActionKind::SubWorkflow { workflow, wait } if workflow == "publish" && !wait)
    );

    // Defaults, the <workflow> root spelling, natural cron, legacy <file-watcher>, <code> in a COMMAND.
    let users = workflow(&set, "import_users");
    assert_eq!(
        (
            users.creator.as_str(),
            users.dir.as_str(),
            users.instance_limit
        ),
        ("Unknown", "/tmp", 1)
    );
    assert_eq!(users.mail_level, [MailLevel::Failed]);
    assert!(users.mail_receivers.is_empty() && users.params.is_empty());
    let uc = users.coordinator.as_ref().unwrap();
    assert_eq!(
        (uc.enabled, uc.cron.as_deref(), uc.timezone.as_deref()),
        (true, Some("45 0 * * *"), None)
    );
    match action(users, "watch") {
        ActionKind::FileMonitor(m) => {
            assert_eq!(
                (m.file_link.as_str(), m.dir.as_str(), m.pattern.as_str()),
                ("local", "/data/users", "users_*.csv")
            );
            assert_eq!(
                (m.min_num, m.min_each_size_bytes, m.warn_msg.is_none()),
                (1, 0, true)
            );
        }
        other => panic!("{other:?}"),
    }
    match action(users, "count") {
        ActionKind::DataMonitor(m) => {
            assert!(
                matches!(&m.source, DataSource::Command { command } if command.as_str() == "wc -l /data/users/*.csv | tail -1")
            );
            assert!(m.min.is_none() && m.exceed_is_error);
        }
        other => panic!("{other:?}"),
    }
    let NodeKind::Action(watch) = &users.node("watch").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (
            watch.retry_times,
            watch.interval_secs,
            watch.timeout_secs,
            watch.is_ignore
        ),
        (0, 0, None, false)
    );

    // Legacy coordinators attached: the trigger shape and the list shape.
    let orders = workflow(&set, "import_orders");
    assert!(
        orders.mail_level.is_empty(),
        "mail-level=\"\" sends no completion mail"
    );
    let oc = orders.coordinator.as_ref().unwrap();
    assert_eq!(
        (oc.enabled, oc.cron.as_deref()),
        (true, Some("*/15 * * * *"))
    );
    assert_eq!(oc.depends, ["import_users"]);
    assert_eq!(
        oc.start_time,
        Some(day(2016, 9, 10) + chrono::Duration::hours(10))
    );
    assert_eq!(oc.params[0].value.as_str(), "${time.yestoday|yyyyMMdd}");
    let pc = workflow(&set, "publish").coordinator.as_ref().unwrap();
    assert_eq!(
        (pc.enabled, pc.cron.as_deref()),
        (false, Some("0 */2 * * *"))
    );
    assert_eq!(pc.depends, ["daily_sales"]);
}

#[test]
fn coordinator_params_render_for_a_scheduled_time() {
    let set = load_valid();
    let c = workflow(&set, "daily_sales").coordinator.clone().unwrap();
    let tz: chrono_tz::Tz = c.timezone.as_deref().unwrap().parse().unwrap();
    let now = tz.with_ymd_and_hms(2024, 3, 1, 1, 30, 0).unwrap();
    let values = evaluate_params(&c.params, &BTreeMap::new(), now).unwrap();
    assert_eq!(values["stadate"], "2024-02-29");
    assert_eq!(values["table"], "sales_202403");
}
