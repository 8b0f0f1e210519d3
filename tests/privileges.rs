//! Least privilege: the grants documented in `sql/GRANTS.md` are applied as written to a fresh
//! database, and a scheduler, a worker and the HTTP role run a workflow under those users.

mod common;
mod support;

use akkaflow::state::{InstanceId, InstanceStatus};
use common::{Db, Env};

/// The SQL block of `sql/GRANTS.md` under `heading`.
fn grants(heading: &str) -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/GRANTS.md")).unwrap();
    let section = doc.split(&format!("## {heading}")).nth(1).expect("section");
    let block = section.split("```sql").nth(1).expect("sql block");
    block.split("```").next().unwrap().to_string()
}

/// The documented statements for this database and unique user names.
fn statements(db: Db, database: &str, suffix: &str) -> Vec<String> {
    let sql = match db {
        Db::Mysql => grants("MySQL / MariaDB").replace("akkaflow.", &format!("`{database}`.")),
        Db::Postgres => grants("PostgreSQL"),
        Db::Sqlite => unreachable!(),
    };
    sql.replace("'...'", "'pw'")
        .replace(
            "akkaflow_scheduler",
            &format!("akkaflow_scheduler_{suffix}"),
        )
        .replace("akkaflow_worker", &format!("akkaflow_worker_{suffix}"))
        .replace(
            "akkaflow_inspector",
            &format!("akkaflow_inspector_{suffix}"),
        )
        .replace("akkaflow_http", &format!("akkaflow_http_{suffix}"))
        .split(';')
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Runs a one-shot command as the database user of `url`.
fn run_as(env: &Env, url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::BIN)
        .args(args)
        .current_dir(env.path())
        .env("AKKAFLOW_DATABASE_URL", url)
        .output()
        .unwrap()
}

fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.rsplit_once('@').unwrap();
    format!("{scheme}://{user}:pw@{host}")
}

mod cases {
    use super::*;

