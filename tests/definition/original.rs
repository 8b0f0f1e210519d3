//! The original project's files, read where they lie in `../shared` (never copied in).

use super::*;

fn original() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/akkaflow-original");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("AKKAFLOW_REQUIRE_ORIGINAL_FIXTURES").as_deref() == Ok("1") {
        panic!(
            "AKKAFLOW_REQUIRE_ORIGINAL_FIXTURES=1 but {} does not exist",
            dir.display()
        );
    }
    eprintln!(
        "skipping: {} not found (set AKKAFLOW_REQUIRE_ORIGINAL_FIXTURES=1 to require it)",
        dir.display()
    );
    None
}

#[test]
fn original_v2_12_1_files_load_as_one_set() {
    let Some(dir) = original() else { return };
    let set = load_paths(&[dir.join("v2.12.1")])
        .unwrap_or_else(|d| panic!("v2.12.1 refused:\n{}", render(&d)));
    assert!(set.warnings.is_empty(), "{}", render(&set.warnings));
    assert_eq!(
        names(&set),
        [
            "job_1",
            "job_2",
            "job_combine",
            "job_combine_day",
            "node_types",
            "test"
        ]
    );
    assert_eq!(set.db_links.len(), 1);
    assert_eq!(
        set.file_links
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["local", "s1", "hdfs"]
    );

    let nt = workflow(&set, "node_types");
    assert_eq!(
        nt.mail_level,
        [MailLevel::Succeeded, MailLevel::Failed, MailLevel::Killed]
    );
    assert_eq!(nt.start().unwrap().name, "开始");
    assert!(
        matches!(action(nt, "脚本执行节点"), ActionKind::Script { code, .. } if code.as_str() == "#!/usr/bin/perl\nprint \"execute perl\";")
    );
    assert!(
        matches!(action(nt, "监控文件大小"), ActionKind::FileMonitor(m) if m.dir.as_str() == "/etc" && m.pattern.as_str() == "profile" && m.min_each_size_bytes == 1)
    );
    assert!(
        matches!(action(nt, "文本到数据"), ActionKind::Transfer(Transfer::Copy { source: TransferSource::File { delimiter, .. }, .. }) if delimiter == "aaaaaa")
    );
    assert!(
        matches!(action(nt, "自定义邮件节点"), ActionKind::Email { body_html, .. } if body_html.as_str().starts_with("<table>\n    <tr><td>标题1</td>"))
    );
    let combine = workflow(&set, "job_combine").coordinator.as_ref().unwrap();
    assert_eq!(
        (combine.cron.as_deref(), combine.depends.as_slice()),
        (None, &["job_1".to_string(), "job_2".to_string()][..])
    );
    assert_eq!(
        workflow(&set, "job_combine_day")
            .coordinator
            .as_ref()
            .unwrap()
            .cron
            .as_deref(),
        Some("0 1 * * *")
    );
    match action(workflow(&set, "job_1"), "script") {
        ActionKind::Script { code, .. } => assert!(code
            .as_str()
            .starts_with("for i in `seq 0 ${param:cnt}`;do\n    sleep 6")),
        other => panic!("{other:?}"),
    }
}

/// Each legacy file: the errors it is refused with (empty: it loads).
const LEGACY: &[(&str, &[(u32, &str)])] = &[
    ("coordinator/example/coor_import_item.xml", &[]),
    ("coordinator/example/coor_import_order.xml", &[]),
    ("coordinator/example/coor_join_order_and_item.xml", &[]),
    ("coordinator/example/coor_loop_job.xml", &[]),
    ("coordinator/example/coor_parall_sum.xml", &[]),
    ("coordinator/example/coor_test.xml", &[]),
    ("coordinator/system/coor_rm_tmp_file.xml", &[]),
    ("workflow/example/wf_import_item.xml", &[
        (36, "<target type=\"MYSQL\"> of <transfer> of action \"import\" has an inline connection (jdbc-url, username, password), which is not supported: connections and their passwords live only in db_links.xml; define a link there and write type=\"DB\" db-link=\"name\""),
        (59, "<source type=\"MYSQL\"> of <data-monitor> of action \"data_monitor\" has an inline connection, which is not supported: connections and their passwords live only in db_links.xml; define a link there and write type=\"SQL\" db-link=\"name\""),
        (62, "legacy <min-threshold> in <data-monitor> of action \"data_monitor\" is not supported: it was replaced by <min>; write <min type="),
        (63, "legacy <max-threshold> in <data-monitor> of action \"data_monitor\" is not supported: it was replaced by <max>; write <max type="),
    ]),
    ("workflow/example/wf_import_order.xml", &[
        (62, "<sql> of action \"create_if_not_exist_table\" has an inline connection (type, jdbc-url, username, password), which is not supported: connections and their passwords live only in db_links.xml; define a link there and write <sql db-link=\"name\">"),
        (77, "<target type=\"MYSQL\"> of <transfer> of action \"import_2_mysql\" has an inline connection"),
        (87, "<source type=\"MYSQL\"> of <data-monitor> of action \"data_monitor\" has an inline connection"),
        (90, "legacy <min-threshold>"),
        (91, "legacy <max-threshold>"),
    ]),
    ("workflow/example/wf_join_order_and_item.xml", &[
        (5, "<sql> of action \"join_sql\" has an inline connection"),
        (19, "<source type=\"MYSQL\"> of <data-monitor> of action \"data_monitor\" has an inline connection"),
        (22, "legacy <min-threshold>"),
        (23, "legacy <max-threshold>"),
    ]),
    ("workflow/example/wf_loop_job.xml", &[
        (3, "cycle in workflow \"循环工作流\": 步骤1 -> 步骤2 -> 步骤1: a workflow may not loop; to try an action again use retry-times and interval"),
    ]),
    ("workflow/example/wf_parall_sum.xml", &[]),
    ("workflow/example/wf_test.xml", &[
        (8, "<source type=\"MYSQL\"> of <data-monitor> of action \"data_monitor\" has an inline connection"),
        (11, "legacy <min-threshold>"),
        (12, "legacy <max-threshold>"),
    ]),
    ("workflow/system/wf_rm_tmp_file.xml", &[]),
];

