//! Complaint rules as pure functions and state machines over plain types.

pub mod action;
pub mod complaint;
pub mod satisfaction;
