//! Defects (REQ DEF-1..DEF-4, EQ-3): classified on registration, due by class, eliminated, then
//! accepted — a failed acceptance reopens the defect. While a defect is open the equipment is
//! watched more closely, and a critical one takes its pile out of service.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

/// REQ DEF-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectClass {
    /// 危急: an immediate threat to people or equipment.
    Critical,
    /// 严重.
    Serious,
    /// 一般.
    General,
}

/// The DEF-1 examples, to pick from when registering.
pub const CATALOGUE: &[(DefectClass, &str)] = &[
    (DefectClass::Critical, "busbar or cable overheating"),
    (
        DefectClass::Critical,
        "cabinet fire, internal discharge or bursting noise",
    ),
    (
        DefectClass::Critical,
        "cracked connector with exposed cable",
    ),
    (
        DefectClass::Critical,
        "communication failure during a charging session",
    ),
    (DefectClass::Serious, "loose non-critical fasteners"),
    (DefectClass::Serious, "bent guide post"),
    (DefectClass::Serious, "grounding failure"),
    (DefectClass::General, "missing unimportant parts"),
    (DefectClass::General, "dirt or rust"),
    (DefectClass::General, "insufficient lubrication"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectState {
    Open,
    /// Eliminated, awaiting acceptance (REQ DEF-4).
    Eliminated,
    Accepted,
}

/// How soon each class must be eliminated (REQ DEF-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefectDeadlines {
    pub critical_hours: i64,
    pub serious_days: i64,
}

impl Default for DefectDeadlines {
    fn default() -> Self {
        Self {
            critical_hours: 4,
            serious_days: 7,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Defect {
    pub defect_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: Option<String>,
    pub class: DefectClass,
    pub description: String,
    pub finder: String,
    pub state: DefectState,
    pub found_at: DateTime<Utc>,
    /// Critical and serious defects are due by a time; general ones by their maintenance plan.
    pub due_at: Option<DateTime<Utc>>,
    pub maintenance_plan: Option<String>,
    /// REQ DEF-2: the preliminary elimination plan reported with a critical or serious defect.
    pub elimination_plan: String,
    pub eliminated_at: Option<DateTime<Utc>>,
    pub elimination_record: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_by: Option<String>,
    /// REQ DEF-4: how often acceptance failed and the defect went round again.
    pub reopened: u32,
    /// The patrol that found it, if one did (REQ PATROL-3).
    #[serde(default)]
    pub found_on_patrol: Option<String>,
}

/// What a finder reports.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDefect {
    pub defect_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: Option<String>,
    pub class: DefectClass,
    pub description: String,
    pub finder: String,
    pub elimination_plan: String,
    pub maintenance_plan: Option<String>,
}

impl Defect {
    /// REQ DEF-2, DEF-3: registers a classified defect with its deadline.
    pub fn register(
        new: NewDefect,
        deadlines: DefectDeadlines,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        if new.description.trim().is_empty() {
            return Err(Error::invalid(
                "description",
                "DEF-2",
                "a defect is described when registered",
            ));
        }
        if new.finder.trim().is_empty() {
            return Err(Error::invalid(
                "finder",
                "DEF-2",
                "who found it is recorded",
            ));
        }
        let urgent = matches!(new.class, DefectClass::Critical | DefectClass::Serious);
        if urgent && new.elimination_plan.trim().is_empty() {
            return Err(Error::invalid(
                "elimination_plan",
                "DEF-2",
                "critical and serious defects are reported at once with a preliminary elimination plan",
            ));
        }
        let due_at = match new.class {
            DefectClass::Critical => Some(now + Duration::hours(deadlines.critical_hours)),
            DefectClass::Serious => Some(now + Duration::days(deadlines.serious_days)),
            DefectClass::General => None,
        };
        let maintenance_plan = new.maintenance_plan.filter(|p| !p.trim().is_empty());
        if new.class == DefectClass::General && maintenance_plan.is_none() {
            return Err(Error::invalid(
                "maintenance_plan",
                "DEF-3",
                "a general defect is eliminated through the annual or monthly maintenance plan it is attached to",
            ));
        }
        Ok(Self {
            defect_id: new.defect_id,
            operator_id: new.operator_id,
            station_id: new.station_id,
            pile_id: new.pile_id,
            class: new.class,
            description: new.description.trim().to_owned(),
            finder: new.finder.trim().to_owned(),
            state: DefectState::Open,
            found_at: now,
            due_at,
            maintenance_plan,
            elimination_plan: new.elimination_plan.trim().to_owned(),
            eliminated_at: None,
            elimination_record: None,
            accepted_at: None,
            accepted_by: None,
            reopened: 0,
            found_on_patrol: None,
        })
    }

    /// REQ DEF-3: the equipment runs watched more closely while the defect stands.
    pub fn enhanced_watch(&self) -> bool {
        self.state != DefectState::Accepted
    }

    /// REQ EQ-3: a pile with a critical defect not yet accepted is not offered for charging.
    pub fn blocks_pile(&self) -> bool {
        self.class == DefectClass::Critical && self.state != DefectState::Accepted
    }

    pub fn eliminate(&mut self, record: &str, now: DateTime<Utc>) -> Result<(), Error> {
        if self.state != DefectState::Open {
            return Err(Error::state("only an open defect is eliminated"));
        }
        if record.trim().is_empty() {
            return Err(Error::invalid(
                "record",
                "DEF-4",
                "the elimination is recorded",
            ));
        }
        self.state = DefectState::Eliminated;
        self.eliminated_at = Some(now);
        self.elimination_record = Some(record.trim().to_owned());
        Ok(())
    }

    /// REQ DEF-4: acceptance closes the loop; a failed acceptance sends it round again.
    pub fn accept(&mut self, passed: bool, by: &str, now: DateTime<Utc>) -> Result<(), Error> {
        if self.state != DefectState::Eliminated {
            return Err(Error::precondition(
                "DEF-4",
                "acceptance follows elimination",
            ));
        }
        if passed {
            self.state = DefectState::Accepted;
            self.accepted_at = Some(now);
            self.accepted_by = Some(by.to_owned());
        } else {
            self.state = DefectState::Open;
            self.reopened += 1;
            self.eliminated_at = None;
        }
        Ok(())
    }

    /// Overdue: past its deadline and not yet eliminated.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.state == DefectState::Open && self.due_at.is_some_and(|due| now > due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn new(class: DefectClass) -> NewDefect {
        NewDefect {
            defect_id: "D-1".into(),
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: Some("P1".into()),
            class,
            description: "cracked connector with exposed cable".into(),
            finder: "patrol-1".into(),
            elimination_plan: "replace the gun today".into(),
            maintenance_plan: None,
        }
    }

    #[test]
    fn def_2_urgent_defects_come_with_an_elimination_plan() {
        let mut n = new(DefectClass::Critical);
        n.elimination_plan = " ".into();
        let err = Defect::register(n, DefectDeadlines::default(), t("2026-03-01T08:00:00Z"))
            .expect_err("refused");
        assert!(matches!(
            err,
            Error::Invalid {
                rule: Some("DEF-2"),
                ..
            }
        ));
    }

    #[test]
    fn def_3_deadlines_follow_the_class() {
        let now = t("2026-03-01T08:00:00Z");
        let d = DefectDeadlines::default();
        let critical = Defect::register(new(DefectClass::Critical), d, now).expect("critical");
        assert_eq!(critical.due_at, Some(now + Duration::hours(4)));
        let serious = Defect::register(new(DefectClass::Serious), d, now).expect("serious");
        assert_eq!(serious.due_at, Some(now + Duration::days(7)));
        let err = Defect::register(new(DefectClass::General), d, now).expect_err("needs a plan");
        assert!(matches!(
            err,
            Error::Invalid {
                rule: Some("DEF-3"),
                ..
            }
        ));
        let mut general = new(DefectClass::General);
        general.maintenance_plan = Some("MP-2026-03".into());
        let general = Defect::register(general, d, now).expect("general");
        assert_eq!(general.due_at, None);
        assert!(
            critical.overdue(now + Duration::hours(5))
                && !critical.overdue(now + Duration::hours(3))
        );
    }

    #[test]
    fn def_4_a_failed_acceptance_reopens_and_eq_3_a_critical_defect_blocks_until_accepted() {
        let now = t("2026-03-01T08:00:00Z");
        let mut d = Defect::register(new(DefectClass::Critical), DefectDeadlines::default(), now)
            .expect("registered");
        assert!(d.blocks_pile() && d.enhanced_watch());
        assert!(
            d.accept(true, "mgr", now).is_err(),
            "acceptance follows elimination"
        );
        d.eliminate("gun replaced", now).expect("eliminated");
        d.accept(false, "mgr", now).expect("failed acceptance");
        assert_eq!((d.state, d.reopened), (DefectState::Open, 1));
        assert!(d.blocks_pile());
        d.eliminate("gun replaced again, insulation tested", now)
            .expect("eliminated");
        d.accept(true, "mgr", now).expect("accepted");
        assert!(!d.blocks_pile() && !d.enhanced_watch());
    }

    #[test]
    fn def_1_the_catalogue_has_every_class() {
        for class in [
            DefectClass::Critical,
            DefectClass::Serious,
            DefectClass::General,
        ] {
            assert!(CATALOGUE.iter().any(|(c, _)| *c == class));
        }
    }
}
