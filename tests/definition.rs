//! The definition layer through its public API: our own fixtures (valid and broken), cross-file
//! rules, and the original project's files when `../shared` is present.
//!
//! Cross-file rules are here; the fixture tables live in `definition/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use akkaflow::definition::template::evaluate_params;
use akkaflow::definition::{
    load_paths, load_sources, ActionKind, DataSource, DbKind, DefinitionSet, Diagnostic, FileKind,
    MailLevel, NodeKind, Severity, SourceFile, Transfer, TransferSource, TransferTarget, Workflow,
};
use chrono::{NaiveDate, TimeZone};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn source(path: &str, text: &str) -> SourceFile {
    SourceFile {
        path: PathBuf::from(path),
        text: text.to_string(),
    }
}

fn errors(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
    diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect()
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

fn workflow<'a>(set: &'a DefinitionSet, name: &str) -> &'a Workflow {
    &set.workflows
        .iter()
        .find(|w| w.workflow.name == name)
        .unwrap_or_else(|| panic!("no workflow {name}"))
        .workflow
}

/// The set's workflow names, sorted.
fn names(set: &DefinitionSet) -> Vec<&str> {
    let mut names: Vec<&str> = set
        .workflows
        .iter()
        .map(|w| w.workflow.name.as_str())
        .collect();
    names.sort();
    names
}

fn action<'a>(wf: &'a Workflow, name: &str) -> &'a ActionKind {
    match &wf
        .node(name)
        .unwrap_or_else(|| panic!("no node {name}"))
        .kind
    {
        NodeKind::Action(a) => &a.kind,
        other => panic!("{name} is not an action: {other:?}"),
    }
}

fn load_valid() -> DefinitionSet {
    load_paths(&[fixtures().join("valid")])
        .unwrap_or_else(|d| panic!("valid fixtures failed:\n{}", render(&d)))
}

#[path = "definition/invalid.rs"]
mod invalid;
#[path = "definition/original.rs"]
mod original;
#[path = "definition/pools.rs"]
mod pools;
#[path = "definition/valid.rs"]
mod valid;

const MINIMAL: &str = r#"<work-flow name="NAME">
  <start name="start" to="end"/>
  <end name="end"/>
</work-flow>"#;

fn with_coordinator(name: &str, depends: &[&str]) -> String {
    let deps: String = depends
        .iter()
        .map(|d| format!("      <workflow name=\"{d}\"/>\n"))
        .collect();
    format!(
        "<work-flow name=\"{name}\">\n  <coordinator>\n    <depend-list>\n{deps}    </depend-list>\n  </coordinator>\n  <start name=\"start\" to=\"end\"/>\n  <end name=\"end\"/>\n</work-flow>\n"
    )
}

#[test]
fn duplicate_workflow_name_names_both_files() {
    let diags = load_sources(vec![
        source("xmlconfig/a.xml", &MINIMAL.replace("NAME", "same")),
        source("xmlconfig/sub/b.xml", &MINIMAL.replace("NAME", "same")),
    ])
    .unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!(
        (diags[0].file.as_path(), diags[0].line),
        (Path::new("xmlconfig/sub/b.xml"), 1)
    );
    assert_eq!(
        diags[0].message,
        "workflow \"same\" is defined in both xmlconfig/a.xml and xmlconfig/sub/b.xml"
    );
}

#[test]
fn dependency_cycle_across_workflows_is_named() {
    let diags = load_sources(vec![
        source("a.xml", &with_coordinator("a", &["b"])),
        source("b.xml", &with_coordinator("b", &["c"])),
        source("c.xml", &with_coordinator("c", &["a"])),
        source("d.xml", &with_coordinator("d", &["a"])),
    ])
    .unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!(
        (diags[0].file.as_path(), diags[0].line),
        (Path::new("a.xml"), 4)
    );
    assert_eq!(
        diags[0].message,
        "dependency cycle between workflows: a -> b -> c -> a"
    );

    let diags = load_sources(vec![source("a.xml", &with_coordinator("a", &["a"]))]).unwrap_err();
    assert_eq!(diags[0].message, "workflow \"a\" depends on itself");
}

#[test]
fn sub_workflow_call_cycle_is_named() {
    let caller = |name: &str, callee: &str| {
        format!(
            "<work-flow name=\"{name}\">\n  <start name=\"start\" to=\"call\"/>\n  <action name=\"call\">\n    <sub-workflow name=\"{callee}\"/>\n    <ok to=\"end\"/>\n  </action>\n  <end name=\"end\"/>\n</work-flow>\n"
        )
    };
    let diags = load_sources(vec![
        source("x.xml", &caller("x", "y")),
        source("y.xml", &caller("y", "x")),
    ])
    .unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!(
        (diags[0].line, diags[0].message.as_str()),
        (4, "sub-workflow call cycle: x -> y -> x")
    );
}

