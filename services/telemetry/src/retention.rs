//! The telemetry component's records under the retention rules (REQ REC-3): the telemetry log,
//! the status changes and the trial-operation days, all logs purged by age.

use chargemesh_kit::retention::{LogTable, RecordTable};
use chargemesh_proto::telemetry::v1 as tpb;

/// No records kept one by one: everything here is a log.
pub const RECORDS: &[RecordTable] = &[];

pub const LOGS: &[LogTable] = &[
    LogTable {
        kind: "telemetry",
        table: "telemetry_log",
        time_column: "received_at",
    },
    LogTable {
        kind: "status_change",
        table: "status_changes",
        time_column: "recorded_at",
    },
    LogTable {
        kind: "trial_day",
        table: "trial_days",
        time_column: "published_at",
    },
];

chargemesh_kit::records_service!(
    TelemetryRecordsApi,
    tpb,
    telemetry_records_service_server,
    TelemetryRecordsService,
    TelemetryRecordsServiceServer
);
