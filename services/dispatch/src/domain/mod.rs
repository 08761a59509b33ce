//! Dispatch rules as pure functions and state machines.

pub mod crew;
pub mod daily;
pub mod defect;
pub mod emergency;
pub mod geo;
pub mod incident;
pub mod logbook;
pub mod patrol;
pub mod plan;
pub mod staffing;
pub mod training;
pub mod work_order;
