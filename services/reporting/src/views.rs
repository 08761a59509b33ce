//! The analyses and the self-evaluation as their protobuf messages.

use chargemesh_kit::time::{opt_timestamp, to_timestamp};
use chargemesh_proto::kpi::v1 as kpb;
use chargemesh_proto::reporting::v1 as pb;

use crate::domain::analysis::{DefectStatistics, FaultAnalysis};
use crate::domain::evaluation::NonConformity;
use crate::report::{self, Report};

fn total(r: &Report) -> Option<kpb::Kpis> {
    r.rows.last().map(|row| report::kpis_to_pb(&row.kpis))
}

fn operator(r: &Report) -> String {
    r.rows
        .last()
        .map(|row| row.operator_id.clone())
        .unwrap_or_default()
}

pub fn fault_analysis(r: &Report, a: &FaultAnalysis) -> pb::FaultAnalysis {
    let kpi = report::to_pb(r);
    pb::FaultAnalysis {
        operator_id: operator(r),
        period_start: r.period.label.clone(),
        start_time: Some(to_timestamp(r.period.start)),
        end_time: Some(to_timestamp(r.period.end)),
        summary: total(r),
        orders: a
            .lines
            .iter()
            .map(|l| {
                let o = &l.order;
                pb::FaultLine {
                    order_id: o.order_id.clone(),
                    station_id: o.station_id.clone(),
                    pile_id: o.pile_id.clone(),
                    connector_id: o.connector_id.clone(),
                    channel: o.channel.clone(),
                    fault_code: o.fault_code.clone(),
                    description: o.description.clone(),
                    receive_time: o.receive_time,
                    arrive_time: o.arrive_time,
                    resolve_time: o.resolve_time,
                    close_time: o.close_time,
                    state: o.state.clone(),
                    outcome: o.outcome.clone(),
                    follow_up_of: o.follow_up_of.clone(),
                    arrival_late: l.arrival_late,
                    repair_late: l.repair_late,
                }
            })
            .collect(),
        by_fault_code: a
            .by_code
            .iter()
            .map(|(key, count)| pb::CodeCount {
                key: key.clone(),
                count: *count,
            })
            .collect(),
        by_pile: a
            .by_pile
            .iter()
            .map(|p| pb::PileFaults {
                station_id: p.station_id.clone(),
                pile_id: p.pile_id.clone(),
                faults: p.faults,
                repeated_fault: p.repeated(),
            })
            .collect(),
        exemptions_applied: kpi.exemptions_applied,
    }
}

pub fn defect_statistics(r: &Report, s: &DefectStatistics) -> pb::DefectStatistics {
    pb::DefectStatistics {
        operator_id: operator(r),
        period_start: r.period.label.clone(),
        start_time: Some(to_timestamp(r.period.start)),
        end_time: Some(to_timestamp(r.period.end)),
        by_class: total(r).map(|k| k.defects).unwrap_or_default(),
        by_station: s
            .by_station
            .iter()
            .map(|d| pb::StationDefects {
                station_id: d.station_id.clone(),
                opened: d.opened,
                closed: d.closed,
                open_at_end: d.open_at_end,
                overdue: d.overdue,
            })
            .collect(),
        defects: s
            .lines
            .iter()
            .map(|l| {
                let d = &l.defect;
                pb::DefectLine {
                    defect_id: d.defect_id.clone(),
                    station_id: d.station_id.clone(),
                    pile_id: d.pile_id.clone(),
                    defect_class: d.defect_class.clone(),
                    state: d.state.clone(),
                    found_time: d.found_time,
                    due_time: d.due_time,
                    eliminate_time: d.eliminate_time,
                    accept_time: d.accept_time,
                    overdue: l.overdue,
                    description: d.description.clone(),
                }
            })
            .collect(),
    }
}

pub fn non_conformity(n: &NonConformity) -> pb::NonConformity {
    pb::NonConformity {
        rule: n.rule.into(),
        title: n.title.into(),
        station_id: n.station_id.clone(),
        record_kind: n.record_kind.into(),
        record_id: n.record_id.clone(),
        breach_time: opt_timestamp(Some(n.at)),
        detail: n.detail.clone(),
    }
}

pub fn self_evaluation(r: &Report, list: &[NonConformity]) -> pb::SelfEvaluation {
    let kpi = report::to_pb(r);
    pb::SelfEvaluation {
        operator_id: operator(r),
        year: r.period.label.clone(),
        start_time: kpi.start_time,
        end_time: kpi.end_time,
        kpis: kpi.rows,
        non_conformities: list.iter().map(non_conformity).collect(),
        exemptions_applied: kpi.exemptions_applied,
        year_complete: r.computed_at >= r.period.end,
        compute_time: kpi.compute_time,
    }
}
