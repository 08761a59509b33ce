//! The asset component's records under the retention rules (REQ REC-3, FAULT-9): metrology
//! certificates as records; the telemetry log, status changes, registry change history and
//! trial-operation days as logs purged by age. The registry's operators, stations, piles and
//! equipment are the ledger itself and are never purged.

use chargemesh_kit::retention::{LogTable, RecordTable};
use chargemesh_proto::asset::v1 as apb;

pub const RECORDS: &[RecordTable] = &[RecordTable {
    kind: "metrology_certificate",
    table: "metrology_certificates",
    id_column: "certificate_id",
    time_column: "updated_at",
    filter: None,
    dependents: &[],
}];

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
        kind: "change_record",
        table: "change_records",
        time_column: "recorded_at",
    },
    LogTable {
        kind: "trial_day",
        table: "trial_days",
        time_column: "published_at",
    },
];

chargemesh_kit::records_service!(
    AssetRecordsApi,
    apb,
    asset_records_service_server,
    AssetRecordsService,
    AssetRecordsServiceServer
);
