//! Pushes to a regulator platform over T/CEC 102, end to end on 127.0.0.1 against the mock
//! regulator (REQ BASE-2): a status change arrives once; with the regulator down and the mesh
//! restarted in between, everything arrives afterwards, in order, once; an order is resent until
//! the regulator confirms it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use chargemesh::demo;
use chargemesh::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID};
use chargemesh_cec::Dialect;
use chargemesh_cec::mock::MockPeer;
use chargemesh_cec::peers::{PeerAccess, PeerConfig, Secret, SecretsConfig};
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_kit::tls::{self, ClientAuth};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::metering::v1 as mt;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_reporting::push::PushConfig;
use common::{TelemetryStream, TestMesh, eventually};

const OP: &str = DEMO_OPERATOR_ID;
const US: &str = "MA0000001";

fn secrets() -> SecretsConfig {
    SecretsConfig {
        operator_secret: Secret::new("push-op-secret01"),
        data_secret: Secret::new("push-data-secret"),
        data_iv: Secret::new("push-data-iv-001"),
        sig_secret: Secret::new("push-sig-secret1"),
    }
}

struct Setup {
    mesh: TestMesh,
    regulator: MockPeer,
    clock: ManualClock,
}

/// The mesh pushing to a regulator of Shaoxing whose listener is bound first; the regulator
/// starts on it with the mesh's development PKI.
async fn setup() -> Setup {
    setup_with(Vec::new()).await
}

/// [`setup`] with other peers pushed to before Shaoxing.
async fn setup_with(others: Vec<PeerConfig>) -> Setup {
    setup_tuned(others, |_| {}).await
}

/// [`setup_with`], with the push settings adjusted by `tune`.
async fn setup_tuned(
    others: Vec<PeerConfig>,
    tune: impl FnOnce(&mut PushConfig) + Send + 'static,
) -> Setup {
    let clock = ManualClock::new(chrono::Utc::now());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mesh_clock = clock.clone();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.poll_every(20);
        opts.config.telemetry.settings.offline_after_seconds = 365 * 24 * 3600;
        opts.config.reporting.cec_push = PushConfig {
            operator_id: US.into(),
            peers: others
                .iter()
                .cloned()
                .chain([PeerConfig {
                    name: "shaoxing".into(),
                    operator_id: "SXJG00001".into(),
                    access: PeerAccess::Regulator {
                        area_code: "330600".into(),
                    },
                    inbound: secrets(),
                    outbound: Some(secrets()),
                    dialect: Dialect::default(),
                    push_url: Some(format!("https://127.0.0.1:{port}/evcs/v1")),
                }])
                .collect(),
            interval_ms: 20,
            backoff_base_ms: 20,
            backoff_max_ms: 200,
            max_attempts: 1_000,
            charge_status_every_s: 1,
            request_timeout_ms: 500,
            ..PushConfig::default()
        };
        tune(&mut opts.config.reporting.cec_push);
    })
    .await;
    let tls = tls::server_config(&mesh.pki_files("gateway"), ClientAuth::Optional).expect("tls");
    let regulator = MockPeer::start(
        listener,
        tls,
        US,
        secrets().secrets().expect("secrets"),
        Dialect::default(),
        "/evcs/v1/",
    )
    .expect("regulator");
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    op.create_station(asset::CreateStationRequest {
        station: Some(demo::station(OP, "S-A", "330602")),
    })
    .await
    .expect("station");
    op.create_pile(asset::CreatePileRequest {
        pile: Some(demo::pile(OP, "S-A", "PA", asset::PileType::Dc, 60.0)),
    })
    .await
    .expect("pile");
    Setup {
        mesh,
        regulator,
        clock,
    }
}

fn status(
    seq: u64,
    at: chrono::DateTime<chrono::Utc>,
    state: tm::ConnectorState,
) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence: seq,
        pile_id: "PA".into(),
        connector_id: "PA-1".into(),
        observe_time: Some(chargemesh_kit::time::to_timestamp(at)),
        body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
            state: state as i32,
            fault_code: if state == tm::ConnectorState::Fault {
                "E42".into()
            } else {
                String::new()
            },
            fault_text: String::new(),
        })),
        ..Default::default()
    }
}

