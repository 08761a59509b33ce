//! Domain rules of the asset registry: plain types, pure functions and state machines.

pub mod charge_points;
pub mod codes;
pub mod commissioning;
pub mod model;
pub mod price;
pub mod rules;
pub use chargemesh_kit::tenancy;
