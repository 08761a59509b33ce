//! Translation between the protobuf messages and the domain types of dispatch.

use chrono::{DateTime, NaiveDate, Utc};

use chargemesh_kit::Error;
use chargemesh_kit::time::{opt_timestamp, to_timestamp};
use chargemesh_proto::dispatch::v1 as pb;

use crate::domain::crew::Employer;
use crate::domain::defect::{Defect, DefectClass, DefectState};
use crate::domain::emergency::{HAZARDS, Hazard};
use crate::domain::incident::{Incident, LEVELS, Level};
use crate::domain::patrol::{Patrol, PatrolKind, PatrolSchedule, Trigger};
use crate::domain::plan::{MaintenancePlan, PlanState};
use crate::domain::staffing::{Post, StationStaffing};
use crate::domain::work_order::{Channel, Outcome, State, WorkOrder, Zone};
use crate::store::StaffRecord;

pub(super) fn order_to_pb(o: &WorkOrder, now: chrono::DateTime<chrono::Utc>) -> pb::WorkOrder {
    let d = o.deadlines();
    pb::WorkOrder {
        operator_id: o.operator_id.clone(),
        order_id: o.order_id.clone(),
        station_id: o.station_id.clone(),
        pile_id: o.pile_id.clone(),
        connector_id: o.connector_id.clone().unwrap_or_default(),
        channel: match o.channel {
            Channel::Automatic => pb::Channel::Automatic,
            Channel::Patrol => pb::Channel::Patrol,
            Channel::Phone => pb::Channel::Phone,
        } as i32,
        zone: match o.zone {
            Zone::MainUrban => pb::Zone::MainUrban,
            Zone::Other => pb::Zone::Other,
        } as i32,
        fault_code: o.fault_code.clone(),
        description: o.description.clone(),
        state: match o.state {
            State::Received => pb::WorkOrderState::Received,
            State::Dispatched => pb::WorkOrderState::Dispatched,
            State::Arrived => pb::WorkOrderState::Arrived,
            State::Resolved => pb::WorkOrderState::Resolved,
            State::Closed => pb::WorkOrderState::Closed,
        } as i32,
        outcome: match o.outcome {
            None => pb::Outcome::Unspecified,
            Some(Outcome::Fixed) => pb::Outcome::Fixed,
            Some(Outcome::Unresolved) => pb::Outcome::Unresolved,
        } as i32,
        receive_time: Some(to_timestamp(o.received_at)),
        dispatch_time: opt_timestamp(o.dispatched_at),
        arrive_time: opt_timestamp(o.arrived_at),
        resolve_time: opt_timestamp(o.resolved_at),
        close_time: opt_timestamp(o.closed_at),
        crew: o.crew.clone(),
        test_record: o.test_record.clone().unwrap_or_default(),
        confirmed_by: o.confirmed_by.clone().unwrap_or_default(),
        suspension_requested: o.suspension_requested,
        follow_up_due_time: opt_timestamp(o.follow_up_due),
        follow_up_order_id: o.follow_up_order_id.clone().unwrap_or_default(),
        follow_up_of: o.follow_up_of.clone().unwrap_or_default(),
        arrival_due_time: opt_timestamp(d.arrival_due),
        resolution_due_time: Some(to_timestamp(d.resolution_due)),
        breaches: o
            .breaches(now)
            .into_iter()
            .map(|b| pb::Breach {
                rule: b.rule.into(),
                what: b.what.into(),
                due_time: Some(to_timestamp(b.due)),
                met_time: Some(to_timestamp(b.at)),
                lateness: prost_types::Duration::try_from(b.lateness.to_std().unwrap_or_default())
                    .ok(),
            })
            .collect(),
    }
}

pub(super) fn defect_to_pb(d: &Defect, now: chrono::DateTime<chrono::Utc>) -> pb::Defect {
    pb::Defect {
        operator_id: d.operator_id.clone(),
        defect_id: d.defect_id.clone(),
        station_id: d.station_id.clone(),
        pile_id: d.pile_id.clone().unwrap_or_default(),
        class: match d.class {
            DefectClass::Critical => pb::DefectClass::Critical,
            DefectClass::Serious => pb::DefectClass::Serious,
            DefectClass::General => pb::DefectClass::General,
        } as i32,
        description: d.description.clone(),
        finder: d.finder.clone(),
        state: match d.state {
            DefectState::Open => pb::DefectState::Open,
            DefectState::Eliminated => pb::DefectState::Eliminated,
            DefectState::Accepted => pb::DefectState::Accepted,
        } as i32,
        found_time: Some(to_timestamp(d.found_at)),
        due_time: opt_timestamp(d.due_at),
        maintenance_plan: d.maintenance_plan.clone().unwrap_or_default(),
        elimination_plan: d.elimination_plan.clone(),
        elimination_record: d.elimination_record.clone().unwrap_or_default(),
        accepted_by: d.accepted_by.clone().unwrap_or_default(),
        reopened: d.reopened,
        enhanced_watch: d.enhanced_watch(),
        overdue: d.overdue(now),
    }
}

