-- akkaflow schema, SQLite. Times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS' so they compare as strings
-- and match strftime('%Y-%m-%d %H:%M:%f','now'), the database clock used for every comparison.

CREATE TABLE workflow (
    name            TEXT PRIMARY KEY,
    version         INTEGER NOT NULL,
    content_hash    TEXT NOT NULL,
    source_xml      TEXT NOT NULL,
    definition      TEXT NOT NULL,
    file_path       TEXT NOT NULL,
    dir             TEXT NOT NULL,
    creator         TEXT NOT NULL,
    description     TEXT NOT NULL,
    mail_level      TEXT NOT NULL,
    mail_receivers  TEXT NOT NULL,
    instance_limit  INTEGER NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX workflow_dir ON workflow (dir, name);

-- Every version ever synced, so an instance always runs the definition it was created with.
CREATE TABLE workflow_version (
    workflow        TEXT NOT NULL,
    version         INTEGER NOT NULL,
    content_hash    TEXT NOT NULL,
    source_xml      TEXT NOT NULL,
    definition      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (workflow, version)
);

CREATE TABLE coordinator (
    workflow        TEXT PRIMARY KEY REFERENCES workflow (name),
    cron            TEXT,
    timezone        TEXT NOT NULL,
    depends         TEXT NOT NULL,
    params          TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    start_time      TEXT,
    end_time        TEXT,
    next_fire_at    TEXT,
    last_fire_at    TEXT,
    updated_at      TEXT NOT NULL
);
CREATE INDEX coordinator_due ON coordinator (enabled, next_fire_at);

-- Dependency progress: one row per (coordinator, upstream); satisfied_at is set when a propagating
-- instance of the upstream succeeds and cleared when the coordinator fires.
CREATE TABLE coordinator_depend (
    workflow                TEXT NOT NULL,
    upstream                TEXT NOT NULL,
    satisfied_at            TEXT,
    satisfied_instance_id   INTEGER,
    PRIMARY KEY (workflow, upstream)
);
CREATE INDEX coordinator_depend_upstream ON coordinator_depend (upstream);

CREATE TABLE workflow_instance (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow            TEXT NOT NULL,
    workflow_version    INTEGER NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','killed')),
    params              TEXT NOT NULL,
    trigger_kind        TEXT NOT NULL CHECK (trigger_kind IN ('cron','dependency','trigger','blood','run','rerun','sub_workflow')),
    scheduled_for       TEXT NOT NULL,
    parent_instance_id  INTEGER,
    error               TEXT,
    created_by          TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    started_at          TEXT,
    ended_at            TEXT,
    UNIQUE (workflow, trigger_kind, scheduled_for)
);
CREATE INDEX workflow_instance_status ON workflow_instance (status, workflow, id);
CREATE INDEX workflow_instance_workflow ON workflow_instance (workflow, id);
CREATE INDEX workflow_instance_parent ON workflow_instance (parent_instance_id);

-- One row per node of an instance. Control nodes (start, fork, join, end, kill) and ignored actions
-- complete inside the transaction that reaches them; action nodes are claimed by workers.
CREATE TABLE task (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id         INTEGER NOT NULL REFERENCES workflow_instance (id),
    node                TEXT NOT NULL,
    kind                TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('waiting','ready','running','succeeded','failed','killed','skipped')),
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    retry_interval_s    INTEGER NOT NULL,
    timeout_s           INTEGER,
    queue               TEXT NOT NULL,
    priority            INTEGER NOT NULL DEFAULT 0,
    run_at              TEXT,
    worker_id           TEXT,
    lease_until         TEXT,
    kill_requested      INTEGER NOT NULL DEFAULT 0,
    exit_code           INTEGER,
    error               TEXT,
    created_at          TEXT NOT NULL,
    started_at          TEXT,
    ended_at            TEXT,
    UNIQUE (instance_id, node)
);
-- Serves the claim: equality on status and queue, then the ORDER BY (priority, run_at, id).
CREATE INDEX task_claim ON task (status, queue, priority, run_at, id);
CREATE INDEX task_worker ON task (worker_id, status);
CREATE INDEX task_lease ON task (status, lease_until);

-- One row per finished attempt (success, failure, timeout, kill, lost lease).
CREATE TABLE task_attempt (
    task_id     INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    worker_id   TEXT,
    outcome     TEXT NOT NULL,
    exit_code   INTEGER,
    error       TEXT,
    started_at  TEXT,
    ended_at    TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt)
);

