-- Every report moves its connector's last-seen time; an index over last_seen_at made each of
-- those updates an index write too. The liveness sweep (every 15 s) reads the table instead.
DROP INDEX connector_status_by_silence;
