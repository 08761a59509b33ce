//! Emergency readiness (REQ SAFE-1, EMERG-2): a plan for every SAFE-1 hazard, and drills at least
//! every six months.

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// REQ SAFE-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    ElectricalFire,
    BatteryFire,
    Explosion,
    ElectricShock,
    Flood,
    Pollution,
}

pub const HAZARDS: &[Hazard] = &[
    Hazard::ElectricalFire,
    Hazard::BatteryFire,
    Hazard::Explosion,
    Hazard::ElectricShock,
    Hazard::Flood,
    Hazard::Pollution,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyPlan {
    pub plan_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub hazard: Hazard,
    pub document_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drill {
    pub drill_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub hazard: Hazard,
    pub held_on: NaiveDate,
    pub participants: Vec<String>,
    pub record: String,
}

/// A station's readiness on a day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// SAFE-1 hazards without a plan.
    pub missing_plans: Vec<Hazard>,
    pub last_drill_on: Option<NaiveDate>,
    /// REQ EMERG-2: no drill within the last six months.
    pub drill_overdue: bool,
}

pub fn readiness(plans: &[EmergencyPlan], drills: &[Drill], today: NaiveDate) -> Readiness {
    let missing_plans = HAZARDS
        .iter()
        .copied()
        .filter(|h| !plans.iter().any(|p| p.hazard == *h))
        .collect();
    let last_drill_on = drills.iter().map(|d| d.held_on).max();
    let six_months_ago = today.checked_sub_months(Months::new(6)).unwrap_or(today);
    Readiness {
        missing_plans,
        last_drill_on,
        drill_overdue: last_drill_on.is_none_or(|last| last < six_months_ago),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn emerg_2_a_drill_older_than_six_months_is_overdue() {
        let drill = Drill {
            drill_id: "DR-1".into(),
            operator_id: "OP".into(),
            station_id: "S1".into(),
            hazard: Hazard::BatteryFire,
            held_on: d("2026-01-15"),
            participants: vec!["a".into()],
            record: "evacuation in 4 min".into(),
        };
        assert!(
            readiness(&[], &[], d("2026-03-01")).drill_overdue,
            "never drilled"
        );
        assert!(!readiness(&[], std::slice::from_ref(&drill), d("2026-07-15")).drill_overdue);
        assert!(readiness(&[], &[drill], d("2026-07-16")).drill_overdue);
    }

    #[test]
    fn safe_1_every_hazard_needs_a_plan() {
        let plan = EmergencyPlan {
            plan_id: "EP-1".into(),
            operator_id: "OP".into(),
            station_id: "S1".into(),
            hazard: Hazard::Flood,
            document_ref: "EP-FLOOD-2026".into(),
        };
        let r = readiness(&[plan], &[], d("2026-03-01"));
        assert_eq!(r.missing_plans.len(), HAZARDS.len() - 1);
        assert!(!r.missing_plans.contains(&Hazard::Flood));
    }
}
