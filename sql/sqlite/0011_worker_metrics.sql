-- Worker machine metrics: each worker's host as its last heartbeat sampled it (NULL until the first
-- sample; `cpu_percent` needs two), and a history of one row per worker per interval (a minute by
-- default, `worker_metric_secs`), pruned after `worker_metric_days`. No foreign key to `worker`: a
-- pruned dead worker's figures go by their own age. The key makes a re-sent insert a no-op.
ALTER TABLE worker ADD COLUMN cpu_percent REAL;
ALTER TABLE worker ADD COLUMN load1 REAL;
ALTER TABLE worker ADD COLUMN load5 REAL;
ALTER TABLE worker ADD COLUMN load15 REAL;
ALTER TABLE worker ADD COLUMN mem_used_bytes INTEGER;
ALTER TABLE worker ADD COLUMN mem_total_bytes INTEGER;
ALTER TABLE worker ADD COLUMN disk_free_bytes INTEGER;

CREATE TABLE worker_metric (
    worker_id       TEXT NOT NULL,
    sampled_at      TEXT NOT NULL,
    cpu_percent     REAL,
    load1           REAL NOT NULL,
    load5           REAL NOT NULL,
    load15          REAL NOT NULL,
    mem_used_bytes  INTEGER NOT NULL,
    mem_total_bytes INTEGER NOT NULL,
    disk_free_bytes INTEGER,
    running_tasks   INTEGER NOT NULL,
    PRIMARY KEY (worker_id, sampled_at)
);
CREATE INDEX worker_metric_at ON worker_metric (sampled_at);
