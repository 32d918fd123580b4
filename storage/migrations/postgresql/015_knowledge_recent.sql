-- The recent part of the knowledge index (see the SQLite migration): every runbook section
-- and the newest incident documents, as a table with a text-search vector like knowledge_fts.
CREATE TABLE knowledge_recent_fts (
    rowid BIGINT PRIMARY KEY,
    title TEXT NOT NULL,
    body  TEXT NOT NULL,
    tsv   TSVECTOR GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', title), 'A') || setweight(to_tsvector('simple', body), 'B')
    ) STORED
);
CREATE INDEX knowledge_recent_fts_tsv ON knowledge_recent_fts USING gin (tsv);
INSERT INTO knowledge_recent_fts (rowid, title, body)
    SELECT id, title, body FROM knowledge
    WHERE kind <> 'incident'
       OR id IN (SELECT id FROM knowledge WHERE kind = 'incident' ORDER BY id DESC LIMIT 200);
