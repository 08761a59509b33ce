//! Reports as files a person opens: CSV for spreadsheets (RFC 4180, CRLF line ends, UTF-8 with a
//! byte-order mark so spreadsheet programs read it as UTF-8), and one self-contained HTML page to
//! read, print or hand to management.

use chrono::{DateTime, Utc};

use chargemesh_kit::clock::china_offset;

use crate::domain::analysis::{DefectStatistics, FaultAnalysis};
use crate::domain::evaluation::NonConformity;
use crate::domain::kpi::Kpis;
use crate::facts::time;
use crate::report::Report;

/// The columns of the KPI export, in order.
pub const KPI_COLUMNS: &[&str] = &[
    "operator_id",
    "station_id",
    "area_code",
    "period",
    "availability_pct",
    "observed_hours",
    "available_hours",
    "exempted_hours",
    "sessions",
    "energy_kwh",
    "faults",
    "mean_minutes_to_arrive",
    "mean_minutes_to_repair",
    "arrivals_judged",
    "arrivals_on_time",
    "arrival_on_time_pct",
    "repairs_judged",
    "repairs_on_time",
    "repair_on_time_pct",
    "exempted_work_orders",
    "suspension_hours",
    "critical_defects_opened",
    "critical_defects_closed",
    "critical_defects_on_time_pct",
    "serious_defects_opened",
    "serious_defects_closed",
    "serious_defects_on_time_pct",
    "general_defects_opened",
    "general_defects_closed",
    "complaints",
    "responses_judged",
    "responses_within_24h",
    "response_within_24h_pct",
    "satisfaction_answers",
    "satisfaction_mean",
];

