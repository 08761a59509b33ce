//! Corrective actions (REQ EVAL-3): opened from one or more complaints with the cause found, a
//! plan, an owner and a deadline; implemented; then checked for effect. An action found not
//! effective goes round again with a new plan and deadline, until it is effective. Each round's
//! deadline is a durable clock, and a round implemented late (or not yet, past its deadline) is
//! a breach. Every step is kept.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

use super::complaint::{Breach, Category, Complaint, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    Open,
    Implemented,
    Effective,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionStep {
    pub state: ActionState,
    pub at: DateTime<Utc>,
    pub by: String,
    pub note: String,
}

/// One plan with its deadline, and when it was carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub plan: String,
    pub due: DateTime<Utc>,
    pub implemented_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrectiveAction {
    pub action_id: String,
    pub operator_id: String,
    pub complaint_ids: Vec<String>,
    /// The stations and categories of its complaints: where a recurrence would show.
    pub station_ids: Vec<String>,
    pub categories: Vec<Category>,
    pub problem: String,
    pub owner: String,
    pub opened_at: DateTime<Utc>,
    pub state: ActionState,
    /// The plans, the current one last; never empty.
    pub rounds: Vec<Round>,
    pub steps: Vec<ActionStep>,
}

/// What opening an action takes: the complaints it answers, as loaded.
#[derive(Debug, Clone)]
pub struct Opening {
    pub operator_id: String,
    pub complaints: Vec<Complaint>,
    pub problem: String,
    pub plan: String,
    pub owner: String,
    pub due: DateTime<Utc>,
}

fn required(field: &str, value: &str, what: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "EVAL-3", what));
    }
    Ok(value.to_owned())
}

fn ahead(field: &str, due: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), Error> {
    if due <= now {
        return Err(Error::invalid(field, "EVAL-3", "the deadline lies ahead"));
    }
    Ok(())
}

impl CorrectiveAction {
    /// REQ EVAL-3: an action answers complaints (not praise or suggestions) of its operator,
    /// says what was found and what will be done, by whom and by when.
    pub fn open(id: String, o: Opening, by: &str, now: DateTime<Utc>) -> Result<Self, Error> {
        if o.complaints.is_empty() {
            return Err(Error::invalid(
                "complaint_ids",
                "EVAL-3",
                "a corrective action answers at least one complaint",
            ));
        }
        if let Some(c) = o.complaints.iter().find(|c| c.kind != Kind::Complaint) {
            return Err(Error::invalid(
                "complaint_ids",
                "EVAL-3",
                format!(
                    "{} is {:?}, not a complaint to correct",
                    c.complaint_id, c.kind
                )
                .to_lowercase(),
            ));
        }
        let problem = required("problem", &o.problem, "the cause found is recorded")?;
        let plan = required("plan", &o.plan, "what will be done is recorded")?;
        let owner = required("owner", &o.owner, "someone answers for the action")?;
        ahead("due_time", o.due, now)?;
        let mut station_ids: Vec<String> = o
            .complaints
            .iter()
            .filter_map(|c| c.station_id.clone())
            .collect();
        station_ids.sort();
        station_ids.dedup();
        let mut categories: Vec<Category> = Vec::new();
        for c in &o.complaints {
            if !categories.contains(&c.category) {
                categories.push(c.category);
            }
        }
        Ok(Self {
            action_id: id,
            operator_id: o.operator_id,
            complaint_ids: o
                .complaints
                .iter()
                .map(|c| c.complaint_id.clone())
                .collect(),
            station_ids,
            categories,
            problem: problem.clone(),
            owner,
            opened_at: now,
            state: ActionState::Open,
            rounds: vec![Round {
                plan: plan.clone(),
                due: o.due,
                implemented_at: None,
            }],
            steps: vec![ActionStep {
                state: ActionState::Open,
                at: now,
                by: by.to_owned(),
                note: format!("{problem}; plan: {plan}"),
            }],
        })
    }

    fn require(&self, from: ActionState, action: &str) -> Result<(), Error> {
        if self.state == from {
            return Ok(());
        }
        Err(Error::precondition(
            "EVAL-3",
            format!(
                "cannot {action} a corrective action that is {:?}; it must be {:?}",
                self.state, from
            )
            .to_lowercase(),
        ))
    }

    fn step(&mut self, to: ActionState, by: &str, note: String, now: DateTime<Utc>) {
        self.state = to;
        self.steps.push(ActionStep {
            state: to,
            at: now,
            by: by.to_owned(),
            note,
        });
    }

    /// The current round.
    pub fn current(&self) -> &Round {
        // `open` makes the first round and rounds are only ever added.
        &self.rounds[self.rounds.len() - 1]
    }

    /// REQ EVAL-3: the plan carried out, with what was done.
    pub fn implement(&mut self, record: &str, by: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.require(ActionState::Open, "implement")?;
        let record = required("record", record, "what was done is recorded")?;
        if let Some(round) = self.rounds.last_mut() {
            round.implemented_at = Some(now);
        }
        self.step(ActionState::Implemented, by, record, now);
        Ok(())
    }

