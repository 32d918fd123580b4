-- The recent part of the knowledge index: every runbook section and the newest incident
-- documents (storage/knowledge.py keeps RECENT_INCIDENTS = 200 of them). A search ranks its
-- whole query here, in a table of bounded size, and only its rare terms over knowledge_fts:
-- FTS5's bm25 reads every matching document of the table it ranks in.
-- rowid = knowledge.id, kept in step by storage/knowledge.py as knowledge_fts is.
CREATE VIRTUAL TABLE knowledge_recent_fts USING fts5(title, body, tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO knowledge_recent_fts (rowid, title, body)
    SELECT id, title, body FROM knowledge
    WHERE kind <> 'incident'
       OR id IN (SELECT id FROM knowledge WHERE kind = 'incident' ORDER BY id DESC LIMIT 200);
