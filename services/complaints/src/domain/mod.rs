//! Complaint rules as pure functions and state machines over plain types.

pub mod complaint;