fn pushed_statuses(received: &[(String, Value)]) -> Vec<i64> {
    received
        .iter()
        .filter(|(i, _)| i == "notification_stationStatus")
        .map(|(_, p)| p["ConnectorStatusInfo"]["Status"].as_i64().unwrap_or(-1))
        .collect()
}

#[tokio::test]
async fn base_2_status_changes_reach_the_regulator_once_in_order_across_an_outage_and_a_restart() {
    let Setup {
        mut mesh,
        regulator,
        clock,
    } = setup().await;
    let stream = TelemetryStream::open(mesh.channel("operator")).await;
    stream
        .send(vec![status(1, clock.now(), tm::ConnectorState::Idle)])
        .await;
    let first = eventually(
        async || pushed_statuses(&regulator.received()),
        |s| !s.is_empty(),
    )
    .await;
    assert_eq!(first, [1], "idle is CEC status 1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pushed_statuses(&regulator.received()), [1], "once");

    // The regulator goes down; three changes happen; the mesh restarts in between.
    regulator.set_down(true);
    stream
        .send(vec![
            status(
                2,
                clock.now() + chrono::Duration::seconds(1),
                tm::ConnectorState::Fault,
            ),
            status(
                3,
                clock.now() + chrono::Duration::seconds(2),
                tm::ConnectorState::Idle,
            ),
        ])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    mesh.restart().await;
    let stream = TelemetryStream::open(mesh.channel("operator")).await;
    stream
        .send(vec![status(
            4,
            clock.now() + chrono::Duration::seconds(3),
            tm::ConnectorState::Charging,
        )])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pushed_statuses(&regulator.received()),
        [1],
        "nothing gets through while down"
    );
    regulator.set_down(false);
    let all = eventually(
        async || pushed_statuses(&regulator.received()),
        |s| s.len() >= 4,
    )
    .await;
    assert_eq!(all, [1, 255, 1, 3], "in order");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pushed_statuses(&regulator.received()).len(), 4, "each once");
    mesh.stop().await;
}

#[tokio::test]
async fn base_2_a_backlog_drains_at_the_regulator_s_pace_not_one_change_per_pass() {
    // Passes every 3 s, four at a time: 40 changes of one connector, each waiting for the one
    // before it, arrive within one interval or two, in order, not one per pass.
    let Setup {
        mesh,
        regulator,
        clock,
    } = setup_tuned(Vec::new(), |push| {
        push.interval_ms = 3_000;
        push.concurrency = 4;
    })
    .await;
    let stream = TelemetryStream::open(mesh.channel("operator")).await;
    let states = [tm::ConnectorState::Idle, tm::ConnectorState::Charging];
    stream
        .send(
            (0..40)
                .map(|n| {
                    status(
                        n + 1,
                        clock.now() + chrono::Duration::seconds(n as i64),
                        states[n as usize % 2],
                    )
                })
                .collect(),
        )
        .await;
    let pushed = eventually(
        async || pushed_statuses(&regulator.received()),
        |s| s.len() >= 40,
    )
    .await;
    let expected: Vec<i64> = (0..40).map(|n| if n % 2 == 0 { 1 } else { 3 }).collect();
    assert_eq!(pushed, expected, "all 40, in order, within the deadline");
    assert!(
        regulator.connections() <= 5,
        "connections kept alive: {} for 40 pushes and a token, four at a time",
        regulator.connections()
    );
    mesh.stop().await;
}