#[test]
fn legacy_coordinator_conflicts_are_refused() {
    let legacy = |name: &str, target: &str| {
        format!("<coordinator name=\"{name}\">\n  <trigger-list>\n    <workflow name=\"{target}\"/>\n  </trigger-list>\n</coordinator>\n")
    };
    // The workflow already has its own coordinator.
    let diags = load_sources(vec![
        source("w.xml", &with_coordinator("w", &[])),
        source("c.xml", &legacy("old", "w")),
    ])
    .unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!(
        (diags[0].file.as_path(), diags[0].line),
        (Path::new("c.xml"), 3)
    );
    assert!(
        diags[0]
            .message
            .contains("which has its own <coordinator> at w.xml:2"),
        "{}",
        diags[0].message
    );

    // Two legacy coordinators for one workflow.
    let diags = load_sources(vec![
        source("w.xml", &MINIMAL.replace("NAME", "w")),
        source("c1.xml", &legacy("one", "w")),
        source("c2.xml", &legacy("two", "w")),
    ])
    .unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!(diags[0].file, Path::new("c2.xml"));
    assert_eq!(
        diags[0].message,
        "workflow \"w\" is triggered by two coordinators: \"one\" (c1.xml) and \"two\""
    );
}

#[test]
fn duplicate_link_names_are_refused() {
    let db = r#"<db-links><link name="dw" type="MYSQL" jdbc-url="jdbc:mysql://h/db"/></db-links>"#;
    let diags = load_sources(vec![
        source("config/db_links.xml", db),
        source("xmlconfig/db_links.xml", db),
    ])
    .unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!(diags[0].file, Path::new("xmlconfig/db_links.xml"));
    assert_eq!(
        diags[0].message,
        "db link \"dw\" is defined twice: config/db_links.xml:1 and here"
    );
}

const WITH_WARNINGS: &str = r#"<work-flow name="warned" owner="me">
  <coordinator>
    <depend-list cron="*/30 * * * * *"/>
  </coordinator>
  <start name="start" to="end"/>
  <end name="end"/>
  <decision name="later"/>
</work-flow>"#;

#[test]
fn warnings_do_not_fail_and_are_returned() {
    let set = load_sources(vec![source("w.xml", WITH_WARNINGS)])
        .unwrap_or_else(|d| panic!("{}", render(&d)));
    let got: Vec<(u32, Severity, &str)> = set
        .warnings
        .iter()
        .map(|d| (d.line, d.severity, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (1, Severity::Warning, "unknown attribute `owner` on <work-flow> is ignored"),
            (3, Severity::Warning, "cron `*/30 * * * * *` has 6 fields: only the first five (`*/30 * * * *`) are used, as the original did"),
            (7, Severity::Warning, "unknown element <decision> in <work-flow> is ignored"),
        ]
    );
    assert_eq!(
        workflow(&set, "warned")
            .coordinator
            .as_ref()
            .unwrap()
            .cron
            .as_deref(),
        Some("*/30 * * * *")
    );
    assert_eq!(set.warnings[1].to_string(), "w.xml:3:5: warning: cron `*/30 * * * * *` has 6 fields: only the first five (`*/30 * * * *`) are used, as the original did");
}

/// A `${param:x}` no `<param-list>` declares is a run-time parameter: a warning naming it once (its
/// first use), and the set loads; a coordinator parameter built from it is no error either.
#[test]
fn an_undeclared_parameter_is_a_warning_naming_it() {
    let xml = r#"<work-flow name="rt">
  <coordinator>
    <param-list><param name="out" value="${param:dir}/out"/></param-list>
  </coordinator>
  <start name="start" to="a"/>
  <action name="a">
    <shell><command>ls ${param:dir} ${param:out} ${param:dir|sh}</command></shell>
    <ok to="end"/>
  </action>
  <end name="end"/>
</work-flow>"#;
    let set =
        load_sources(vec![source("rt.xml", xml)]).unwrap_or_else(|d| panic!("{}", render(&d)));
    let got: Vec<String> = set.warnings.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        got,
        ["rt.xml:3:17: warning: parameter \"dir\" is declared nowhere: it must be given when the workflow is run"]
    );
    let wf = workflow(&set, "rt");
    assert!(wf.check_given_params([&"dir".to_string()]).is_ok());
    assert!(wf.check_given_params([&"PATH".to_string()]).is_err());
}

