//! Telemetry's registry cache seen through the ingest: once an operator is read whole, the
//! registry's changes (a pile registered, a station opened, a pile retired) reach its reports
//! by reading the one pile or station back, never the whole operator again; an operator of
//! 100,000 piles takes seconds to read whole, and every report of its piles would wait for it.
//! One test in its own binary, since the read counts are per process.

mod common;

use chargemesh::demo;
use chargemesh::pki::DEMO_OPERATOR_ID;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::telemetry::v1 as tm;
use common::{TelemetryStream, TestMesh, eventually};

/// `chargemesh_registry_reads_total{kind="<kind>"}` in the process's metrics.
fn reads(kind: &str) -> u64 {
    let text = chargemesh_kit::metrics::encode();
    let prefix = format!("chargemesh_registry_reads_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends one status report of `pile` and returns its rejection's reason, or `None` when it is
/// acknowledged.
async fn verdict(stream: &mut TelemetryStream, sequence: u64, pile: &str) -> Option<String> {
    stream
        .send(vec![tm::TelemetryMessage {
            sequence,
            pile_id: pile.into(),
            connector_id: format!("{pile}-1"),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                state: tm::ConnectorState::Idle as i32,
                ..Default::default()
            })),
            ..Default::default()
        }])
        .await;
    loop {
        match stream.next().await {
            tm::connect_response::Body::Acknowledgement(ack)
                if (ack.first_sequence..=ack.last_sequence).contains(&sequence) =>
            {
                return None;
            }
            tm::connect_response::Body::Rejection(r) if r.sequence == sequence => {
                return Some(r.reason);
            }
            _ => {}
        }
    }
}

async fn register_pile(
    op: &mut asset::asset_service_client::AssetServiceClient<tonic::transport::Channel>,
    station: &str,
    pile: &str,
) {
    op.create_pile(asset::CreatePileRequest {
        pile: Some(demo::pile(
            DEMO_OPERATOR_ID,
            station,
            pile,
            asset::PileType::Ac,
            7.0,
        )),
    })
    .await
    .expect("pile");
}

#[tokio::test]
async fn registry_changes_reach_the_ingest_without_reading_the_operator_whole_again() {
    let mesh = TestMesh::start().await;
    common::two_station_fleet(&mesh).await;
    let mut op = mesh.client("operator");
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    let mut sequence = 0;
    let mut next = || {
        sequence += 1;
        sequence
    };

    // The first report reads the operator whole.
    assert_eq!(verdict(&mut platform, next(), "P1").await, None);
    assert_eq!(reads("operator"), 1);

    // A pile registered after that reports at once.
    register_pile(&mut op, "S-URB", "P3").await;
    assert_eq!(verdict(&mut platform, next(), "P3").await, None);

    // So does one at a station opened after that.
    op.create_station(asset::CreateStationRequest {
        station: Some(demo::station(DEMO_OPERATOR_ID, "S-NEW", "330602")),
    })
    .await
    .expect("station");
    register_pile(&mut op, "S-NEW", "P4").await;
    assert_eq!(verdict(&mut platform, next(), "P4").await, None);

    // REQ MON-6: a pile retired is refused once its announcement is read.
    op.retire_pile(asset::RetirePileRequest {
        operator_id: DEMO_OPERATOR_ID.into(),
        pile_id: "P1".into(),
        reason: "replaced by P3".into(),
    })
    .await
    .expect("retired");
    let refused = eventually(
        async || verdict(&mut platform, next(), "P1").await,
        |reason| reason.as_deref().is_some_and(|r| r.contains("MON-6")),
    )
    .await;
    assert!(
        refused.as_deref().is_some_and(|r| r.contains("retired")),
        "{refused:?}"
    );

    // The operator was read whole once; each change, one pile or station at a time.
    assert_eq!(
        reads("operator"),
        1,
        "{}",
        chargemesh_kit::metrics::encode()
    );
    assert!(reads("pile") >= 3, "{}", chargemesh_kit::metrics::encode());
    mesh.stop().await;
}
