-- Playbooks: remediations the team saved, matched to new incidents by symptoms.
-- Symptom lists and params are JSON arrays/objects; an empty list matches anything.
-- recent: the last 10 real (not dry-run) outcomes, oldest first, 'S' or 'F'.
CREATE TABLE playbooks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    alertnames   TEXT NOT NULL DEFAULT '[]',
    services     TEXT NOT NULL DEFAULT '[]',
    namespaces   TEXT NOT NULL DEFAULT '[]',
    severities   TEXT NOT NULL DEFAULT '[]',
    verb         TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target_name  TEXT,
    namespace    TEXT,
    params       TEXT NOT NULL DEFAULT '{}',
    risk         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    runs         INTEGER NOT NULL DEFAULT 0,
    successes    INTEGER NOT NULL DEFAULT 0,
    recent       TEXT NOT NULL DEFAULT '',
    created_by   TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL
);
