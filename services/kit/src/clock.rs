//! The injectable clock every time rule runs on, so tests move time instead of sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

/// China Standard Time, UTC+8, in which the standard's dates and daily periods are reckoned.
pub fn china_offset() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| FixedOffset::east_opt(0).expect("utc"))
}

/// The local (UTC+8) calendar date of an instant.
pub fn china_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&china_offset()).date_naive()
}

/// The UTC window `[start, end)` of a local (UTC+8) calendar day.
pub fn china_day(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_time(chrono::NaiveTime::MIN) - chrono::Duration::hours(8);
    let start = start.and_utc();
    (start, start + chrono::Duration::days(1))
}

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // Stored timestamps keep microseconds, as PostgreSQL does.
        let now = Utc::now();
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}

/// A clock that stands still until told to move.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).expect("time");
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::hours(2));
        assert_eq!(clock.now(), start + chrono::Duration::hours(2));
    }

    #[test]
    fn china_date_rolls_over_at_utc_sixteen() {
        let before = DateTime::parse_from_rfc3339("2026-03-01T15:59:59Z").expect("t");
        let after = DateTime::parse_from_rfc3339("2026-03-01T16:00:00Z").expect("t");
        assert_eq!(
            china_date(before.to_utc()),
            NaiveDate::from_ymd_opt(2026, 3, 1).expect("d")
        );
        assert_eq!(
            china_date(after.to_utc()),
            NaiveDate::from_ymd_opt(2026, 3, 2).expect("d")
        );
    }

    #[test]
    fn china_day_runs_from_utc_sixteen_to_utc_sixteen() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).expect("d");
        let (start, end) = china_day(day);
        assert_eq!(start.to_rfc3339(), "2026-03-01T16:00:00+00:00");
        assert_eq!(end - start, chrono::Duration::days(1));
        assert_eq!(china_date(start), day);
        assert_eq!(china_date(end - chrono::Duration::seconds(1)), day);
    }
}