    /// REQ EVAL-3: the effectiveness check, with its evidence. Effective closes the action;
    /// not effective opens the next round with `next` (plan and deadline). Returns whether a
    /// new round (and so a new clock) began.
    pub fn check(
        &mut self,
        effective: bool,
        evidence: &str,
        next: (&str, Option<DateTime<Utc>>),
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.require(ActionState::Implemented, "check")?;
        let evidence = required("evidence", evidence, "what the check found is recorded")?;
        if effective {
            self.step(ActionState::Effective, by, evidence, now);
            return Ok(false);
        }
        let plan = required(
            "next_plan",
            next.0,
            "an action not effective is tracked on with a new plan",
        )?;
        let due = next.1.ok_or_else(|| {
            Error::invalid(
                "next_due_time",
                "EVAL-3",
                "an action not effective gets a new deadline",
            )
        })?;
        ahead("next_due_time", due, now)?;
        self.rounds.push(Round {
            plan: plan.clone(),
            due,
            implemented_at: None,
        });
        self.step(
            ActionState::Open,
            by,
            format!("not effective: {evidence}; next plan: {plan}"),
            now,
        );
        Ok(true)
    }

    /// The durable clock of the current round: its kind and due time.
    pub fn clock(&self) -> (String, DateTime<Utc>) {
        (format!("action:{}", self.rounds.len()), self.current().due)
    }

    fn round_breach(&self, index: usize, now: DateTime<Utc>) -> Option<Breach> {
        let round = self.rounds.get(index)?;
        let done = round.implemented_at.unwrap_or(now);
        (done > round.due).then(|| Breach {
            rule: "EVAL-3",
            what: "corrective action",
            due: round.due,
            lateness: done - round.due,
        })
    }

    /// The deadlines missed as of `now`.
    pub fn breaches(&self, now: DateTime<Utc>) -> Vec<Breach> {
        (0..self.rounds.len())
            .filter_map(|i| self.round_breach(i, now))
            .collect()
    }

    /// The breach the durable clock of `kind` ("action:<n>") finds as of `now`.
    pub fn breach_of(&self, kind: &str, now: DateTime<Utc>) -> Option<Breach> {
        let n: usize = kind.strip_prefix("action:")?.parse().ok()?;
        self.round_breach(n.checked_sub(1)?, now)
    }

    /// When recurrences start to count: the latest implementation, or the opening.
    pub fn watching_since(&self) -> DateTime<Utc> {
        self.rounds
            .iter()
            .rev()
            .find_map(|r| r.implemented_at)
            .unwrap_or(self.opened_at)
    }

