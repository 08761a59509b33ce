//! Settlement (REQ SETTLE-1): what a session costs, per time-of-use period, from its meter
//! samples and the tariff in force, in exact decimals. The itemisation is T/CEC 102
//! `ChargeDetails`: each line a stretch of one period of one tariff version with its prices,
//! energy, electricity money and service money.
//!
//! The rules, in order:
//! 1. The session is cut at every period boundary, local midnight and tariff version change
//!    ([`Tariff::segments`], the station's tariff as the asset registry publishes it).
//! 2. The energy between two consecutive meter samples is spread over the segments that interval
//!    overlaps, in proportion to the time overlapped (the meter is read, not guessed: every kWh
//!    comes from a register difference).
//! 3. Energy is kept to 3 places: each line is cut down to 3 places, then the thousandths still
//!    missing from the metered total (last register minus first) go one each to the lines with
//!    the largest remainders, earliest first on a tie. The lines always add up to the metered
//!    total exactly.
//! 4. Money is kept to 2 places: each line's electricity money is its energy times its
//!    electricity price, and its service money its energy times its service fee, each rounded
//!    half away from zero (四舍五入) to 2 places. The totals are the sums of the lines, so the
//!    itemisation always adds up to the total charged.
//!
//! No floating point is used anywhere here.

use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;
use chargemesh_kit::tariff::PeriodLabel;

use chargemesh_kit::tariff::{Segment, Tariff};

/// A meter register reading of the session's connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// The energy register, kWh, at most 3 places.
    pub register_kwh: Decimal,
}

/// One line of the itemisation (T/CEC 102 ChargeDetail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeDetail {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub label: PeriodLabel,
    pub tariff_version: u32,
    /// Yuan per kWh, 4 places (ElecPrice).
    pub electricity_price: Decimal,
    /// Yuan per kWh, 4 places (SevicePrice).
    pub service_fee: Decimal,
    /// kWh, 3 places (DetailPower).
    pub energy_kwh: Decimal,
    /// Yuan, 2 places (DetailElecMoney).
    pub electricity_money: Decimal,
    /// Yuan, 2 places (DetailSeviceMoney).
    pub service_money: Decimal,
}

/// What a session costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub details: Vec<ChargeDetail>,
    /// kWh, 3 places (TotalPower): the last register minus the first.
    pub energy_kwh: Decimal,
    /// Yuan, 2 places (TotalElecMoney).
    pub electricity_money: Decimal,
    /// Yuan, 2 places (TotalSeviceMoney).
    pub service_money: Decimal,
    /// Yuan, 2 places (TotalMoney).
    pub total_money: Decimal,
}

impl Settlement {
    /// The energy per time-of-use label (cusp, peak, flat, valley), as the Zhejiang provincial
    /// platform asks for it.
    pub fn energy_by_label(&self, label: PeriodLabel) -> Decimal {
        self.details
            .iter()
            .filter(|d| d.label == label)
            .map(|d| d.energy_kwh)
            .sum()
    }
}

const ENERGY_PLACES: u32 = 3;
const MONEY_PLACES: u32 = 2;

/// Money rounded half away from zero to 2 places (四舍五入).
pub fn round_money(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(MONEY_PLACES, RoundingStrategy::MidpointAwayFromZero)
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> Decimal {
    Decimal::from((to - from).num_milliseconds().max(0))
}

/// Checks the samples: at least two, in time order, registers of at most 3 places that never
/// go backwards (REQ MON-9).
fn check_samples(samples: &[Sample]) -> Result<(), Error> {
    if samples.len() < 2 {
        return Err(Error::invalid(
            "samples",
            "SETTLE-1",
            "a session is settled from its meter start and meter stop at least",
        ));
    }
    for (i, pair) in samples.windows(2).enumerate() {
        let [a, b] = pair else { continue };
        if b.at < a.at {
            return Err(Error::invalid(
                format!("samples[{}]", i + 1),
                "SETTLE-1",
                format!("read at {} before the sample before it", b.at),
            ));
        }
        if b.register_kwh < a.register_kwh {
            return Err(Error::invalid(
                format!("samples[{}]", i + 1),
                "MON-9",
                format!(
                    "the meter register goes backwards from {} to {} kWh",
                    a.register_kwh, b.register_kwh
                ),
            ));
        }
    }
    if let Some(s) = samples
        .iter()
        .find(|s| s.register_kwh.scale() > ENERGY_PLACES)
    {
        return Err(Error::invalid(
            "samples",
            "SETTLE-1",
            format!("register {} has more than 3 decimal places", s.register_kwh),
        ));
    }
    Ok(())
}

/// Rule 2: the exact energy of each segment.
fn spread(segments: &[Segment<'_>], samples: &[Sample]) -> Vec<Decimal> {
    let mut energy = vec![Decimal::ZERO; segments.len()];
    for pair in samples.windows(2) {
        let [a, b] = pair else { continue };
        let delta = b.register_kwh - a.register_kwh;
        if delta.is_zero() {
            continue;
        }
        let span = millis(a.at, b.at);
        if span.is_zero() {
            // Two readings at one instant: the energy belongs to the segment of that instant.
            let i = segments
                .iter()
                .position(|s| s.start <= a.at && a.at < s.end)
                .unwrap_or(segments.len().saturating_sub(1));
            if let Some(e) = energy.get_mut(i) {
                *e += delta;
            }
            continue;
        }
        for (i, s) in segments.iter().enumerate() {
            let from = s.start.max(a.at);
            let to = s.end.min(b.at);
            if from < to {
                energy[i] += delta * millis(from, to) / span;
            }
        }
    }
    energy
}

/// Rule 3: each line to 3 places, adding up to `total` exactly.
fn apportion(exact: &[Decimal], total: Decimal) -> Vec<Decimal> {
    let unit = Decimal::new(1, ENERGY_PLACES);
    let mut lines: Vec<Decimal> = exact
        .iter()
        .map(|e| e.round_dp_with_strategy(ENERGY_PLACES, RoundingStrategy::ToZero))
        .collect();
    let assigned: Decimal = lines.iter().sum();
    let mut missing = ((total - assigned) / unit).round().to_i64().unwrap_or(0);
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - lines[b])
            .cmp(&(exact[a] - lines[a]))
            .then(a.cmp(&b))
    });
    for &i in order.iter().cycle().take(exact.len() * 2) {
        if missing <= 0 {
            break;
        }
        lines[i] += unit;
        missing -= 1;
    }
    lines
}

