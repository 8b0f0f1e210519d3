-- Pools and priorities (#17).
-- `pool` rows come from pools.xml (`file_slots`: what the file said at the last sync that changed
-- it) and `akkaflow pool set` (`slots`, the limit claims enforce). A task's `pool` is '' outside any
-- pool; a pooled claim counts the pool's running `pool_slots` inside its (single-writer)
-- transaction, so the unpooled path never reads this table.
CREATE TABLE pool (
    name        TEXT PRIMARY KEY,
    slots       INTEGER NOT NULL CHECK (slots >= 0),
    file_slots  INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    updated_at  TEXT NOT NULL,
    updated_by  TEXT NOT NULL DEFAULT ''
);
ALTER TABLE task ADD COLUMN pool TEXT NOT NULL DEFAULT '';
ALTER TABLE task ADD COLUMN pool_slots INTEGER NOT NULL DEFAULT 1;
ALTER TABLE db_link ADD COLUMN pool TEXT NOT NULL DEFAULT '';
-- Serves the claim of one (pool, queue): equality on status, pool and queue, then the ORDER BY
-- (priority DESC, run_at, id): higher priority first, ties by readiness. Its (status, pool) prefix
-- also counts a pool's running tasks.
DROP INDEX task_claim;
CREATE INDEX task_claim ON task (status, pool, queue, priority DESC, run_at, id);
