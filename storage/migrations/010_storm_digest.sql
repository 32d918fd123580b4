-- Storm mode: while a chat's backlog of new cards would take too long to send, its new
-- incidents are listed in one digest message (edited in place) instead of getting a card.
CREATE TABLE digests (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id            INTEGER NOT NULL,
    started_at         TEXT NOT NULL,
    ended_at           TEXT,
    -- When the cards the storm held back would all have been sent at the chat's paced rate
    -- (unix time): the storm ends then, unless more incidents keep it going.
    drain_at           REAL NOT NULL,
    message_id         INTEGER,
    last_rendered_hash TEXT,
    page               INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX digests_open ON digests(chat_id) WHERE ended_at IS NULL;
CREATE INDEX digests_message ON digests(chat_id, message_id);

-- An incident's card in a chat during a storm: the digest that lists it; held while it has
-- no card of its own (nothing of it is sent but the digest), and when it got its own card
-- by the storm's rule (unix time; the per-minute cap counts these).
ALTER TABLE cards ADD COLUMN digest_id INTEGER REFERENCES digests(id);
ALTER TABLE cards ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cards ADD COLUMN own_at REAL;
CREATE INDEX cards_digest ON cards(digest_id) WHERE digest_id IS NOT NULL;
CREATE INDEX cards_own ON cards(chat_id, own_at) WHERE own_at IS NOT NULL;
