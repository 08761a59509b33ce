-- REQ NETSEC-1: an OCPP charge point names itself by its id alone (the URL path, the HTTP Basic
-- user, a certificate's CN), so the id is unique across the platform; its security profile 2
-- password is kept here as a salted hash, never in the pile's document or its change records.
CREATE TABLE charge_points (
    charge_point_id TEXT PRIMARY KEY,
    operator_id     TEXT NOT NULL,
    pile_id         TEXT NOT NULL,
    password_hash   TEXT,
    FOREIGN KEY (operator_id, pile_id) REFERENCES piles (operator_id, pile_id)
);
CREATE INDEX charge_points_by_pile ON charge_points (operator_id, pile_id);

-- Charge points that connected with a valid credential of the operator but are not registered.
CREATE TABLE unknown_charge_points (
    operator_id     TEXT NOT NULL,
    charge_point_id TEXT NOT NULL,
    version         INTEGER NOT NULL,
    doc             TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (operator_id, charge_point_id)
);

-- The operator's authorisation tokens (RFID cards, app accounts).
CREATE TABLE id_tokens (
    operator_id TEXT NOT NULL,
    token       TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (operator_id, token)
);

-- The durable outbox (kit::outbox): a pile's suspension, resumption or retirement is followed
-- by a ChangeAvailability to the pile.
CREATE TABLE outbox (
    step_id         TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    operator_id     TEXT NOT NULL,
    subject_id      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    done_at         TEXT,
    last_error      TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE done_at IS NULL;
