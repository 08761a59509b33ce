//! Report periods: a local (UTC+8) day or month, as the standard's dates are reckoned.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use chargemesh_kit::Error;
use chargemesh_kit::clock::china_day;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Day,
    Month,
    Year,
}

/// A report period: `[start, end)` in UTC, with its local label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub granularity: Granularity,
    /// "YYYY-MM-DD", "YYYY-MM" or "YYYY".
    pub label: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// Parses `period_start` for `granularity`; a period that has not begun by `now` is refused.
    pub fn parse(granularity: Granularity, label: &str, now: DateTime<Utc>) -> Result<Self, Error> {
        let label = label.trim();
        let (first, last) = match granularity {
            Granularity::Day => {
                let day = NaiveDate::parse_from_str(label, "%Y-%m-%d")
                    .map_err(|_| Error::bad_field("period_start", "is a day written YYYY-MM-DD"))?;
                (day, day)
            }
            Granularity::Month => {
                let first = NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d")
                    .map_err(|_| Error::bad_field("period_start", "is a month written YYYY-MM"))?;
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                };
                let last = next.and_then(|n| n.pred_opt()).ok_or_else(|| {
                    Error::bad_field("period_start", "is a month written YYYY-MM")
                })?;
                (first, last)
            }
            Granularity::Year => {
                let year: i32 = label
                    .parse()
                    .ok()
                    .filter(|y| (2000..=9999).contains(y))
                    .ok_or_else(|| Error::bad_field("period_start", "is a year written YYYY"))?;
                let bounds =
                    NaiveDate::from_ymd_opt(year, 1, 1).zip(NaiveDate::from_ymd_opt(year, 12, 31));
                bounds.ok_or_else(|| Error::bad_field("period_start", "is a year written YYYY"))?
            }
        };
        let (start, _) = china_day(first);
        let (_, end) = china_day(last);
        if start > now {
            return Err(Error::bad_field("period_start", "has begun"));
        }
        let label = match granularity {
            Granularity::Day => first.format("%Y-%m-%d").to_string(),
            Granularity::Month => first.format("%Y-%m").to_string(),
            Granularity::Year => first.format("%Y").to_string(),
        };
        Ok(Self {
            granularity,
            label,
            start,
            end,
        })
    }
}

/// A half-open span of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Span {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end }
    }

    pub fn seconds(&self) -> i64 {
        (self.end - self.start).num_seconds().max(0)
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && at < self.end
    }

    /// The common part, if any.
    pub fn intersect(&self, other: &Span) -> Option<Span> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(Span { start, end })
    }
}

/// Overlapping or touching spans merged, in order.
pub fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// Seconds of `span` covered by the merged `cover`.
pub fn covered_seconds(span: &Span, cover: &[Span]) -> i64 {
    cover
        .iter()
        .filter_map(|c| c.intersect(span))
        .map(|s| s.seconds())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    #[test]
    fn mon_1_periods_are_local_days_and_months() {
        let now = t("2026-03-20T00:00:00Z");
        let day = Period::parse(Granularity::Day, "2026-03-05", now).expect("day");
        assert_eq!(
            (day.start, day.end),
            (t("2026-03-04T16:00:00Z"), t("2026-03-05T16:00:00Z"))
        );
        let month = Period::parse(Granularity::Month, "2026-02", now).expect("month");
        assert_eq!(
            (month.start, month.end),
            (t("2026-01-31T16:00:00Z"), t("2026-02-28T16:00:00Z"))
        );
        let december = Period::parse(Granularity::Month, "2025-12", now).expect("december");
        assert_eq!(december.end, t("2025-12-31T16:00:00Z"));
        assert!(Period::parse(Granularity::Month, "2026-04", now).is_err());
        assert!(Period::parse(Granularity::Day, "2026-3-5x", now).is_err());
        assert!(Period::parse(Granularity::Month, "2026-13", now).is_err());
        let year = Period::parse(Granularity::Year, "2025", now).expect("year");
        assert_eq!(
            (year.start, year.end),
            (t("2024-12-31T16:00:00Z"), t("2025-12-31T16:00:00Z"))
        );
        assert!(Period::parse(Granularity::Year, "25", now).is_err());
    }

    #[test]
    fn spans_merge_and_cover() {
        let a = Span::new(t("2026-03-01T00:00:00Z"), t("2026-03-01T02:00:00Z"));
        let b = Span::new(t("2026-03-01T01:00:00Z"), t("2026-03-01T03:00:00Z"));
        let c = Span::new(t("2026-03-01T05:00:00Z"), t("2026-03-01T06:00:00Z"));
        let merged = merge(vec![c, b, a]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].seconds(), 3 * 3600);
        let day = Span::new(t("2026-03-01T02:30:00Z"), t("2026-03-01T05:30:00Z"));
        assert_eq!(covered_seconds(&day, &merged), 30 * 60 + 30 * 60);
    }
}
