-- Commands for piles (a platform-started session), kept until the stream that reports for the
-- pile has taken them, so a command survives a restart and is delivered once.
CREATE TABLE pile_commands (
    command_id   TEXT PRIMARY KEY,
    operator_id  TEXT NOT NULL,
    station_id   TEXT NOT NULL,
    pile_id      TEXT NOT NULL,
    command      BLOB NOT NULL,
    queued_at    TEXT NOT NULL,
    delivered_at TEXT
);
CREATE INDEX pile_commands_pending ON pile_commands (queued_at) WHERE delivered_at IS NULL;
