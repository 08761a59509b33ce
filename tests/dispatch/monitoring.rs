//! The monitor's daily check of communication links (REQ MON-8).

use super::*;

#[tokio::test]
async fn mon_8_a_failed_daily_check_opens_defects_and_a_missed_one_is_overdue() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    staff
        .client()
        .register_monitoring_equipment(with_token(
            pb::RegisterMonitoringEquipmentRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                cameras: vec![pb::Camera {
                    camera_id: "CAM-1".into(),
                    covers: vec!["P1".into(), "bay 1".into()],
                }],
                links: vec![pb::CommunicationLink {
                    link_id: "SIM-1".into(),
                    iccid: "89860012345".into(),
                    carrier: "China Mobile".into(),
                    traffic_min_mb: 5.0,
                    traffic_max_mb: 50.0,
                }],
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("registered");
    let status = |staff: &Staff, day: String| {
        let mut client = staff.client();
        let token = staff.token("monitor");
        async move {
            client
                .get_daily_check_status(with_token(
                    pb::GetDailyCheckStatusRequest {
                        operator_id: OP.into(),
                        station_id: "S-URB".into(),
                        day,
                    },
                    &token,
                ))
                .await
                .expect("status")
                .into_inner()
        }
    };
    let today = chargemesh_kit::clock::china_date(clock.now()).to_string();
    let pending = status(&staff, today.clone()).await;
    assert!(!pending.done && !pending.overdue, "today is not over yet");
    let recorded = staff
        .client()
        .record_daily_check(with_token(
            pb::RecordDailyCheckRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                day: today.clone(),
                cameras: vec![pb::CameraCheck {
                    camera_id: "CAM-1".into(),
                    aimed: true,
                    live_video: true,
                    recording: false,
                }],
                links: vec![pb::LinkCheck {
                    link_id: "SIM-1".into(),
                    up: true,
                    traffic_mb: 480.0,
                }],
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("recorded")
        .into_inner();
    assert_eq!(recorded.findings.len(), 2, "{:?}", recorded.findings);
    assert_eq!(recorded.defects.len(), 2, "each finding opens a defect");
    assert!(status(&staff, today).await.done);
    // Tomorrow, without a check, becomes overdue the day after.
    clock.advance(chrono::Duration::days(1));
    let tomorrow = chargemesh_kit::clock::china_date(clock.now()).to_string();
    clock.advance(chrono::Duration::days(1));
    assert!(status(&staff, tomorrow).await.overdue);
    mesh.stop().await;
}

#[tokio::test]
async fn mon_8_link_states_the_piles_report_stand_in_the_daily_check() {
    // The links are reported over the three hours before "now" and read back for the local
    // (UTC+8) day: in the first hours after local midnight that would be yesterday, so the
    // clock starts at 23:00 of the previous local day then (still in the past).
    let real = chrono::Utc::now();
    let (midnight, _) = chargemesh_kit::clock::china_day(chargemesh_kit::clock::china_date(real));
    let start = if real - midnight < chrono::Duration::hours(4) {
        midnight - chrono::Duration::hours(1)
    } else {
        real
    };
    let clock = ManualClock::new(start);
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    staff
        .client()
        .register_monitoring_equipment(with_token(
            pb::RegisterMonitoringEquipmentRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                cameras: Vec::new(),
                links: vec![pb::CommunicationLink {
                    link_id: "SIM-1".into(),
                    iccid: "89860012345".into(),
                    carrier: "China Mobile".into(),
                    traffic_min_mb: 5.0,
                    traffic_max_mb: 50.0,
                }],
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("registered");
    // P1 reports its SIM by ICCID: active in the morning, inactive an hour later.
    let mut pile = TelemetryStream::open(mesh.channel("operator")).await;
    let link = |sequence: u64, up: bool| tm::TelemetryMessage {
        sequence,
        pile_id: "P1".into(),
        observe_time: Some(chargemesh_kit::time::to_timestamp(
            clock.now() - chrono::Duration::hours(3 - sequence as i64),
        )),
        body: Some(tm::telemetry_message::Body::Link(tm::LinkState {
            iccid: "89860012345".into(),
            up,
            traffic_mb_24h: if up { 20.0 } else { 0.0 },
            ..Default::default()
        })),
        ..Default::default()
    };
    pile.send(vec![link(1, true), link(2, false)]).await;
    let ack = pile.next().await;
    assert!(
        matches!(ack, tm::connect_response::Body::Acknowledgement(ref a) if a.last_sequence == 2),
        "{ack:?}"
    );
    // The monitor reads them through the gateway.
    let mut telemetry =
        tm::telemetry_service_client::TelemetryServiceClient::new(mesh.anonymous_channel());
    let states = telemetry
        .list_link_states(with_token(
            tm::ListLinkStatesRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                day: String::new(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("link states")
        .into_inner()
        .links;
    assert_eq!(states.len(), 1, "the latest per link");
    assert_eq!(states[0].state.as_ref().map(|s| s.up), Some(false));
    // The check names no link by hand: the report stands in, and the dead SIM opens a defect.
    let check = |day: String| pb::RecordDailyCheckRequest {
        operator_id: OP.into(),
        station_id: "S-URB".into(),
        day,
        cameras: Vec::new(),
        links: Vec::new(),
    };
    let today = chargemesh_kit::clock::china_date(clock.now()).to_string();
    let recorded = staff
        .client()
        .record_daily_check(with_token(check(today), &staff.token("monitor")))
        .await
        .expect("recorded")
        .into_inner();
    assert_eq!(recorded.findings.len(), 1, "{:?}", recorded.findings);
    assert!(recorded.findings[0].contains("89860012345 is inactive"));
    assert_eq!(recorded.defects.len(), 1);
    // The next day nothing is reported and nothing checked by hand: refused, naming MON-8.
    clock.advance(chrono::Duration::days(1));
    let tomorrow = chargemesh_kit::clock::china_date(clock.now()).to_string();
    let refused = staff
        .client()
        .record_daily_check(with_token(check(tomorrow), &staff.token("monitor")))
        .await
        .expect_err("no result");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("MON-8"), "{}", refused.message());
    mesh.stop().await;
}
