//! What a reported session may be, whatever a client sends (REQ SETTLE-1, MON-9): a session
//! lasts at most a week, lies between 2000 and 2100, carries at most 10,000 readings of registers
//! up to 1,000,000,000 kWh, and reported totals stay within what a pile can deliver. Inside these
//! bounds every date and amount settlement computes is representable: nothing overflows.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

use chargemesh_kit::Error;

/// The longest session kept: longer is a fault of the report, not a charge.
pub const MAX_SESSION: Duration = Duration::days(7);
/// The most meter readings one order carries.
pub const MAX_SAMPLES: usize = 10_000;

/// The most an energy register reads, kWh.
pub fn max_register() -> Decimal {
    Decimal::from(1_000_000_000u64)
}

/// The most energy one reported session may claim, kWh.
pub fn max_session_energy() -> Decimal {
    Decimal::from(1_000_000u64)
}

/// The most money one reported session may claim, yuan.
pub fn max_session_money() -> Decimal {
    Decimal::from(100_000_000u64)
}

/// Times settlement works with: from 2000 to 2100.
pub fn check_time(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    let earliest = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single();
    let latest = Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).single();
    match (earliest, latest) {
        (Some(earliest), Some(latest)) if at >= earliest && at < latest => Ok(at),
        _ => Err(Error::invalid(
            field,
            "SETTLE-1",
            "must lie between the years 2000 and 2100",
        )),
    }
}

/// REQ SETTLE-1: a session of at most a week.
pub fn check_session(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), Error> {
    if end < start {
        return Err(Error::bad_field("end_time", "is before start_time"));
    }
    if end - start > MAX_SESSION {
        return Err(Error::invalid(
            "end_time",
            "SETTLE-1",
            "a session lasts at most 7 days",
        ));
    }
    Ok(())
}

/// A register reading within what a meter shows.
pub fn check_register(field: &str, kwh: Decimal) -> Result<Decimal, Error> {
    if kwh > max_register() {
        return Err(Error::invalid(
            field,
            "SETTLE-1",
            "a meter register reads at most 1000000000 kWh",
        ));
    }
    Ok(kwh)
}

/// How many readings one order may carry.
pub fn check_sample_count(field: &str, n: usize) -> Result<(), Error> {
    if n > MAX_SAMPLES {
        return Err(Error::invalid(
            field,
            "SETTLE-1",
            format!("an order carries at most {MAX_SAMPLES} readings"),
        ));
    }
    Ok(())
}

/// Reported totals within what a session can be.
pub fn check_reported(energy: Decimal, money: Decimal) -> Result<(), Error> {
    if energy > max_session_energy() {
        return Err(Error::invalid(
            "reported_energy_kwh",
            "MON-9",
            "a session delivers at most 1000000 kWh",
        ));
    }
    if money > max_session_money() {
        return Err(Error::invalid(
            "reported_total_money",
            "MON-9",
            "a session costs at most 100000000 yuan",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    #[test]
    fn settle_1_a_session_lasts_at_most_a_week_between_2000_and_2100() {
        let start = t("2026-03-01T00:00:00Z");
        assert!(check_session(start, start + Duration::days(7)).is_ok());
        let long = check_session(start, start + Duration::days(7) + Duration::seconds(1))
            .expect_err("too long");
        assert!(long.to_string().contains("end_time") && long.to_string().contains("SETTLE-1"));
        assert!(check_session(start, start - Duration::seconds(1)).is_err());
        assert!(check_time("start_time", t("1999-12-31T23:59:59Z")).is_err());
        assert!(check_time("start_time", t("2100-01-01T00:00:00Z")).is_err());
        assert!(check_time("start_time", start).is_ok());
        assert!(check_time("x", DateTime::<Utc>::MIN_UTC).is_err());
        assert!(check_time("x", DateTime::<Utc>::MAX_UTC).is_err());
    }

    #[test]
    fn settle_1_registers_readings_and_totals_are_bounded() {
        assert!(check_register("samples[0].register_kwh", max_register()).is_ok());
        let big = check_register("samples[0].register_kwh", max_register() + Decimal::ONE)
            .expect_err("too big");
        assert!(big.to_string().starts_with("samples[0].register_kwh"));
        assert!(check_sample_count("samples", MAX_SAMPLES).is_ok());
        assert!(check_sample_count("samples", MAX_SAMPLES + 1).is_err());
        assert!(check_reported(Decimal::from(999_999), Decimal::from(1)).is_ok());
        assert!(check_reported(Decimal::MAX, Decimal::ONE).is_err());
        assert!(check_reported(Decimal::ONE, Decimal::MAX).is_err());
    }
}
