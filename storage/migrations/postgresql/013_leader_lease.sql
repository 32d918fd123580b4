-- As ../013_leader_lease.sql, in PostgreSQL's types (its REAL is single precision: a unix
-- time in it would be off by minutes).
CREATE TABLE leader_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    token      BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
