-- Complaints with every step in their document (REQ CMP-4, REC-2), and their clocks: the
-- 24-hour response (CMP-1) and each promise (CMP-4), durable so they survive restarts and fire
-- once; a breach is recorded once with its lateness.
CREATE TABLE complaints (
    operator_id  TEXT NOT NULL,
    complaint_id TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    state        TEXT NOT NULL,
    version      BIGINT NOT NULL,
    doc          JSONB NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, complaint_id)
);
CREATE INDEX complaints_by_received ON complaints (operator_id, received_at);

CREATE TABLE complaint_deadlines (
    operator_id  TEXT NOT NULL,
    complaint_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    due_at       TIMESTAMPTZ NOT NULL,
    fired_at     TIMESTAMPTZ,
    PRIMARY KEY (operator_id, complaint_id, kind)
);
CREATE INDEX complaint_deadlines_pending ON complaint_deadlines (due_at) WHERE fired_at IS NULL;

CREATE TABLE complaint_breaches (
    operator_id      TEXT NOT NULL,
    complaint_id     TEXT NOT NULL,
    kind             TEXT NOT NULL,
    rule             TEXT NOT NULL,
    due_at           TIMESTAMPTZ NOT NULL,
    lateness_seconds BIGINT NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, complaint_id, kind)
);
