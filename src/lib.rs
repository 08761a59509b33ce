//! The `chargemesh` binary's library: every component as a role, the embedded mesh, the
//! development PKI and the demo fleet.

pub mod bench;
pub mod config;
pub mod demo;
pub mod demo_people;
pub mod link;
pub mod mesh;
pub mod pki;
pub mod ports;
pub mod regulator;
pub mod sim;
pub mod sim_ocpp;
pub mod sim_report;
pub mod sim_ykc;
