//! The asset component's records under the retention rules (REQ REC-3, FAULT-9): metrology
//! certificates as records; the registry change history as a log purged by age (the telemetry
//! logs are the telemetry component's). The registry's operators, stations, piles and
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

pub const LOGS: &[LogTable] = &[LogTable {
    kind: "change_record",
    table: "change_records",
    time_column: "recorded_at",
}];

chargemesh_kit::records_service!(
    AssetRecordsApi,
    apb,
    asset_records_service_server,
    AssetRecordsService,
    AssetRecordsServiceServer
);
