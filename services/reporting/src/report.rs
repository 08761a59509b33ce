//! A KPI report: the stations of a scope, the facts, status history and approved exemptions of
//! the period, read from reporting's own copy, and the figures per station and for the scope.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use chargemesh_kit::Error;
use chargemesh_kit::area::area_covers;
use chargemesh_kit::time::to_timestamp;
use chargemesh_proto::kpi::v1 as pb;
use chargemesh_proto::telemetry::v1::ConnectorState;

use crate::domain::analysis;
use crate::domain::evaluation::{self, NonConformity};
use crate::domain::exemption::Exemption;
use crate::domain::kpi::{self, ConnectorHistory, Kpis};
use crate::domain::period::{Granularity, Period, Span, merge};
use crate::facts::FactSet;
use crate::store::{HistoryQuery, ReportingStore, StationRow};

/// Whose stations a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// An operator's stations, or one of them.
    Operator {
        operator_id: String,
        station_id: Option<String>,
    },
    /// Every station in an area (a regulator's).
    Area { area_code: String },
}

/// One row: a station's figures, or the scope's (`station_id` `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub operator_id: String,
    pub station_id: Option<String>,
    pub area_code: String,
    pub kpis: Kpis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub period: Period,
    pub rows: Vec<Row>,
    pub exemptions: Vec<Exemption>,
    pub computed_at: DateTime<Utc>,
}

/// The fact kinds a report reads.
const KINDS: [&str; 7] = [
    "work_order",
    "defect",
    "downtime",
    "complaint",
    "charge_order",
    "maintenance_plan",
    "drill",
];

fn available(state: i32) -> bool {
    matches!(
        ConnectorState::try_from(state),
        Ok(ConnectorState::Idle
            | ConnectorState::OccupiedNotCharging
            | ConnectorState::Charging
            | ConnectorState::Reserved)
    )
}

fn in_scope(scope: &Scope, s: &StationRow) -> bool {
    match scope {
        Scope::Operator {
            operator_id,
            station_id,
        } => {
            &s.operator_id == operator_id
                && station_id.as_ref().is_none_or(|id| id == &s.station_id)
        }
        Scope::Area { area_code } => area_covers(area_code, &s.area_code),
    }
}

/// The connectors' histories of a station over the period.
async fn histories(
    store: &dyn ReportingStore,
    station: &StationRow,
    period: &Period,
) -> Result<Vec<ConnectorHistory>, Error> {
    let mut by_connector: BTreeMap<(String, String), ConnectorHistory> = BTreeMap::new();
    let new = |initial| ConnectorHistory {
        station_id: station.station_id.clone(),
        initial,
        changes: Vec::new(),
    };
    for (pile, connector, state) in store
        .states_before(&station.operator_id, &station.station_id, period.start)
        .await?
    {
        by_connector.insert((pile, connector), new(Some(available(state))));
    }
    let mut after = 0;
    loop {
        let page = store
            .history(&HistoryQuery {
                operator_id: station.operator_id.clone(),
                station_id: station.station_id.clone(),
                start: Some(period.start),
                end: Some(period.end),
                after,
                limit: 1000,
            })
            .await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = *last;
        let full = page.len() >= 1000;
        for (_, change) in page {
            let Some(status) = change.status else {
                continue;
            };
            let Some(at) = status
                .change_time
                .as_ref()
                .and_then(chargemesh_kit::time::from_timestamp)
            else {
                continue;
            };
            by_connector
                .entry((status.pile_id, status.connector_id))
                .or_insert_with(|| new(None))
                .changes
                .push((at, available(status.state)));
        }
        if !full {
            break;
        }
    }
    Ok(by_connector
        .into_values()
        .map(|mut c| {
            c.changes.sort_by_key(|(at, _)| *at);
            c
        })
        .collect())
}

/// What a report reads: the stations of its scope, their facts and status histories, and the
/// approved exemptions covering them in the period.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub stations: Vec<StationRow>,
    pub facts: FactSet,
    pub pile_station: HashMap<String, String>,
    pub exempt: BTreeMap<String, Vec<Span>>,
    pub applied: Vec<Exemption>,
    pub histories: Vec<ConnectorHistory>,
}

