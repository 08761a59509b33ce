//! Abnormal transactions (REQ MON-9): the rules that flag a charge order for a monitor to verify.
//! A flag never changes the order; a correction is a new version with a reason (REC-2).

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::settlement::{Sample, Settlement};

/// What looks wrong with an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// More energy than the pile's rated power could deliver in the time, beyond the tolerance.
    EnergyAboveRated,
    /// A meter register lower than the one before it.
    RegisterBackwards,
    /// No energy over a long session.
    ZeroEnergy,
    /// Another session on the same connector at the same time.
    Overlap,
    /// Started and never ended.
    NeverEnded,
    /// An order id already used.
    DuplicateOrderId,
    /// Amounts reported that disagree with the tariff in force.
    AmountMismatch,
    /// A customer disputes the order (a billing complaint, REQ CMP-4).
    CustomerDispute,
    /// The session's end arrived without its start.
    NeverStarted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub kind: FlagKind,
    /// What was found, with the figures.
    pub detail: String,
}

/// The limits of the rules; configurable per deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// How far above rated power × duration energy may go, in percent (meter class, start-up).
    pub rated_tolerance_percent: u32,
    /// A session with no energy is abnormal from this long.
    pub zero_energy_after: Duration,
    /// A session not ended after this long is abnormal.
    pub never_ended_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            rated_tolerance_percent: 10,
            zero_energy_after: Duration::minutes(30),
            never_ended_after: Duration::hours(24),
        }
    }
}

/// The facts of a session the rules look at.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFacts<'a> {
    pub order_id: &'a str,
    pub start: DateTime<Utc>,
    /// None while the session has not ended.
    pub end: Option<DateTime<Utc>>,
    pub samples: &'a [Sample],
    /// The pile's rated power, kW.
    pub rated_power_kw: Decimal,
    /// The amounts a third-party platform reported, if it did: (energy kWh, total money).
    pub reported: Option<(Decimal, Decimal)>,
}

/// Another session of the same connector: (order id, start, end).
pub type Neighbour<'a> = (&'a str, DateTime<Utc>, Option<DateTime<Utc>>);

fn overlaps(
    a: (DateTime<Utc>, Option<DateTime<Utc>>),
    b: (DateTime<Utc>, Option<DateTime<Utc>>),
) -> bool {
    let a_end = a.1.unwrap_or(DateTime::<Utc>::MAX_UTC);
    let b_end = b.1.unwrap_or(DateTime::<Utc>::MAX_UTC);
    a.0 < b_end && b.0 < a_end
}

