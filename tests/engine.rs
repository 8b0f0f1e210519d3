//! End-to-end: the real binary as scheduler and worker processes on each backend, checked through
//! the tables afterwards.

mod common;

use chrono::DurationRound;
use std::time::Duration;

use akkaflow::state::{InstanceId, InstanceStatus, TaskStatus};
use akkaflow::store::{InstanceRow, Store};
use common::{ended, task, trigger, wait_for, Env};
use nix::sys::signal::Signal;

const LONG: Duration = Duration::from_secs(60);

fn linear(name: &str, action: &str) -> String {
    format!(
        r#"<work-flow name="{name}" instance-limit="5">
  <start name="start" to="a"/>
  {action}
  <end name="end"/>
</work-flow>"#
    )
}

/// A coordinator's first scheduled slot, once the trigger has computed it.
async fn first_slot(store: &dyn Store, name: &str) -> chrono::DateTime<chrono::Utc> {
    wait_for(LONG, "the first slot to be scheduled", || async {
        let c = coordinator(store, name).await?;
        c.next_fire_at.ok_or_else(|| "NULL".to_string())
    })
    .await
}

async fn coordinator(
    store: &dyn Store,
    name: &str,
) -> Result<akkaflow::store::CoordinatorRow, String> {
    store
        .coordinator_get(name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no row".to_string())
}

/// Starts one scheduler and one worker.
fn fleet(env: &mut Env) {
    env.spawn("scheduler", &["scheduler"]);
    env.spawn("worker", &["worker", "--slots", "4", "--name", "w1"]);
}

#[path = "engine/operate.rs"]
mod operate;
#[path = "engine/runs.rs"]
mod runs;
#[path = "engine/schedule.rs"]
mod schedule;
#[path = "engine/sub_workflow.rs"]
mod sub_workflow;

/// The cases each backend runs, one file per area.
mod cases {
    pub use super::{operate::*, runs::*, schedule::*, sub_workflow::*};
}

e2e!(
    fork_join_runs_both_branches_and_joins_once,
    failure_follows_the_error_path,
    retry_then_success_counts_two_attempts,
    each_attempt_runs_in_a_fresh_directory_of_its_own,
    a_task_running_again_shows_its_last_error_only_as_an_attempt,
    timeout_kills_the_attempt_and_fails,
    ignored_action_succeeds_without_running,
    kill_node_kills_the_instance_with_its_message,
    instance_limit_holds_extra_instances_pending,
    cron_chain_fires_once_per_slot_with_two_schedulers,
    many_coordinators_due_at_once_all_fire_on_a_small_pool,
    a_fire_missing_a_parameter_fails_its_instance_alone,
    blood_trigger_runs_the_downstream_chain,
    task_retry_reruns_a_failed_task_and_the_instance_continues,
    task_kill_stops_a_sleeping_shell_task,
    rerun_recover_keeps_succeeded_nodes,
    sigkilled_workers_task_is_rescued_and_completes,
    rescuer_works_through_lost_leases_in_batches,
    a_task_lost_past_its_budget_fails_with_an_event_and_an_alert,
    invariant_checker_reports_damage,
    host_pins_an_action_to_a_named_worker,
    script_runs_with_shebang_arguments_attachments_and_parameters,
    output_past_the_cap_is_truncated_with_a_marker,
    missed_slots_fire_once_with_parameters_of_the_slot,
    missed_slots_follow_the_catchup_policy,
    a_taken_slot_does_not_count_against_the_instance_limit,
    a_calendar_fires_on_business_days_and_counts_workdays,
    sub_workflow_waits_for_its_child_and_takes_its_result,
    killing_the_parent_kills_the_child,
    sub_workflow_without_wait_moves_on_at_once,
);
