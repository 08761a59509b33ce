//! Reports for the O&M manager (REQ EVAL-1): the month's KPIs per station and in all, its
//! charts, and the exports as the reporting component makes them.

use chargemesh_proto::telemetry::v1 as tm;

use super::common::{TelemetryStream, eventually};
use super::http::Browser;
use super::{console, console_polling, sign_in, status};

const MANAGER: &str = "4:om_manager";

#[tokio::test]
async fn eval_1_the_manager_reads_the_month_s_kpis_and_exports_the_csv() {
    let (_mesh, addr) = console().await;
    let mut manager = Browser::new(addr);
    assert_eq!(sign_in(&mut manager, MANAGER).await.status, 303);
    let home = manager.get("/").await;
    assert_eq!(
        home.header("location"),
        Some("/reports"),
        "the manager's first screen"
    );
    let report = manager.get("/reports").await;
    assert_eq!(report.status, 200, "{}", report.body);
    assert!(
        report.body.contains("全部站点"),
        "the operator's total row: {}",
        report.body
    );
    assert!(
        report.body.contains("每日可用率"),
        "the month's chart by day"
    );
    assert!(report.body.contains("<svg"), "charts drawn inline");

    // The month's KPI CSV, as a download.
    let month = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%Y-%m")
        .to_string();
    let csv = manager
        .get(&format!(
            "/reports/export?kind=kpi&format=csv&period=month&start={month}"
        ))
        .await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.header("content-type")
            .is_some_and(|c| c.starts_with("text/csv"))
    );
    let disposition = csv.header("content-disposition").expect("a download");
    assert!(
        disposition.starts_with("attachment;") && disposition.contains(&month),
        "{disposition}"
    );
    assert!(
        csv.body.starts_with('\u{feff}'),
        "a byte-order mark for spreadsheet programs"
    );
    let header = csv.body.lines().next().unwrap_or_default();
    assert!(header.contains("availability"), "{header}");
    assert!(
        csv.body.contains(super::OP),
        "the operator's row: {}",
        csv.body
    );

    // A period the API refuses keeps the page, with the reason.
    let year = manager.get("/reports?period=year&start=1999").await;
    assert!(year.status == 200 || year.status == 422, "{}", year.status);
}

#[tokio::test]
async fn fault_8_the_month_s_faults_are_charted_by_pile() {
    let (mesh, addr) = console_polling().await;
    // A fault opens an automatic work order; reporting counts it against its pile.
    let platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status(
            1,
            "P1",
            tm::ConnectorState::Fault,
            ("E42", "insulation"),
        )])
        .await;
    let mut manager = Browser::new(addr);
    assert_eq!(sign_in(&mut manager, MANAGER).await.status, 303);
    let report = eventually(
        async || manager.get("/reports").await,
        |page| page.body.contains("各充电桩故障次数"),
    )
    .await;
    assert!(report.body.contains("P1: 1"), "{}", report.body);
}
