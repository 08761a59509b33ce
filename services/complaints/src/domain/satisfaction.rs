//! Satisfaction (REQ EVAL-2): the customers' own scores, from the revisit of each complaint and
//! from periodic surveys, counted per month (China time) for each station and for the operator
//! as a whole, beside the complaints, praise and suggestions received.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;
use chargemesh_kit::clock::china_date;

use super::complaint::Complaint;

/// The longest span a satisfaction query covers.
pub const MAX_MONTHS: u32 = 36;
/// A score at or above this counts as satisfied.
pub const SATISFIED_AT_OR_ABOVE: u8 = 4;

/// Where a score came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The revisit after a complaint was resolved (REQ CMP-4).
    Revisit,
    /// A periodic satisfaction survey (REQ EVAL-2).
    Survey,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Revisit => "revisit",
            Source::Survey => "survey",
        }
    }
}

/// One customer's score, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub operator_id: String,
    pub answer_id: String,
    pub source: Source,
    /// The survey's name; the complaint's id for a revisit.
    pub survey: String,
    pub station_id: Option<String>,
    pub respondent: String,
    pub score: u8,
    pub comment: String,
    pub answered_at: DateTime<Utc>,
    pub recorded_by: String,
}

/// What a survey answer carries before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyInput {
    pub operator_id: String,
    pub answer_id: String,
    pub survey: String,
    pub station_id: String,
    pub respondent: String,
    pub score: u32,
    pub comment: String,
    pub answered_at: Option<DateTime<Utc>>,
}

fn score(value: u32, field: &str) -> Result<u8, Error> {
    u8::try_from(value)
        .ok()
        .filter(|s| (1..=5).contains(s))
        .ok_or_else(|| Error::invalid(field, "EVAL-2", "is a score of 1 to 5"))
}

impl Answer {
    /// REQ EVAL-2: a survey answer names its survey, scores 1 to 5 and was given by now.
    pub fn survey(
        input: SurveyInput,
        assigned_id: impl FnOnce() -> String,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        let survey = input.survey.trim();
        if survey.is_empty() {
            return Err(Error::invalid(
                "survey",
                "EVAL-2",
                "names the satisfaction survey answered",
            ));
        }
        let answered_at = input.answered_at.unwrap_or(now);
        if answered_at > now {
            return Err(Error::bad_field("answer_time", "is not in the future"));
        }
        let id = input.answer_id.trim();
        Ok(Self {
            operator_id: input.operator_id,
            answer_id: if id.is_empty() {
                assigned_id()
            } else {
                id.to_owned()
            },
            source: Source::Survey,
            survey: survey.to_owned(),
            station_id: Some(input.station_id.trim().to_owned()).filter(|s| !s.is_empty()),
            respondent: input.respondent.trim().to_owned(),
            score: score(input.score, "score")?,
            comment: input.comment.trim().to_owned(),
            answered_at,
            recorded_by: by.to_owned(),
        })
    }

    /// REQ EVAL-2: the latest revisit of a complaint as a score; `None` before any revisit.
    /// Each revisit of a reopened complaint is its own answer.
    pub fn revisit(c: &Complaint, by: &str, now: DateTime<Utc>) -> Option<Self> {
        let score = c.satisfaction?;
        let round = c.revisits();
        Some(Self {
            operator_id: c.operator_id.clone(),
            answer_id: format!("{}/revisit/{round}", c.complaint_id),
            source: Source::Revisit,
            survey: c.complaint_id.clone(),
            station_id: c.station_id.clone(),
            respondent: c.customer_contact.clone(),
            score,
            comment: String::new(),
            answered_at: now,
            recorded_by: by.to_owned(),
        })
    }

    /// The month (China time) it counts in.
    pub fn month(&self) -> String {
        month_of(self.answered_at)
    }
}

/// The month (China time) of an instant, as "YYYY-MM".
pub fn month_of(at: DateTime<Utc>) -> String {
    china_date(at).format("%Y-%m").to_string()
}

