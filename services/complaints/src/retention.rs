//! Complaints' records under the retention rules (REQ REC-3, FAULT-9): complaints with their
//! clocks and breaches, corrective actions, and satisfaction answers.

use chargemesh_kit::retention::RecordTable;
use chargemesh_proto::complaints::v1 as cpb;

/// Every kind of record the complaints component keeps.
pub const RECORDS: &[RecordTable] = &[
    RecordTable {
        kind: "complaint",
        table: "complaints",
        id_column: "complaint_id",
        time_column: "updated_at",
        filter: None,
        dependents: &[
            ("complaint_deadlines", "complaint_id"),
            ("complaint_breaches", "complaint_id"),
            ("corrective_action_complaints", "complaint_id"),
        ],
    },
    RecordTable {
        kind: "corrective_action",
        table: "corrective_actions",
        id_column: "action_id",
        time_column: "updated_at",
        filter: None,
        dependents: &[("corrective_action_complaints", "action_id")],
    },
    RecordTable {
        kind: "satisfaction_answer",
        table: "satisfaction_answers",
        id_column: "answer_id",
        time_column: "answered_at",
        filter: None,
        dependents: &[],
    },
];

chargemesh_kit::records_service!(
    ComplaintsRecordsApi,
    cpb,
    complaints_records_service_server,
    ComplaintsRecordsService,
    ComplaintsRecordsServiceServer
);
