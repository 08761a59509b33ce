//! A station's logbook (REQ REC-1): work logs — what a member of staff did there, from when to
//! when — and shift handovers — who handed the station to whom, what they said, and the repair
//! orders and defects that were open at that moment. Both are kept as written; a correction is a
//! new entry (REQ REC-2).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

/// The longest text of one entry, in characters.
pub const MAX_TEXT: usize = 4_000;
/// The longest span one work log covers.
pub const MAX_SPAN: Duration = Duration::hours(24);
/// How far ahead of the platform's clock a time written by hand may be (a slow phone, say).
const CLOCK_SLACK: Duration = Duration::minutes(5);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkLog {
    pub operator_id: String,
    pub log_id: String,
    pub station_id: String,
    pub staff_id: String,
    pub work: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
}

/// What a work log says, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWorkLog {
    pub operator_id: String,
    pub log_id: String,
    pub station_id: String,
    pub staff_id: String,
    pub work: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftHandover {
    pub operator_id: String,
    pub handover_id: String,
    pub station_id: String,
    pub from_staff_id: String,
    pub to_staff_id: String,
    pub handed_over_at: DateTime<Utc>,
    pub notes: String,
    /// The station's repair orders open at the handover.
    pub open_work_orders: Vec<String>,
    /// The station's defects not yet accepted at the handover.
    pub open_defects: Vec<String>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: String,
}

/// What a handover says, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHandover {
    pub operator_id: String,
    pub handover_id: String,
    pub station_id: String,
    pub from_staff_id: String,
    pub to_staff_id: String,
    pub handed_over_at: DateTime<Utc>,
    pub notes: String,
}

fn text(field: &str, value: &str, what: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(
            field,
            "REC-1",
            format!("{what} is recorded"),
        ));
    }
    if value.chars().count() > MAX_TEXT {
        return Err(Error::bad_field(
            field,
            format!("is at most {MAX_TEXT} characters"),
        ));
    }
    Ok(value.to_owned())
}

fn not_ahead(field: &str, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Error> {
    if at > now + CLOCK_SLACK {
        return Err(Error::invalid(
            field,
            "REC-2",
            "a record is of what happened: not in the future",
        ));
    }
    Ok(())
}

impl WorkLog {
    /// REQ REC-1, REC-2: a work log as it happened: the work said, a span of at most a day that
    /// has begun, by whom it was written.
    pub fn record(input: NewWorkLog, by: &str, now: DateTime<Utc>) -> Result<Self, Error> {
        let work = text("work", &input.work, "the work done")?;
        if input.ended_at < input.started_at {
            return Err(Error::bad_field("end_time", "is not before start_time"));
        }
        if input.ended_at - input.started_at > MAX_SPAN {
            return Err(Error::bad_field(
                "end_time",
                "is within 24 hours of start_time: one log per day's work",
            ));
        }
        not_ahead("start_time", input.started_at, now)?;
        not_ahead("end_time", input.ended_at, now)?;
        Ok(Self {
            operator_id: input.operator_id,
            log_id: input.log_id,
            station_id: input.station_id,
            staff_id: input.staff_id,
            work,
            started_at: input.started_at,
            ended_at: input.ended_at,
            recorded_at: now,
            recorded_by: by.to_owned(),
        })
    }
}

impl ShiftHandover {
    /// REQ REC-1, STAFF-1: a shift handed from one member of staff to another, with what was
    /// said and what was open at the station then.
    pub fn record(
        input: NewHandover,
        open_work_orders: Vec<String>,
        open_defects: Vec<String>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        if input.from_staff_id == input.to_staff_id {
            return Err(Error::invalid(
                "to_staff_id",
                "REC-1",
                "a shift is handed to someone else",
            ));
        }
        let notes = text("notes", &input.notes, "what was handed over")?;
        not_ahead("handover_time", input.handed_over_at, now)?;
        Ok(Self {
            operator_id: input.operator_id,
            handover_id: input.handover_id,
            station_id: input.station_id,
            from_staff_id: input.from_staff_id,
            to_staff_id: input.to_staff_id,
            handed_over_at: input.handed_over_at,
            notes,
            open_work_orders,
            open_defects,
            recorded_at: now,
            recorded_by: by.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn log(work: &str, from: &str, to: &str) -> NewWorkLog {
        NewWorkLog {
            operator_id: "OP".into(),
            log_id: "WL-1".into(),
            station_id: "S1".into(),
            staff_id: "alice".into(),
            work: work.into(),
            started_at: t(from),
            ended_at: t(to),
        }
    }

    #[test]
    fn rec_1_a_work_log_says_what_was_done_within_a_day_that_has_happened() {
        let now = t("2026-03-01T18:00:00Z");
        let kept = WorkLog::record(
            log(
                "  replaced the P1 gun  ",
                "2026-03-01T08:00:00Z",
                "2026-03-01T17:00:00Z",
            ),
            "alice",
            now,
        )
        .expect("kept");
        assert_eq!(
            (kept.work.as_str(), kept.recorded_at),
            ("replaced the P1 gun", now)
        );
        let refused = |input, field: &str| {
            let e = WorkLog::record(input, "alice", now).expect_err(field);
            assert!(e.to_string().contains(field), "{e}");
        };
        refused(
            log(" ", "2026-03-01T08:00:00Z", "2026-03-01T09:00:00Z"),
            "work",
        );
        refused(
            log("x", "2026-03-01T09:00:00Z", "2026-03-01T08:00:00Z"),
            "end_time",
        );
        refused(
            log("x", "2026-02-27T08:00:00Z", "2026-03-01T08:00:00Z"),
            "end_time",
        );
        refused(
            log("x", "2026-03-01T17:00:00Z", "2026-03-01T19:00:00Z"),
            "end_time",
        );
        refused(
            log(
                &"x".repeat(MAX_TEXT + 1),
                "2026-03-01T08:00:00Z",
                "2026-03-01T09:00:00Z",
            ),
            "work",
        );
    }

    #[test]
    fn rec_1_a_handover_goes_to_someone_else_with_what_was_open() {
        let now = t("2026-03-01T20:00:00Z");
        let input = NewHandover {
            operator_id: "OP".into(),
            handover_id: "HO-1".into(),
            station_id: "S1".into(),
            from_staff_id: "alice".into(),
            to_staff_id: "bob".into(),
            handed_over_at: t("2026-03-01T20:00:00Z"),
            notes: "P1 waits for a part".into(),
        };
        let kept = ShiftHandover::record(
            input.clone(),
            vec!["WO-1".into()],
            vec!["DF-1".into()],
            "alice",
            now,
        )
        .expect("kept");
        assert_eq!(kept.open_work_orders, ["WO-1"]);
        let to_self = NewHandover {
            to_staff_id: "alice".into(),
            ..input.clone()
        };
        assert!(ShiftHandover::record(to_self, vec![], vec![], "alice", now).is_err());
        let silent = NewHandover {
            notes: String::new(),
            ..input
        };
        assert!(ShiftHandover::record(silent, vec![], vec![], "alice", now).is_err());
    }
}
