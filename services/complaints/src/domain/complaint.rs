//! A complaint's life (REQ CMP-1, CMP-2, CMP-4, EVAL-2): received → acknowledged (the first
//! response, due within 24 hours) → investigating (the event and the responsible party) →
//! promised (the handling, a reply to the customer and a completion time) → resolved → revisited
//! (satisfaction 1 to 5) → archived. An unsatisfied revisit reopens it. Every step is kept with
//! who, when and what; nothing is overwritten. REQ CMP-3: this is the handling process of
//! GB/T 17242 (receive, acknowledge, investigate, decide and reply, carry out, follow up, close)
//! with the principles of GB/T 19012 it can enforce: no step is skipped or taken out of order
//! (responsiveness, objectivity), and every step names who took it (accountability).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

/// REQ CMP-1: the first response is due within 24 hours of receipt.
pub const RESPONSE_WITHIN: Duration = Duration::hours(24);
/// A revisit score at or below this is unsatisfied and reopens the complaint.
pub const UNSATISFIED_AT_OR_BELOW: u8 = 2;

/// REQ CMP-2: how it reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Phone,
    Email,
    Visit,
    App,
}

/// REQ EVAL-2: praise and suggestions are recorded the same way as complaints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Complaint,
    Praise,
    Suggestion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    ChargingFailure,
    Billing,
    Pricing,
    ServiceAttitude,
    FacilitySafety,
    Queueing,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Received,
    Acknowledged,
    Investigating,
    Promised,
    Resolved,
    Revisited,
    Archived,
}

/// One step of the record: who did what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub state: State,
    pub at: DateTime<Utc>,
    pub by: String,
    pub note: String,
}

/// REQ CMP-4: the handling decided, the reply given and the time promised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promise {
    pub handling: String,
    pub reply: String,
    pub due: DateTime<Utc>,
}

/// What a customer tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub operator_id: String,
    pub kind: Kind,
    pub channel: Channel,
    pub category: Category,
    pub customer_contact: String,
    pub station_id: Option<String>,
    pub pile_id: Option<String>,
    pub description: String,
    pub attachments: Vec<String>,
    /// The charge order a billing complaint is about (T/CEC 102 StartChargeSeq).
    pub charge_order_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Complaint {
    pub complaint_id: String,
    pub operator_id: String,
    pub kind: Kind,
    pub channel: Channel,
    pub category: Category,
    pub customer_contact: String,
    pub station_id: Option<String>,
    pub pile_id: Option<String>,
    pub description: String,
    pub attachments: Vec<String>,
    #[serde(default)]
    pub charge_order_id: Option<String>,
    pub received_at: DateTime<Utc>,
    pub state: State,
    /// Every step, in order (REQ CMP-4, REC-2).
    pub steps: Vec<Step>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// The promises made, the latest last; a reopened complaint gets a new one.
    pub promises: Vec<Promise>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Satisfaction 1 to 5 of the latest revisit (EVAL-2).
    pub satisfaction: Option<u8>,
    pub reopened: u32,
    /// What the complaint set going elsewhere, such as a repair work order (REQ FAULT-4).
    #[serde(default)]
    pub links: Vec<Linked>,
}

/// An item another component keeps for this complaint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    /// "work_order".
    pub kind: String,
    pub id: String,
}

/// A limit missed, with its lateness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    pub rule: &'static str,
    pub what: &'static str,
    pub due: DateTime<Utc>,
    pub lateness: Duration,
}

fn required(field: &str, value: &str, rule: &'static str, what: &str) -> Result<String, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, rule, what));
    }
    Ok(value.to_owned())
}

/// REQ CMP-3 (GB/T 19012 accountability): every step names who took it.
fn accountable(by: &str) -> Result<(), Error> {
    if by.trim().is_empty() {
        return Err(Error::invalid(
            "by",
            "CMP-3",
            "every step of a complaint names who took it",
        ));
    }
    Ok(())
}

