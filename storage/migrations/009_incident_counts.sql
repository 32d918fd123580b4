-- How many of an incident's alerts are in each (status, severity): ingest adds what a
-- webhook changed, so the counts and the severity of an incident never need its alerts
-- reloaded (a re-delivery costs the same at 50 or 5,000 alerts).
-- severity: the alert's severity label, lower-cased; '' when it has none.
CREATE TABLE incident_alert_counts (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    status      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (incident_id, status, severity)
) WITHOUT ROWID;
INSERT INTO incident_alert_counts (incident_id, status, severity, n)
    SELECT incident_id, status, lower(coalesce(json_extract(labels, '$.severity'), '')),
           COUNT(*)
    FROM alerts GROUP BY 1, 2, 3;
-- The last end of an incident's alerts (its resolved_at) by the min/max optimisation.
CREATE INDEX alerts_incident_end ON alerts(incident_id, ends_at);

-- Per incident and silence: how many of its firing alerts the silence does not match.
-- A silence keeps the incident quiet (in a chat it applies to) when this is 0. Written
-- when the silence is made (for the open incidents then) or an incident opens, and kept
-- up to date by ingest from what a webhook changed. silence_id is no foreign key: ended
-- silences are pruned on their own and their rows are never read again.
CREATE TABLE incident_silence_misses (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    silence_id  TEXT NOT NULL,
    misses      INTEGER NOT NULL,
    PRIMARY KEY (incident_id, silence_id)
) WITHOUT ROWID;
