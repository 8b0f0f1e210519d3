//! The compose file checked statically, in every `cargo test` (tests/compose/run.sh brings it up for
//! real): every akkaflow service's command and health check is a valid invocation (`--help` of that
//! subcommand succeeds), and the database URL and ports agree with the MySQL service.

use std::collections::BTreeMap;
use std::process::Command;

use serde_yaml_ng::Value;

const BIN: &str = env!("CARGO_BIN_EXE_akkaflow");

fn compose() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    let mut doc: Value = serde_yaml_ng::from_str(&text).unwrap();
    doc.apply_merge().unwrap();
    let services = doc
        .get("services")
        .and_then(Value::as_mapping)
        .expect("services")
        .clone();
    services
        .into_iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v))
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .expect("a list")
        .iter()
        .map(|x| x.as_str().expect("a string").to_string())
        .collect()
}

fn akkaflow_services() -> Vec<(String, Value)> {
    compose()
        .into_iter()
        .filter(|(_, s)| s.get("build").is_some())
        .collect()
}

#[test]
fn every_service_command_is_a_valid_akkaflow_invocation() {
    let services = akkaflow_services();
    let roles: Vec<String> = services
        .iter()
        .map(|(_, s)| strings(&s["command"])[0].clone())
        .collect();
    for needed in ["sync", "scheduler", "worker", "http"] {
        assert!(
            roles.iter().any(|r| r == needed),
            "no {needed} service: {roles:?}"
        );
    }
    assert!(
        roles.iter().filter(|r| *r == "scheduler").count() >= 2,
        "two schedulers"
    );
    assert!(
        roles.iter().filter(|r| *r == "worker").count() >= 2,
        "two workers"
    );
    for (name, svc) in &services {
        let cmd = strings(&svc["command"]);
        let help = Command::new(BIN)
            .arg(&cmd[0])
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "{name}: `akkaflow {} --help` fails",
            cmd[0]
        );
        // the full command parses too: clap rejects unknown flags before anything connects
        let out = Command::new(BIN).args(&cmd).arg("--help").output().unwrap();
        assert!(
            out.status.success(),
            "{name}: `akkaflow {}` does not parse: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(health) = svc.get("healthcheck").and_then(|h| h.get("test")) {
            let test = strings(health);
            assert_eq!(test[0], "CMD");
            assert_eq!(test[1], "akkaflow", "{name}: the healthcheck runs akkaflow");
            let out = Command::new(BIN)
                .args(&test[2..])
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}: healthcheck `{}` does not parse",
                test.join(" ")
            );
        }
    }
}

#[test]
fn database_url_and_ports_agree_with_the_mysql_service() {
    let all = compose();
    let mysql = &all["mysql"];
    let env = &mysql["environment"];
    let (user, pass, db) = (
        env["MYSQL_USER"].as_str().unwrap(),
        env["MYSQL_PASSWORD"].as_str().unwrap(),
        env["MYSQL_DATABASE"].as_str().unwrap(),
    );
    assert!(
        mysql["image"].as_str().unwrap().starts_with("mysql:8"),
        "MySQL 8"
    );
    let expected = format!("mysql://{user}:{pass}@mysql:3306/{db}");
    for (name, svc) in akkaflow_services() {
        assert_eq!(
            svc["environment"]["AKKAFLOW_DATABASE_URL"].as_str(),
            Some(expected.as_str()),
            "{name}"
        );
        let deps = svc["depends_on"].as_mapping().expect("depends_on");
        assert!(!deps.is_empty(), "{name} waits for something");
        if let Some(ports) = svc.get("ports") {
            // a published port must be the one the service listens on
            let cmd = strings(&svc["command"]).join(" ");
            for p in strings(ports) {
                let inner = p.rsplit(':').next().unwrap();
                assert!(
                    cmd.contains(&format!(":{inner}")),
                    "{name}: publishes {p} but listens elsewhere ({cmd})"
                );
            }
        }
    }
    let volumes = strings(&all["sync"]["volumes"]);
    assert!(
        volumes.iter().any(|v| v.starts_with("./xmlconfig:")),
        "xmlconfig mounted"
    );
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_as_a_non_root_user() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(
        text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM")) >= 2,
        "multi-stage"
    );
    let user = text
        .lines()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert_ne!(user.trim(), "USER root");
    assert!(text.contains("COPY --from=build"));
}
