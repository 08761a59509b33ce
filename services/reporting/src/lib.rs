//! Reporting: its own copy of the mesh's history, built by following the source logs, and the
//! figures computed from it: the connectors' status history (REQ MON-1, BASE-2) from the asset
//! component's gapless status log, the station directory, and the facts dispatch, metering and
//! complaints journal; the KPIs (with the exemptions of MON-9 applied) are computed from them.

pub mod directory;
pub mod domain;
pub mod export;
pub mod facts;
pub mod follow;
pub mod grpc;
pub mod journals;
pub mod push;
pub mod report;
pub mod retention;
pub mod store;
pub mod views;

use serde::{Deserialize, Serialize};

use chargemesh_kit::config::ServiceConfig;

pub use grpc::ReportingApi;

/// The reporting component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportingConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The mesh URL of the component serving `RegulatorService` (the asset component), followed
    /// with reporting's own certificate for the status history and the station directory.
    pub status_source: String,
    /// The mesh URLs of the components whose journals reporting follows.
    pub dispatch_url: String,
    pub metering_url: String,
    pub complaints_url: String,
    /// How often the journals are read, in milliseconds.
    pub follow_interval_ms: u64,
    /// How often the station directory is listed again, in milliseconds.
    pub directory_interval_ms: u64,
    /// Pushes to regulator platforms over T/CEC 102; off without peers that take pushes.
    pub cec_push: push::PushConfig,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("reporting", 7005),
            status_source: "https://127.0.0.1:7001".into(),
            dispatch_url: "https://127.0.0.1:7002".into(),
            metering_url: "https://127.0.0.1:7003".into(),
            complaints_url: "https://127.0.0.1:7004".into(),
            follow_interval_ms: 1_000,
            directory_interval_ms: 30_000,
            cec_push: push::PushConfig::default(),
        }
    }
}
