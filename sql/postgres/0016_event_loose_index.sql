-- The events' time index over the rows that are read by time (#13). Only retention reads events by
-- `created_at`, and only those of no instance (`instance_id IS NULL AND created_at < ?`); an
-- instance's events go with it, found through `event_instance`. The full index took an entry for
-- every task transition (a run's most written rows) that no statement looks up.
DROP INDEX event_created;
CREATE INDEX event_loose ON event (created_at) WHERE instance_id IS NULL;
