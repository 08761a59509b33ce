-- The asset registry. Each record is kept whole as a JSON document beside the columns that
-- key, scope and index it; every change also appends to change_records (REQ REC-2).

CREATE TABLE operators (
    operator_id TEXT PRIMARY KEY,
    credit_code TEXT NOT NULL UNIQUE,
    version     BIGINT NOT NULL,
    doc         JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE stations (
    operator_id TEXT NOT NULL REFERENCES operators (operator_id),
    station_id  TEXT NOT NULL,
    area_code   TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, station_id)
);
CREATE INDEX stations_by_area ON stations (area_code, operator_id, station_id);

CREATE TABLE piles (
    operator_id TEXT NOT NULL,
    pile_id     TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, pile_id),
    FOREIGN KEY (operator_id, station_id) REFERENCES stations (operator_id, station_id)
);
CREATE INDEX piles_by_station ON piles (operator_id, station_id, pile_id);

-- Connector ids are unique within an operator (T/CEC 102 ConnectorID); the connectors themselves
-- live in their pile's document, this table indexes them.
CREATE TABLE connectors (
    operator_id  TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    pile_id      TEXT NOT NULL,
    PRIMARY KEY (operator_id, connector_id),
    FOREIGN KEY (operator_id, pile_id) REFERENCES piles (operator_id, pile_id)
);

CREATE TABLE equipment (
    operator_id  TEXT NOT NULL,
    equipment_id TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    category     TEXT NOT NULL,
    version      BIGINT NOT NULL,
    doc          JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, equipment_id),
    FOREIGN KEY (operator_id, station_id) REFERENCES stations (operator_id, station_id)
);
CREATE INDEX equipment_by_station ON equipment (operator_id, station_id, equipment_id);

CREATE TABLE metrology_certificates (
    operator_id        TEXT NOT NULL,
    certificate_id     TEXT NOT NULL,
    pile_id            TEXT NOT NULL,
    station_id         TEXT NOT NULL,
    certificate_number TEXT NOT NULL,
    verifying_body     TEXT NOT NULL,
    version            BIGINT NOT NULL,
    doc                JSONB NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, certificate_id),
    UNIQUE (operator_id, verifying_body, certificate_number),
    FOREIGN KEY (operator_id, pile_id) REFERENCES piles (operator_id, pile_id)
);
CREATE INDEX certificates_by_pile ON metrology_certificates (operator_id, pile_id);
CREATE INDEX certificates_by_station ON metrology_certificates (operator_id, station_id);

CREATE TABLE change_records (
    sequence    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator_id TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    note        TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    before_doc  JSONB,
    after_doc   JSONB NOT NULL
);
CREATE INDEX change_records_by_entity ON change_records (operator_id, entity_type, entity_id, sequence);

-- REQ REC-2: the history is append-only; records are never hard-deleted.
CREATE FUNCTION refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'records are append-only (REQ REC-2): % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;

CREATE TRIGGER change_records_append_only BEFORE UPDATE OR DELETE ON change_records
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER operators_no_delete BEFORE DELETE ON operators FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER stations_no_delete BEFORE DELETE ON stations FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER piles_no_delete BEFORE DELETE ON piles FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER equipment_no_delete BEFORE DELETE ON equipment FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER certificates_no_rewrite BEFORE UPDATE OR DELETE ON metrology_certificates
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
