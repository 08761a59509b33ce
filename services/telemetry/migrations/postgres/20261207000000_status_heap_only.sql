-- Every report moves its connector's last-seen time; with an index over last_seen_at each of
-- those updates wrote a new entry into every index of the table (no heap-only update). The
-- liveness sweep (every 15 s) reads the table instead, which costs a scan of one row per
-- connector. Pages keep room for a row's next version, so the update stays on its page.
DROP INDEX connector_status_by_silence;
ALTER TABLE connector_status SET (fillfactor = 70);
