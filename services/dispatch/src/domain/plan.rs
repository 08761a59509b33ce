//! Maintenance plans (REQ MAINT-1, MAINT-2, MAINT-3): drafted by O&M, approved by an O&M manager;
//! a change to an approved plan needs approval again; completions are recorded per item.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

/// The MAINT-3 items.
pub const ITEMS: &[&str] = &[
    "distribution_equipment",
    "charging_modes",
    "communication",
    "display",
    "input",
    "metering",
    "cabinets_monitoring_signage",
    "cleaning",
    "lubrication",
    "grounding_resistance_test",
    "annual_meter_verification",
    "real_charging_test",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    AwaitingApproval,
    Approved,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenancePlan {
    pub plan_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub title: String,
    /// The period it covers, such as "2026" or "2026-03".
    pub period: String,
    pub items: Vec<String>,
    pub state: PlanState,
    /// Bumped by every change, so an approval names what it approved.
    pub revision: u32,
    pub drafted_by: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_revision: Option<u32>,
    /// Items carried out (REQ MAINT-2, MAINT-3).
    #[serde(default)]
    pub completions: Vec<Completion>,
}

/// An item of a plan carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub item: String,
    pub completed_at: DateTime<Utc>,
    pub record: String,
    pub by: String,
    /// REQ MAINT-4: the ledger change made with it.
    #[serde(default)]
    pub ledger_change: Option<String>,
}

/// REQ MAINT-2: every facility is maintained at least once a year.
pub fn maintained_within_a_year(
    plans: &[MaintenancePlan],
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, bool) {
    let last = plans
        .iter()
        .flat_map(|p| p.completions.iter())
        .map(|c| c.completed_at)
        .max();
    let compliant = last.is_some_and(|at| now - at <= chrono::Duration::days(365));
    (last, compliant)
}

fn check_items(items: &[String]) -> Result<Vec<String>, Error> {
    if items.is_empty() {
        return Err(Error::invalid(
            "items",
            "MAINT-3",
            "a plan lists the maintenance items it covers",
        ));
    }
    let mut out = Vec::new();
    for item in items {
        let item = item.trim();
        if !ITEMS.contains(&item) {
            return Err(Error::invalid(
                "items",
                "MAINT-3",
                format!("{item} is not a MAINT-3 item; items: {}", ITEMS.join(", ")),
            ));
        }
        if !out.iter().any(|i: &String| i == item) {
            out.push(item.to_owned());
        }
    }
    Ok(out)
}

impl MaintenancePlan {
    /// REQ MAINT-1: drafted by O&M, awaiting a manager's approval.
    pub fn draft(
        plan_id: String,
        operator_id: String,
        station_id: String,
        title: &str,
        period: &str,
        items: &[String],
        drafted_by: String,
    ) -> Result<Self, Error> {
        if title.trim().is_empty() {
            return Err(Error::invalid("title", "MAINT-1", "is required"));
        }
        let period = period.trim();
        let well_formed = matches!(period.len(), 4 | 7)
            && period[..4].bytes().all(|b| b.is_ascii_digit())
            && (period.len() == 4
                || (&period[4..5] == "-"
                    && period[5..]
                        .parse::<u32>()
                        .is_ok_and(|m| (1..=12).contains(&m))));
        if !well_formed {
            return Err(Error::bad_field(
                "period",
                "must be a year YYYY or a month YYYY-MM",
            ));
        }
        Ok(Self {
            plan_id,
            operator_id,
            station_id,
            title: title.trim().to_owned(),
            period: period.to_owned(),
            items: check_items(items)?,
            state: PlanState::AwaitingApproval,
            revision: 1,
            drafted_by,
            approved_by: None,
            approved_at: None,
            approved_revision: None,
            completions: Vec::new(),
        })
    }

