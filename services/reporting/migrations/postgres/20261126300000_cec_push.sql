-- Pushes to regulator platforms over T/CEC 102 (REQ BASE-2): one delivery per peer and item,
-- made from the durable logs reporting consumes (the status history, the charge-order facts) and
-- kept until the peer confirms it; items of one lane (a connector, an order) go in order; one
-- that keeps failing on its content is parked, visible, and no longer retried.
CREATE TABLE cec_push_positions (
    peer     TEXT NOT NULL,
    stream   TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (peer, stream)
);

CREATE TABLE cec_deliveries (
    peer            TEXT NOT NULL,
    stream          TEXT NOT NULL,
    item_key        TEXT NOT NULL,
    lane            TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    interface       TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    PRIMARY KEY (peer, stream, item_key)
);
CREATE INDEX cec_deliveries_pending ON cec_deliveries (peer, state, lane, seq);
