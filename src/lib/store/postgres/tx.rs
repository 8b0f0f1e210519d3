//! PostgreSQL: the store's transaction, [`StoreTx`]: what the engine writes in one transaction, and
//! the rows it buffers until commit.

use super::*;

pub(super) struct PostgresTx {
    pub(super) tx: Transaction<'static, Postgres>,
    /// Events written by this transaction, inserted together at commit (one statement, not one per change).
    pub(super) events: Vec<NewEvent>,
    /// Attempt rows, likewise inserted together at commit (a duplicate fails the commit).
    pub(super) attempts: Vec<AttemptRow>,
    /// Log lines, likewise: written with the attempts and events in one statement.
    pub(super) logs: Vec<LogLine>,
}

impl PostgresTx {
    /// Writes what this transaction buffered: its attempt rows, log lines and events.
    async fn flush_buffered(&mut self) -> Result<()> {
        let attempts = std::mem::take(&mut self.attempts);
        let logs = std::mem::take(&mut self.logs);
        let events = std::mem::take(&mut self.events);
        records::records_insert(&mut self.tx, &attempts, &logs, &events).await
    }
}

#[async_trait]
impl StoreTx for PostgresTx {
    async fn coordinator_deadline_set(
        &mut self,
        workflow: &str,
        deadline: Option<&str>,
    ) -> Result<()> {
        deadlines::set(&mut self.tx, workflow, deadline).await
    }

    async fn deadline_checked(
        &mut self,
        workflow: &str,
        expected: Option<DateTime<Utc>>,
        through: DateTime<Utc>,
    ) -> Result<Cas> {
        deadlines::checked(&mut self.tx, workflow, expected, through).await
    }

    async fn deadline_miss_insert(&mut self, m: &NewDeadlineMiss) -> Result<bool> {
        deadlines::miss_insert(&mut self.tx, m).await
    }

    async fn deadline_miss_done(&mut self, id: i64, done_at: DateTime<Utc>) -> Result<Cas> {
        deadlines::miss_done(&mut self.tx, id, done_at).await
    }

    async fn alert_insert(&mut self, a: &NewAlert) -> Result<()> {
        alerts::insert(&mut self.tx, a).await
    }

    async fn backfill_create(
        &mut self,
        b: &NewBackfill,
        slots: &[NewBackfillSlot],
    ) -> Result<BackfillId> {
        backfills::create(&mut self.tx, b, slots).await
    }

    async fn backfill_get(&mut self, id: BackfillId) -> Result<Option<BackfillRow>> {
        backfills::get(&mut self.tx, id, false).await
    }

    async fn backfill_lock(&mut self, id: BackfillId) -> Result<Option<BackfillRow>> {
        backfills::get(&mut self.tx, id, true).await
    }

    async fn backfill_slot_launch(
        &mut self,
        id: BackfillId,
        slot: DateTime<Utc>,
        instance: InstanceId,
    ) -> Result<Cas> {
        backfills::slot_launch(&mut self.tx, id, slot, instance).await
    }

    async fn backfill_slot_list(&mut self, id: BackfillId) -> Result<Vec<BackfillSlotRow>> {
        backfills::slot_list(&mut self.tx, id).await
    }

    async fn backfill_transition(&mut self, t: &BackfillTransition) -> Result<Cas> {
        backfills::transition(&mut self.tx, t).await
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        self.flush_buffered().await?;
        Ok(self.tx.commit().await?)
    }

    async fn coordinator_downstream(&mut self, upstream: &str) -> Result<Vec<String>> {
        alerts::downstream(&mut *self.tx, upstream).await
    }

    async fn coordinator_delete(&mut self, workflow: &str) -> Result<()> {
        definitions::coordinator_delete(&mut self.tx, workflow).await
    }

    async fn coordinator_depend_clear(&mut self, workflow: &str, expected: usize) -> Result<Cas> {
        definitions::coordinator_depend_clear(&mut self.tx, workflow, expected).await
    }

