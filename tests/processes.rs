//! The mesh as Kubernetes runs it: each role its own process of the real binary
//! (`chargemesh serve --role ...`) from one configuration file, talking over the mesh's mutual
//! TLS. The telemetry component, in its own process, ingests a pile's reports through the
//! gateway, reads the registry from the asset component in another process, marks the pile's
//! filed station connected there (REQ BASE-2), and serves the regulator's watch.

mod common;

use std::time::Duration;

use chargemesh::pki::{self, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use common::TD;
use common::processes::{ProcessMesh, Role};

const STATION: &str = "SX-KQ-002";
const PILE: &str = "SX-KQ-002-P01";

/// A telemetry stream through the gateway with the pile's own certificate: its sender and
/// its answers.
async fn pile_stream(
    mesh: &ProcessMesh,
) -> (
    tokio::sync::mpsc::Sender<tm::ConnectRequest>,
    tonic::Streaming<tm::ConnectResponse>,
) {
    let pile = Principal::Pile {
        operator_id: DEMO_OPERATOR_ID.into(),
        station_id: STATION.into(),
        pile_id: PILE.into(),
    };
    let pair = mesh
        .ca
        .issue_for_days(&pile, TD, &[], 30)
        .expect("pile identity");
    pki::write_pair(&mesh.pki.dir, "kq-pile", &pair).expect("write");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let answers = TelemetryServiceClient::new(mesh.channel("kq-pile"))
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    (tx, answers)
}

/// Sends `body` as message `sequence` of the pile's first connector and waits for its
/// acknowledgement.
async fn report(
    tx: &tokio::sync::mpsc::Sender<tm::ConnectRequest>,
    answers: &mut tonic::Streaming<tm::ConnectResponse>,
    sequence: u64,
    body: tm::telemetry_message::Body,
    telemetry: &Role,
) {
    tx.send(tm::ConnectRequest {
        messages: vec![tm::TelemetryMessage {
            sequence,
            connector_id: format!("{PILE}-1"),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(body),
            ..Default::default()
        }],
    })
    .await
    .expect("sent");
    loop {
        let answer = tokio::time::timeout(Duration::from_secs(20), answers.message())
            .await
            .expect("answered in time")
            .expect("stream healthy")
            .expect("an answer");
        match answer.body {
            Some(tm::connect_response::Body::Acknowledgement(ack))
                if (ack.first_sequence..=ack.last_sequence).contains(&sequence) =>
            {
                return;
            }
            Some(tm::connect_response::Body::Acknowledgement(_)) => continue,
            other => panic!("{other:?}\ntelemetry log:\n{}", telemetry.log()),
        }
    }
}

fn charging() -> tm::telemetry_message::Body {
    tm::telemetry_message::Body::Status(tm::ConnectorStatus {
        state: tm::ConnectorState::Charging as i32,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_2_telemetry_in_its_own_process_ingests_connects_the_station_and_feeds_the_watch() {
    let mesh = ProcessMesh::start("processes", None, "").await;
    let gateway = mesh.gateway;
    let pki = &mesh.pki;
    let channel = |name: &str| mesh.channel(name);
    let mut registry = chargemesh::demo::asset_client(gateway, &pki.files("operator")).expect("c");
    let station = |r: asset::GetStationResponse| r.station.expect("station").state;
    let filed = registry
        .get_station(asset::GetStationRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            station_id: STATION.into(),
        })
        .await
        .expect("station")
        .into_inner();
    assert_eq!(station(filed), asset::StationState::Filed as i32);

    let mut watch = StatusServiceClient::new(channel("regulator"))
        .watch_status_changes(reg::WatchStatusChangesRequest {
            cursor: String::new(),
            from_start: true,
        })
        .await
        .expect("the regulator watches")
        .into_inner();

    // The pile reports through the gateway with its own certificate.
    let (tx, mut answers) = pile_stream(&mesh).await;
    report(&tx, &mut answers, 1, charging(), &mesh.roles[2]).await;

    // REQ BASE-2: the first report connected the filed station, in the asset process.
    let connected = registry
        .get_station(asset::GetStationRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            station_id: STATION.into(),
        })
        .await
        .expect("station")
        .into_inner();
    assert_eq!(station(connected), asset::StationState::Connected as i32);
    let history = registry
        .list_change_records(asset::ListChangeRecordsRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            entity_type: "station".into(),
            entity_id: STATION.into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .change_records;
    assert!(
        history
            .iter()
            .any(|r| r.action == "connect" && r.note.contains("first telemetry report")),
        "{history:?}"
    );

    // The regulator of the area sees the change on its watch.
    let change = loop {
        let batch = tokio::time::timeout(Duration::from_secs(20), watch.message())
            .await
            .expect("a change in time")
            .expect("watch healthy")
            .expect("watch open");
        if let Some(change) = batch
            .changes
            .into_iter()
            .find(|c| c.status.as_ref().is_some_and(|s| s.pile_id == PILE))
        {
            break change;
        }
    };
    let status = change.status.expect("status");
    assert_eq!(status.state, tm::ConnectorState::Charging as i32);
    assert_eq!(status.cec_status, 3);
    assert_eq!(status.area_code, "330603");
}

/// The last-seen time the regulator sees for the pile's first connector, as (seconds, nanos).
async fn last_seen(mesh: &ProcessMesh) -> (i64, i32) {
    let stations = StatusServiceClient::new(mesh.channel("regulator"))
        .get_station_status(reg::GetStationStatusRequest {
            stations: vec![reg::StationKey {
                operator_id: DEMO_OPERATOR_ID.into(),
                station_id: STATION.into(),
            }],
        })
        .await
        .expect("status")
        .into_inner()
        .stations;
    let seen = stations
        .into_iter()
        .flat_map(|s| s.connectors)
        .find(|c| c.connector_id == format!("{PILE}-1"))
        .and_then(|c| c.last_seen_time)
        .expect("the connector has been seen");
    (seen.seconds, seen.nanos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_1_a_stopping_telemetry_process_writes_the_heartbeats_it_held() {
    let mut mesh = ProcessMesh::start("processes", None, "").await;
    let (tx, mut answers) = pile_stream(&mesh).await;
    let heartbeat = || tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {});
    report(&tx, &mut answers, 1, charging(), &mesh.roles[2]).await;
    // A heartbeat speaks for every connector of the pile: by the time it is acknowledged the
    // log has confirmed each (the status report its own, this heartbeat the others if it went
    // through the log).
    report(&tx, &mut answers, 2, heartbeat(), &mesh.roles[2]).await;
    let confirmed = last_seen(&mesh).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // A confirmed pile's heartbeat is held in memory: its last-seen time is written once the
    // confirmation is two minutes old, or when the process stops.
    report(&tx, &mut answers, 3, heartbeat(), &mesh.roles[2]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(last_seen(&mesh).await, confirmed, "held, not written");
    let exit = mesh.telemetry().terminate().await;
    assert!(exit.success(), "{exit}:\n{}", mesh.telemetry().log());
    mesh.telemetry().start_again();
    mesh.telemetry().ready().await;
    let after = last_seen(&mesh).await;
    assert!(
        after.0 > confirmed.0,
        "the stop wrote the heartbeat a second after the confirmation: {after:?} after {confirmed:?}"
    );
}