pub(super) const POSTS: &[Post] = &[
    Post::StationMaster,
    Post::SafetyOfficer,
    Post::MaintenanceTechnician,
    Post::Monitor,
    Post::ChargingAttendant,
    Post::PatrolStaff,
];

pub(super) fn post_of(v: i32) -> Result<Post, Error> {
    usize::try_from(v)
        .ok()
        .filter(|i| (1..=POSTS.len()).contains(i))
        .map(|i| POSTS[i - 1])
        .ok_or_else(|| Error::invalid("post", "STAFF-1", "must be one of the STAFF-1 posts"))
}

pub(super) fn post_to_pb(p: Post) -> i32 {
    POSTS
        .iter()
        .position(|x| *x == p)
        .map_or(0, |i| i as i32 + 1)
}

pub(super) fn staffing_to_pb(s: &StationStaffing) -> (Vec<pb::PostAssignment>, Vec<i32>) {
    (
        s.assignments
            .iter()
            .map(|a| pb::PostAssignment {
                post: post_to_pb(a.post),
                staff_id: a.staff_id.clone(),
                procedure_ref: a.procedure_ref.clone(),
            })
            .collect(),
        s.missing_posts().into_iter().map(post_to_pb).collect(),
    )
}

pub(super) fn hazard_of(v: i32) -> Result<Hazard, Error> {
    let index = usize::try_from(v)
        .ok()
        .filter(|i| (1..=HAZARDS.len()).contains(i));
    index
        .map(|i| HAZARDS[i - 1])
        .ok_or_else(|| Error::invalid("hazard", "SAFE-1", "must be one of the SAFE-1 hazards"))
}

pub(super) fn hazard_to_pb(h: Hazard) -> i32 {
    HAZARDS
        .iter()
        .position(|x| *x == h)
        .map_or(0, |i| i as i32 + 1)
}

