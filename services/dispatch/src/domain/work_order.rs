//! Repair work orders and their clocks (REQ FAULT-4..FAULT-8, MON-2, MON-4): received, dispatched
//! to a crew, arrived (checked in on site), resolved (tested on site), confirmed by a monitor and
//! closed — or closed unresolved at the 4-hour mark with a suspension request and a follow-up.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::Error;

use super::geo::distance_m;

/// How far from the station a check-in may be (REQ FAULT-7).
pub const MAX_CHECK_IN_DISTANCE_M: f64 = 500.0;

/// REQ FAULT-4: the three channels a repair order comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Raised by the platform from a fault or offline report.
    Automatic,
    /// Raised by patrol staff.
    Patrol,
    /// Raised from a customer's phone call.
    Phone,
}

/// REQ FAULT-5: the arrival limit depends on where the station is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Zone {
    MainUrban,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Received,
    Dispatched,
    Arrived,
    /// Fixed and tested on site; awaiting the monitor's confirmation (REQ FAULT-8).
    Resolved,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Fixed,
    /// Not fixable within 4 hours (REQ FAULT-6).
    Unresolved,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkOrder {
    pub order_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    pub connector_id: Option<String>,
    pub channel: Channel,
    pub zone: Zone,
    pub fault_code: String,
    pub description: String,
    pub state: State,
    pub received_at: DateTime<Utc>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub crew: Vec<String>,
    pub check_in: Option<(f64, f64)>,
    pub test_record: Option<String>,
    pub confirmed_by: Option<String>,
    /// REQ FAULT-6: the pile's suspension was requested when the order closed unresolved.
    pub suspension_requested: bool,
    /// REQ FAULT-6: the repair is completed within 5 days of closing unresolved.
    pub follow_up_due: Option<DateTime<Utc>>,
    /// REQ FAULT-6: the order that carries the repair on after this one closed unresolved.
    #[serde(default)]
    pub follow_up_order_id: Option<String>,
    /// REQ FAULT-6: the order closed unresolved that this one follows up.
    #[serde(default)]
    pub follow_up_of: Option<String>,
}

/// REQ FAULT-6: how long the repair may take once an order closed unresolved.
pub const FOLLOW_UP_WITHIN: Duration = Duration::days(5);

/// The clocks of an order, from its receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// None for a FAULT-6 follow-up, which is planned work with no arrival limit.
    pub arrival_due: Option<DateTime<Utc>>,
    pub resolution_due: DateTime<Utc>,
    /// The rule the resolution limit comes from: FAULT-5, or FAULT-6 for a follow-up.
    pub resolution_rule: &'static str,
}

/// REQ FAULT-5: arrival within 1 hour in the main urban area and 2 elsewhere, resolution within
/// 4 hours, both from receipt.
pub fn deadlines(received_at: DateTime<Utc>, zone: Zone) -> Deadlines {
    let arrival = match zone {
        Zone::MainUrban => Duration::hours(1),
        Zone::Other => Duration::hours(2),
    };
    Deadlines {
        arrival_due: Some(received_at + arrival),
        resolution_due: received_at + Duration::hours(4),
        resolution_rule: "FAULT-5",
    }
}

/// REQ FAULT-6: a follow-up repair is complete within 5 days of the order closing unresolved.
pub fn follow_up_deadlines(received_at: DateTime<Utc>) -> Deadlines {
    Deadlines {
        arrival_due: None,
        resolution_due: received_at + FOLLOW_UP_WITHIN,
        resolution_rule: "FAULT-6",
    }
}

/// A deadline missed, with its lateness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    pub rule: &'static str,
    pub what: &'static str,
    pub due: DateTime<Utc>,
    pub at: DateTime<Utc>,
    pub lateness: Duration,
}

