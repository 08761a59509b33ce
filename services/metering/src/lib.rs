//! Metering: charging sessions and their orders, settled exactly by the station's tariff in force
//! (REQ SETTLE-1, BASE-3, MON-10), refused for settlement on an unverified meter (BASE-5, EQ-4),
//! checked for abnormal transactions (MON-9) and corrected only as new versions (REC-2).

pub mod domain;
pub mod engine;
pub mod follower;
pub mod grpc;
pub mod journal;
pub mod regulator;
pub mod retention;
pub mod store;

use serde::{Deserialize, Serialize};

use chargemesh_kit::config::ServiceConfig;

pub use grpc::MeteringApi;

/// The metering component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MeteringConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The mesh URL of the asset component: piles, tariffs and metrology certificates, and the
    /// telemetry log sessions are assembled from.
    pub asset_url: String,
    /// How often the telemetry log is polled when it is quiet, in milliseconds.
    pub follow_interval_ms: u64,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("metering", 7003),
            asset_url: "https://127.0.0.1:7001".into(),
            follow_interval_ms: 1_000,
        }
    }
}
