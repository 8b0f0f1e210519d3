-- Retention: a workflow may keep its finished instances longer or shorter than `retention_days` of
-- the configuration (NULL: the configured default). The pruner finds old ended instances by
-- `ended_at` and deletes an instance's alerts by `instance_id`, both through these indexes.
ALTER TABLE workflow ADD COLUMN retention_days BIGINT NULL;
CREATE INDEX workflow_instance_ended ON workflow_instance (ended_at);
CREATE INDEX alert_instance ON alert (instance_id);

-- The last rescan of a definitions directory (standalone): when its set last synced, and since when
-- it has had errors (the last good set keeps running meanwhile). Any HTTP process shows it.
CREATE TABLE definition_sync (
    source          VARCHAR(255) NOT NULL PRIMARY KEY,
    synced_at       DATETIME(6),
    failing_since   DATETIME(6),
    error_count     BIGINT NOT NULL DEFAULT 0,
    errors          MEDIUMTEXT NOT NULL,
    updated_at      DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
