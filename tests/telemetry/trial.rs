//! The trial-operation report from reported days, and commissioning gated on it (REQ BASE-2).

use super::*;

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
