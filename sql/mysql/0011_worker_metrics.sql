-- Worker machine metrics: each worker's host as its last heartbeat sampled it (NULL until the first
-- sample; `cpu_percent` needs two), and a history of one row per worker per interval (a minute by
-- default, `worker_metric_secs`), pruned after `worker_metric_days`. No foreign key to `worker`: a
-- pruned dead worker's figures go by their own age. The key makes a re-sent insert a no-op.
ALTER TABLE worker
    ADD COLUMN cpu_percent DOUBLE,
    ADD COLUMN load1 DOUBLE,
    ADD COLUMN load5 DOUBLE,
    ADD COLUMN load15 DOUBLE,
    ADD COLUMN mem_used_bytes BIGINT,
    ADD COLUMN mem_total_bytes BIGINT,
    ADD COLUMN disk_free_bytes BIGINT;

CREATE TABLE worker_metric (
    worker_id       VARCHAR(255) NOT NULL,
    sampled_at      DATETIME(6) NOT NULL,
    cpu_percent     DOUBLE,
    load1           DOUBLE NOT NULL,
    load5           DOUBLE NOT NULL,
    load15          DOUBLE NOT NULL,
    mem_used_bytes  BIGINT NOT NULL,
    mem_total_bytes BIGINT NOT NULL,
    disk_free_bytes BIGINT,
    running_tasks   BIGINT NOT NULL,
    PRIMARY KEY (worker_id, sampled_at),
    KEY worker_metric_at (sampled_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
