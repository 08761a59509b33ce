-- Dispatch: staff, repair work orders, their durable deadlines and breaches (REQ FAULT-4..8).
CREATE TABLE staff (
    operator_id TEXT NOT NULL,
    staff_id    TEXT NOT NULL,
    doc         JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, staff_id)
);

CREATE TABLE work_orders (
    operator_id TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    -- The connector of an automatic order while it is open: one open order per connector fault.
    open_key    TEXT,
    state       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    doc         JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, order_id)
);
CREATE UNIQUE INDEX work_orders_one_open_per_connector ON work_orders (operator_id, open_key) WHERE open_key IS NOT NULL;
CREATE INDEX work_orders_by_station ON work_orders (operator_id, station_id, created_at);

-- Every clock of every order, so it survives restarts and fires once.
CREATE TABLE deadlines (
    operator_id TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    due_at      TIMESTAMPTZ NOT NULL,
    fired_at    TIMESTAMPTZ,
    PRIMARY KEY (operator_id, order_id, kind)
);
CREATE INDEX deadlines_pending ON deadlines (due_at) WHERE fired_at IS NULL;

CREATE TABLE breaches (
    operator_id TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    what        TEXT NOT NULL,
    rule        TEXT NOT NULL,
    due_at      TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, order_id, what)
);

CREATE TABLE follow_state (
    name   TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
