//! What a new user meets in the first hour, run as they would run it: the real binary, real pipes,
//! a real taken port, the README as shipped.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_akkaflow");

fn akkaflow(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("AKKAFLOW_CONFIG")
        .env_remove("AKKAFLOW_LOG")
        .env(
            "AKKAFLOW_DATABASE_URL",
            format!("sqlite://{}", dir.join("akkaflow.db").display()),
        )
        .stdin(Stdio::null());
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const WITH_LINK: &str = r#"<work-flow name="uses_link">
  <start name="start" to="q"/>
  <action name="q"><sql db-link="dw">select 1</sql><ok to="end"/></action>
  <end name="end"/>
</work-flow>"#;

const DB_LINKS: &str = r#"<db-links>
  <link name="dw" type="SQLITE" jdbc-url="jdbc:sqlite:dw.db"/>
</db-links>"#;

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    // enough diagnostics that the JSON is far larger than a pipe's buffer
    let attrs: String = (0..3000).map(|i| format!(" unknown{i}=\"x\"")).collect();
    std::fs::write(
        tmp.path().join("w.xml"),
        format!("<work-flow name=\"w\"{attrs}>\n  <start name=\"start\" to=\"end\"/>\n  <end name=\"end\"/>\n</work-flow>\n"),
    )
    .unwrap();
    let mut child = akkaflow(tmp.path())
        .args(["validate", "--json", "w.xml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // the reader goes away before the first byte, as `| head -0` would
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    assert!(stderr.is_empty(), "nothing on stderr: {stderr}");
    assert_ne!(status.code(), Some(101), "not a panic: {status:?}");
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    // sqlx is quiet below WARN unless named: name it, so the migration's statements are logged
    let out = akkaflow(tmp.path())
        .env("AKKAFLOW_LOG", "debug,sqlx=debug")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(!stderr.is_empty(), "debug logging wrote something");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escape in redirected log:\n{stderr}"
    );
}

#[test]
fn validate_of_one_file_finds_the_links_above_it() {
    let tmp = tempfile::tempdir().unwrap();
    let defs = tmp.path().join("xmlconfig");
    std::fs::create_dir_all(defs.join("dw/daily")).unwrap();
    std::fs::write(defs.join("db_links.xml"), DB_LINKS).unwrap();
    std::fs::write(defs.join("dw/daily/uses_link.xml"), WITH_LINK).unwrap();
    let out = akkaflow(tmp.path())
        .args(["validate", "xmlconfig/dw/daily/uses_link.xml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("using links from"),
        "{}",
        text(&out.stderr)
    );

    // without a links file anywhere above, the link is unknown, as before
    std::fs::remove_file(defs.join("db_links.xml")).unwrap();
    let out = akkaflow(tmp.path())
        .args(["validate", "xmlconfig/dw/daily/uses_link.xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("unknown db-link"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unreachable_database_is_named_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // (the URL, what stderr must say)
    let missing = tmp.path().join("no/such/dir");
    let cases = [
        (
            format!("mysql://u:hunter2@127.0.0.1:{port}/x"),
            format!("connection refused at 127.0.0.1:{port}"),
        ),
        (
            format!("sqlite://{}/a.db", missing.display()),
            format!("directory {} does not exist", missing.display()),
        ),
    ];
    for (url, says) in cases {
        let out = akkaflow(tmp.path())
            .env("AKKAFLOW_DATABASE_URL", &url)
            .args(["instance", "list"])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(&says), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

#[test]
fn a_second_standalone_on_a_taken_port_stops_before_syncing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("xmlconfig")).unwrap();
    std::fs::write(
        tmp.path().join("xmlconfig/w.xml"),
        "<work-flow name=\"w\"><start name=\"start\" to=\"end\"/><end name=\"end\"/></work-flow>",
    )
    .unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = akkaflow(tmp.path())
        .args(["standalone", "--listen", &addr])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(
        !tmp.path().join("akkaflow.db").exists(),
        "nothing was synced: the database was never opened"
    );
}

#[test]
fn help_shows_no_empty_environment_values() {
    let tmp = tempfile::tempdir().unwrap();
    let out = akkaflow(tmp.path())
        .env_remove("AKKAFLOW_DATABASE_URL")
        .args(["instance", "list", "--help"])
        .output()
        .unwrap();
    let help = text(&out.stdout);
    assert!(help.contains("[env: AKKAFLOW_CONFIG"), "{help}");
    assert!(!help.contains("AKKAFLOW_CONFIG=]"), "{help}");
    assert!(help.contains("Only instances of this workflow"), "{help}");
}

#[test]
fn upgrade_never_prints_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("old");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("w.xml"),
        r#"<work-flow name="w">
  <!-- kept as it was -->
  <start name="start" to="q"/>
  <action name="q">
    <sql type="MYSQL" jdbc-url="jdbc:mysql://db:3306/dw" username="etl" password="pa55-w0rd">select 1</sql>
    <ok to="end"/>
  </action>
  <end name="end"/>
</work-flow>
"#,
    )
    .unwrap();
    for json in [false, true] {
        let out_dir = tmp.path().join(format!("new{json}"));
        let mut cmd = akkaflow(tmp.path());
        cmd.args(["upgrade", "old", out_dir.to_str().unwrap()]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        let printed = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{printed}");
        assert!(!printed.contains("pa55-w0rd"), "{printed}");
        assert!(printed.contains("mysql_db_dw"), "{printed}");
        let links = std::fs::read_to_string(out_dir.join("db_links.xml")).unwrap();
        assert!(links.contains("password=\"pa55-w0rd\""), "{links}");
        let w = std::fs::read_to_string(out_dir.join("w.xml")).unwrap();
        assert!(w.contains("<!-- kept as it was -->"));
        assert!(
            w.contains("<sql db-link=\"mysql_db_dw\">select 1</sql>"),
            "{w}"
        );
        let out = akkaflow(tmp.path())
            .args(["validate", out_dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // a second run never overwrites
    let out = akkaflow(tmp.path())
        .args(["upgrade", "old", "newfalse"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already exists and is not empty"));
}

/// The README is what a new user reads first: one HTTP/UI section, one `token create` row, the
/// whole token command the login page shows, no pointer to files users do not have.
#[test]
fn readme_says_each_thing_once_and_what_the_ui_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let count = |needle: &str| readme.matches(needle).count();
    assert_eq!(
        count("](docs/dashboard.png)"),
        1,
        "the screenshots appear once"
    );
    assert_eq!(
        readme
            .lines()
            .filter(|l| l.starts_with("| `akkaflow token create"))
            .count(),
        1,
        "one `token create` row"
    );
    assert_eq!(
        readme
            .lines()
            .filter(|l| l.starts_with("## ") && (l.contains("HTTP") || l.contains("UI")))
            .count(),
        1,
        "one HTTP/UI section"
    );
    assert!(!readme.contains("../shared"), "users have no ../shared");
    assert!(!readme.contains("alias akkaflow="), "no cargo run alias");
    assert!(readme.contains("cargo install --path ."));
    assert!(readme.contains(akkaflow::token::FIRST_TOKEN_COMMAND));
    assert!(
        !readme.contains("auth off on loopback"),
        "standalone starts with auth on"
    );
}

/// docs/FORMAT.md's walk-through says what `validate` answers at each step: check that it does.
#[test]
fn the_first_workflow_walk_through_is_true() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    let walk = &doc[doc.find("## Your first workflow").unwrap()..];
    let blocks: Vec<&str> = walk
        .split("```xml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let dedent = |b: &str| -> String {
        let indent = b.len() - b.trim_start_matches(' ').len();
        b.lines()
            .map(|l| l.get(indent..).unwrap_or("").to_string() + "\n")
            .collect()
    };
    let (first, params, coordinator) = (dedent(blocks[0]), dedent(blocks[1]), dedent(blocks[2]));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("xmlconfig")).unwrap();
    let file = tmp.path().join("xmlconfig/hello.xml");
    let validate = || {
        akkaflow(tmp.path())
            .args(["validate", "xmlconfig/hello.xml"])
            .output()
            .unwrap()
    };

    std::fs::write(&file, &first).unwrap();
    let out = validate();
    let said = walk
        .split('`')
        .find(|s| s.starts_with("xmlconfig/hello.xml:"))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let stderr = text(&out.stderr);
    // a run-time parameter: a warning, and the file is valid
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(text(&out.stdout).contains("ok: 1 workflow(s), 1 warning(s)"));
    assert!(
        stderr.contains(&said),
        "the walk-through says `{said}`, validate says:\n{stderr}"
    );

    let with_params = first.replacen("  <start", &format!("{params}  <start"), 1);
    std::fs::write(&file, &with_params).unwrap();
    let out = validate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok: 1 workflow(s), 0 warning(s)"));

    let scheduled =
        with_params.replacen("  <param-list>", &format!("{coordinator}  <param-list>"), 1);
    std::fs::write(&file, &scheduled).unwrap();
    let out = validate();
    assert!(out.status.success(), "{}\n{scheduled}", text(&out.stderr));
}
