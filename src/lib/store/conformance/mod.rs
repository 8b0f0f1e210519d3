//! One conformance suite for every backend (River's driver tests): each case is a plain async fn on
//! `&dyn Store`, and the macros below stamp out one test per case per backend, each on a fresh
//! database. When a case passes on SQLite and fails on MySQL, the bug is in `mysql/`: never fork the
//! case.

macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        suite!(sqlite, crate::testkit::open_sqlite; $($case),+);
        suite!(postgres, crate::testkit::open_postgres; $($case),+);
        suite!(mysql, crate::testkit::open_mysql; $($case),+);
    };
}

macro_rules! suite {
    ($db:ident, $open:path; $($case:ident),+) => {
        mod $db {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(store) = $open(stringify!($case)).await else { return }; // printed why
                    super::cases::$case(&*store).await;
                }
            )+
        }
    };
}

conformance!(
    migrations_apply_twice,
    db_clock_is_utc,
    workflow_round_trip,
    workflow_version_kept_per_version,
    workflow_rollback_mark_round_trips,
    coordinator_due_follows_db_clock,
    coordinator_set_next_and_fire_are_cas,
    coordinator_depend_clear_is_cas,
    coordinator_fire_many_applies_each_cas,
    instance_slot_is_unique,
    instance_insert_many_is_all_or_none,
    instance_lock_returns_row_and_db_time,
    instance_lock_free_skips_rows_held_elsewhere,
    instance_transition_is_cas,
    changes_write_applies_each_run_and_reads_pending,
    instance_search_filters_counts_and_pages,
    task_insert_many_and_list,
    instance_and_tasks_inserted_started,
    claim_respects_limit,
    claim_filters_queues_and_run_at,
    claim_orders_by_priority_desc_then_run_at,
    concurrent_claimers_are_disjoint,
    stale_worker_cannot_complete_rescued_task,
    lease_extend_touches_only_own_running_tasks,
    expired_lease_is_found,
    kill_check_finds_killed_and_lost_tasks,
    task_log_pages_with_after,
    task_attempt_key_is_unique,
    events_filter_and_page,
    worker_lifecycle,
    worker_host_rides_the_heartbeat_and_its_history_has_one_row_per_interval,
    scheduler_heartbeat_tracks_master_since,
    links_upsert_list_delete,
    links_read_back_by_name,
    calendars_upsert_list_delete,
    data_monitor_checks_are_recorded_in_order,
    master_lock_is_exclusive,
    crossed_row_locks_fail_retryably,
    kill_request_keeps_the_task_running,
    queue_depth_counts_due_ready_and_running,
    ready_tasks_due_sees_only_tasks_a_worker_could_claim_now,
    ready_tasks_due_counts_pooled_tasks,
    ready_notification_reaches_a_listener,
    tokens_and_sessions_round_trip_and_revoke,
    http_listings_scope_summarise_and_hide_passwords,
    alert_outbox_is_transactional_and_cas,
    alert_facts_are_read_in_the_transaction,
    channel_rows_are_due_without_smtp_and_resend_once,
    retention_finds_ended_top_level_instances_past_their_workflows_retention,
    retention_delete_takes_an_ended_tree_a_bounded_step_at_a_time,
    retention_loose_rows_go_by_age_and_live_processes_stay,
    retention_takes_worker_history_by_its_own_age,
    definition_sync_keeps_the_first_failure_and_the_last_good_sync,
    pool_claim_keeps_to_the_slots_and_skips_nothing_else,
    pool_claims_in_parallel_never_exceed_the_slots,
    pool_lowered_while_full_starts_nothing_until_under,
    pool_orders_by_priority_and_heavy_tasks_wait_their_turn,
    pool_history_records_each_interval_once_and_goes_by_age,
    backfill_round_trips_with_its_slots,
    backfill_slot_is_created_once_per_backfill,
    backfill_transition_is_cas_and_stamps_the_end,
    backfill_history_has_each_slots_latest_instance_and_queued_slots,
    retention_prunes_ended_backfills_with_their_slots,
);

mod access;
mod alerts;
mod backfills;
mod definitions;
mod fixtures;
mod instances;
mod pools;
mod processes;
mod records;
mod retention;
mod tasks;

// MySQL 8 has no INSERT … RETURNING: its read-back of inserted ids, run on MariaDB.
suite!(
    mysql_reading_ids_back,
    crate::store::mysql::MysqlStore::open_reading_ids_back;
    instance_insert_many_is_all_or_none,
    task_insert_many_and_list,
    instance_and_tasks_inserted_started
);

/// Every case by name, for the macros.
mod cases {
    pub(super) use super::access::*;
    pub(super) use super::alerts::*;
    pub(super) use super::backfills::*;
    pub(super) use super::definitions::*;
    pub(super) use super::instances::*;
    pub(super) use super::pools::*;
    pub(super) use super::processes::*;
    pub(super) use super::records::*;
    pub(super) use super::retention::*;
    pub(super) use super::tasks::*;
}