/// Reports a finished session of 20.5 kWh under `order_id`, an hour long, after the station's
/// first tariff came into force.
async fn report_order(mesh: &TestMesh, clock: &ManualClock, order_id: &str) {
    clock.advance(chrono::Duration::hours(3));
    let start = clock.now() - chrono::Duration::hours(2);
    let at = |minutes: i64| {
        Some(chargemesh_kit::time::to_timestamp(
            start + chrono::Duration::minutes(minutes),
        ))
    };
    mt::metering_service_client::MeteringServiceClient::new(mesh.channel("operator"))
        .report_charge_order(mt::ReportChargeOrderRequest {
            operator_id: OP.into(),
            order_id: order_id.to_owned(),
            station_id: "S-A".into(),
            pile_id: "PA".into(),
            connector_id: "PA-1".into(),
            start_time: at(0),
            end_time: at(60),
            stop_reason: 0,
            samples: vec![
                mt::MeterSample {
                    sample_time: at(0),
                    register_kwh: "100.000".into(),
                },
                mt::MeterSample {
                    sample_time: at(60),
                    register_kwh: "120.500".into(),
                },
            ],
            steps: None,
            reported_energy_kwh: String::new(),
            reported_total_money: String::new(),
        })
        .await
        .expect("order kept");
}

