-- Silenced is a property of an incident in a chat: the silence (made in that chat) that
-- keeps its card there quiet. It was one mark per incident, which a silence made in one
-- chat set for every chat the incident is in.
ALTER TABLE cards ADD COLUMN silence_id TEXT;
UPDATE cards SET silence_id = (SELECT i.silence_id FROM incidents i WHERE i.id = cards.incident_id);
ALTER TABLE incidents DROP COLUMN silence_id;
CREATE INDEX cards_silence ON cards(silence_id) WHERE silence_id IS NOT NULL;
