-- Issue #16. A coordinator's missed-run policy (`catchup`, `max-catchup`) and its business calendar
-- (a name in `calendar`, whose days the trigger reads from the `calendar` table).
ALTER TABLE coordinator ADD COLUMN catchup VARCHAR(16) NOT NULL DEFAULT 'latest',
    ADD COLUMN max_catchup BIGINT NOT NULL DEFAULT 100, ADD COLUMN calendar VARCHAR(255);

-- Business calendars from calendars.xml, synced with the rest of the definitions: the weekend days,
-- holidays and makeup workdays as JSON.
CREATE TABLE calendar (
    name        VARCHAR(255) NOT NULL PRIMARY KEY,
    definition  MEDIUMTEXT NOT NULL,
    updated_at  DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
