//! The periodic analyses: the fault analysis (REQ FAULT-8) — every repair order of the period
//! with its times against the limits, faults by code and by pile, repeat faults marked — and the
//! defect statistics (DEF-5) — every defect found in the period or open at its end, per station,
//! with those not eliminated by their due time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use chargemesh_proto::journal::v1 as jpb;

use super::evaluation::late;
use super::period::Span;
use crate::facts::{FactSet, time};

/// A pile with this many faults in a period has a repeat fault to look into.
pub const REPEAT_FAULTS: u32 = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct FaultLine {
    pub order: jpb::WorkOrderFact,
    pub arrival_late: bool,
    pub repair_late: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PileFaults {
    pub station_id: String,
    pub pile_id: String,
    pub faults: u32,
}

impl PileFaults {
    pub fn repeated(&self) -> bool {
        self.faults >= REPEAT_FAULTS
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultAnalysis {
    /// In order of receipt.
    pub lines: Vec<FaultLine>,
    /// New faults per fault code ("" for none), most frequent first.
    pub by_code: Vec<(String, u32)>,
    /// New faults per pile, most first.
    pub by_pile: Vec<PileFaults>,
}

/// REQ FAULT-8: the repair orders received in `period`, judged as of `now`.
pub fn fault_analysis(facts: &FactSet, period: &Span, now: DateTime<Utc>) -> FaultAnalysis {
    let mut lines: Vec<(DateTime<Utc>, FaultLine)> = facts
        .orders
        .iter()
        .filter_map(|o| {
            let received = time(&o.receive_time).filter(|r| period.contains(*r))?;
            let follow_up = !o.follow_up_of.is_empty();
            let arrival_late = !follow_up
                && time(&o.arrival_due_time)
                    .and_then(|due| late(time(&o.arrive_time), due, now))
                    .is_some();
            let repair_late = time(&o.resolution_due_time)
                .and_then(|due| late(time(&o.resolve_time), due, now))
                .is_some();
            Some((
                received,
                FaultLine {
                    order: o.clone(),
                    arrival_late,
                    repair_late,
                },
            ))
        })
        .collect();
    lines.sort_by(|a, b| (a.0, &a.1.order.order_id).cmp(&(b.0, &b.1.order.order_id)));
    let mut by_code: BTreeMap<String, u32> = BTreeMap::new();
    let mut by_pile: BTreeMap<(String, String), u32> = BTreeMap::new();
    for (_, line) in lines
        .iter()
        .filter(|(_, l)| l.order.follow_up_of.is_empty())
    {
        *by_code.entry(line.order.fault_code.clone()).or_default() += 1;
        *by_pile
            .entry((line.order.station_id.clone(), line.order.pile_id.clone()))
            .or_default() += 1;
    }
    let mut by_code: Vec<(String, u32)> = by_code.into_iter().collect();
    by_code.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut by_pile: Vec<PileFaults> = by_pile
        .into_iter()
        .map(|((station_id, pile_id), faults)| PileFaults {
            station_id,
            pile_id,
            faults,
        })
        .collect();
    by_pile.sort_by(|a, b| {
        b.faults
            .cmp(&a.faults)
            .then_with(|| a.pile_id.cmp(&b.pile_id))
    });
    FaultAnalysis {
        lines: lines.into_iter().map(|(_, l)| l).collect(),
        by_code,
        by_pile,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DefectLine {
    pub defect: jpb::DefectFact,
    /// Not eliminated by its due time (as of the period's end, or now if sooner).
    pub overdue: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationDefects {
    pub station_id: String,
    pub opened: u32,
    pub closed: u32,
    pub open_at_end: u32,
    pub overdue: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DefectStatistics {
    pub lines: Vec<DefectLine>,
    pub by_station: Vec<StationDefects>,
}

/// REQ DEF-5: the defects found in `period` or still open at its end.
pub fn defect_statistics(facts: &FactSet, period: &Span, now: DateTime<Utc>) -> DefectStatistics {
    let judged_at = period.end.min(now);
    let mut lines: Vec<(DateTime<Utc>, DefectLine)> = Vec::new();
    let mut stations: BTreeMap<String, StationDefects> = BTreeMap::new();
    for d in &facts.defects {
        let Some(found) = time(&d.found_time).filter(|f| *f < period.end) else {
            continue;
        };
        let accepted = time(&d.accept_time);
        let open_at_end = accepted.is_none_or(|a| a >= period.end);
        let found_in = period.contains(found);
        if !found_in && !open_at_end {
            continue;
        }
        let eliminated = time(&d.eliminate_time).filter(|e| *e < period.end);
        let overdue = time(&d.due_time)
            .and_then(|due| late(eliminated, due, judged_at))
            .is_some();
        let s = stations
            .entry(d.station_id.clone())
            .or_insert_with(|| StationDefects {
                station_id: d.station_id.clone(),
                ..StationDefects::default()
            });
        s.opened += u32::from(found_in);
        s.closed += u32::from(accepted.is_some_and(|a| period.contains(a)));
        s.open_at_end += u32::from(open_at_end);
        s.overdue += u32::from(overdue);
        lines.push((
            found,
            DefectLine {
                defect: d.clone(),
                overdue,
            },
        ));
    }
    lines.sort_by(|a, b| (a.0, &a.1.defect.defect_id).cmp(&(b.0, &b.1.defect.defect_id)));
    DefectStatistics {
        lines: lines.into_iter().map(|(_, l)| l).collect(),
        by_station: stations.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chargemesh_kit::time::to_timestamp;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn ts(s: &str) -> Option<prost_types::Timestamp> {
        Some(to_timestamp(t(s)))
    }

    fn march() -> Span {
        Span::new(t("2026-02-28T16:00:00Z"), t("2026-03-31T16:00:00Z"))
    }

    fn order(id: &str, pile: &str, code: &str, received: &str, arrive: &str) -> jpb::WorkOrderFact {
        let at = t(received);
        jpb::WorkOrderFact {
            order_id: id.into(),
            station_id: "S1".into(),
            pile_id: pile.into(),
            fault_code: code.into(),
            receive_time: Some(to_timestamp(at)),
            arrival_due_time: Some(to_timestamp(at + chrono::Duration::hours(1))),
            resolution_due_time: Some(to_timestamp(at + chrono::Duration::hours(4))),
            arrive_time: ts(arrive),
            resolve_time: Some(to_timestamp(at + chrono::Duration::hours(2))),
            ..Default::default()
        }
    }

    #[test]
    fn fault_8_orders_of_the_period_with_late_ones_marked_and_repeat_faults_by_pile() {
        let facts = FactSet {
            orders: vec![
                order(
                    "WO-2",
                    "P1",
                    "E42",
                    "2026-03-10T00:00:00Z",
                    "2026-03-10T01:20:00Z",
                ),
                order(
                    "WO-1",
                    "P1",
                    "E42",
                    "2026-03-02T00:00:00Z",
                    "2026-03-02T00:30:00Z",
                ),
                order(
                    "WO-3",
                    "P2",
                    "E07",
                    "2026-03-12T00:00:00Z",
                    "2026-03-12T00:30:00Z",
                ),
                order(
                    "WO-0",
                    "P2",
                    "E07",
                    "2026-02-12T00:00:00Z",
                    "2026-02-12T00:30:00Z",
                ),
            ],
            ..FactSet::default()
        };
        let a = fault_analysis(&facts, &march(), t("2026-04-01T00:00:00Z"));
        let ids: Vec<_> = a
            .lines
            .iter()
            .map(|l| (l.order.order_id.as_str(), l.arrival_late, l.repair_late))
            .collect();
        assert_eq!(
            ids,
            [
                ("WO-1", false, false),
                ("WO-2", true, false),
                ("WO-3", false, false)
            ]
        );
        assert_eq!(a.by_code, [("E42".to_owned(), 2), ("E07".to_owned(), 1)]);
        assert_eq!(a.by_pile[0].pile_id, "P1");
        assert!(a.by_pile[0].repeated());
        assert!(!a.by_pile[1].repeated());
    }

    #[test]
    fn def_5_defects_of_the_period_and_those_still_open_with_overdue_ones_counted() {
        let defect = |id: &str,
                      found: &str,
                      due: Option<&str>,
                      eliminated: Option<&str>,
                      accepted: Option<&str>| {
            jpb::DefectFact {
                defect_id: id.into(),
                station_id: "S1".into(),
                defect_class: "critical".into(),
                found_time: ts(found),
                due_time: due.and_then(ts),
                eliminate_time: eliminated.and_then(ts),
                accept_time: accepted.and_then(ts),
                ..Default::default()
            }
        };
        let facts = FactSet {
            defects: vec![
                // Found and closed in time in March.
                defect(
                    "D1",
                    "2026-03-02T00:00:00Z",
                    Some("2026-03-03T00:00:00Z"),
                    Some("2026-03-02T05:00:00Z"),
                    Some("2026-03-02T06:00:00Z"),
                ),
                // Found in February, still open at the end of March and overdue.
                defect(
                    "D2",
                    "2026-02-20T00:00:00Z",
                    Some("2026-02-21T00:00:00Z"),
                    None,
                    None,
                ),
                // Found and closed in February: not March's.
                defect(
                    "D3",
                    "2026-02-02T00:00:00Z",
                    None,
                    Some("2026-02-03T00:00:00Z"),
                    Some("2026-02-03T00:00:00Z"),
                ),
            ],
            ..FactSet::default()
        };
        let s = defect_statistics(&facts, &march(), t("2026-04-05T00:00:00Z"));
        let ids: Vec<_> = s
            .lines
            .iter()
            .map(|l| (l.defect.defect_id.as_str(), l.overdue))
            .collect();
        assert_eq!(ids, [("D2", true), ("D1", false)]);
        assert_eq!(
            s.by_station,
            [StationDefects {
                station_id: "S1".into(),
                opened: 1,
                closed: 1,
                open_at_end: 1,
                overdue: 1
            }]
        );
    }
}
