-- Record retention (REQ REC-3, FAULT-9): records marked important are kept permanently; every
-- removal past retention is logged; the purge gate holds a row only inside a removal's own
-- transaction, which the append-only triggers let a deletion through by.
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

-- The status history stays append-only; only a removal past retention, through the gate, deletes.
DROP TRIGGER status_history_no_delete;
CREATE TRIGGER status_history_no_delete BEFORE DELETE ON status_history
WHEN NOT EXISTS (SELECT 1 FROM retention_purge_gate)
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
