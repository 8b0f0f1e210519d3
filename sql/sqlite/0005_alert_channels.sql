-- Alerts to chat channels and webhooks share the outbox with mail: one row per alert and channel.
-- `channel` is NULL for the mail to the workflow's receivers; `event` is what happened (failed,
-- killed, timeout, deadline, ...), which a channel's `kinds` filter; `state` is the run's state.
ALTER TABLE alert ADD COLUMN channel TEXT;
ALTER TABLE alert ADD COLUMN event TEXT NOT NULL DEFAULT '';
ALTER TABLE alert ADD COLUMN state TEXT NOT NULL DEFAULT '';
ALTER TABLE alert ADD COLUMN scheduled_for TEXT;
