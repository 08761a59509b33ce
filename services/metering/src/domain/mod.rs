//! Metering rules as pure functions over plain types.

pub mod abnormal;
pub mod order_id;
pub mod settlement;
pub mod tariff;
