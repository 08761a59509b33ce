//! Live telemetry end to end: piles, stations and platforms report through the gateway; the
//! regulator watches its area (REQ BASE-2, MON-1, SVC-2).

mod common;

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use chargemesh::demo;
use chargemesh::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::connect_response::Body as Answer;
use common::{TelemetryStream, TestMesh, eventually};

const OP: &str = DEMO_OPERATOR_ID;

/// Registers the demo operator with a Shaoxing station (S1, pile P1) and a Shanghai one (SH, pile PSH).
async fn fleet(mesh: &TestMesh) {
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    for (station, area, pile) in [("S1", "330602", "P1"), ("SH", "310101", "PSH")] {
        op.create_station(asset::CreateStationRequest {
            station: Some(demo::station(OP, station, area)),
        })
        .await
        .expect("station");
        op.create_pile(asset::CreatePileRequest {
            pile: Some(demo::pile(OP, station, pile, asset::PileType::Dc, 60.0)),
        })
        .await
        .expect("pile");
    }
}

fn at(clock_now: chrono::DateTime<chrono::Utc>) -> Option<prost_types::Timestamp> {
    Some(chargemesh_kit::time::to_timestamp(clock_now))
}

fn status(sequence: u64, pile: &str, state: tm::ConnectorState) -> tm::TelemetryMessage {
    status_at(sequence, pile, state, chrono::Utc::now())
}

fn status_at(
    sequence: u64,
    pile: &str,
    state: tm::ConnectorState,
    when: chrono::DateTime<chrono::Utc>,
) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        observe_time: at(when),
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

fn heartbeat_at(
    sequence: u64,
    pile: &str,
    when: chrono::DateTime<chrono::Utc>,
) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        pile_id: pile.into(),
        observe_time: at(when),
        body: Some(tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {})),
        ..Default::default()
    }
}

/// Reads answers until every sequence in `expect` is acknowledged; returns the rejections seen.
async fn acknowledged(
    stream: &mut TelemetryStream,
    expect: impl IntoIterator<Item = u64>,
) -> Vec<tm::Rejection> {
    let mut pending: std::collections::BTreeSet<u64> = expect.into_iter().collect();
    let mut rejections = Vec::new();
    while !pending.is_empty() {
        match stream.next().await {
            Answer::Acknowledgement(ack) => {
                for s in ack.first_sequence..=ack.last_sequence {
                    pending.remove(&s);
                }
            }
            Answer::Rejection(r) => rejections.push(r),
            Answer::Resync(_) | Answer::Command(_) => {}
        }
    }
    rejections
}

struct Watch {
    inbound: tonic::Streaming<reg::WatchStatusChangesResponse>,
}

impl Watch {
    async fn open(
        client: &mut StatusServiceClient<tonic::transport::Channel>,
        cursor: &str,
    ) -> Self {
        let inbound = client
            .watch_status_changes(reg::WatchStatusChangesRequest {
                cursor: cursor.into(),
                from_start: false,
            })
            .await
            .expect("watch opens")
            .into_inner();
        Self { inbound }
    }

    /// The next `n` changes, within ten seconds.
    async fn changes(&mut self, n: usize) -> Vec<reg::StatusChange> {
        let mut out = Vec::new();
        while out.len() < n {
            let batch = tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
                .await
                .expect("changes in time")
                .expect("watch healthy")
                .expect("watch open");
            out.extend(batch.changes);
        }
        out
    }
}

fn summary(changes: &[reg::StatusChange]) -> Vec<(String, i32)> {
    changes
        .iter()
        .map(|c| {
            let s = c.status.as_ref().expect("status");
            (s.pile_id.clone(), s.cec_status)
        })
        .collect()
}

