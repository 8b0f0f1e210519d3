-- Pool occupancy history (#17): the master writes one row per pool per interval (a minute by
-- default, `pool_history_secs`), for the pools page's chart of the last hours; pruned after
-- `worker_metric_days` with the workers' host history. The key makes a repeated sample a no-op.
CREATE TABLE pool_sample (
    pool       TEXT NOT NULL,
    sampled_at TEXT NOT NULL,
    slots      INTEGER NOT NULL,
    used       INTEGER NOT NULL,
    waiting    INTEGER NOT NULL,
    PRIMARY KEY (pool, sampled_at)
);
CREATE INDEX pool_sample_at ON pool_sample (sampled_at);
