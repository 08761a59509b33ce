//! The yearly self-evaluation's non-conformity list (REQ EVAL-1): every rule of the standard the
//! year's records show broken, each with the record that proves it, and nothing that was on time.
//!
//! - FAULT-5: an arrival after its 1 h / 2 h limit, or none by it; a repair after 4 hours, or
//!   none by then. FAULT-6: a follow-up not repaired within its 5 days. Orders received in an
//!   approved exemption (MON-9) are not judged.
//! - DEF-3: a critical or serious defect not eliminated by its due time.
//! - CMP-1: a complaint not answered within 24 hours.
//! - MAINT-2: a station with no maintenance carried out in the year (judged once the year is
//!   over).
//! - EMERG-2: a station that went more than six months without a drill (the first six months of
//!   the year are allowed for a station with no drill before it).
//! - BASE-5: a charging session on a pile whose meter was not verified (expired or missing
//!   metrology certificate), which metering kept but never billed.

use std::collections::BTreeMap;

use chrono::{DateTime, Months, Utc};

use chargemesh_proto::journal::v1 as jpb;

use super::period::Span;
use crate::facts::{FactSet, drill_day, time};

/// A rule the records show broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonConformity {
    pub rule: &'static str,
    pub title: &'static str,
    pub station_id: String,
    pub record_kind: &'static str,
    pub record_id: String,
    pub at: DateTime<Utc>,
    pub detail: String,
}

/// REQ EMERG-2: how long a station may go without a drill.
pub const DRILL_EVERY: Months = Months::new(6);

fn minutes(d: chrono::Duration) -> i64 {
    d.num_minutes()
}

