-- Telegram updates, recorded before Telegram is told they were received (the next getUpdates
-- offset, or the webhook's 200), then handled once, in update_id order.
-- body: the update as Telegram sent it (JSON text, at most storage.inbox.MAX_BODY_BYTES;
--   a larger one is kept as '{}' in state 'failed').
-- queued_since: the earliest moment the update may have been made, what a press's age is
--   counted from (its arrival, or for updates that queued while the bot was down, the last
--   heartbeat before).
-- state: pending (to handle) | done | failed (its handler raised, or it was too large;
--   last_error says why).
CREATE TABLE inbox (
    update_id    INTEGER PRIMARY KEY,
    body         TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    queued_since TEXT NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending',
    last_error   TEXT,
    handled_at   TEXT
);
CREATE INDEX inbox_pending ON inbox(update_id) WHERE state = 'pending';
CREATE INDEX inbox_handled ON inbox(handled_at) WHERE state <> 'pending';
