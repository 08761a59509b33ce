//! Metering: charging sessions and their orders, settled exactly by the station's tariff in force
//! (REQ SETTLE-1, BASE-3, MON-10), refused for settlement on an unverified meter (BASE-5, EQ-4),
//! and checked for abnormal transactions (MON-9).

pub mod domain;
pub mod store;
