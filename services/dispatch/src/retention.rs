//! Dispatch's records under the retention rules (REQ REC-3, FAULT-9): work orders with their
//! clocks and breaches, defects, and the records kept as documents (plans, patrols, drills,
//! incidents, downtime, daily checks, work logs and shift handovers).

use chargemesh_kit::retention::RecordTable;
use chargemesh_proto::dispatch::v1 as dpb;

use crate::store::kind;

const fn document(kind: &'static str) -> RecordTable {
    RecordTable {
        kind,
        table: "documents",
        id_column: "doc_id",
        time_column: "updated_at",
        filter: Some(("kind", kind)),
        dependents: &[],
    }
}

/// Every kind of record dispatch keeps.
pub const RECORDS: &[RecordTable] = &[
    RecordTable {
        kind: "work_order",
        table: "work_orders",
        id_column: "order_id",
        time_column: "updated_at",
        filter: None,
        dependents: &[("deadlines", "order_id"), ("breaches", "order_id")],
    },
    RecordTable {
        kind: "defect",
        table: "defects",
        id_column: "defect_id",
        time_column: "updated_at",
        filter: None,
        dependents: &[],
    },
    document(kind::PLAN),
    document(kind::PATROL),
    document(kind::PATROL_SCHEDULE),
    document(kind::EMERGENCY_PLAN),
    document(kind::DRILL),
    document(kind::INCIDENT),
    document(kind::DOWNTIME),
    document(kind::DAILY_CHECK),
    document(kind::WORK_LOG),
    document(kind::SHIFT_HANDOVER),
];

chargemesh_kit::records_service!(
    DispatchRecordsApi,
    dpb,
    dispatch_records_service_server,
    DispatchRecordsService,
    DispatchRecordsServiceServer
);