#[tokio::test]
async fn mon_1_a_pile_report_reaches_the_regulator_of_its_area_and_no_other() {
    let mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut shaoxing = StatusServiceClient::new(mesh.channel("regulator"));
    let mut watch_sx = Watch::open(&mut shaoxing, "").await;
    let mut shanghai = StatusServiceClient::new(mesh.channel_as(&Principal::Regulator {
        area_code: "310000".into(),
    }));
    let mut watch_sh = Watch::open(&mut shanghai, "").await;

    // The pile certificate of P1 reports for itself (pile_id may be left empty).
    let mut pile = TelemetryStream::open(mesh.channel_as(&Principal::Pile {
        operator_id: OP.into(),
        station_id: "S1".into(),
        pile_id: "P1".into(),
    }))
    .await;
    let mut msg = status(1, "", tm::ConnectorState::Charging);
    msg.connector_id = "P1-1".into();
    pile.send(vec![msg]).await;
    assert!(acknowledged(&mut pile, 1..=1).await.is_empty());

    // The platform then reports for the Shanghai pile.
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status(1, "PSH", tm::ConnectorState::Idle)])
        .await;
    assert!(acknowledged(&mut platform, 1..=1).await.is_empty());

    let seen = watch_sx.changes(1).await;
    assert_eq!(
        summary(&seen),
        [("P1".to_owned(), 3)],
        "charging is T/CEC 102 code 3"
    );
    assert_eq!(seen[0].origin, "telemetry");
    let seen = watch_sh.changes(1).await;
    assert_eq!(
        summary(&seen),
        [("PSH".to_owned(), 1)],
        "Shanghai sees only its own area"
    );

    let live = shaoxing
        .get_station_status(reg::GetStationStatusRequest {
            stations: vec![
                reg::StationKey {
                    operator_id: OP.into(),
                    station_id: "S1".into(),
                },
                reg::StationKey {
                    operator_id: OP.into(),
                    station_id: "SH".into(),
                },
            ],
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        live.stations.len(),
        1,
        "a station outside the area is left out"
    );
    assert_eq!(live.stations[0].connectors[0].cec_status, 3);
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_an_operator_cannot_report_for_another_operators_pile() {
    let mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let other = Principal::Operator {
        operator_id: "MA2BCDEF3".into(),
    };
    let mut b = mesh.client_as(&other);
    b.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator("91330100MA2BCDEF38")),
    })
    .await
    .expect("operator B");
    let mut stream = TelemetryStream::open(mesh.channel_as(&other)).await;
    let mut foreign = status(1, "P1", tm::ConnectorState::Fault);
    foreign.operator_id = OP.into();
    let unknown = status(2, "P1", tm::ConnectorState::Fault);
    stream.send(vec![foreign, unknown]).await;
    let rejections = acknowledged(&mut stream, 1..=2).await;
    let codes: Vec<_> = rejections
        .iter()
        .map(|r| (r.sequence, r.code.as_str()))
        .collect();
    assert_eq!(codes, [(1, "PERMISSION_DENIED"), (2, "NOT_FOUND")]);

    // The stream is still up, and the rejected reports changed nothing.
    assert_eq!(
        s1_first_connector_status(&mesh).await,
        0,
        "never heard: offline"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn mon_1_a_resend_after_a_disconnect_gives_no_duplicate_and_no_gap() {
    let mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let mut watch = Watch::open(&mut regulator, "").await;
    let cycle = [
        tm::ConnectorState::Idle,
        tm::ConnectorState::OccupiedNotCharging,
        tm::ConnectorState::Charging,
        tm::ConnectorState::Idle,
        tm::ConnectorState::Reserved,
        tm::ConnectorState::Idle,
    ];
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(10);
    let messages: Vec<_> = cycle
        .iter()
        .enumerate()
        .map(|(i, s)| {
            status_at(
                i as u64 + 1,
                "P1",
                *s,
                t0 + chrono::Duration::seconds(i as i64),
            )
        })
        .collect();

    let mut first = TelemetryStream::open(mesh.channel("operator")).await;
    first.send(messages[..3].to_vec()).await;
    assert!(acknowledged(&mut first, 1..=3).await.is_empty());
    // The fourth is sent but the connection drops before its acknowledgement is read.
    first.send(messages[3..4].to_vec()).await;
    drop(first);

    // Reconnect and resend everything after the last acknowledgement (3), and a stale 2.
    let mut second = TelemetryStream::open(mesh.channel("operator")).await;
    second.send(vec![messages[1].clone()]).await;
    second.send(messages[3..].to_vec()).await;
    assert!(acknowledged(&mut second, [2, 4, 5, 6]).await.is_empty());

    let changes = watch.changes(6).await;
    let codes: Vec<i32> = summary(&changes)
        .into_iter()
        .map(|(_, code)| code)
        .collect();
    assert_eq!(codes, [1, 2, 3, 1, 4, 1], "every change once, in order");
    let cursors: Vec<&str> = changes.iter().map(|c| c.cursor.as_str()).collect();
    let mut unique = cursors.clone();
    unique.dedup();
    assert_eq!(unique.len(), cursors.len());
    mesh.stop().await;
}

#[tokio::test]
async fn a_resumed_watch_misses_nothing() {
    let mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let mut watch = Watch::open(&mut regulator, "").await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    platform
        .send(vec![status_at(1, "P1", tm::ConnectorState::Idle, t0)])
        .await;
    acknowledged(&mut platform, 1..=1).await;
    let first = watch.changes(1).await;
    let cursor = first[0].cursor.clone();
    drop(watch);

    // While nobody watches, three more changes happen.
    let states = [
        tm::ConnectorState::Charging,
        tm::ConnectorState::Fault,
        tm::ConnectorState::Idle,
    ];
    let batch: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            status_at(
                i as u64 + 2,
                "P1",
                *s,
                t0 + chrono::Duration::seconds(i as i64 + 1),
            )
        })
        .collect();
    platform.send(batch).await;
    acknowledged(&mut platform, 2..=4).await;

    let mut resumed = Watch::open(&mut regulator, &cursor).await;
    let missed = resumed.changes(3).await;
    let codes: Vec<i32> = summary(&missed).into_iter().map(|(_, code)| code).collect();
    assert_eq!(codes, [3, 255, 1]);
    assert_eq!(missed[1].status.as_ref().expect("status").fault_code, "E42");
    let bad = regulator
        .watch_status_changes(reg::WatchStatusChangesRequest {
            cursor: "garbage".into(),
            from_start: false,
        })
        .await;
    assert_eq!(
        bad.map(|_| ()).map_err(|s| s.code()),
        Err(Code::InvalidArgument)
    );
    mesh.stop().await;
}