#[tokio::test]
async fn base_2_a_finished_order_is_resent_until_the_regulator_confirms_it() {
    let Setup {
        mesh,
        regulator,
        clock,
    } = setup().await;
    regulator.confirm_next(&[1, 1]);
    let order_id = format!("{OP}000000000000000042");
    report_order(&mesh, &clock, &order_id).await;
    let orders = |received: Vec<(String, Value)>| -> Vec<Value> {
        received
            .into_iter()
            .filter(|(i, _)| i == "notification_charge_order_info")
            .map(|(_, p)| p)
            .collect()
    };
    let pushed = eventually(async || orders(regulator.received()), |o| o.len() >= 3).await;
    assert!(
        pushed
            .iter()
            .all(|o| o["StartChargeSeq"] == order_id.as_str())
    );
    assert_eq!(pushed[0]["TotalPower"], 20.5);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        orders(regulator.received()).len(),
        3,
        "disputed twice, then confirmed: no more"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn base_2_a_push_the_regulator_refuses_is_parked_visible_and_not_retried() {
    use chargemesh_proto::reporting::v1 as rp;
    let Setup {
        mesh,
        regulator,
        clock,
    } = setup().await;
    // The station's own pushes go first; then the regulator refuses the next one.
    eventually(
        async || regulator.received(),
        |r| {
            r.iter().any(|(i, p)| {
                i == "notification_stationInfo"
                    && p["StationInfo"]["EquipmentInfos"][0]["EquipmentID"] == "PA"
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    regulator.refuse_next(1);
    let order_id = format!("{OP}000000000000000077");
    report_order(&mesh, &clock, &order_id).await;
    let admin = chargemesh::pki::mint_token(
        mesh.pki(),
        "admin",
        None,
        &["platform_admin".to_owned()],
        3600,
    )
    .expect("token");
    let parked = eventually(
        async || {
            rp::reporting_service_client::ReportingServiceClient::new(mesh.anonymous_channel())
                .list_parked_pushes(common::with_token(
                    rp::ListParkedPushesRequest::default(),
                    &admin,
                ))
                .await
                .expect("parked")
                .into_inner()
                .pushes
        },
        |p| !p.is_empty(),
    )
    .await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].item_key, format!("{order_id}@1"));
    assert_eq!(parked[0].interface, "notification_charge_order_info");
    assert!(
        parked[0].last_error.contains("refused"),
        "{}",
        parked[0].last_error
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pushes = regulator
        .received()
        .iter()
        .filter(|(i, _)| i == "notification_charge_order_info")
        .count();
    assert_eq!(pushes, 1, "parked, not retried");
    mesh.stop().await;
}

#[tokio::test]
async fn base_2_a_running_session_is_reported_every_period_until_it_ends() {
    let Setup {
        mesh,
        regulator,
        clock,
    } = setup().await;
    clock.advance(chrono::Duration::hours(3));
    let order_id = format!("{OP}000000000000000099");
    let body = |seq: u64, minutes: i64, body: tm::telemetry_message::Body| tm::TelemetryMessage {
        sequence: seq,
        pile_id: "PA".into(),
        connector_id: "PA-1".into(),
        observe_time: Some(chargemesh_kit::time::to_timestamp(
            clock.now() - chrono::Duration::minutes(10) + chrono::Duration::minutes(minutes),
        )),
        body: Some(body),
        ..Default::default()
    };
    let meter = |kwh: &str| {
        tm::telemetry_message::Body::Meter(tm::MeterSample {
            energy_kwh: kwh.into(),
            ..Default::default()
        })
    };
    let stream = TelemetryStream::open(mesh.channel("operator")).await;
    stream
        .send(vec![
            body(
                1,
                0,
                tm::telemetry_message::Body::SessionStart(tm::SessionStart {
                    order_id: order_id.clone(),
                    meter_start_kwh: "100.000".into(),
                    connector_checked: true,
                    charging_confirmed: true,
                    ..Default::default()
                }),
            ),
            body(2, 5, meter("102.500")),
        ])
        .await;
    let progress = |received: Vec<(String, Value)>| -> Vec<Value> {
        received
            .into_iter()
            .filter(|(i, _)| i == "notification_equip_charge_status")
            .map(|(_, p)| p)
            .collect()
    };
    let running = eventually(
        async || progress(regulator.received()),
        |p| p.len() >= 2 && p.iter().any(|r| r["TotalPower"] == 2.5),
    )
    .await;
    assert!(
        running.len() >= 2 && running.iter().any(|r| r["TotalPower"] == 2.5),
        "reported every period with the energy so far: {running:?}"
    );
    assert!(
        running
            .iter()
            .all(|r| r["StartChargeSeq"] == order_id.as_str())
    );
    assert!(running.iter().all(|r| r["StartChargeSeqStat"] == 2));
    stream
        .send(vec![body(
            3,
            10,
            tm::telemetry_message::Body::SessionEnd(tm::SessionEnd {
                order_id: order_id.clone(),
                meter_stop_kwh: "104.000".into(),
                end_confirmed: true,
                physically_separated: true,
                ..Default::default()
            }),
        )])
        .await;
    let ordered = eventually(
        async || regulator.received(),
        |r| {
            r.iter().any(|(i, p)| {
                i == "notification_charge_order_info" && p["StartChargeSeq"] == order_id.as_str()
            })
        },
    )
    .await;
    assert!(
        ordered
            .iter()
            .any(|(i, p)| i == "notification_charge_order_info" && p["TotalPower"] == 4.0),
        "the finished order follows"
    );
    // Once ended, no more progress reports.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let settled = progress(regulator.received()).len();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let after = progress(regulator.received());
    assert_eq!(after.len(), settled, "none after the end: {after:?}");
    mesh.stop().await;
}

#[tokio::test]
async fn base_2_a_station_is_pushed_once_and_again_when_it_changes() {
    let Setup {
        mesh, regulator, ..
    } = setup().await;
    let infos = |received: Vec<(String, Value)>| -> Vec<Value> {
        received
            .into_iter()
            .filter(|(i, _)| i == "notification_stationInfo")
            .map(|(_, p)| p["StationInfo"].clone())
            .collect()
    };
    // Pushed when registered, and again once its pile was added.
    let first = eventually(
        async || infos(regulator.received()),
        |i| {
            i.last()
                .is_some_and(|s| s["EquipmentInfos"][0]["EquipmentID"] == "PA")
        },
    )
    .await;
    let current = first.last().expect("pushed");
    assert_eq!(current["StationID"], "S-A");
    assert_eq!(current["EquipmentInfos"][0]["EquipmentID"], "PA");
    let settled = first.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        infos(regulator.received()).len(),
        settled,
        "unchanged, not pushed again"
    );
    let mut station = demo::station(OP, "S-A", "330602");
    station.name = "Keqiao Hub, renamed".into();
    mesh.client("operator")
        .update_station(asset::UpdateStationRequest {
            station: Some(station),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
        })
        .await
        .expect("renamed");
    let after = eventually(async || infos(regulator.received()), |i| i.len() > settled).await;
    assert_eq!(after.len(), settled + 1);
    assert_eq!(after[settled]["StationName"], "Keqiao Hub, renamed");
    mesh.stop().await;
}

/// A finished session of an hour on the station's pile (`S-A`/`PA` in Shaoxing, or `S-SH`/`PSH`
/// in Shanghai) ending an hour before `end`.
fn order_at(
    end: chrono::DateTime<chrono::Utc>,
    station: &str,
    pile: &str,
    order_id: String,
) -> mt::ReportChargeOrderRequest {
    let at = |minutes: i64| {
        Some(chargemesh_kit::time::to_timestamp(
            end - chrono::Duration::minutes(120 - minutes),
        ))
    };
    mt::ReportChargeOrderRequest {
        operator_id: OP.into(),
        order_id,
        station_id: station.into(),
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        start_time: at(0),
        end_time: at(60),
        stop_reason: 0,
        samples: vec![
            mt::MeterSample {
                sample_time: at(0),
                register_kwh: "100.000".into(),
            },
            mt::MeterSample {
                sample_time: at(60),
                register_kwh: "110.000".into(),
            },
        ],
        steps: None,
        reported_energy_kwh: String::new(),
        reported_total_money: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_2_orders_outside_the_regulator_s_area_never_hold_back_the_ones_inside() {
    let Setup {
        mesh,
        regulator,
        clock,
    } = setup().await;
    let mut op = mesh.client("operator");
    op.create_station(asset::CreateStationRequest {
        station: Some(demo::station(OP, "S-SH", "310101")),
    })
    .await
    .expect("a Shanghai station");
    op.create_pile(asset::CreatePileRequest {
        pile: Some(demo::pile(OP, "S-SH", "PSH", asset::PileType::Dc, 60.0)),
    })
    .await
    .expect("pile");
    clock.advance(chrono::Duration::hours(3));
    let end = clock.now();
    // 600 orders of Shanghai, outside the Shaoxing regulator's area, first.
    let metering =
        mt::metering_service_client::MeteringServiceClient::new(mesh.channel("operator"));
    let mut reports = tokio::task::JoinSet::new();
    for worker in 0..8u32 {
        let mut client = metering.clone();
        reports.spawn(async move {
            for n in (worker..600).step_by(8) {
                let order_id = format!("{OP}{:018}", 500_000 + n);
                client
                    .report_charge_order(order_at(end, "S-SH", "PSH", order_id))
                    .await
                    .expect("order kept");
            }
        });
    }
    reports.join_all().await;
    // Then one of Shaoxing.
    clock.advance(chrono::Duration::minutes(5));
    let inside = format!("{OP}{:018}", 1);
    metering
        .clone()
        .report_charge_order(order_at(clock.now(), "S-A", "PA", inside.clone()))
        .await
        .expect("order kept");
    let pushed = eventually(
        async || {
            regulator
                .received()
                .into_iter()
                .filter(|(i, _)| i == "notification_charge_order_info")
                .map(|(_, p)| p["StartChargeSeq"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        },
        |o| !o.is_empty(),
    )
    .await;
    assert_eq!(
        pushed,
        [inside],
        "only Shaoxing's order, and it is not held back"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_2_a_peer_that_never_answers_does_not_hold_back_the_others() {
    // A platform of Shaoxing that takes the connection and never answers.
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let stuck_port = stuck.local_addr().expect("addr").port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in stuck.incoming().take(50) {
            open.push(conn);
        }
    });
    let peer = PeerConfig {
        name: "stuck".into(),
        operator_id: "SXJG00002".into(),
        access: PeerAccess::Regulator {
            area_code: "330600".into(),
        },
        inbound: secrets(),
        outbound: Some(secrets()),
        dialect: Dialect::default(),
        push_url: Some(format!("https://127.0.0.1:{stuck_port}/evcs/v1")),
    };
    let Setup {
        mesh,
        regulator,
        clock,
    } = setup_with(vec![peer]).await;
    let mut pile = TelemetryStream::open(mesh.channel("operator")).await;
    pile.send(vec![status(1, clock.now(), tm::ConnectorState::Charging)])
        .await;
    let _ = pile.next().await;
    let pushed = eventually(
        async || pushed_statuses(&regulator.received()),
        |s| !s.is_empty(),
    )
    .await;
    assert_eq!(
        pushed,
        [3],
        "Shaoxing has its push though the other peer hangs"
    );
    mesh.stop().await;
    drop(held);
}
