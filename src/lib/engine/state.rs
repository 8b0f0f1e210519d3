//! Run-state vocabulary: instance and task states, trigger kinds, ids, and the pure decision of what a
//! finished attempt means.
//!
//! ```text
//! instance: pending -> running -> succeeded | failed | killed
//! task:     waiting -> ready -> running -> succeeded | failed | killed
//!           waiting -> skipped (never reached)      running -> ready (retry, lost lease, hand-back)
//! ```
//! The `as_str` spellings are the only ones SQL sees; the CHECK constraints list the same values.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The queue of tasks that are not pinned to a host.
pub const DEFAULT_QUEUE: &str = "default";

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// The state of a workflow instance.
    InstanceStatus {
        Pending => "pending",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Killed => "killed",
    }
);

impl InstanceStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            InstanceStatus::Succeeded | InstanceStatus::Failed | InstanceStatus::Killed
        )
    }

    /// The original akkaflow's numeric code, for anyone reading old reports.
    pub fn legacy_code(self) -> u8 {
        match self {
            InstanceStatus::Pending => 0,
            InstanceStatus::Running => 1,
            InstanceStatus::Succeeded => 3,
            InstanceStatus::Failed => 4,
            InstanceStatus::Killed => 5,
        }
    }
}

string_enum!(
    /// The state of one node of an instance.
    TaskStatus {
        Waiting => "waiting",
        Ready => "ready",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Killed => "killed",
        Skipped => "skipped",
    }
);

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Killed | TaskStatus::Skipped
        )
    }
}

string_enum!(
    /// Why an instance exists.
    TriggerKind {
        Cron => "cron",
        Dependency => "dependency",
        Trigger => "trigger",
        Blood => "blood",
        Run => "run",
        Rerun => "rerun",
        SubWorkflow => "sub_workflow",
        /// Created by a backfill for one of its coordinator's past slots.
        Backfill => "backfill",
    }
);

impl TriggerKind {
    /// Whether a success of such an instance counts for downstream dependency coordinators.
    /// A manual `run` does not (the original's rule); a blood run starts its downstream directly;
    /// a backfill's never counts for the regular schedule (with `--blood` it starts its downstream
    /// as the same backfill).
    pub fn propagates(self) -> bool {
        matches!(
            self,
            TriggerKind::Cron | TriggerKind::Dependency | TriggerKind::Trigger
        )
    }

    /// Whether the scheduler started it on its own (nobody to refuse): a start that cannot get its
    /// parameters is then recorded as a failed instance rather than refused.
    pub fn is_automatic(self) -> bool {
        matches!(
            self,
            TriggerKind::Cron | TriggerKind::Dependency | TriggerKind::Backfill
        )
    }
}

string_enum!(
    /// How an attempt ended, as recorded in `task_attempt.outcome`.
    AttemptOutcome {
        Succeeded => "succeeded",
        Failed => "failed",
        TimedOut => "timed_out",
        Killed => "killed",
        Lost => "lost",
        HandedBack => "handed_back",
    }
);

string_enum!(
    /// Why an alert mail exists (`alert.kind`).
    AlertKind {
        Completion => "completion",
        RetryFailure => "retry_failure",
        Recovery => "recovery",
        Kill => "kill",
        Timeout => "timeout",
        Email => "email",
        /// A cron slot had not succeeded by its coordinator's deadline.
        Deadline => "deadline",
        /// A slot that missed its deadline has succeeded since.
        LateDone => "late_done",
        /// A task was lost with its worker `max_lost_attempts` times and failed.
        Lost => "lost",
    }
);

string_enum!(
    /// Where an alert is in the outbox: waiting (also between retries), delivered, or given up.
    AlertStatus {
        Pending => "pending",
        Sent => "sent",
        Failed => "failed",
    }
);

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// `workflow_instance.id`
    InstanceId
);
id_type!(
    /// `task.id`
    TaskId
);
id_type!(
    /// `backfill.id`; `workflow_instance.backfill_id` holds 0 for an instance of no backfill
    BackfillId
);

string_enum!(
    /// The state of a backfill: running until every slot it runs has ended or it is cancelled.
    BackfillStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// Which slots a backfill runs: those with no instance at all (`missing`), also those whose
    /// latest instance failed or was killed (`failed`), or every slot (`all`).
    Reprocess {
        Missing => "missing",
        Failed => "failed",
        All => "all",
    }
);

/// How an attempt ended, as the worker saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    Succeeded,
    /// Non-zero exit or an executor error, with the message a person can act on.
    Failed {
        exit_code: Option<i32>,
        error: String,
    },
    TimedOut {
        after: Duration,
    },
    Killed {
        reason: String,
    },
}

impl AttemptEnd {
    pub fn outcome(&self) -> AttemptOutcome {
        match self {
            AttemptEnd::Succeeded => AttemptOutcome::Succeeded,
            AttemptEnd::Failed { .. } => AttemptOutcome::Failed,
            AttemptEnd::TimedOut { .. } => AttemptOutcome::TimedOut,
            AttemptEnd::Killed { .. } => AttemptOutcome::Killed,
        }
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self {
            AttemptEnd::Failed { exit_code, .. } => *exit_code,
            AttemptEnd::Succeeded => Some(0),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            AttemptEnd::Succeeded => None,
            AttemptEnd::Failed { error, .. } => Some(error.clone()),
            AttemptEnd::TimedOut { after } => Some(format!("timed out after {}s", after.as_secs())),
            AttemptEnd::Killed { reason } => Some(reason.clone()),
        }
    }
}

/// The retry policy facts of a task that decide what an attempt's end means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryFacts {
    pub attempt: i64,
    pub max_attempts: i64,
    pub retry_interval: Duration,
    pub kill_requested: bool,
}

