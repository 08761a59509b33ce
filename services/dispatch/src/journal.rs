//! What dispatch tells reporting (REQ FAULT-8, DEF-5): a fact per change of a work order or a
//! defect, appended to the journal in the change's own transaction.

use chrono::{DateTime, Utc};

use chargemesh_kit::journal::Entry;
use chargemesh_kit::time::opt_timestamp;
use chargemesh_proto::journal::v1 as pb;

use crate::domain::defect::{Defect, DefectClass};
use crate::domain::emergency::Drill;
use crate::domain::plan::MaintenancePlan;
use crate::domain::work_order::{Channel, Outcome, WorkOrder, Zone};
use crate::store::{defect_state, state_name};

/// The fact of a work order as it stands, at its `version`.
pub fn work_order_entry(o: &WorkOrder, version: i64, now: DateTime<Utc>) -> Entry {
    let deadlines = o.deadlines();
    let fact = pb::WorkOrderFact {
        order_id: o.order_id.clone(),
        station_id: o.station_id.clone(),
        pile_id: o.pile_id.clone(),
        connector_id: o.connector_id.clone().unwrap_or_default(),
        channel: match o.channel {
            Channel::Automatic => "automatic",
            Channel::Patrol => "patrol",
            Channel::Phone => "phone",
        }
        .into(),
        zone: match o.zone {
            Zone::MainUrban => "main_urban",
            Zone::Other => "other",
        }
        .into(),
        receive_time: opt_timestamp(Some(o.received_at)),
        arrival_due_time: opt_timestamp(deadlines.arrival_due),
        resolution_due_time: opt_timestamp(Some(deadlines.resolution_due)),
        arrive_time: opt_timestamp(o.arrived_at),
        resolve_time: opt_timestamp(o.resolved_at),
        close_time: opt_timestamp(o.closed_at),
        state: state_name(o.state).into(),
        outcome: match o.outcome {
            Some(Outcome::Fixed) => "fixed",
            Some(Outcome::Unresolved) => "unresolved",
            None => "",
        }
        .into(),
        follow_up_of: o.follow_up_of.clone().unwrap_or_default(),
        fault_code: o.fault_code.clone(),
        description: o.description.clone(),
    };
    Entry::new(
        &o.operator_id,
        "work_order",
        &o.order_id,
        version,
        now,
        pb::fact::Fact::WorkOrder(fact),
    )
}

/// The fact of a defect as it stands, at its `version`.
pub fn defect_entry(d: &Defect, version: i64, now: DateTime<Utc>) -> Entry {
    let fact = pb::DefectFact {
        defect_id: d.defect_id.clone(),
        station_id: d.station_id.clone(),
        pile_id: d.pile_id.clone().unwrap_or_default(),
        defect_class: match d.class {
            DefectClass::Critical => "critical",
            DefectClass::Serious => "serious",
            DefectClass::General => "general",
        }
        .into(),
        state: defect_state(d.state).into(),
        found_time: opt_timestamp(Some(d.found_at)),
        due_time: opt_timestamp(d.due_at),
        eliminate_time: opt_timestamp(d.eliminated_at),
        accept_time: opt_timestamp(d.accepted_at),
        description: d.description.clone(),
    };
    Entry::new(
        &d.operator_id,
        "defect",
        &d.defect_id,
        version,
        now,
        pb::fact::Fact::Defect(fact),
    )
}

/// The fact of a pile's suspension once it is resumed (REQ MON-5).
pub fn downtime_entry(
    operator_id: &str,
    id: &str,
    pile_id: &str,
    suspended_at: DateTime<Utc>,
    resumed_at: DateTime<Utc>,
) -> Entry {
    let fact = pb::DowntimeFact {
        pile_id: pile_id.to_owned(),
        suspend_time: opt_timestamp(Some(suspended_at)),
        resume_time: opt_timestamp(Some(resumed_at)),
    };
    Entry::new(
        operator_id,
        "downtime",
        id,
        1,
        resumed_at,
        pb::fact::Fact::Downtime(fact),
    )
}

/// The fact of a maintenance plan: what of it was carried out when (REQ MAINT-2).
pub fn plan_fact(p: &MaintenancePlan) -> pb::fact::Fact {
    pb::fact::Fact::MaintenancePlan(pb::MaintenancePlanFact {
        plan_id: p.plan_id.clone(),
        station_id: p.station_id.clone(),
        period: p.period.clone(),
        state: format!("{:?}", p.state).to_lowercase(),
        completion_times: p
            .completions
            .iter()
            .filter_map(|c| opt_timestamp(Some(c.completed_at)))
            .collect(),
    })
}

/// The fact of a drill held (REQ EMERG-2).
pub fn drill_fact(d: &Drill) -> pb::fact::Fact {
    pb::fact::Fact::Drill(pb::DrillFact {
        drill_id: d.drill_id.clone(),
        station_id: d.station_id.clone(),
        held_on: d.held_on.format("%Y-%m-%d").to_string(),
        hazard: format!("{:?}", d.hazard),
    })
}