#[tokio::test]
async fn mon_1_heartbeat_silence_turns_connectors_offline() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh_clock = clock.clone();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.config.telemetry.settings.sweep_interval_ms = 20;
        opts.config.telemetry.settings.offline_after_seconds = 180;
    })
    .await;
    fleet(&mesh).await;
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let mut watch = Watch::open(&mut regulator, "").await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status_at(
            1,
            "P1",
            tm::ConnectorState::Idle,
            clock.now(),
        )])
        .await;
    acknowledged(&mut platform, 1..=1).await;
    assert_eq!(summary(&watch.changes(1).await), [("P1".to_owned(), 1)]);

    // A heartbeat within the interval keeps it alive; then silence for three minutes.
    clock.advance(chrono::Duration::seconds(120));
    platform
        .send(vec![heartbeat_at(2, "P1", clock.now())])
        .await;
    acknowledged(&mut platform, 2..=2).await;
    clock.advance(chrono::Duration::seconds(120));
    platform
        .send(vec![heartbeat_at(3, "P1", clock.now())])
        .await;
    acknowledged(&mut platform, 3..=3).await;
    clock.advance(chrono::Duration::seconds(181));
    let offline = watch.changes(1).await;
    assert_eq!(
        summary(&offline),
        [("P1".to_owned(), 0)],
        "offline is T/CEC 102 code 0"
    );
    assert_eq!(offline[0].origin, "liveness");
    assert_eq!(offline[0].previous_state, tm::ConnectorState::Idle as i32);

    // When the pile speaks again, the server asks for a full resync.
    platform
        .send(vec![heartbeat_at(4, "P1", clock.now())])
        .await;
    let mut resync = false;
    for _ in 0..2 {
        if let Answer::Resync(_) = platform.next().await {
            resync = true;
        }
    }
    assert!(
        resync,
        "a resync request follows a heartbeat from an offline connector"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn base_2_the_first_report_marks_a_filed_station_connected() {
    let mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut op = mesh.client("operator");
    let today = (chrono::Utc::now() - chrono::Duration::days(1))
        .date_naive()
        .to_string();
    op.accept_station(asset::AcceptStationRequest {
        operator_id: OP.into(),
        station_id: "S1".into(),
        acceptance: Some(asset::Acceptance {
            report_reference: "R-1".into(),
            accepted_on: today.clone(),
        }),
    })
    .await
    .expect("accepted");
    op.file_station(asset::FileStationRequest {
        operator_id: OP.into(),
        station_id: "S1".into(),
        filing: Some(asset::Filing {
            authority: "AMR".into(),
            filing_number: "F-1".into(),
            filed_on: today,
        }),
    })
    .await
    .expect("filed");
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status(1, "P1", tm::ConnectorState::Idle)])
        .await;
    acknowledged(&mut platform, 1..=1).await;
    let station = op
        .get_station(asset::GetStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await
        .expect("station")
        .into_inner()
        .station
        .expect("station");
    assert_eq!(station.state, asset::StationState::Connected as i32);
    assert!(station.connect_time.is_some());
    mesh.stop().await;
}