/// Reads what a report over `span` needs; facts from `facts_from` on (earlier than the span for
/// rules that look back, such as the drills of EMERG-2).
pub async fn load(
    store: &dyn ReportingStore,
    scope: &Scope,
    span: &Span,
    facts_from: DateTime<Utc>,
    with_history: bool,
) -> Result<Loaded, Error> {
    let directory = store.stations().await?;
    let pile_station: HashMap<String, String> = directory
        .iter()
        .flat_map(|s| {
            s.pile_ids
                .iter()
                .map(move |p| (p.clone(), s.station_id.clone()))
        })
        .collect();
    let stations: Vec<StationRow> = directory
        .into_iter()
        .filter(|s| in_scope(scope, s))
        .collect();
    if let Scope::Operator {
        station_id: Some(id),
        ..
    } = scope
        && stations.is_empty()
    {
        return Err(Error::NotFound(format!("station {id}")));
    }
    let operators: BTreeSet<String> = stations.iter().map(|s| s.operator_id.clone()).collect();
    let mut facts = FactSet::default();
    let mut applied = Vec::new();
    let mut exempt: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    let read_span = Span::new(facts_from.min(span.start), span.end);
    for op in &operators {
        for kind in KINDS {
            facts.add(store.facts(op, kind, &read_span).await?);
        }
        for e in store.approved_exemptions(op, span).await? {
            let mut used = false;
            for s in stations.iter().filter(|s| &s.operator_id == op) {
                if let Some(cover) = e.span_for(&s.station_id).and_then(|c| c.intersect(span)) {
                    exempt.entry(s.station_id.clone()).or_default().push(cover);
                    used = true;
                }
            }
            if used {
                applied.push(e);
            }
        }
    }
    let names: BTreeSet<String> = stations.iter().map(|s| s.station_id.clone()).collect();
    facts.retain(|id| names.contains(id), &pile_station);
    let mut histories = Vec::new();
    if with_history {
        let period = Period {
            granularity: Granularity::Day,
            label: String::new(),
            start: span.start,
            end: span.end,
        };
        for s in &stations {
            histories.extend(self::histories(store, s, &period).await?);
        }
    }
    Ok(Loaded {
        stations,
        facts,
        pile_station,
        exempt: exempt.into_iter().map(|(k, v)| (k, merge(v))).collect(),
        applied,
        histories,
    })
}

/// The KPI rows of what was loaded: one per station, then the scope's.
fn kpi_rows(loaded: &Loaded, scope: &Scope, span: &Span, now: DateTime<Utc>) -> Vec<Row> {
    let mut inputs = loaded.facts.kpi_inputs(&loaded.pile_station);
    inputs.connectors = loaded.histories.clone();
    inputs.exempt = loaded.exempt.clone();
    let names: BTreeSet<&str> = loaded
        .stations
        .iter()
        .map(|s| s.station_id.as_str())
        .collect();
    let mut rows: Vec<Row> = loaded
        .stations
        .iter()
        .map(|s| Row {
            operator_id: s.operator_id.clone(),
            station_id: Some(s.station_id.clone()),
            area_code: s.area_code.clone(),
            kpis: kpi::compute(&inputs, span, now, |id| id == s.station_id),
        })
        .collect();
    let (operator_id, area_code) = match scope {
        Scope::Operator { operator_id, .. } => (
            operator_id.clone(),
            match loaded.stations.as_slice() {
                [only] => only.area_code.clone(),
                _ => String::new(),
            },
        ),
        Scope::Area { area_code } => (String::new(), area_code.clone()),
    };
    rows.push(Row {
        operator_id,
        station_id: None,
        area_code,
        kpis: kpi::compute(&inputs, span, now, |id| names.contains(id)),
    });
    rows
}

/// Builds the KPI report of `scope` over `period` as of `now`.
pub async fn build(
    store: &dyn ReportingStore,
    scope: &Scope,
    period: Period,
    now: DateTime<Utc>,
) -> Result<Report, Error> {
    let span = Span::new(period.start, period.end);
    let loaded = load(store, scope, &span, span.start, true).await?;
    Ok(Report {
        rows: kpi_rows(&loaded, scope, &span, now),
        period,
        exemptions: loaded.applied,
        computed_at: now,
    })
}

/// REQ FAULT-8: the fault analysis of `scope` over `period`, with the period's KPIs.
pub async fn fault_analysis(
    store: &dyn ReportingStore,
    scope: &Scope,
    period: Period,
    now: DateTime<Utc>,
) -> Result<(Report, analysis::FaultAnalysis), Error> {
    let span = Span::new(period.start, period.end);
    let loaded = load(store, scope, &span, span.start, true).await?;
    let result = analysis::fault_analysis(&loaded.facts, &span, now);
    Ok((
        Report {
            rows: kpi_rows(&loaded, scope, &span, now),
            period,
            exemptions: loaded.applied,
            computed_at: now,
        },
        result,
    ))
}

/// REQ DEF-5: the defect statistics of `scope` over `period`, with the period's KPIs.
pub async fn defect_statistics(
    store: &dyn ReportingStore,
    scope: &Scope,
    period: Period,
    now: DateTime<Utc>,
) -> Result<(Report, analysis::DefectStatistics), Error> {
    let span = Span::new(period.start, period.end);
    let loaded = load(store, scope, &span, span.start, false).await?;
    let result = analysis::defect_statistics(&loaded.facts, &span, now);
    let mut inputs = loaded.facts.kpi_inputs(&loaded.pile_station);
    inputs.exempt = loaded.exempt.clone();
    let names: BTreeSet<&str> = loaded
        .stations
        .iter()
        .map(|s| s.station_id.as_str())
        .collect();
    let operator_id = match scope {
        Scope::Operator { operator_id, .. } => operator_id.clone(),
        Scope::Area { .. } => String::new(),
    };
    Ok((
        Report {
            rows: vec![Row {
                operator_id,
                station_id: None,
                area_code: String::new(),
                kpis: kpi::compute(&inputs, &span, now, |id| names.contains(id)),
            }],
            period,
            exemptions: loaded.applied,
            computed_at: now,
        },
        result,
    ))
}

