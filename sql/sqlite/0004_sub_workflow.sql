-- The sub-workflow node of the parent instance that started this one; its result goes back there.
ALTER TABLE workflow_instance ADD COLUMN parent_task_id INTEGER;
