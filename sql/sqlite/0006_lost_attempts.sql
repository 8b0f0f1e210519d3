-- A lost attempt (its lease ran out: the worker died, or lost the database for longer than the
-- lease) is not the task's fault and does not spend its retry-times; it counts here instead, against
-- `max_lost_attempts` (or the definition's `lost-times`), so a task that kills its worker cannot be
-- rescued forever. A rerun starts it again from 0.
ALTER TABLE task ADD COLUMN lost_attempts INTEGER NOT NULL DEFAULT 0;
