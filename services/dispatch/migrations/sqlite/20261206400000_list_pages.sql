-- Lists are read newest first by (created_at, id), a page at a time (no list reads more than a
-- page): the keys they seek by, and the columns their filters need.
ALTER TABLE work_orders ADD COLUMN pile_id TEXT NOT NULL DEFAULT '';
UPDATE work_orders SET pile_id = COALESCE(json_extract(doc, '$.pile_id'), '');
CREATE INDEX work_orders_newest ON work_orders (operator_id, created_at, order_id);
CREATE INDEX work_orders_open_by_pile ON work_orders (operator_id, pile_id) WHERE state <> 'closed';
CREATE INDEX defects_newest ON defects (operator_id, created_at, defect_id);
CREATE INDEX staff_newest ON staff (operator_id, created_at, staff_id);

-- Whether a document still asks for work (a patrol not done, an incident not closed).
ALTER TABLE documents ADD COLUMN is_open INTEGER NOT NULL DEFAULT 1;
UPDATE documents SET is_open = 0
 WHERE (kind = 'patrol' AND json_extract(doc, '$.done_at') IS NOT NULL)
    OR (kind = 'incident' AND json_extract(doc, '$.closed_at') IS NOT NULL);
CREATE INDEX documents_newest ON documents (kind, operator_id, created_at, doc_id);