/// A field quoted when it holds a separator, a quote or a line break.
pub fn field(value: &str) -> String {
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn pct(share: f64, judged: u32) -> String {
    if judged == 0 {
        String::new()
    } else {
        format!("{:.2}", share * 100.0)
    }
}

fn hours(seconds: i64) -> String {
    format!("{:.2}", seconds as f64 / 3600.0)
}

fn minutes(seconds: Option<i64>) -> String {
    seconds.map_or_else(String::new, |s| format!("{:.1}", s as f64 / 60.0))
}

fn kpi_fields(k: &Kpis) -> Vec<String> {
    let defect = |class: &str| k.defects.iter().find(|d| d.class == class);
    let mut out = vec![
        pct(k.availability(), u32::from(k.observed_seconds > 0)),
        hours(k.observed_seconds),
        hours(k.available_seconds),
        hours(k.exempted_seconds),
        k.sessions.to_string(),
        format!("{:.3}", k.energy_kwh),
        k.faults.to_string(),
        minutes(k.mean_seconds_to_arrive),
        minutes(k.mean_seconds_to_repair),
        k.arrivals.judged.to_string(),
        k.arrivals.on_time.to_string(),
        pct(k.arrivals.share(), k.arrivals.judged),
        k.repairs.judged.to_string(),
        k.repairs.on_time.to_string(),
        pct(k.repairs.share(), k.repairs.judged),
        k.exempted_work_orders.to_string(),
        format!("{:.2}", k.suspension_hours()),
    ];
    for class in ["critical", "serious"] {
        let d = defect(class);
        out.push(d.map_or(0, |d| d.opened).to_string());
        out.push(d.map_or(0, |d| d.closed).to_string());
        out.push(d.map_or_else(String::new, |d| {
            pct(share(d.closed_on_time, d.closed_judged), d.closed_judged)
        }));
    }
    let general = defect("general");
    out.push(general.map_or(0, |d| d.opened).to_string());
    out.push(general.map_or(0, |d| d.closed).to_string());
    out.extend([
        k.complaints.to_string(),
        k.responses.judged.to_string(),
        k.responses.on_time.to_string(),
        pct(k.responses.share(), k.responses.judged),
        k.satisfaction_answers.to_string(),
        if k.satisfaction_answers == 0 {
            String::new()
        } else {
            format!("{:.2}", k.satisfaction_mean())
        },
    ]);
    out
}

fn share(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

/// A CSV document of a header and lines.
fn csv(header: &[&str], lines: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for fields in lines {
        let line: Vec<String> = fields.iter().map(|f| field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The KPI report as CSV: a header, one line per station, then the scope's total (station "ALL").
pub fn kpi_csv(report: &Report) -> String {
    csv(
        KPI_COLUMNS,
        report.rows.iter().map(|row| {
            let mut fields = vec![
                row.operator_id.clone(),
                row.station_id.clone().unwrap_or_else(|| "ALL".into()),
                row.area_code.clone(),
                report.period.label.clone(),
            ];
            fields.extend(kpi_fields(&row.kpis));
            fields
        }),
    )
}

/// A time as people read it here: local (UTC+8), to the minute.
pub fn local(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(String::new, |t| {
        t.with_timezone(&china_offset())
            .format("%Y-%m-%d %H:%M")
            .to_string()
    })
}

fn yes(flag: bool) -> String {
    if flag { "yes" } else { "" }.to_owned()
}

const FAULT_COLUMNS: &[&str] = &[
    "order_id",
    "station_id",
    "pile_id",
    "connector_id",
    "channel",
    "fault_code",
    "received",
    "arrived",
    "repaired",
    "closed",
    "outcome",
    "follow_up_of",
    "arrival_late",
    "repair_late",
    "description",
];

fn fault_fields(a: &FaultAnalysis) -> Vec<Vec<String>> {
    a.lines
        .iter()
        .map(|l| {
            let o = &l.order;
            vec![
                o.order_id.clone(),
                o.station_id.clone(),
                o.pile_id.clone(),
                o.connector_id.clone(),
                o.channel.clone(),
                o.fault_code.clone(),
                local(time(&o.receive_time)),
                local(time(&o.arrive_time)),
                local(time(&o.resolve_time)),
                local(time(&o.close_time)),
                o.outcome.clone(),
                o.follow_up_of.clone(),
                yes(l.arrival_late),
                yes(l.repair_late),
                o.description.clone(),
            ]
        })
        .collect()
}

/// REQ FAULT-8: one line per repair order of the period.
pub fn fault_csv(a: &FaultAnalysis) -> String {
    csv(FAULT_COLUMNS, fault_fields(a))
}

const DEFECT_COLUMNS: &[&str] = &[
    "defect_id",
    "station_id",
    "pile_id",
    "class",
    "state",
    "found",
    "due",
    "eliminated",
    "accepted",
    "overdue",
    "description",
];

fn defect_fields(s: &DefectStatistics) -> Vec<Vec<String>> {
    s.lines
        .iter()
        .map(|l| {
            let d = &l.defect;
            vec![
                d.defect_id.clone(),
                d.station_id.clone(),
                d.pile_id.clone(),
                d.defect_class.clone(),
                d.state.clone(),
                local(time(&d.found_time)),
                local(time(&d.due_time)),
                local(time(&d.eliminate_time)),
                local(time(&d.accept_time)),
                yes(l.overdue),
                d.description.clone(),
            ]
        })
        .collect()
}

/// REQ DEF-5: one line per defect of the period or still open at its end.
pub fn defect_csv(s: &DefectStatistics) -> String {
    csv(DEFECT_COLUMNS, defect_fields(s))
}

const NON_CONFORMITY_COLUMNS: &[&str] = &[
    "rule",
    "title",
    "station_id",
    "record_kind",
    "record_id",
    "when",
    "detail",
];

fn non_conformity_fields(list: &[NonConformity]) -> Vec<Vec<String>> {
    list.iter()
        .map(|n| {
            vec![
                n.rule.to_owned(),
                n.title.to_owned(),
                n.station_id.clone(),
                n.record_kind.to_owned(),
                n.record_id.clone(),
                local(Some(n.at)),
                n.detail.clone(),
            ]
        })
        .collect()
}

/// REQ EVAL-1: the non-conformity list, one line per broken rule.
pub fn non_conformity_csv(list: &[NonConformity]) -> String {
    csv(NON_CONFORMITY_COLUMNS, non_conformity_fields(list))
}

/// Text made safe inside HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// A self-contained HTML page, built section by section.
struct Page {
    body: String,
}

impl Page {
    fn new(title: &str, report: &Report) -> Self {
        let operator = report
            .rows
            .last()
            .map(|r| r.operator_id.clone())
            .unwrap_or_default();
        let mut body = format!("<h1>{}</h1>\n", escape(title));
        body.push_str(&format!(
            "<p class=\"meta\">Operator {} &middot; period {} ({} to {}, UTC+8) &middot; computed {}</p>\n",
            escape(&operator),
            escape(&report.period.label),
            escape(&local(Some(report.period.start))),
            escape(&local(Some(report.period.end))),
            escape(&local(Some(report.computed_at))),
        ));
        Self { body }
    }

    fn heading(&mut self, text: &str) {
        self.body.push_str(&format!("<h2>{}</h2>\n", escape(text)));
    }

    fn paragraph(&mut self, text: &str) {
        self.body.push_str(&format!("<p>{}</p>\n", escape(text)));
    }

    fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        if rows.is_empty() {
            self.paragraph("None.");
            return;
        }
        self.body.push_str("<table>\n<thead><tr>");
        for h in header {
            self.body
                .push_str(&format!("<th>{}</th>", escape(&h.replace('_', " "))));
        }
        self.body.push_str("</tr></thead>\n<tbody>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                self.body.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody>\n</table>\n");
    }

    fn kpis(&mut self, report: &Report) {
        self.heading("Key figures");
        let rows: Vec<Vec<String>> = report
            .rows
            .iter()
            .map(|row| {
                let mut fields = vec![
                    row.station_id
                        .clone()
                        .unwrap_or_else(|| "All stations".into()),
                ];
                fields.extend(kpi_fields(&row.kpis));
                fields
            })
            .collect();
        let mut header = vec!["station"];
        header.extend_from_slice(&KPI_COLUMNS[4..]);
        self.table(&header, &rows);
        self.heading("Exemptions applied (REQ MON-9)");
        let exemptions: Vec<Vec<String>> = report
            .exemptions
            .iter()
            .map(|e| {
                vec![
                    e.exemption_id.clone(),
                    e.station_ids.join(" "),
                    local(Some(e.start)),
                    local(Some(e.end)),
                    e.cause.as_str().to_owned(),
                    e.cause_text.clone(),
                ]
            })
            .collect();
        self.table(
            &[
                "exemption",
                "stations",
                "from",
                "to",
                "cause",
                "description",
            ],
            &exemptions,
        );
    }

    fn finish(self, title: &str) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
             body {{ font-family: sans-serif; margin: 2em; color: #222; }}\n\
             table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}\n\
             th, td {{ border: 1px solid #999; padding: 0.25em 0.5em; text-align: left; }}\n\
             th {{ background: #eee; }}\n\
             .meta {{ color: #555; }}\n\
             @media print {{ body {{ margin: 0; }} }}\n\
             </style>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape(title),
            self.body
        )
    }
}

/// The KPI report as a page.
pub fn kpi_html(report: &Report) -> String {
    let title = "KPI report";
    let mut page = Page::new(title, report);
    page.kpis(report);
    page.finish(title)
}

/// REQ FAULT-8: the fault analysis as a page.
pub fn fault_html(report: &Report, a: &FaultAnalysis) -> String {
    let title = "Fault analysis report (REQ FAULT-8)";
    let mut page = Page::new(title, report);
    page.kpis(report);
    page.heading("Faults by code");
    let codes: Vec<Vec<String>> = a
        .by_code
        .iter()
        .map(|(code, n)| {
            vec![
                if code.is_empty() {
                    "(none)".into()
                } else {
                    code.clone()
                },
                n.to_string(),
            ]
        })
        .collect();
    page.table(&["fault code", "faults"], &codes);
    page.heading("Faults by pile");
    let piles: Vec<Vec<String>> = a
        .by_pile
        .iter()
        .map(|p| {
            vec![
                p.station_id.clone(),
                p.pile_id.clone(),
                p.faults.to_string(),
                yes(p.repeated()),
            ]
        })
        .collect();
    page.table(&["station", "pile", "faults", "repeat fault"], &piles);
    page.heading("Work orders");
    page.table(FAULT_COLUMNS, &fault_fields(a));
    page.finish(title)
}

/// REQ DEF-5: the defect statistics as a page.
pub fn defect_html(report: &Report, s: &DefectStatistics) -> String {
    let title = "Defect statistics (REQ DEF-5)";
    let mut page = Page::new(title, report);
    page.heading("By class");
    let classes: Vec<Vec<String>> = report
        .rows
        .last()
        .map(|row| {
            row.kpis
                .defects
                .iter()
                .map(|d| {
                    vec![
                        d.class.to_owned(),
                        d.opened.to_string(),
                        d.closed.to_string(),
                        pct(share(d.closed_on_time, d.closed_judged), d.closed_judged),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    page.table(&["class", "found", "accepted", "on time %"], &classes);
    page.heading("By station");
    let stations: Vec<Vec<String>> = s
        .by_station
        .iter()
        .map(|d| {
            vec![
                d.station_id.clone(),
                d.opened.to_string(),
                d.closed.to_string(),
                d.open_at_end.to_string(),
                d.overdue.to_string(),
            ]
        })
        .collect();
    page.table(
        &["station", "found", "accepted", "open at end", "overdue"],
        &stations,
    );
    page.heading("Defects");
    page.table(DEFECT_COLUMNS, &defect_fields(s));
    page.finish(title)
}

/// REQ EVAL-1: the self-evaluation as a page: the year's figures and the non-conformity report.
pub fn self_evaluation_html(report: &Report, list: &[NonConformity]) -> String {
    let title = format!("Self-evaluation {} (REQ EVAL-1)", report.period.label);
    let mut page = Page::new(&title, report);
    page.kpis(report);
    page.heading("Non-conformity report");
    if report.computed_at < report.period.end {
        page.paragraph("The year is not over: rules judged at its end (yearly maintenance) are not yet judged.");
    }
    page.table(NON_CONFORMITY_COLUMNS, &non_conformity_fields(list));
    page.finish(&title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_text_is_escaped() {
        assert_eq!(
            escape("<b>\"Li\" & 'Wang'</b>"),
            "&lt;b&gt;&quot;Li&quot; &amp; &#39;Wang&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn fields_with_separators_or_quotes_are_quoted() {
        assert_eq!(field("S1"), "S1");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
