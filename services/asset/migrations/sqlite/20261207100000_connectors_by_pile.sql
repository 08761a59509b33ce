-- Creating or updating a pile replaces its connectors' claims (DELETE by operator and pile, then
-- INSERT): without this index the DELETE scanned every connector of the operator, so registering
-- an operator's 100,000th pile cost a scan of 100,000 rows (registration slowed from 400 to
-- 70 piles a second on the way there).
CREATE INDEX connectors_by_pile ON connectors (operator_id, pile_id);