#[tokio::test]
async fn mon_1_bad_messages_are_rejected_one_by_one_and_the_stream_goes_on() {
    let mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    let future = status_at(
        1,
        "P1",
        tm::ConnectorState::Idle,
        chrono::Utc::now() + chrono::Duration::hours(2),
    );
    let mut unknown_connector = status(2, "P1", tm::ConnectorState::Idle);
    unknown_connector.connector_id = "P1-9".into();
    let meter = tm::TelemetryMessage {
        sequence: 3,
        pile_id: "P1".into(),
        connector_id: "P1-1".into(),
        observe_time: at(chrono::Utc::now()),
        body: Some(tm::telemetry_message::Body::Meter(tm::MeterSample {
            energy_kwh: "12.345".into(),
            power_kw: 900.0,
            voltage: 400.0,
            current: 100.0,
            soc_percent: 40.0,
        })),
        ..Default::default()
    };
    let good = status(4, "P1", tm::ConnectorState::Charging);
    platform
        .send(vec![future, unknown_connector, meter, good])
        .await;
    let rejections = acknowledged(&mut platform, 1..=4).await;
    let seqs: Vec<u64> = rejections.iter().map(|r| r.sequence).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(rejections[0].reason.contains("future"));
    assert!(rejections[1].reason.contains("unknown connector"));
    assert!(rejections[2].reason.contains("power_kw"));
    platform
        .send(vec![status(5, "P1", tm::ConnectorState::Idle)])
        .await;
    assert!(
        acknowledged(&mut platform, 5..=5).await.is_empty(),
        "the stream goes on"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn acknowledged_reports_survive_a_restart() {
    let mut mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status(1, "P1", tm::ConnectorState::Fault)])
        .await;
    acknowledged(&mut platform, 1..=1).await;
    drop(platform);
    mesh.restart().await;
    assert_eq!(
        s1_first_connector_status(&mesh).await,
        255,
        "the acknowledged fault is still there"
    );
    // A resend of the acknowledged message after the restart is recognised.
    let mut again = TelemetryStream::open(mesh.channel("operator")).await;
    again
        .send(vec![status(1, "P1", tm::ConnectorState::Fault)])
        .await;
    assert!(acknowledged(&mut again, 1..=1).await.is_empty());
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let mut watch = Watch::open(&mut regulator, &reg_cursor_zero()).await;
    let all = watch.changes(1).await;
    assert_eq!(all.len(), 1, "one change, not two");
    mesh.stop().await;
}

fn reg_cursor_zero() -> String {
    chargemesh_telemetry::convert::encode_cursor(0)
}

fn meter_at(
    sequence: u64,
    pile: &str,
    register: &str,
    when: chrono::DateTime<chrono::Utc>,
) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        observe_time: at(when),
        body: Some(tm::telemetry_message::Body::Meter(tm::MeterSample {
            energy_kwh: register.into(),
            power_kw: 50.0,
            voltage: 500.0,
            current: 100.0,
            soc_percent: -1.0,
        })),
        ..Default::default()
    }
}

/// Local time (UTC+8) on a March 2026 day.
fn local(day: u32, hour: u32, minute: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDate::from_ymd_opt(2026, 3, day)
        .and_then(|d| d.and_hms_opt(hour, minute, 0))
        .and_then(|t| {
            t.and_local_timezone(chargemesh_kit::clock::china_offset())
                .single()
        })
        .expect("valid local time")
        .to_utc()
}

