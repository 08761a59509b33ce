//! The registry's rules through the gateway: a station walked to commissioning, the scope rules,
//! tariffs and the demo seed (REQ BASE-1, BASE-3, SCOPE-1, SCOPE-2).

use super::*;

#[tokio::test]
async fn an_operator_walks_a_station_to_commissioned() {
    // The trial-operation gate has its own test (telemetry.rs); here the lifecycle and BASE-5.
    let mesh =
        TestMesh::start_with_options(|opts| opts.config.asset.commissioning.min_days = 0).await;
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    station_of(&mut op, OP, "S1", "330602").await;
    op.create_pile(pb::CreatePileRequest {
        pile: Some(demo::pile(OP, "S1", "P1", pb::PileType::Dc, 120.0)),
    })
    .await
    .expect("pile");
    op.create_pile(pb::CreatePileRequest {
        pile: Some(demo::pile(OP, "S1", "P2", pb::PileType::Ac, 7.0)),
    })
    .await
    .expect("pile");
    let key = || (OP.to_owned(), "S1".to_owned());

    // BASE-5: commissioning needs certificates; first walk the lifecycle.
    let (operator_id, station_id) = key();
    let accepted = op
        .accept_station(pb::AcceptStationRequest {
            operator_id,
            station_id,
            acceptance: Some(pb::Acceptance {
                report_reference: "NB/T 33004 R-1".into(),
                accepted_on: today().to_string(),
            }),
        })
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!(
        accepted.station.expect("station").state,
        pb::StationState::Accepted as i32
    );
    let (operator_id, station_id) = key();
    op.file_station(pb::FileStationRequest {
        operator_id,
        station_id,
        filing: Some(pb::Filing {
            authority: "绍兴市市场监督管理局".into(),
            filing_number: "BA-1".into(),
            filed_on: today().to_string(),
        }),
    })
    .await
    .expect("filed");
    let (operator_id, station_id) = key();
    op.connect_station(pb::ConnectStationRequest {
        operator_id,
        station_id,
        connection_mode: pb::ConnectionMode::WholeStation as i32,
        note: String::new(),
    })
    .await
    .expect("connected");
    let (operator_id, station_id) = key();
    op.start_trial_operation(pb::StartTrialOperationRequest {
        operator_id,
        station_id,
    })
    .await
    .expect("trial");

    let (operator_id, station_id) = key();
    let (code, message) = code_and_message(
        op.commission_station(pb::CommissionStationRequest {
            operator_id,
            station_id,
        })
        .await,
    );
    assert_eq!(code, Code::FailedPrecondition);
    assert!(
        message.contains("BASE-5") && message.contains("P1") && message.contains("P2"),
        "{message}"
    );

    // BASE-5: the wrong procedure for the pile type is refused.
    let wrong = demo::certificate(OP, "P1", pb::VerificationProcedure::Jjg1148, "C-0", today());
    let (code, message) = code_and_message(
        op.create_metrology_certificate(pb::CreateMetrologyCertificateRequest {
            certificate: Some(wrong),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("BASE-5"), "{message}");
    for (pile, procedure, number) in [
        ("P1", pb::VerificationProcedure::Jjg1149, "C-1"),
        ("P2", pb::VerificationProcedure::Jjg1148, "C-2"),
    ] {
        op.create_metrology_certificate(pb::CreateMetrologyCertificateRequest {
            certificate: Some(demo::certificate(OP, pile, procedure, number, today())),
        })
        .await
        .expect("certificate");
    }
    let eligibility = op
        .check_settlement_eligibility(pb::CheckSettlementEligibilityRequest {
            operator_id: OP.into(),
            pile_id: "P1".into(),
            time: None,
        })
        .await
        .expect("eligibility")
        .into_inner();
    assert!(eligibility.eligible, "{}", eligibility.reason);

    let (operator_id, station_id) = key();
    let done = op
        .commission_station(pb::CommissionStationRequest {
            operator_id,
            station_id,
        })
        .await
        .expect("commissioned")
        .into_inner()
        .station
        .expect("station");
    assert_eq!(done.state, pb::StationState::Commissioned as i32);
    assert!(done.commission_time.is_some());

    // REC-2: every step is in the history, with who and before/after.
    let history = op
        .list_change_records(pb::ListChangeRecordsRequest {
            operator_id: OP.into(),
            entity_type: "station".into(),
            entity_id: "S1".into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .change_records;
    let actions: Vec<_> = history.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "accept",
            "file",
            "connect",
            "start_trial_operation",
            "commission"
        ]
    );
    assert!(history.iter().all(|r| r.actor == format!("operator/{OP}")));
    assert!(history[1].before_json.contains("\"registered\""));
    mesh.stop().await;
}

#[tokio::test]
async fn scope_2_a_5_kw_pile_is_refused_with_invalid_argument() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    station_of(&mut op, OP, "S1", "330602").await;
    let mut small = demo::pile(OP, "S1", "P-SMALL", pb::PileType::Ac, 5.0);
    small.connectors[0].power_kw = 5.0;
    let (code, message) = code_and_message(
        op.create_pile(pb::CreatePileRequest { pile: Some(small) })
            .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("SCOPE-2") && message.contains("rated_power_kw"),
        "{message}"
    );
    let missing = op
        .get_pile(pb::GetPileRequest {
            operator_id: OP.into(),
            pile_id: "P-SMALL".into(),
        })
        .await;
    assert_eq!(
        missing.map_err(|s| s.code()).err(),
        Some(Code::NotFound),
        "nothing half-written"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn scope_1_the_four_station_kinds_are_kept_and_an_unnamed_kind_is_refused() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    let kinds = [
        pb::StationKind::Dedicated,
        pb::StationKind::UrbanPublic,
        pb::StationKind::IntercityFast,
        pb::StationKind::ResidentialCommunity,
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        let id = format!("S-KIND-{i}");
        let mut station = demo::station(OP, &id, "330602");
        station.kind = kind as i32;
        op.create_station(pb::CreateStationRequest {
            station: Some(station),
        })
        .await
        .expect("a kind the standard names");
        let kept = op
            .get_station(pb::GetStationRequest {
                operator_id: OP.into(),
                station_id: id,
            })
            .await
            .expect("read")
            .into_inner()
            .station
            .expect("station");
        assert_eq!(kept.kind, kind as i32);
    }
    for bad in [pb::StationKind::Unspecified as i32, 99] {
        let mut station = demo::station(OP, "S-NO-KIND", "330602");
        station.kind = bad;
        let (code, message) = code_and_message(
            op.create_station(pb::CreateStationRequest {
                station: Some(station),
            })
            .await,
        );
        assert_eq!(code, Code::InvalidArgument);
        assert!(
            message.contains("kind") && message.contains("SCOPE-1"),
            "{message}"
        );
    }
    let missing = op
        .get_station(pb::GetStationRequest {
            operator_id: OP.into(),
            station_id: "S-NO-KIND".into(),
        })
        .await;
    assert_eq!(missing.map_err(|s| s.code()).err(), Some(Code::NotFound));
    mesh.stop().await;
}

#[tokio::test]
async fn base_1_commissioning_before_acceptance_is_refused_with_failed_precondition() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    station_of(&mut op, OP, "S1", "330602").await;
    let (code, message) = code_and_message(
        op.commission_station(pb::CommissionStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await,
    );
    assert_eq!(code, Code::FailedPrecondition);
    assert!(
        message.contains("BASE-1") && message.contains("acceptance"),
        "{message}"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn base_3_an_operator_without_charging_operation_in_scope_is_refused() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    let mut operator = demo::operator(DEMO_CREDIT_CODE);
    operator.business_scope = "新能源汽车销售".into();
    let (code, message) = code_and_message(
        op.create_operator(pb::CreateOperatorRequest {
            operator: Some(operator),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("BASE-3"), "{message}");
    // An operator registers itself, not another.
    let (code, _) = code_and_message(
        op.create_operator(pb::CreateOperatorRequest {
            operator: Some(demo::operator(OTHER_CREDIT_CODE)),
        })
        .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    mesh.stop().await;
}

#[tokio::test]
async fn up_demo_seeds_a_station_in_trial_operation_once() {
    let mesh = TestMesh::start().await;
    let addr = mesh.mesh.as_ref().expect("mesh").gateway_addr;
    assert!(
        demo::seed(addr, &mesh.pki_files("operator"))
            .await
            .expect("seed")
    );
    assert!(
        !demo::seed(addr, &mesh.pki_files("operator"))
            .await
            .expect("reseed is a no-op")
    );
    let mut regulator = mesh.client("regulator");
    let seen = regulator
        .list_stations(pb::ListStationsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        seen.stations
            .iter()
            .any(|s| s.station_id == pki::DEMO_STATION_ID
                && s.state == pb::StationState::TrialOperation as i32)
    );
    let _ = TD;
    mesh.stop().await;
}

#[tokio::test]
async fn base_3_a_scheduled_tariff_is_the_published_price_board_once_it_takes_effect() {
    use chargemesh_kit::clock::{Clock, ManualClock};
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh_clock = clock.clone();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = std::sync::Arc::new(mesh_clock);
    })
    .await;
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    station_of(&mut op, OP, "S-SX", "330602").await;
    let at = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    };
    let mut dearer = demo::price_board();
    for p in &mut dearer {
        p.service_fee = "0.9000".into();
    }
    let schedule = |periods: Vec<pb::PricePeriod>, from: chrono::DateTime<chrono::Utc>| {
        pb::ScheduleTariffRequest {
            operator_id: OP.into(),
            station_id: "S-SX".into(),
            effective_time: Some(at(from)),
            periods,
        }
    };
    let in_an_hour = clock.now() + chrono::Duration::hours(1);
    // A board that leaves the evening uncovered is refused, naming the gap.
    let mut gappy = dearer.clone();
    gappy.pop();
    let (code, message) = code_and_message(op.schedule_tariff(schedule(gappy, in_an_hour)).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(
        message.contains("21:00-24:00") && message.contains("BASE-3"),
        "{message}"
    );
    // A price is not changed after the fact.
    let (code, _) = code_and_message(
        op.schedule_tariff(schedule(
            dearer.clone(),
            clock.now() - chrono::Duration::hours(1),
        ))
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    let version = op
        .schedule_tariff(schedule(dearer.clone(), in_an_hour))
        .await
        .expect("scheduled")
        .into_inner()
        .version
        .expect("version");
    assert_eq!(version.version, 2);
    let board = |op: &mut AssetServiceClient<tonic::transport::Channel>| {
        let mut op = op.clone();
        async move {
            op.get_station(pb::GetStationRequest {
                operator_id: OP.into(),
                station_id: "S-SX".into(),
            })
            .await
            .expect("station")
            .into_inner()
            .station
            .expect("station")
            .price_board
        }
    };
    assert_eq!(
        board(&mut op).await,
        demo::price_board(),
        "not yet in force"
    );
    clock.advance(chrono::Duration::hours(1));
    assert_eq!(board(&mut op).await, dearer, "in force now");
    // The regulator of the area reads the versions; another operator learns nothing.
    let versions = mesh
        .client("regulator")
        .list_tariff_versions(pb::ListTariffVersionsRequest {
            operator_id: OP.into(),
            station_id: "S-SX".into(),
        })
        .await
        .expect("versions")
        .into_inner()
        .versions;
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1].periods, dearer);
    let mut other = mesh.client_as(&Principal::Operator {
        operator_id: OTHER_OP.into(),
    });
    register(&mut other, OTHER_CREDIT_CODE).await;
    let (code, _) = code_and_message(
        other
            .list_tariff_versions(pb::ListTariffVersionsRequest {
                operator_id: OP.into(),
                station_id: "S-SX".into(),
            })
            .await,
    );
    assert_eq!(code, Code::NotFound);
    mesh.stop().await;
}
