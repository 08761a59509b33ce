-- Trial-operation data (REQ BASE-2): one published record per station and local day.
CREATE TABLE trial_days (
    operator_id  TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    day          TEXT NOT NULL,
    figures      TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (operator_id, station_id, day)
);
CREATE TRIGGER trial_days_no_update BEFORE UPDATE ON trial_days
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER trial_days_no_delete BEFORE DELETE ON trial_days
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;

CREATE INDEX status_changes_by_station ON status_changes (operator_id, station_id, changed_at);
CREATE INDEX status_changes_by_connector ON status_changes (operator_id, connector_id, cursor);
CREATE INDEX telemetry_log_meter_by_station ON telemetry_log (operator_id, station_id, observed_at) WHERE kind = 'meter';
