//! Sessions assembled from the telemetry stream (REQ SETTLE-1, CHG-1): a session start opens a
//! session on its connector with the meter start, the connector's meter samples follow it, and
//! the session end closes it with the meter stop into a charge order. A pile that starts a new
//! session without ending the last one leaves that one without an end, for a monitor to verify.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::order::{ChargeOrder, ChargingSteps};
use super::order_id::new_order_id;
use super::settlement::Sample;

/// A session in progress on a connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    pub connector_id: String,
    pub order_id: String,
    pub authorization_ref: String,
    /// The station accepted any token for it.
    #[serde(default)]
    pub any_token: bool,
    pub start: DateTime<Utc>,
    pub samples: Vec<Sample>,
    pub steps: ChargingSteps,
}

/// Where a logged message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin<'a> {
    pub operator_id: &'a str,
    pub station_id: &'a str,
    pub pile_id: &'a str,
    pub connector_id: &'a str,
    pub at: DateTime<Utc>,
    /// The log sequence, which names a session the pile started on its own.
    pub sequence: i64,
}

/// How a session ended, as the pile reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ending {
    pub at: DateTime<Utc>,
    pub meter_stop_kwh: Decimal,
    pub stop_reason: i32,
    pub end_confirmed: bool,
    pub physically_separated: bool,
    /// What the pile computed itself (energy kWh, total money yuan), when it said.
    pub reported: Option<(Decimal, Decimal)>,
}

impl OpenSession {
    /// A session starting; the platform's order id, or one made from the log position so that
    /// reading the log again makes the same one.
    pub fn start(
        origin: &Origin<'_>,
        order_id: &str,
        authorization_ref: &str,
        meter_start_kwh: Decimal,
        steps: ChargingSteps,
    ) -> Self {
        let order_id = if order_id.is_empty() {
            new_order_id(
                origin.operator_id,
                origin.at,
                u64::try_from(origin.sequence).unwrap_or_default(),
            )
        } else {
            order_id.to_owned()
        };
        Self {
            operator_id: origin.operator_id.to_owned(),
            station_id: origin.station_id.to_owned(),
            pile_id: origin.pile_id.to_owned(),
            connector_id: origin.connector_id.to_owned(),
            order_id,
            authorization_ref: authorization_ref.to_owned(),
            any_token: false,
            start: origin.at,
            samples: vec![Sample {
                at: origin.at,
                register_kwh: meter_start_kwh,
            }],
            steps,
        }
    }

    /// A meter reading of the connector; one not after the last (a resend) is ignored.
    pub fn sample(&mut self, at: DateTime<Utc>, register_kwh: Decimal) -> bool {
        if self.samples.last().is_some_and(|last| at <= last.at) {
            return false;
        }
        self.samples.push(Sample { at, register_kwh });
        true
    }

    /// The order of the session, as recorded by `by` at `now`; `ending` is None for a session
    /// never ended.
    pub fn into_order(
        mut self,
        ending: Option<Ending>,
        area_code: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> ChargeOrder {
        let mut stop_reason = 0;
        if let Some(e) = ending {
            if self.samples.last().is_some_and(|last| e.at <= last.at) {
                self.samples.pop();
            }
            self.samples.push(Sample {
                at: e.at,
                register_kwh: e.meter_stop_kwh,
            });
            self.steps.end_confirmed = e.end_confirmed;
            self.steps.physically_separated = e.physically_separated;
            stop_reason = e.stop_reason;
        }
        ChargeOrder {
            operator_id: self.operator_id,
            order_id: self.order_id,
            version: 1,
            station_id: self.station_id,
            pile_id: self.pile_id,
            connector_id: self.connector_id,
            area_code: area_code.to_owned(),
            start: self.start,
            end: ending.map(|e| e.at),
            stop_reason,
            samples: self.samples,
            steps: self.steps,
            billable: false,
            not_billable_reason: None,
            settlement: None,
            flags: Vec::new(),
            // REQ SETTLE-1: the pile's own figures, checked against the tariff in force.
            reported: ending.and_then(|e| e.reported),
            correction_reason: None,
            verified_flags: Vec::new(),
            authorization_ref: self.authorization_ref,
            any_token: self.any_token,
            recorded_by: by.to_owned(),
            recorded_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fixtures::t;

    fn origin(at: &str, sequence: i64) -> Origin<'static> {
        Origin {
            operator_id: "MA2D3K7Q0",
            station_id: "S1",
            pile_id: "P1",
            connector_id: "P1-1",
            at: t(at),
            sequence,
        }
    }

    #[test]
    fn settle_1_a_session_from_telemetry_carries_every_reading_from_start_to_stop() {
        let mut s = OpenSession::start(
            &origin("2026-11-20T16:30:00+08:00", 41),
            "",
            "card 0042",
            Decimal::new(1_000_000, 3),
            ChargingSteps {
                connector_checked: true,
                charging_confirmed: true,
                ..ChargingSteps::default()
            },
        );
        assert_eq!(s.order_id.len(), 27);
        assert!(s.order_id.starts_with("MA2D3K7Q0"));
        let again = OpenSession::start(
            &origin("2026-11-20T16:30:00+08:00", 41),
            "",
            "card 0042",
            Decimal::new(1_000_000, 3),
            ChargingSteps::default(),
        );
        assert_eq!(s.order_id, again.order_id, "read again, the same id");
        assert!(s.sample(t("2026-11-20T17:00:00+08:00"), Decimal::new(1_020_000, 3)));
        assert!(
            !s.sample(t("2026-11-20T17:00:00+08:00"), Decimal::new(1_020_000, 3)),
            "a resend"
        );
        let order = s.into_order(
            Some(Ending {
                at: t("2026-11-20T17:30:00+08:00"),
                meter_stop_kwh: Decimal::new(1_040_000, 3),
                stop_reason: 2,
                end_confirmed: true,
                physically_separated: true,
                reported: None,
            }),
            "330602",
            "telemetry",
            t("2026-11-20T17:30:05+08:00"),
        );
        assert_eq!(order.samples.len(), 3);
        assert_eq!(order.end, Some(t("2026-11-20T17:30:00+08:00")));
        assert_eq!(order.stop_reason, 2);
        assert!(order.steps.connector_checked && order.steps.physically_separated);
    }
}
