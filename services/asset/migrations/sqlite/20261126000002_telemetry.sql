-- Live telemetry (REQ BASE-2, MON-1, SVC-2). telemetry_log is the durable, append-only record of
-- every accepted message; (source, source_sequence) deduplicates resends.
CREATE TABLE telemetry_log (
    sequence        INTEGER PRIMARY KEY AUTOINCREMENT,
    source          TEXT NOT NULL,
    source_sequence BIGINT NOT NULL,
    operator_id     TEXT NOT NULL,
    station_id      TEXT NOT NULL,
    pile_id         TEXT NOT NULL,
    connector_id    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    observed_at     TEXT NOT NULL,
    received_at     TEXT NOT NULL,
    body            TEXT NOT NULL,
    UNIQUE (source, source_sequence)
);
CREATE INDEX telemetry_log_by_connector ON telemetry_log (operator_id, connector_id, observed_at);

-- The live status of every connector heard from.
CREATE TABLE connector_status (
    operator_id  TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    pile_id      TEXT NOT NULL,
    area_code    TEXT NOT NULL,
    state        TEXT NOT NULL,
    fault_code   TEXT NOT NULL,
    fault_text   TEXT NOT NULL,
    origin       TEXT NOT NULL,
    changed_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    PRIMARY KEY (operator_id, connector_id)
);
CREATE INDEX connector_status_by_station ON connector_status (operator_id, station_id);
CREATE INDEX connector_status_by_silence ON connector_status (last_seen_at) WHERE state <> 'offline';

-- Every status change, numbered without gaps in commit order (the counter row serialises the
-- writers), so a watcher resuming from a cursor misses nothing.
CREATE TABLE status_changes (
    cursor         BIGINT PRIMARY KEY,
    operator_id    TEXT NOT NULL,
    station_id     TEXT NOT NULL,
    pile_id        TEXT NOT NULL,
    connector_id   TEXT NOT NULL,
    area_code      TEXT NOT NULL,
    state          TEXT NOT NULL,
    previous_state TEXT NOT NULL,
    fault_code     TEXT NOT NULL,
    fault_text     TEXT NOT NULL,
    origin         TEXT NOT NULL,
    changed_at     TEXT NOT NULL,
    recorded_at    TEXT NOT NULL
);
CREATE INDEX status_changes_by_area ON status_changes (area_code, cursor);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('status_changes', 0);

CREATE TRIGGER telemetry_log_no_update BEFORE UPDATE ON telemetry_log
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER telemetry_log_no_delete BEFORE DELETE ON telemetry_log
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER status_changes_no_update BEFORE UPDATE ON status_changes
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER status_changes_no_delete BEFORE DELETE ON status_changes
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