pub(super) fn plan_to_pb(p: &MaintenancePlan) -> pb::MaintenancePlan {
    pb::MaintenancePlan {
        operator_id: p.operator_id.clone(),
        plan_id: p.plan_id.clone(),
        station_id: p.station_id.clone(),
        title: p.title.clone(),
        period: p.period.clone(),
        items: p.items.clone(),
        state: match p.state {
            PlanState::AwaitingApproval => pb::PlanState::AwaitingApproval,
            PlanState::Approved => pb::PlanState::Approved,
        } as i32,
        revision: p.revision,
        drafted_by: p.drafted_by.clone(),
        approved_by: p.approved_by.clone().unwrap_or_default(),
        approved_revision: p.approved_revision.unwrap_or_default(),
        completions: p
            .completions
            .iter()
            .map(|c| pb::MaintenanceCompletion {
                item: c.item.clone(),
                complete_time: Some(to_timestamp(c.completed_at)),
                record: c.record.clone(),
                completed_by: c.by.clone(),
                ledger_change: c.ledger_change.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

pub(super) fn trigger_of(v: i32) -> Result<Trigger, Error> {
    use pb::PatrolTrigger as T;
    Ok(match T::try_from(v) {
        Ok(T::StrongWind) => Trigger::StrongWind,
        Ok(T::Thunderstorm) => Trigger::Thunderstorm,
        Ok(T::IceSnow) => Trigger::IceSnow,
        Ok(T::Hail) => Trigger::Hail,
        Ok(T::Earthquake) => Trigger::Earthquake,
        Ok(T::NewEquipment) => Trigger::NewEquipment,
        Ok(T::ReturnToService) => Trigger::ReturnToService,
        Ok(T::DefectWorsening) => Trigger::DefectWorsening,
        Ok(T::HolidayOrEvent) => Trigger::HolidayOrEvent,
        Ok(T::ReliabilityDrop) => Trigger::ReliabilityDrop,
        _ => {
            return Err(Error::invalid(
                "trigger",
                "PATROL-2",
                "must be one of the PATROL-2 triggers",
            ));
        }
    })
}

pub(super) fn patrol_to_pb(p: &Patrol, now: chrono::DateTime<chrono::Utc>) -> pb::Patrol {
    use pb::PatrolTrigger as T;
    pb::Patrol {
        operator_id: p.operator_id.clone(),
        patrol_id: p.patrol_id.clone(),
        station_id: p.station_id.clone(),
        kind: match p.kind {
            PatrolKind::Normal => "normal",
            PatrolKind::Special => "special",
        }
        .into(),
        trigger: match p.trigger {
            None => T::Unspecified,
            Some(Trigger::StrongWind) => T::StrongWind,
            Some(Trigger::Thunderstorm) => T::Thunderstorm,
            Some(Trigger::IceSnow) => T::IceSnow,
            Some(Trigger::Hail) => T::Hail,
            Some(Trigger::Earthquake) => T::Earthquake,
            Some(Trigger::NewEquipment) => T::NewEquipment,
            Some(Trigger::ReturnToService) => T::ReturnToService,
            Some(Trigger::DefectWorsening) => T::DefectWorsening,
            Some(Trigger::HolidayOrEvent) => T::HolidayOrEvent,
            Some(Trigger::ReliabilityDrop) => T::ReliabilityDrop,
        } as i32,
        area_code: p.area_code.clone(),
        checklist: p.checklist.clone(),
        due_time: Some(to_timestamp(p.due_at)),
        overdue: p.overdue(now),
        done: p.done_at.is_some(),
        failed_items: p.failed_items.clone(),
        schedule_id: p.schedule_id.clone().unwrap_or_default(),
    }
}

pub(super) fn schedule_to_pb(s: &PatrolSchedule, now: DateTime<Utc>) -> pb::PatrolSchedule {
    pb::PatrolSchedule {
        operator_id: s.operator_id.clone(),
        schedule_id: s.schedule_id.clone(),
        station_id: s.station_id.clone(),
        every_days: s.every_days,
        first_due_time: Some(to_timestamp(s.first_due)),
        next_due_time: opt_timestamp(s.next_due(now)),
        create_time: Some(to_timestamp(s.created_at)),
        stop_time: opt_timestamp(s.stopped_at),
    }
}

pub(super) fn staff_to_pb(s: &StaffRecord, today: NaiveDate) -> pb::StaffMember {
    pb::StaffMember {
        operator_id: s.operator_id.clone(),
        staff_id: s.member.staff_id.clone(),
        name: s.member.name.clone(),
        employer: match s.member.employer {
            Employer::Own => pb::Employer::Own,
            Employer::Contractor => pb::Employer::Contractor,
        } as i32,
        electrician_certificate_until: s
            .member
            .electrician_certificate_until
            .map(|d| d.to_string())
            .unwrap_or_default(),
        qualified_until: s
            .member
            .qualified_until
            .map(|d| d.to_string())
            .unwrap_or_default(),
        trainings: s
            .member
            .trainings
            .iter()
            .map(|t| pb::Training {
                course: t.course.clone(),
                completed_on: t.completed_on.to_string(),
                valid_until: t.valid_until.to_string(),
                record_ref: t.record_ref.clone(),
            })
            .collect(),
        retraining_due: s.member.retraining_due(today),
    }
}

/// REQ EMERG-1: an escalation level, which must be set.
pub(super) fn level_of(v: i32) -> Result<Level, Error> {
    usize::try_from(v)
        .ok()
        .filter(|i| (1..=LEVELS.len()).contains(i))
        .map(|i| LEVELS[i - 1])
        .ok_or_else(|| Error::invalid("level", "EMERG-1", "must be one of the escalation levels"))
}

fn level_to_pb(level: Level) -> i32 {
    LEVELS
        .iter()
        .position(|x| *x == level)
        .map_or(0, |i| i as i32 + 1)
}

pub(super) fn incident_to_pb(i: &Incident) -> pb::Incident {
    pb::Incident {
        operator_id: i.operator_id.clone(),
        incident_id: i.incident_id.clone(),
        station_id: i.station_id.clone(),
        pile_id: i.pile_id.clone().unwrap_or_default(),
        hazard: i.hazard.map_or(0, hazard_to_pb),
        description: i.description.clone(),
        open_time: Some(to_timestamp(i.opened_at)),
        opened_by: i.opened_by.clone(),
        contain_time: opt_timestamp(i.contained_at),
        isolate_time: opt_timestamp(i.isolated_at),
        escalations: i
            .escalations
            .iter()
            .map(|e| pb::Escalation {
                level: level_to_pb(e.level),
                to: e.to.clone(),
                report_time: Some(to_timestamp(e.at)),
                reported_by: e.by.clone(),
            })
            .collect(),
        report: i.report.clone().unwrap_or_default(),
        close_time: opt_timestamp(i.closed_at),
        ledger_changes: i.ledger_changes.clone(),
        missing_steps: if i.closed_at.is_some() {
            Vec::new()
        } else {
            i.missing_steps().into_iter().map(str::to_owned).collect()
        },
    }
}
