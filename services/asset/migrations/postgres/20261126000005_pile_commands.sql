-- Commands for piles (a platform-started session), kept until the stream that reports for the
-- pile has taken them, so a command survives a restart and is delivered once.
CREATE TABLE pile_commands (
    command_id   TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    pile_id      TEXT NOT NULL,
    command      BYTEA NOT NULL,
    queued_at    TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ
);
CREATE INDEX pile_commands_pending ON pile_commands (queued_at) WHERE delivered_at IS NULL;
