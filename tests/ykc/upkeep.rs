//! What the edge keeps a logged-in YKC pile up to date with (its billing model when the
//! station's tariff changes, its clock), TLS offered beside plain TCP, and the BMS frames kept
//! with the session.

use std::sync::Arc;
use std::time::Duration;

use chargemesh::demo;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use chargemesh_ykc::Message;
use chargemesh_ykc::records::Bms;

use super::common::{TestMesh, eventually};
use super::{CODE, OP, YkcPile, edge, fleet_with};

/// Schedules a dearer board for the test station, in force from `delay` on.
async fn dearer_tariff(mesh: &TestMesh, delay: chrono::Duration) {
    let mut board = demo::price_board();
    for period in &mut board {
        period.service_fee = "0.9000".into();
    }
    let from = chrono::Utc::now() + delay;
    mesh.client("operator")
        .schedule_tariff(asset::ScheduleTariffRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
            effective_time: Some(prost_types::Timestamp {
                seconds: from.timestamp(),
                nanos: 0,
            }),
            periods: board,
        })
        .await
        .expect("a new tariff version");
}

/// Checks the pile's model `model` and returns the edge's verdict (0x00 the same).
async fn check_model(pile: &mut YkcPile, model: &str) -> u8 {
    pile.send(&Message::ModelCheck {
        pile: CODE.into(),
        model: model.into(),
    })
    .await;
    pile.expect("the model check's answer", |_, m| match m {
        Message::ModelCheckReply { result, .. } => Some(*result),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn mon_10_a_tariff_change_is_set_on_the_pile_once_its_gun_is_idle() {
    let mesh = fleet_with(|ykc| ykc.tariff_refresh_s = 1).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
    assert_eq!(
        check_model(&mut pile, "0001").await,
        0x00,
        "the model in force"
    );

    // Charging when the new version comes into force: the model waits for the gun.
    let serial = format!("{CODE}01{}", "2".repeat(16));
    pile.realtime(0x03, &serial, 100, 0).await;
    dearer_tariff(&mesh, chrono::Duration::seconds(2)).await;
    let quiet = tokio::time::timeout(
        Duration::from_secs(5),
        pile.expect("a model setting", |_, m| {
            matches!(m, Message::ModelSet(_)).then_some(())
        }),
    )
    .await;
    assert!(quiet.is_err(), "no model is set on a charging gun");

    // Idle again: the new model is set, and the pile has it from then on.
    pile.realtime(0x02, &"0".repeat(32), 0, 0).await;
    let model = pile
        .expect("a model setting", |_, m| match m {
            Message::ModelSet(model) => Some(model.clone()),
            _ => None,
        })
        .await;
    assert_eq!(model.model, "0002", "the tariff's second version");
    assert_eq!(
        model.rates[2],
        (65_000, 90_000),
        "flat, with the new service fee"
    );
    pile.send(&Message::ModelSetReply {
        pile: CODE.into(),
        result: 0x01,
    })
    .await;
    assert_eq!(check_model(&mut pile, "0002").await, 0x00);
    assert_eq!(
        check_model(&mut pile, "0001").await,
        0x01,
        "the old model is no longer the one in force"
    );
}

#[tokio::test]
async fn mon_10_a_pile_that_refuses_its_model_raises_an_alarm_and_is_not_asked_again() {
    let mesh = fleet_with(|ykc| ykc.tariff_refresh_s = 1).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
    assert_eq!(check_model(&mut pile, "0001").await, 0x00);
    dearer_tariff(&mesh, chrono::Duration::seconds(1)).await;
    pile.expect("a model setting", |_, m| {
        matches!(m, Message::ModelSet(_)).then_some(())
    })
    .await;
    pile.send(&Message::ModelSetReply {
        pile: CODE.into(),
        result: 0x00,
    })
    .await;
    let alarms = eventually(
        async || log_of(&mesh, "alarm").await,
        |entries| {
            entries.iter().any(|m| {
                matches!(&m.body, Some(tm::telemetry_message::Body::Alarm(a)) if a.code == "ykc.model_refused")
            })
        },
    )
    .await;
    assert!(!alarms.is_empty());
    let again = tokio::time::timeout(
        Duration::from_secs(3),
        pile.expect("a model setting", |_, m| {
            matches!(m, Message::ModelSet(_)).then_some(())
        }),
    )
    .await;
    assert!(again.is_err(), "a refused model is not sent again");
}

#[tokio::test]
async fn the_pile_s_clock_is_set_after_its_login_and_then_every_period() {
    let mesh = fleet_with(|ykc| ykc.time_sync_s = 1).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
    for _ in 0..3 {
        pile.expect("a time sync", |_, m| {
            matches!(m, Message::TimeSync { .. }).then_some(())
        })
        .await;
    }
}

#[tokio::test]
async fn netsec_1_a_pile_may_connect_over_tls_and_is_still_known_by_its_code_and_network() {
    let mesh = fleet_with(|ykc| ykc.tls_listen = "127.0.0.1:0".into()).await;
    let addr = mesh
        .mesh
        .as_ref()
        .and_then(|m| m.ykc_tls_addr)
        .expect("the YKC TLS listener");
    // TLS 1.2, as much pile firmware has, trusting the platform's CA.
    let roots = chargemesh_kit::tls::root_store(&mesh.pki().ca()).expect("roots");
    let config = rustls::ClientConfig::builder_with_provider(chargemesh_kit::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connected");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS 1.2 handshake with the gateway's certificate");
    let mut pile = YkcPile::over(Box::new(tls), CODE);
    assert_eq!(pile.login().await, 0x00);
    pile.realtime(0x02, &"0".repeat(32), 0, 0).await;
    assert_eq!(super::connector_status(&mesh, |s| s == 1).await, 1);

    // An unregistered code is refused over TLS as over TCP.
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connected");
    let roots = chargemesh_kit::tls::root_store(&mesh.pki().ca()).expect("roots");
    let config = rustls::ClientConfig::builder_with_provider(chargemesh_kit::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS 1.3 handshake");
    let mut stranger = YkcPile::over(Box::new(tls), "33060299999999");
    assert_eq!(stranger.login().await, 0x01);
}

/// The telemetry log's messages of `kind`, as a mesh component reads it.
async fn log_of(mesh: &TestMesh, kind: &str) -> Vec<tm::TelemetryMessage> {
    let mut telemetry =
        TelemetryServiceClient::new(mesh.direct_channel("telemetry", &mesh.pki_files("metering")));
    telemetry
        .read_log(tm::ReadLogRequest {
            after_sequence: 0,
            kinds: vec![kind.into()],
            limit: 1000,
        })
        .await
        .map(|r| r.into_inner().entries)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.message)
        .collect()
}

#[tokio::test]
async fn bms_handshake_parameters_and_summary_are_kept_with_the_session_once() {
    let mesh = fleet_with(|_| {}).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
    let serial = format!("{CODE}01{}", "3".repeat(16));
    pile.realtime(0x03, &serial, 100, 0).await;
    // A handshake ending in a VIN, sent twice (a pile resending it is one report).
    let mut handshake = vec![0x01, 0x01, 0x00, 0x03, 0xE8, 0x03];
    handshake.extend_from_slice(b"LSVAU2180N2183294");
    let bms = Message::Bms {
        kind: 0x15,
        frame: Bms {
            serial: serial.clone(),
            pile: CODE.into(),
            gun: 1,
            data: handshake.clone(),
        },
    };
    pile.send(&bms).await;
    pile.send(&bms).await;
    // The 15-second demand frames are not kept.
    pile.send(&Message::Bms {
        kind: 0x23,
        frame: Bms {
            serial: serial.clone(),
            pile: CODE.into(),
            gun: 1,
            data: vec![0; 20],
        },
    })
    .await;
    pile.send(&Message::Bms {
        kind: 0x19,
        frame: Bms {
            serial: serial.clone(),
            pile: CODE.into(),
            gun: 1,
            data: vec![0x50, 0x10, 0x0E],
        },
    })
    .await;
    let kept = eventually(
        async || log_of(&mesh, "vehicle_data").await,
        |entries| entries.len() >= 2,
    )
    .await;
    let data: Vec<tm::VehicleData> = kept
        .iter()
        .filter_map(|m| match &m.body {
            Some(tm::telemetry_message::Body::VehicleData(v)) => Some(v.clone()),
            _ => None,
        })
        .collect();
    let kinds: Vec<&str> = data.iter().map(|v| v.kind.as_str()).collect();
    assert_eq!(kinds, ["ykc.0x15", "ykc.0x19"], "kept once each, in order");
    assert_eq!(data[0].session_ref, serial, "with the session's serial");
    assert_eq!(data[0].data, handshake, "as the pile sent it");
    assert!(
        kept.iter()
            .all(|m| m.pile_id == super::PILE && m.connector_id == format!("{}-1", super::PILE))
    );
}