    /// Records an item carried out; only an approved plan is carried out (REQ MAINT-1).
    pub fn complete(
        &mut self,
        item: &str,
        record: &str,
        by: &str,
        ledger_change: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if self.state != PlanState::Approved {
            return Err(Error::precondition(
                "MAINT-1",
                "a plan is carried out once it is approved",
            ));
        }
        let item = item.trim();
        if !self.items.iter().any(|i| i == item) {
            return Err(Error::invalid(
                "item",
                "MAINT-3",
                format!("{item} is not an item of this plan"),
            ));
        }
        if record.trim().is_empty() {
            return Err(Error::invalid(
                "record",
                "EQ-2",
                "the maintenance carried out is recorded",
            ));
        }
        self.completions.push(Completion {
            item: item.to_owned(),
            completed_at: now,
            record: record.trim().to_owned(),
            by: by.to_owned(),
            ledger_change,
        });
        Ok(())
    }

    /// REQ MAINT-1: a change, even to an approved plan, waits for approval again.
    pub fn edit(&mut self, title: Option<&str>, items: Option<&[String]>) -> Result<(), Error> {
        if let Some(title) = title {
            if title.trim().is_empty() {
                return Err(Error::invalid("title", "MAINT-1", "is required"));
            }
            self.title = title.trim().to_owned();
        }
        if let Some(items) = items {
            self.items = check_items(items)?;
        }
        self.revision += 1;
        self.state = PlanState::AwaitingApproval;
        self.approved_by = None;
        self.approved_at = None;
        Ok(())
    }

    /// REQ MAINT-1: management approves; not the drafter of the revision.
    pub fn approve(&mut self, by: &str, now: DateTime<Utc>) -> Result<(), Error> {
        if self.state == PlanState::Approved {
            return Err(Error::state("the plan is already approved"));
        }
        if by == self.drafted_by {
            return Err(Error::precondition(
                "MAINT-1",
                "the drafter does not approve their own plan",
            ));
        }
        self.state = PlanState::Approved;
        self.approved_by = Some(by.to_owned());
        self.approved_at = Some(now);
        self.approved_revision = Some(self.revision);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> MaintenancePlan {
        MaintenancePlan::draft(
            "MP-1".into(),
            "OP".into(),
            "S1".into(),
            "2026 annual maintenance",
            "2026",
            &["metering".into(), "grounding_resistance_test".into()],
            "staff:om".into(),
        )
        .expect("drafted")
    }

    #[test]
    fn maint_3_only_listed_items_are_planned() {
        let err = MaintenancePlan::draft(
            "MP".into(),
            "OP".into(),
            "S1".into(),
            "t",
            "2026",
            &["painting".into()],
            "x".into(),
        )
        .expect_err("refused");
        assert!(matches!(
            err,
            Error::Invalid {
                rule: Some("MAINT-3"),
                ..
            }
        ));
        assert!(
            MaintenancePlan::draft(
                "MP".into(),
                "OP".into(),
                "S1".into(),
                "t",
                "2026-13",
                &["metering".into()],
                "x".into()
            )
            .is_err()
        );
    }

    #[test]
    fn maint_1_an_approved_plan_edited_awaits_approval_again() {
        let mut p = plan();
        let t = DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .expect("t")
            .to_utc();
        assert!(p.approve("staff:om", t).is_err(), "not by its drafter");
        p.approve("staff:manager", t).expect("approved");
        assert_eq!(
            (p.state, p.approved_revision),
            (PlanState::Approved, Some(1))
        );
        p.edit(None, Some(&["cleaning".into()])).expect("edited");
        assert_eq!((p.state, p.revision), (PlanState::AwaitingApproval, 2));
        assert!(p.approved_by.is_none());
    }

    #[test]
    fn maint_2_a_facility_unmaintained_for_a_year_is_non_compliant() {
        let t = DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .expect("t")
            .to_utc();
        let mut p = plan();
        assert!(
            p.complete("metering", "calibrated", "r", None, t).is_err(),
            "not approved yet"
        );
        p.approve("staff:manager", t).expect("approved");
        assert!(
            p.complete("cleaning", "x", "r", None, t).is_err(),
            "not in the plan"
        );
        p.complete("metering", "meter verified", "r", None, t)
            .expect("done");
        let plans = [p];
        assert_eq!(
            maintained_within_a_year(&plans, t + chrono::Duration::days(365)),
            (Some(t), true)
        );
        assert!(!maintained_within_a_year(&plans, t + chrono::Duration::days(366)).1);
        assert!(!maintained_within_a_year(&[], t).1);
    }
}
