-- Deadlines: a coordinator's `deadline` as written and how far its slots have been checked (slots
-- whose deadline is at or before `checked_through` are done), and one row per slot that missed it.
-- The unique slot key is what keeps a deadline alert from being written twice, whichever master checks.
CREATE TABLE coordinator_deadline (
    workflow        VARCHAR(255) NOT NULL PRIMARY KEY,
    deadline        VARCHAR(32) NOT NULL,
    checked_through DATETIME(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE deadline_miss (
    id              BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    workflow        VARCHAR(255) NOT NULL,
    scheduled_for   DATETIME(6) NOT NULL,
    deadline_at     DATETIME(6) NOT NULL,
    detected_at     DATETIME(6) NOT NULL,
    reason          TEXT NOT NULL,
    instance_id     BIGINT,
    done_at         DATETIME(6),
    UNIQUE KEY deadline_miss_slot (workflow, scheduled_for),
    KEY deadline_miss_open (done_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
