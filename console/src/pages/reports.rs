//! Reports for the O&M manager (REQ EVAL-1; MON-1 availability, FAULT-5 on-time arrivals and
//! repairs, CMP-1 on-time responses, EVAL-2 satisfaction): the KPIs of a day, month or year per
//! station and for the whole operator, the month's availability by day as a chart, and the
//! exports (KPI, fault analysis, defect statistics, the yearly self-evaluation) as CSV or HTML,
//! straight from the reporting component.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate, Utc};
use maud::{Markup, html};

use chargemesh_proto::kpi::v1 as kpi;
use chargemesh_proto::reporting::v1 as rp;

use crate::i18n::china;
use crate::mesh::as_person;
use crate::pages::layout::{Notice, page};
use crate::session::Session;
use crate::web::Shared;

/// The period asked for, as the form and the links carry it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Asked {
    #[serde(default)]
    period: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    format: String,
}

/// A period and its start as the reporting API takes them; this month when not (well) given.
pub fn period_of(period: &str, start: &str, today: NaiveDate) -> (kpi::KpiPeriod, String) {
    let valid = |len: usize, fmt: &str| {
        start.len() == len
            && NaiveDate::parse_from_str(&format!("{start}{fmt}"), "%Y-%m-%d").is_ok()
    };
    match period {
        "day" if valid(10, "") => (kpi::KpiPeriod::Day, start.to_owned()),
        "year" if valid(4, "-01-01") => (kpi::KpiPeriod::Year, start.to_owned()),
        "month" if valid(7, "-01") => (kpi::KpiPeriod::Month, start.to_owned()),
        _ => (kpi::KpiPeriod::Month, today.format("%Y-%m").to_string()),
    }
}

fn period_word(period: kpi::KpiPeriod) -> &'static str {
    match period {
        kpi::KpiPeriod::Day => "day",
        kpi::KpiPeriod::Year => "year",
        _ => "month",
    }
}

/// The days of a month "YYYY-MM", up to `today`.
pub fn days_of(month: &str, today: NaiveDate) -> Vec<NaiveDate> {
    let Ok(first) = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d") else {
        return Vec::new();
    };
    first
        .iter_days()
        .take_while(|d| d.month() == first.month() && *d <= today)
        .collect()
}

/// REQ DEF-3: the share of critical and serious defects eliminated by their due time, none when
/// none was judged.
pub fn defect_share(kpis: &kpi::Kpis) -> Option<f64> {
    let (on_time, judged) = kpis.defects.iter().fold((0u32, 0u32), |(o, j), d| {
        (o + d.closed_on_time, j + d.closed_judged)
    });
    (judged > 0).then(|| f64::from(on_time) / f64::from(judged))
}

/// One bar of a chart: its height as a fraction of the chart's, none for no bar.
struct Bar {
    label: String,
    fraction: Option<f64>,
    fill: &'static str,
    /// What the bar says on hover.
    tip: String,
    /// What is written above it.
    above: Option<String>,
}

/// Bars as inline SVG, one labelled slot each, on axes (marked 0 to 100% for shares).
fn chart(title: &str, bars: &[Bar], percent_axis: bool) -> Markup {
    let width = 24 * bars.len().max(1) + 40;
    html! {
        figure.chart {
            figcaption { (title) }
            svg role="img" aria-label=(title) viewBox={ "0 0 " (width) " 130" } width=(width) height="130" {
                line x1="30" y1="10" x2="30" y2="110" stroke="#8a94a3" {}
                line x1="30" y1="110" x2=(width) y2="110" stroke="#8a94a3" {}
                @if percent_axis {
                    text x="0" y="14" font-size="9" { "100%" }
                    text x="6" y="112" font-size="9" { "0" }
                }
                @for (i, bar) in bars.iter().enumerate() {
                    @let x = 34 + i * 24;
                    @if let Some(fraction) = bar.fraction {
                        @let h = (fraction.clamp(0.0, 1.0) * 100.0).round();
                        rect x=(x) y=(110.0 - h) width="18" height=(h) fill=(bar.fill) {
                            title { (bar.tip) }
                        }
                        @if let Some(above) = &bar.above {
                            text x=(x + 4) y=(106.0 - h) font-size="9" { (above) }
                        }
                    }
                    text x=(x + 2) y="124" font-size="8" { (bar.label) }
                }
            }
        }
    }
}