/// REQ MON-9: every flag the session raises. `settlement` is what the tariff in force makes of
/// it (None when it could not be settled); `id_taken` says whether its order id was used
/// before; `neighbours` are the connector's other sessions.
pub fn check(
    session: &SessionFacts<'_>,
    settlement: Option<&Settlement>,
    id_taken: bool,
    neighbours: &[Neighbour<'_>],
    now: DateTime<Utc>,
    limits: Thresholds,
) -> Vec<Flag> {
    let mut flags = Vec::new();
    let mut flag = |kind, detail: String| flags.push(Flag { kind, detail });
    if id_taken {
        flag(
            FlagKind::DuplicateOrderId,
            format!("order id {} was used before", session.order_id),
        );
    }
    for pair in session.samples.windows(2) {
        if let [a, b] = pair
            && b.register_kwh < a.register_kwh
        {
            flag(
                FlagKind::RegisterBackwards,
                format!(
                    "the register goes from {} to {} kWh at {}",
                    a.register_kwh, b.register_kwh, b.at
                ),
            );
        }
    }
    let energy = match (session.samples.first(), session.samples.last()) {
        (Some(f), Some(l)) => l.register_kwh - f.register_kwh,
        _ => Decimal::ZERO,
    };
    let last_seen = session.samples.last().map_or(session.start, |s| s.at);
    let until = session.end.unwrap_or(last_seen);
    let duration = until - session.start;
    let hours = Decimal::from(duration.num_seconds().max(0)) / Decimal::from(3600);
    let limit = session.rated_power_kw
        * hours
        * (Decimal::ONE_HUNDRED + Decimal::from(limits.rated_tolerance_percent))
        / Decimal::ONE_HUNDRED;
    if energy > limit {
        flag(
            FlagKind::EnergyAboveRated,
            format!(
                "{energy} kWh in {} min is above {} kW × the time with {}% tolerance ({} kWh)",
                duration.num_minutes(),
                session.rated_power_kw,
                limits.rated_tolerance_percent,
                limit.round_dp(3)
            ),
        );
    }
    if energy.is_zero() && duration >= limits.zero_energy_after {
        flag(
            FlagKind::ZeroEnergy,
            format!("no energy in {} min", duration.num_minutes()),
        );
    }
    if session.end.is_none() && now - last_seen >= limits.never_ended_after {
        flag(
            FlagKind::NeverEnded,
            format!("not ended; last heard of at {last_seen}"),
        );
    }
    for (other, start, end) in neighbours {
        if *other != session.order_id && overlaps((session.start, session.end), (*start, *end)) {
            flag(
                FlagKind::Overlap,
                format!("overlaps order {other} on the same connector"),
            );
        }
    }
    // Beyond rounding: energy to settlement's 3 places; money within a cent per priced segment,
    // since settlement rounds each segment's electricity and service money to 2 places while a
    // pile (YKC) prices energy × (electricity + service) and keeps 4.
    let rounded = |d: Decimal, places: u32| {
        d.round_dp_with_strategy(places, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    };
    if let (Some((reported_energy, reported_money)), Some(s)) = (session.reported, settlement)
        && (rounded(reported_energy, 3) != s.energy_kwh
            || (reported_money - s.total_money).abs()
                > Decimal::new(1, 2) * Decimal::from(s.details.len().max(1)))
    {
        flag(
            FlagKind::AmountMismatch,
            format!(
                "reported {reported_energy} kWh for {reported_money} yuan; the tariff in force makes it {} kWh for {} yuan",
                s.energy_kwh, s.total_money
            ),
        );
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::{t, tariff};
    use crate::domain::settlement::settle;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    fn samples(energy: &str, minutes: i64) -> Vec<Sample> {
        let start = t("2026-03-01T10:00:00+08:00");
        vec![
            Sample {
                at: start,
                register_kwh: d("100"),
            },
            Sample {
                at: start + Duration::minutes(minutes),
                register_kwh: d("100") + d(energy),
            },
        ]
    }

    fn facts<'a>(samples: &'a [Sample], ended: bool) -> SessionFacts<'a> {
        SessionFacts {
            order_id: "MA2D3K7Q0260301100000000001",
            start: samples[0].at,
            end: ended.then(|| samples[samples.len() - 1].at),
            samples,
            rated_power_kw: d("60"),
            reported: None,
        }
    }

    fn kinds(flags: &[Flag]) -> Vec<FlagKind> {
        flags.iter().map(|f| f.kind).collect()
    }

    fn now() -> DateTime<Utc> {
        t("2026-03-01T12:00:00+08:00")
    }

    #[test]
    fn mon_9_energy_above_rated_power_times_duration_with_tolerance_is_flagged() {
        // 60 kW for an hour is 60 kWh; 66 is within 10%, 66.001 is not.
        let ok = samples("66", 60);
        assert!(
            check(
                &facts(&ok, true),
                None,
                false,
                &[],
                now(),
                Thresholds::default()
            )
            .is_empty()
        );
        let over = samples("66.001", 60);
        let flags = check(
            &facts(&over, true),
            None,
            false,
            &[],
            now(),
            Thresholds::default(),
        );
        assert_eq!(kinds(&flags), [FlagKind::EnergyAboveRated]);
        assert!(flags[0].detail.contains("66.001"));
    }

    #[test]
    fn mon_9_a_register_going_backwards_and_zero_energy_over_a_long_session_are_flagged() {
        let mut back = samples("5", 20);
        back.push(Sample {
            at: back[1].at + Duration::minutes(5),
            register_kwh: d("101"),
        });
        let flags = check(
            &facts(&back, true),
            None,
            false,
            &[],
            now(),
            Thresholds::default(),
        );
        assert_eq!(kinds(&flags), [FlagKind::RegisterBackwards]);
        let idle = samples("0", 45);
        assert_eq!(
            kinds(&check(
                &facts(&idle, true),
                None,
                false,
                &[],
                now(),
                Thresholds::default()
            )),
            [FlagKind::ZeroEnergy]
        );
        let short = samples("0", 10);
        assert!(
            check(
                &facts(&short, true),
                None,
                false,
                &[],
                now(),
                Thresholds::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn mon_9_overlapping_sessions_never_ended_and_duplicate_ids_are_flagged() {
        let s = samples("10", 30);
        let session = facts(&s, false);
        let other_start = s[0].at + Duration::minutes(10);
        let flags = check(
            &session,
            None,
            true,
            &[(
                "OTHER",
                other_start,
                Some(other_start + Duration::minutes(5)),
            )],
            s[1].at + Duration::hours(25),
            Thresholds::default(),
        );
        assert_eq!(
            kinds(&flags),
            [
                FlagKind::DuplicateOrderId,
                FlagKind::NeverEnded,
                FlagKind::Overlap
            ]
        );
        // A session after this one ended does not overlap it.
        let ended = facts(&s, true);
        let later = s[1].at;
        assert!(
            check(
                &ended,
                None,
                false,
                &[("LATER", later, None)],
                now(),
                Thresholds::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn mon_9_amounts_that_disagree_with_the_tariff_in_force_are_flagged() {
        let s = samples("10", 30);
        let settled = settle(&tariff(), &s).expect("settled");
        // 10 kWh at peak: 10.00 + 8.00.
        assert_eq!(settled.total_money, d("18.00"));
        let mut session = facts(&s, true);
        session.reported = Some((d("10.000"), d("18.00")));
        assert!(
            check(
                &session,
                Some(&settled),
                false,
                &[],
                now(),
                Thresholds::default()
            )
            .is_empty()
        );
        session.reported = Some((d("10.000"), d("17.00")));
        assert_eq!(
            kinds(&check(
                &session,
                Some(&settled),
                false,
                &[],
                now(),
                Thresholds::default()
            )),
            [FlagKind::AmountMismatch]
        );
    }

    #[test]
    fn settle_1_a_pile_s_4_place_amount_agrees_within_rounding_and_not_beyond() {
        let s = samples("10", 30);
        let settled = settle(&tariff(), &s).expect("settled");
        let mut session = facts(&s, true);
        let judged = |session: &SessionFacts<'_>| {
            kinds(&check(
                session,
                Some(&settled),
                false,
                &[],
                now(),
                Thresholds::default(),
            ))
        };
        // A YKC pile's money has 4 places, and it rounds once where settlement rounds each
        // segment's two parts: within a cent per segment (one here) it agrees.
        session.reported = Some((d("10.0004"), d("18.0049")));
        assert!(judged(&session).is_empty());
        session.reported = Some((d("10.000"), d("17.9900")));
        assert!(judged(&session).is_empty());
        session.reported = Some((d("10.000"), d("18.0101")));
        assert_eq!(judged(&session), [FlagKind::AmountMismatch]);
        session.reported = Some((d("10.0005"), d("18.00")));
        assert_eq!(judged(&session), [FlagKind::AmountMismatch], "10.001 kWh");
    }
}
