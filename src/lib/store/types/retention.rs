//! Retention: what a prune pass scans, deletes and counts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::InstanceId;

/// Which ended instances a pruning pass looks at (see [`Store::retention_candidates`]).
#[derive(Clone, Debug)]
pub struct RetentionScan {
    /// The database clock at the start of the pass; ages count back from it.
    pub now: DateTime<Utc>,
    /// Instances that ended longer ago than this go, unless their workflow's `retention_days` says
    /// otherwise.
    pub age: Duration,
    /// `--older-than`: `age` for every workflow, their `retention_days` ignored.
    pub uniform: bool,
    /// Paging key: only instances with a greater id.
    pub after: InstanceId,
    pub limit: i64,
}

/// One pruning step on a set of ended instances (see [`Store::retention_delete`]).
#[derive(Clone, Debug)]
pub struct RetentionDelete {
    /// Top-level instances and all their sub-workflow instances, every one ended.
    pub instances: Vec<InstanceId>,
    /// Rows deleted in this step's transaction at most (the instance rows themselves aside).
    pub limit: i64,
}

/// Rows that belong to no instance (see [`Store::retention_loose`]).
#[derive(Clone, Debug)]
pub struct RetentionLoose {
    /// Events and sent or failed alerts without an instance, created before this, go.
    pub before: DateTime<Utc>,
    /// Workers and schedulers stopped, or silent since before this, and last seen before `before`, go.
    pub dead_before: DateTime<Utc>,
    /// Worker host and pool occupancy history (`worker_metric`, `pool_sample`) sampled before
    /// this goes.
    pub metrics_before: DateTime<Utc>,
    /// Rows per table per call at most.
    pub limit: i64,
    /// Count instead of deleting (every matching row, no limit).
    pub dry_run: bool,
}

/// Rows deleted (or, in a dry run, that would be) per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct RetentionCounts {
    pub workflow_instance: u64,
    pub task: u64,
    pub task_attempt: u64,
    pub task_log: u64,
    pub event: u64,
    pub alert: u64,
    pub data_monitor: u64,
    pub worker: u64,
    pub scheduler: u64,
    pub deadline_miss: u64,
    pub worker_metric: u64,
    pub pool_sample: u64,
    pub backfill: u64,
    pub backfill_slot: u64,
}

impl RetentionCounts {
    /// Every table with its count, in the order a pruned instance's rows are deleted.
    pub fn tables(&self) -> [(&'static str, u64); 14] {
        [
            ("task_log", self.task_log),
            ("task_attempt", self.task_attempt),
            ("data_monitor", self.data_monitor),
            ("event", self.event),
            ("alert", self.alert),
            ("task", self.task),
            ("workflow_instance", self.workflow_instance),
            ("worker", self.worker),
            ("scheduler", self.scheduler),
            ("deadline_miss", self.deadline_miss),
            ("worker_metric", self.worker_metric),
            ("pool_sample", self.pool_sample),
            ("backfill_slot", self.backfill_slot),
            ("backfill", self.backfill),
        ]
    }

    pub fn total(&self) -> u64 {
        self.tables().iter().map(|(_, n)| n).sum()
    }

    /// The count of `table` (one of [`RetentionCounts::tables`]).
    pub(crate) fn slot(&mut self, table: &str) -> &mut u64 {
        match table {
            "task_log" => &mut self.task_log,
            "task_attempt" => &mut self.task_attempt,
            "data_monitor" => &mut self.data_monitor,
            "event" => &mut self.event,
            "alert" => &mut self.alert,
            "task" => &mut self.task,
            "worker" => &mut self.worker,
            "scheduler" => &mut self.scheduler,
            "deadline_miss" => &mut self.deadline_miss,
            "worker_metric" => &mut self.worker_metric,
            "pool_sample" => &mut self.pool_sample,
            "backfill" => &mut self.backfill,
            "backfill_slot" => &mut self.backfill_slot,
            _ => &mut self.workflow_instance,
        }
    }

    pub fn add(&mut self, o: &RetentionCounts) {
        self.workflow_instance += o.workflow_instance;
        self.task += o.task;
        self.task_attempt += o.task_attempt;
        self.task_log += o.task_log;
        self.event += o.event;
        self.alert += o.alert;
        self.data_monitor += o.data_monitor;
        self.worker += o.worker;
        self.scheduler += o.scheduler;
        self.deadline_miss += o.deadline_miss;
        self.worker_metric += o.worker_metric;
        self.pool_sample += o.pool_sample;
        self.backfill += o.backfill;
        self.backfill_slot += o.backfill_slot;
    }
}

/// What one [`Store::retention_delete`] step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionStep {
    pub deleted: RetentionCounts,
    /// The instances are gone (or were no longer ended, and are kept): no further step is needed.
    pub done: bool,
}
