//! Safety training and qualification (REQ STAFF-2): passed before taking a post and repeated
//! periodically. Each training is a record kept with the member; the qualification runs to the
//! latest validity a training gave, and comes due for renewal ahead of its lapse.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

use super::crew::StaffMember;

/// How far ahead of its lapse a qualification shows as due for retraining.
pub const RETRAINING_NOTICE: Duration = Duration::days(30);

/// One training passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Training {
    pub course: String,
    pub completed_on: NaiveDate,
    /// The qualification it gives is valid through this date.
    pub valid_until: NaiveDate,
    /// The certificate or attendance record.
    pub record_ref: String,
}

impl Training {
    /// A training as reported, checked: named, evidenced, passed by `today`, valid after it.
    pub fn new(
        course: &str,
        completed_on: NaiveDate,
        valid_until: NaiveDate,
        record_ref: &str,
        today: NaiveDate,
    ) -> Result<Self, Error> {
        if course.trim().is_empty() {
            return Err(Error::invalid("course", "STAFF-2", "the course is named"));
        }
        if record_ref.trim().is_empty() {
            return Err(Error::invalid(
                "record_ref",
                "STAFF-2",
                "the certificate or attendance record is referenced",
            ));
        }
        if completed_on > today {
            return Err(Error::bad_field(
                "completed_on",
                format!("{completed_on} is in the future"),
            ));
        }
        if valid_until <= completed_on {
            return Err(Error::bad_field(
                "valid_until",
                format!("must be after completed_on {completed_on}"),
            ));
        }
        Ok(Self {
            course: course.trim().to_owned(),
            completed_on,
            valid_until,
            record_ref: record_ref.trim().to_owned(),
        })
    }
}

impl StaffMember {
    /// REQ STAFF-2: keeps the training and extends the qualification to its validity; an older
    /// training recorded late never shortens it.
    pub fn record_training(&mut self, training: Training) {
        self.qualified_until = self.qualified_until.max(Some(training.valid_until));
        self.trainings.push(training);
        self.trainings.sort_by_key(|t| t.completed_on);
    }

    /// REQ STAFF-2: never qualified, lapsed, or lapsing within the notice period.
    pub fn retraining_due(&self, today: NaiveDate) -> bool {
        self.qualified_until
            .is_none_or(|until| until < today + RETRAINING_NOTICE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::crew::Employer;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    fn member() -> StaffMember {
        StaffMember {
            staff_id: "m".into(),
            name: "Mo".into(),
            employer: Employer::Own,
            electrician_certificate_until: None,
            qualified_until: None,
            trainings: Vec::new(),
        }
    }

    #[test]
    fn staff_2_training_is_repeated_before_the_qualification_lapses() {
        let today = d("2026-03-01");
        let mut m = member();
        assert!(m.retraining_due(today), "never trained");
        m.record_training(
            Training::new("safety", d("2026-02-01"), d("2027-01-31"), "CERT-1", today)
                .expect("training"),
        );
        assert_eq!(m.qualified_until, Some(d("2027-01-31")));
        assert!(!m.retraining_due(today));
        assert!(!m.retraining_due(d("2026-12-31")), "31 days ahead");
        assert!(
            m.retraining_due(d("2027-01-02")),
            "within the 30-day notice"
        );
        // An older training entered late keeps the later validity.
        m.record_training(
            Training::new("safety", d("2025-02-01"), d("2026-01-31"), "CERT-0", today)
                .expect("training"),
        );
        assert_eq!(m.qualified_until, Some(d("2027-01-31")));
        assert_eq!(m.trainings[0].record_ref, "CERT-0", "kept in date order");
    }

    #[test]
    fn staff_2_a_training_needs_a_course_a_record_and_a_validity_after_it() {
        let today = d("2026-03-01");
        let rule = |r: Result<Training, Error>| match r {
            Err(Error::Invalid { field, rule, .. }) => (field, rule),
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(
            rule(Training::new(
                " ",
                d("2026-02-01"),
                d("2027-01-31"),
                "C",
                today
            )),
            ("course".into(), Some("STAFF-2"))
        );
        assert_eq!(
            rule(Training::new(
                "s",
                d("2026-02-01"),
                d("2027-01-31"),
                "",
                today
            )),
            ("record_ref".into(), Some("STAFF-2"))
        );
        assert_eq!(
            rule(Training::new(
                "s",
                d("2026-02-01"),
                d("2026-02-01"),
                "C",
                today
            )),
            ("valid_until".into(), None)
        );
        assert_eq!(
            rule(Training::new(
                "s",
                d("2026-04-01"),
                d("2027-01-31"),
                "C",
                today
            )),
            ("completed_on".into(), None)
        );
    }
}
