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
    }
}

/// The KPI inputs the facts make; `pile_station` finds the station of a pile for downtime.
pub fn add_to_inputs(
    inputs: &mut kpi::Inputs,
    facts: Vec<Fact>,
    pile_station: &HashMap<String, String>,
) {
    for fact in facts {
        match fact {
            Fact::WorkOrder(o) => {
                let (Some(received), Some(resolution_due)) =
                    (at(&o.receive_time), at(&o.resolution_due_time))
                else {
                    continue;
                };
                inputs.orders.push(kpi::WorkOrder {
                    station_id: o.station_id,
                    received_at: received,
                    arrival_due: at(&o.arrival_due_time),
                    resolution_due,
                    arrived_at: at(&o.arrive_time),
                    resolved_at: at(&o.resolve_time),
                    follow_up: !o.follow_up_of.is_empty(),
                });
            }
            Fact::Defect(d) => {
                let Some(found) = at(&d.found_time) else {
                    continue;
                };
                inputs.defects.push(kpi::Defect {
                    station_id: d.station_id,
                    class: d.defect_class,
                    found_at: found,
                    due: at(&d.due_time),
                    eliminated_at: at(&d.eliminate_time),
                    accepted_at: at(&d.accept_time),
                });
            }
            Fact::Downtime(d) => {
                let (Some(start), Some(end)) = (at(&d.suspend_time), at(&d.resume_time)) else {
                    continue;
                };
                let Some(station) = pile_station.get(&d.pile_id) else {
                    continue;
                };
                inputs.downtimes.push(kpi::Downtime {
                    station_id: station.clone(),
                    span: Span::new(start, end),
                });
            }
            Fact::Complaint(c) => {
                let (Some(received), Some(due)) = (at(&c.receive_time), at(&c.response_due_time))
                else {
                    continue;
                };
                inputs.complaints.push(kpi::Complaint {
                    station_id: c.station_id,
                    is_complaint: c.kind == "complaint",
                    received_at: received,
                    response_due: due,
                    acknowledged_at: at(&c.acknowledge_time),
                    satisfaction: u8::try_from(c.satisfaction).ok().filter(|s| *s > 0),
                });
            }
            Fact::ChargeOrder(o) => {
                let Some(start) = at(&o.start_time) else {
                    continue;
                };
                inputs.sessions.push(kpi::Session {
                    station_id: o.station_id,
                    start,
                    energy_kwh: Decimal::from_str(&o.energy_kwh).unwrap_or_default(),
                });
            }
        }
    }
}
