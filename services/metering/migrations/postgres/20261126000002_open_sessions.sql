-- Sessions assembled from the telemetry log while they run, and where the reading of the log
-- stands; both are working state, rewritten as the log is read.
CREATE TABLE open_sessions (
    operator_id  TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    doc          JSONB NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, connector_id)
);

CREATE TABLE follow_state (
    name     TEXT PRIMARY KEY,
    position BIGINT NOT NULL
);
