-- Defects (REQ DEF-1..DEF-4): the whole record as a document beside its keys.
CREATE TABLE defects (
    operator_id TEXT NOT NULL,
    defect_id   TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    pile_id     TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, defect_id)
);
CREATE INDEX defects_by_pile ON defects (operator_id, pile_id, state);
