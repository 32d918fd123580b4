-- The leader lease: the one process that polls Telegram, delivers, analyses, executes and
-- runs the timers holds it until expires_at (unix seconds). token grows by one each time
-- the lease is taken (never on a renewal), and every outbox claim and execution start
-- checks it in its own transaction: a leader that paused and lost the lease is refused.
CREATE TABLE leader_lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