/// The T/CEC 102 status the regulator sees for S1's first connector.
async fn s1_first_connector_status(mesh: &TestMesh) -> i32 {
    let live = StatusServiceClient::new(mesh.channel("regulator"))
        .get_station_status(reg::GetStationStatusRequest {
            stations: vec![reg::StationKey {
                operator_id: OP.into(),
                station_id: "S1".into(),
            }],
        })
        .await
        .expect("status")
        .into_inner();
    live.stations[0].connectors[0].cec_status
}

async fn trial_days(
    regulator: &mut StatusServiceClient<tonic::transport::Channel>,
    n: usize,
) -> Vec<reg::TrialOperationDay> {
    eventually(
        async || {
            regulator
                .get_trial_operation_report(reg::GetTrialOperationReportRequest {
                    operator_id: OP.into(),
                    station_id: "S1".into(),
                })
                .await
                .expect("report")
                .into_inner()
                .days
        },
        |days| days.len() >= n,
    )
    .await
}

#[tokio::test]
async fn base_2_the_trial_report_matches_a_scripted_scenario_and_gates_commissioning() {
    let clock = ManualClock::new(local(1, 12, 0));
    let mesh_clock = clock.clone();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.config.telemetry.settings.offline_after_seconds = 30 * 24 * 3600;
        opts.config.asset.commissioning.min_days = 2;
        opts.config.telemetry.settings.trial_publish_interval_ms = 20;
    })
    .await;
    fleet(&mesh).await;
    let mut op = mesh.client("operator");
    op.create_metrology_certificate(asset::CreateMetrologyCertificateRequest {
        certificate: Some(demo::certificate(
            OP,
            "P1",
            asset::VerificationProcedure::Jjg1149,
            "C-1",
            chrono::NaiveDate::from_ymd_opt(2026, 2, 1).expect("date"),
        )),
    })
    .await
    .expect("certificate");
    op.accept_station(asset::AcceptStationRequest {
        operator_id: OP.into(),
        station_id: "S1".into(),
        acceptance: Some(asset::Acceptance {
            report_reference: "R-1".into(),
            accepted_on: "2026-02-20".into(),
        }),
    })
    .await
    .expect("accepted");
    op.file_station(asset::FileStationRequest {
        operator_id: OP.into(),
        station_id: "S1".into(),
        filing: Some(asset::Filing {
            authority: "AMR".into(),
            filing_number: "F-1".into(),
            filed_on: "2026-02-25".into(),
        }),
    })
    .await
    .expect("filed");
    let mut pile = TelemetryStream::open(mesh.channel("operator")).await;

    // Day 0 (2026-03-01, noon): connected by its first report, then trial operation from midnight.
    clock.set(local(1, 12, 0));
    pile.send(vec![status_at(
        1,
        "P1",
        tm::ConnectorState::Idle,
        clock.now(),
    )])
    .await;
    acknowledged(&mut pile, [1]).await;
    clock.set(local(2, 0, 0));
    op.start_trial_operation(asset::StartTrialOperationRequest {
        operator_id: OP.into(),
        station_id: "S1".into(),
    })
    .await
    .expect("trial starts");

    // Day 1 (03-02): a session 08:00-09:30 delivering 30.5 kWh, a fault 12:00-12:45.
    let script: Vec<(chrono::DateTime<chrono::Utc>, tm::TelemetryMessage)> = vec![
        (
            local(2, 8, 0),
            status_at(2, "P1", tm::ConnectorState::Charging, local(2, 8, 0)),
        ),
        (local(2, 8, 0), meter_at(3, "P1", "100.000", local(2, 8, 0))),
        (
            local(2, 9, 30),
            meter_at(4, "P1", "130.500", local(2, 9, 30)),
        ),
        (
            local(2, 9, 30),
            status_at(5, "P1", tm::ConnectorState::Idle, local(2, 9, 30)),
        ),
        (
            local(2, 12, 0),
            status_at(6, "P1", tm::ConnectorState::Fault, local(2, 12, 0)),
        ),
        (
            local(2, 12, 45),
            status_at(7, "P1", tm::ConnectorState::Idle, local(2, 12, 45)),
        ),
        // Day 2 (03-03): offline 10:00-12:00.
        (
            local(3, 10, 0),
            status_at(8, "P1", tm::ConnectorState::Offline, local(3, 10, 0)),
        ),
        (
            local(3, 12, 0),
            status_at(9, "P1", tm::ConnectorState::Idle, local(3, 12, 0)),
        ),
    ];
    for (when, msg) in script {
        clock.set(when);
        let sequence = msg.sequence;
        pile.send(vec![msg]).await;
        assert!(acknowledged(&mut pile, [sequence]).await.is_empty());
    }

    // Day 1 closes at midnight; it is published to the regulator, figures to the minute.
    clock.set(local(3, 12, 1));
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let days = trial_days(&mut regulator, 1).await;
    assert_eq!(days.len(), 1);
    let d1 = &days[0];
    assert_eq!(d1.day, "2026-03-02");
    assert_eq!(
        (
            d1.connector_minutes,
            d1.available_minutes,
            d1.fault_minutes,
            d1.offline_minutes
        ),
        (1440, 1395, 45, 0)
    );
    assert_eq!(d1.availability_percent, "96.88");
    assert_eq!((d1.sessions_started, d1.sessions_completed), (1, 1));
    assert_eq!((d1.faults_raised, d1.faults_cleared), (1, 1));
    assert_eq!(d1.energy_kwh, "30.500");
    let refused = op
        .commission_station(asset::CommissionStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await
        .expect_err("too few days");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("only 1 of the 2") && refused.message().contains("BASE-2"),
        "{}",
        refused.message()
    );

    // Day 2 closes with two hours offline: 91.67%, too low.
    clock.set(local(4, 0, 1));
    let days = trial_days(&mut regulator, 2).await;
    assert_eq!(days[1].offline_minutes, 120);
    assert_eq!(days[1].availability_percent, "91.67");
    let refused = op
        .commission_station(asset::CommissionStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await
        .expect_err("availability too low");
    assert!(
        refused.message().contains("2026-03-03") && refused.message().contains("91.67%"),
        "{}",
        refused.message()
    );

    // Days 3 and 4 run clean; the last two days qualify and commissioning goes through.
    clock.set(local(6, 0, 1));
    let days = trial_days(&mut regulator, 4).await;
    assert_eq!(days.len(), 4);
    assert!(days[2..].iter().all(|d| d.availability_percent == "100.00"));
    let station = op
        .commission_station(asset::CommissionStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await
        .expect("commissioned")
        .into_inner()
        .station
        .expect("station");
    assert_eq!(station.state, asset::StationState::Commissioned as i32);

    // The regulator's energy statistics agree with the meter.
    let stats = regulator
        .get_station_stats(reg::GetStationStatsRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
            start_time: at(local(2, 0, 0)),
            end_time: at(local(3, 0, 0)),
        })
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.energy_kwh, "30.500");
    assert_eq!(stats.connectors.len(), 1);
    mesh.stop().await;
}

