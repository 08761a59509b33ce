//! Who may repair (REQ FAULT-1, FAULT-2, FAULT-3, STAFF-2, STAFF-3).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Employer {
    Own,
    Contractor,
}

/// A member of staff as a crew assignment sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffMember {
    pub staff_id: String,
    pub name: String,
    pub employer: Employer,
    /// The electrician certificate (电工证), valid through this date.
    pub electrician_certificate_until: Option<NaiveDate>,
    /// Safety training and post qualification, valid through this date (REQ STAFF-2).
    pub qualified_until: Option<NaiveDate>,
    /// The trainings passed, oldest first (REQ STAFF-2).
    #[serde(default)]
    pub trainings: Vec<super::training::Training>,
}

/// Whether the work is high-risk (high voltage, work at height): crews of at least 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Normal,
    HighVoltage,
    WorkAtHeight,
}

impl Risk {
    /// REQ FAULT-1: one works and one supervises; high-risk work needs a third.
    pub fn minimum_crew(self) -> usize {
        match self {
            Risk::Normal => 2,
            Risk::HighVoltage | Risk::WorkAtHeight => 3,
        }
    }
}

/// Checks a crew for work of `risk` on `day`; the refusal names the member and the rule.
pub fn validate_crew(members: &[StaffMember], risk: Risk, day: NaiveDate) -> Result<(), Error> {
    let mut ids: Vec<&str> = members.iter().map(|m| m.staff_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != members.len() {
        return Err(Error::bad_field("crew", "names a member twice"));
    }
    // REQ FAULT-1: single-person repair is forbidden.
    if members.len() < risk.minimum_crew() {
        return Err(Error::invalid(
            "crew",
            "FAULT-1",
            format!(
                "a crew for this work needs at least {} people, not {}",
                risk.minimum_crew(),
                members.len()
            ),
        ));
    }
    for m in members {
        // REQ STAFF-3, FAULT-3: an electrician certificate valid on the day of work.
        match m.electrician_certificate_until {
            None => {
                return Err(Error::invalid(
                    "crew",
                    "STAFF-3",
                    format!("{} holds no electrician certificate", m.name),
                ));
            }
            Some(until) if until < day => {
                return Err(Error::invalid(
                    "crew",
                    "STAFF-3",
                    format!("{}'s electrician certificate expired on {until}", m.name),
                ));
            }
            Some(_) => {}
        }
        // REQ STAFF-2: trained and qualified before taking the post.
        if m.qualified_until.is_none_or(|until| until < day) {
            return Err(Error::invalid(
                "crew",
                "STAFF-2",
                format!(
                    "{} has no valid safety training and qualification on {day}",
                    m.name
                ),
            ));
        }
    }
    // REQ FAULT-2: contractors are supervised by own staff throughout.
    let contractors = members.iter().any(|m| m.employer == Employer::Contractor);
    let own = members.iter().any(|m| m.employer == Employer::Own);
    if contractors && !own {
        return Err(Error::invalid(
            "crew",
            "FAULT-2",
            "contractors must be supervised by own staff",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn member(id: &str, employer: Employer, cert_until: Option<&str>) -> StaffMember {
        StaffMember {
            staff_id: id.into(),
            name: format!("staff {id}"),
            employer,
            electrician_certificate_until: cert_until.map(d),
            qualified_until: Some(d("2027-01-01")),
            trainings: Vec::new(),
        }
    }

    fn rule(err: &Error) -> Option<&'static str> {
        match err {
            Error::Invalid { rule, .. } => *rule,
            _ => None,
        }
    }

    #[test]
    fn fault_1_a_crew_of_one_is_refused() {
        let crew = [member("a", Employer::Own, Some("2026-12-31"))];
        let err = validate_crew(&crew, Risk::Normal, d("2026-03-01")).expect_err("refused");
        assert_eq!(rule(&err), Some("FAULT-1"));
    }

    #[test]
    fn fault_1_high_risk_work_needs_three() {
        let two = [
            member("a", Employer::Own, Some("2026-12-31")),
            member("b", Employer::Own, Some("2026-12-31")),
        ];
        assert!(validate_crew(&two, Risk::Normal, d("2026-03-01")).is_ok());
        let err = validate_crew(&two, Risk::HighVoltage, d("2026-03-01")).expect_err("refused");
        assert_eq!(rule(&err), Some("FAULT-1"));
        let mut three = two.to_vec();
        three.push(member("c", Employer::Own, Some("2026-12-31")));
        assert!(validate_crew(&three, Risk::WorkAtHeight, d("2026-03-01")).is_ok());
    }

    #[test]
    fn staff_3_an_expired_electrician_certificate_is_refused_from_the_next_day() {
        let crew = [
            member("a", Employer::Own, Some("2026-12-31")),
            member("b", Employer::Own, Some("2026-02-28")),
        ];
        assert!(
            validate_crew(&crew, Risk::Normal, d("2026-02-28")).is_ok(),
            "valid on its last day"
        );
        let err = validate_crew(&crew, Risk::Normal, d("2026-03-01")).expect_err("expired");
        assert_eq!(rule(&err), Some("STAFF-3"));
        assert!(err.to_string().contains("staff b"));
        let none = [
            member("a", Employer::Own, Some("2026-12-31")),
            member("b", Employer::Own, None),
        ];
        assert_eq!(
            rule(&validate_crew(&none, Risk::Normal, d("2026-03-01")).expect_err("none")),
            Some("STAFF-3")
        );
    }

    #[test]
    fn staff_2_an_unqualified_member_is_refused() {
        let mut b = member("b", Employer::Own, Some("2026-12-31"));
        b.qualified_until = Some(d("2026-01-31"));
        let crew = [member("a", Employer::Own, Some("2026-12-31")), b];
        assert_eq!(
            rule(&validate_crew(&crew, Risk::Normal, d("2026-03-01")).expect_err("refused")),
            Some("STAFF-2")
        );
    }

    #[test]
    fn fault_2_contractors_need_own_staff_supervising() {
        let contractors = [
            member("a", Employer::Contractor, Some("2026-12-31")),
            member("b", Employer::Contractor, Some("2026-12-31")),
        ];
        assert_eq!(
            rule(&validate_crew(&contractors, Risk::Normal, d("2026-03-01")).expect_err("refused")),
            Some("FAULT-2")
        );
        let mixed = [
            member("a", Employer::Contractor, Some("2026-12-31")),
            member("b", Employer::Own, Some("2026-12-31")),
        ];
        assert!(validate_crew(&mixed, Risk::Normal, d("2026-03-01")).is_ok());
    }
}
