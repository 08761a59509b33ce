//! Complaints (REQ CMP-1..CMP-4, EVAL-2, EVAL-3): every complaint answered within 24 hours,
//! investigated, promised, resolved, revisited for satisfaction and archived, with every step
//! kept.

pub mod domain;
