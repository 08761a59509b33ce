//! Reports in, acknowledgements and rejections out, liveness and the regulator's live view (REQ
//! MON-1, BASE-2, NETSEC-1).

use super::*;

/// S1's first connector as the regulator sees it.
async fn s1_first_connector(mesh: &TestMesh) -> reg::ConnectorStatusInfo {
    let mut live = StatusServiceClient::new(mesh.channel("regulator"))
        .get_station_status(reg::GetStationStatusRequest {
            stations: vec![reg::StationKey {
                operator_id: OP.into(),
                station_id: "S1".into(),
            }],
        })
        .await
        .expect("status")
        .into_inner();
    live.stations.remove(0).connectors.remove(0)
}

/// The T/CEC 102 status the regulator sees for S1's first connector.
async fn s1_first_connector_status(mesh: &TestMesh) -> i32 {
    s1_first_connector(mesh).await.cec_status
}

fn reg_cursor_zero() -> String {
    chargemesh_telemetry::convert::encode_cursor(0)
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
        opts.config.telemetry.settings.heartbeat_flush_ms = 20;
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

    // A heartbeat within the interval keeps it alive (once in the store: the clock jumps
    // minutes where a flush comes seconds after a heartbeat); then silence for three minutes.
    clock.advance(chrono::Duration::seconds(120));
    platform
        .send(vec![heartbeat_at(2, "P1", clock.now())])
        .await;
    acknowledged(&mut platform, 2..=2).await;
    seen_at(&mesh, clock.now()).await;
    clock.advance(chrono::Duration::seconds(120));
    platform
        .send(vec![heartbeat_at(3, "P1", clock.now())])
        .await;
    acknowledged(&mut platform, 3..=3).await;
    seen_at(&mesh, clock.now()).await;
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
async fn mon_1_reports_arriving_within_the_writer_pace_wait_for_its_next_commit() {
    let pace = Duration::from_millis(500);
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.config.telemetry.settings.writer_pace_ms = pace.as_millis() as u64;
    })
    .await;
    fleet(&mesh).await;
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(1);
    let mut first = TelemetryStream::open(mesh.channel("operator")).await;
    let mut second = TelemetryStream::open(mesh.channel("operator")).await;
    let sent = std::time::Instant::now();
    // The writer's first transaction starts at once.
    first
        .send(vec![status_at(1, "P1", tm::ConnectorState::Idle, t0)])
        .await;
    assert!(acknowledged(&mut first, 1..=1).await.is_empty());
    // Two streams' reports within the pace: both wait for the next commit, one pace after the
    // first began, and both are durable then.
    first
        .send(vec![status_at(
            2,
            "P1",
            tm::ConnectorState::Charging,
            t0 + chrono::Duration::seconds(1),
        )])
        .await;
    second
        .send(vec![status_at(3, "PSH", tm::ConnectorState::Idle, t0)])
        .await;
    assert!(acknowledged(&mut first, 2..=2).await.is_empty());
    assert!(acknowledged(&mut second, 3..=3).await.is_empty());
    assert!(
        sent.elapsed() >= pace,
        "acknowledged {:?} after the first report, within the pace",
        sent.elapsed()
    );
    assert_eq!(
        s1_first_connector_status(&mesh).await,
        3,
        "the report acknowledged after the pace is stored (charging)"
    );
    mesh.stop().await;
}

/// The last-seen time of station S1's first connector, as the regulator sees it.
async fn last_seen(mesh: &TestMesh) -> i64 {
    s1_first_connector(mesh)
        .await
        .last_seen_time
        .as_ref()
        .map_or(0, |t| t.seconds)
}

/// Waits until the store holds `at` as the connector's last-seen time.
async fn seen_at(mesh: &TestMesh, at: chrono::DateTime<chrono::Utc>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while last_seen(mesh).await != at.timestamp() {
        assert!(
            std::time::Instant::now() < deadline,
            "the last-seen time {at} never reached the store"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn mon_1_heartbeats_of_a_live_pile_are_flushed_together_not_written_each() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh_clock = clock.clone();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.config.telemetry.settings.sweep_interval_ms = 20;
        opts.config.telemetry.settings.heartbeat_flush_ms = 20;
        opts.config.telemetry.settings.offline_after_seconds = 180;
    })
    .await;
    fleet(&mesh).await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    let t0 = clock.now();
    platform
        .send(vec![status_at(1, "P1", tm::ConnectorState::Idle, t0)])
        .await;
    acknowledged(&mut platform, 1..=1).await;

    // Heartbeats within a minute of the confirmed report: acknowledged, kept out of the log.
    for (sequence, after) in [(2, 20), (3, 40)] {
        clock.advance(chrono::Duration::seconds(20));
        platform
            .send(vec![heartbeat_at(sequence, "P1", clock.now())])
            .await;
        acknowledged(&mut platform, sequence..=sequence).await;
        assert_eq!(clock.now(), t0 + chrono::Duration::seconds(after));
    }
    let mut log =
        chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient::new(
            mesh.direct_channel("telemetry", &mesh.pki_files("metering")),
        );
    let heartbeats = log
        .read_log(tm::ReadLogRequest {
            after_sequence: 0,
            kinds: vec!["heartbeat".into()],
            limit: 100,
        })
        .await
        .expect("log")
        .into_inner()
        .entries;
    assert!(
        heartbeats.is_empty(),
        "a confirmed pile's heartbeats are not written one by one: {heartbeats:?}"
    );

    // While the report's confirmation is younger than two thirds of the silence limit it
    // vouches for the stored last-seen time: the heartbeats wait in memory...
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(last_seen(&mesh).await, t0.timestamp(), "not written yet");
    // ...until it is 120 s old: a flush then moves the last-seen time to the latest heartbeat...
    clock.advance(chrono::Duration::seconds(80));
    seen_at(&mesh, t0 + chrono::Duration::seconds(40)).await;
    // ...so three minutes after the report, but not after the heartbeats, it is still online.
    clock.advance(chrono::Duration::seconds(70));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        s1_first_connector_status(&mesh).await,
        1,
        "still idle (T/CEC 102 code 1) 190 s after the report, 150 s after the last heartbeat"
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