fn parse_month(field: &str, value: &str) -> Result<NaiveDate, Error> {
    NaiveDate::parse_from_str(&format!("{}-01", value.trim()), "%Y-%m-%d")
        .map_err(|_| Error::bad_field(field, "is a month written YYYY-MM"))
}

/// The months `from..=to` of a query, checked: in order and at most [`MAX_MONTHS`] long.
pub fn month_span(from: &str, to: &str) -> Result<(String, String), Error> {
    let first = parse_month("from_month", from)?;
    let last = parse_month("to_month", to)?;
    if last < first {
        return Err(Error::bad_field("to_month", "is not before from_month"));
    }
    let months = (last.year() - first.year()) * 12 + last.month() as i32 - first.month() as i32;
    if months >= MAX_MONTHS as i32 {
        return Err(Error::bad_field(
            "to_month",
            format!("is at most {MAX_MONTHS} months after from_month"),
        ));
    }
    Ok((
        first.format("%Y-%m").to_string(),
        last.format("%Y-%m").to_string(),
    ))
}

/// What one count is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Revisit,
    Survey,
    Complaint,
    Praise,
    Suggestion,
}

impl Bucket {
    /// The store's name of a source or a complaint kind.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "revisit" => Bucket::Revisit,
            "survey" => Bucket::Survey,
            "complaint" => Bucket::Complaint,
            "praise" => Bucket::Praise,
            "suggestion" => Bucket::Suggestion,
            _ => return None,
        })
    }
}

/// A count the store made for one month, station and bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub month: String,
    /// Empty when the item named no station.
    pub station_id: String,
    pub bucket: Bucket,
    pub count: u64,
    pub score_sum: u64,
    pub satisfied: u64,
}

/// Scores of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scores {
    pub answers: u64,
    pub score_sum: u64,
    pub satisfied: u64,
}

impl Scores {
    /// The mean score; 0 with no answers.
    pub fn mean(&self) -> f64 {
        if self.answers == 0 {
            0.0
        } else {
            self.score_sum as f64 / self.answers as f64
        }
    }

    fn add(&mut self, t: &Tally) {
        self.answers += t.count;
        self.score_sum += t.score_sum;
        self.satisfied += t.satisfied;
    }

    pub fn plus(self, other: Scores) -> Scores {
        Scores {
            answers: self.answers + other.answers,
            score_sum: self.score_sum + other.score_sum,
            satisfied: self.satisfied + other.satisfied,
        }
    }
}

/// One month of one station, or of the operator when `station_id` is `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub month: String,
    pub station_id: Option<String>,
    pub revisits: Scores,
    pub surveys: Scores,
    pub complaints: u64,
    pub praise: u64,
    pub suggestions: u64,
}

impl Row {
    pub fn overall(&self) -> Scores {
        self.revisits.plus(self.surveys)
    }

    fn add(&mut self, t: &Tally) {
        match t.bucket {
            Bucket::Revisit => self.revisits.add(t),
            Bucket::Survey => self.surveys.add(t),
            Bucket::Complaint => self.complaints += t.count,
            Bucket::Praise => self.praise += t.count,
            Bucket::Suggestion => self.suggestions += t.count,
        }
    }
}