impl Complaint {
    /// REQ CMP-2, CMP-4: records what the customer said, with a way to reach them.
    pub fn receive(
        id: String,
        intake: Intake,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, Error> {
        accountable(by)?;
        let contact = required(
            "customer_contact",
            &intake.customer_contact,
            "CMP-4",
            "a way to reach the customer is recorded, for the reply and the revisit",
        )?;
        let description = required(
            "description",
            &intake.description,
            "CMP-4",
            "what the customer says is recorded",
        )?;
        Ok(Self {
            complaint_id: id,
            operator_id: intake.operator_id,
            kind: intake.kind,
            channel: intake.channel,
            category: intake.category,
            customer_contact: contact,
            station_id: intake.station_id.filter(|s| !s.trim().is_empty()),
            pile_id: intake.pile_id.filter(|s| !s.trim().is_empty()),
            description: description.clone(),
            attachments: intake.attachments,
            charge_order_id: intake.charge_order_id.filter(|o| !o.trim().is_empty()),
            received_at: now,
            state: State::Received,
            steps: vec![Step {
                state: State::Received,
                at: now,
                by: by.to_owned(),
                note: description,
            }],
            acknowledged_at: None,
            promises: Vec::new(),
            resolved_at: None,
            satisfaction: None,
            reopened: 0,
            links: Vec::new(),
        })
    }

    fn step(&mut self, to: State, by: &str, note: String, now: DateTime<Utc>) {
        self.state = to;
        self.steps.push(Step {
            state: to,
            at: now,
            by: by.to_owned(),
            note,
        });
    }

    /// REQ CMP-3, CMP-4: the step is the next one of the process, and someone takes it.
    fn require(&self, from: State, action: &str, by: &str) -> Result<(), Error> {
        accountable(by)?;
        if self.state == from {
            Ok(())
        } else {
            Err(Error::precondition(
                "CMP-4",
                format!(
                    "cannot {action} a complaint that is {:?}; it must be {:?}",
                    self.state, from
                )
                .to_lowercase(),
            ))
        }
    }

    /// REQ FAULT-4: a complaint about a pile that fails or is unsafe opens a repair work order
    /// from the customer's call.
    pub fn needs_repair(&self) -> bool {
        self.kind == Kind::Complaint
            && matches!(
                self.category,
                Category::ChargingFailure | Category::FacilitySafety
            )
            && self.pile_id.is_some()
            && self.station_id.is_some()
            && !self.links.iter().any(|l| l.kind == "work_order")
    }

    /// REQ MON-9: a billing or pricing complaint naming its charge order flags that order for
    /// verification in metering.
    pub fn disputes_an_order(&self) -> bool {
        self.kind == Kind::Complaint
            && matches!(self.category, Category::Billing | Category::Pricing)
            && self.charge_order_id.is_some()
            && !self.links.iter().any(|l| l.kind == "charge_order")
    }

    /// REQ CMP-1: the first response to the customer.
    pub fn acknowledge(&mut self, reply: &str, by: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.require(State::Received, "acknowledge", by)?;
        let reply = required(
            "reply",
            reply,
            "CMP-1",
            "the response to the customer is recorded",
        )?;
        self.acknowledged_at = Some(now);
        self.step(State::Acknowledged, by, reply, now);
        Ok(())
    }

    /// REQ CMP-4: the event and the responsible party, as investigated.
    pub fn investigate(
        &mut self,
        event: &str,
        responsible_party: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.require(State::Acknowledged, "investigate", by)?;
        let event = required("event", event, "CMP-4", "the event is recorded")?;
        let party = required(
            "responsible_party",
            responsible_party,
            "CMP-4",
            "the responsible party is recorded",
        )?;
        self.step(
            State::Investigating,
            by,
            format!("{event}; responsible: {party}"),
            now,
        );
        Ok(())
    }

    /// REQ CMP-4: the handling decided, a reply to the customer and the time it is promised by.
    pub fn promise(
        &mut self,
        handling: &str,
        reply: &str,
        due: DateTime<Utc>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.require(State::Investigating, "promise a resolution of", by)?;
        let handling = required("handling", handling, "CMP-4", "the handling is decided")?;
        let reply = required(
            "reply",
            reply,
            "CMP-4",
            "the reply to the customer is recorded",
        )?;
        if due <= now {
            return Err(Error::invalid(
                "due_time",
                "CMP-4",
                "the promised completion lies ahead",
            ));
        }
        self.promises.push(Promise {
            handling: handling.clone(),
            reply,
            due,
        });
        self.step(State::Promised, by, handling, now);
        Ok(())
    }

    /// REQ CMP-4: the promise kept.
    pub fn resolve(&mut self, record: &str, by: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.require(State::Promised, "resolve", by)?;
        let record = required("record", record, "CMP-4", "what was done is recorded")?;
        self.resolved_at = Some(now);
        self.step(State::Resolved, by, record, now);
        Ok(())
    }

    /// REQ CMP-4, EVAL-3: the customer revisited; unsatisfied (2 or less) reopens the complaint
    /// for a new investigation and promise. Returns whether it reopened.
    pub fn revisit(
        &mut self,
        score: u32,
        comment: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.require(State::Resolved, "revisit", by)?;
        let score = u8::try_from(score)
            .ok()
            .filter(|s| (1..=5).contains(s))
            .ok_or_else(|| Error::invalid("satisfaction", "EVAL-2", "is a score of 1 to 5"))?;
        self.satisfaction = Some(score);
        self.step(
            State::Revisited,
            by,
            format!("satisfaction {score}: {}", comment.trim()),
            now,
        );
        if score <= UNSATISFIED_AT_OR_BELOW {
            self.reopened += 1;
            self.resolved_at = None;
            self.step(
                State::Investigating,
                by,
                format!("reopened after an unsatisfied revisit ({score})"),
                now,
            );
            return Ok(true);
        }
        Ok(false)
    }

    /// REQ CMP-4: archived once revisited; praise and suggestions once acknowledged (EVAL-2).
    pub fn archive(&mut self, by: &str, now: DateTime<Utc>) -> Result<(), Error> {
        accountable(by)?;
        let ready = match self.kind {
            Kind::Complaint => self.state == State::Revisited,
            Kind::Praise | Kind::Suggestion => {
                matches!(self.state, State::Acknowledged | State::Revisited)
            }
        };
        if !ready {
            return Err(Error::precondition(
                "CMP-4",
                format!(
                    "a {:?} that is {:?} is not ready to archive",
                    self.kind, self.state
                )
                .to_lowercase(),
            ));
        }
        self.step(State::Archived, by, String::new(), now);
        Ok(())
    }

    /// REQ CMP-1: when the first response is due.
    pub fn response_due(&self) -> DateTime<Utc> {
        self.received_at + RESPONSE_WITHIN
    }

    /// REQ CMP-1: the 24-hour response, missed as of `now`.
    fn response_breach(&self, now: DateTime<Utc>) -> Option<Breach> {
        let due = self.response_due();
        let answered = self.acknowledged_at.unwrap_or(now);
        (answered > due).then(|| Breach {
            rule: "CMP-1",
            what: "response",
            due,
            lateness: answered - due,
        })
    }

    /// REQ CMP-4: the `index`-th promise, judged by the resolution that followed it, or by now.
    fn promise_breach(&self, index: usize, now: DateTime<Utc>) -> Option<Breach> {
        let promise = self.promises.get(index)?;
        let kept_at = self
            .steps
            .iter()
            .filter(|s| s.state == State::Resolved)
            .nth(index)
            .map_or(now, |s| s.at);
        (kept_at > promise.due).then(|| Breach {
            rule: "CMP-4",
            what: "promise",
            due: promise.due,
            lateness: kept_at - promise.due,
        })
    }

    /// The limits missed as of `now`: the 24-hour response (CMP-1) and the promises (CMP-4).
    pub fn breaches(&self, now: DateTime<Utc>) -> Vec<Breach> {
        self.response_breach(now)
            .into_iter()
            .chain((0..self.promises.len()).filter_map(|i| self.promise_breach(i, now)))
            .collect()
    }

    /// The durable clock of the latest promise: its kind and due time.
    pub fn promise_clock(&self) -> Option<(String, DateTime<Utc>)> {
        self.promises
            .last()
            .map(|p| (format!("promise:{}", self.promises.len()), p.due))
    }

    /// The breach the durable clock of `kind` ("response" or "promise:<n>") finds as of `now`.
    pub fn breach_of(&self, kind: &str, now: DateTime<Utc>) -> Option<Breach> {
        match kind.split_once(':') {
            None if kind == "response" => self.response_breach(now),
            Some(("promise", n)) => n
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| self.promise_breach(i, now)),
            _ => None,
        }
    }

