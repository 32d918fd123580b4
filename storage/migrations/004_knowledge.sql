-- Knowledge index: past incidents and runbook sections, searched by FTS5 (BM25) and,
-- when an embeddings server is configured, by vector similarity.
-- kind: 'incident' (ref = incident id) | 'runbook' (ref = 'file.md#section').
CREATE TABLE knowledge (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    ref             TEXT NOT NULL UNIQUE,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    outcome         TEXT NOT NULL DEFAULT '',
    detail          TEXT NOT NULL DEFAULT '',
    embedding       TEXT,
    embedding_model TEXT,
    updated_at      TEXT NOT NULL
);
CREATE INDEX knowledge_kind ON knowledge(kind);
-- rowid = knowledge.id; kept in step by storage/knowledge.py (no triggers in migrations).
CREATE VIRTUAL TABLE knowledge_fts USING fts5(title, body, tokenize = 'unicode61 remove_diacritics 2');
-- Incremental indexing finds what changed since the last pass.
CREATE INDEX incidents_updated ON incidents(updated_at);
CREATE INDEX decisions_updated ON decisions(updated_at);