/// Counts as bars scaled to the largest, each labelled with its count (faults by pile; a pile
/// named by the end of its id).
pub fn count_bars(title: &str, counts: &[(String, u32)]) -> Markup {
    let most = f64::from(counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1));
    let bars: Vec<Bar> = counts
        .iter()
        .map(|(label, n)| Bar {
            label: label
                .chars()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
            fraction: Some(f64::from(*n) / most),
            fill: "#0b5cad",
            tip: format!("{label}: {n}"),
            above: Some(n.to_string()),
        })
        .collect();
    chart(title, &bars, false)
}

/// Shares (0 to 1) as bars; one below `warn` is drawn in the warning colour.
pub fn bars(title: &str, values: &[(String, Option<f64>)], warn: f64) -> Markup {
    let bars: Vec<Bar> = values
        .iter()
        .map(|(label, value)| Bar {
            label: label.clone(),
            fraction: *value,
            fill: if value.is_some_and(|v| v < warn) {
                "#b3261e"
            } else {
                "#1e6b35"
            },
            tip: format!("{label}: {:.1}%", value.unwrap_or_default() * 100.0),
            above: None,
        })
        .collect();
    chart(title, &bars, true)
}

fn share(v: f64, judged: u32) -> String {
    if judged == 0 {
        "—".into()
    } else {
        format!("{:.1}%", v * 100.0)
    }
}

fn scope(session: &Session, period: kpi::KpiPeriod, start: &str) -> rp::ReportScope {
    rp::ReportScope {
        operator_id: session.person.operator_id.clone(),
        station_id: String::new(),
        period: period as i32,
        period_start: start.to_owned(),
    }
}

