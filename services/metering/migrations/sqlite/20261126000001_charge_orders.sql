-- Charge orders (REQ SETTLE-1, MON-9, REC-2): every version of every order, never rewritten; a
-- correction is a new row.
CREATE TABLE charge_orders (
    operator_id  TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    version      INTEGER NOT NULL,
    station_id   TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    area_code    TEXT NOT NULL,
    start_at     TEXT NOT NULL,
    billable     BOOLEAN NOT NULL,
    flagged      BOOLEAN NOT NULL,
    doc          TEXT NOT NULL,
    recorded_at  TEXT NOT NULL,
    PRIMARY KEY (operator_id, order_id, version)
);
CREATE INDEX charge_orders_by_start ON charge_orders (operator_id, start_at, order_id);
CREATE INDEX charge_orders_by_connector ON charge_orders (operator_id, connector_id, start_at);
CREATE INDEX charge_orders_by_area ON charge_orders (area_code, start_at);

CREATE TRIGGER charge_orders_no_update BEFORE UPDATE ON charge_orders
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
CREATE TRIGGER charge_orders_no_delete BEFORE DELETE ON charge_orders
BEGIN SELECT RAISE(ABORT, 'records are append-only (REQ REC-2)'); END;
