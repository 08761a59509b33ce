//! Dispatch: staff and crews, and repair work orders on the standard's clocks — opened from the
//! status log (faults and offline connectors), by patrol staff or from phone calls; dispatched to
//! valid crews; checked in, resolved, confirmed; durable deadlines that survive restarts, fire
//! once and record breaches (REQ FAULT-1..FAULT-8, MON-2, MON-4, STAFF-2, STAFF-3).

pub mod domain;
pub mod engine;
pub mod grpc;
pub mod journal;
pub mod ledger;
pub mod patrols;
pub mod retention;
pub mod store;

use serde::{Deserialize, Serialize};

use chargemesh_kit::config::ServiceConfig;

pub use grpc::DispatchApi;

/// The dispatch component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatchConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The mesh URL of the asset component: the registry and the status log dispatch follows.
    pub asset_url: String,
    /// How often due deadlines are checked, in milliseconds.
    pub deadline_interval_ms: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("dispatch", 7002),
            asset_url: "https://127.0.0.1:7001".into(),
            deadline_interval_ms: 5_000,
        }
    }
}
