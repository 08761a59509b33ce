-- The head of each lane of a peer's outbox, found without reading the lanes behind it; items
-- outside a peer's scope are recorded as 'skipped' so they are considered once.
CREATE INDEX cec_deliveries_lanes ON cec_deliveries (peer, stream, lane, seq) WHERE state = 'pending';
CREATE INDEX cec_deliveries_due ON cec_deliveries (peer, next_attempt_at) WHERE state = 'pending';