#[tokio::test]
async fn the_simulator_reports_a_live_fleet_in_every_mode() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let mut watch = Watch::open(&mut regulator, "").await;
    let gateway = mesh.mesh.as_ref().expect("mesh").gateway_addr;
    let mut all = Vec::new();
    for (mode, station) in [
        (chargemesh::sim::Mode::Pile, "SIM-A"),
        (chargemesh::sim::Mode::Station, "SIM-B"),
        (chargemesh::sim::Mode::Platform, "SIM-C"),
    ] {
        let tasks = chargemesh::sim::start(chargemesh::sim::SimOptions {
            gateway,
            pki: mesh.pki().clone(),
            trust_domain: common::TD.into(),
            mode,
            stations: vec![station.into()],
            piles_per_station: 2,
            create: true,
            tick: Duration::from_millis(20),
            seed: 3,
        })
        .await
        .expect("simulator starts");
        all.extend(tasks);
    }
    // Every connector's status arrives first (a resync on connect), from all three stations.
    let mut stations = std::collections::BTreeSet::new();
    while stations.len() < 3 {
        for change in watch.changes(1).await {
            stations.insert(change.status.expect("status").station_id);
        }
    }
    assert_eq!(
        stations.into_iter().collect::<Vec<_>>(),
        ["SIM-A", "SIM-B", "SIM-C"]
    );
    // Their charging sessions become settled charge orders (REQ SETTLE-1).
    let mut metering =
        chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient::new(
            mesh.channel("operator"),
        );
    let orders = eventually(
        async || {
            metering
                .list_charge_orders(
                    chargemesh_proto::metering::v1::ListChargeOrdersRequest::default(),
                )
                .await
                .expect("orders")
                .into_inner()
                .orders
        },
        |orders| !orders.is_empty(),
    )
    .await;
    let order = orders
        .first()
        .expect("a charge order from a simulated session");
    assert_eq!(order.recorded_by, "telemetry");
    assert!(!order.details.is_empty(), "{order:?}");
    for task in all {
        task.abort();
    }
    mesh.stop().await;
}

