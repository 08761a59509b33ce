//! Reports as files a person opens: CSV for spreadsheets (RFC 4180, CRLF line ends, UTF-8 with a
//! byte-order mark so spreadsheet programs read it as UTF-8).

use crate::domain::kpi::Kpis;
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

/// The KPI report as CSV: a header, one line per station, then the scope's total (station "ALL").
pub fn kpi_csv(report: &Report) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(&KPI_COLUMNS.join(","));
    out.push_str("\r\n");
    for row in &report.rows {
        let mut fields = vec![
            row.operator_id.clone(),
            row.station_id.clone().unwrap_or_else(|| "ALL".into()),
            row.area_code.clone(),
            report.period.label.clone(),
        ];
        fields.extend(kpi_fields(&row.kpis));
        let line: Vec<String> = fields.iter().map(|f| field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_separators_or_quotes_are_quoted() {
        assert_eq!(field("S1"), "S1");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
