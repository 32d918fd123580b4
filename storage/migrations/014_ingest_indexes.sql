-- outbox_sent only for rows that carry a message id (the lookup of a sent message names
-- one). Over every row, SQLite took it for the best index of any query that names a chat
-- (it cannot know that one chat holds most rows): a card's checks at ingest and the
-- storm's holds read every row the chat ever had, so each webhook cost more as the outbox
-- grew.
DROP INDEX outbox_sent;
CREATE INDEX outbox_sent ON outbox(chat_id, sent_message_id) WHERE sent_message_id IS NOT NULL;
-- alerts_incident_end (incident_id, ends_at) serves every lookup by incident: one index
-- less to write for each stored alert.
DROP INDEX alerts_incident;
-- An incident's rows of one kind (the thread notes the knowledge index keeps, retention's
-- checks): without it each lookup read the whole outbox.
CREATE INDEX outbox_incident ON outbox(incident_id, kind);
