-- Versions and the instances list.
-- `rolled_back_to`: set by `workflow rollback` (the version whose content the head now runs), cleared
-- by the sync that finds the file equal to the head again or that overwrites the rollback; while it is
-- set, sync keeps the database's version and reports the file as differing.
ALTER TABLE workflow ADD COLUMN rolled_back_to BIGINT NULL;
-- The instances list filters by trigger kind and by creation time, newest first.
CREATE INDEX workflow_instance_trigger ON workflow_instance (trigger_kind, id);
CREATE INDEX workflow_instance_created ON workflow_instance (created_at);
