-- The journal reporting follows (chargemesh.journal.v1): one entry per change of a record,
-- appended in the same transaction as the change. Entries are never rewritten (REQ REC-2);
-- only the retention purge (REC-3) removes them, after their records.
CREATE TABLE journal (
    sequence    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id    TEXT NOT NULL UNIQUE,
    operator_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    version     BIGINT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    fact        BYTEA NOT NULL
);

CREATE FUNCTION journal_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'journal entries are never rewritten (REQ REC-2)'
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER journal_append_only BEFORE UPDATE ON journal
    FOR EACH ROW EXECUTE FUNCTION journal_refuse_update();
