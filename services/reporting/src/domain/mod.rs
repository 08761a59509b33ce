//! Reporting's rules as pure functions over plain types: periods, exemptions and the KPI
//! formulas.

pub mod analysis;
pub mod evaluation;
pub mod exemption;
pub mod kpi;
pub mod period;
