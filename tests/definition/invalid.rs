//! The broken fixtures: each fails with its message at its line, and nothing else.

use super::*;

/// Each broken file, loaded with the valid links, gives exactly these errors: (line, message part).
const INVALID: &[(&str, &[(u32, &str)])] = &[
    ("bad_bool.xml", &[(3, "action \"a\": is-ignore must be true or false, not \"yes\"")]),
    ("bad_catchup.xml", &[
        (2, "<coordinator>: catchup must be latest, all or none, not \"some\""),
        (2, "max-catchup must be at least 1, not 0"),
    ]),
    ("bad_cron.xml", &[(3, "cron `61 * * * *`: minute value 61 out of range 0-59")]),
    ("bad_db_link_type.xml", &[(3, "db link \"mssql\" has unknown type \"MSSQL\"")]),
    ("bad_mail_level.xml", &[(1, "unknown mail-level \"W_DONE\"")]),
    ("bad_natural_cron.xml", &[(3, "cron `every tuesday`: expected five-field crontab")]),
    ("bad_number.xml", &[(3, "retry-times must be a whole number, not \"three\"")]),
    ("bad_offset.xml", &[(5, "bad offset `-1 week` in `${time.today|yyyyMMdd|-1 week}`: unknown unit `week`")]),
    ("bad_size.xml", &[(5, "min-each-size: bad size \"12X\"")]),
    ("bad_source_type.xml", &[(5, "has unknown type \"REST\": expected SQL, COMMAND or NUM")]),
    ("bad_time_expr.xml", &[(4, "unknown time base `tomorrow` in `${time.tomorrow|yyyy-MM-dd}`")]),
    ("bad_timezone.xml", &[(2, "unknown time zone \"Mars/Olympus_Mons\"")]),
    ("bad_transfer_type.xml", &[(5, "has unknown type \"FTP\": expected DB or FILE")]),
    ("bad_window.xml", &[(2, "start-time \"2024-13-01 00:00:00\" is not a time in the form yyyy-MM-dd HH:mm:ss")]),
    ("coord_param_order.xml", &[(4, "coordinator parameter \"table\" uses \"month\", which is not defined before it")]),
    ("cycle.xml", &[(3, "cycle in workflow \"loop\": a -> b -> a")]),
    ("duplicate_node.xml", &[(7, "duplicate node name \"a\": also used at line 3")]),
    ("empty_script.xml", &[(5, "<code> of <script> of action \"s\" is empty")]),
    ("fork_one_path.xml", &[(3, "fork \"f\" needs at least two <path> elements")]),
    ("inline_sql_connection.xml", &[(4, "<sql> of action \"q\" has an inline connection (type, jdbc-url, username, password), which is not supported: connections and their passwords live only in db_links.xml; define a link there")]),
    ("instance_limit_zero.xml", &[(1, "instance-limit must be at least 1, not 0")]),
    ("join_one_edge.xml", &[(7, "join \"j\" has 1 incoming transition(s)")]),
    ("legacy_missing_target.xml", &[(4, "coordinator \"orphan_coordinator\" triggers workflow \"ghost\", which is not defined")]),
    ("malformed_xml.xml", &[(6, "malformed xml: ill-formed document: expected `</action>`, but `</acton>` was found")]),
    ("min_threshold.xml", &[(6, "legacy <min-threshold> in <data-monitor> of action \"m\" is not supported")]),
    ("multi_problem.xml", &[
        (3, "action \"a\": timeout must be a whole number, not \"soon\""),
        (4, "unknown db-link \"nope\": define it in db_links.xml"),
        (5, "<ok> of action \"a\" goes to unknown node \"missing\""),
    ]),
    ("no_end.xml", &[(1, "workflow \"no_end\" has no <end> node")]),
    ("no_kind.xml", &[(3, "action \"a\" has no kind element")]),
    ("no_ok.xml", &[(4, "action \"load\" has no <ok> transition")]),
    ("no_start.xml", &[(1, "workflow \"no_start\" has no <start> node")]),
    ("not_a_number.xml", &[(5, "\"many\" is not a number")]),
    ("retention_days_zero.xml", &[(1, "retention-days must be at least 1, not 0")]),
    ("sql_without_db_link.xml", &[(4, "<sql> of action \"q\" has no db-link attribute")]),
    ("two_kinds.xml", &[(5, "action \"a\" has more than one kind element: <shell>, <script>")]),
    ("two_starts.xml", &[(3, "has more than one <start>: \"start\" (line 2) and \"again\"")]),
    ("unknown_db_link.xml", &[(4, "unknown db-link \"warehouse\"")]),
    ("unknown_entity.xml", &[(5, "unknown entity `&nbsp;`")]),
    ("unknown_file_link.xml", &[(5, "unknown file-link \"ftp\"")]),
    ("unknown_root.xml", &[(2, "unknown root element <job>")]),
    ("unknown_sub_workflow.xml", &[(4, "sub-workflow \"ghost\" is not defined")]),
    ("unknown_target.xml", &[(6, "<error> of action \"a\" goes to unknown node \"nowhere\"")]),
    ("unknown_upstream.xml", &[(4, "upstream workflow \"ghost\" in <depend-list> is not defined")]),
    ("unreachable.xml", &[(3, "action \"orphan\" is not reachable from start \"start\"")]),
    ("window_reversed.xml", &[(2, "start-time 2030-01-01 00:00:00 is not before end-time 2020-01-01 00:00:00")]),
];

#[test]
fn every_invalid_fixture_fails_with_its_message_and_line() {
    let dir = fixtures().join("invalid");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let listed: Vec<String> = INVALID.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "every invalid fixture has its expectations here, in order"
    );
    assert!(INVALID.len() >= 20);

    let links = [
        fixtures().join("valid/db_links.xml"),
        fixtures().join("valid/file_links.xml"),
    ];
    for (file, expected) in INVALID {
        let path = dir.join(file);
        let diags = load_paths(&[path.clone(), links[0].clone(), links[1].clone()])
            .err()
            .unwrap_or_else(|| panic!("{file} loaded"));
        let mine: Vec<&Diagnostic> = errors(&diags)
            .into_iter()
            .filter(|d| d.file == path)
            .collect();
        assert_eq!(
            mine.len(),
            expected.len(),
            "{file}: expected {} error(s), got:\n{}",
            expected.len(),
            render(&diags)
        );
        for (d, (line, part)) in mine.iter().zip(expected.iter()) {
            assert_eq!(d.line, *line, "{file}: {d}");
            assert!(
                d.message.contains(part),
                "{file}: `{}` does not contain `{part}`",
                d.message
            );
            assert!(d.col >= 1);
        }
        assert!(
            errors(&diags).iter().all(|d| d.file == path),
            "{file}: errors elsewhere:\n{}",
            render(&diags)
        );
    }
}

#[test]
fn all_problems_of_a_file_are_reported_at_once_in_position_order() {
    let path = fixtures().join("invalid/multi_problem.xml");
    let diags = load_paths(&[path]).unwrap_err();
    let lines: Vec<(u32, u32)> = errors(&diags).iter().map(|d| (d.line, d.col)).collect();
    // Without db_links.xml the unknown db-link says that none is defined.
    assert_eq!(lines, [(3, 3), (4, 5), (5, 5)], "{}", render(&diags));
    assert!(
        diags[1].message.contains("(none is defined)"),
        "{}",
        diags[1].message
    );
    assert_eq!(diags[1].element, "sql");
}
