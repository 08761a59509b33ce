//! The fleet page (REQ MON-1): every connector of the operator by state, faulted and offline
//! first, and a fault a pile reports reaching an open page live.

use chargemesh_proto::telemetry::v1 as tm;

use super::common::TelemetryStream;
use super::http::Browser;
use super::{MONITOR, console, sign_in, status};

#[tokio::test]
async fn mon_1_the_monitor_sees_the_fleet_by_state_and_a_fault_arrives_live() {
    let (mesh, addr) = console().await;
    let platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![
            status(1, "P1", tm::ConnectorState::Idle, ("", "")),
            status(2, "P2", tm::ConnectorState::Charging, ("", "")),
        ])
        .await;
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let home = monitor.get("/").await;
    assert_eq!(
        home.header("location"),
        Some("/fleet"),
        "the monitor's first screen"
    );
    let fleet = super::common::eventually(
        async || monitor.get("/fleet").await,
        |page| page.body.contains("充电中") && page.body.contains("空闲"),
    )
    .await;
    assert!(
        fleet.body.contains("S-URB") && fleet.body.contains("S-OUT"),
        "{}",
        fleet.body
    );
    assert!(fleet.body.contains("data-connector=\"MA2D3K7Q0/P1-1\""));

    // A page open on the fleet gets the fault as it is committed.
    let mut live = monitor.stream("/fleet/events").await;
    live.until("text/event-stream").await;
    platform
        .send(vec![status(
            3,
            "P1",
            tm::ConnectorState::Fault,
            ("E07", "gun lock"),
        )])
        .await;
    let seen = live.until("\"cec\":255").await.to_owned();
    assert!(
        seen.contains("\"connector\":\"MA2D3K7Q0/P1-1\"") && seen.contains("E07 gun lock"),
        "{seen}"
    );
    assert!(seen.contains("故障"));
    // And the page drawn now puts the faulted connector's station first.
    let fleet = monitor.get("/fleet").await;
    let (urban, outlying) = (
        fleet.body.find("S-URB").expect("urban"),
        fleet.body.find("S-OUT").expect("outlying"),
    );
    assert!(urban < outlying, "the station with a fault comes first");

    // Not signed in: no stream.
    let mut stranger = Browser::new(addr);
    assert_eq!(stranger.get("/fleet/events").await.status, 401);
}

#[tokio::test]
async fn one_session_holds_only_so_many_live_pages() {
    let (_mesh, addr) = super::console_with(|c| c.max_live_per_session = 1).await;
    let mut monitor = Browser::new(addr);
    assert_eq!(sign_in(&mut monitor, MONITOR).await.status, 303);
    let mut first = monitor.stream("/fleet/events").await;
    first.until("text/event-stream").await;
    let refused = monitor.get("/fleet/events").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    // Closed, its place is free again.
    drop(first);
    let again = super::common::eventually(
        async || {
            let mut live = monitor.stream("/fleet/events").await;
            let seen =
                tokio::time::timeout(std::time::Duration::from_secs(2), live.until("HTTP/1.1"))
                    .await
                    .map(|s| s.to_owned())
                    .unwrap_or_default();
            seen.contains(" 200 ")
        },
        |ok| *ok,
    )
    .await;
    assert!(again, "a new live page once the first closed");
}
