-- Core tables. Times are ISO-8601 UTC strings; JSON columns hold objects.
CREATE TABLE incidents (
    id               TEXT PRIMARY KEY,
    group_key        TEXT NOT NULL,
    group_labels     TEXT NOT NULL,
    title            TEXT NOT NULL,
    alertname        TEXT NOT NULL,
    severity         TEXT NOT NULL,
    target           TEXT NOT NULL,
    namespace        TEXT NOT NULL,
    status           TEXT NOT NULL,
    firing_count     INTEGER NOT NULL,
    resolved_count   INTEGER NOT NULL,
    truncated_alerts INTEGER NOT NULL DEFAULT 0,
    opened_at        TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    resolved_at      TEXT,
    silence_id       TEXT,
    chat_id          INTEGER NOT NULL
);
-- At most one open incident per group: a re-fire after resolve opens a new one.
CREATE UNIQUE INDEX incidents_open_group ON incidents(group_key) WHERE status = 'firing';
CREATE INDEX incidents_target ON incidents(target, opened_at);
CREATE INDEX incidents_status ON incidents(status);

CREATE TABLE alerts (
    fingerprint   TEXT NOT NULL,
    starts_at     TEXT NOT NULL,
    incident_id   TEXT NOT NULL REFERENCES incidents(id),
    status        TEXT NOT NULL,
    labels        TEXT NOT NULL,
    annotations   TEXT NOT NULL,
    ends_at       TEXT,
    generator_url TEXT NOT NULL DEFAULT '',
    source        TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (fingerprint, starts_at)
);
CREATE INDEX alerts_incident ON alerts(incident_id);

CREATE TABLE cards (
    incident_id        TEXT NOT NULL REFERENCES incidents(id),
    chat_id            INTEGER NOT NULL,
    message_id         INTEGER,
    message_thread_id  INTEGER,
    last_rendered_hash TEXT,
    PRIMARY KEY (incident_id, chat_id)
);

CREATE TABLE decisions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id        TEXT NOT NULL REFERENCES incidents(id),
    state              TEXT NOT NULL,
    proposal           TEXT,
    effect             TEXT,
    playbook_id        INTEGER,
    required_approvals INTEGER NOT NULL DEFAULT 1,
    invalid_reason     TEXT,
    decided_by         TEXT,
    decided_by_id      INTEGER,
    decided_at         TEXT,
    reason             TEXT,
    result             TEXT,
    auto_approved      INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
-- One live decision per incident; re-analyze marks the old one superseded first.
CREATE UNIQUE INDEX decisions_current ON decisions(incident_id) WHERE state != 'superseded';
CREATE INDEX decisions_state ON decisions(state);

CREATE TABLE approvals (
    decision_id INTEGER NOT NULL REFERENCES decisions(id),
    user_id     INTEGER NOT NULL,
    user_name   TEXT NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (decision_id, user_id)
);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    user_id     INTEGER,
    user_name   TEXT,
    chat_id     INTEGER,
    incident_id TEXT,
    decision_id INTEGER,
    action      TEXT NOT NULL,
    result      TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX audit_incident ON audit(incident_id);

CREATE TABLE silences (
    id            TEXT PRIMARY KEY,
    matchers      TEXT NOT NULL,
    reason        TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_by_id INTEGER NOT NULL,
    starts_at     TEXT NOT NULL,
    ends_at       TEXT NOT NULL,
    expired_at    TEXT
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    order_key       TEXT NOT NULL,
    incident_id     TEXT,
    chat_id         INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    sent_message_id INTEGER,
    created_at      TEXT NOT NULL
);
CREATE INDEX outbox_pending ON outbox(state, order_key, id);
-- Lets a reply to one of our thread messages find its incident.
CREATE INDEX outbox_sent ON outbox(chat_id, sent_message_id);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