/// What a finished attempt does to its task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    Succeed,
    /// Back to `ready`, to run again after the interval.
    Retry {
        after: Duration,
    },
    Fail,
    Kill,
}

/// Decides the task's next state. A kill request beats a retry; a timeout is a failed attempt.
pub fn after_attempt(facts: RetryFacts, end: &AttemptEnd) -> AfterAttempt {
    if facts.kill_requested || matches!(end, AttemptEnd::Killed { .. }) {
        return AfterAttempt::Kill;
    }
    match end {
        AttemptEnd::Succeeded => AfterAttempt::Succeed,
        AttemptEnd::Failed { .. } | AttemptEnd::TimedOut { .. } => after_failed(facts),
        AttemptEnd::Killed { .. } => AfterAttempt::Kill,
    }
}

/// A failed attempt retries while attempts remain.
pub fn after_failed(facts: RetryFacts) -> AfterAttempt {
    if facts.kill_requested {
        AfterAttempt::Kill
    } else if facts.attempt < facts.max_attempts {
        AfterAttempt::Retry {
            after: facts.retry_interval,
        }
    } else {
        AfterAttempt::Fail
    }
}

/// The default of `max_lost_attempts`: a task lost this many times fails (Sidekiq Pro's
/// super_fetch calls a job orphaned 3 times a poison pill).
pub const DEFAULT_MAX_LOST_ATTEMPTS: u32 = 3;

/// What a lost attempt (its lease ran out: the worker died or lost the database) does to its task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterLost {
    /// Back to `ready` at once; the attempt does not spend the retry budget.
    Retry,
    /// The task has now been lost `lost` times, its budget: it fails.
    Fail {
        lost: i64,
    },
    Kill,
}

/// Decides what a lost attempt means. A lost attempt is not the task's fault, so it never spends
/// `retry-times`; it counts against its own budget instead, so a task that kills its worker cannot
/// be rescued forever. `lost_before` is the count before this loss; `max_lost` (at least 1) is the
/// count at which the task fails.
pub fn after_lost(facts: RetryFacts, lost_before: i64, max_lost: i64) -> AfterLost {
    let lost = lost_before + 1;
    if facts.kill_requested {
        AfterLost::Kill
    } else if lost >= max_lost.max(1) {
        AfterLost::Fail { lost }
    } else {
        AfterLost::Retry
    }
}

/// The error of a task that was lost `lost` times.
pub fn lost_budget_error(lost: i64) -> String {
    format!("lost {lost} times: the task may be killing its worker")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(attempt: i64, max: i64, kill: bool) -> RetryFacts {
        RetryFacts {
            attempt,
            max_attempts: max,
            retry_interval: Duration::from_secs(5),
            kill_requested: kill,
        }
    }

    #[test]
    fn status_strings_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), *s);
        }
        for s in InstanceStatus::ALL {
            assert_eq!(s.as_str().parse::<InstanceStatus>().unwrap(), *s);
        }
        for s in TriggerKind::ALL {
            assert_eq!(s.as_str().parse::<TriggerKind>().unwrap(), *s);
        }
        assert_eq!("bogus".parse::<TaskStatus>(), Err("bogus".to_string()));
    }

    #[test]
    fn attempt_outcomes() {
        let failed = AttemptEnd::Failed {
            exit_code: Some(3),
            error: "exit 3".into(),
        };
        let timed_out = AttemptEnd::TimedOut {
            after: Duration::from_secs(2),
        };
        let cases = [
            (
                facts(1, 1, false),
                AttemptEnd::Succeeded,
                AfterAttempt::Succeed,
            ),
            (
                facts(1, 3, false),
                failed.clone(),
                AfterAttempt::Retry {
                    after: Duration::from_secs(5),
                },
            ),
            (facts(3, 3, false), failed.clone(), AfterAttempt::Fail),
            (
                facts(1, 2, false),
                timed_out.clone(),
                AfterAttempt::Retry {
                    after: Duration::from_secs(5),
                },
            ),
            (facts(2, 2, false), timed_out, AfterAttempt::Fail),
            // a kill request beats a retry
            (facts(1, 3, true), failed, AfterAttempt::Kill),
            (
                facts(1, 3, false),
                AttemptEnd::Killed { reason: "x".into() },
                AfterAttempt::Kill,
            ),
        ];
        for (f, end, want) in cases {
            assert_eq!(after_attempt(f, &end), want, "{f:?} {end:?}");
        }
    }

    #[test]
    fn a_lost_attempt_spends_the_lost_budget_not_the_retries() {
        // retries spent (attempt 1 of 1) does not matter: the loss is not the task's fault
        assert_eq!(after_lost(facts(1, 1, false), 0, 3), AfterLost::Retry);
        assert_eq!(after_lost(facts(5, 1, false), 1, 3), AfterLost::Retry);
        assert_eq!(
            after_lost(facts(3, 1, false), 2, 3),
            AfterLost::Fail { lost: 3 }
        );
        assert_eq!(
            after_lost(facts(1, 1, false), 0, 1),
            AfterLost::Fail { lost: 1 }
        );
        // a budget below 1 is read as 1: the first loss fails
        assert_eq!(
            after_lost(facts(1, 1, false), 0, 0),
            AfterLost::Fail { lost: 1 }
        );
        // a kill request beats both
        assert_eq!(after_lost(facts(1, 3, true), 0, 3), AfterLost::Kill);
        assert_eq!(after_lost(facts(1, 3, true), 2, 3), AfterLost::Kill);
        assert_eq!(
            lost_budget_error(3),
            "lost 3 times: the task may be killing its worker"
        );
    }
}
