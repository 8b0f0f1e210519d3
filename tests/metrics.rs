//! `GET /metrics` over real HTTP on each backend, parsed by Prometheus's own text-format parser
//! (`prometheus_client.parser`, required when `CI` is set), with its values checked against what the
//! API reports of the same database.

mod common;
mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Env;
use serde_json::Value;
use support::{start, token, workflow};

/// The scrape as `[{name, labels, value}]`, or None (a skip) when the parser is not installed.
fn parse(text: &str) -> Option<Vec<Value>> {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    if not fam.documentation:
        sys.exit("no HELP for " + fam.name)
    for s in fam.samples:
        out.append({"family": fam.name, "type": fam.type, "name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let probe = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but python3 cannot import prometheus_client (pip install prometheus_client)"
        );
        println!(
            "skipped: python3 cannot import prometheus_client (pip install prometheus_client)"
        );
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
}

mod cases {
    use super::*;

    pub async fn metrics_parse_and_match_the_tables(env: &mut Env) {
        env.sync(&[
            ("ok.xml", &workflow("ok", "/dw", "echo ok")),
            (
                "fails.xml",
                &workflow("fails", "/dw", "echo no >&2; exit 3"),
            ),
        ]);
        let viewer = token(env, "viewer", "viewer", None);
        let ops = token(env, "ops", "operator", None);
        let s = start(env, "server", &[]);

        let r = s.get("/metrics", None);
        assert_eq!(r.status, 401, "guarded like the API: {}", r.text);

        let mut ids = Vec::new();
        for wf in ["ok", "ok", "fails"] {
            let r = s.post(&format!("/api/v1/workflows/{wf}/trigger"), Some(&ops), "");
            assert_eq!(r.status, 201, "{}", r.text);
            ids.push(r.json["instance_id"].as_i64().unwrap());
        }
        for id in &ids {
            s.ended(*id, &viewer);
        }

        let r = s.get("/metrics", Some(&viewer));
        assert_eq!(r.status, 200, "{}\n{}", r.text, env.log("server"));
        assert!(
            r.content_type.starts_with("text/plain"),
            "{}",
            r.content_type
        );
        let Some(samples) = parse(&r.text) else {
            return;
        };

        for family in [
            "akkaflow_ready_tasks",
            "akkaflow_running_tasks",
            "akkaflow_workers_alive",
            "akkaflow_scheduler_master",
            "akkaflow_instances_total",
            "akkaflow_task_duration_seconds",
            "akkaflow_trigger_delay_seconds",
            "akkaflow_alerts_pending",
            "akkaflow_definitions_errors",
        ] {
            assert!(
                r.text.contains(&format!("# TYPE {family} ")),
                "{family} missing:\n{}",
                r.text
            );
        }

        // instance counts: what the API lists, by workflow and status
        let list = s.get("/api/v1/instances?limit=100", Some(&viewer));
        let instances = list.json["instances"].as_array().expect("instances");
        for wf in ["ok", "fails"] {
            for status in ["succeeded", "failed"] {
                let n = instances
                    .iter()
                    .filter(|i| i["workflow"] == wf && i["status"] == status)
                    .count() as f64;
                let got = value(
                    &samples,
                    "akkaflow_instances_total",
                    &[("workflow", wf), ("status", status)],
                )
                .unwrap_or(0.0);
                assert_eq!(got, n, "{wf} {status}:\n{}", r.text);
            }
        }
        assert_eq!(
            value(
                &samples,
                "akkaflow_instances_total",
                &[("workflow", "ok"), ("status", "succeeded")]
            ),
            Some(2.0)
        );

        // one attempt per task of the three instances (no retries in these definitions)
        for (wf, n) in [("ok", 2.0), ("fails", 1.0)] {
            assert_eq!(
                value(
                    &samples,
                    "akkaflow_task_duration_seconds_count",
                    &[("workflow", wf)]
                ),
                Some(n),
                "{wf}:\n{}",
                r.text
            );
            assert_eq!(
                value(
                    &samples,
                    "akkaflow_task_duration_seconds_bucket",
                    &[("workflow", wf), ("le", "+Inf")]
                ),
                Some(n)
            );
            assert_eq!(
                value(
                    &samples,
                    "akkaflow_trigger_delay_seconds_count",
                    &[("workflow", wf)]
                ),
                Some(n)
            );
        }

        // the fleet: this standalone's one worker and its scheduler, the master
        let cluster = s.get("/api/v1/cluster", Some(&viewer));
        let workers = cluster.json["workers"].as_array().expect("workers");
        let running = workers.iter().filter(|w| w["state"] == "running").count() as f64;
        assert_eq!(
            value(&samples, "akkaflow_workers_alive", &[]),
            Some(running)
        );
        assert_eq!(running, 1.0);
        // its host, as the worker row has it (the installed memory does not move between the two
        // reads; the worker has heartbeaten by now: its tasks ran)
        let worker = workers.iter().find(|w| w["state"] == "running").unwrap();
        let id = worker["id"].as_str().unwrap();
        assert_eq!(
            value(
                &samples,
                "akkaflow_worker_memory_total_bytes",
                &[("worker", id)]
            ),
            worker["mem_total_bytes"].as_f64(),
            "{}",
            r.text
        );
        assert!(
            worker["mem_total_bytes"].as_f64().unwrap() > 0.0,
            "{worker}"
        );
        for family in [
            "akkaflow_worker_cpu_percent",
            "akkaflow_worker_load1",
            "akkaflow_worker_memory_used_bytes",
            "akkaflow_worker_disk_free_bytes",
        ] {
            assert!(
                r.text.contains(&format!("# TYPE {family} gauge")),
                "{family}"
            );
        }
        let masters: Vec<&Value> = samples
            .iter()
            .filter(|x| x["name"] == "akkaflow_scheduler_master" && x["value"] == 1.0)
            .collect();
        assert_eq!(masters.len(), 1, "{}", r.text);
        let master_id = masters[0]["labels"]["id"].as_str().unwrap();
        let schedulers = cluster.json["schedulers"].as_array().expect("schedulers");
        assert!(
            schedulers
                .iter()
                .any(|x| x["id"] == master_id && x["state"] == "master"),
            "{master_id} is not the master in {schedulers:?}"
        );
        // nothing is left to run
        assert!(
            samples
                .iter()
                .filter(|x| x["name"] == "akkaflow_ready_tasks"
                    || x["name"] == "akkaflow_running_tasks")
                .all(|x| x["value"] == 0.0)
        );
        let store = env.store().await;
        let pending = store
            .alert_list(10_000)
            .await
            .unwrap()
            .iter()
            .filter(|a| a.status.as_str() == "pending")
            .count() as f64;
        assert_eq!(
            value(&samples, "akkaflow_alerts_pending", &[]),
            Some(pending)
        );
        assert_eq!(
            value(&samples, "akkaflow_definitions_errors", &[]),
            Some(0.0)
        );

        // --metrics-public opens /metrics, and only /metrics
        let open = start(env, "public", &["--metrics-public"]);
        assert_eq!(open.get("/metrics", None).status, 200);
        assert_eq!(open.get("/api/v1/workflows", None).status, 401);
    }
}

e2e!(metrics_parse_and_match_the_tables);
