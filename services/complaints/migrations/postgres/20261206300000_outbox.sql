-- The durable outbox (kit::outbox): steps that must follow a commit, written in its transaction
-- and carried out until done.
CREATE TABLE outbox (
    step_id         TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    operator_id     TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    done_at         TIMESTAMPTZ,
    last_error      TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE done_at IS NULL;
