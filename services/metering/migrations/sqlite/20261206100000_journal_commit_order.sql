-- The journal numbered in commit order: each append takes its sequences from this counter row,
-- which stays locked to the commit, so a follower that resumes after a sequence misses nothing
-- that commits later (reporting reads it exactly, with no look-back window).
CREATE TABLE journal_counter (
    value BIGINT NOT NULL
);
INSERT INTO journal_counter (value) SELECT COALESCE(MAX(sequence), 0) FROM journal;
