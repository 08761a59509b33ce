//! The tariff of a station, as its published price board (REQ BASE-3, SIGN-2, MON-10):
//! time-of-use periods labelled cusp, peak, flat and valley (尖峰平谷) that cover the whole local
//! day without gaps or overlaps, with exact decimal prices of at most 4 places (as T/CEC 102
//! publishes them). Shared by the asset registry, which publishes it, and metering, which
//! settles by it.

use chrono::{DateTime, Duration, Timelike, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

use crate::Error;
use crate::clock::{china_date, china_day};

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
    if price > Decimal::from(100) {
        return Err(Error::invalid(
            field,
            "BASE-3",
            "must be at most 100 yuan per kWh",
        ));
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

/// The most periods a board has: the 48 half-hours of a day, which is also what piles (YKC's
/// billing model) can take.
pub const MAX_PERIODS: usize = 48;

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
    if periods.len() > MAX_PERIODS {
        return Err(Error::invalid(
            field,
            "BASE-3",
            format!(
                "a price board has at most {MAX_PERIODS} periods (half an hour each at the finest)"
            ),
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

// Tariff models (计费模型, REQ MON-10, BASE-3): a station's tariff is a list of versions, each a
// price board in force from its effective time until the next version's. The version in force is
// the station's published price board; there is no second copy. A session is cut into segments
// that each lie within one period of one version, which is what settlement prices.

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
    let local = at.with_timezone(&crate::clock::china_offset());
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
        field: &str,
        effective_from: DateTime<Utc>,
        periods: Vec<PricePeriod>,
        now: DateTime<Utc>,
    ) -> Result<TariffVersion, Error> {
        let periods = validate_board(field, periods)?;
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

/// The protobuf form of tariffs (`chargemesh.asset.v1`), shared by the services that publish
/// and settle by them.
pub mod wire {
    use chargemesh_proto::asset::v1 as pb;

    use super::{PeriodLabel, PricePeriod, TariffVersion, format_clock, parse_clock, parse_price};
    use crate::Error;
    use crate::time::{from_timestamp, to_timestamp};

    pub fn label_from_pb(field: &str, v: i32) -> Result<PeriodLabel, Error> {
        match pb::PeriodLabel::try_from(v) {
            Ok(pb::PeriodLabel::Cusp) => Ok(PeriodLabel::Cusp),
            Ok(pb::PeriodLabel::Peak) => Ok(PeriodLabel::Peak),
            Ok(pb::PeriodLabel::Flat) => Ok(PeriodLabel::Flat),
            Ok(pb::PeriodLabel::Valley) => Ok(PeriodLabel::Valley),
            _ => Err(Error::invalid(field, "BASE-3", "must be set")),
        }
    }

    pub fn label_to_pb(label: PeriodLabel) -> i32 {
        (match label {
            PeriodLabel::Cusp => pb::PeriodLabel::Cusp,
            PeriodLabel::Peak => pb::PeriodLabel::Peak,
            PeriodLabel::Flat => pb::PeriodLabel::Flat,
            PeriodLabel::Valley => pb::PeriodLabel::Valley,
        }) as i32
    }

    /// A price board as sent, each field checked and named (`field[i].start_time`, ...).
    pub fn board_from_pb(
        field: &str,
        periods: &[pb::PricePeriod],
    ) -> Result<Vec<PricePeriod>, Error> {
        periods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let f = |name: &str| format!("{field}[{i}].{name}");
                Ok(PricePeriod {
                    start_minute: parse_clock(&f("start_time"), &p.start_time)?,
                    end_minute: parse_clock(&f("end_time"), &p.end_time)?,
                    label: label_from_pb(&f("label"), p.label)?,
                    electricity_price: parse_price(&f("electricity_price"), &p.electricity_price)?,
                    service_fee: parse_price(&f("service_fee"), &p.service_fee)?,
                })
            })
            .collect()
    }

    pub fn period_to_pb(p: &PricePeriod) -> pb::PricePeriod {
        pb::PricePeriod {
            start_time: format_clock(p.start_minute),
            end_time: format_clock(p.end_minute),
            label: label_to_pb(p.label),
            electricity_price: format!("{:.4}", p.electricity_price),
            service_fee: format!("{:.4}", p.service_fee),
        }
    }

    pub fn version_to_pb(v: &TariffVersion) -> pb::TariffVersion {
        pb::TariffVersion {
            version: v.version,
            effective_time: Some(to_timestamp(v.effective_from)),
            periods: v.periods.iter().map(period_to_pb).collect(),
        }
    }

    /// A version as the asset registry lists it.
    pub fn version_from_pb(v: &pb::TariffVersion) -> Result<TariffVersion, Error> {
        Ok(TariffVersion {
            version: v.version,
            effective_from: v
                .effective_time
                .as_ref()
                .and_then(from_timestamp)
                .ok_or_else(|| Error::bad_field("effective_time", "is required"))?,
            periods: board_from_pb("periods", &v.periods)?,
        })
    }
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
        // A board of a period a minute is too many to publish or settle by.
        let minutes: Vec<PricePeriod> = (0..MINUTES_PER_DAY)
            .map(|m| PricePeriod {
                start_minute: m,
                end_minute: m + 1,
                label: PeriodLabel::Flat,
                electricity_price: Decimal::ONE,
                service_fee: Decimal::ONE,
            })
            .collect();
        let refused = validate_board("b", minutes).expect_err("too many");
        assert!(refused.to_string().contains("at most 48"), "{refused}");
    }

    #[test]
    fn base_3_prices_are_exact_decimals_of_at_most_four_places() {
        assert_eq!(parse_price("p", "0.6800").ok(), Some(Decimal::new(6800, 4)));
        assert!(parse_price("p", "0.68001").is_err());
        assert!(parse_price("p", "-1").is_err());
        assert!(parse_price("p", "cheap").is_err());
        assert!(parse_price("p", "100.0000").is_ok());
        assert!(parse_price("p", "100.0001").is_err(), "bounded");
        assert!(parse_clock("t", "24:30").is_err());
        assert!(parse_clock("t", "7:00").is_err());
        assert_eq!(parse_clock("t", "24:00").ok(), Some(MINUTES_PER_DAY));
    }

    fn t(s: &str) -> DateTime<Utc> {
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
    fn board() -> Vec<PricePeriod> {
        vec![
            p(0, 480, PeriodLabel::Valley, 3000, 4000),
            p(480, 1320, PeriodLabel::Peak, 10000, 8000),
            p(1320, 1440, PeriodLabel::Flat, 6000, 5000),
        ]
    }

    fn tariff() -> Tariff {
        let mut tariff = Tariff::default();
        tariff
            .add_version(
                "periods",
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
            .add_version(
                "periods",
                t("2026-01-01T00:00:00Z"),
                gappy,
                t("2025-12-01T00:00:00Z"),
            )
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
                .add_version("periods", t("2026-02-01T00:00:00Z"), board(), now)
                .is_err(),
            "in the past"
        );
        let v2 = tariff
            .add_version("periods", t("2026-04-01T00:00:00+08:00"), board(), now)
            .expect("version 2");
        assert_eq!(v2.version, 2);
        assert!(
            tariff
                .add_version("periods", t("2026-03-15T00:00:00Z"), board(), now)
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
                "periods",
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
                        .with_timezone(&crate::clock::china_offset())
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
