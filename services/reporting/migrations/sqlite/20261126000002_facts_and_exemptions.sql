-- Reporting's copy of the other components' journals (REQ FAULT-8, DEF-5, EVAL-2): the latest
-- fact of each record, replaced only by a greater version, so reading an entry twice, or a whole
-- journal again, changes nothing. "at" and "until" bound the time a fact matters to reports.
CREATE TABLE facts (
    kind        TEXT NOT NULL,
    operator_id TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    source      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    entry_id    TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    at          TEXT NOT NULL,
    until       TEXT,
    fact        BLOB NOT NULL,
    PRIMARY KEY (kind, operator_id, subject_id)
);
CREATE INDEX facts_by_time ON facts (operator_id, kind, at);

-- How far each journal was read.
CREATE TABLE journal_positions (
    source   TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);

-- The stations, their area and piles, as the asset registry lists them.
CREATE TABLE stations (
    operator_id TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    area_code   TEXT NOT NULL,
    pile_ids    TEXT NOT NULL,
    PRIMARY KEY (operator_id, station_id)
);

-- REQ MON-9: exemption declarations and their decisions.
CREATE TABLE exemptions (
    operator_id  TEXT NOT NULL,
    exemption_id TEXT NOT NULL,
    state        TEXT NOT NULL,
    version      INTEGER NOT NULL,
    start_at     TEXT NOT NULL,
    end_at       TEXT NOT NULL,
    doc          TEXT NOT NULL,
    PRIMARY KEY (operator_id, exemption_id)
);
