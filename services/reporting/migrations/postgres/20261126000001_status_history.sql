-- Reporting's copy of every connector status change, in the order the asset component committed
-- them (its cursor). Append-only (REQ REC-2).
CREATE TABLE status_history (
    sequence       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_cursor  TEXT NOT NULL UNIQUE,
    operator_id    TEXT NOT NULL,
    station_id     TEXT NOT NULL,
    pile_id        TEXT NOT NULL,
    connector_id   TEXT NOT NULL,
    area_code      TEXT NOT NULL,
    state          INTEGER NOT NULL,
    previous_state INTEGER NOT NULL,
    cec_status     INTEGER NOT NULL,
    fault_code     TEXT NOT NULL,
    fault_text     TEXT NOT NULL,
    origin         TEXT NOT NULL,
    changed_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX status_history_by_station ON status_history (operator_id, station_id, changed_at, sequence);

CREATE FUNCTION refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'records are append-only (REQ REC-2): % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER status_history_append_only BEFORE UPDATE OR DELETE ON status_history
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
