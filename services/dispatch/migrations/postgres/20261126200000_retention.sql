-- Record retention (REQ REC-3, FAULT-9): records marked important are kept permanently; every
-- removal past retention is logged; the purge gate holds a row only inside a removal's own
-- transaction, which the append-only triggers let a deletion through by.
CREATE TABLE retention_marks (
    kind        TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    marked_by   TEXT NOT NULL,
    marked_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, operator_id, record_id)
);

CREATE TABLE retention_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         TEXT NOT NULL,
    operator_id  TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    last_changed TIMESTAMPTZ NOT NULL,
    removed_at   TIMESTAMPTZ NOT NULL,
    removed_by   TEXT NOT NULL
);

CREATE TABLE retention_purge_gate (
    opened INTEGER NOT NULL
);
