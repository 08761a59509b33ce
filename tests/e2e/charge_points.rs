//! The charge point API through the gateway: who may manage passwords and tokens, what a
//! pile may ask, what only the edge may call, and the rules each field is held to.

use super::*;
use chargemesh_proto::asset::v1::charge_point_service_client::ChargePointServiceClient;

async fn fleet(mesh: &TestMesh) {
    let mut op = mesh.client("operator");
    register(&mut op, DEMO_CREDIT_CODE).await;
    op.create_station(pb::CreateStationRequest {
        station: Some(demo::station(OP, "S1", "330602")),
    })
    .await
    .expect("station");
    for (pile, protocol) in [
        ("P16", pb::PileProtocol::Ocpp16),
        ("PNATIVE", pb::PileProtocol::Unspecified),
    ] {
        let mut record = demo::pile(OP, "S1", pile, pb::PileType::Ac, 7.0);
        record.protocol = protocol as i32;
        op.create_pile(pb::CreatePileRequest { pile: Some(record) })
            .await
            .expect("pile");
    }
}

#[tokio::test]
async fn netsec_1_charge_point_ids_are_checked_and_unique_and_passwords_only_for_ocpp_piles() {
    let mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut op = mesh.client("operator");
    let mut bad = demo::pile(OP, "S1", "PBAD", pb::PileType::Ac, 7.0);
    bad.protocol = pb::PileProtocol::Ocpp201 as i32;
    bad.charge_point_id = "CP/with/slashes".into();
    let (code, message) = code_and_message(
        op.create_pile(pb::CreatePileRequest {
            pile: Some(bad.clone()),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("pile.charge_point_id"), "{message}");
    bad.charge_point_id = "P16".into();
    let (code, message) = code_and_message(
        op.create_pile(pb::CreatePileRequest { pile: Some(bad) })
            .await,
    );
    assert_eq!(
        code,
        Code::AlreadyExists,
        "P16 is taken by the OCPP pile P16"
    );
    assert!(message.contains("charge point id P16"), "{message}");
    let mut native = demo::pile(OP, "S1", "PN2", pb::PileType::Ac, 7.0);
    native.charge_point_id = "CP-N2".into();
    let (code, _) = code_and_message(
        op.create_pile(pb::CreatePileRequest { pile: Some(native) })
            .await,
    );
    assert_eq!(
        code,
        Code::InvalidArgument,
        "a native pile has no charge point id"
    );

    let mut cps = ChargePointServiceClient::new(mesh.channel("operator"));
    let (code, message) = code_and_message(
        cps.set_charge_point_password(pb::SetChargePointPasswordRequest {
            operator_id: OP.into(),
            pile_id: "PNATIVE".into(),
            password: "a-long-enough-password".into(),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("not an OCPP pile"), "{message}");
    // Only the edge authenticates charge points and lists unknown ones.
    let (code, _) = code_and_message(
        cps.authenticate_charge_point(pb::AuthenticateChargePointRequest {
            charge_point_id: "P16".into(),
            credential: Some(pb::authenticate_charge_point_request::Credential::Password(
                "guess-guess-guess".into(),
            )),
        })
        .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    let (code, _) = code_and_message(
        cps.record_unknown_charge_point(pb::RecordUnknownChargePointRequest {
            operator_id: OP.into(),
            charge_point_id: "X".into(),
            detail: String::new(),
        })
        .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    // A monitor may not set a password; an O&M manager may.
    let monitor =
        pki::mint_token(mesh.pki(), "mon", Some(OP), &["monitor".into()], 600).expect("token");
    let (code, _) = code_and_message(
        cps.set_charge_point_password(with_token(
            pb::SetChargePointPasswordRequest {
                operator_id: OP.into(),
                pile_id: "P16".into(),
                password: "a-long-enough-password".into(),
            },
            &monitor,
        ))
        .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    mesh.stop().await;
}

#[tokio::test]
async fn id_tokens_are_the_operators_own_and_a_pile_asks_only_for_itself() {
    let mesh = TestMesh::start().await;
    fleet(&mesh).await;
    let mut cps = ChargePointServiceClient::new(mesh.channel("operator"));
    let (code, message) = code_and_message(
        cps.put_id_token(pb::PutIdTokenRequest {
            id_token: Some(pb::IdToken {
                operator_id: OP.into(),
                token: "CARD-1".into(),
                ..Default::default()
            }),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("id_token.status"), "{message}");
    let (code, message) = code_and_message(
        cps.put_id_token(pb::PutIdTokenRequest {
            id_token: Some(pb::IdToken {
                operator_id: OP.into(),
                token: "x".repeat(37),
                status: pb::IdTokenStatus::Accepted as i32,
                ..Default::default()
            }),
        })
        .await,
    );
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("id_token.token"), "{message}");
    cps.put_id_token(pb::PutIdTokenRequest {
        id_token: Some(pb::IdToken {
            operator_id: OP.into(),
            token: "CARD-1".into(),
            status: pb::IdTokenStatus::Accepted as i32,
            ..Default::default()
        }),
    })
    .await
    .expect("put");
    // Another operator neither sees nor writes this operator's list.
    let mut other = mesh.client_as(&Principal::Operator {
        operator_id: OTHER_OP.into(),
    });
    register(&mut other, OTHER_CREDIT_CODE).await;
    let mut theirs = ChargePointServiceClient::new(mesh.channel_as(&Principal::Operator {
        operator_id: OTHER_OP.into(),
    }));
    let (code, _) = code_and_message(
        theirs
            .list_id_tokens(pb::ListIdTokensRequest {
                operator_id: OP.into(),
                ..Default::default()
            })
            .await,
    );
    assert!(
        matches!(code, Code::NotFound | Code::PermissionDenied),
        "{code:?}"
    );
    let (code, _) = code_and_message(
        theirs
            .put_id_token(pb::PutIdTokenRequest {
                id_token: Some(pb::IdToken {
                    operator_id: OP.into(),
                    token: "CARD-X".into(),
                    status: pb::IdTokenStatus::Accepted as i32,
                    ..Default::default()
                }),
            })
            .await,
    );
    assert_eq!(code, Code::PermissionDenied);
    // A pile asks about a token for itself, and no other pile.
    let pile = Principal::Pile {
        operator_id: OP.into(),
        station_id: "S1".into(),
        pile_id: "P16".into(),
    };
    let mut as_pile = ChargePointServiceClient::new(mesh.channel_as(&pile));
    let verdict = as_pile
        .authorize_id_token(pb::AuthorizeIdTokenRequest {
            operator_id: OP.into(),
            pile_id: String::new(),
            token: "CARD-1".into(),
        })
        .await
        .expect("verdict")
        .into_inner();
    assert_eq!(verdict.status, pb::IdTokenStatus::Accepted as i32);
    assert_eq!(verdict.method, pb::AuthorizationMethod::IdTokenList as i32);
    let unknown = as_pile
        .authorize_id_token(pb::AuthorizeIdTokenRequest {
            operator_id: OP.into(),
            pile_id: "P16".into(),
            token: "CARD-NOBODY".into(),
        })
        .await
        .expect("verdict")
        .into_inner();
    assert_eq!(unknown.status, pb::IdTokenStatus::Unknown as i32);
    let listed = cps
        .list_id_tokens(pb::ListIdTokensRequest {
            operator_id: OP.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.id_tokens.len(), 1);
    mesh.stop().await;
}
