-- A delivery's answer changes its state, and every index over `state` takes a new entry for
-- it: at 50,000 reconnecting piles the outbox's updates were most of what the database did.
-- The index over every state served only the parked list; the pending ones are partial
-- (cec_deliveries_lanes, cec_deliveries_due), and so is the parked list's now, so a delivered
-- row leaves entries in the primary key alone.
DROP INDEX cec_deliveries_pending;
CREATE INDEX cec_deliveries_parked ON cec_deliveries (next_attempt_at) WHERE state = 'parked';
