//! Live telemetry: the `Connect` ingest stream, the durable log, live connector status, liveness
//! (REQ MON-1), and the regulator's view of it (REQ BASE-2, SVC-2).

pub mod commands;
pub mod domain;
pub mod feed;
pub mod ingest;
pub mod registry;
pub mod regulator;
pub mod store;
pub mod trial;

pub use feed::ChangeFeed;
pub use ingest::{Telemetry, TelemetrySettings};
pub use regulator::RegulatorApi;