/// REQ SETTLE-1: settles a session from its meter samples by the tariff in force.
pub fn settle(tariff: &Tariff, samples: &[Sample]) -> Result<Settlement, Error> {
    check_samples(samples)?;
    let (first, last) = match (samples.first(), samples.last()) {
        (Some(f), Some(l)) => (f, l),
        _ => return Err(Error::bad_field("samples", "no samples")),
    };
    let segments = tariff.segments(first.at, last.at)?;
    let total_energy = last.register_kwh - first.register_kwh;
    let exact = spread(&segments, samples);
    let energies = if segments.is_empty() {
        Vec::new()
    } else {
        apportion(&exact, total_energy)
    };
    let details: Vec<ChargeDetail> = segments
        .iter()
        .zip(energies)
        .map(|(s, energy_kwh)| ChargeDetail {
            start: s.start,
            end: s.end,
            label: s.period.label,
            tariff_version: s.version.version,
            electricity_price: s.period.electricity_price,
            service_fee: s.period.service_fee,
            energy_kwh,
            electricity_money: round_money(energy_kwh * s.period.electricity_price),
            service_money: round_money(energy_kwh * s.period.service_fee),
        })
        .collect();
    let electricity_money: Decimal = details.iter().map(|d| d.electricity_money).sum();
    let service_money: Decimal = details.iter().map(|d| d.service_money).sum();
    Ok(Settlement {
        energy_kwh: total_energy.round_dp(ENERGY_PLACES),
        electricity_money,
        service_money,
        total_money: electricity_money + service_money,
        details,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{board, t, tariff};

    fn kwh(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn sample(at: &str, register: &str) -> Sample {
        Sample {
            at: t(at),
            register_kwh: kwh(register),
        }
    }

    #[test]
    fn settle_1_a_session_within_one_period_is_energy_times_prices() {
        let s = settle(
            &tariff(),
            &[
                sample("2026-03-01T10:00:00+08:00", "100.000"),
                sample("2026-03-01T10:30:00+08:00", "110.000"),
                sample("2026-03-01T11:00:00+08:00", "120.505"),
            ],
        )
        .expect("settled");
        assert_eq!(s.details.len(), 1);
        assert_eq!(s.energy_kwh, kwh("20.505"));
        // 20.505 × 1.0000 = 20.505 -> 20.51 (half away from zero); 20.505 × 0.8 = 16.404 -> 16.40.
        assert_eq!(s.electricity_money, kwh("20.51"));
        assert_eq!(s.service_money, kwh("16.40"));
        assert_eq!(s.total_money, kwh("36.91"));
    }

    #[test]
    fn settle_1_energy_across_a_boundary_is_split_by_the_time_on_each_side() {
        // 21:30 to 22:30 at a steady rate: half at peak, half at flat.
        let s = settle(
            &tariff(),
            &[
                sample("2026-03-01T21:30:00+08:00", "0"),
                sample("2026-03-01T22:30:00+08:00", "30.001"),
            ],
        )
        .expect("settled");
        assert_eq!(s.details.len(), 2);
        assert_eq!(s.details[0].label, PeriodLabel::Peak);
        assert_eq!(s.details[1].label, PeriodLabel::Flat);
        // 15.0005 each: the odd thousandth goes to the earlier line on a tie.
        assert_eq!(s.details[0].energy_kwh, kwh("15.001"));
        assert_eq!(s.details[1].energy_kwh, kwh("15.000"));
        assert_eq!(s.energy_by_label(PeriodLabel::Peak), kwh("15.001"));
        assert_eq!(s.details[0].electricity_money, kwh("15.00"));
        assert_eq!(s.details[1].electricity_money, kwh("9.00"));
        assert_eq!(s.details[1].service_money, kwh("7.50"));
    }

    #[test]
    fn settle_1_a_session_over_midnight_and_a_tariff_change_is_split_at_both() {
        let mut tariff = tariff();
        let mut dearer = board();
        dearer[0].service_fee = kwh("0.9000");
        tariff
            .add_version(
                "periods",
                t("2026-03-02T01:00:00+08:00"),
                dearer,
                t("2026-03-01T00:00:00Z"),
            )
            .expect("version 2");
        let s = settle(
            &tariff,
            &[
                sample("2026-03-01T23:00:00+08:00", "500.000"),
                sample("2026-03-02T00:00:00+08:00", "510.000"),
                sample("2026-03-02T02:00:00+08:00", "530.000"),
            ],
        )
        .expect("settled");
        let lines: Vec<(PeriodLabel, u32, Decimal)> = s
            .details
            .iter()
            .map(|d| (d.label, d.tariff_version, d.energy_kwh))
            .collect();
        assert_eq!(
            lines,
            [
                (PeriodLabel::Flat, 1, kwh("10.000")),
                (PeriodLabel::Valley, 1, kwh("10.000")),
                (PeriodLabel::Valley, 2, kwh("10.000")),
            ]
        );
        assert_eq!(s.details[1].service_money, kwh("4.00"));
        assert_eq!(s.details[2].service_money, kwh("9.00"));
        assert_eq!(
            s.total_money,
            kwh("6.00") + kwh("5.00") + kwh("3.00") + kwh("4.00") + kwh("3.00") + kwh("9.00")
        );
    }

    #[test]
    fn settle_1_money_rounds_half_away_from_zero_to_two_places() {
        assert_eq!(round_money(kwh("0.005")), kwh("0.01"));
        assert_eq!(round_money(kwh("0.004999")), kwh("0.00"));
        assert_eq!(round_money(kwh("12.345")), kwh("12.35"));
        assert_eq!(round_money(kwh("12.3449")), kwh("12.34"));
    }

    #[test]
    fn mon_9_a_register_going_backwards_or_samples_out_of_order_are_refused() {
        let back = settle(
            &tariff(),
            &[
                sample("2026-03-01T10:00:00+08:00", "100.000"),
                sample("2026-03-01T10:30:00+08:00", "99.000"),
            ],
        )
        .expect_err("backwards");
        assert!(matches!(
            back,
            Error::Invalid {
                rule: Some("MON-9"),
                ..
            }
        ));
        assert!(
            settle(
                &tariff(),
                &[
                    sample("2026-03-01T10:30:00+08:00", "100.000"),
                    sample("2026-03-01T10:00:00+08:00", "101.000"),
                ],
            )
            .is_err()
        );
        assert!(settle(&tariff(), &[sample("2026-03-01T10:30:00+08:00", "1")]).is_err());
        assert!(
            settle(
                &tariff(),
                &[
                    sample("2026-03-01T10:00:00+08:00", "1.0001"),
                    sample("2026-03-01T10:30:00+08:00", "2"),
                ],
            )
            .is_err(),
            "4 places"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// SETTLE-1: whatever the session, the lines add up to the metered energy and to the
            /// totals charged, and the money is within half a fen per line of the exact price.
            #[test]
            fn settle_1_the_itemisation_always_adds_up_to_the_totals(
                start_minute in 0i64..(3 * 24 * 60),
                steps in proptest::collection::vec((1i64..240, 0i64..60_000), 1..12),
            ) {
                let mut at = t("2026-03-01T00:00:00+08:00") + chrono::Duration::minutes(start_minute);
                let mut register = Decimal::new(123_456, 3);
                let mut samples = vec![Sample { at, register_kwh: register }];
                for (minutes, thousandths) in steps {
                    at += chrono::Duration::minutes(minutes);
                    register += Decimal::new(thousandths, 3);
                    samples.push(Sample { at, register_kwh: register });
                }
                let s = settle(&tariff(), &samples).expect("settled");
                let energy: Decimal = s.details.iter().map(|d| d.energy_kwh).sum();
                prop_assert_eq!(energy, s.energy_kwh);
                prop_assert_eq!(s.energy_kwh, register - Decimal::new(123_456, 3));
                let elec: Decimal = s.details.iter().map(|d| d.electricity_money).sum();
                let service: Decimal = s.details.iter().map(|d| d.service_money).sum();
                prop_assert_eq!(elec, s.electricity_money);
                prop_assert_eq!(service, s.service_money);
                prop_assert_eq!(elec + service, s.total_money);
                for d in &s.details {
                    prop_assert!(d.energy_kwh >= Decimal::ZERO);
                    prop_assert!(d.energy_kwh.scale() <= 3 && d.electricity_money.scale() <= 2);
                    let exact = d.energy_kwh * d.electricity_price;
                    prop_assert!((d.electricity_money - exact).abs() <= Decimal::new(5, 3));
                    prop_assert!(d.start < d.end);
                }
                prop_assert_eq!(s.details.first().map(|d| d.start), samples.first().map(|x| x.at));
                prop_assert_eq!(s.details.last().map(|d| d.end), samples.last().map(|x| x.at));
            }
        }
    }
}
