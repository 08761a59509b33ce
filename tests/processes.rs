//! The mesh as Kubernetes runs it: each role its own process of the real binary
//! (`chargemesh serve --role ...`) from one configuration file, talking over the mesh's mutual
//! TLS. The telemetry component, in its own process, ingests a pile's reports through the
//! gateway, reads the registry from the asset component in another process, marks the pile's
//! filed station connected there (REQ BASE-2), and serves the regulator's watch.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chargemesh::pki::{self, Authority, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_kit::tls::{self, TlsFiles};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use common::TD;
use common::processes::{Role, free_port, mesh_toml};

const STATION: &str = "SX-KQ-002";
const PILE: &str = "SX-KQ-002-P01";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_2_telemetry_in_its_own_process_ingests_connects_the_station_and_feeds_the_watch() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!(
        "chargemesh-processes-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let ca = Authority::new("test CA").expect("ca");
    pki::init_with(&ca, &dir.join("pki"), TD).expect("pki");
    let ports = [
        ("gateway", free_port(), free_port()),
        ("asset", free_port(), free_port()),
        ("telemetry", free_port(), free_port()),
    ];
    let config = dir.join("mesh.toml");
    std::fs::write(&config, mesh_toml(&dir, &ports, None)).expect("config");
    let mut roles: Vec<Role> = ports
        .iter()
        .map(|(name, _, admin)| Role::start(&dir, &config, name, *admin))
        .collect();
    for role in &mut roles {
        role.ready().await;
    }
    let gateway = std::net::SocketAddr::from(([127, 0, 0, 1], ports[0].1));
    let channel = |files: &TlsFiles| {
        let config = Arc::new(tls::client_config(files).expect("tls"));
        tls::channel(&format!("https://{gateway}"), config).expect("channel")
    };
    let pki = pki::PkiDir {
        dir: dir.join("pki"),
    };
    // The demo fleet: SX-KQ-002 accepted and filed, not yet connected.
    chargemesh::demo::seed(gateway, &pki.files("operator"))
        .await
        .expect("the registry takes the demo fleet");
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

    let mut watch = StatusServiceClient::new(channel(&pki.files("regulator")))
        .watch_status_changes(reg::WatchStatusChangesRequest {
            cursor: String::new(),
            from_start: true,
        })
        .await
        .expect("the regulator watches")
        .into_inner();

    // The pile reports through the gateway with its own certificate.
    let pile = Principal::Pile {
        operator_id: DEMO_OPERATOR_ID.into(),
        station_id: STATION.into(),
        pile_id: PILE.into(),
    };
    let pair = ca
        .issue_for_days(&pile, TD, &[], 30)
        .expect("pile identity");
    pki::write_pair(&pki.dir, "kq-pile", &pair).expect("write");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = TelemetryServiceClient::new(channel(&pki.files("kq-pile")))
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    tx.send(tm::ConnectRequest {
        messages: vec![tm::TelemetryMessage {
            sequence: 1,
            connector_id: format!("{PILE}-1"),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                state: tm::ConnectorState::Charging as i32,
                ..Default::default()
            })),
            ..Default::default()
        }],
    })
    .await
    .expect("sent");
    let answer = tokio::time::timeout(Duration::from_secs(20), answers.message())
        .await
        .expect("answered in time")
        .expect("stream healthy")
        .expect("an answer");
    assert!(
        matches!(
            answer.body,
            Some(tm::connect_response::Body::Acknowledgement(
                tm::Acknowledgement {
                    first_sequence: 1,
                    last_sequence: 1
                }
            ))
        ),
        "{answer:?}\ntelemetry log:\n{}",
        roles[2].log()
    );

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
    drop(roles);
    let _ = std::fs::remove_dir_all(&dir);
}