    pub async fn roles_run_under_the_documented_grants(env: &mut Env) {
        if env.db == Db::Sqlite {
            println!("not applicable: SQLite has no users");
            return;
        }
        env.sync(&[(
            "lp.xml",
            r#"<work-flow name="lp"><start name="start" to="a"/><action name="a"><shell><command>echo least privilege</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        )]);
        let database = env.url.rsplit('/').next().unwrap().to_string();
        let suffix = std::process::id().to_string();
        for stmt in statements(env.db, &database, &suffix) {
            common::exec_sql(env, &stmt).await;
        }
        let scheduler = with_user(&env.url, &format!("akkaflow_scheduler_{suffix}"));
        let worker = with_user(&env.url, &format!("akkaflow_worker_{suffix}"));
        let inspector = with_user(&env.url, &format!("akkaflow_inspector_{suffix}"));
        env.spawn_as("scheduler", &["scheduler"], &scheduler);
        env.spawn_as("worker", &["worker"], &worker);
        let id = InstanceId(
            env.ok(&["workflow", "trigger", "lp"])
                .trim()
                .parse()
                .unwrap(),
        );
        let store = env.store().await;
        let end = common::ended(&*store, id).await;
        assert_eq!(
            end.status,
            InstanceStatus::Succeeded,
            "{}",
            env.log("worker")
        );
        // the worker's user records its host history
        let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
        let recorded = common::wait_for(
            std::time::Duration::from_secs(90),
            "the worker's host history",
            || async {
                match store.worker_metric_list(hour_ago, 10).await {
                    Ok(rows) if !rows.is_empty() => Ok(rows[0].sampled_at),
                    other => Err(format!("{other:?}\n{}", env.log("worker"))),
                }
            },
        )
        .await;
        // the scheduler's user may prune (its master does, by retention_days), history too
        let out = run_as(env, &scheduler, &["prune", "--older-than", "0s"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(store.instance_get(id).await.unwrap().is_none(), "pruned");
        let left = store.worker_metric_list(hour_ago, 100).await.unwrap();
        assert!(
            left.iter().all(|m| m.sampled_at > recorded),
            "history pruned: {left:?}"
        );
        // the inspector reads but cannot change anything
        let out = run_as(env, &inspector, &["instance", "list"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run_as(env, &inspector, &["workflow", "trigger", "lp"]);
        assert!(!out.status.success(), "an inspector cannot trigger");
        assert!(
            !env.log("worker").contains("denied"),
            "{}",
            env.log("worker")
        );
        assert!(
            !env.log("scheduler").contains("denied"),
            "{}",
            env.log("scheduler")
        );

        // the HTTP role: tokens, a UI session, an upload, a trigger and a kill
        let http = with_user(&env.url, &format!("akkaflow_http_{suffix}"));
        let admin = support::token(env, "lp-admin", "admin", None);
        let s = support::start_http_as(env, "http", &http);
        let form = support::Opts {
            content_type: Some("application/x-www-form-urlencoded"),
            ..Default::default()
        };
        let login = s.post_with("/ui/login", None, &format!("token={admin}"), &form);
        assert_eq!(login.status, 303, "{}", login.text);
        let created = s.post(
            "/api/v1/tokens",
            Some(&admin),
            r#"{"name":"lp-viewer","role":"viewer"}"#,
        );
        assert_eq!(created.status, 201, "{}", created.text);
        let up = s.post_xml(
            "/api/v1/definitions?file=lp2.xml",
            Some(&admin),
            r#"<work-flow name="lp2"><coordinator><depend-list><workflow name="lp"/></depend-list></coordinator><start name="start" to="a"/><action name="a"><shell><command>sleep 30</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        );
        assert_eq!(up.status, 200, "{}\n{}", up.text, env.log("http"));
        let run = s.post("/api/v1/workflows/lp2/trigger", Some(&admin), "");
        assert_eq!(run.status, 201, "{}", run.text);
        let id = run.json["instance_id"].as_i64().unwrap();
        s.wait_json(
            &format!("/api/v1/instances/{id}"),
            &admin,
            "lp2 to run",
            |j| {
                j["tasks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["status"] == "running")
            },
        );
        let kill = s.post(&format!("/api/v1/instances/{id}/kill"), Some(&admin), "");
        assert_eq!(kill.status, 200, "{}", kill.text);
        assert_eq!(s.ended(id, &admin)["instance"]["status"], "killed");
        // a backfill created through the http role, run by the scheduler's master, cancelled
        // through the http role, and pruned by the scheduler's user
        let up = s.post_xml(
            "/api/v1/definitions?file=lpb.xml",
            Some(&admin),
            r#"<work-flow name="lpb" instance-limit="5"><coordinator><depend-list cron="0 2 * * *"/></coordinator><start name="start" to="a"/><action name="a"><shell><command>true</command></shell><ok to="end"/></action><end name="end"/></work-flow>"#,
        );
        assert_eq!(up.status, 200, "{}\n{}", up.text, env.log("http"));
        let bf = s.post(
            "/api/v1/workflows/lpb/backfill",
            Some(&admin),
            r#"{"from": "2026-10-01", "to": "2026-10-02", "parallel": 2}"#,
        );
        assert_eq!(bf.status, 201, "{}", bf.text);
        let bf = bf.json["id"].as_i64().unwrap();
        s.wait_json(
            &format!("/api/v1/backfills/{bf}"),
            &admin,
            "the backfill to end",
            |j| j["status"] == "succeeded",
        );
        let again = s.post(
            "/api/v1/workflows/lpb/backfill",
            Some(&admin),
            r#"{"from": "2026-10-01", "to": "2026-10-09", "reprocess": "all"}"#,
        );
        assert_eq!(again.status, 201, "{}", again.text);
        let again = again.json["id"].as_i64().unwrap();
        let cancel = s.post(
            &format!("/api/v1/backfills/{again}/cancel"),
            Some(&admin),
            "",
        );
        assert_eq!(cancel.status, 200, "{}", cancel.text);
        let out = run_as(env, &scheduler, &["prune", "--older-than", "0s"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let gone = store
            .backfill_get(akkaflow::state::BackfillId(bf))
            .await
            .unwrap();
        assert!(gone.is_none(), "pruned: {gone:?}");
        assert_eq!(
            s.delete("/api/v1/tokens/lp-viewer", Some(&admin)).status,
            200
        );
        assert_eq!(
            s.post("/api/v1/workflows/lp/disable", Some(&admin), "")
                .status,
            200
        );
        for role in ["http", "worker", "scheduler"] {
            assert!(
                !env.log(role).contains("denied"),
                "{role}: {}",
                env.log(role)
            );
        }
    }
}

e2e!(roles_run_under_the_documented_grants);
