//! Percentiles and the latencies derived from task and instance timestamps.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::db::{InstanceTimes, TaskTimes};

/// Nearest-rank percentiles of a sample, in the sample's unit.
#[derive(Clone, Debug, Serialize)]
pub struct Pct {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Pct {
    pub(crate) fn of(mut xs: Vec<f64>) -> Option<Pct> {
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let at = |q: f64| xs[((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1];
        Some(Pct {
            count: xs.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: *xs.last().expect("not empty"),
        })
    }
}

fn ms(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// Branch `b`, step `k` of a generated node name `a{b}_{k}`.
fn step_of(node: &str) -> Option<(usize, usize)> {
    let (b, k) = node.strip_prefix('a')?.split_once('_')?;
    Some((b.parse().ok()?, k.parse().ok()?))
}

/// Upstream end to downstream start for every consecutive pair in a branch.
pub(crate) fn step_latencies(tasks: &[TaskTimes]) -> Vec<f64> {
    let mut by_key: HashMap<(i64, usize, usize), &TaskTimes> = HashMap::new();
    for t in tasks {
        if let Some((b, k)) = step_of(&t.node) {
            by_key.insert((t.instance_id, b, k), t);
        }
    }
    let mut out = Vec::new();
    for (&(inst, b, k), t) in &by_key {
        let Some(next) = by_key.get(&(inst, b, k + 1)) else {
            continue;
        };
        if let (Some(end), Some(start)) = (t.ended_at, next.started_at) {
            out.push(ms(end, start));
        }
    }
    out
}

/// First task started of each instance, by instance id.
pub(crate) fn first_starts(tasks: &[TaskTimes]) -> HashMap<i64, DateTime<Utc>> {
    let mut first: HashMap<i64, DateTime<Utc>> = HashMap::new();
    for t in tasks {
        if let Some(s) = t.started_at {
            first
                .entry(t.instance_id)
                .and_modify(|f| *f = (*f).min(s))
                .or_insert(s);
        }
    }
    first
}

/// From `since(instance)` to the instance's first task started.
pub(crate) fn to_first_task(
    instances: &[InstanceTimes],
    tasks: &[TaskTimes],
    since: impl Fn(&InstanceTimes) -> DateTime<Utc>,
) -> Vec<f64> {
    let first = first_starts(tasks);
    instances
        .iter()
        .filter_map(|i| first.get(&i.id).map(|f| ms(since(i), *f)))
        .collect()
}

/// Seconds from the first task started to the last task ended.
pub(crate) fn drain_seconds(tasks: &[TaskTimes]) -> Option<f64> {
    let first = tasks.iter().filter_map(|t| t.started_at).min()?;
    let last = tasks.iter().filter_map(|t| t.ended_at).max()?;
    Some(ms(first, last) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Pct::of((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert!(Pct::of(vec![]).is_none());
        let one = Pct::of(vec![7.0]).unwrap();
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
    }

    #[test]
    fn generated_node_names_parse() {
        assert_eq!(step_of("a3_12"), Some((3, 12)));
        assert_eq!(step_of("split"), None);
    }
}
