-- akkaflow schema, MySQL 8.0+ / MariaDB 10.6+. Times are DATETIME(6) in UTC (every session runs with
-- time_zone '+00:00'); NOW(6), the database clock, is used for every comparison.

CREATE TABLE workflow (
    name            VARCHAR(255) NOT NULL PRIMARY KEY,
    version         BIGINT NOT NULL,
    content_hash    VARCHAR(64) NOT NULL,
    source_xml      MEDIUMTEXT NOT NULL,
    definition      MEDIUMTEXT NOT NULL,
    file_path       TEXT NOT NULL,
    dir             VARCHAR(255) NOT NULL,
    creator         VARCHAR(255) NOT NULL,
    description     TEXT NOT NULL,
    mail_level      VARCHAR(255) NOT NULL,
    mail_receivers  TEXT NOT NULL,
    instance_limit  BIGINT NOT NULL,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at      DATETIME(6) NOT NULL,
    updated_at      DATETIME(6) NOT NULL,
    KEY workflow_dir (dir, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every version ever synced, so an instance always runs the definition it was created with.
CREATE TABLE workflow_version (
    workflow        VARCHAR(255) NOT NULL,
    version         BIGINT NOT NULL,
    content_hash    VARCHAR(64) NOT NULL,
    source_xml      MEDIUMTEXT NOT NULL,
    definition      MEDIUMTEXT NOT NULL,
    created_at      DATETIME(6) NOT NULL,
    PRIMARY KEY (workflow, version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE coordinator (
    workflow        VARCHAR(255) NOT NULL PRIMARY KEY,
    cron            VARCHAR(255),
    timezone        VARCHAR(64) NOT NULL,
    depends         TEXT NOT NULL,
    params          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    start_time      DATETIME(6),
    end_time        DATETIME(6),
    next_fire_at    DATETIME(6),
    last_fire_at    DATETIME(6),
    updated_at      DATETIME(6) NOT NULL,
    KEY coordinator_due (enabled, next_fire_at),
    CONSTRAINT coordinator_workflow FOREIGN KEY (workflow) REFERENCES workflow (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Dependency progress: one row per (coordinator, upstream); satisfied_at is set when a propagating
-- instance of the upstream succeeds and cleared when the coordinator fires.
CREATE TABLE coordinator_depend (
    workflow                VARCHAR(255) NOT NULL,
    upstream                VARCHAR(255) NOT NULL,
    satisfied_at            DATETIME(6),
    satisfied_instance_id   BIGINT,
    PRIMARY KEY (workflow, upstream),
    KEY coordinator_depend_upstream (upstream)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE workflow_instance (
    id                  BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    workflow            VARCHAR(255) NOT NULL,
    workflow_version    BIGINT NOT NULL,
    status              VARCHAR(16) NOT NULL,
    params              MEDIUMTEXT NOT NULL,
    trigger_kind        VARCHAR(16) NOT NULL,
    scheduled_for       DATETIME(6) NOT NULL,
    parent_instance_id  BIGINT,
    error               TEXT,
    created_by          VARCHAR(255) NOT NULL,
    created_at          DATETIME(6) NOT NULL,
    started_at          DATETIME(6),
    ended_at            DATETIME(6),
    UNIQUE KEY workflow_instance_slot (workflow, trigger_kind, scheduled_for),
    KEY workflow_instance_status (status, workflow, id),
    KEY workflow_instance_workflow (workflow, id),
    KEY workflow_instance_parent (parent_instance_id),
    CONSTRAINT workflow_instance_status_check CHECK (status IN ('pending','running','succeeded','failed','killed')),
    CONSTRAINT workflow_instance_trigger_check CHECK (trigger_kind IN ('cron','dependency','trigger','blood','run','rerun','sub_workflow'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per node of an instance. Control nodes (start, fork, join, end, kill) and ignored actions
-- complete inside the transaction that reaches them; action nodes are claimed by workers.
CREATE TABLE task (
    id                  BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    instance_id         BIGINT NOT NULL,
    node                VARCHAR(255) NOT NULL,
    kind                VARCHAR(32) NOT NULL,
    status              VARCHAR(16) NOT NULL,
    attempt             BIGINT NOT NULL DEFAULT 0,
    max_attempts        BIGINT NOT NULL,
    retry_interval_s    BIGINT NOT NULL,
    timeout_s           BIGINT,
    queue               VARCHAR(255) NOT NULL,
    priority            BIGINT NOT NULL DEFAULT 0,
    run_at              DATETIME(6),
    worker_id           VARCHAR(255),
    lease_until         DATETIME(6),
    kill_requested      BOOLEAN NOT NULL DEFAULT FALSE,
    exit_code           BIGINT,
    error               TEXT,
    created_at          DATETIME(6) NOT NULL,
    started_at          DATETIME(6),
    ended_at            DATETIME(6),
    UNIQUE KEY task_node (instance_id, node),
    -- Serves the claim: equality on status and queue, then the ORDER BY (priority, run_at, id).
    KEY task_claim (status, queue, priority, run_at, id),
    KEY task_worker (worker_id, status),
    KEY task_lease (status, lease_until),
    CONSTRAINT task_instance FOREIGN KEY (instance_id) REFERENCES workflow_instance (id),
    CONSTRAINT task_status_check CHECK (status IN ('waiting','ready','running','succeeded','failed','killed','skipped'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per finished attempt (success, failure, timeout, kill, lost lease).
CREATE TABLE task_attempt (
    task_id     BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    worker_id   VARCHAR(255),
    outcome     VARCHAR(16) NOT NULL,
    exit_code   BIGINT,
    error       TEXT,
    started_at  DATETIME(6),
    ended_at    DATETIME(6) NOT NULL,
    PRIMARY KEY (task_id, attempt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE task_log (
    task_id     BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    logged_at   DATETIME(6) NOT NULL,
    stream      VARCHAR(8) NOT NULL,
    line        TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt, seq),
    CONSTRAINT task_log_stream_check CHECK (stream IN ('stdout','stderr','system'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE worker (
    id              VARCHAR(255) NOT NULL PRIMARY KEY,
    name            VARCHAR(255) NOT NULL,
    host            VARCHAR(255) NOT NULL,
    pid             BIGINT NOT NULL,
    queues          TEXT NOT NULL,
    slots           BIGINT NOT NULL,
    state           VARCHAR(16) NOT NULL,
    started_at      DATETIME(6) NOT NULL,
    heartbeat_at    DATETIME(6) NOT NULL,
    stopped_at      DATETIME(6),
    CONSTRAINT worker_state_check CHECK (state IN ('running','stopping','stopped'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE scheduler (
    id              VARCHAR(255) NOT NULL PRIMARY KEY,
    host            VARCHAR(255) NOT NULL,
    pid             BIGINT NOT NULL,
    state           VARCHAR(16) NOT NULL,
    epoch           BIGINT,
    master_since    DATETIME(6),
    started_at      DATETIME(6) NOT NULL,
    heartbeat_at    DATETIME(6) NOT NULL,
    CONSTRAINT scheduler_state_check CHECK (state IN ('standby','master','stopped'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The election epoch for every backend; on SQLite also the master lease itself.
CREATE TABLE master_lease (
    name            VARCHAR(64) NOT NULL PRIMARY KEY,
    holder          VARCHAR(255),
    epoch           BIGINT NOT NULL,
    lease_until     DATETIME(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO master_lease (name, holder, epoch, lease_until) VALUES ('master', NULL, 0, NULL);

CREATE TABLE event (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at      DATETIME(6) NOT NULL,
    workflow        VARCHAR(255),
    instance_id     BIGINT,
    task_id         BIGINT,
    node            VARCHAR(255),
    kind            VARCHAR(64) NOT NULL,
    from_status     VARCHAR(16),
    to_status       VARCHAR(16),
    message         TEXT NOT NULL,
    actor           VARCHAR(255) NOT NULL,
    KEY event_instance (instance_id, id),
    KEY event_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE alert (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    created_at      DATETIME(6) NOT NULL,
    kind            VARCHAR(32) NOT NULL,
    workflow        VARCHAR(255),
    instance_id     BIGINT,
    task_id         BIGINT,
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       MEDIUMTEXT NOT NULL,
    body_html       MEDIUMTEXT NOT NULL,
    status          VARCHAR(16) NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6) NOT NULL,
    last_error      TEXT,
    sent_at         DATETIME(6),
    KEY alert_pending (status, next_attempt_at),
    CONSTRAINT alert_status_check CHECK (status IN ('pending','sent','failed'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE db_link (
    name        VARCHAR(255) NOT NULL PRIMARY KEY,
    kind        VARCHAR(16) NOT NULL,
    url         TEXT NOT NULL,
    username    VARCHAR(255) NOT NULL,
    password    VARCHAR(255) NOT NULL,
    properties  TEXT NOT NULL,
    updated_at  DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE file_link (
    name        VARCHAR(255) NOT NULL PRIMARY KEY,
    kind        VARCHAR(16) NOT NULL,
    host        VARCHAR(255) NOT NULL,
    port        BIGINT NOT NULL,
    username    VARCHAR(255) NOT NULL,
    password    VARCHAR(255) NOT NULL,
    description TEXT NOT NULL,
    updated_at  DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE data_monitor (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    checked_at      DATETIME(6) NOT NULL,
    workflow        VARCHAR(255) NOT NULL,
    instance_id     BIGINT NOT NULL,
    task_id         BIGINT NOT NULL,
    node            VARCHAR(255) NOT NULL,
    category        VARCHAR(255),
    source_name     VARCHAR(255),
    time_mark       VARCHAR(255),
    value           DOUBLE,
    min_value       DOUBLE,
    max_value       DOUBLE,
    passed          BOOLEAN NOT NULL,
    message         TEXT NOT NULL,
    KEY data_monitor_instance (instance_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE VIEW v_running_tasks AS
SELECT t.id AS task_id, i.workflow, t.instance_id, t.node, t.kind, t.attempt, t.max_attempts,
       t.worker_id, t.started_at, t.lease_until, t.kill_requested,
       TIMESTAMPDIFF(SECOND, t.started_at, UTC_TIMESTAMP(6)) AS running_s
FROM task t JOIN workflow_instance i ON i.id = t.instance_id
WHERE t.status = 'running';

CREATE VIEW v_instance_summary AS
SELECT i.id AS instance_id, i.workflow, i.workflow_version, i.status, i.trigger_kind, i.scheduled_for,
       i.created_at, i.started_at, i.ended_at,
       TIMESTAMPDIFF(SECOND, i.started_at, COALESCE(i.ended_at, UTC_TIMESTAMP(6))) AS duration_s,
       SUM(CASE WHEN t.status = 'succeeded' THEN 1 ELSE 0 END) AS tasks_succeeded,
       SUM(CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END) AS tasks_failed,
       SUM(CASE WHEN t.status = 'running' THEN 1 ELSE 0 END) AS tasks_running,
       SUM(CASE WHEN t.status IN ('waiting', 'ready') THEN 1 ELSE 0 END) AS tasks_waiting,
       i.error
FROM workflow_instance i LEFT JOIN task t ON t.instance_id = i.id
GROUP BY i.id, i.workflow, i.workflow_version, i.status, i.trigger_kind, i.scheduled_for,
         i.created_at, i.started_at, i.ended_at, i.error;
