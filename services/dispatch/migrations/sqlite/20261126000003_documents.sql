-- Maintenance plans and patrols, kept whole as documents beside their keys.
CREATE TABLE documents (
    kind        TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    doc_id      TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (kind, operator_id, doc_id)
);
CREATE INDEX documents_by_station ON documents (kind, operator_id, station_id, created_at);
