-- Worker machine metrics: each worker's host as its last heartbeat sampled it (NULL until the first
-- sample; `cpu_percent` needs two), and a history of one row per worker per interval (a minute by
-- default, `worker_metric_secs`), pruned after `worker_metric_days`. No foreign key to `worker`: a
-- pruned dead worker's figures go by their own age. The key makes a re-sent insert a no-op.
ALTER TABLE worker
    ADD COLUMN cpu_percent DOUBLE PRECISION,
    ADD COLUMN load1 DOUBLE PRECISION,
    ADD COLUMN load5 DOUBLE PRECISION,
    ADD COLUMN load15 DOUBLE PRECISION,
    ADD COLUMN mem_used_bytes BIGINT,
    ADD COLUMN mem_total_bytes BIGINT,
    ADD COLUMN disk_free_bytes BIGINT;

CREATE TABLE worker_metric (
    worker_id       TEXT NOT NULL,
    sampled_at      TIMESTAMPTZ NOT NULL,
    cpu_percent     DOUBLE PRECISION,
    load1           DOUBLE PRECISION NOT NULL,
    load5           DOUBLE PRECISION NOT NULL,
    load15          DOUBLE PRECISION NOT NULL,
    mem_used_bytes  BIGINT NOT NULL,
    mem_total_bytes BIGINT NOT NULL,
    disk_free_bytes BIGINT,
    running_tasks   BIGINT NOT NULL,
    PRIMARY KEY (worker_id, sampled_at)
);
CREATE INDEX worker_metric_at ON worker_metric (sampled_at);
