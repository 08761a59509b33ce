-- Lists are read newest first by (time, id), a page at a time.
CREATE INDEX complaints_newest ON complaints (operator_id, received_at, complaint_id);
CREATE INDEX corrective_actions_newest ON corrective_actions (operator_id, opened_at, action_id);
