//! The pages: the shared [`layout`] and one module per screen.

pub mod checks;
pub mod clock;
pub mod complaints;
pub mod defects;
pub mod exemptions;
pub mod fleet;
pub mod layout;
pub mod orders;
pub mod outcome;
pub mod patrols;
pub mod pile;
pub mod plans;
pub mod public;
pub mod registry;
pub mod reports;
pub mod work_orders;
