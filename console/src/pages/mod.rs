//! The pages: the shared [`layout`] and one module per screen.

pub mod layout;
pub mod work_orders;
