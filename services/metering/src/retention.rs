//! Metering's records under the retention rules (REQ REC-3, FAULT-9): charge orders, every
//! version of one kept until 3 years after its latest.

use chargemesh_kit::retention::RecordTable;
use chargemesh_proto::metering::v1 as mpb;

/// Every kind of record metering keeps.
pub const RECORDS: &[RecordTable] = &[RecordTable {
    kind: "charge_order",
    table: "charge_orders",
    id_column: "order_id",
    time_column: "recorded_at",
    filter: None,
    dependents: &[],
}];

chargemesh_kit::records_service!(
    MeteringRecordsApi,
    mpb,
    metering_records_service_server,
    MeteringRecordsService,
    MeteringRecordsServiceServer
);