/// GET /reports.
pub async fn show(
    State(app): State<Shared>,
    Query(asked): Query<Asked>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/reports") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let today = Utc::now().with_timezone(&china()).date_naive();
    let (period, start) = period_of(&asked.period, &asked.start, today);
    let report = app
        .gateway
        .reporting()
        .get_kpi_report(as_person(
            &session.token,
            rp::GetKpiReportRequest {
                scope: Some(scope(&session, period, &start)),
            },
        ))
        .await;
    let (rows, notice) = match report.map(|r| r.into_inner().report) {
        Ok(Some(report)) => (report.rows, None),
        Ok(None) => (Vec::new(), None),
        Err(status) => (
            Vec::new(),
            Some(Notice::Refused(status.message().to_owned())),
        ),
    };
    let daily = if period == kpi::KpiPeriod::Month && notice.is_none() {
        daily_availability(&app, &session, &start, today).await
    } else {
        Vec::new()
    };
    // REQ FAULT-8: which piles fault most in the period.
    let by_pile: Vec<(String, u32)> = app
        .gateway
        .reporting()
        .get_fault_analysis(as_person(
            &session.token,
            rp::GetFaultAnalysisRequest {
                scope: Some(scope(&session, period, &start)),
            },
        ))
        .await
        .ok()
        .and_then(|r| r.into_inner().analysis)
        .map(|a| {
            let mut piles: Vec<(String, u32)> = a
                .by_pile
                .into_iter()
                .map(|p| (p.pile_id, p.faults))
                .collect();
            piles.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            piles.truncate(20);
            piles
        })
        .unwrap_or_default();
    let total = rows.iter().find(|r| r.station_id.is_empty());
    let link = |kind: &str, format: &str| {
        format!(
            "/reports/export?kind={kind}&format={format}&period={}&start={start}",
            period_word(period)
        )
    };
    let body = html! {
        form.inline-form method="get" action="/reports" {
            label for="period" { (t("rep.period")) }
            select id="period" name="period" {
                @for (value, key) in [("day", "rep.day"), ("month", "rep.month"), ("year", "rep.year")] {
                    option value=(value) selected[period_word(period) == value] { (t(key)) }
                }
            }
            label for="start" { (t("rep.start")) }
            input id="start" name="start" value=(start) size="10";
            button type="submit" { (t("rep.show")) }
        }
        @if let Some(total) = total.and_then(|r| r.kpis.as_ref()) {
            (bars(t("rep.shares"), &[
                (t("rep.availability").into(), Some(total.availability)),
                (t("rep.arrivals").into(), (total.arrivals_judged > 0).then_some(total.arrival_on_time_share)),
                (t("rep.repairs").into(), (total.repairs_judged > 0).then_some(total.repair_on_time_share)),
                (t("rep.responses").into(), (total.responses_judged > 0).then_some(total.response_on_time_share)),
                (t("rep.defects").into(), defect_share(total)),
            ], 0.95))
        }
        @if !by_pile.is_empty() {
            (count_bars(t("rep.by_pile"), &by_pile))
        }
        @if !daily.is_empty() {
            (bars(t("rep.daily"), &daily, 0.95))
        }
        table.kpis {
            thead { tr {
                th { (t("wo.station")) } th { (t("rep.availability")) } th { (t("rep.sessions")) }
                th { (t("rep.energy")) } th { (t("rep.faults")) } th { (t("rep.arrivals")) }
                th { (t("rep.repairs")) } th { (t("rep.complaints")) } th { (t("rep.responses")) }
                th { (t("rep.satisfaction")) }
            } }
            tbody {
                @for row in &rows {
                    @if let Some(k) = &row.kpis {
                        tr.total[row.station_id.is_empty()] {
                            td { @if row.station_id.is_empty() { (t("rep.all")) } @else { (row.station_id) } }
                            td { (share(k.availability, u32::from(k.observed_seconds > 0))) }
                            td { (k.sessions) }
                            td { (k.energy_kwh) }
                            td { (k.faults) }
                            td { (share(k.arrival_on_time_share, k.arrivals_judged)) }
                            td { (share(k.repair_on_time_share, k.repairs_judged)) }
                            td { (k.complaints) }
                            td { (share(k.response_on_time_share, k.responses_judged)) }
                            td { @if k.satisfaction_answers > 0 { (format!("{:.1}", k.satisfaction_mean)) } @else { "—" } }
                        }
                    }
                }
            }
        }
        h2 { (t("rep.exports")) }
        ul.exports {
            li { a href=(link("kpi", "csv")) download { (t("rep.kpi_csv")) } " · " a href=(link("kpi", "html")) { "HTML" } }
            li { a href=(link("faults", "csv")) download { (t("rep.faults_csv")) } " · " a href=(link("faults", "html")) { "HTML" } }
            li { a href=(link("defects", "csv")) download { (t("rep.defects_csv")) } " · " a href=(link("defects", "html")) { "HTML" } }
            li { a href={ "/reports/export?kind=self&format=html&period=year&start=" (&start[..4.min(start.len())]) } { (t("rep.self")) } }
        }
    };
    page(&ctx, t("rep.title"), notice.as_ref(), body).into_response()
}

/// The operator's availability each day of `month` so far (REQ MON-1), in parallel.
async fn daily_availability(
    app: &Shared,
    session: &Session,
    month: &str,
    today: NaiveDate,
) -> Vec<(String, Option<f64>)> {
    let mut asked = tokio::task::JoinSet::new();
    for (i, day) in days_of(month, today).into_iter().enumerate() {
        let mut client = app.gateway.reporting();
        let request = as_person(
            &session.token,
            rp::GetKpiReportRequest {
                scope: Some(scope(session, kpi::KpiPeriod::Day, &day.to_string())),
            },
        );
        asked.spawn(async move {
            let availability = client
                .get_kpi_report(request)
                .await
                .ok()
                .and_then(|r| r.into_inner().report)
                .and_then(|r| r.rows.into_iter().find(|row| row.station_id.is_empty()))
                .and_then(|row| row.kpis)
                .filter(|k| k.observed_seconds > 0)
                .map(|k| k.availability);
            (i, day.day().to_string(), availability)
        });
    }
    let mut out = Vec::new();
    while let Some(Ok(done)) = asked.join_next().await {
        out.push(done);
    }
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, label, v)| (label, v)).collect()
}

