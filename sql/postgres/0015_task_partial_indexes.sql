-- Task indexes over the rows that use them (#13). Every task changes status four times (waiting,
-- ready, running, an end) and none of those updates can be HOT, so each wrote all five of the
-- table's indexes, most entries for rows no query looks at: the claim reads ready rows only, the
-- lease renewal, rescuer and worker views running rows only. Partial indexes take an entry only
-- while a row is in that status (a task's updates now write 11 index entries instead of 20), stay
-- as small as the fleet's queue and slots, and a statement that names the status as a literal
-- (`status = 'ready'`) can use them; `status IN (...)` cannot, so such reads are a UNION ALL of one
-- per status.
DROP INDEX task_claim;
DROP INDEX task_worker;
DROP INDEX task_lease;
-- The claim of one (pool, queue): equality on pool and queue, then the ORDER BY.
CREATE INDEX task_ready ON task (pool, queue, priority DESC, run_at, id) WHERE status = 'ready';
-- A worker's running tasks (lease renewal, its page) and the running set scanned whole (a pool's
-- used slots): no larger than the fleet's slots.
CREATE INDEX task_running ON task (worker_id) WHERE status = 'running';
-- The rescuer's expired leases.
CREATE INDEX task_lease ON task (lease_until) WHERE status = 'running';
