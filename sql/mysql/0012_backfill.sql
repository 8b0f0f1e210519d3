-- Issue #16, backfill: a backfill is a row of its own (its range, policy, parallelism, who and how
-- it ended) with one row per cron slot it covers; the master's backfill service creates each slot's
-- instance (`trigger_kind = 'backfill'`, `backfill_id` set) and records it on the slot.
--
-- `workflow_instance` gains `backfill_id` (0: not a backfill) and its unique slot key takes it in,
-- so a backfill creates each slot at most once whoever is master, a later backfill (`--reprocess
-- all`) can run the slot again, and cron/dependency slots stay unique as before.
ALTER TABLE workflow_instance DROP CONSTRAINT workflow_instance_trigger_check;
ALTER TABLE workflow_instance ADD CONSTRAINT workflow_instance_trigger_check
    CHECK (trigger_kind IN ('cron','dependency','trigger','blood','run','rerun','sub_workflow','backfill'));
ALTER TABLE workflow_instance ADD COLUMN backfill_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workflow_instance DROP INDEX workflow_instance_slot,
    ADD UNIQUE KEY workflow_instance_slot (workflow, trigger_kind, scheduled_for, backfill_id);
CREATE INDEX workflow_instance_backfill ON workflow_instance (backfill_id, status);

CREATE TABLE backfill (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    workflow        VARCHAR(255) NOT NULL,
    -- the requested range, both ends included (a date END is the end of its day)
    range_from      DATETIME(6) NOT NULL,
    range_to        DATETIME(6) NOT NULL,
    reprocess       VARCHAR(16) NOT NULL,
    parallel        BIGINT NOT NULL,
    reverse         BOOLEAN NOT NULL,
    blood           BOOLEAN NOT NULL,
    params          MEDIUMTEXT NOT NULL,
    -- every task's priority; NULL: each task's own priority minus one
    priority        BIGINT,
    created_by      VARCHAR(255) NOT NULL,
    status          VARCHAR(16) NOT NULL,
    error           TEXT,
    created_at      DATETIME(6) NOT NULL,
    ended_at        DATETIME(6),
    KEY backfill_status (status, id),
    KEY backfill_workflow (workflow, id),
    KEY backfill_ended (ended_at),
    CONSTRAINT backfill_reprocess_check CHECK (reprocess IN ('missing','failed','all')),
    CONSTRAINT backfill_status_check CHECK (status IN ('running','succeeded','failed','cancelled'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per slot of a backfill: skipped (and why), waiting for its turn, or its instance.
CREATE TABLE backfill_slot (
    backfill_id     BIGINT NOT NULL,
    slot            DATETIME(6) NOT NULL,
    skip_reason     TEXT,
    instance_id     BIGINT,
    PRIMARY KEY (backfill_id, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