    /// REQ EVAL-3: complaints of the same categories at the same stations (any station when its
    /// complaints named none) received since [`Self::watching_since`], other than its own.
    pub fn recurrences<'a>(&self, complaints: impl IntoIterator<Item = &'a Complaint>) -> u32 {
        let since = self.watching_since();
        let count = complaints
            .into_iter()
            .filter(|c| c.kind == Kind::Complaint && c.received_at >= since)
            .filter(|c| !self.complaint_ids.contains(&c.complaint_id))
            .filter(|c| self.categories.contains(&c.category))
            .filter(|c| {
                self.station_ids.is_empty()
                    || c.station_id
                        .as_ref()
                        .is_some_and(|s| self.station_ids.contains(s))
            })
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::complaint::{Channel, Intake};
    use chrono::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn complaint(id: &str, kind: Kind, station: &str, at: &str) -> Complaint {
        Complaint::receive(
            id.into(),
            Intake {
                operator_id: "OP".into(),
                kind,
                channel: Channel::Phone,
                category: Category::Queueing,
                customer_contact: "138".into(),
                station_id: Some(station.into()),
                pile_id: None,
                description: "waited an hour behind parked petrol cars".into(),
                attachments: Vec::new(),
                charge_order_id: None,
            },
            "desk",
            t(at),
        )
        .expect("received")
    }

    fn opening(complaints: Vec<Complaint>, due: &str) -> Opening {
        Opening {
            operator_id: "OP".into(),
            complaints,
            problem: "bays taken by non-charging cars".into(),
            plan: "signs and a parking warden at peak".into(),
            owner: "station master Li".into(),
            due: t(due),
        }
    }

    fn rule(e: &Error) -> Option<&'static str> {
        match e {
            Error::Invalid { rule, .. } | Error::Precondition { rule, .. } => *rule,
            _ => None,
        }
    }

    #[test]
    fn eval_3_an_action_answers_complaints_with_a_cause_a_plan_an_owner_and_a_deadline_ahead() {
        let now = t("2026-03-05T00:00:00Z");
        let c1 = complaint("CP-1", Kind::Complaint, "S1", "2026-03-01T00:00:00Z");
        let ok = CorrectiveAction::open(
            "CA-1".into(),
            opening(vec![c1.clone()], "2026-03-20T00:00:00Z"),
            "mgr",
            now,
        )
        .expect("opened");
        assert_eq!(ok.station_ids, ["S1"]);
        assert_eq!(ok.clock(), ("action:1".into(), t("2026-03-20T00:00:00Z")));
        for bad in [
            opening(Vec::new(), "2026-03-20T00:00:00Z"),
            opening(
                vec![complaint(
                    "CP-2",
                    Kind::Praise,
                    "S1",
                    "2026-03-01T00:00:00Z",
                )],
                "2026-03-20T00:00:00Z",
            ),
            opening(vec![c1.clone()], "2026-03-04T00:00:00Z"),
            Opening {
                owner: " ".into(),
                ..opening(vec![c1.clone()], "2026-03-20T00:00:00Z")
            },
        ] {
            let e = CorrectiveAction::open("CA-2".into(), bad, "mgr", now).expect_err("refused");
            assert_eq!(rule(&e), Some("EVAL-3"), "{e}");
        }
    }

    #[test]
    fn eval_3_tracked_until_effective_with_a_new_round_when_not_and_late_rounds_are_breaches() {
        let c1 = complaint("CP-1", Kind::Complaint, "S1", "2026-03-01T00:00:00Z");
        let mut a = CorrectiveAction::open(
            "CA-1".into(),
            opening(vec![c1], "2026-03-10T00:00:00Z"),
            "mgr",
            t("2026-03-05T00:00:00Z"),
        )
        .expect("opened");
        // Out of order: a check before the implementation.
        let early = a
            .check(true, "fine", ("", None), "mgr", t("2026-03-06T00:00:00Z"))
            .expect_err("not implemented yet");
        assert!(matches!(early, Error::Precondition { .. }));
        // Past the deadline and not implemented: a breach that grows.
        assert_eq!(
            a.breach_of("action:1", t("2026-03-11T00:00:00Z"))
                .map(|b| b.lateness),
            Some(Duration::days(1))
        );
        a.implement("signs up", "Li", t("2026-03-12T00:00:00Z"))
            .expect("implemented");
        assert_eq!(
            a.breaches(t("2026-04-30T00:00:00Z"))[0].lateness,
            Duration::days(2)
        );
        // Not effective without a next plan is refused; with one a second round starts.
        assert!(
            a.check(
                false,
                "two more complaints",
                ("", None),
                "mgr",
                t("2026-03-20T00:00:00Z")
            )
            .is_err()
        );
        let again = a
            .check(
                false,
                "two more complaints",
                ("a warden at peak", Some(t("2026-04-01T00:00:00Z"))),
                "mgr",
                t("2026-03-20T00:00:00Z"),
            )
            .expect("second round");
        assert!(again);
        assert_eq!((a.state, a.rounds.len()), (ActionState::Open, 2));
        assert_eq!(a.clock(), ("action:2".into(), t("2026-04-01T00:00:00Z")));
        a.implement("warden hired", "Li", t("2026-03-30T00:00:00Z"))
            .expect("implemented");
        assert!(a.breach_of("action:2", t("2026-04-02T00:00:00Z")).is_none());
        assert!(
            !a.check(
                true,
                "no complaints for a month",
                ("", None),
                "mgr",
                t("2026-04-30T00:00:00Z")
            )
            .expect("effective")
        );
        assert_eq!(a.state, ActionState::Effective);
        assert!(
            a.implement("again", "Li", t("2026-05-01T00:00:00Z"))
                .is_err()
        );
        assert_eq!(a.steps.len(), 5);
    }

    #[test]
    fn eval_3_recurrences_are_like_complaints_at_its_stations_since_the_implementation() {
        let c1 = complaint("CP-1", Kind::Complaint, "S1", "2026-03-01T00:00:00Z");
        let mut a = CorrectiveAction::open(
            "CA-1".into(),
            opening(vec![c1.clone()], "2026-03-10T00:00:00Z"),
            "mgr",
            t("2026-03-05T00:00:00Z"),
        )
        .expect("opened");
        a.implement("signs up", "Li", t("2026-03-08T00:00:00Z"))
            .expect("implemented");
        let mut other_category = complaint("CP-5", Kind::Complaint, "S1", "2026-03-09T00:00:00Z");
        other_category.category = Category::Billing;
        let all = [
            c1,
            complaint("CP-2", Kind::Complaint, "S1", "2026-03-07T00:00:00Z"),
            complaint("CP-3", Kind::Complaint, "S1", "2026-03-09T00:00:00Z"),
            complaint("CP-4", Kind::Complaint, "S2", "2026-03-09T00:00:00Z"),
            other_category,
            complaint("CP-6", Kind::Suggestion, "S1", "2026-03-09T00:00:00Z"),
        ];
        assert_eq!(a.recurrences(&all), 1);
    }
}
