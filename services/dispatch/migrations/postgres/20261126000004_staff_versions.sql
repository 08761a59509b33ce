-- Staff records change as trainings are recorded (REQ STAFF-2): optimistic concurrency.
ALTER TABLE staff ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
