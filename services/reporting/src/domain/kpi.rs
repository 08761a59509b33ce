//! The KPI formulas, over plain facts of one period. Every figure is a count or a sum a reader
//! can redo by hand from the facts; each share comes with the counts it is made of.
//!
//! - Availability (REQ MON-1): connector time not offline or faulted over connector time
//!   observed, from the status history; time before a connector's first known state is not
//!   observed, and exempted time (MON-9) is left out of both.
//! - Faults (FAULT-4): work orders for new faults received in the period (a FAULT-6 follow-up is
//!   the same fault and is not counted again).
//! - Arrival and repair (FAULT-5): mean time from receipt to arrival and to the on-site repair;
//!   the share of orders that met their arrival limit (1 h main urban, 2 h elsewhere) and the
//!   4-hour repair limit, among orders whose limit was met or has passed. Orders received in an
//!   exempted period are left out of the times and shares.
//! - Suspension hours (MON-5): suspended pile time within the period.
//! - Defects (DEF-3, DEF-5): found and accepted in the period per class; of those accepted, the
//!   share eliminated by their due time (general defects carry none and are not judged).
//! - Complaints (CMP-1, EVAL-2): complaints received; the share answered within 24 hours among
//!   those answered or past due; the mean revisit score.
//! - Sessions and energy: charging sessions started in the period and their metered energy.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::period::{Span, covered_seconds};

