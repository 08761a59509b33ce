//! Who may see and do what: operators apart, regulators read-only in their area, certificates,
//! staff JWTs, forged principals and renewed certificates (REQ NETSEC-1).

use super::*;

#[tokio::test]
async fn operator_b_cannot_read_or_change_operator_a_station_and_learns_nothing() {
    let mesh = TestMesh::start().await;
    let mut a = mesh.client("operator");
    register(&mut a, DEMO_CREDIT_CODE).await;
    station_of(&mut a, OP, "S1", "330602").await;
    let mut b = mesh.client_as(&Principal::Operator {
        operator_id: OTHER_OP.into(),
    });
    register(&mut b, OTHER_CREDIT_CODE).await;

    let foreign = b
        .get_station(pb::GetStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await
        .expect_err("hidden");
    let absent = b
        .get_station(pb::GetStationRequest {
            operator_id: OP.into(),
            station_id: "NO-SUCH".into(),
        })
        .await
        .expect_err("absent");
    assert_eq!(foreign.code(), Code::NotFound);
    assert_eq!(
        foreign.message().replace("S1", "X"),
        absent.message().replace("NO-SUCH", "X"),
        "an existing foreign station looks exactly like a missing one"
    );
    let mut rename = demo::station(OP, "S1", "330602");
    rename.name = "hijacked".into();
    let (code, _) = code_and_message(
        b.update_station(pb::UpdateStationRequest {
            station: Some(rename),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["name".into()],
            }),
        })
        .await,
    );
    assert_eq!(code, Code::NotFound);
    let (code, _) = code_and_message(
        b.accept_station(pb::AcceptStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
            acceptance: Some(pb::Acceptance {
                report_reference: "forged".into(),
                accepted_on: today().to_string(),
            }),
        })
        .await,
    );
    assert_eq!(code, Code::NotFound);
    let (code, _) = code_and_message(
        b.create_pile(pb::CreatePileRequest {
            pile: Some(demo::pile(OP, "S1", "PX", pb::PileType::Dc, 60.0)),
        })
        .await,
    );
    assert_eq!(code, Code::NotFound);
    // B's own station of the same id is B's, and A's listing does not show it.
    station_of(&mut b, OTHER_OP, "S1", "330602").await;
    let listed = b
        .list_stations(pb::ListStationsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.stations.len(), 1);
    assert_eq!(listed.stations[0].operator_id, OTHER_OP);
    let history = b
        .list_change_records(pb::ListChangeRecordsRequest {
            operator_id: OP.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(history.map_err(|s| s.code()).err(), Some(Code::NotFound));
    let a_station = a
        .get_station(pb::GetStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await
        .expect("A still reads its own")
        .into_inner();
    assert_ne!(a_station.station.expect("station").name, "hijacked");
    mesh.stop().await;
}

#[tokio::test]
async fn a_regulator_reads_its_area_only_and_writes_nothing() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    station_of(&mut op, OP, "S-SX", "330602").await;
    station_of(&mut op, OP, "S-HZ", "330102").await;

    let mut shaoxing = mesh.client("regulator");
    let seen = shaoxing
        .list_stations(pb::ListStationsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<_> = seen
        .stations
        .iter()
        .map(|s| s.station_id.as_str())
        .collect();
    assert_eq!(ids, ["S-SX"], "city 330600 covers district 330602 only");
    let (code, _) = code_and_message(
        shaoxing
            .get_station(pb::GetStationRequest {
                operator_id: OP.into(),
                station_id: "S-HZ".into(),
            })
            .await,
    );
    assert_eq!(code, Code::NotFound);
    let (code, _) = code_and_message(
        shaoxing
            .create_station(pb::CreateStationRequest {
                station: Some(demo::station(OP, "S-REG", "330602")),
            })
            .await,
    );
    assert_eq!(
        code,
        Code::PermissionDenied,
        "the gateway policy refuses regulator writes"
    );

    let mut elsewhere = mesh.client_as(&Principal::Regulator {
        area_code: "310000".into(),
    });
    let seen = elsewhere
        .list_stations(pb::ListStationsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(
        seen.stations.is_empty(),
        "a regulator of another area sees nothing"
    );
    let (code, _) = code_and_message(
        elsewhere
            .get_station(pb::GetStationRequest {
                operator_id: OP.into(),
                station_id: "S-SX".into(),
            })
            .await,
    );
    assert_eq!(code, Code::NotFound);
    let province = mesh.client_as(&Principal::Regulator {
        area_code: "330000".into(),
    });
    let seen = province
        .clone()
        .list_stations(pb::ListStationsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        seen.stations.len(),
        2,
        "province 330000 covers Shaoxing and Hangzhou"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_clients_without_a_valid_certificate_cannot_connect() {
    let mesh = TestMesh::start_with(false).await;
    let list = |mut c: AssetServiceClient<tonic::transport::Channel>| async move {
        c.list_stations(pb::ListStationsRequest::default()).await
    };
    // The mesh's own operator certificate works.
    list(mesh.client("operator"))
        .await
        .expect("valid certificate");
    // No certificate: the handshake is refused.
    let anonymous = AssetServiceClient::new(mesh.anonymous_channel());
    assert!(list(anonymous).await.is_err(), "no certificate");
    // A certificate from another CA.
    let rogue_ca = Authority::new("rogue CA").expect("ca");
    let operator = Principal::Operator {
        operator_id: OP.into(),
    };
    let rogue = mesh.identity(&rogue_ca, &operator, -1, 30);
    assert!(
        list(mesh.client_with_files(&rogue)).await.is_err(),
        "foreign CA"
    );
    // An expired certificate from the right CA.
    let expired = mesh.identity(&mesh.ca, &operator, -30, -1);
    assert!(
        list(mesh.client_with_files(&expired)).await.is_err(),
        "expired"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_without_certificate_a_call_needs_a_valid_staff_jwt() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    station_of(&mut op, OP, "S1", "330602").await;

    let mut app = AssetServiceClient::new(mesh.anonymous_channel());
    let (code, _) = code_and_message(app.list_stations(pb::ListStationsRequest::default()).await);
    assert_eq!(code, Code::Unauthenticated, "neither certificate nor token");
    // REQ SVC-1, SIGN-2: what the sign at the station says is anyone's, and only that.
    let public = app
        .get_public_station(pb::GetPublicStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await
        .expect("public without a credential")
        .into_inner()
        .station
        .expect("station");
    assert_eq!(public.service_phone, "0575-88888888");
    assert!(!public.price_board.is_empty());
    let (code, _) = code_and_message(
        app.get_station(pb::GetStationRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
        })
        .await,
    );
    assert_eq!(
        code,
        Code::Unauthenticated,
        "the full record needs a credential"
    );

    let good =
        pki::mint_token(mesh.pki(), "alice", Some(OP), &["om_manager".into()], 600).expect("token");
    let seen = app
        .list_stations(with_token(pb::ListStationsRequest::default(), &good))
        .await
        .expect("staff of the operator")
        .into_inner();
    assert_eq!(seen.stations.len(), 1);

    let key = std::fs::read(mesh.pki().jwt_key()).expect("key");
    let now = chrono::Utc::now().timestamp();
    let claims = StaffClaims {
        iss: pki::JWT_ISSUER.into(),
        aud: pki::JWT_AUDIENCE.into(),
        sub: "mallory".into(),
        exp: now + 600,
        nbf: now - 5,
        iat: now,
        operator_id: Some(OP.into()),
        roles: vec!["om_manager".into()],
    };
    let forged_key = rcgen::KeyPair::generate().expect("key").serialize_pem();
    let bad_signature = sign_es256(&claims, forged_key.as_bytes(), pki::JWT_KID).expect("sign");
    let wrong_audience = sign_es256(
        &StaffClaims {
            aud: "another-system".into(),
            ..claims.clone()
        },
        &key,
        pki::JWT_KID,
    )
    .expect("sign");
    let expired = sign_es256(
        &StaffClaims {
            exp: now - 120,
            nbf: now - 600,
            ..claims.clone()
        },
        &key,
        pki::JWT_KID,
    )
    .expect("sign");
    for (what, token) in [
        ("bad signature", bad_signature),
        ("wrong audience", wrong_audience),
        ("expired", expired),
    ] {
        let (code, _) = code_and_message(
            app.list_stations(with_token(pb::ListStationsRequest::default(), &token))
                .await,
        );
        assert_eq!(code, Code::Unauthenticated, "{what}");
    }

    // A monitor may suspend (MON-4) but not create stations.
    let monitor =
        pki::mint_token(mesh.pki(), "mo", Some(OP), &["monitor".into()], 600).expect("token");
    let (code, _) = code_and_message(
        app.create_station(with_token(
            pb::CreateStationRequest {
                station: Some(demo::station(OP, "S2", "330602")),
            },
            &monitor,
        ))
        .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_a_client_reaching_a_service_directly_cannot_forge_a_principal() {
    let mesh = TestMesh::start().await;
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    station_of(&mut op, OP, "S1", "330602").await;

    let forged = Principal::Service {
        name: "gateway".into(),
    };
    let mut direct =
        AssetServiceClient::new(mesh.direct_asset_channel(&mesh.pki_files("operator")));
    let request = chargemesh_kit::identity::request_as(&forged, pb::ListStationsRequest::default());
    let (code, _) = code_and_message(direct.list_stations(request).await);
    assert_eq!(
        code,
        Code::PermissionDenied,
        "principal metadata from a non-gateway peer"
    );
    let (code, _) = code_and_message(
        direct
            .list_stations(pb::ListStationsRequest::default())
            .await,
    );
    assert_eq!(
        code,
        Code::PermissionDenied,
        "services are reached through the gateway"
    );
    // A regulator certificate from the mesh CA fares no better.
    let mut regulator =
        AssetServiceClient::new(mesh.direct_asset_channel(&mesh.pki_files("regulator")));
    let (code, _) = code_and_message(
        regulator
            .list_stations(pb::ListStationsRequest::default())
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    mesh.stop().await;
}

#[tokio::test]
async fn netsec_1_a_renewed_client_certificate_is_presented_without_a_restart() {
    let mesh = TestMesh::start().await;
    let mut a = mesh.client("operator");
    register(&mut a, DEMO_CREDIT_CODE).await;
    station_of(&mut a, OP, "S1", "330602").await;

    // A client's certificate files, as cert-manager keeps them in a mounted Secret.
    let dir = mesh.dir.join("pki");
    let issue = |principal: &Principal| {
        let now = time::OffsetDateTime::now_utc();
        let pair = mesh
            .ca
            .issue(
                principal,
                common::TD,
                &[],
                now - time::Duration::days(1),
                now + time::Duration::days(30),
            )
            .expect("issue");
        pki::write_pair(&dir, "rotating", &pair).expect("write");
    };
    issue(&Principal::Operator {
        operator_id: OP.into(),
    });
    let files = chargemesh_kit::tls::TlsFiles::in_dir(&dir, "rotating");
    let config = std::sync::Arc::new(chargemesh_kit::tls::client_config(&files).expect("config"));
    let url = format!("https://127.0.0.1:{}", mesh.gateway_port());
    let sees_s1 = async |config: std::sync::Arc<rustls::ClientConfig>| {
        let channel = chargemesh_kit::tls::channel(&url, config).expect("channel");
        AssetServiceClient::new(channel)
            .get_station(pb::GetStationRequest {
                operator_id: OP.into(),
                station_id: "S1".into(),
            })
            .await
            .is_ok()
    };
    assert!(
        sees_s1(config.clone()).await,
        "the first certificate is operator A's"
    );

    // Renewed in place — here for another operator, so the switch shows. The same client
    // configuration presents the new certificate on its next connection.
    issue(&Principal::Operator {
        operator_id: OTHER_OP.into(),
    });
    assert!(
        !sees_s1(config.clone()).await,
        "the next connection presents the renewed certificate"
    );
    mesh.stop().await;
}