CREATE TABLE task_log (
    task_id     INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    logged_at   TEXT NOT NULL,
    stream      TEXT NOT NULL CHECK (stream IN ('stdout','stderr','system')),
    line        TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt, seq)
);

CREATE TABLE worker (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    queues          TEXT NOT NULL,
    slots           INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('running','stopping','stopped')),
    started_at      TEXT NOT NULL,
    heartbeat_at    TEXT NOT NULL,
    stopped_at      TEXT
);

CREATE TABLE scheduler (
    id              TEXT PRIMARY KEY,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('standby','master','stopped')),
    epoch           INTEGER,
    master_since    TEXT,
    started_at      TEXT NOT NULL,
    heartbeat_at    TEXT NOT NULL
);

-- The election epoch for every backend; on SQLite also the master lease itself.
CREATE TABLE master_lease (
    name            TEXT PRIMARY KEY,
    holder          TEXT,
    epoch           INTEGER NOT NULL,
    lease_until     TEXT
);
INSERT INTO master_lease (name, holder, epoch, lease_until) VALUES ('master', NULL, 0, NULL);

CREATE TABLE event (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      TEXT NOT NULL,
    workflow        TEXT,
    instance_id     INTEGER,
    task_id         INTEGER,
    node            TEXT,
    kind            TEXT NOT NULL,
    from_status     TEXT,
    to_status       TEXT,
    message         TEXT NOT NULL,
    actor           TEXT NOT NULL
);
CREATE INDEX event_instance ON event (instance_id, id);
CREATE INDEX event_created ON event (created_at);

CREATE TABLE alert (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at      TEXT NOT NULL,
    kind            TEXT NOT NULL,
    workflow        TEXT,
    instance_id     INTEGER,
    task_id         INTEGER,
    recipients      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending','sent','failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT,
    sent_at         TEXT
);
CREATE INDEX alert_pending ON alert (status, next_attempt_at);

CREATE TABLE db_link (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    url         TEXT NOT NULL,
    username    TEXT NOT NULL,
    password    TEXT NOT NULL,
    properties  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE file_link (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    username    TEXT NOT NULL,
    password    TEXT NOT NULL,
    description TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE data_monitor (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    checked_at      TEXT NOT NULL,
    workflow        TEXT NOT NULL,
    instance_id     INTEGER NOT NULL,
    task_id         INTEGER NOT NULL,
    node            TEXT NOT NULL,
    category        TEXT,
    source_name     TEXT,
    time_mark       TEXT,
    value           REAL,
    min_value       REAL,
    max_value       REAL,
    passed          INTEGER NOT NULL,
    message         TEXT NOT NULL
);
CREATE INDEX data_monitor_instance ON data_monitor (instance_id);

CREATE VIEW v_running_tasks AS
SELECT t.id AS task_id, i.workflow, t.instance_id, t.node, t.kind, t.attempt, t.max_attempts,
       t.worker_id, t.started_at, t.lease_until, t.kill_requested,
       CAST((julianday('now') - julianday(t.started_at)) * 86400 AS INTEGER) AS running_s
FROM task t JOIN workflow_instance i ON i.id = t.instance_id
WHERE t.status = 'running';

CREATE VIEW v_instance_summary AS
SELECT i.id AS instance_id, i.workflow, i.workflow_version, i.status, i.trigger_kind, i.scheduled_for,
       i.created_at, i.started_at, i.ended_at,
       CAST((julianday(COALESCE(i.ended_at, strftime('%Y-%m-%d %H:%M:%f', 'now'))) - julianday(i.started_at)) * 86400 AS INTEGER) AS duration_s,
       SUM(CASE WHEN t.status = 'succeeded' THEN 1 ELSE 0 END) AS tasks_succeeded,
       SUM(CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END) AS tasks_failed,
       SUM(CASE WHEN t.status = 'running' THEN 1 ELSE 0 END) AS tasks_running,
       SUM(CASE WHEN t.status IN ('waiting', 'ready') THEN 1 ELSE 0 END) AS tasks_waiting,
       i.error
FROM workflow_instance i LEFT JOIN task t ON t.instance_id = i.id
GROUP BY i.id, i.workflow, i.workflow_version, i.status, i.trigger_kind, i.scheduled_for,
         i.created_at, i.started_at, i.ended_at, i.error;
