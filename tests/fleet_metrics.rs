//! The fleet gauge SREs alert on: `chargemesh_connectors{state}` follows the live status, and a
//! connector silent past the interval counts as offline (REQ MON-1). One test in its own binary,
//! since the metrics are per process.

mod common;

use std::sync::Arc;

use chargemesh_kit::clock::{Clock as _, ManualClock};
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use common::{TelemetryStream, TestMesh, eventually};

/// The value of `chargemesh_connectors{state="<state>"}` in the process's metrics.
fn connectors(state: &str) -> Option<i64> {
    let text = chargemesh_kit::metrics::encode();
    let prefix = format!("chargemesh_connectors{{state=\"{state}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn report(
    sequence: u64,
    pile: &str,
    body: tm::telemetry_message::Body,
    at: chrono::DateTime<chrono::Utc>,
) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        observe_time: Some(chargemesh_kit::time::to_timestamp(at)),
        body: Some(body),
        ..Default::default()
    }
}

#[tokio::test]
async fn mon_1_the_connectors_gauge_counts_silent_connectors_as_offline() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh_clock = clock.clone();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.config.telemetry.settings.sweep_interval_ms = 20;
        opts.config.telemetry.settings.heartbeat_flush_ms = 20;
        opts.config.telemetry.settings.offline_after_seconds = 180;
    })
    .await;
    common::two_station_fleet(&mesh).await;
    let status = |s| {
        tm::telemetry_message::Body::Status(tm::ConnectorStatus {
            state: s as i32,
            ..Default::default()
        })
    };
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![
            report(1, "P1", status(tm::ConnectorState::Idle), clock.now()),
            report(2, "P2", status(tm::ConnectorState::Charging), clock.now()),
        ])
        .await;
    let counted = eventually(
        async || {
            (
                connectors("idle"),
                connectors("charging"),
                connectors("offline"),
            )
        },
        |c| *c == (Some(1), Some(1), Some(0)),
    )
    .await;
    assert_eq!(counted, (Some(1), Some(1), Some(0)));

    // P2 keeps its heartbeat; P1 falls silent past the interval.
    clock.advance(chrono::Duration::seconds(120));
    platform
        .send(vec![report(
            3,
            "P2",
            tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {}),
            clock.now(),
        )])
        .await;
    // The heartbeat is in the store (through the log, or a flush of heartbeats held in memory)
    // before the clock moves past P1's silence: the manual clock jumps minutes where a flush
    // comes within milliseconds.
    loop {
        if let tm::connect_response::Body::Acknowledgement(ack) = platform.next().await
            && ack.last_sequence >= 3
        {
            break;
        }
    }
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let seen = eventually(
        async || {
            regulator
                .get_station_status(reg::GetStationStatusRequest {
                    stations: vec![reg::StationKey {
                        operator_id: chargemesh::pki::DEMO_OPERATOR_ID.into(),
                        station_id: "S-OUT".into(),
                    }],
                })
                .await
                .ok()
                .and_then(|r| {
                    r.into_inner()
                        .stations
                        .into_iter()
                        .flat_map(|s| s.connectors)
                        .find(|c| c.connector_id == "P2-1")
                        .and_then(|c| c.last_seen_time)
                        .map(|t| t.seconds)
                })
        },
        |seen| *seen == Some(clock.now().timestamp()),
    )
    .await;
    assert_eq!(seen, Some(clock.now().timestamp()), "P2's heartbeat stored");
    clock.advance(chrono::Duration::seconds(100));
    let counted = eventually(
        async || {
            (
                connectors("idle"),
                connectors("charging"),
                connectors("offline"),
            )
        },
        |c| *c == (Some(0), Some(1), Some(1)),
    )
    .await;
    assert_eq!(
        counted,
        (Some(0), Some(1), Some(1)),
        "{}",
        chargemesh_kit::metrics::encode()
    );
    mesh.stop().await;
}
