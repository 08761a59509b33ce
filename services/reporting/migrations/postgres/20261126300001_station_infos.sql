-- Each station as T/CEC 102 StationInfo, with a version that grows when its content changes, so
-- regulators are pushed the station when it changes (REQ BASE-2).
CREATE TABLE station_infos (
    operator_id TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    area_code   TEXT NOT NULL,
    info        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    PRIMARY KEY (operator_id, station_id)
);