/// A limit judged as of `now`: `Some(lateness)` when what was due by `due` came later, or has
/// not come and `due` has passed.
pub(crate) fn late(
    done: Option<DateTime<Utc>>,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<chrono::Duration> {
    match done {
        Some(at) if at > due => Some(at - due),
        None if now > due => Some(now - due),
        _ => None,
    }
}

fn orders(
    facts: &FactSet,
    year: &Span,
    now: DateTime<Utc>,
    exempt: &BTreeMap<String, Vec<Span>>,
    out: &mut Vec<NonConformity>,
) {
    for o in &facts.orders {
        let Some(received) = time(&o.receive_time) else {
            continue;
        };
        if !year.contains(received)
            || exempt
                .get(&o.station_id)
                .is_some_and(|spans| spans.iter().any(|s| s.contains(received)))
        {
            continue;
        }
        let record = |rule, title, at, detail| NonConformity {
            rule,
            title,
            station_id: o.station_id.clone(),
            record_kind: "work_order",
            record_id: o.order_id.clone(),
            at,
            detail,
        };
        let follow_up = !o.follow_up_of.is_empty();
        if let Some(due) = time(&o.arrival_due_time).filter(|_| !follow_up)
            && let Some(lateness) = late(time(&o.arrive_time), due, now)
        {
            let limit = if o.zone == "main_urban" {
                "1 hour"
            } else {
                "2 hours"
            };
            out.push(record(
                "FAULT-5",
                "repair crew arrived late",
                due,
                match time(&o.arrive_time) {
                    Some(_) => format!("arrived {} min after the {limit} limit", minutes(lateness)),
                    None => format!(
                        "not arrived {} min after the {limit} limit",
                        minutes(lateness)
                    ),
                },
            ));
        }
        if let Some(due) = time(&o.resolution_due_time)
            && let Some(lateness) = late(time(&o.resolve_time), due, now)
        {
            let (rule, title, limit) = if follow_up {
                (
                    "FAULT-6",
                    "follow-up repair not done within 5 days",
                    "5-day",
                )
            } else {
                ("FAULT-5", "repair not done within 4 hours", "4-hour")
            };
            out.push(record(
                rule,
                title,
                due,
                format!("{} min past the {limit} limit", minutes(lateness)),
            ));
        }
    }
}

fn defects(facts: &FactSet, year: &Span, now: DateTime<Utc>, out: &mut Vec<NonConformity>) {
    for d in &facts.defects {
        let (Some(found), Some(due)) = (time(&d.found_time), time(&d.due_time)) else {
            continue;
        };
        if !year.contains(found) {
            continue;
        }
        if let Some(lateness) = late(time(&d.eliminate_time), due, now) {
            out.push(NonConformity {
                rule: "DEF-3",
                title: "defect not eliminated in time",
                station_id: d.station_id.clone(),
                record_kind: "defect",
                record_id: d.defect_id.clone(),
                at: due,
                detail: format!(
                    "{} defect {} min past its due time",
                    d.defect_class,
                    minutes(lateness)
                ),
            });
        }
    }
}

fn complaints(facts: &FactSet, year: &Span, now: DateTime<Utc>, out: &mut Vec<NonConformity>) {
    for c in facts.complaints.iter().filter(|c| c.kind == "complaint") {
        let (Some(received), Some(due)) = (time(&c.receive_time), time(&c.response_due_time))
        else {
            continue;
        };
        if !year.contains(received) {
            continue;
        }
        if let Some(lateness) = late(time(&c.acknowledge_time), due, now) {
            out.push(NonConformity {
                rule: "CMP-1",
                title: "complaint not answered within 24 hours",
                station_id: c.station_id.clone(),
                record_kind: "complaint",
                record_id: c.complaint_id.clone(),
                at: due,
                detail: format!("answered {} min after the 24-hour limit", minutes(lateness)),
            });
        }
    }
}

fn maintenance(
    facts: &FactSet,
    stations: &[String],
    year: &Span,
    now: DateTime<Utc>,
    out: &mut Vec<NonConformity>,
) {
    if now < year.end {
        return;
    }
    for station in stations {
        let done = facts
            .plans
            .iter()
            .filter(|p| &p.station_id == station)
            .flat_map(|p| p.completion_times.iter())
            .filter_map(chargemesh_kit::time::from_timestamp)
            .any(|t| year.contains(t));
        if !done {
            out.push(NonConformity {
                rule: "MAINT-2",
                title: "no maintenance in the year",
                station_id: station.clone(),
                record_kind: "station",
                record_id: station.clone(),
                at: year.end,
                detail: "no maintenance item was carried out at the station in the year".into(),
            });
        }
    }
}

fn drills(
    facts: &FactSet,
    stations: &[String],
    year: &Span,
    now: DateTime<Utc>,
    out: &mut Vec<NonConformity>,
) {
    let until = year.end.min(now);
    for station in stations {
        let mut held: Vec<(DateTime<Utc>, &jpb::DrillFact)> = facts
            .drills
            .iter()
            .filter(|d| &d.station_id == station)
            .filter_map(|d| drill_day(d).map(|day| (day, d)))
            .collect();
        held.sort_by_key(|(day, _)| *day);
        let before = held.iter().rev().find(|(day, _)| *day < year.start);
        let (mut last, mut last_id) = match before {
            Some((day, d)) => (*day, Some(d.drill_id.clone())),
            None => (year.start, None),
        };
        let mut judge =
            |due: DateTime<Utc>, next: Option<DateTime<Utc>>, last_id: &Option<String>| {
                let end = next.unwrap_or(until);
                if due < end && due < until {
                    out.push(NonConformity {
                        rule: "EMERG-2",
                        title: "no emergency drill within six months",
                        station_id: station.clone(),
                        record_kind: if last_id.is_some() {
                            "drill"
                        } else {
                            "station"
                        },
                        record_id: last_id.clone().unwrap_or_else(|| station.clone()),
                        at: due,
                        detail: match next {
                            Some(n) => {
                                format!("the next drill came {} days late", (n - due).num_days())
                            }
                            None => format!(
                                "none held for {} days past the limit",
                                (until - due).num_days()
                            ),
                        },
                    });
                }
            };
        for (day, d) in held.iter().filter(|(day, _)| year.contains(*day)) {
            let due = last.checked_add_months(DRILL_EVERY).unwrap_or(last);
            judge(due, Some(*day), &last_id);
            last = *day;
            last_id = Some(d.drill_id.clone());
        }
        let due = last.checked_add_months(DRILL_EVERY).unwrap_or(last);
        judge(due, None, &last_id);
    }
}

fn unverified(facts: &FactSet, year: &Span, out: &mut Vec<NonConformity>) {
    for o in facts.charge_orders.iter().filter(|o| !o.billable) {
        let Some(start) = time(&o.start_time) else {
            continue;
        };
        if year.contains(start) && o.not_billable_reason.contains("BASE-5") {
            out.push(NonConformity {
                rule: "BASE-5",
                title: "charging on an unverified meter",
                station_id: o.station_id.clone(),
                record_kind: "charge_order",
                record_id: o.order_id.clone(),
                at: start,
                detail: format!("pile {}: {}", o.pile_id, o.not_billable_reason),
            });
        }
    }
}

/// REQ EVAL-1: the non-conformities of `stations` in `year` as of `now`, in time order.
pub fn non_conformities(
    facts: &FactSet,
    stations: &[String],
    year: &Span,
    now: DateTime<Utc>,
    exempt: &BTreeMap<String, Vec<Span>>,
) -> Vec<NonConformity> {
    let mut out = Vec::new();
    orders(facts, year, now, exempt, &mut out);
    defects(facts, year, now, &mut out);
    complaints(facts, year, now, &mut out);
    maintenance(facts, stations, year, now, &mut out);
    drills(facts, stations, year, now, &mut out);
    unverified(facts, year, &mut out);
    out.sort_by(|a, b| {
        (a.at, a.rule, &a.station_id, &a.record_id).cmp(&(
            b.at,
            b.rule,
            &b.station_id,
            &b.record_id,
        ))
    });
    out
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

    fn year() -> Span {
        Span::new(t("2025-12-31T16:00:00Z"), t("2026-12-31T16:00:00Z"))
    }

    fn order(
        id: &str,
        received: &str,
        arrive: Option<&str>,
        resolve: Option<&str>,
    ) -> jpb::WorkOrderFact {
        let at = t(received);
        jpb::WorkOrderFact {
            order_id: id.into(),
            station_id: "S1".into(),
            zone: "main_urban".into(),
            receive_time: Some(to_timestamp(at)),
            arrival_due_time: Some(to_timestamp(at + chrono::Duration::hours(1))),
            resolution_due_time: Some(to_timestamp(at + chrono::Duration::hours(4))),
            arrive_time: arrive.and_then(ts),
            resolve_time: resolve.and_then(ts),
            ..Default::default()
        }
    }

    fn drill(id: &str, day: &str) -> jpb::DrillFact {
        jpb::DrillFact {
            drill_id: id.into(),
            station_id: "S1".into(),
            held_on: day.into(),
            hazard: "ElectricalFire".into(),
        }
    }

    fn rules(list: &[NonConformity]) -> Vec<(&'static str, &str)> {
        list.iter()
            .map(|n| (n.rule, n.record_id.as_str()))
            .collect()
    }

    #[test]
    fn eval_1_a_late_arrival_is_listed_with_its_order_and_orders_on_time_are_not() {
        let facts = FactSet {
            orders: vec![
                order(
                    "WO-ON",
                    "2026-03-05T00:00:00Z",
                    Some("2026-03-05T00:50:00Z"),
                    Some("2026-03-05T03:00:00Z"),
                ),
                order(
                    "WO-LATE",
                    "2026-04-05T00:00:00Z",
                    Some("2026-04-05T01:30:00Z"),
                    Some("2026-04-05T03:00:00Z"),
                ),
                order(
                    "WO-EXEMPT",
                    "2026-05-05T00:00:00Z",
                    Some("2026-05-05T03:00:00Z"),
                    Some("2026-05-05T03:30:00Z"),
                ),
                order("WO-LAST-YEAR", "2025-06-05T00:00:00Z", None, None),
            ],
            drills: vec![
                drill("D1", "2026-01-10"),
                drill("D2", "2026-06-10"),
                drill("D3", "2026-11-10"),
            ],
            ..FactSet::default()
        };
        let exempt = BTreeMap::from([(
            "S1".to_owned(),
            vec![Span::new(
                t("2026-05-04T00:00:00Z"),
                t("2026-05-06T00:00:00Z"),
            )],
        )]);
        let list = non_conformities(&facts, &[], &year(), t("2026-12-01T00:00:00Z"), &exempt);
        assert_eq!(rules(&list), [("FAULT-5", "WO-LATE")]);
        assert!(list[0].detail.contains("30 min"), "{}", list[0].detail);
        assert_eq!(list[0].at, t("2026-04-05T01:00:00Z"));
    }

    #[test]
    fn emerg_2_a_gap_of_more_than_six_months_between_drills_is_overdue() {
        let facts = FactSet {
            drills: vec![
                drill("D0", "2025-11-20"),
                drill("D1", "2026-02-01"),
                drill("D2", "2026-09-15"),
            ],
            ..FactSet::default()
        };
        let stations = ["S1".to_owned()];
        let list = non_conformities(
            &facts,
            &stations,
            &year(),
            t("2026-12-01T00:00:00Z"),
            &BTreeMap::new(),
        );
        // D1 was within six months of D0; D2 came six weeks after D1's six months ran out.
        assert_eq!(rules(&list), [("EMERG-2", "D1")]);
        assert!(list[0].detail.contains("days late"), "{}", list[0].detail);
        // With no drill at all, the first six months are allowed and then it is overdue.
        let none = non_conformities(
            &FactSet::default(),
            &stations,
            &year(),
            t("2026-08-01T00:00:00Z"),
            &BTreeMap::new(),
        );
        assert_eq!(rules(&none), [("EMERG-2", "S1")]);
        assert!(
            non_conformities(
                &FactSet::default(),
                &stations,
                &year(),
                t("2026-05-01T00:00:00Z"),
                &BTreeMap::new()
            )
            .is_empty()
        );
    }

    #[test]
    fn maint_2_cmp_1_def_3_base_5_each_broken_rule_is_listed_once() {
        let facts = FactSet {
            plans: vec![jpb::MaintenancePlanFact {
                plan_id: "MP-1".into(),
                station_id: "S1".into(),
                completion_times: vec![to_timestamp(t("2026-06-01T00:00:00Z"))],
                ..Default::default()
            }],
            complaints: vec![
                jpb::ComplaintFact {
                    complaint_id: "CP-LATE".into(),
                    station_id: "S1".into(),
                    kind: "complaint".into(),
                    receive_time: ts("2026-03-01T00:00:00Z"),
                    response_due_time: ts("2026-03-02T00:00:00Z"),
                    acknowledge_time: ts("2026-03-02T01:00:00Z"),
                    ..Default::default()
                },
                jpb::ComplaintFact {
                    complaint_id: "CP-ON".into(),
                    station_id: "S1".into(),
                    kind: "complaint".into(),
                    receive_time: ts("2026-03-01T00:00:00Z"),
                    response_due_time: ts("2026-03-02T00:00:00Z"),
                    acknowledge_time: ts("2026-03-01T10:00:00Z"),
                    ..Default::default()
                },
            ],
            defects: vec![jpb::DefectFact {
                defect_id: "DF-1".into(),
                station_id: "S1".into(),
                defect_class: "critical".into(),
                found_time: ts("2026-03-01T00:00:00Z"),
                due_time: ts("2026-03-02T00:00:00Z"),
                eliminate_time: ts("2026-03-03T00:00:00Z"),
                ..Default::default()
            }],
            charge_orders: vec![
                jpb::ChargeOrderFact {
                    order_id: "CO-1".into(),
                    station_id: "S2".into(),
                    pile_id: "P2".into(),
                    start_time: ts("2026-03-04T00:00:00Z"),
                    billable: false,
                    not_billable_reason:
                        "dc certificate JJG-1 expired on 2026-02-28 (REQ BASE-5, EQ-4)".into(),
                    ..Default::default()
                },
                jpb::ChargeOrderFact {
                    order_id: "CO-2".into(),
                    station_id: "S2".into(),
                    start_time: ts("2026-03-04T00:00:00Z"),
                    billable: false,
                    not_billable_reason: "pile is suspended since 2026-03-01 (REQ MON-4, EQ-3)"
                        .into(),
                    ..Default::default()
                },
            ],
            drills: vec![
                drill("D1", "2026-01-10"),
                drill("D2", "2026-06-10"),
                drill("D3", "2026-11-10"),
            ],
            ..FactSet::default()
        };
        let stations = ["S1".to_owned(), "S2".to_owned()];
        let mut s2_drills = facts.clone();
        s2_drills.drills.extend(
            ["D4", "D5", "D6"]
                .iter()
                .zip(["2026-01-10", "2026-06-10", "2026-11-10"])
                .map(|(id, day)| jpb::DrillFact {
                    station_id: "S2".into(),
                    ..drill(id, day)
                }),
        );
        let list = non_conformities(
            &s2_drills,
            &stations,
            &year(),
            t("2027-01-05T00:00:00Z"),
            &BTreeMap::new(),
        );
        assert_eq!(
            rules(&list),
            [
                ("CMP-1", "CP-LATE"),
                ("DEF-3", "DF-1"),
                ("BASE-5", "CO-1"),
                ("MAINT-2", "S2"),
            ]
        );
        // Mid-year, yearly maintenance is not judged yet.
        let midyear = non_conformities(
            &s2_drills,
            &stations,
            &year(),
            t("2026-07-05T00:00:00Z"),
            &BTreeMap::new(),
        );
        assert!(midyear.iter().all(|n| n.rule != "MAINT-2"));
    }
}
