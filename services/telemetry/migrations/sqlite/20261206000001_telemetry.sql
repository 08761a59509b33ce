-- The telemetry component's schema (REQ BASE-2, MON-1, SVC-2, REC-2, REC-3).

-- Record retention (REQ REC-3): the purge gate holds a row only inside a removal's own
-- transaction, which the append-only triggers let a deletion through by; every removal is logged.
CREATE TABLE retention_marks (
    kind        TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    marked_by   TEXT NOT NULL,
    marked_at   TEXT NOT NULL,
    PRIMARY KEY (kind, operator_id, record_id)
);

CREATE TABLE retention_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    operator_id  TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    last_changed TEXT NOT NULL,
    removed_at   TEXT NOT NULL,
    removed_by   TEXT NOT NULL
);

CREATE TABLE retention_purge_gate (
    opened INTEGER NOT NULL
);

-- telemetry_log is the durable, append-only record of every accepted message;
-- (source, source_sequence) deduplicates resends. Its sequence is numbered in commit order from
-- the counter row, taken last and held to the commit (as the status changes are), so a reader
-- that resumes after a sequence misses nothing that commits later, whatever the writers.
CREATE TABLE telemetry_log (
    sequence        INTEGER PRIMARY KEY,
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
CREATE INDEX telemetry_log_meter_by_station ON telemetry_log (operator_id, station_id, observed_at) WHERE kind = 'meter';
-- REQ MON-8: the monitor's daily check reads a station's link reports of a day.
CREATE INDEX telemetry_log_links ON telemetry_log (operator_id, station_id, observed_at) WHERE kind = 'link';

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
CREATE INDEX status_changes_by_station ON status_changes (operator_id, station_id, changed_at);
CREATE INDEX status_changes_by_connector ON status_changes (operator_id, connector_id, cursor);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('telemetry_log', 0), ('status_changes', 0);

-- Trial-operation data (REQ BASE-2): one published record per station and local day.
CREATE TABLE trial_days (
    operator_id  TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    day          TEXT NOT NULL,
    figures      TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (operator_id, station_id, day)
);

-- Commands for piles (a platform-started session, an availability change...): queued until a
-- stream that reports for the pile is connected, sent, and done when the pile answers; one sent
-- and not answered within the timeout goes out again (piles answer a command id once), up to
-- the attempts allowed, then it has timed out.
CREATE TABLE pile_commands (
    command_id   TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    pile_id      TEXT NOT NULL,
    command      BLOB NOT NULL,
    queued_at    TEXT NOT NULL,
    -- queued, sent, accepted, rejected, failed, timed_out
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    sent_at      TEXT,
    answered_at  TEXT,
    detail       TEXT NOT NULL
);
CREATE INDEX pile_commands_open ON pile_commands (queued_at) WHERE state IN ('queued', 'sent');

-- REQ REC-2: the logs are append-only; only a removal past retention, through the gate, deletes.
CREATE TRIGGER telemetry_log_no_update BEFORE UPDATE ON telemetry_log
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER telemetry_log_no_delete BEFORE DELETE ON telemetry_log
WHEN NOT EXISTS (SELECT 1 FROM retention_purge_gate)
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER status_changes_no_update BEFORE UPDATE ON status_changes
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER status_changes_no_delete BEFORE DELETE ON status_changes
WHEN NOT EXISTS (SELECT 1 FROM retention_purge_gate)
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER trial_days_no_update BEFORE UPDATE ON trial_days
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER trial_days_no_delete BEFORE DELETE ON trial_days
WHEN NOT EXISTS (SELECT 1 FROM retention_purge_gate)
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
