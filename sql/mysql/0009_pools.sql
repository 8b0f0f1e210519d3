-- Pools and priorities (#17).
-- `pool` rows come from pools.xml (`file_slots`: what the file said at the last sync that changed
-- it) and `akkaflow pool set` (`slots`, the limit claims enforce). A task's `pool` is '' outside any
-- pool; a pooled claim locks the pool row and counts the pool's running `pool_slots` under it, so
-- the unpooled path never reads this table.
CREATE TABLE pool (
    name        VARCHAR(255) NOT NULL PRIMARY KEY,
    slots       BIGINT NOT NULL,
    file_slots  BIGINT NOT NULL,
    description TEXT NOT NULL,
    updated_at  DATETIME(6) NOT NULL,
    updated_by  VARCHAR(255) NOT NULL DEFAULT '',
    CONSTRAINT pool_slots_check CHECK (slots >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
ALTER TABLE db_link ADD COLUMN pool VARCHAR(255) NOT NULL DEFAULT '';
-- Serves the claim of one (pool, queue): equality on status, pool and queue, then the ORDER BY
-- (priority DESC, run_at, id): higher priority first, ties by readiness (descending index parts
-- need MariaDB 10.8+ or MySQL 8.0; older MariaDB sorts the range instead). Its (status, pool)
-- prefix also counts a pool's running tasks.
ALTER TABLE task ADD COLUMN pool VARCHAR(255) NOT NULL DEFAULT '',
    ADD COLUMN pool_slots BIGINT NOT NULL DEFAULT 1,
    DROP KEY task_claim,
    ADD KEY task_claim (status, pool, queue, priority DESC, run_at, id);