/// GET /reports/export: the reporting component's export, as a download.
pub async fn export(
    State(app): State<Shared>,
    Query(asked): Query<Asked>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/reports") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let today = Utc::now().with_timezone(&china()).date_naive();
    let (period, start) = period_of(&asked.period, &asked.start, today);
    let kind = match asked.kind.as_str() {
        "faults" => rp::ReportKind::FaultAnalysis,
        "defects" => rp::ReportKind::DefectStatistics,
        "self" => rp::ReportKind::SelfEvaluation,
        _ => rp::ReportKind::Kpi,
    };
    let format = match asked.format.as_str() {
        "html" => rp::ExportFormat::Html,
        _ => rp::ExportFormat::Csv,
    };
    let exported = app
        .gateway
        .reporting()
        .export_report(as_person(
            &session.token,
            rp::ExportReportRequest {
                kind: kind as i32,
                format: format as i32,
                scope: Some(scope(&session, period, &start)),
            },
        ))
        .await;
    match exported {
        Ok(file) => {
            let file = file.into_inner();
            let mut response = (StatusCode::OK, file.content).into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&file.content_type) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            let safe: String = file
                .file_name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            let disposition = if format == rp::ExportFormat::Csv {
                format!("attachment; filename=\"{safe}\"")
            } else {
                format!("inline; filename=\"{safe}\"")
            };
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        Err(status) => {
            let refused = Notice::Refused(status.message().to_owned());
            let body = html! { p { a href="/reports" { (ctx.lang.t("rep.title")) } } };
            (
                crate::pages::outcome::refusal_code(&status),
                page(&ctx, ctx.lang.t("rep.exports"), Some(&refused), body),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn eval_1_a_period_is_read_as_the_api_takes_it_or_is_this_month() {
        let today = day("2026-12-06");
        assert_eq!(
            period_of("day", "2026-12-01", today),
            (kpi::KpiPeriod::Day, "2026-12-01".into())
        );
        assert_eq!(
            period_of("year", "2025", today),
            (kpi::KpiPeriod::Year, "2025".into())
        );
        assert_eq!(
            period_of("month", "2026-11", today),
            (kpi::KpiPeriod::Month, "2026-11".into())
        );
        assert_eq!(
            period_of("month", "11/2026", today),
            (kpi::KpiPeriod::Month, "2026-12".into())
        );
        assert_eq!(
            period_of("", "", today),
            (kpi::KpiPeriod::Month, "2026-12".into())
        );
    }

    #[test]
    fn mon_1_the_month_s_days_stop_at_today() {
        let today = day("2026-12-06");
        assert_eq!(days_of("2026-12", today).len(), 6);
        assert_eq!(days_of("2026-11", today).len(), 30);
        assert!(days_of("nope", today).is_empty());
    }

    #[test]
    fn def_3_the_defect_share_counts_the_judged_classes_only() {
        let kpis = kpi::Kpis {
            defects: vec![
                kpi::DefectClassKpis {
                    defect_class: "critical".into(),
                    closed_on_time: 1,
                    closed_judged: 2,
                    ..Default::default()
                },
                kpi::DefectClassKpis {
                    defect_class: "general".into(),
                    closed: 5,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(defect_share(&kpis), Some(0.5));
        assert_eq!(defect_share(&kpi::Kpis::default()), None);
        let chart =
            count_bars("faults", &[("SX-YC-001-P01".into(), 4), ("P2".into(), 1)]).into_string();
        assert!(chart.contains("SX-YC-001-P01: 4") && chart.contains("height=\"100\""));
    }

    #[test]
    fn a_chart_draws_a_bar_per_known_value_and_marks_the_low_ones() {
        let chart = bars(
            "availability",
            &[
                ("1".into(), Some(0.99)),
                ("2".into(), Some(0.5)),
                ("3".into(), None),
            ],
            0.95,
        )
        .into_string();
        assert_eq!(chart.matches("<rect").count(), 2);
        assert!(chart.contains("#b3261e") && chart.contains("#1e6b35"));
        assert!(chart.contains("2: 50.0%"));
    }
}