async fn history(
    client: &mut chargemesh_proto::reporting::v1::reporting_service_client::ReportingServiceClient<
        tonic::transport::Channel,
    >,
    station: &str,
    want: usize,
) -> Vec<i32> {
    eventually(
        async || {
            client
                .list_status_history(chargemesh_proto::reporting::v1::ListStatusHistoryRequest {
                    operator_id: OP.into(),
                    station_id: station.into(),
                    ..Default::default()
                })
                .await
                .expect("history")
                .into_inner()
                .changes
                .iter()
                .map(|c| c.status.as_ref().map_or(-1, |s| s.cec_status))
                .collect::<Vec<i32>>()
        },
        |codes| codes.len() >= want,
    )
    .await
}

#[tokio::test]
async fn reporting_keeps_the_status_history_once_and_in_order_across_a_restart() {
    use chargemesh_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
    let mut mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    let states = [
        tm::ConnectorState::Idle,
        tm::ConnectorState::Charging,
        tm::ConnectorState::Idle,
    ];
    let batch: Vec<_> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            status_at(
                i as u64 + 1,
                "P1",
                *s,
                t0 + chrono::Duration::seconds(i as i64),
            )
        })
        .collect();
    platform.send(batch).await;
    acknowledged(&mut platform, 1..=3).await;
    platform
        .send(vec![status_at(4, "PSH", tm::ConnectorState::Idle, t0)])
        .await;
    acknowledged(&mut platform, [4]).await;

    let mut regulator = ReportingServiceClient::new(mesh.channel("regulator"));
    assert_eq!(history(&mut regulator, "S1", 3).await, [1, 3, 1]);
    let mut shanghai = ReportingServiceClient::new(mesh.channel_as(&Principal::Regulator {
        area_code: "310000".into(),
    }));
    assert!(
        history(&mut shanghai, "S1", 0).await.is_empty(),
        "another area's regulator sees nothing"
    );
    // Not even through paging: a page of one is empty and ends there, as for a station that
    // has no history, and names no position in the log.
    let paged = shanghai
        .list_status_history(chargemesh_proto::reporting::v1::ListStatusHistoryRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert!(paged.changes.is_empty());
    assert_eq!(paged.next_page_token, "", "the token reveals nothing");
    assert_eq!(history(&mut shanghai, "SH", 1).await, [1]);
    drop(platform);

    // Both sides restart; the follower resumes from its last change, without a double.
    mesh.restart().await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status_at(
            5,
            "P1",
            tm::ConnectorState::Fault,
            t0 + chrono::Duration::seconds(10),
        )])
        .await;
    acknowledged(&mut platform, [5]).await;
    let mut operator = ReportingServiceClient::new(mesh.channel("operator"));
    assert_eq!(history(&mut operator, "S1", 4).await, [1, 3, 1, 255]);
    let window = operator
        .list_status_history(chargemesh_proto::reporting::v1::ListStatusHistoryRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
            start_time: at(t0 + chrono::Duration::seconds(1)),
            end_time: at(t0 + chrono::Duration::seconds(5)),
            ..Default::default()
        })
        .await
        .expect("a period")
        .into_inner();
    let codes: Vec<i32> = window
        .changes
        .iter()
        .map(|c| c.status.as_ref().map_or(-1, |s| s.cec_status))
        .collect();
    assert_eq!(codes, [3, 1], "only the changes inside the period");
    mesh.stop().await;
}
