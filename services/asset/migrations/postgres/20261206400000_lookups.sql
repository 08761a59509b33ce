-- A regulator platform names stations and connectors by id alone (T/CEC 102): look them up
-- by index, not by reading the registry.
CREATE INDEX stations_by_id ON stations (station_id);
CREATE INDEX connectors_by_id ON connectors (connector_id);