/// REQ EVAL-1: the self-evaluation of an operator's year: its KPIs and non-conformities.
pub async fn self_evaluation(
    store: &dyn ReportingStore,
    scope: &Scope,
    year: Period,
    now: DateTime<Utc>,
) -> Result<(Report, Vec<NonConformity>), Error> {
    let span = Span::new(year.start, year.end);
    let look_back = span
        .start
        .checked_sub_months(evaluation::DRILL_EVERY)
        .unwrap_or(span.start);
    let loaded = load(store, scope, &span, look_back, true).await?;
    let stations: Vec<String> = loaded
        .stations
        .iter()
        .map(|s| s.station_id.clone())
        .collect();
    let list = evaluation::non_conformities(&loaded.facts, &stations, &span, now, &loaded.exempt);
    Ok((
        Report {
            rows: kpi_rows(&loaded, scope, &span, now),
            period: year,
            exemptions: loaded.applied,
            computed_at: now,
        },
        list,
    ))
}

fn duration(seconds: Option<i64>) -> Option<prost_types::Duration> {
    seconds.map(|s| prost_types::Duration {
        seconds: s,
        nanos: 0,
    })
}

pub fn kpis_to_pb(k: &Kpis) -> pb::Kpis {
    pb::Kpis {
        availability: k.availability(),
        observed_seconds: k.observed_seconds,
        available_seconds: k.available_seconds,
        exempted_seconds: k.exempted_seconds,
        sessions: k.sessions,
        energy_kwh: format!("{:.3}", k.energy_kwh),
        faults: k.faults,
        mean_time_to_arrive: duration(k.mean_seconds_to_arrive),
        mean_time_to_repair: duration(k.mean_seconds_to_repair),
        arrivals_judged: k.arrivals.judged,
        arrivals_on_time: k.arrivals.on_time,
        arrival_on_time_share: k.arrivals.share(),
        repairs_judged: k.repairs.judged,
        repairs_on_time: k.repairs.on_time,
        repair_on_time_share: k.repairs.share(),
        exempted_work_orders: k.exempted_work_orders,
        suspension_hours: k.suspension_hours(),
        defects: k
            .defects
            .iter()
            .map(|d| pb::DefectClassKpis {
                defect_class: d.class.into(),
                opened: d.opened,
                closed: d.closed,
                closed_on_time: d.closed_on_time,
                closed_judged: d.closed_judged,
                on_time_share: kpi::Judged {
                    judged: d.closed_judged,
                    on_time: d.closed_on_time,
                }
                .share(),
            })
            .collect(),
        complaints: k.complaints,
        responses_judged: k.responses.judged,
        responses_on_time: k.responses.on_time,
        response_on_time_share: k.responses.share(),
        satisfaction_answers: k.satisfaction_answers,
        satisfaction_mean: k.satisfaction_mean(),
    }
}

pub fn to_pb(r: &Report) -> pb::KpiReport {
    pb::KpiReport {
        period: match r.period.granularity {
            Granularity::Day => pb::KpiPeriod::Day,
            Granularity::Month => pb::KpiPeriod::Month,
            Granularity::Year => pb::KpiPeriod::Year,
        } as i32,
        period_start: r.period.label.clone(),
        start_time: Some(to_timestamp(r.period.start)),
        end_time: Some(to_timestamp(r.period.end)),
        rows: r
            .rows
            .iter()
            .map(|row| pb::KpiRow {
                operator_id: row.operator_id.clone(),
                station_id: row.station_id.clone().unwrap_or_default(),
                area_code: row.area_code.clone(),
                kpis: Some(kpis_to_pb(&row.kpis)),
            })
            .collect(),
        exemptions_applied: r
            .exemptions
            .iter()
            .map(|e| pb::AppliedExemption {
                exemption_id: e.exemption_id.clone(),
                operator_id: e.operator_id.clone(),
                station_ids: e.station_ids.clone(),
                start_time: Some(to_timestamp(e.start)),
                end_time: Some(to_timestamp(e.end)),
                cause: e.cause.as_str().into(),
            })
            .collect(),
        compute_time: Some(to_timestamp(r.computed_at)),
    }
}

/// The period a request names.
pub fn period_of(period: i32, start: &str, now: DateTime<Utc>) -> Result<Period, Error> {
    let granularity = match pb::KpiPeriod::try_from(period) {
        Ok(pb::KpiPeriod::Day) => Granularity::Day,
        Ok(pb::KpiPeriod::Month) => Granularity::Month,
        Ok(pb::KpiPeriod::Year) => Granularity::Year,
        _ => return Err(Error::bad_field("period", "is day, month or year")),
    };
    Period::parse(granularity, start, now)
}
