-- Charge orders (REQ SETTLE-1, MON-9, REC-2): every version of every order, never rewritten; a
-- correction is a new row.
CREATE TABLE charge_orders (
    operator_id  TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    version      BIGINT NOT NULL,
    station_id   TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    area_code    TEXT NOT NULL,
    start_at     TIMESTAMPTZ NOT NULL,
    billable     BOOLEAN NOT NULL,
    flagged      BOOLEAN NOT NULL,
    doc          JSONB NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, order_id, version)
);
CREATE INDEX charge_orders_by_start ON charge_orders (operator_id, start_at, order_id);
CREATE INDEX charge_orders_by_connector ON charge_orders (operator_id, connector_id, start_at);
CREATE INDEX charge_orders_by_area ON charge_orders (area_code, start_at);

CREATE FUNCTION refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'records are append-only (REQ REC-2): % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER charge_orders_append_only BEFORE UPDATE OR DELETE ON charge_orders
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
