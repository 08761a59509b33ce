//! Tariff models (计费模型, REQ MON-10, BASE-3): a station's tariff is a list of versions, each a
//! price board (the kit's time-of-use periods covering the local day) in force from its effective
//! time until the next version's. The version in force is the station's published price board;
//! there is no second copy. A session is cut into segments that each lie within one period of one
//! version, which is what settlement prices.

use chrono::{DateTime, Duration, Timelike, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;
use chargemesh_kit::clock::{china_date, china_day};
use chargemesh_kit::tariff::{PricePeriod, validate_board};

/// One version of a station's tariff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariffVersion {
    /// 1, 2, ... in effective order.
    pub version: u32,
    pub effective_from: DateTime<Utc>,
    /// Ordered by start, covering 00:00-24:00 local time exactly once.
    pub periods: Vec<PricePeriod>,
}

/// A station's tariff: its versions in effective order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tariff {
    pub versions: Vec<TariffVersion>,
}

/// A stretch of time priced by one period of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub version: &'a TariffVersion,
    pub period: &'a PricePeriod,
}

/// Minutes after local (UTC+8) midnight.
fn local_minute(at: DateTime<Utc>) -> u16 {
    let local = at.with_timezone(&chargemesh_kit::clock::china_offset());
    u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0)
}

impl TariffVersion {
    /// The period `at` falls in, with the time it ends; every minute has one on a validated
    /// board.
    fn period_at(&self, at: DateTime<Utc>) -> Result<(&PricePeriod, DateTime<Utc>), Error> {
        let minute = local_minute(at);
        let period = self
            .periods
            .iter()
            .find(|p| p.start_minute <= minute && minute < p.end_minute)
            .ok_or_else(|| {
                Error::precondition(
                    "MON-10",
                    format!("tariff version {} prices no period at {at}", self.version),
                )
            })?;
        let (day_start, _) = china_day(china_date(at));
        Ok((
            period,
            day_start + Duration::minutes(i64::from(period.end_minute)),
        ))
    }
}

impl Tariff {
    /// REQ MON-10, BASE-3: adds a version, in force from `effective_from`. Its board must cover
    /// the day (the refusal names the gap or overlap); it takes effect after the latest version
    /// and never in the past, so a published price is never changed after the fact.
    pub fn add_version(
        &mut self,
        effective_from: DateTime<Utc>,
        periods: Vec<PricePeriod>,
        now: DateTime<Utc>,
    ) -> Result<TariffVersion, Error> {
        let periods = validate_board("periods", periods)?;
        if effective_from < now {
            return Err(Error::invalid(
                "effective_time",
                "BASE-3",
                "a tariff takes effect now or later; published prices are not changed after the fact",
            ));
        }
        if let Some(last) = self.versions.last()
            && effective_from <= last.effective_from
        {
            return Err(Error::invalid(
                "effective_time",
                "MON-10",
                format!(
                    "must be after version {}'s effective time {}",
                    last.version, last.effective_from
                ),
            ));
        }
        let version = TariffVersion {
            version: self.versions.last().map_or(1, |v| v.version + 1),
            effective_from,
            periods,
        };
        self.versions.push(version.clone());
        Ok(version)
    }

    /// The version in force at `at`: the published price board then.
    pub fn in_force(&self, at: DateTime<Utc>) -> Option<&TariffVersion> {
        self.versions.iter().rev().find(|v| v.effective_from <= at)
    }

