-- Silences: where they were made (for the expiry note) and their Alertmanager twin.
ALTER TABLE silences ADD COLUMN chat_id INTEGER;
ALTER TABLE silences ADD COLUMN am_id TEXT;
ALTER TABLE silences ADD COLUMN announced INTEGER NOT NULL DEFAULT 0;

-- One forum topic per alert group and chat (THREAD_MODE=topic).
CREATE TABLE topics (
    chat_id   INTEGER NOT NULL,
    group_key TEXT NOT NULL,
    thread_id INTEGER NOT NULL,
    name      TEXT NOT NULL,
    closed    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, group_key)
);

-- Groups upgraded to supergroups: a config naming the old id keeps working.
CREATE TABLE chat_migrations (
    old_chat_id INTEGER PRIMARY KEY,
    new_chat_id INTEGER NOT NULL,
    at          TEXT NOT NULL
);