/// A connector's availability over time: its state before the period (if known) and each change
/// in the period, in order; `true` is available (neither offline nor faulted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorHistory {
    pub station_id: String,
    pub initial: Option<bool>,
    pub changes: Vec<(DateTime<Utc>, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkOrder {
    pub station_id: String,
    pub received_at: DateTime<Utc>,
    pub arrival_due: Option<DateTime<Utc>>,
    pub resolution_due: DateTime<Utc>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub follow_up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    pub station_id: String,
    /// "critical", "serious" or "general".
    pub class: String,
    pub found_at: DateTime<Utc>,
    pub due: Option<DateTime<Utc>>,
    pub eliminated_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downtime {
    pub station_id: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complaint {
    pub station_id: String,
    /// Praise and suggestions are not complaints.
    pub is_complaint: bool,
    pub received_at: DateTime<Utc>,
    pub response_due: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub satisfaction: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub station_id: String,
    pub start: DateTime<Utc>,
    pub energy_kwh: Decimal,
}

/// Everything one report is computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs {
    pub connectors: Vec<ConnectorHistory>,
    pub orders: Vec<WorkOrder>,
    pub defects: Vec<Defect>,
    pub downtimes: Vec<Downtime>,
    pub complaints: Vec<Complaint>,
    pub sessions: Vec<Session>,
    /// Approved exemptions per station, merged.
    pub exempt: BTreeMap<String, Vec<Span>>,
}

/// The defect classes, in the order reports list them.
pub const DEFECT_CLASSES: [&str; 3] = ["critical", "serious", "general"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefectKpis {
    pub class: &'static str,
    pub opened: u32,
    pub closed: u32,
    pub closed_on_time: u32,
    pub closed_judged: u32,
}

/// A count of judged items and of those on time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Judged {
    pub judged: u32,
    pub on_time: u32,
}

impl Judged {
    fn add(&mut self, on_time: bool) {
        self.judged += 1;
        self.on_time += u32::from(on_time);
    }

    /// The share on time; 0 when nothing was judged.
    pub fn share(&self) -> f64 {
        share(u64::from(self.on_time), u64::from(self.judged))
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kpis {
    pub observed_seconds: i64,
    pub available_seconds: i64,
    pub exempted_seconds: i64,
    pub sessions: u32,
    pub energy_kwh: Decimal,
    pub faults: u32,
    /// Mean seconds, `None` when there is nothing to average.
    pub mean_seconds_to_arrive: Option<i64>,
    pub mean_seconds_to_repair: Option<i64>,
    pub arrivals: Judged,
    pub repairs: Judged,
    pub exempted_work_orders: u32,
    pub suspension_seconds: i64,
    pub defects: Vec<DefectKpis>,
    pub complaints: u32,
    pub responses: Judged,
    pub satisfaction_answers: u32,
    pub satisfaction_sum: u32,
}

impl Kpis {
    pub fn availability(&self) -> f64 {
        share(
            u64::try_from(self.available_seconds).unwrap_or(0),
            u64::try_from(self.observed_seconds).unwrap_or(0),
        )
    }

    pub fn satisfaction_mean(&self) -> f64 {
        if self.satisfaction_answers == 0 {
            0.0
        } else {
            f64::from(self.satisfaction_sum) / f64::from(self.satisfaction_answers)
        }
    }

    pub fn suspension_hours(&self) -> f64 {
        self.suspension_seconds as f64 / 3600.0
    }
}

fn mean(total: i64, n: i64) -> Option<i64> {
    (n > 0).then(|| total.div_euclid(n))
}

/// REQ MON-1, MON-9: one connector's observed and available seconds in `window`, with the
/// exempted seconds left out.
fn availability(c: &ConnectorHistory, window: &Span, exempt: &[Span]) -> (i64, i64, i64) {
    let (mut observed, mut available, mut exempted) = (0, 0, 0);
    let mut state = c.initial;
    let mut from = window.start;
    let mut changes = c
        .changes
        .iter()
        .filter(|(at, _)| *at < window.end)
        .peekable();
    loop {
        let next = changes.peek().map(|(at, _)| (*at).max(window.start));
        let to = next.unwrap_or(window.end).min(window.end);
        if let Some(up) = state {
            let span = Span::new(from, to);
            let excluded = covered_seconds(&span, exempt);
            let counted = span.seconds() - excluded;
            observed += counted;
            exempted += excluded;
            if up {
                available += counted;
            }
        }
        match changes.next() {
            Some((at, up)) => {
                from = (*at).max(window.start);
                state = Some(*up);
            }
            None => break,
        }
    }
    (observed, available, exempted)
}

/// The KPIs of the stations `include` selects, over `period`, as of `now`.
pub fn compute(
    inputs: &Inputs,
    period: &Span,
    now: DateTime<Utc>,
    include: impl Fn(&str) -> bool,
) -> Kpis {
    let none: Vec<Span> = Vec::new();
    let exempt = |station: &str| inputs.exempt.get(station).unwrap_or(&none);
    let in_period = |at: DateTime<Utc>| period.contains(at);
    let mut k = Kpis::default();
    // Availability only counts time that has passed.
    let window = Span::new(period.start, period.end.min(now));
    for c in inputs.connectors.iter().filter(|c| include(&c.station_id)) {
        let (observed, available, exempted) = availability(c, &window, exempt(&c.station_id));
        k.observed_seconds += observed;
        k.available_seconds += available;
        k.exempted_seconds += exempted;
    }
    for s in inputs
        .sessions
        .iter()
        .filter(|s| include(&s.station_id) && in_period(s.start))
    {
        k.sessions += 1;
        k.energy_kwh += s.energy_kwh;
    }
    let (mut arrive_total, mut arrive_n, mut repair_total, mut repair_n) = (0, 0, 0, 0);
    for o in inputs
        .orders
        .iter()
        .filter(|o| include(&o.station_id) && in_period(o.received_at) && !o.follow_up)
    {
        k.faults += 1;
        if exempt(&o.station_id)
            .iter()
            .any(|span| span.contains(o.received_at))
        {
            k.exempted_work_orders += 1;
            continue;
        }
        if let Some(arrived) = o.arrived_at {
            arrive_total += (arrived - o.received_at).num_seconds();
            arrive_n += 1;
        }
        if let Some(resolved) = o.resolved_at {
            repair_total += (resolved - o.received_at).num_seconds();
            repair_n += 1;
        }
        if let Some(due) = o.arrival_due {
            match o.arrived_at {
                Some(at) => k.arrivals.add(at <= due),
                None if now > due => k.arrivals.add(false),
                None => {}
            }
        }
        match o.resolved_at {
            Some(at) => k.repairs.add(at <= o.resolution_due),
            None if now > o.resolution_due => k.repairs.add(false),
            None => {}
        }
    }
    k.mean_seconds_to_arrive = mean(arrive_total, arrive_n);
    k.mean_seconds_to_repair = mean(repair_total, repair_n);
    k.suspension_seconds = inputs
        .downtimes
        .iter()
        .filter(|d| include(&d.station_id))
        .filter_map(|d| d.span.intersect(period))
        .map(|s| s.seconds())
        .sum();
    k.defects = DEFECT_CLASSES
        .iter()
        .map(|class| {
            let mut d = DefectKpis {
                class,
                ..DefectKpis::default()
            };
            for defect in inputs
                .defects
                .iter()
                .filter(|x| x.class == *class && include(&x.station_id))
            {
                d.opened += u32::from(in_period(defect.found_at));
                if defect.accepted_at.is_some_and(in_period) {
                    d.closed += 1;
                    if let (Some(due), Some(done)) = (defect.due, defect.eliminated_at) {
                        d.closed_judged += 1;
                        d.closed_on_time += u32::from(done <= due);
                    }
                }
            }
            d
        })
        .collect();
    for c in inputs
        .complaints
        .iter()
        .filter(|c| c.is_complaint && include(&c.station_id) && in_period(c.received_at))
    {
        k.complaints += 1;
        match c.acknowledged_at {
            Some(at) => k.responses.add(at <= c.response_due),
            None if now > c.response_due => k.responses.add(false),
            None => {}
        }
        if let Some(score) = c.satisfaction {
            k.satisfaction_answers += 1;
            k.satisfaction_sum += u32::from(score);
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn day() -> Span {
        Span::new(t("2026-03-04T16:00:00Z"), t("2026-03-05T16:00:00Z"))
    }

    fn all(_: &str) -> bool {
        true
    }

    fn order(received: &str, arrive_mins: Option<i64>, repair_mins: Option<i64>) -> WorkOrder {
        let at = t(received);
        WorkOrder {
            station_id: "S1".into(),
            received_at: at,
            arrival_due: Some(at + Duration::hours(1)),
            resolution_due: at + Duration::hours(4),
            arrived_at: arrive_mins.map(|m| at + Duration::minutes(m)),
            resolved_at: repair_mins.map(|m| at + Duration::minutes(m)),
            follow_up: false,
        }
    }

    #[test]
    fn mon_1_availability_is_time_not_offline_or_faulted_over_time_observed() {
        let inputs = Inputs {
            connectors: vec![
                // Up all day but 6 hours faulted.
                ConnectorHistory {
                    station_id: "S1".into(),
                    initial: Some(true),
                    changes: vec![
                        (t("2026-03-05T00:00:00Z"), false),
                        (t("2026-03-05T06:00:00Z"), true),
                    ],
                },
                // First heard of at noon local (04:00 UTC): 12 hours observed, all available.
                ConnectorHistory {
                    station_id: "S2".into(),
                    initial: None,
                    changes: vec![(t("2026-03-05T04:00:00Z"), true)],
                },
            ],
            ..Inputs::default()
        };
        let end = t("2026-03-06T00:00:00Z");
        let k = compute(&inputs, &day(), end, all);
        assert_eq!(k.observed_seconds, (24 + 12) * 3600);
        assert_eq!(k.available_seconds, (18 + 12) * 3600);
        assert!((k.availability() - 30.0 / 36.0).abs() < 1e-12);
        let s1 = compute(&inputs, &day(), end, |s| s == "S1");
        assert_eq!(s1.available_seconds, 18 * 3600);
        // Mid-day, only the time so far counts.
        let midday = compute(&inputs, &day(), t("2026-03-05T04:00:00Z"), |s| s == "S1");
        assert_eq!(midday.observed_seconds, 12 * 3600);
        assert_eq!(midday.available_seconds, 8 * 3600);
    }

    #[test]
    fn mon_9_an_exempted_period_leaves_its_time_and_orders_out_and_nothing_else() {
        let exempt_span = Span::new(t("2026-03-05T00:00:00Z"), t("2026-03-05T06:00:00Z"));
        let inputs = Inputs {
            connectors: vec![
                ConnectorHistory {
                    station_id: "S1".into(),
                    initial: Some(true),
                    changes: vec![
                        (t("2026-03-05T00:00:00Z"), false),
                        (t("2026-03-05T06:00:00Z"), true),
                    ],
                },
                ConnectorHistory {
                    station_id: "S2".into(),
                    initial: Some(true),
                    changes: vec![],
                },
            ],
            orders: vec![
                order("2026-03-05T01:00:00Z", Some(150), None),
                WorkOrder {
                    station_id: "S2".into(),
                    ..order("2026-03-05T01:00:00Z", Some(150), Some(200))
                },
            ],
            exempt: BTreeMap::from([("S1".to_owned(), vec![exempt_span])]),
            ..Inputs::default()
        };
        let now = t("2026-03-06T00:00:00Z");
        let s1 = compute(&inputs, &day(), now, |s| s == "S1");
        assert_eq!(s1.observed_seconds, 18 * 3600);
        assert_eq!(s1.available_seconds, 18 * 3600);
        assert_eq!(s1.exempted_seconds, 6 * 3600);
        assert_eq!((s1.faults, s1.exempted_work_orders), (1, 1));
        assert_eq!(s1.arrivals, Judged::default());
        assert_eq!(s1.mean_seconds_to_arrive, None);
        // S2 is untouched by S1's exemption.
        let s2 = compute(&inputs, &day(), now, |s| s == "S2");
        assert_eq!(s2.observed_seconds, 24 * 3600);
        assert_eq!(
            s2.arrivals,
            Judged {
                judged: 1,
                on_time: 0
            }
        );
        assert_eq!(
            s2.repairs,
            Judged {
                judged: 1,
                on_time: 1
            }
        );
        assert_eq!(s2.mean_seconds_to_arrive, Some(150 * 60));
    }

    #[test]
    fn fault_5_arrival_and_repair_times_and_shares_judge_only_limits_met_or_passed() {
        let inputs = Inputs {
            orders: vec![
                order("2026-03-05T00:00:00Z", Some(40), Some(180)),
                order("2026-03-05T01:00:00Z", Some(80), Some(300)),
                // Not arrived, limit passed: late; repair limit not yet passed: not judged.
                order("2026-03-05T10:00:00Z", None, None),
                // A follow-up is the same fault: not counted again.
                WorkOrder {
                    follow_up: true,
                    ..order("2026-03-05T02:00:00Z", None, None)
                },
                // Another day's order.
                order("2026-03-04T10:00:00Z", Some(10), Some(20)),
            ],
            ..Inputs::default()
        };
        let k = compute(&inputs, &day(), t("2026-03-05T12:00:00Z"), all);
        assert_eq!(k.faults, 3);
        assert_eq!(
            k.arrivals,
            Judged {
                judged: 3,
                on_time: 1
            }
        );
        assert_eq!(
            k.repairs,
            Judged {
                judged: 2,
                on_time: 1
            }
        );
        assert_eq!(k.mean_seconds_to_arrive, Some(60 * 60));
        assert_eq!(k.mean_seconds_to_repair, Some(240 * 60));
        assert!((k.arrivals.share() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn def_5_defects_opened_and_closed_per_class_with_the_on_time_share() {
        let found = t("2026-03-05T01:00:00Z");
        let defect = |class: &str, due_h: Option<i64>, done_h: i64, accepted: bool| Defect {
            station_id: "S1".into(),
            class: class.into(),
            found_at: found,
            due: due_h.map(|h| found + Duration::hours(h)),
            eliminated_at: Some(found + Duration::hours(done_h)),
            accepted_at: accepted.then(|| found + Duration::hours(done_h + 1)),
        };
        let inputs = Inputs {
            defects: vec![
                defect("critical", Some(24), 5, true),
                defect("critical", Some(2), 5, true),
                defect("serious", Some(24 * 7), 3, false),
                defect("general", None, 4, true),
            ],
            ..Inputs::default()
        };
        let k = compute(&inputs, &day(), t("2026-03-06T00:00:00Z"), all);
        let by: Vec<_> = k
            .defects
            .iter()
            .map(|d| {
                (
                    d.class,
                    d.opened,
                    d.closed,
                    d.closed_judged,
                    d.closed_on_time,
                )
            })
            .collect();
        assert_eq!(
            by,
            [
                ("critical", 2, 2, 2, 1),
                ("serious", 1, 0, 0, 0),
                ("general", 1, 1, 0, 0)
            ]
        );
    }

    #[test]
    fn cmp_1_complaints_answered_within_24_hours_and_satisfaction() {
        let c = |received: &str, ack_h: Option<i64>, score: Option<u8>, is_complaint: bool| {
            let at = t(received);
            Complaint {
                station_id: "S1".into(),
                is_complaint,
                received_at: at,
                response_due: at + Duration::hours(24),
                acknowledged_at: ack_h.map(|h| at + Duration::hours(h)),
                satisfaction: score,
            }
        };
        let inputs = Inputs {
            complaints: vec![
                c("2026-03-05T00:00:00Z", Some(23), Some(4), true),
                c("2026-03-05T00:00:00Z", Some(25), Some(2), true),
                c("2026-03-05T10:00:00Z", None, None, true),
                c("2026-03-05T10:00:00Z", None, None, false),
            ],
            ..Inputs::default()
        };
        let k = compute(&inputs, &day(), t("2026-03-06T02:00:00Z"), all);
        assert_eq!(k.complaints, 3);
        assert_eq!(
            k.responses,
            Judged {
                judged: 2,
                on_time: 1
            }
        );
        assert_eq!((k.satisfaction_answers, k.satisfaction_mean()), (2, 3.0));
    }

    #[test]
    fn mon_5_suspension_hours_and_sessions_count_within_the_period() {
        let inputs = Inputs {
            downtimes: vec![Downtime {
                station_id: "S1".into(),
                span: Span::new(t("2026-03-04T10:00:00Z"), t("2026-03-05T02:00:00Z")),
            }],
            sessions: vec![
                Session {
                    station_id: "S1".into(),
                    start: t("2026-03-05T03:00:00Z"),
                    energy_kwh: Decimal::new(12_345, 3),
                },
                Session {
                    station_id: "S1".into(),
                    start: t("2026-03-05T05:00:00Z"),
                    energy_kwh: Decimal::new(7_655, 3),
                },
                Session {
                    station_id: "S1".into(),
                    start: t("2026-03-05T17:00:00Z"),
                    energy_kwh: Decimal::new(1_000, 3),
                },
            ],
            ..Inputs::default()
        };
        let k = compute(&inputs, &day(), t("2026-03-06T00:00:00Z"), all);
        assert_eq!(k.suspension_seconds, 10 * 3600);
        assert_eq!((k.sessions, k.energy_kwh), (2, Decimal::new(20_000, 3)));
    }
}
