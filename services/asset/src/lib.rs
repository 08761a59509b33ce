//! The asset service: operators, stations, piles and connectors, the equipment ledger,
//! metrology certificates, the station and pile lifecycles, and the change history.

pub mod domain;
pub mod grpc;
pub mod retention;
pub mod store;
pub mod telemetry;

pub use grpc::{AssetApi, TrialGate};