#[test]
fn original_legacy_files_load_or_are_refused_precisely() {
    let Some(dir) = original() else { return };
    let legacy = dir.join("legacy");
    let diags = load_paths(std::slice::from_ref(&legacy)).unwrap_err();
    let mut listed: Vec<&str> = LEGACY.iter().map(|(f, _)| *f).collect();
    listed.sort();
    let mut on_disk = Vec::new();
    for kind in ["coordinator", "workflow"] {
        for group in ["example", "system"] {
            for e in std::fs::read_dir(legacy.join(kind).join(group)).unwrap() {
                on_disk.push(format!(
                    "{kind}/{group}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    on_disk.sort();
    assert_eq!(
        on_disk, listed,
        "every legacy file has its expectation here"
    );
    for (file, expected) in LEGACY {
        let path = legacy.join(file);
        let mine: Vec<&Diagnostic> = errors(&diags)
            .into_iter()
            .filter(|d| d.file == path)
            .collect();
        assert_eq!(mine.len(), expected.len(), "{file}:\n{}", render(&diags));
        for (d, (line, part)) in mine.iter().zip(expected.iter()) {
            assert_eq!(d.line, *line, "{file}: {d}");
            assert!(
                d.message.contains(part),
                "{file}: `{}` does not contain `{part}`",
                d.message
            );
        }
    }
    // What is accepted with a caveat says so.
    let warned: Vec<(String, u32)> = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| {
            (
                d.file.strip_prefix(&legacy).unwrap().display().to_string(),
                d.line,
            )
        })
        .collect();
    assert_eq!(
        warned,
        [
            ("coordinator/example/coor_loop_job.xml".to_string(), 5),
            ("coordinator/example/coor_test.xml".to_string(), 1),
            ("coordinator/system/coor_rm_tmp_file.xml".to_string(), 3),
            ("workflow/example/wf_import_item.xml".to_string(), 9),
            ("workflow/example/wf_import_order.xml".to_string(), 8),
        ]
    );
}

#[test]
fn original_legacy_files_that_load_work_with_their_coordinators() {
    let Some(dir) = original() else { return };
    let legacy = dir.join("legacy");
    let files = [
        "workflow/example/wf_parall_sum.xml",
        "coordinator/example/coor_parall_sum.xml",
        "workflow/system/wf_rm_tmp_file.xml",
        "coordinator/system/coor_rm_tmp_file.xml",
    ];
    let paths: Vec<PathBuf> = files.iter().map(|f| legacy.join(f)).collect();
    let set = load_paths(&paths).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(set.warnings.len(), 1, "{}", render(&set.warnings));
    assert!(set.warnings[0]
        .message
        .contains("cron `0 * * * * *` has 6 fields"));

    let rm = workflow(&set, "wf_rm_tmp_file");
    let c = rm.coordinator.as_ref().unwrap();
    assert_eq!((c.enabled, c.cron.as_deref()), (true, Some("0 * * * *")));
    assert_eq!(c.start_time.unwrap().to_string(), "2016-09-10 10:00:00");
    assert_eq!(c.end_time.unwrap().to_string(), "2018-09-10 10:00:00");
    assert_eq!(
        (c.params[0].name.as_str(), c.params[0].value.as_str()),
        ("interval", "60")
    );

    let sum = workflow(&set, "wf_parall_sum");
    assert_eq!(sum.instance_limit, 4);
    assert_eq!(sum.coordinator.as_ref().unwrap().params[0].name, "stadate");
    let NodeKind::Action(dm) = &sum.node("data_monitor").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (
            dm.host.as_deref(),
            dm.retry_times,
            dm.interval_secs,
            dm.timeout_secs
        ),
        (Some("127.0.0.1"), 2, 8, Some(500))
    );
    match &dm.kind {
        ActionKind::DataMonitor(m) => {
            assert!(
                matches!(&m.source, DataSource::Command { command } if command.as_str() == "wc -l /tmp/num.txt | awk '{print $1}'")
            );
            assert_eq!(
                (m.category.as_deref(), m.source_name.as_deref()),
                (Some("log"), Some("parall-sum"))
            );
        }
        other => panic!("{other:?}"),
    }
}

/// `akkaflow upgrade` turns the legacy corpus into a set that loads: everything but the looping
/// workflow (and the coordinator folded into it) comes over, the rest of each file unchanged.
#[test]
fn original_legacy_files_upgrade_to_a_set_that_validates() {
    let Some(dir) = original() else { return };
    let legacy = dir.join("legacy");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let report = akkaflow::definition::upgrade::upgrade(&legacy, &out).unwrap();

    let manual: Vec<(String, u32, &str)> = report
        .manual
        .iter()
        .map(|n| (n.file.display().to_string(), n.line, n.message.as_str()))
        .collect();
    assert_eq!(manual.len(), 2, "{manual:#?}");
    assert_eq!(
        (manual[0].0.as_str(), manual[0].1),
        ("coordinator/example/coor_loop_job.xml", 1)
    );
    assert!(manual[0]
        .2
        .contains("workflow/example/wf_loop_job.xml, which is not written"));
    assert_eq!(
        (manual[1].0.as_str(), manual[1].1),
        ("workflow/example/wf_loop_job.xml", 3)
    );
    assert!(
        manual[1].2.contains(
            "a workflow may not loop; to try an action again use retry-times and interval"
        ),
        "{}",
        manual[1].2
    );
    assert_eq!(report.folded.len(), 6, "{:?}", report.folded);
    assert_eq!(report.links.len(), 1, "one connection, one link");
    assert_eq!(
        (report.links[0].name.as_str(), report.links[0].uses),
        ("mysql_localhost_wf", 12)
    );

    // `validate OUT` passes, with every convertible workflow and its coordinator
    let set = load_paths(std::slice::from_ref(&out)).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(
        names(&set),
        [
            "wf_import_item",
            "wf_import_order",
            "wf_join_order_and_item",
            "wf_parall_sum",
            "wf_rm_tmp_file",
            "wf_test"
        ]
    );
    assert!(
        set.warnings
            .iter()
            .all(|w| w.message.contains("size-warn-message")),
        "only the ignored legacy element is left to warn about:\n{}",
        render(&set.warnings)
    );
    let join = workflow(&set, "wf_join_order_and_item");
    let c = join.coordinator.as_ref().unwrap();
    assert_eq!(
        (c.enabled, c.cron.as_deref(), c.depends.as_slice()),
        (
            false,
            Some("*/30 * * * *"),
            &["wf_import_item".to_string(), "wf_import_order".to_string()][..]
        )
    );
    assert_eq!(c.params.len(), 4);
    let rm = workflow(&set, "wf_rm_tmp_file")
        .coordinator
        .as_ref()
        .unwrap();
    assert_eq!(
        rm.cron.as_deref(),
        Some("0 * * * *"),
        "six fields cut to five"
    );
    assert_eq!(rm.start_time.unwrap().to_string(), "2016-09-10 10:00:00");
    match action(
        workflow(&set, "wf_import_order"),
        "create_if_not_exist_table",
    ) {
        ActionKind::Sql { db_link, .. } => assert_eq!(db_link, "mysql_localhost_wf"),
        other => panic!("{other:?}"),
    }
    match action(workflow(&set, "wf_test"), "data_monitor") {
        ActionKind::DataMonitor(m) => {
            assert!(
                matches!(&m.source, DataSource::Sql { db_link, .. } if db_link == "mysql_localhost_wf")
            );
            assert!(matches!(&m.min, Some(DataSource::Num { value }) if value.as_str() == "5"));
            assert!(
                matches!(&m.max, Some(DataSource::Sql { query, .. }) if query.as_str().starts_with("select count(1)+10"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(set.db_links.len(), 1);
    assert_eq!(
        set.db_links[0].password, "root",
        "the password moved into the link"
    );

    // the rest of each file is as it was: every source line without an inline connection or a
    // threshold is in the output, in order; no password is left in a workflow
    for rel in [
        "workflow/example/wf_import_item.xml",
        "workflow/example/wf_import_order.xml",
        "workflow/example/wf_parall_sum.xml",
    ] {
        let before = std::fs::read_to_string(legacy.join(rel)).unwrap();
        let after = std::fs::read_to_string(out.join(rel)).unwrap();
        assert!(!after.contains("password"), "{rel}");
        let mut rest = after.lines();
        for line in before.lines().filter(|l| {
            !["jdbc-url", "username=", "threshold", "<target type"]
                .iter()
                .any(|w| l.contains(w))
        }) {
            assert!(
                rest.any(|o| o == line),
                "{rel}: line `{line}` is not kept as it was"
            );
        }
    }
    assert!(!out.join("workflow/example/wf_loop_job.xml").exists());
    assert!(
        !out.join("coordinator").exists(),
        "folded coordinator files are not copied"
    );
}
