//! `akkaflow prune`: the master's retention pass, on demand, with what it deleted per table.

use std::time::Duration;

use super::{connect, print_json, table};
use crate::config::Config;
use crate::error::Result;
use crate::scheduler::{PruneOptions, Pruner, PrunerConfig};

/// `90d`, `12h`, `30m`, `45s`, `2w` (`0s`: every ended instance).
pub(super) fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad =
        || format!("expected a number and a unit (s, m, h, d or w), as in 90d or 12h, got `{s}`");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

pub(super) async fn prune(
    cfg: &Config,
    older_than: Option<Duration>,
    dry_run: bool,
    json: bool,
) -> Result<i32> {
    let Some(retention) = older_than.or(cfg.retention) else {
        return Err(crate::Error::Config(
            "retention_days is 0 (keep everything): say how old with --older-than, e.g. --older-than 90d"
                .into(),
        ));
    };
    let store = connect(cfg).await?;
    let pruner = Pruner::new(
        store,
        PrunerConfig {
            retention,
            metric_retention: cfg.worker_metric_retention,
            // on demand, the pass runs to the end, still a bounded transaction at a time
            max_transactions: usize::MAX,
            ..PrunerConfig::default()
        },
    )?;
    let report = pruner
        .prune(PruneOptions {
            older_than,
            dry_run,
        })
        .await?;
    if json {
        print_json(&serde_json::json!({
            "dry_run": dry_run,
            "instances": report.instances,
            "kept": report.kept,
            "transactions": report.transactions,
            "busy_transactions": report.busy_transactions,
            "deleted": report.deleted,
        }));
        return Ok(0);
    }
    let mut t = table(&["table", if dry_run { "would delete" } else { "deleted" }]);
    for (name, n) in report.deleted.tables() {
        t.add_row(vec![name.to_string(), n.to_string()]);
    }
    println!("{t}");
    let what = if dry_run { "would prune" } else { "pruned" };
    println!(
        "{what} {} instances (with their sub-workflow instances){}",
        report.instances,
        if report.kept > 0 {
            format!(
                "; kept {} old ones whose tree has an instance that has not ended",
                report.kept
            )
        } else {
            String::new()
        }
    );
    if report.busy_transactions > 0 {
        // the operator wonders why a prune by hand took its time
        println!(
            "{} of {} transactions went at the gentle pace: ready tasks were waiting for a worker",
            report.busy_transactions, report.transactions
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_their_unit() {
        for (text, secs) in [
            ("0s", 0),
            ("45s", 45),
            ("30m", 1_800),
            ("12h", 43_200),
            ("90d", 7_776_000),
            ("2w", 1_209_600),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in ["", "d", "12", "1.5h", "-1d", "3 days", "10y"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }
}
