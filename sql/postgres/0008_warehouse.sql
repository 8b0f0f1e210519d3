-- Issue #16. A coordinator's missed-run policy (`catchup`, `max-catchup`) and its business calendar
-- (a name in `calendar`, whose days the trigger reads from the `calendar` table).
ALTER TABLE coordinator ADD COLUMN catchup TEXT NOT NULL DEFAULT 'latest',
    ADD COLUMN max_catchup BIGINT NOT NULL DEFAULT 100, ADD COLUMN calendar TEXT;

-- Business calendars from calendars.xml, synced with the rest of the definitions: the weekend days,
-- holidays and makeup workdays as JSON.
CREATE TABLE calendar (
    name        TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
