-- REQ MON-8: the monitor's daily check reads a station's link reports of a day.
CREATE INDEX telemetry_log_links ON telemetry_log (operator_id, station_id, observed_at) WHERE kind = 'link';
