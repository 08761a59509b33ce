//! Complaints (REQ CMP-1..CMP-4, EVAL-2, EVAL-3): every complaint answered within 24 hours,
//! investigated, promised, resolved, revisited for satisfaction and archived, with every step
//! kept and the clocks durable.

pub mod domain;
pub mod engine;
pub mod grpc;
pub mod journal;
pub mod retention;
pub mod store;

use serde::{Deserialize, Serialize};

use chargemesh_kit::config::ServiceConfig;

pub use grpc::ComplaintsApi;

/// The complaints component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComplaintsConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// How often due clocks are checked, in milliseconds.
    pub deadline_interval_ms: u64,
    /// The mesh URL of the dispatch component, where complaints about piles open repair work
    /// orders.
    pub dispatch_url: String,
    /// The mesh URL of the metering component, where billing complaints flag their order.
    pub metering_url: String,
}

impl Default for ComplaintsConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("complaints", 7004),
            deadline_interval_ms: 5_000,
            dispatch_url: "https://127.0.0.1:7002".into(),
            metering_url: "https://127.0.0.1:7003".into(),
        }
    }
}
