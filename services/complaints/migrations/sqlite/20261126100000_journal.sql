-- The journal reporting follows (chargemesh.journal.v1): one entry per change of a record,
-- appended in the same transaction as the change. Entries are never rewritten (REQ REC-2);
-- only the retention purge (REC-3) removes them, after their records.
CREATE TABLE journal (
    sequence    INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id    TEXT NOT NULL UNIQUE,
    operator_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    fact        BLOB NOT NULL
);

CREATE TRIGGER journal_append_only BEFORE UPDATE ON journal
BEGIN
    SELECT RAISE(ABORT, 'journal entries are never rewritten (REQ REC-2)');
END;
