-- Pool occupancy history (#17): the master writes one row per pool per interval (a minute by
-- default, `pool_history_secs`), for the pools page's chart of the last hours; pruned after
-- `worker_metric_days` with the workers' host history. The key makes a repeated sample a no-op.
CREATE TABLE pool_sample (
    pool       VARCHAR(255) NOT NULL,
    sampled_at DATETIME(6) NOT NULL,
    slots      BIGINT NOT NULL,
    used       BIGINT NOT NULL,
    waiting    BIGINT NOT NULL,
    PRIMARY KEY (pool, sampled_at),
    KEY pool_sample_at (sampled_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