/// REQ EVAL-2: the rows of each month: the operator's (everything, stationless items
/// included) first, then each station's in order.
pub fn aggregate(tallies: &[Tally]) -> Vec<Row> {
    let mut rows: BTreeMap<(String, Option<String>), Row> = BTreeMap::new();
    for t in tallies {
        let station = Some(t.station_id.clone()).filter(|s| !s.is_empty());
        let keys = std::iter::once(None).chain(station.map(Some));
        for key in keys {
            rows.entry((t.month.clone(), key.clone()))
                .or_insert_with(|| Row {
                    month: t.month.clone(),
                    station_id: key,
                    ..Row::default()
                })
                .add(t);
        }
    }
    rows.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn tally(month: &str, station: &str, bucket: Bucket, count: u64, sum: u64, sat: u64) -> Tally {
        Tally {
            month: month.into(),
            station_id: station.into(),
            bucket,
            count,
            score_sum: sum,
            satisfied: sat,
        }
    }

    fn input(score: u32) -> SurveyInput {
        SurveyInput {
            operator_id: "OP".into(),
            answer_id: String::new(),
            survey: "2026-Q1".into(),
            station_id: " S1 ".into(),
            respondent: "138".into(),
            score,
            comment: String::new(),
            answered_at: None,
        }
    }

    #[test]
    fn eval_2_months_are_counted_in_china_time() {
        assert_eq!(month_of(t("2026-03-31T15:59:59Z")), "2026-03");
        assert_eq!(month_of(t("2026-03-31T16:00:00Z")), "2026-04");
    }

    #[test]
    fn eval_2_a_survey_answer_names_its_survey_and_scores_1_to_5_by_now() {
        let now = t("2026-03-10T00:00:00Z");
        let ok = Answer::survey(input(4), || "SA-1".into(), "desk", now).expect("kept");
        assert_eq!(
            (ok.answer_id.as_str(), ok.station_id.as_deref(), ok.score),
            ("SA-1", Some("S1"), 4)
        );
        assert_eq!(ok.month(), "2026-03");
        for bad in [0, 6] {
            let e = Answer::survey(input(bad), || "x".into(), "desk", now).expect_err("score");
            assert!(e.to_string().contains("score") && e.to_string().contains("EVAL-2"));
        }
        let unnamed = SurveyInput {
            survey: " ".into(),
            ..input(3)
        };
        assert!(Answer::survey(unnamed, || "x".into(), "desk", now).is_err());
        let ahead = SurveyInput {
            answered_at: Some(now + chrono::Duration::hours(1)),
            ..input(3)
        };
        assert!(Answer::survey(ahead, || "x".into(), "desk", now).is_err());
    }

    #[test]
    fn eval_2_month_spans_are_ordered_and_at_most_36_months() {
        assert_eq!(
            month_span("2026-01", "2026-12").expect("span"),
            ("2026-01".into(), "2026-12".into())
        );
        assert!(month_span("2026-01", "2028-12").is_ok());
        assert!(month_span("2026-01", "2029-01").is_err());
        assert!(month_span("2026-05", "2026-04").is_err());
        assert!(month_span("2026-13", "2026-12").is_err());
        assert!(month_span("March", "2026-12").is_err());
    }

    #[test]
    fn eval_2_rows_per_station_and_for_the_operator_with_stationless_items_in_the_operator_only() {
        let rows = aggregate(&[
            tally("2026-03", "S1", Bucket::Revisit, 2, 9, 2),
            tally("2026-03", "S1", Bucket::Survey, 1, 2, 0),
            tally("2026-03", "S2", Bucket::Survey, 2, 8, 2),
            tally("2026-03", "", Bucket::Survey, 1, 5, 1),
            tally("2026-03", "S1", Bucket::Complaint, 3, 0, 0),
            tally("2026-03", "", Bucket::Praise, 1, 0, 0),
            tally("2026-04", "S2", Bucket::Suggestion, 1, 0, 0),
        ]);
        let keys: Vec<_> = rows
            .iter()
            .map(|r| (r.month.as_str(), r.station_id.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("2026-03", None),
                ("2026-03", Some("S1")),
                ("2026-03", Some("S2")),
                ("2026-04", None),
                ("2026-04", Some("S2")),
            ]
        );
        let operator = &rows[0];
        assert_eq!(operator.overall().answers, 6);
        assert_eq!(operator.overall().score_sum, 24);
        assert_eq!(operator.overall().satisfied, 5);
        assert!((operator.overall().mean() - 4.0).abs() < 1e-9);
        assert_eq!((operator.complaints, operator.praise), (3, 1));
        let s1 = &rows[1];
        assert!((s1.revisits.mean() - 4.5).abs() < 1e-9);
        assert!((s1.surveys.mean() - 2.0).abs() < 1e-9);
        assert!((s1.overall().mean() - 11.0 / 3.0).abs() < 1e-9);
        assert_eq!(rows[3].overall().mean(), 0.0);
        assert_eq!(rows[3].suggestions, 1);
    }
}
