//! Charge orders and their versions (REQ SETTLE-1, MON-9, REC-2): an order is reported once and
//! never changed; a correction is a new version with its reason, and every version stays.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

use super::abnormal::{Flag, FlagKind, Neighbour, SessionFacts, Thresholds, check};
use super::settlement::{Sample, Settlement, settle};

/// REQ CHG-1: the safety steps of a session as the pile reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargingSteps {
    pub connector_checked: bool,
    pub charging_confirmed: bool,
    pub end_confirmed: bool,
    pub physically_separated: bool,
}

/// T/CEC 102 StopReason codes: 0 user, 1 home platform, 2 BMS, 3 charger fault, 4 unplugged,
/// 5 to 99 custom.
pub const MAX_STOP_REASON: i32 = 99;

/// One version of a charge order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeOrder {
    pub operator_id: String,
    pub order_id: String,
    pub version: u32,
    pub station_id: String,
    pub pile_id: String,
    pub connector_id: String,
    pub area_code: String,
    pub start: DateTime<Utc>,
    pub end: Option<DateTime<Utc>>,
    pub stop_reason: i32,
    pub samples: Vec<Sample>,
    pub steps: ChargingSteps,
    /// REQ BASE-5: false when the meter was not verified at the start, or the order could not
    /// be settled; such an order is kept but never counted.
    pub billable: bool,
    pub not_billable_reason: Option<String>,
    pub settlement: Option<Settlement>,
    pub flags: Vec<Flag>,
    /// What the reporting platform said: (energy kWh, total money).
    pub reported: Option<(Decimal, Decimal)>,
    pub correction_reason: Option<String>,
    /// REQ MON-9: flags a monitor verified as normal; the rules raise them no more.
    #[serde(default)]
    pub verified_flags: Vec<FlagKind>,
    /// The authorisation the session started with, when a pile reported it.
    #[serde(default)]
    pub authorization_ref: String,
    /// The station accepted any token for it.
    #[serde(default)]
    pub any_token: bool,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// A correction as a monitor asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Correction {
    pub reason: String,
    /// Replaces the readings when given.
    pub samples: Option<Vec<Sample>>,
    /// Replaces the end when given.
    pub end: Option<DateTime<Utc>>,
}

impl ChargeOrder {
    /// Whether a report describes this same session: a resend, answered with the order as it
    /// is, rather than another session reusing the id.
    pub fn same_session(&self, other: &ChargeOrder) -> bool {
        self.connector_id == other.connector_id
            && self.pile_id == other.pile_id
            && self.start == other.start
            && self.end == other.end
            && self.samples == other.samples
    }

    /// The money counted in settlement totals: nothing unless billable.
    pub fn billable_totals(&self) -> Option<(Decimal, Decimal)> {
        match (&self.settlement, self.billable) {
            (Some(s), true) => Some((s.energy_kwh, s.total_money)),
            _ => None,
        }
    }

    /// REQ MON-9, REC-2: the next version with the corrected facts and the reason; the caller
    /// settles and checks it again. This version is left as it is.
    pub fn corrected(
        &self,
        correction: Correction,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<ChargeOrder, Error> {
        let reason = correction.reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(
                "reason",
                "MON-9",
                "a correction says why, such as the verification that found the error",
            ));
        }
        let mut next = self.clone();
        if correction.samples.is_none() && correction.end.is_none() {
            // Nothing to change: the monitor verified the flags and found the order normal.
            if self.flags.is_empty() {
                return Err(Error::bad_field(
                    "samples",
                    "a correction changes the readings or the end, or verifies the order's flags",
                ));
            }
            for flag in &self.flags {
                if !next.verified_flags.contains(&flag.kind) {
                    next.verified_flags.push(flag.kind);
                }
            }
        }
        next.version += 1;
        if let Some(samples) = correction.samples {
            next.samples = samples;
        }
        if let Some(end) = correction.end {
            next.end = Some(end);
        }
        next.correction_reason = Some(reason.to_owned());
        next.recorded_by = by.to_owned();
        next.recorded_at = now;
        next.settlement = None;
        next.flags = Vec::new();
        next.billable = false;
        next.not_billable_reason = None;
        Ok(next)
    }
}

impl ChargeOrder {
    /// REQ MON-9: a customer's dispute (a billing complaint) flags the order for a monitor to
    /// verify, as a new version; raising it again while it stands changes nothing.
    pub fn disputed(
        &self,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Self>, Error> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::invalid(
                "reason",
                "MON-9",
                "the dispute says what the customer contests",
            ));
        }
        if self
            .flags
            .iter()
            .any(|f| f.kind == FlagKind::CustomerDispute)
        {
            return Ok(None);
        }
        let mut next = self.clone();
        next.version += 1;
        next.verified_flags
            .retain(|k| *k != FlagKind::CustomerDispute);
        next.flags.push(Flag {
            kind: FlagKind::CustomerDispute,
            detail: reason.to_owned(),
        });
        next.correction_reason = Some(format!("disputed: {reason}"));
        next.recorded_by = by.to_owned();
        next.recorded_at = now;
        Ok(Some(next))
    }
}