#[test]
fn a_failed_load_returns_warnings_too_sorted_by_file_and_position() {
    let diags = load_sources(vec![
        source("b.xml", &MINIMAL.replace("NAME", "b").replace("<end name=\"end\"/>", "<end name=\"end\" colour=\"red\"/>")),
        source("a.xml", WITH_WARNINGS),
        source("a2.xml", "<work-flow name=\"broken\">\n  <start name=\"start\" to=\"nowhere\"/>\n  <end name=\"end\"/>\n</work-flow>"),
    ])
    .unwrap_err();
    let got: Vec<(String, u32, Severity)> = diags
        .iter()
        .map(|d| (d.file.display().to_string(), d.line, d.severity))
        .collect();
    assert_eq!(
        got,
        [
            ("a.xml".into(), 1, Severity::Warning),
            ("a.xml".into(), 3, Severity::Warning),
            ("a.xml".into(), 7, Severity::Warning),
            ("a2.xml".into(), 2, Severity::Error),
            ("b.xml".into(), 3, Severity::Warning),
        ]
    );
    assert_eq!(
        diags[3].to_string(),
        "a2.xml:2:3: start \"start\" goes to unknown node \"nowhere\""
    );
}

#[test]
fn content_hash_covers_the_xml_and_an_attached_legacy_coordinator() {
    let wf = MINIMAL.replace("NAME", "h");
    let coord = |cron: &str| {
        format!("<coordinator name=\"c\">\n  <depend-list cron=\"{cron}\"/>\n  <trigger-list><workflow name=\"h\"/></trigger-list>\n</coordinator>")
    };
    let hash = |files: Vec<SourceFile>| {
        load_sources(files).unwrap().workflows[0]
            .content_hash
            .clone()
    };
    let plain = hash(vec![source("h.xml", &wf)]);
    assert_eq!(plain.len(), 64);
    assert!(plain.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(plain, hash(vec![source("h.xml", &wf)]), "deterministic");
    assert_ne!(
        plain,
        hash(vec![source("h.xml", &format!("{wf}\n<!-- a comment -->"))]),
        "the source XML counts"
    );
    let hourly = hash(vec![
        source("h.xml", &wf),
        source("c.xml", &coord("0 * * * *")),
    ]);
    let daily = hash(vec![
        source("h.xml", &wf),
        source("c.xml", &coord("0 1 * * *")),
    ]);
    assert_ne!(plain, hourly);
    assert_ne!(
        hourly, daily,
        "the attached coordinator is part of the definition"
    );
    let set = load_sources(vec![source("h.xml", &wf)]).unwrap();
    assert_eq!(set.workflows[0].source_xml, wf);
    assert_eq!(set.workflows[0].file, Path::new("h.xml"));
}

#[test]
fn load_paths_walks_directories_recursively_in_sorted_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir_all(root.join("z/deeper")).unwrap();
    std::fs::write(
        root.join("z/deeper/one.xml"),
        MINIMAL.replace("NAME", "one"),
    )
    .unwrap();
    std::fs::write(root.join("b.XML"), MINIMAL.replace("NAME", "two")).unwrap();
    std::fs::write(root.join("a.xml"), MINIMAL.replace("NAME", "three")).unwrap();
    std::fs::write(root.join("notes.txt"), "not xml").unwrap();
    let set = load_paths(&[root.to_path_buf()]).unwrap();
    let names: Vec<&str> = set
        .workflows
        .iter()
        .map(|w| w.workflow.name.as_str())
        .collect();
    assert_eq!(names, ["three", "two", "one"]);
    assert_eq!(set.workflows[2].file, root.join("z/deeper/one.xml"));

    // The same file named twice (directly and through its directory) is read once.
    let again = load_paths(&[root.to_path_buf(), root.join("a.xml")]).unwrap();
    assert_eq!(again.workflows.len(), 3);

    std::fs::write(root.join("bad.xml"), [0xff, 0xfe, b'<']).unwrap();
    let diags = load_paths(&[root.to_path_buf(), root.join("missing.xml")]).unwrap_err();
    let got: Vec<(PathBuf, &str)> = diags
        .iter()
        .map(|d| (d.file.clone(), d.message.as_str()))
        .collect();
    assert_eq!(got.len(), 2, "{}", render(&diags));
    assert_eq!(
        got[0],
        (
            root.join("bad.xml"),
            "file is not valid UTF-8: save it as UTF-8"
        )
    );
    assert_eq!(got[1].0, root.join("missing.xml"));
    assert!(got[1].1.starts_with("cannot read file:"), "{}", got[1].1);
}

#[test]
fn a_byte_order_mark_does_not_shift_positions() {
    let text = format!(
        "\u{feff}{}",
        MINIMAL
            .replace("NAME", "bom")
            .replace("to=\"end\"", "to=\"nowhere\"")
    );
    let diags = load_sources(vec![source("bom.xml", &text)]).unwrap_err();
    assert_eq!((diags[0].line, diags[0].col), (2, 3), "{}", render(&diags));
}

const CALENDARS: &str = r#"<calendars>
  <calendar name="cn_workday" weekend="sat,sun">
    <holiday from="2026-10-01" to="2026-10-07"/>
    <holiday date="2027-01-01"/>
    <workday date="2026-10-10"/>
  </calendar>