    /// How many times it was revisited.
    pub fn revisits(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.state == State::Revisited)
            .count()
    }

    /// The next limit and the time left to it, for the handler's queue.
    pub fn next_limit(&self, now: DateTime<Utc>) -> Option<(&'static str, Duration)> {
        match self.state {
            State::Received => Some(("response", self.response_due() - now)),
            State::Promised => self.promises.last().map(|p| ("promise", p.due - now)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn phone_complaint_intake() -> Intake {
        Intake {
            operator_id: "OP".into(),
            kind: Kind::Complaint,
            channel: Channel::Phone,
            category: Category::ChargingFailure,
            customer_contact: "138 0000 0000".into(),
            station_id: Some("S1".into()),
            pile_id: Some("P1".into()),
            description: "the gun would not lock".into(),
            attachments: Vec::new(),
            charge_order_id: None,
        }
    }

    fn phone_complaint() -> Complaint {
        Complaint::receive(
            "CP-1".into(),
            Intake {
                operator_id: "OP".into(),
                kind: Kind::Complaint,
                channel: Channel::Phone,
                category: Category::ChargingFailure,
                customer_contact: "138 0000 0000".into(),
                station_id: Some("S1".into()),
                pile_id: Some("P1".into()),
                description: "the gun would not lock".into(),
                attachments: Vec::new(),
                charge_order_id: None,
            },
            "desk",
            t("2026-03-01T08:00:00Z"),
        )
        .expect("received")
    }

    fn rule(e: &Error) -> Option<&'static str> {
        match e {
            Error::Invalid { rule, .. } | Error::Precondition { rule, .. } => *rule,
            _ => None,
        }
    }

    /// One step of handling: an action on a complaint by someone at a time.
    type Action = fn(&mut Complaint, &str, DateTime<Utc>) -> Result<(), Error>;

    /// The GB/T 17242 steps, each as an action on a complaint.
    fn steps() -> Vec<(&'static str, Action)> {
        vec![
            ("acknowledge", |c, by, at| {
                c.acknowledge("we are looking into it", by, at)
            }),
            ("investigate", |c, by, at| {
                c.investigate("lock worn", "operator", by, at)
            }),
            ("promise", |c, by, at| {
                c.promise(
                    "replace the lock",
                    "fixed by Friday",
                    at + Duration::days(3),
                    by,
                    at,
                )
            }),
            ("resolve", |c, by, at| c.resolve("lock replaced", by, at)),
            ("revisit", |c, by, at| {
                c.revisit(5, "works now", by, at).map(|_| ())
            }),
            ("archive", |c, by, at| c.archive(by, at)),
        ]
    }

    #[test]
    fn cmp_3_handling_takes_every_gbt_17242_step_in_order_each_by_someone() {
        let at = t("2026-03-01T09:00:00Z");
        let all = steps();
        // From each point of the process, every later step but the next is refused.
        for (done, _) in all.iter().enumerate() {
            let mut c = phone_complaint();
            for (_, step) in &all[..done] {
                step(&mut c, "handler", at).expect("in order");
            }
            for (name, step) in all.iter().skip(done + 1) {
                let mut tried = c.clone();
                let refused = step(&mut tried, "handler", at).expect_err(name);
                assert_eq!(
                    rule(&refused),
                    Some("CMP-4"),
                    "{name} after {done} steps: {refused}"
                );
                assert_eq!(tried, c, "a refused step changes nothing");
            }
            // The next step, taken by nobody, is refused too (accountability).
            if let Some((name, step)) = all.get(done) {
                let refused = step(&mut c.clone(), " ", at).expect_err(name);
                assert_eq!(rule(&refused), Some("CMP-3"), "{refused}");
            }
        }
        // Taken in order, the record shows each step with who and when.
        let mut c = phone_complaint();
        for (_, step) in &all {
            step(&mut c, "handler", at).expect("in order");
        }
        assert_eq!(c.state, State::Archived);
        assert_eq!(c.steps.len(), 7, "received and six steps");
        assert!(c.steps[1..].iter().all(|s| s.by == "handler" && s.at == at));
        let nobody = Complaint::receive("CP-2".into(), phone_complaint_intake(), "", at);
        assert_eq!(nobody.map(|_| ()).map_err(|e| rule(&e)), Err(Some("CMP-3")));
    }

    #[test]
    fn cmp_1_a_response_after_25_hours_is_late_and_after_23_it_is_not() {
        let mut late = phone_complaint();
        late.acknowledge("sorry, we look into it", "desk", t("2026-03-02T09:00:00Z"))
            .expect("acknowledged");
        let breaches = late.breaches(t("2026-03-02T09:00:00Z"));
        assert_eq!(breaches.len(), 1);
        assert_eq!(
            (breaches[0].rule, breaches[0].lateness),
            ("CMP-1", Duration::hours(1))
        );
        let mut in_time = phone_complaint();
        in_time
            .acknowledge("sorry, we look into it", "desk", t("2026-03-02T07:00:00Z"))
            .expect("acknowledged");
        assert!(in_time.breaches(t("2026-03-05T00:00:00Z")).is_empty());
        // Unanswered, it is in breach from the 24th hour on.
        let open = phone_complaint();
        assert!(open.breaches(t("2026-03-02T07:59:00Z")).is_empty());
        assert_eq!(open.breaches(t("2026-03-02T08:01:00Z")).len(), 1);
        assert_eq!(
            open.next_limit(t("2026-03-01T20:00:00Z")),
            Some(("response", Duration::hours(12)))
        );
    }

    #[test]
    fn cmp_4_steps_go_in_order_and_a_promise_missed_is_a_breach() {
        let mut c = phone_complaint();
        let now = t("2026-03-01T09:00:00Z");
        let early = c
            .promise(
                "replace the gun",
                "within 2 days",
                t("2026-03-03T09:00:00Z"),
                "h",
                now,
            )
            .expect_err("out of order");
        assert_eq!(rule(&early), Some("CMP-4"));
        c.acknowledge("we call back today", "h", now).expect("ack");
        c.investigate("gun latch worn", "maintenance contractor", "h", now)
            .expect("investigated");
        c.promise(
            "replace the gun",
            "fixed by Tuesday",
            t("2026-03-03T09:00:00Z"),
            "h",
            now,
        )
        .expect("promised");
        c.resolve("gun replaced, tested", "h", t("2026-03-03T10:00:00Z"))
            .expect("resolved");
        let missed = c.breaches(t("2026-03-04T00:00:00Z"));
        assert_eq!(missed.len(), 1);
        assert_eq!((missed[0].rule, missed[0].what), ("CMP-4", "promise"));
        assert_eq!(missed[0].lateness, Duration::hours(1));
        assert_eq!(c.steps.len(), 5, "every step kept");
    }

    #[test]
    fn cmp_4_an_unsatisfied_revisit_reopens_and_a_satisfied_one_archives() {
        let mut c = phone_complaint();
        let now = t("2026-03-01T09:00:00Z");
        c.acknowledge("ok", "h", now).expect("ack");
        c.investigate("latch", "contractor", "h", now).expect("inv");
        c.promise("fix", "soon", t("2026-03-02T09:00:00Z"), "h", now)
            .expect("promise");
        c.resolve("fixed", "h", now).expect("resolved");
        assert_eq!(
            rule(&c.archive("h", now).expect_err("not revisited")),
            Some("CMP-4")
        );
        assert!(c.revisit(2, "still sticks", "h", now).expect("revisited"));
        assert_eq!((c.state, c.reopened), (State::Investigating, 1));
        c.promise(
            "replace the whole gun",
            "this week",
            t("2026-03-05T09:00:00Z"),
            "h",
            now,
        )
        .expect("second promise");
        c.resolve("replaced", "h", now).expect("resolved");
        assert!(!c.revisit(5, "works now", "h", now).expect("revisited"));
        c.archive("h", now).expect("archived");
        assert_eq!(c.state, State::Archived);
        assert_eq!(c.promises.len(), 2);
        assert!(c.revisit(3, "", "h", now).is_err());
        let mut bad = phone_complaint();
        bad.state = State::Resolved;
        assert_eq!(
            rule(&bad.revisit(6, "", "h", now).expect_err("score")),
            Some("EVAL-2")
        );
    }

    #[test]
    fn cmp_1_and_cmp_4_each_durable_clock_finds_its_own_breach() {
        let mut c = phone_complaint();
        let now = t("2026-03-02T09:00:00Z");
        assert!(c.breach_of("response", t("2026-03-01T20:00:00Z")).is_none());
        assert_eq!(c.breach_of("response", now).map(|b| b.rule), Some("CMP-1"));
        c.acknowledge("late, sorry", "h", now).expect("ack");
        c.investigate("meter", "vendor", "h", now).expect("inv");
        c.promise("fix", "by noon", t("2026-03-02T12:00:00Z"), "h", now)
            .expect("promise");
        assert_eq!(
            c.promise_clock(),
            Some(("promise:1".to_owned(), t("2026-03-02T12:00:00Z")))
        );
        assert!(
            c.breach_of("promise:1", t("2026-03-02T11:00:00Z"))
                .is_none()
        );
        let missed = c
            .breach_of("promise:1", t("2026-03-02T13:00:00Z"))
            .expect("missed");
        assert_eq!(
            (missed.rule, missed.lateness),
            ("CMP-4", Duration::hours(1))
        );
        assert!(
            c.breach_of("promise:2", t("2026-03-09T00:00:00Z"))
                .is_none()
        );
        assert!(c.breach_of("unknown", now).is_none());
    }

    #[test]
    fn eval_2_praise_is_recorded_the_same_way_and_archived_once_answered() {
        let mut praise = Complaint::receive(
            "CP-2".into(),
            Intake {
                operator_id: "OP".into(),
                kind: Kind::Praise,
                channel: Channel::App,
                category: Category::ServiceAttitude,
                customer_contact: "app user 7".into(),
                station_id: None,
                pile_id: None,
                description: "the attendant helped me at night".into(),
                attachments: Vec::new(),
                charge_order_id: None,
            },
            "app",
            t("2026-03-01T08:00:00Z"),
        )
        .expect("received");
        let now = t("2026-03-01T09:00:00Z");
        praise.acknowledge("thank you", "h", now).expect("ack");
        praise.archive("h", now).expect("archived");
        let missing = Complaint::receive(
            "CP-3".into(),
            Intake {
                customer_contact: " ".into(),
                ..Intake {
                    operator_id: "OP".into(),
                    kind: Kind::Complaint,
                    channel: Channel::Email,
                    category: Category::Billing,
                    customer_contact: String::new(),
                    station_id: None,
                    pile_id: None,
                    description: "charged twice".into(),
                    attachments: Vec::new(),
                    charge_order_id: None,
                }
            },
            "mail",
            now,
        )
        .expect_err("no contact");
        assert_eq!(rule(&missing), Some("CMP-4"));
    }
}
