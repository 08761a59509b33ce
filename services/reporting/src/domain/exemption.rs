//! Exemption declarations (免考核申报, REQ MON-9): a monitor declares a period, the stations and
//! an external cause with evidence; a manager other than the declarer approves or rejects it.
//! An approved period is left out of the KPIs it affects.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

use super::period::Span;

/// The longest period one declaration covers.
pub const MAX_SPAN: Duration = Duration::days(31);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    PlatformFailure,
    TcuUpgrade,
    SevereWeather,
    Other,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::PlatformFailure => "platform_failure",
            Cause::TcuUpgrade => "tcu_upgrade",
            Cause::SevereWeather => "severe_weather",
            Cause::Other => "other",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExemptionState {
    Declared,
    Approved,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemption {
    pub exemption_id: String,
    pub operator_id: String,
    pub station_ids: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub cause: Cause,
    pub cause_text: String,
    pub evidence: Vec<String>,
    pub state: ExemptionState,
    pub declared_by: String,
    pub declared_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: String,
}

/// What a monitor declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    pub operator_id: String,
    pub station_ids: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub cause: Option<Cause>,
    pub cause_text: String,
    pub evidence: Vec<String>,
}

impl Exemption {
    /// REQ MON-9: stations, a period of at most 31 days that has begun, an external cause
    /// (described when "other") and evidence.
    pub fn declare(
        id: String,
        d: Declaration,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let mut stations: Vec<String> = d
            .station_ids
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        stations.sort();
        stations.dedup();
        if stations.is_empty() {
            return Err(Error::invalid(
                "station_ids",
                "MON-9",
                "an exemption names the stations it covers",
            ));
        }
        let start = d
            .start
            .ok_or_else(|| Error::invalid("start_time", "MON-9", "the period is given"))?;
        let end = d
            .end
            .ok_or_else(|| Error::invalid("end_time", "MON-9", "the period is given"))?;
        if end <= start {
            return Err(Error::bad_field("end_time", "is after start_time"));
        }
        if end - start > MAX_SPAN {
            return Err(Error::invalid(
                "end_time",
                "MON-9",
                "one declaration covers at most 31 days",
            ));
        }
        if start > now {
            return Err(Error::invalid(
                "start_time",
                "MON-9",
                "an exemption is declared for a period that has begun",
            ));
        }
        let cause = d.cause.ok_or_else(|| {
            Error::invalid(
                "cause",
                "MON-9",
                "is platform failure, TCU upgrade, severe weather or other",
            )
        })?;
        let cause_text = d.cause_text.trim().to_owned();
        if cause == Cause::Other && cause_text.is_empty() {
            return Err(Error::invalid(
                "cause_text",
                "MON-9",
                "an other cause is described",
            ));
        }
        let evidence: Vec<String> = d
            .evidence
            .iter()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty())
            .collect();
        if evidence.is_empty() {
            return Err(Error::invalid(
                "evidence_refs",
                "MON-9",
                "an exemption is declared with its evidence",
            ));
        }
        Ok(Self {
            exemption_id: id,
            operator_id: d.operator_id,
            station_ids: stations,
            start,
            end,
            cause,
            cause_text,
            evidence,
            state: ExemptionState::Declared,
            declared_by: by.to_owned(),
            declared_at: now,
            decided_by: None,
            decided_at: None,
            note: String::new(),
        })
    }

    /// REQ MON-9: approved or rejected once, by someone other than the declarer.
    pub fn decide(
        &mut self,
        approve: bool,
        note: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if self.state != ExemptionState::Declared {
            return Err(Error::precondition(
                "MON-9",
                format!("the exemption was {:?} already", self.state).to_lowercase(),
            ));
        }
        if by == self.declared_by {
            return Err(Error::precondition(
                "MON-9",
                "an exemption is decided by someone other than its declarer",
            ));
        }
        self.state = if approve {
            ExemptionState::Approved
        } else {
            ExemptionState::Rejected
        };
        self.decided_by = Some(by.to_owned());
        self.decided_at = Some(now);
        self.note = note.trim().to_owned();
        Ok(())
    }

    /// The period it exempts for a station, when approved and covering it.
    pub fn span_for(&self, station_id: &str) -> Option<Span> {
        (self.state == ExemptionState::Approved && self.station_ids.iter().any(|s| s == station_id))
            .then(|| Span::new(self.start, self.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn declaration() -> Declaration {
        Declaration {
            operator_id: "OP".into(),
            station_ids: vec![" S2".into(), "S1".into(), "S1".into()],
            start: Some(t("2026-03-05T00:00:00Z")),
            end: Some(t("2026-03-05T06:00:00Z")),
            cause: Some(Cause::TcuUpgrade),
            cause_text: String::new(),
            evidence: vec!["upgrade-notice-0305.pdf".into()],
        }
    }

    fn rule(e: &Error) -> Option<&'static str> {
        match e {
            Error::Invalid { rule, .. } | Error::Precondition { rule, .. } => *rule,
            _ => None,
        }
    }

    #[test]
    fn mon_9_a_declaration_names_stations_a_begun_period_a_cause_and_evidence() {
        let now = t("2026-03-06T00:00:00Z");
        let e = Exemption::declare("EX-1".into(), declaration(), "monitor", now).expect("ok");
        assert_eq!(e.station_ids, ["S1", "S2"]);
        let refused = [
            Declaration {
                station_ids: vec![" ".into()],
                ..declaration()
            },
            Declaration {
                evidence: Vec::new(),
                ..declaration()
            },
            Declaration {
                cause: Some(Cause::Other),
                ..declaration()
            },
            Declaration {
                cause: None,
                ..declaration()
            },
            Declaration {
                start: Some(t("2026-03-07T00:00:00Z")),
                end: Some(t("2026-03-08T00:00:00Z")),
                ..declaration()
            },
            Declaration {
                end: Some(t("2026-04-06T00:00:01Z")),
                ..declaration()
            },
        ];
        for d in refused {
            let e = Exemption::declare("EX-2".into(), d, "monitor", now).expect_err("refused");
            assert_eq!(rule(&e), Some("MON-9"), "{e}");
        }
    }

    #[test]
    fn mon_9_decided_once_by_another_and_only_approved_periods_exempt() {
        let now = t("2026-03-06T00:00:00Z");
        let mut e = Exemption::declare("EX-1".into(), declaration(), "monitor", now).expect("ok");
        assert!(e.span_for("S1").is_none(), "not before approval");
        assert!(e.decide(true, "", "monitor", now).is_err(), "four eyes");
        e.decide(true, "notice checked", "manager", now)
            .expect("approved");
        assert_eq!(e.span_for("S1").map(|s| s.seconds()), Some(6 * 3600));
        assert!(e.span_for("S3").is_none());
        let again = e.decide(false, "", "manager2", now).expect_err("once");
        assert_eq!(rule(&again), Some("MON-9"));
    }
}