    async fn coordinator_depend_set(&mut self, workflow: &str, upstreams: &[String]) -> Result<()> {
        definitions::coordinator_depend_set(&mut self.tx, workflow, upstreams).await
    }

    async fn coordinator_depend_satisfy_many(
        &mut self,
        satisfied: &[(String, InstanceId)],
    ) -> Result<u64> {
        definitions::coordinator_depend_satisfy_many(&mut self.tx, satisfied).await
    }

    async fn coordinator_fire_many(&mut self, fires: &[CoordinatorFire]) -> Result<u64> {
        definitions::coordinator_fire_many(&mut self.tx, fires).await
    }

    async fn coordinator_list_all(&mut self) -> Result<Vec<CoordinatorRow>> {
        definitions::coordinator_list_all(&mut self.tx).await
    }

    async fn coordinator_upsert(&mut self, c: &CoordinatorRow) -> Result<()> {
        definitions::coordinator_upsert(&mut self.tx, c).await
    }

    async fn calendar_list_all(&mut self) -> Result<Vec<CalendarRow>> {
        calendars::calendar_list_tx(&mut self.tx).await
    }

    async fn calendar_upsert(&mut self, c: &CalendarRow) -> Result<()> {
        calendars::calendar_upsert(&mut self.tx, c).await
    }

    async fn calendar_delete(&mut self, name: &str) -> Result<()> {
        calendars::calendar_delete(&mut self.tx, name).await
    }

    async fn db_link_delete(&mut self, name: &str) -> Result<()> {
        definitions::db_link_delete(&mut self.tx, name).await
    }

    async fn db_link_names(&mut self) -> Result<Vec<String>> {
        definitions::db_link_names(&mut self.tx).await
    }

    async fn db_link_upsert(&mut self, l: &DbLink) -> Result<()> {
        definitions::db_link_upsert(&mut self.tx, l).await
    }

    async fn now(&mut self) -> Result<DateTime<Utc>> {
        clock(&mut self.tx).await
    }

    async fn workflow_definition(&mut self, name: &str, version: i64) -> Result<Option<String>> {
        definitions::workflow_definition(&mut self.tx, name, version).await
    }

    async fn event_insert_many(&mut self, events: &[NewEvent]) -> Result<()> {
        self.events.extend_from_slice(events);
        Ok(())
    }

    async fn file_link_delete(&mut self, name: &str) -> Result<()> {
        definitions::file_link_delete(&mut self.tx, name).await
    }

    async fn file_link_names(&mut self) -> Result<Vec<String>> {
        definitions::file_link_names(&mut self.tx).await
    }

    async fn file_link_upsert(&mut self, l: &FileLink) -> Result<()> {
        definitions::file_link_upsert(&mut self.tx, l).await
    }

    async fn instance_children_active(&mut self, parent: InstanceId) -> Result<Vec<InstanceId>> {
        runs::instance_children_active(&mut self.tx, parent).await
    }

    async fn instance_count_running_many(
        &mut self,
        workflows: &[String],
    ) -> Result<Vec<(String, i64)>> {
        runs::instance_count_running_many(&mut self.tx, workflows).await
    }

    async fn instance_insert_many(
        &mut self,
        rows: &[NewInstance],
    ) -> Result<Option<Vec<InstanceId>>> {
        runs::instance_insert_many(&mut self.tx, rows).await
    }

    async fn instance_lock_many(
        &mut self,
        ids: &[InstanceId],
    ) -> Result<Vec<(InstanceRow, DateTime<Utc>)>> {
        runs::instance_lock_many(&mut self.tx, ids, false).await
    }

    async fn instance_lock_free(
        &mut self,
        ids: &[InstanceId],
    ) -> Result<Vec<(InstanceRow, DateTime<Utc>)>> {
        runs::instance_lock_many(&mut self.tx, ids, true).await
    }

    async fn changes_write(&mut self, c: &Changes) -> Result<ChangesWritten> {
        match runs::changes_write(&mut self.tx, c).await? {
            Some(written) => Ok(written),
            None => super::super::changes_write_each(self, c).await,
        }
    }

