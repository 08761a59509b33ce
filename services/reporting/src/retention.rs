//! Reporting's records under the retention rules (REQ REC-3, FAULT-9): exemption declarations,
//! kept 3 years from the end of the period they cover; its copy of the status history as a log
//! purged by age.

use chargemesh_kit::retention::{LogTable, RecordTable};
use chargemesh_proto::reporting::v1 as rpb;

pub const RECORDS: &[RecordTable] = &[RecordTable {
    kind: "exemption",
    table: "exemptions",
    id_column: "exemption_id",
    time_column: "end_at",
    filter: None,
    dependents: &[],
}];

pub const LOGS: &[LogTable] = &[LogTable {
    kind: "status_history",
    table: "status_history",
    time_column: "changed_at",
}];

chargemesh_kit::records_service!(
    ReportingRecordsApi,
    rpb,
    reporting_records_service_server,
    ReportingRecordsService,
    ReportingRecordsServiceServer
);
