//! The journals' facts as reporting keeps and reads them: the time each matters to reports, and
//! the plain KPI inputs made from them.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use chargemesh_kit::time::from_timestamp;
use chargemesh_proto::journal::v1::fact::Fact;

use crate::domain::kpi;
use crate::domain::period::Span;

fn at(ts: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    ts.as_ref().and_then(from_timestamp)
}

/// Where a fact belongs and when it matters: its station (empty when the fact names none), the
/// time it starts to matter, and the time it stops (`None` while it is open).
pub fn window(fact: &Fact) -> Option<(String, DateTime<Utc>, Option<DateTime<Utc>>)> {
    match fact {
        Fact::WorkOrder(o) => {
            let received = at(&o.receive_time)?;
            Some((o.station_id.clone(), received, Some(received)))
        }
        Fact::Defect(d) => Some((d.station_id.clone(), at(&d.found_time)?, at(&d.accept_time))),
        Fact::Downtime(d) => Some((String::new(), at(&d.suspend_time)?, at(&d.resume_time))),
        Fact::Complaint(c) => {
            let received = at(&c.receive_time)?;
            Some((c.station_id.clone(), received, Some(received)))
        }
        Fact::ChargeOrder(o) => {
            let start = at(&o.start_time)?;
            Some((o.station_id.clone(), start, Some(start)))
        }
        // A plan matters from its first completion to its last; one with none matters always.
        Fact::MaintenancePlan(p) => {
            let times: Vec<DateTime<Utc>> = p
                .completion_times
                .iter()
                .filter_map(from_timestamp)
                .collect();
            Some((
                p.station_id.clone(),
                times.iter().min().copied().unwrap_or(DateTime::UNIX_EPOCH),
                times.iter().max().copied(),
            ))
        }
        Fact::Drill(d) => {
            let held = drill_day(d)?;
            Some((d.station_id.clone(), held, Some(held)))
        }
        // A running session matters until it ends.
        Fact::ChargeSession(c) => Some((
            c.station_id.clone(),
            at(&c.start_time)?,
            if c.running { None } else { at(&c.sample_time) },
        )),
    }
}

/// The start (UTC) of the local day a drill was held.
pub fn drill_day(d: &chargemesh_proto::journal::v1::DrillFact) -> Option<DateTime<Utc>> {
    let day = chrono::NaiveDate::parse_from_str(&d.held_on, "%Y-%m-%d").ok()?;
    Some(chargemesh_kit::clock::china_day(day).0)
}

/// The facts of a report, by kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FactSet {
    pub orders: Vec<chargemesh_proto::journal::v1::WorkOrderFact>,
    pub defects: Vec<chargemesh_proto::journal::v1::DefectFact>,
    pub downtimes: Vec<chargemesh_proto::journal::v1::DowntimeFact>,
    pub complaints: Vec<chargemesh_proto::journal::v1::ComplaintFact>,
    pub charge_orders: Vec<chargemesh_proto::journal::v1::ChargeOrderFact>,
    pub plans: Vec<chargemesh_proto::journal::v1::MaintenancePlanFact>,
    pub drills: Vec<chargemesh_proto::journal::v1::DrillFact>,
    pub charge_sessions: Vec<chargemesh_proto::journal::v1::ChargeSessionFact>,
}

impl FactSet {
    pub fn add(&mut self, facts: Vec<Fact>) {
        for fact in facts {
            match fact {
                Fact::WorkOrder(f) => self.orders.push(f),
                Fact::Defect(f) => self.defects.push(f),
                Fact::Downtime(f) => self.downtimes.push(f),
                Fact::Complaint(f) => self.complaints.push(f),
                Fact::ChargeOrder(f) => self.charge_orders.push(f),
                Fact::MaintenancePlan(f) => self.plans.push(f),
                Fact::Drill(f) => self.drills.push(f),
                Fact::ChargeSession(f) => self.charge_sessions.push(f),
            }
        }
    }

    /// The KPI inputs the facts make; `pile_station` finds the station of a pile for downtime.
    pub fn kpi_inputs(&self, pile_station: &HashMap<String, String>) -> kpi::Inputs {
        let mut inputs = kpi::Inputs::default();
        for o in &self.orders {
            let (Some(received), Some(resolution_due)) =
                (at(&o.receive_time), at(&o.resolution_due_time))
            else {
                continue;
            };
            inputs.orders.push(kpi::WorkOrder {
                station_id: o.station_id.clone(),
                received_at: received,
                arrival_due: at(&o.arrival_due_time),
                resolution_due,
                arrived_at: at(&o.arrive_time),
                resolved_at: at(&o.resolve_time),
                follow_up: !o.follow_up_of.is_empty(),
            });
        }
        for d in &self.defects {
            let Some(found) = at(&d.found_time) else {
                continue;
            };
            inputs.defects.push(kpi::Defect {
                station_id: d.station_id.clone(),
                class: d.defect_class.clone(),
                found_at: found,
                due: at(&d.due_time),
                eliminated_at: at(&d.eliminate_time),
                accepted_at: at(&d.accept_time),
            });
        }
        for d in &self.downtimes {
            let (Some(start), Some(end), Some(station)) = (
                at(&d.suspend_time),
                at(&d.resume_time),
                pile_station.get(&d.pile_id),
            ) else {
                continue;
            };
            inputs.downtimes.push(kpi::Downtime {
                station_id: station.clone(),
                span: Span::new(start, end),
            });
        }
        for c in &self.complaints {
            let (Some(received), Some(due)) = (at(&c.receive_time), at(&c.response_due_time))
            else {
                continue;
            };
            inputs.complaints.push(kpi::Complaint {
                station_id: c.station_id.clone(),
                is_complaint: c.kind == "complaint",
                received_at: received,
                response_due: due,
                acknowledged_at: at(&c.acknowledge_time),
                satisfaction: u8::try_from(c.satisfaction).ok().filter(|s| *s > 0),
            });
        }
        for o in &self.charge_orders {
            let Some(start) = at(&o.start_time) else {
                continue;
            };
            inputs.sessions.push(kpi::Session {
                station_id: o.station_id.clone(),
                start,
                energy_kwh: Decimal::from_str(&o.energy_kwh).unwrap_or_default(),
            });
        }
        inputs
    }

    /// Only the facts of the stations `keep` selects (downtime by its pile's station).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool, pile_station: &HashMap<String, String>) {
        self.orders.retain(|f| keep(&f.station_id));
        self.defects.retain(|f| keep(&f.station_id));
        self.downtimes.retain(|f| {
            pile_station
                .get(&f.pile_id)
                .is_some_and(|station| keep(station))
        });
        self.complaints.retain(|f| keep(&f.station_id));
        self.charge_orders.retain(|f| keep(&f.station_id));
        self.plans.retain(|f| keep(&f.station_id));
        self.drills.retain(|f| keep(&f.station_id));
        self.charge_sessions.retain(|f| keep(&f.station_id));
    }
}

/// A fact's time, when it has one.
pub fn time(ts: &Option<prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    at(ts)
}
