-- Issue #16, backfill: a backfill is a row of its own (its range, policy, parallelism, who and how
-- it ended) with one row per cron slot it covers; the master's backfill service creates each slot's
-- instance (`trigger_kind = 'backfill'`, `backfill_id` set) and records it on the slot.
--
-- `workflow_instance` gains `backfill_id` (0: not a backfill) and its unique slot key takes it in,
-- so a backfill creates each slot at most once whoever is master, a later backfill (`--reprocess
-- all`) can run the slot again, and cron/dependency slots stay unique as before. SQLite cannot
-- change a CHECK or a UNIQUE in place: the table is rebuilt. `legacy_alter_table` keeps the rename
-- from rewriting `task`'s foreign key and the views to the old name, so they bind to the new table.
PRAGMA legacy_alter_table = ON;
ALTER TABLE workflow_instance RENAME TO workflow_instance_old;
CREATE TABLE workflow_instance (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow            TEXT NOT NULL,
    workflow_version    INTEGER NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','killed')),
    params              TEXT NOT NULL,
    trigger_kind        TEXT NOT NULL CHECK (trigger_kind IN ('cron','dependency','trigger','blood','run','rerun','sub_workflow','backfill')),
    scheduled_for       TEXT NOT NULL,
    parent_instance_id  INTEGER,
    error               TEXT,
    created_by          TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    started_at          TEXT,
    ended_at            TEXT,
    parent_task_id      INTEGER,
    backfill_id         INTEGER NOT NULL DEFAULT 0,
    UNIQUE (workflow, trigger_kind, scheduled_for, backfill_id)
);
INSERT INTO workflow_instance (id, workflow, workflow_version, status, params, trigger_kind, scheduled_for,
    parent_instance_id, error, created_by, created_at, started_at, ended_at, parent_task_id)
SELECT id, workflow, workflow_version, status, params, trigger_kind, scheduled_for,
    parent_instance_id, error, created_by, created_at, started_at, ended_at, parent_task_id
FROM workflow_instance_old;
-- AUTOINCREMENT: ids of pruned instances are never handed out again
DELETE FROM sqlite_sequence WHERE name = 'workflow_instance';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'workflow_instance', seq FROM sqlite_sequence WHERE name = 'workflow_instance_old';
DROP TABLE workflow_instance_old;
PRAGMA legacy_alter_table = OFF;
CREATE INDEX workflow_instance_status ON workflow_instance (status, workflow, id);
CREATE INDEX workflow_instance_workflow ON workflow_instance (workflow, id);
CREATE INDEX workflow_instance_parent ON workflow_instance (parent_instance_id);
CREATE INDEX workflow_instance_ended ON workflow_instance (ended_at);
CREATE INDEX workflow_instance_backfill ON workflow_instance (backfill_id, status);

CREATE TABLE backfill (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow        TEXT NOT NULL,
    -- the requested range as UTC instants, both ends included (a date END is the end of its day)
    range_from      TEXT NOT NULL,
    range_to        TEXT NOT NULL,
    reprocess       TEXT NOT NULL CHECK (reprocess IN ('missing','failed','all')),
    parallel        INTEGER NOT NULL,
    reverse         INTEGER NOT NULL,
    blood           INTEGER NOT NULL,
    params          TEXT NOT NULL,
    -- every task's priority; NULL: each task's own priority minus one
    priority        INTEGER,
    created_by      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running','succeeded','failed','cancelled')),
    error           TEXT,
    created_at      TEXT NOT NULL,
    ended_at        TEXT
);
CREATE INDEX backfill_status ON backfill (status, id);
CREATE INDEX backfill_workflow ON backfill (workflow, id);
CREATE INDEX backfill_ended ON backfill (ended_at);

-- One row per slot of a backfill: skipped (and why), waiting for its turn, or its instance.
CREATE TABLE backfill_slot (
    backfill_id     INTEGER NOT NULL,
    slot            TEXT NOT NULL,
    skip_reason     TEXT,
    instance_id     INTEGER,
    PRIMARY KEY (backfill_id, slot)
);
