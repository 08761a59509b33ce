-- Maintenance plans and patrols, kept whole as documents beside their keys.
CREATE TABLE documents (
    kind        TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    doc_id      TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, operator_id, doc_id)
);
CREATE INDEX documents_by_station ON documents (kind, operator_id, station_id, created_at);
