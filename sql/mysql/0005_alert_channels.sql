-- Alerts to chat channels and webhooks share the outbox with mail: one row per alert and channel.
-- `channel` is NULL for the mail to the workflow's receivers; `event` is what happened (failed,
-- killed, timeout, deadline, ...), which a channel's `kinds` filter; `state` is the run's state.
ALTER TABLE alert ADD COLUMN channel VARCHAR(255), ADD COLUMN event VARCHAR(32) NOT NULL DEFAULT '',
    ADD COLUMN state VARCHAR(32) NOT NULL DEFAULT '', ADD COLUMN scheduled_for DATETIME(6);
