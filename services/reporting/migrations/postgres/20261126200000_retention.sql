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

-- The append-only records stay so; only a removal past retention, through the gate, deletes.
CREATE OR REPLACE FUNCTION refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM retention_purge_gate) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'records are append-only (REQ REC-2): % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