/// What the registry says of the pile at the session's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PileFacts {
    pub rated_power_kw: Decimal,
    /// REQ BASE-5: `Err(why)` when the meter had no valid metrology certificate at the start.
    pub eligibility: Result<(), String>,
}

/// REQ SETTLE-1, BASE-5, MON-9: settles a version by the tariff, decides whether it is billable
/// and raises its flags. An order that cannot be settled (no tariff in force, a register going
/// backwards) is kept, not billable, with the reason.
pub fn evaluate(
    order: &mut ChargeOrder,
    tariff: &chargemesh_kit::tariff::Tariff,
    pile: &PileFacts,
    id_taken: bool,
    neighbours: &[Neighbour<'_>],
    now: DateTime<Utc>,
    limits: Thresholds,
) {
    let (settlement, unsettled) = match settle(tariff, &order.samples) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let facts = SessionFacts {
        order_id: &order.order_id,
        start: order.start,
        end: order.end,
        samples: &order.samples,
        rated_power_kw: pile.rated_power_kw,
        reported: order.reported,
    };
    // Flags raised before (by whoever assembled the order) stay, each kind once; those a
    // monitor verified as normal are raised no more.
    let mut flags = std::mem::take(&mut order.flags);
    for flag in check(
        &facts,
        settlement.as_ref(),
        id_taken,
        neighbours,
        now,
        limits,
    ) {
        if !flags.iter().any(|f| f.kind == flag.kind) {
            flags.push(flag);
        }
    }
    flags.retain(|f| !order.verified_flags.contains(&f.kind));
    order.flags = flags;
    // A session without its end is charged only once a monitor has verified it (REQ MON-9).
    let unended = order
        .end
        .is_none()
        .then(|| "the session never ended; a monitor verifies it first (REQ MON-9)".to_owned());
    order.not_billable_reason = pile.eligibility.clone().err().or(unsettled).or(unended);
    order.billable = order.not_billable_reason.is_none();
    order.settlement = settlement;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::t;

    fn order() -> ChargeOrder {
        ChargeOrder {
            operator_id: "MA2D3K7Q0".into(),
            order_id: "MA2D3K7Q0260301100000000001".into(),
            version: 1,
            station_id: "S1".into(),
            pile_id: "P1".into(),
            connector_id: "P1-1".into(),
            area_code: "330602".into(),
            start: t("2026-03-01T10:00:00+08:00"),
            end: Some(t("2026-03-01T11:00:00+08:00")),
            stop_reason: 0,
            samples: vec![
                Sample {
                    at: t("2026-03-01T10:00:00+08:00"),
                    register_kwh: Decimal::new(100, 0),
                },
                Sample {
                    at: t("2026-03-01T11:00:00+08:00"),
                    register_kwh: Decimal::new(90, 0),
                },
            ],
            steps: ChargingSteps::default(),
            billable: false,
            not_billable_reason: Some("register backwards".into()),
            settlement: None,
            flags: Vec::new(),
            reported: None,
            correction_reason: None,
            verified_flags: Vec::new(),
            authorization_ref: String::new(),
            any_token: false,
            recorded_by: "platform".into(),
            recorded_at: t("2026-03-01T11:00:05+08:00"),
        }
    }

    #[test]
    fn rec_2_a_correction_is_a_new_version_with_its_reason_and_the_original_stays() {
        let original = order();
        let mut fixed = original.samples.clone();
        fixed[1].register_kwh = Decimal::new(110, 0);
        let next = original
            .corrected(
                Correction {
                    reason: "meter photo shows 110 kWh".into(),
                    samples: Some(fixed.clone()),
                    end: None,
                },
                "monitor mo",
                t("2026-03-02T09:00:00+08:00"),
            )
            .expect("corrected");
        assert_eq!(next.version, 2);
        assert_eq!(next.samples, fixed);
        assert_eq!(
            next.correction_reason.as_deref(),
            Some("meter photo shows 110 kWh")
        );
        assert_eq!(original.version, 1, "the original is untouched");
        assert!(!original.same_session(&next));
    }

    #[test]
    fn base_5_an_unverified_meter_keeps_the_order_settled_but_not_billable() {
        let mut o = order();
        o.samples[1].register_kwh = Decimal::new(110, 0);
        let facts = |eligibility| PileFacts {
            rated_power_kw: Decimal::new(60, 0),
            eligibility,
        };
        let tariff = crate::domain::fixtures::tariff();
        let now = t("2026-03-01T12:00:00+08:00");
        evaluate(
            &mut o,
            &tariff,
            &facts(Ok(())),
            false,
            &[],
            now,
            Thresholds::default(),
        );
        assert!(o.billable && o.not_billable_reason.is_none());
        assert_eq!(
            o.billable_totals().map(|(e, _)| e),
            Some(Decimal::new(10, 0))
        );
        evaluate(
            &mut o,
            &tariff,
            &facts(Err("no valid metrology certificate (REQ BASE-5)".into())),
            false,
            &[],
            now,
            Thresholds::default(),
        );
        assert!(!o.billable);
        assert!(o.settlement.is_some(), "still itemised for the record");
        assert_eq!(o.billable_totals(), None, "excluded from settlement totals");
        assert!(
            o.not_billable_reason
                .as_deref()
                .is_some_and(|r| r.contains("BASE-5"))
        );
    }

    #[test]
    fn mon_9_an_order_that_cannot_be_settled_is_kept_flagged_and_not_billable() {
        let mut o = order();
        let pile = PileFacts {
            rated_power_kw: Decimal::new(60, 0),
            eligibility: Ok(()),
        };
        let tariff = crate::domain::fixtures::tariff();
        evaluate(
            &mut o,
            &tariff,
            &pile,
            false,
            &[],
            t("2026-03-01T12:00:00+08:00"),
            Thresholds::default(),
        );
        assert!(!o.billable);
        assert!(o.settlement.is_none());
        assert!(
            o.not_billable_reason
                .as_deref()
                .is_some_and(|r| r.contains("MON-9"))
        );
        assert_eq!(o.flags.len(), 1);
    }

    #[test]
    fn mon_9_a_session_that_never_ended_is_not_billable_until_corrected() {
        let mut o = order();
        o.samples[1].register_kwh = Decimal::new(110, 0);
        o.end = None;
        let pile = PileFacts {
            rated_power_kw: Decimal::new(60, 0),
            eligibility: Ok(()),
        };
        let tariff = crate::domain::fixtures::tariff();
        let now = t("2026-03-01T12:00:00+08:00");
        evaluate(
            &mut o,
            &tariff,
            &pile,
            false,
            &[],
            now,
            Thresholds::default(),
        );
        assert!(!o.billable);
        assert!(o.settlement.is_some());
        let mut fixed = o
            .corrected(
                Correction {
                    reason: "the pile's log shows the end at 11:00".into(),
                    end: Some(t("2026-03-01T11:00:00+08:00")),
                    ..Correction::default()
                },
                "mo",
                now,
            )
            .expect("corrected");
        evaluate(
            &mut fixed,
            &tariff,
            &pile,
            false,
            &[],
            now,
            Thresholds::default(),
        );
        assert!(fixed.billable, "{:?}", fixed.not_billable_reason);
    }

    #[test]
    fn mon_9_a_monitor_verifying_a_flag_as_normal_makes_a_version_without_it() {
        let mut o = order();
        o.samples[1].register_kwh = Decimal::new(170, 0);
        let pile = PileFacts {
            rated_power_kw: Decimal::new(60, 0),
            eligibility: Ok(()),
        };
        let tariff = crate::domain::fixtures::tariff();
        let now = t("2026-03-01T12:00:00+08:00");
        evaluate(
            &mut o,
            &tariff,
            &pile,
            false,
            &[],
            now,
            Thresholds::default(),
        );
        assert_eq!(o.flags.len(), 1, "70 kWh in an hour on 60 kW");
        let mut verified = o
            .corrected(
                Correction {
                    reason: "the pile was upgraded to 80 kW; the ledger is behind".into(),
                    ..Correction::default()
                },
                "mo",
                now,
            )
            .expect("verified");
        evaluate(
            &mut verified,
            &tariff,
            &pile,
            false,
            &[],
            now,
            Thresholds::default(),
        );
        assert!(verified.flags.is_empty());
        assert_eq!(verified.verified_flags, [FlagKind::EnergyAboveRated]);
        assert_eq!(verified.samples, o.samples, "nothing else changed");
    }

    #[test]
    fn mon_9_a_customer_dispute_flags_the_order_once_as_a_new_version() {
        let o = order();
        let now = t("2026-03-02T09:00:00+08:00");
        let disputed = o
            .disputed(
                "complaint CP-1: charged for 10 kWh, car shows 8",
                "complaints",
                now,
            )
            .expect("disputed")
            .expect("a new version");
        assert_eq!(disputed.version, 2);
        assert_eq!(
            disputed.flags.last().map(|f| f.kind),
            Some(FlagKind::CustomerDispute)
        );
        assert_eq!(
            disputed.disputed("again", "complaints", now).expect("ok"),
            None
        );
        assert!(o.disputed(" ", "c", now).is_err());
    }

    #[test]
    fn mon_9_a_correction_needs_a_reason_and_a_change() {
        let o = order();
        let now = t("2026-03-02T09:00:00+08:00");
        let no_reason = o
            .corrected(
                Correction {
                    reason: " ".into(),
                    end: Some(now),
                    ..Correction::default()
                },
                "mo",
                now,
            )
            .expect_err("reason");
        assert!(matches!(
            no_reason,
            Error::Invalid {
                rule: Some("MON-9"),
                ..
            }
        ));
        assert!(
            o.corrected(
                Correction {
                    reason: "why".into(),
                    ..Correction::default()
                },
                "mo",
                now
            )
            .is_err()
        );
    }
}