    /// Cuts `[start, end)` at every period boundary and version change. Refused when no version
    /// is in force at some point of it (REQ MON-10).
    pub fn segments(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Segment<'_>>, Error> {
        let mut out = Vec::new();
        let mut at = start;
        while at < end {
            let version = self.in_force(at).ok_or_else(|| {
                Error::precondition("MON-10", format!("no tariff is in force at {at}"))
            })?;
            let next_version = self
                .versions
                .iter()
                .map(|v| v.effective_from)
                .find(|from| *from > at);
            let (period, period_end) = version.period_at(at)?;
            let until = [Some(period_end), next_version, Some(end)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end);
            out.push(Segment {
                start: at,
                end: until,
                version,
                period,
            });
            at = until;
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chargemesh_kit::tariff::PeriodLabel;
    use rust_decimal::Decimal;

    pub fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn p(start: u16, end: u16, label: PeriodLabel, elec: i64, fee: i64) -> PricePeriod {
        PricePeriod {
            start_minute: start,
            end_minute: end,
            label,
            electricity_price: Decimal::new(elec, 4),
            service_fee: Decimal::new(fee, 4),
        }
    }

    /// Valley 00:00-08:00 at 0.3000 + 0.4000, peak 08:00-22:00 at 1.0000 + 0.8000, flat
    /// 22:00-24:00 at 0.6000 + 0.5000.
    pub fn board() -> Vec<PricePeriod> {
        vec![
            p(0, 480, PeriodLabel::Valley, 3000, 4000),
            p(480, 1320, PeriodLabel::Peak, 10000, 8000),
            p(1320, 1440, PeriodLabel::Flat, 6000, 5000),
        ]
    }

    pub fn tariff() -> Tariff {
        let mut tariff = Tariff::default();
        tariff
            .add_version(
                t("2026-01-01T00:00:00+08:00"),
                board(),
                t("2025-12-01T00:00:00Z"),
            )
            .expect("version 1");
        tariff
    }

    #[test]
    fn mon_10_a_tariff_that_leaves_a_gap_is_refused_naming_it() {
        let mut tariff = Tariff::default();
        let mut gappy = board();
        gappy.remove(2);
        let err = tariff
            .add_version(t("2026-01-01T00:00:00Z"), gappy, t("2025-12-01T00:00:00Z"))
            .expect_err("gap");
        assert!(err.to_string().contains("22:00-24:00"), "{err}");
        assert!(tariff.versions.is_empty());
    }

    #[test]
    fn base_3_versions_take_effect_in_order_and_never_in_the_past() {
        let mut tariff = tariff();
        let now = t("2026-03-01T00:00:00Z");
        assert!(
            tariff
                .add_version(t("2026-02-01T00:00:00Z"), board(), now)
                .is_err(),
            "in the past"
        );
        let v2 = tariff
            .add_version(t("2026-04-01T00:00:00+08:00"), board(), now)
            .expect("version 2");
        assert_eq!(v2.version, 2);
        assert!(
            tariff
                .add_version(t("2026-03-15T00:00:00Z"), board(), now)
                .is_err(),
            "before version 2"
        );
        assert_eq!(
            tariff
                .in_force(t("2026-03-31T15:59:59Z"))
                .map(|v| v.version),
            Some(1)
        );
        assert_eq!(
            tariff
                .in_force(t("2026-03-31T16:00:00Z"))
                .map(|v| v.version),
            Some(2)
        );
        assert!(tariff.in_force(t("2025-06-01T00:00:00Z")).is_none());
    }

    #[test]
    fn mon_10_a_session_is_cut_at_period_boundaries_midnight_and_version_changes() {
        let mut tariff = tariff();
        tariff
            .add_version(
                t("2026-03-02T01:00:00+08:00"),
                board(),
                t("2026-03-01T00:00:00Z"),
            )
            .expect("version 2");
        // 21:30 local on 1 March to 02:00 local on 2 March.
        let segments = tariff
            .segments(
                t("2026-03-01T21:30:00+08:00"),
                t("2026-03-02T02:00:00+08:00"),
            )
            .expect("segments");
        let cuts: Vec<(String, PeriodLabel, u32)> = segments
            .iter()
            .map(|s| {
                (
                    s.start
                        .with_timezone(&chargemesh_kit::clock::china_offset())
                        .format("%d %H:%M")
                        .to_string(),
                    s.period.label,
                    s.version.version,
                )
            })
            .collect();
        assert_eq!(
            cuts,
            [
                ("01 21:30".to_owned(), PeriodLabel::Peak, 1),
                ("01 22:00".to_owned(), PeriodLabel::Flat, 1),
                ("02 00:00".to_owned(), PeriodLabel::Valley, 1),
                ("02 01:00".to_owned(), PeriodLabel::Valley, 2),
            ]
        );
        assert_eq!(
            segments.last().map(|s| s.end),
            Some(t("2026-03-02T02:00:00+08:00"))
        );
        let before = tariff.segments(
            t("2025-12-31T23:00:00+08:00"),
            t("2026-01-01T01:00:00+08:00"),
        );
        assert!(matches!(
            before,
            Err(Error::Precondition {
                rule: Some("MON-10"),
                ..
            })
        ));
    }
}