</calendars>"#;

fn with_calendar(name: &str, calendar: &str, param: &str) -> String {
    format!(
        r#"<work-flow name="{name}">
  <coordinator{calendar}>
    <depend-list cron="0 6 * * *"/>
    <param-list><param name="prev" value="{param}"/></param-list>
  </coordinator>
  <start name="start" to="end"/>
  <end name="end"/>
</work-flow>"#
    )
}

/// A coordinator naming a calendar gets the calendar's days with its definition (part of its
/// version), and `workday` offsets count in it.
#[test]
fn a_calendar_goes_with_the_workflows_that_name_it() {
    let set = load_sources(vec![
        source("calendars.xml", CALENDARS),
        source(
            "w.xml",
            &with_calendar(
                "w",
                r#" calendar="cn_workday""#,
                "${time.today|yyyy-MM-dd|-1 workday}",
            ),
        ),
    ])
    .unwrap_or_else(|d| panic!("{}", render(&d)));
    assert_eq!(set.calendars.len(), 1);
    let cal = &set.calendars[0];
    assert_eq!(
        (cal.name.as_str(), cal.weekend.as_slice()),
        ("cn_workday", &[6, 7][..])
    );
    assert_eq!(cal.holidays.len(), 2);
    let c = workflow(&set, "w").coordinator.as_ref().unwrap();
    assert_eq!(c.calendar.as_deref(), Some("cn_workday"));
    assert_eq!(c.business_days.as_ref(), Some(cal));
    // Thursday 2026-10-08, after the National Day week: the business day before is 2026-09-30
    let now = chrono_tz::Tz::Asia__Shanghai
        .with_ymd_and_hms(2026, 10, 8, 6, 0, 0)
        .unwrap();
    let (values, missing) = akkaflow::definition::template::evaluate_params_leniently(
        &c.params,
        &BTreeMap::new(),
        now,
        c.business_days.as_ref(),
    )
    .unwrap();
    assert!(missing.is_empty());
    assert_eq!(values["prev"], "2026-09-30");
}

/// Every calendar problem is an error at its file and line.
#[test]
fn calendar_problems_are_errors_at_their_line() {
    let broken = r#"<calendars>
  <calendar name="a" weekend="sat,sunday,caturday">
    <holiday from="2026-10-07" to="2026-10-01"/>
    <holiday from="2026-10-01" to="2026-10-05"/>
    <holiday from="2026-10-05" to="2026-10-06"/>
    <holiday date="2026-13-01"/>
    <workday date="2026-10-03"/>
  </calendar>
  <calendar name="dup"/>
</calendars>"#;
    let diags = load_sources(vec![
        source("cal/calendars.xml", broken),
        source(
            "more.xml",
            "<calendars>\n  <calendar name=\"dup\"/>\n</calendars>",
        ),
        source("u.xml", &with_calendar("u", r#" calendar="nope""#, "x")),
        source(
            "n.xml",
            &with_calendar("n", "", "${time.today|yyyy-MM-dd|-1 workday}"),
        ),
    ])
    .unwrap_err();
    let got: Vec<(String, u32, String)> = errors(&diags)
        .iter()
        .map(|d| (d.file.display().to_string(), d.line, d.message.clone()))
        .collect();
    let want = [
        (
            "cal/calendars.xml",
            2,
            "calendar \"a\": unknown weekday \"caturday\" in weekend",
        ),
        (
            "cal/calendars.xml",
            3,
            "<holiday> of calendar \"a\": from 2026-10-07 is after to 2026-10-01",
        ),
        (
            "cal/calendars.xml",
            5,
            "<holiday> of calendar \"a\": 2026-10-05 to 2026-10-06 overlaps the holiday at line 4",
        ),
        (
            "cal/calendars.xml",
            6,
            "<holiday> of calendar \"a\": date \"2026-13-01\" is not a date in the form yyyy-MM-dd",
        ),
        (
            "cal/calendars.xml",
            7,
            "<workday> of calendar \"a\": 2026-10-03 is both a workday and a holiday (line 4)",
        ),
        (
            "more.xml",
            2,
            "calendar \"dup\" is defined twice: cal/calendars.xml:9 and here",
        ),
        (
            "n.xml",
            4,
            "a time expression counts workdays, but the workflow's coordinator names no calendar",
        ),
        (
            "u.xml",
            2,
            "unknown calendar \"nope\": define it in calendars.xml (defined: a, dup)",
        ),
    ];
    assert_eq!(got.len(), want.len(), "{}", render(&diags));
    for ((file, line, msg), (wf, wl, wm)) in got.iter().zip(want) {
        assert_eq!((file.as_str(), *line), (wf, wl), "{msg}");
        assert!(msg.starts_with(wm), "`{msg}` does not start with `{wm}`");
    }
}
