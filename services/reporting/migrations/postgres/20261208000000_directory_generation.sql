-- The station directory's generation: one more each time a listing changes a station's area,
-- piles or StationInfo. The pusher reads this one row each pass and reads the directory (the
-- areas, and which StationInfo versions a peer has not been considered for) only when it moved:
-- at 50,000 piles those reads, every pass, were a fifth of what the database did.
CREATE TABLE directory_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO directory_generation (id, generation) VALUES (1, 1);
