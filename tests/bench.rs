//! `akkaflow bench` end to end: a tiny burn-down with the noop executor and the raw loop in the same
//! invocation, on each backend. Asserts what the report counts, never how fast anything was.

mod common;

use common::Env;

mod cases {
    use super::*;

    pub async fn tiny_burn_down_counts_every_task_and_reports_the_raw_ratio(env: &mut Env) {
        let out = env.ok(&[
            "bench",
            "--mode",
            "burn-down",
            "--executor",
            "noop",
            "--instances",
            "5",
            "--width",
            "2",
            "--depth",
            "2",
            "--raw",
            "--json",
        ]);
        let r: serde_json::Value = serde_json::from_str(&out).expect("the report is JSON");
        assert_eq!(r["instances_total"], 5, "{r}");
        assert_eq!(r["instances_succeeded"], 5, "{r}");
        assert_eq!(r["tasks_total"], 20, "{r}");
        assert_eq!(r["tasks_succeeded"], 20, "{r}");
        // 5 instances x 2 branches x (2 - 1) steps
        assert_eq!(r["step_latency_ms"]["count"], 10, "{r}");
        assert_eq!(r["trigger_to_first_task_ms"]["count"], 5, "{r}");
        assert_eq!(r["raw"]["tasks"], 20, "{r}");
        assert!(r["engine_to_raw"].as_f64().is_some_and(|x| x > 0.0), "{r}");
        assert_eq!(
            r["worker_peak_rss_kib"].as_array().map(Vec::len),
            Some(2),
            "{r}"
        );
        let statements_expected = env.db != common::Db::Sqlite;
        assert_eq!(r["statements"].is_object(), statements_expected, "{r}");
    }
}

e2e!(tiny_burn_down_counts_every_task_and_reports_the_raw_ratio);
