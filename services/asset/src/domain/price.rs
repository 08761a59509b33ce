//! The published price board (REQ BASE-3, SIGN-2): the shared tariff rules of the kit.

pub use chargemesh_kit::tariff::{
    MINUTES_PER_DAY, format_clock, parse_clock, parse_price, validate_board,
};