    async fn instance_pending_among(&mut self, workflows: &[String]) -> Result<Vec<String>> {
        runs::instance_pending_among(&mut self.tx, workflows).await
    }

    async fn instance_pending_oldest(
        &mut self,
        workflow: &str,
        limit: i64,
    ) -> Result<Vec<InstanceId>> {
        runs::instance_pending_oldest(&mut self.tx, workflow, limit).await
    }

    async fn instance_transition_many(
        &mut self,
        ids: &[InstanceId],
        p: &InstanceTransition,
    ) -> Result<u64> {
        runs::instance_transition_many(&mut self.tx, ids, p).await
    }

    async fn notify_ready(&mut self) -> Result<()> {
        // delivered at commit, once per transaction and channel however often it is called
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(READY_CHANNEL)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn pool_delete(&mut self, name: &str) -> Result<()> {
        pools::delete(&mut self.tx, name).await
    }

    async fn pool_lock(&mut self, name: &str) -> Result<Option<PoolDef>> {
        pools::lock(&mut self.tx, name).await
    }

    async fn pool_defs(&mut self) -> Result<Vec<PoolDef>> {
        pools::defs(&mut self.tx).await
    }

    async fn pool_write(&mut self, p: &PoolDef) -> Result<()> {
        pools::write(&mut self.tx, p).await
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }

    async fn task_attempt_insert(&mut self, a: &AttemptRow) -> Result<()> {
        self.attempts.push(a.clone());
        Ok(())
    }

    async fn task_insert_many(&mut self, tasks: &[NewTask]) -> Result<Vec<TaskId>> {
        runs::task_insert_many(&mut self.tx, tasks).await
    }

    async fn task_log_tail(&mut self, id: TaskId, limit: i64) -> Result<Vec<String>> {
        // the tail includes the lines this transaction is still holding
        self.flush_buffered().await?;
        alerts::log_tail(&mut self.tx, id, limit).await
    }

    async fn task_log_insert_many(&mut self, lines: &[LogLine]) -> Result<()> {
        self.logs.extend_from_slice(lines);
        Ok(())
    }

    async fn task_list_many(&mut self, ids: &[InstanceId]) -> Result<Vec<TaskRow>> {
        runs::task_list_many(&mut self.tx, ids).await
    }

    async fn task_request_kill(&mut self, id: TaskId) -> Result<Cas> {
        runs::task_request_kill(&mut self.tx, id).await
    }

    async fn task_transition_many(&mut self, ids: &[TaskId], p: &TaskTransition) -> Result<u64> {
        runs::task_transition_many(&mut self.tx, ids, p).await
    }

    async fn token_create(&mut self, p: &NewToken) -> Result<Option<TokenRow>> {
        tokens::token_create(&mut self.tx, p).await
    }

    async fn token_revoke(&mut self, name: &str) -> Result<Cas> {
        tokens::token_revoke(&mut self.tx, name).await
    }

    async fn workflow_heads(&mut self) -> Result<Vec<WorkflowHead>> {
        definitions::workflow_heads(&mut self.tx).await
    }

    async fn workflow_lock_many(&mut self, names: &[String]) -> Result<Vec<WorkflowHead>> {
        definitions::workflow_lock_many(&mut self.tx, names).await
    }

    async fn workflow_receivers(&mut self, names: &[String]) -> Result<Vec<String>> {
        alerts::receivers(&mut self.tx, names).await
    }

    async fn workflow_set_enabled(&mut self, name: &str, enabled: bool) -> Result<Cas> {
        definitions::workflow_set_enabled(&mut self.tx, name, enabled).await
    }

    async fn workflow_set_rolled_back(&mut self, name: &str, to: Option<i64>) -> Result<()> {
        definitions::workflow_set_rolled_back(&mut self.tx, name, to).await
    }

    async fn workflow_upsert(&mut self, w: &WorkflowUpsert) -> Result<()> {
        definitions::workflow_upsert(&mut self.tx, w).await
    }
}
