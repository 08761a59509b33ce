//! The tariff of a station, as its published price board (REQ BASE-3, SIGN-2, MON-10):
//! time-of-use periods labelled cusp, peak, flat and valley (尖峰平谷) that cover the whole local
//! day without gaps or overlaps, with exact decimal prices of at most 4 places (as T/CEC 102
//! publishes them). Shared by the asset registry, which publishes it, and metering, which
//! settles by it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

use crate::Error;

/// The time-of-use label of a period (尖峰平谷).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodLabel {
    Cusp,
    Peak,
    Flat,
    Valley,
}

/// A line of the price board; times are minutes after local midnight, `end` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricePeriod {
    pub start_minute: u16,
    pub end_minute: u16,
    pub label: PeriodLabel,
    /// Yuan per kWh, at most 4 places.
    pub electricity_price: Decimal,
    /// Yuan per kWh, at most 4 places.
    pub service_fee: Decimal,
}

pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// Parses "HH:MM" into minutes after midnight; "24:00" is the end of the day.
pub fn parse_clock(field: &str, value: &str) -> Result<u16, Error> {
    let bad = || Error::bad_field(field, "must be a time HH:MM between 00:00 and 24:00");
    let (h, m) = value.trim().split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

pub fn format_clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// A price in yuan per kWh: a non-negative decimal with at most 4 places.
pub fn parse_price(field: &str, value: &str) -> Result<Decimal, Error> {
    let price = Decimal::from_str(value.trim())
        .map_err(|_| Error::invalid(field, "BASE-3", "must be a decimal number such as 0.6800"))?;
    if price.is_sign_negative() {
        return Err(Error::invalid(field, "BASE-3", "must not be negative"));
    }
    if price.scale() > 4 {
        return Err(Error::invalid(
            field,
            "BASE-3",
            "has more than 4 decimal places",
        ));
    }
    Ok(price)
}

/// Orders the periods and checks they cover 00:00-24:00 exactly once.
pub fn validate_board(
    field: &str,
    mut periods: Vec<PricePeriod>,
) -> Result<Vec<PricePeriod>, Error> {
    if periods.is_empty() {
        return Err(Error::invalid(
            field,
            "BASE-3",
            "a price board must be published",
        ));
    }
    periods.sort_by_key(|p| p.start_minute);
    let mut covered_to = 0u16;
    for (i, p) in periods.iter().enumerate() {
        if p.end_minute <= p.start_minute {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                "BASE-3",
                format!(
                    "period {}-{} ends before it starts",
                    format_clock(p.start_minute),
                    format_clock(p.end_minute)
                ),
            ));
        }
        if p.start_minute > covered_to {
            return Err(Error::invalid(
                field,
                "BASE-3",
                format!(
                    "no period covers {}-{}",
                    format_clock(covered_to),
                    format_clock(p.start_minute)
                ),
            ));
        }
        if p.start_minute < covered_to {
            return Err(Error::invalid(
                field,
                "BASE-3",
                format!(
                    "periods overlap at {}-{}",
                    format_clock(p.start_minute),
                    format_clock(covered_to)
                ),
            ));
        }
        covered_to = p.end_minute;
    }
    if covered_to < MINUTES_PER_DAY {
        return Err(Error::invalid(
            field,
            "BASE-3",
            format!("no period covers {}-24:00", format_clock(covered_to)),
        ));
    }
    Ok(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(start: &str, end: &str) -> PricePeriod {
        PricePeriod {
            start_minute: parse_clock("s", start).expect("start"),
            end_minute: parse_clock("e", end).expect("end"),
            label: PeriodLabel::Flat,
            electricity_price: Decimal::new(6800, 4),
            service_fee: Decimal::new(4000, 4),
        }
    }

    #[test]
    fn base_3_a_board_covering_the_day_is_accepted_in_order() {
        let board = validate_board(
            "b",
            vec![period("08:00", "24:00"), period("00:00", "08:00")],
        )
        .expect("valid");
        assert_eq!(board[0].start_minute, 0);
    }

    #[test]
    fn base_3_a_gap_is_refused_naming_it() {
        let err = validate_board(
            "b",
            vec![period("00:00", "07:00"), period("08:00", "24:00")],
        )
        .expect_err("gap");
        let text = err.to_string();
        assert!(
            text.contains("07:00-08:00") && text.contains("BASE-3"),
            "{text}"
        );
        let err = validate_board("b", vec![period("00:00", "22:00")]).expect_err("short");
        assert!(err.to_string().contains("22:00-24:00"));
    }

    #[test]
    fn base_3_an_overlap_or_empty_board_is_refused() {
        assert!(
            validate_board(
                "b",
                vec![period("00:00", "12:00"), period("11:00", "24:00")]
            )
            .is_err()
        );
        assert!(validate_board("b", vec![]).is_err());
    }

    #[test]
    fn base_3_prices_are_exact_decimals_of_at_most_four_places() {
        assert_eq!(parse_price("p", "0.6800").ok(), Some(Decimal::new(6800, 4)));
        assert!(parse_price("p", "0.68001").is_err());
        assert!(parse_price("p", "-1").is_err());
        assert!(parse_price("p", "cheap").is_err());
        assert!(parse_clock("t", "24:30").is_err());
        assert!(parse_clock("t", "7:00").is_err());
        assert_eq!(parse_clock("t", "24:00").ok(), Some(MINUTES_PER_DAY));
    }
}
