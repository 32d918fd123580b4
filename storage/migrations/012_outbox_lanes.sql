-- The lane a row waits in; lower goes first: 0 what people wait for (answers, edits and
-- notes after a press or a command), 7-10 new cards (higher severity first), 20 edits
-- nobody asked for. Rows queued before this migration wait in the background lane.
ALTER TABLE outbox ADD COLUMN lane INTEGER NOT NULL DEFAULT 20;
CREATE INDEX outbox_due ON outbox(state, lane, next_attempt_at, id);
