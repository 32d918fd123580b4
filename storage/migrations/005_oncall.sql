-- Acknowledgement: who is on an incident, and since when. A property of the incident,
-- not a decision state: it survives re-analysis and says nothing about the action.
ALTER TABLE incidents ADD COLUMN acked_by_id INTEGER;
ALTER TABLE incidents ADD COLUMN acked_by TEXT;
ALTER TABLE incidents ADD COLUMN acked_at TEXT;

-- Reminders, per card: each chat's route has its own on-call people and pace.
-- route_index: the route that brought the card (1-based position in ROUTES_PATH, 0 for
-- the default route). next_remind_at NULL: nothing more to send.
ALTER TABLE cards ADD COLUMN route_index INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN next_remind_at TEXT;
ALTER TABLE cards ADD COLUMN reminders_sent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN escalated_at TEXT;
CREATE INDEX cards_remind ON cards(next_remind_at) WHERE next_remind_at IS NOT NULL;
