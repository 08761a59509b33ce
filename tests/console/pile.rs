//! A pile's page (REQ MON-1, MON-4, MON-5): its status history, and its suspension with the
//! evidence first and resumption, from the console.

use chargemesh_proto::telemetry::v1 as tm;

use super::common::{TelemetryStream, eventually};
use super::http::Browser;
use super::{MONITOR, console, sign_in, status};

#[tokio::test]
async fn mon_4_the_monitor_suspends_a_pile_with_evidence_and_resumes_it() {
    let (mesh, addr) = console().await;
    let platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status(
            1,
            "P1",
            tm::ConnectorState::Fault,
            ("E42", "insulation"),
        )])
        .await;
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let page = eventually(
        async || monitor.get("/fleet/S-URB/P1").await,
        |p| p.body.contains("E42 insulation"),
    )
    .await;
    assert!(page.body.contains("故障"), "the history: {}", page.body);
    let csrf = page.csrf();

    // REQ MON-4: evidence first; refused without, with the reason and the choice kept.
    let refused = monitor
        .post(
            "/fleet/S-URB/P1/suspend",
            &[
                ("csrf", &csrf),
                ("reason", "2"),
                ("evidence", ""),
                ("note", "gun burnt"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("MON-4"), "{}", refused.body);
    assert!(refused.body.contains("value=\"gun burnt\""));
    let suspended = monitor
        .post(
            "/fleet/S-URB/P1/suspend",
            &[
                ("csrf", &csrf),
                ("reason", "2"),
                ("evidence", "photo-0042.jpg\nwork order WO-1"),
                ("note", "gun burnt"),
            ],
        )
        .await;
    assert_eq!(suspended.status, 303, "{}", suspended.body);
    let page = monitor.get("/fleet/S-URB/P1").await;
    assert!(page.body.contains("暂停使用") && page.body.contains("photo-0042.jpg"));
    // Drivers see it out of service too.
    let public = Browser::new(addr).get("/s/MA2D3K7Q0/S-URB").await;
    assert!(public.body.contains("暂停使用"), "{}", public.body);

    // REQ MON-5: resumed.
    let resumed = monitor
        .post(
            "/fleet/S-URB/P1/resume",
            &[("csrf", &csrf), ("note", "gun replaced")],
        )
        .await;
    assert_eq!(resumed.status, 303, "{}", resumed.body);
    assert!(monitor.get("/fleet/S-URB/P1").await.body.contains("在用"));
}
