-- REQ EVAL-2: each complaint's kind and month (China time), for the monthly counts of
-- complaints, praise and suggestions; the satisfaction answers (revisits and surveys), kept once
-- each. REQ EVAL-3: corrective actions with the complaints they answer. Their deadlines are rows
-- of complaint_deadlines under the action's id ("CA-…"), kind "action:<round>".
ALTER TABLE complaints ADD COLUMN kind TEXT NOT NULL DEFAULT 'complaint';
ALTER TABLE complaints ADD COLUMN month TEXT NOT NULL DEFAULT '';
UPDATE complaints
   SET kind = json_extract(doc, '$.kind'),
       month = strftime('%Y-%m', received_at, '+8 hours');
CREATE INDEX complaints_by_month ON complaints (operator_id, month);

CREATE TABLE satisfaction_answers (
    operator_id TEXT NOT NULL,
    answer_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    station_id  TEXT NOT NULL,
    month       TEXT NOT NULL,
    score       INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    answered_at TEXT NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (operator_id, answer_id)
);
CREATE INDEX satisfaction_by_month ON satisfaction_answers (operator_id, month);

CREATE TABLE corrective_actions (
    operator_id TEXT NOT NULL,
    action_id   TEXT NOT NULL,
    state       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    doc         TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    PRIMARY KEY (operator_id, action_id)
);

CREATE TABLE corrective_action_complaints (
    operator_id  TEXT NOT NULL,
    complaint_id TEXT NOT NULL,
    action_id    TEXT NOT NULL,
    PRIMARY KEY (operator_id, complaint_id, action_id)
);
