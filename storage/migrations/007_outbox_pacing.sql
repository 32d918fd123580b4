-- What each outbox row actually wrote to its chat: when Telegram answered its last write,
-- and how many writes it made (a topic close makes two, a skipped card edit none).
-- Delivery's pacer is seeded from these at start-up, so a restart keeps to the flood limits.
ALTER TABLE outbox ADD COLUMN sent_at REAL;
ALTER TABLE outbox ADD COLUMN writes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_sent_at ON outbox(sent_at) WHERE sent_at IS NOT NULL;
