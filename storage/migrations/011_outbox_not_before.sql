-- The time before which a row is not sent (unix seconds; NULL: as soon as it is due). A new
-- incident's first card waits for its proposal up to FIRST_CARD_WAIT, kept here so that a
-- restart keeps the promise.
ALTER TABLE outbox ADD COLUMN not_before REAL;
