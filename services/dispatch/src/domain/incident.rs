//! Emergency repair (REQ EMERG-1): the fault is limited, then isolated, reported upwards level by
//! level, and the incident ends with an incident report; equipment changed on the way updates the
//! ledger (through the same path as maintenance, REQ MAINT-4).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

use super::emergency::Hazard;

/// REQ EMERG-1: the levels an incident is reported up, in order, none skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The station master, first safety responsible (REQ STAFF-1).
    Station,
    /// The operator's management.
    Operator,
    /// The authorities: the regulator, fire service, grid company.
    Authority,
}

pub const LEVELS: &[Level] = &[Level::Station, Level::Operator, Level::Authority];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    pub level: Level,
    /// Who was told, such as a name and post or an authority.
    pub to: String,
    pub at: DateTime<Utc>,
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub incident_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: Option<String>,
    pub hazard: Option<Hazard>,
    pub description: String,
    pub opened_at: DateTime<Utc>,
    pub opened_by: String,
    /// When the fault was limited from spreading.
    pub contained_at: Option<DateTime<Utc>>,
    /// When the faulty part was isolated.
    pub isolated_at: Option<DateTime<Utc>>,
    pub escalations: Vec<Escalation>,
    pub report: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The ledger changes made with the repair (REQ MAINT-4).
    pub ledger_changes: Vec<String>,
}

/// What the first responder reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: Option<String>,
    pub hazard: Option<Hazard>,
    pub description: String,
}

impl Incident {
    pub fn open(
        incident_id: String,
        new: NewIncident,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        if new.description.trim().is_empty() {
            return Err(Error::invalid(
                "description",
                "EMERG-1",
                "what happened is described",
            ));
        }
        Ok(Self {
            incident_id,
            operator_id: new.operator_id,
            station_id: new.station_id,
            pile_id: new.pile_id.filter(|p| !p.trim().is_empty()),
            hazard: new.hazard,
            description: new.description.trim().to_owned(),
            opened_at: now,
            opened_by: by.to_owned(),
            contained_at: None,
            isolated_at: None,
            escalations: Vec::new(),
            report: None,
            closed_at: None,
            ledger_changes: Vec::new(),
        })
    }

    fn require_open(&self) -> Result<(), Error> {
        if self.closed_at.is_some() {
            return Err(Error::state("the incident is closed"));
        }
        Ok(())
    }

    /// REQ EMERG-1: the fault is limited first.
    pub fn contain(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        self.require_open()?;
        if self.contained_at.is_some() {
            return Err(Error::state("the fault is already contained"));
        }
        self.contained_at = Some(now);
        Ok(())
    }

    /// REQ EMERG-1: then isolated.
    pub fn isolate(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        self.require_open()?;
        if self.contained_at.is_none() {
            return Err(Error::precondition(
                "EMERG-1",
                "the fault is limited before it is isolated",
            ));
        }
        if self.isolated_at.is_some() {
            return Err(Error::state("the fault is already isolated"));
        }
        self.isolated_at = Some(now);
        Ok(())
    }

    /// REQ EMERG-1: reported upwards level by level; a level is never skipped. Reporting may
    /// start at once, while the fault is being limited.
    pub fn escalate(
        &mut self,
        level: Level,
        to: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.require_open()?;
        if to.trim().is_empty() {
            return Err(Error::invalid("to", "EMERG-1", "who was told is recorded"));
        }
        let reached = self.escalations.iter().map(|e| e.level).max();
        let next = match reached {
            None => Level::Station,
            Some(Level::Station) => Level::Operator,
            Some(Level::Operator | Level::Authority) => Level::Authority,
        };
        if level > next {
            return Err(Error::precondition(
                "EMERG-1",
                format!("reports go up level by level: report to the {next:?} level first")
                    .to_lowercase(),
            ));
        }
        self.escalations.push(Escalation {
            level,
            to: to.trim().to_owned(),
            at: now,
            by: by.to_owned(),
        });
        Ok(())
    }

    /// REQ EMERG-1: the steps still missing before the incident may close.
    pub fn missing_steps(&self) -> Vec<&'static str> {
        [
            (self.contained_at.is_none(), "limit the fault"),
            (self.isolated_at.is_none(), "isolate it"),
            (self.escalations.is_empty(), "report it upwards"),
        ]
        .into_iter()
        .filter(|(missing, _)| *missing)
        .map(|(_, step)| step)
        .collect()
    }

    /// REQ EMERG-1: ends with the incident report, once every step is done.
    pub fn close(
        &mut self,
        report: &str,
        ledger_change: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.require_open()?;
        if report.trim().is_empty() {
            return Err(Error::invalid(
                "report",
                "EMERG-1",
                "an incident ends with an incident report",
            ));
        }
        let missing = self.missing_steps();
        if !missing.is_empty() {
            return Err(Error::precondition(
                "EMERG-1",
                format!("before closing: {}", missing.join(", ")),
            ));
        }
        self.report = Some(report.trim().to_owned());
        self.ledger_changes.extend(ledger_change);
        self.closed_at = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("t").to_utc()
    }

    fn incident() -> Incident {
        Incident::open(
            "IN-1".into(),
            NewIncident {
                operator_id: "OP".into(),
                station_id: "S1".into(),
                pile_id: Some("P1".into()),
                hazard: Some(Hazard::BatteryFire),
                description: "smoke from a charging vehicle".into(),
            },
            "mo",
            t("2026-03-01T08:00:00Z"),
        )
        .expect("opened")
    }

    fn rule(e: Error) -> Option<&'static str> {
        match e {
            Error::Precondition { rule, .. } | Error::Invalid { rule, .. } => rule,
            _ => None,
        }
    }

    #[test]
    fn emerg_1_limit_then_isolate_then_report_before_the_incident_report_closes_it() {
        let now = t("2026-03-01T08:05:00Z");
        let mut i = incident();
        assert_eq!(
            rule(i.isolate(now).expect_err("not limited")),
            Some("EMERG-1")
        );
        let early = i.close("done", None, now).expect_err("steps missing");
        assert!(
            early
                .to_string()
                .contains("limit the fault, isolate it, report it upwards")
        );
        i.contain(now).expect("limited");
        i.isolate(now).expect("isolated");
        i.escalate(Level::Station, "station master Li", "mo", now)
            .expect("reported");
        assert_eq!(
            rule(i.close(" ", None, now).expect_err("no report")),
            Some("EMERG-1")
        );
        i.close(
            "vehicle fire put out; P1 cable replaced",
            Some("pile P1: model".into()),
            now,
        )
        .expect("closed");
        assert_eq!(i.ledger_changes, ["pile P1: model"]);
        assert!(i.contain(now).is_err(), "closed");
    }

    #[test]
    fn emerg_1_reports_go_up_level_by_level() {
        let now = t("2026-03-01T08:05:00Z");
        let mut i = incident();
        assert_eq!(
            rule(
                i.escalate(Level::Operator, "O&M manager", "mo", now)
                    .expect_err("skipped")
            ),
            Some("EMERG-1")
        );
        i.escalate(Level::Station, "station master", "mo", now)
            .expect("first");
        assert!(
            i.escalate(Level::Authority, "119", "mo", now).is_err(),
            "skips the operator"
        );
        i.escalate(Level::Operator, "O&M manager", "mo", now)
            .expect("second");
        i.escalate(Level::Authority, "fire service 119", "mo", now)
            .expect("third");
        i.escalate(Level::Authority, "Shaoxing regulator", "mo", now)
            .expect("more at the top");
        assert_eq!(i.escalations.len(), 4);
    }
}