impl WorkOrder {
    /// A new order as received (REQ FAULT-4, MON-2).
    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        order_id: String,
        operator_id: String,
        station_id: String,
        pile_id: String,
        connector_id: Option<String>,
        channel: Channel,
        zone: Zone,
        fault_code: String,
        description: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            order_id,
            operator_id,
            station_id,
            pile_id,
            connector_id,
            channel,
            zone,
            fault_code,
            description,
            state: State::Received,
            received_at: now,
            dispatched_at: None,
            arrived_at: None,
            resolved_at: None,
            closed_at: None,
            outcome: None,
            crew: Vec::new(),
            check_in: None,
            test_record: None,
            confirmed_by: None,
            suspension_requested: false,
            follow_up_due: None,
            follow_up_order_id: None,
            follow_up_of: None,
        }
    }

    pub fn deadlines(&self) -> Deadlines {
        if self.follow_up_of.is_some() {
            follow_up_deadlines(self.received_at)
        } else {
            deadlines(self.received_at, self.zone)
        }
    }

    /// The durable clocks to record when the order is opened, by name.
    pub fn clock_rows(&self) -> Vec<(&'static str, DateTime<Utc>)> {
        let d = self.deadlines();
        d.arrival_due
            .map(|due| ("arrival", due))
            .into_iter()
            .chain([("resolution", d.resolution_due)])
            .collect()
    }

    /// REQ FAULT-6: the follow-up repair of an order closed unresolved, received when it closed
    /// and due within 5 days; its id is derived from the original so that making it twice makes
    /// it once.
    pub fn follow_up(&self) -> Option<WorkOrder> {
        let (id, closed_at) = (self.follow_up_order_id.as_ref()?, self.closed_at?);
        let mut next = WorkOrder::receive(
            id.clone(),
            self.operator_id.clone(),
            self.station_id.clone(),
            self.pile_id.clone(),
            self.connector_id.clone(),
            self.channel,
            self.zone,
            self.fault_code.clone(),
            format!(
                "follow-up of {} (closed unresolved): {}",
                self.order_id, self.description
            ),
            closed_at,
        );
        next.follow_up_of = Some(self.order_id.clone());
        Some(next)
    }

    pub fn is_open(&self) -> bool {
        self.state != State::Closed
    }

    fn require(&self, state: State, action: &str) -> Result<(), Error> {
        if self.state == state {
            Ok(())
        } else {
            Err(Error::state(
                format!("cannot {action} an order that is {:?}", self.state).to_lowercase(),
            ))
        }
    }

    /// Dispatches to a crew already validated with [`super::crew::validate_crew`].
    pub fn dispatch(&mut self, crew: Vec<String>, now: DateTime<Utc>) -> Result<(), Error> {
        self.require(State::Received, "dispatch")?;
        self.crew = crew;
        self.dispatched_at = Some(now);
        self.state = State::Dispatched;
        Ok(())
    }

    /// REQ FAULT-7: the crew checks in on site before work; a check-in far from the station is
    /// refused.
    pub fn arrive(
        &mut self,
        position: (f64, f64),
        station: (f64, f64),
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.require(State::Dispatched, "check in on")?;
        let distance = distance_m(position, station);
        if !distance.is_finite() || distance > MAX_CHECK_IN_DISTANCE_M {
            return Err(Error::invalid(
                "position",
                "FAULT-7",
                format!(
                    "the check-in is {distance:.0} m from the station, more than {MAX_CHECK_IN_DISTANCE_M:.0} m"
                ),
            ));
        }
        self.check_in = Some(position);
        self.arrived_at = Some(now);
        self.state = State::Arrived;
        Ok(())
    }

    /// REQ FAULT-8: fixed, with the record of the on-site test.
    pub fn resolve(&mut self, test_record: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.require(State::Arrived, "resolve")?;
        let record = test_record.trim();
        if record.is_empty() {
            return Err(Error::invalid(
                "test_record",
                "FAULT-8",
                "the on-site test is recorded before resolving",
            ));
        }
        self.test_record = Some(record.to_owned());
        self.resolved_at = Some(now);
        self.state = State::Resolved;
        Ok(())
    }

    /// REQ FAULT-8: the monitor confirms the fault is cleared; the order closes fixed.
    pub fn confirm(&mut self, monitor: &str, now: DateTime<Utc>) -> Result<(), Error> {
        self.require(State::Resolved, "confirm")?;
        self.confirmed_by = Some(monitor.to_owned());
        self.closed_at = Some(now);
        self.outcome = Some(Outcome::Fixed);
        self.state = State::Closed;
        Ok(())
    }

    /// REQ FAULT-6: at the 4-hour mark an order not fixed closes unresolved, the pile's
    /// suspension is requested and the repair is due within 5 days.
    pub fn close_unresolved(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        if !self.is_open() || self.state == State::Resolved {
            return Err(Error::state(
                "only an open, unresolved order closes unresolved",
            ));
        }
        if self.follow_up_of.is_some() {
            return Err(Error::state(
                "a follow-up repair stays open until it is fixed (REQ FAULT-6)",
            ));
        }
        let due = self.deadlines().resolution_due;
        if now < due {
            return Err(Error::precondition(
                "FAULT-6",
                format!("an order closes unresolved only after its 4-hour limit at {due}"),
            ));
        }
        self.closed_at = Some(now);
        self.outcome = Some(Outcome::Unresolved);
        self.state = State::Closed;
        self.suspension_requested = true;
        self.follow_up_due = Some(now + FOLLOW_UP_WITHIN);
        self.follow_up_order_id = Some(format!("{}-F", self.order_id));
        Ok(())
    }

    /// REQ MON-4: two hours after dispatch without a fix, the monitor may request suspension.
    pub fn may_request_suspension(&self, now: DateTime<Utc>) -> Result<(), Error> {
        let dispatched = self
            .dispatched_at
            .ok_or_else(|| Error::precondition("MON-4", "the order has not been dispatched"))?;
        if matches!(self.outcome, Some(Outcome::Fixed)) || self.state == State::Resolved {
            return Err(Error::precondition("MON-4", "the fault is fixed"));
        }
        if now < dispatched + Duration::hours(2) {
            return Err(Error::precondition(
                "MON-4",
                format!(
                    "suspension may be requested from {}, two hours after dispatch",
                    dispatched + Duration::hours(2)
                ),
            ));
        }
        Ok(())
    }

    /// The deadlines missed as of `now`: each is judged once it is met or has passed unmet.
    pub fn breaches(&self, now: DateTime<Utc>) -> Vec<Breach> {
        let d = self.deadlines();
        let mut out = Vec::new();
        // REQ FAULT-5: arrival within 1 hour (main urban area) or 2 hours (elsewhere).
        let arrival = self.arrived_at.unwrap_or(now);
        if let Some(due) = d.arrival_due
            && arrival > due
            && (self.arrived_at.is_some() || self.is_open())
        {
            out.push(Breach {
                rule: "FAULT-5",
                what: "arrival",
                due,
                at: arrival,
                lateness: arrival - due,
            });
        }
        // REQ FAULT-5: resolved within 4 hours. An order closed unresolved missed it (REQ FAULT-6),
        // even when closed at the very mark. REQ FAULT-6: a follow-up within 5 days.
        let missed_at = match (self.outcome, self.resolved_at) {
            (Some(Outcome::Unresolved), _) => Some(self.closed_at.unwrap_or(now)),
            (_, Some(at)) => (at > d.resolution_due).then_some(at),
            (_, None) => (self.is_open() && now > d.resolution_due).then_some(now),
        };
        if let Some(at) = missed_at {
            out.push(Breach {
                rule: d.resolution_rule,
                what: "resolution",
                due: d.resolution_due,
                at,
                lateness: (at - d.resolution_due).max(Duration::zero()),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    const STATION: (f64, f64) = (120.58, 30.0);

    fn order(zone: Zone) -> WorkOrder {
        WorkOrder::receive(
            "WO-1".into(),
            "OP".into(),
            "S1".into(),
            "P1".into(),
            Some("P1-1".into()),
            Channel::Automatic,
            zone,
            "E42".into(),
            "insulation fault".into(),
            t("2026-03-01T08:00:00Z"),
        )
    }

    #[test]
    fn fault_5_urban_arrival_is_late_after_one_hour() {
        let mut o = order(Zone::MainUrban);
        o.dispatch(vec!["a".into(), "b".into()], t("2026-03-01T08:05:00Z"))
            .expect("dispatched");
        o.arrive(STATION, STATION, t("2026-03-01T09:01:00Z"))
            .expect("arrived");
        let breaches = o.breaches(t("2026-03-01T09:01:00Z"));
        assert_eq!(breaches.len(), 1);
        assert_eq!((breaches[0].rule, breaches[0].what), ("FAULT-5", "arrival"));
        assert_eq!(breaches[0].lateness, Duration::minutes(1));
    }

    #[test]
    fn fault_5_elsewhere_arrival_at_61_minutes_is_in_time() {
        let mut o = order(Zone::Other);
        o.dispatch(vec!["a".into(), "b".into()], t("2026-03-01T08:05:00Z"))
            .expect("dispatched");
        o.arrive(STATION, STATION, t("2026-03-01T09:01:00Z"))
            .expect("arrived");
        assert!(o.breaches(t("2026-03-01T09:01:00Z")).is_empty());
        assert_eq!(o.deadlines().arrival_due, Some(t("2026-03-01T10:00:00Z")));
    }

    #[test]
    fn fault_5_an_open_order_past_its_limits_is_in_breach_until_met() {
        let o = order(Zone::MainUrban);
        let late = o.breaches(t("2026-03-01T12:30:00Z"));
        let whats: Vec<_> = late.iter().map(|b| b.what).collect();
        assert_eq!(whats, ["arrival", "resolution"]);
        assert!(o.breaches(t("2026-03-01T08:59:00Z")).is_empty());
    }

    #[test]
    fn fault_6_unresolved_at_four_hours_closes_with_suspension_and_a_five_day_follow_up() {
        let mut o = order(Zone::MainUrban);
        o.dispatch(vec!["a".into(), "b".into()], t("2026-03-01T08:05:00Z"))
            .expect("dispatched");
        let early = o
            .close_unresolved(t("2026-03-01T11:59:00Z"))
            .expect_err("too early");
        assert!(matches!(
            early,
            Error::Precondition {
                rule: Some("FAULT-6"),
                ..
            }
        ));
        o.close_unresolved(t("2026-03-01T12:00:00Z"))
            .expect("closed");
        assert_eq!(o.outcome, Some(Outcome::Unresolved));
        assert!(o.suspension_requested);
        assert_eq!(o.follow_up_due, Some(t("2026-03-06T12:00:00Z")));
    }

    #[test]
    fn fault_6_the_follow_up_repair_is_due_in_five_days_with_no_arrival_clock() {
        let mut o = order(Zone::MainUrban);
        assert!(o.follow_up().is_none(), "no follow-up before closing");
        o.close_unresolved(t("2026-03-01T12:00:00Z"))
            .expect("closed");
        let f = o.follow_up().expect("follow-up");
        assert_eq!(f.order_id, "WO-1-F");
        assert_eq!(o.follow_up().map(|g| g.order_id), Some(f.order_id.clone()));
        assert_eq!(f.follow_up_of.as_deref(), Some("WO-1"));
        assert_eq!(f.connector_id, o.connector_id);
        let d = f.deadlines();
        assert_eq!(d.arrival_due, None);
        assert_eq!(d.resolution_due, t("2026-03-06T12:00:00Z"));
        assert_eq!(f.clock_rows(), [("resolution", t("2026-03-06T12:00:00Z"))]);
        // Days later without a fix it is in breach of FAULT-6, never of FAULT-5.
        assert!(f.breaches(t("2026-03-05T12:00:00Z")).is_empty());
        let late = f.breaches(t("2026-03-06T13:00:00Z"));
        assert_eq!(late.len(), 1);
        assert_eq!((late[0].rule, late[0].what), ("FAULT-6", "resolution"));
        assert_eq!(late[0].lateness, Duration::hours(1));
        // It stays open until fixed: it is never closed unresolved in turn.
        let mut f = f;
        assert!(f.close_unresolved(t("2026-03-07T12:00:00Z")).is_err());
    }

    #[test]
    fn mon_4_suspension_may_be_requested_two_hours_after_dispatch() {
        let mut o = order(Zone::MainUrban);
        assert!(
            o.may_request_suspension(t("2026-03-01T12:00:00Z")).is_err(),
            "not dispatched"
        );
        o.dispatch(vec!["a".into(), "b".into()], t("2026-03-01T08:30:00Z"))
            .expect("dispatched");
        let err = o
            .may_request_suspension(t("2026-03-01T10:29:00Z"))
            .expect_err("too early");
        assert!(matches!(
            err,
            Error::Precondition {
                rule: Some("MON-4"),
                ..
            }
        ));
        assert!(o.may_request_suspension(t("2026-03-01T10:30:00Z")).is_ok());
    }

    #[test]
    fn fault_7_a_check_in_far_from_the_station_is_refused() {
        let mut o = order(Zone::MainUrban);
        o.dispatch(vec!["a".into(), "b".into()], t("2026-03-01T08:05:00Z"))
            .expect("dispatched");
        let err = o
            .arrive((120.60, 30.0), STATION, t("2026-03-01T08:30:00Z"))
            .expect_err("far");
        assert!(
            matches!(
                err,
                Error::Invalid {
                    rule: Some("FAULT-7"),
                    ..
                }
            ),
            "{err}"
        );
        o.arrive((120.5801, 30.0001), STATION, t("2026-03-01T08:30:00Z"))
            .expect("close enough");
    }

    #[test]
    fn fault_8_resolution_needs_a_test_record_and_the_monitor_closes() {
        let mut o = order(Zone::MainUrban);
        o.dispatch(vec!["a".into(), "b".into()], t("2026-03-01T08:05:00Z"))
            .expect("dispatched");
        assert!(
            o.resolve("fixed", t("2026-03-01T08:40:00Z")).is_err(),
            "not on site yet"
        );
        o.arrive(STATION, STATION, t("2026-03-01T08:30:00Z"))
            .expect("arrived");
        let err = o
            .resolve("  ", t("2026-03-01T09:00:00Z"))
            .expect_err("no test");
        assert!(matches!(
            err,
            Error::Invalid {
                rule: Some("FAULT-8"),
                ..
            }
        ));
        o.resolve(
            "insulation 500 MΩ; test charge 10 min OK",
            t("2026-03-01T09:00:00Z"),
        )
        .expect("resolved");
        assert!(
            o.close_unresolved(t("2026-03-01T12:30:00Z")).is_err(),
            "a resolved order awaits confirmation"
        );
        o.confirm("monitor-1", t("2026-03-01T09:10:00Z"))
            .expect("confirmed");
        assert_eq!((o.state, o.outcome), (State::Closed, Some(Outcome::Fixed)));
        assert!(
            o.breaches(t("2026-03-01T20:00:00Z")).is_empty(),
            "met every limit"
        );
    }
}
