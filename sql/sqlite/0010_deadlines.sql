-- Deadlines: a coordinator's `deadline` as written and how far its slots have been checked (slots
-- whose deadline is at or before `checked_through` are done), and one row per slot that missed it.
-- The unique slot key is what keeps a deadline alert from being written twice, whichever master checks.
CREATE TABLE coordinator_deadline (
    workflow        TEXT PRIMARY KEY,
    deadline        TEXT NOT NULL,
    checked_through TEXT
);

CREATE TABLE deadline_miss (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow        TEXT NOT NULL,
    scheduled_for   TEXT NOT NULL,
    deadline_at     TEXT NOT NULL,
    detected_at     TEXT NOT NULL,
    reason          TEXT NOT NULL,
    instance_id     INTEGER,
    done_at         TEXT,
    UNIQUE (workflow, scheduled_for)
);
CREATE INDEX deadline_miss_open ON deadline_miss (done_at, id);
