//! The small kit every chargemesh component uses: configuration, telemetry, TLS, identity,
//! JWTs, databases, the clock, errors and the server stack.

pub mod area;
pub mod checkpoint;
pub mod clock;
pub mod component;
pub mod config;
pub mod connections;
pub mod db;
pub mod error;
pub mod events;
pub mod identity;
pub mod journal;
pub mod jwt;
pub mod metrics;
pub mod outbox;
pub mod paging;
pub mod retention;
pub mod server;
pub mod tariff;
pub mod telemetry;
pub mod tenancy;
pub mod time;
pub mod tls;

pub use error::{Error, Result};
pub use identity::{Principal, PrincipalKind};
