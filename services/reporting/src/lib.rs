//! Reporting: its own copy of the mesh's history, built by following the source logs, and the
//! figures computed from it. For now the connectors' status history (REQ MON-1, BASE-2), copied
//! from the asset component's gapless status log; KPIs and reports build on it.

pub mod follow;
pub mod grpc;
pub mod store;

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
    /// with reporting's own certificate.
    pub status_source: String,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("reporting", 7005),
            status_source: "https://127.0.0.1:7001".into(),
        }
    }
}
