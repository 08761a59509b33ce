//! Compiles every chargemesh protobuf with protox (pure Rust, no system protoc) and writes the
//! descriptor set that gRPC reflection serves.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "chargemesh/common/v1/common.proto",
    "chargemesh/common/v1/event.proto",
    "chargemesh/asset/v1/asset_service.proto",
    "chargemesh/asset/v1/charge_point_service.proto",
    "chargemesh/telemetry/v1/telemetry_service.proto",
    "chargemesh/kpi/v1/kpi.proto",
    "chargemesh/regulator/v2/registry_service.proto",
    "chargemesh/regulator/v2/status_service.proto",
    "chargemesh/regulator/v2/order_service.proto",
    "chargemesh/regulator/v2/kpi_service.proto",
    "chargemesh/reporting/v1/reporting_service.proto",
    "chargemesh/dispatch/v1/dispatch_service.proto",
    "chargemesh/metering/v1/metering_service.proto",
    "chargemesh/complaints/v1/complaints_service.proto",
    "chargemesh/journal/v1/journal_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=chargemesh");
    let fds = protox::compile(PROTOS, ["."])?;
    std::fs::write(
        out_dir.join("chargemesh_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Small first buffers for every call (see src/codec.rs).
        .codec_path("crate::codec::SmallBufferCodec")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
