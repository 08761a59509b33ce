//! REQ NETSEC-1 at the OCPP edge: every security profile, and every refusal before the upgrade.

use std::path::PathBuf;

use chargemesh::pki::{Authority, DEMO_CREDIT_CODE, DEMO_OPERATOR_ID as OP};
use chargemesh_proto::asset::v1 as asset;

use super::{
    ChargePoint, Credential, charge_points, fleet, fleet_with, make_ocpp, pile_identity, python,
    wss_url,
};

/// Writes a PEM pair under `dir` as `name`.
fn write(dir: &std::path::Path, name: &str, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    chargemesh::pki::write_pair(dir, name, &(cert.clone(), key.clone())).expect("written");
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

async fn unknown_ids(mesh: &common::TestMesh) -> Vec<String> {
    charge_points(mesh)
        .list_unknown_charge_points(asset::ListUnknownChargePointsRequest {
            operator_id: OP.into(),
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner()
        .unknown_charge_points
        .into_iter()
        .map(|u| u.charge_point_id)
        .collect()
}

use super::common;

#[tokio::test]
async fn netsec_1_an_unknown_charge_point_is_rejected_and_listed_and_a_foreign_ca_is_refused() {
    let Some(python) = python() else { return };
    let mesh = fleet().await;
    // A certificate of the mesh CA for a pile the registry does not know: the boot is rejected,
    // and the operator sees the charge point listed.
    let unknown = pile_identity(&mesh.ca, &mesh.dir, "ghost", "GHOST1");
    let mut cp = ChargePoint::start(&python, &mesh, "1.6", "GHOST1", &unknown, "boot");
    cp.expect("connected").await;
    assert_eq!(cp.expect("boot").await["status"], "Rejected");
    cp.finish().await;
    assert!(unknown_ids(&mesh).await.contains(&"GHOST1".to_owned()));
    // A pile certificate from another CA: refused before the upgrade.
    let foreign = Authority::new("foreign CA").expect("ca");
    let stranger = pile_identity(&foreign, &mesh.dir, "foreign-CP16", "CP16");
    let mut cp = ChargePoint::start(&python, &mesh, "2.0.1", "CP16", &stranger, "boot");
    let refused = cp.expect("refused").await;
    assert!(refused["error"].as_str().is_some(), "{refused}");
    cp.finish().await;
    // The mesh CA's certificate of one pile on the path of another: 403 before the upgrade.
    let own = pile_identity(&mesh.ca, &mesh.dir, "CP16", "CP16");
    let mut cp = ChargePoint::start(&python, &mesh, "1.6", "CP201", &own, "boot");
    let refused = cp.expect("refused").await;
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("403")),
        "{refused}"
    );
    cp.finish().await;
    mesh.stop().await;
}

/// Boots a charge point and says what happened: the boot's status, or the refusal.
async fn boot(
    python: &std::path::Path,
    url: &str,
    ca: Option<&std::path::Path>,
    credential: &Credential,
    version: &str,
) -> String {
    let mut cp = ChargePoint::launch(python, url, ca, credential, version, "boot", &[]);
    let first = cp.expect_any().await;
    let outcome = match first["event"].as_str() {
        Some("connected") => format!(
            "boot {}",
            cp.expect("boot").await["status"]
                .as_str()
                .unwrap_or_default()
        ),
        _ => format!("refused {}", first["error"].as_str().unwrap_or_default()),
    };
    cp.finish().await;
    outcome
}

#[tokio::test]
async fn netsec_1_profile_2_and_1_passwords_and_profile_3_whitepaper_certificates() {
    let Some(python) = python() else { return };
    let operator_ca = Authority::new("Demo Operator charge point CA").expect("ca");
    let ca_dir = std::env::temp_dir().join(format!("cm-opca-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&ca_dir).expect("dir");
    let ca_file = ca_dir.join("operator-ca.pem");
    std::fs::write(&ca_file, &operator_ca.cert_pem).expect("written");
    let mesh = fleet_with(|ocpp| {
        ocpp.insecure_listen = "127.0.0.1:0".into();
        ocpp.operator_cas = vec![chargemesh_ocpp::OperatorCa {
            operator_id: OP.into(),
            ca_file: ca_file.clone(),
        }];
    })
    .await;
    let mesh_ca = mesh.pki().ca();
    let ca = Some(mesh_ca.as_path());

    // Profile 2: the password is set through the asset API, at least 16 characters.
    make_ocpp(&mesh, "CP16", asset::PileProtocol::Ocpp16, "").await;
    let short = charge_points(&mesh)
        .set_charge_point_password(asset::SetChargePointPasswordRequest {
            operator_id: OP.into(),
            pile_id: "CP16".into(),
            password: "too-short".into(),
        })
        .await
        .expect_err("too short");
    assert_eq!(short.code(), tonic::Code::InvalidArgument);
    assert!(short.message().contains("NETSEC-1"), "{short:?}");
    let secret = "correct-horse-battery-staple";
    let set = charge_points(&mesh)
        .set_charge_point_password(asset::SetChargePointPasswordRequest {
            operator_id: OP.into(),
            pile_id: "CP16".into(),
            password: secret.into(),
        })
        .await
        .expect("set")
        .into_inner();
    assert_eq!(
        set.charge_point_id, "CP16",
        "an OCPP pile is its own charge point"
    );
    let pile = mesh
        .client("operator")
        .get_pile(asset::GetPileRequest {
            operator_id: OP.into(),
            pile_id: "CP16".into(),
        })
        .await
        .expect("pile")
        .into_inner()
        .pile
        .expect("pile");
    assert!(pile.password_set);
    let history = format!(
        "{:?}",
        mesh.client("operator")
            .list_change_records(asset::ListChangeRecordsRequest {
                operator_id: OP.into(),
                entity_type: "pile".into(),
                entity_id: "CP16".into(),
                ..Default::default()
            })
            .await
            .expect("history")
            .into_inner()
    );
    assert!(history.contains("set-password"), "the change is on record");
    assert!(
        !history.contains(secret) && !history.contains("pbkdf2"),
        "but no secret is"
    );

    let url = wss_url(&mesh, "CP16");
    let basic = |password: &str| Credential::Basic("CP16".into(), password.into());
    assert_eq!(
        boot(&python, &url, ca, &basic(secret), "1.6").await,
        "boot Accepted"
    );
    let wrong = boot(
        &python,
        &url,
        ca,
        &basic("correct-horse-battery-stapl3"),
        "1.6",
    )
    .await;
    assert!(
        wrong.starts_with("refused") && wrong.contains("401"),
        "{wrong}"
    );
    let nobody = boot(
        &python,
        &wss_url(&mesh, "NOBODY"),
        ca,
        &Credential::Basic("NOBODY".into(), secret.into()),
        "1.6",
    )
    .await;
    assert!(
        nobody.starts_with("refused") && nobody.contains("401"),
        "{nobody}"
    );
    let other_user = boot(
        &python,
        &url,
        ca,
        &Credential::Basic("CP201".into(), secret.into()),
        "1.6",
    )
    .await;
    assert!(other_user.contains("401"), "{other_user}");

    // Profile 1: the same password over plain TCP, on the listener a TLS proxy fronts.
    let insecure = mesh
        .mesh
        .as_ref()
        .and_then(|m| m.ocpp_insecure_addr)
        .expect("profile 1 listens");
    let plain = format!("ws://127.0.0.1:{}/ocpp/CP16", insecure.port());
    assert_eq!(
        boot(&python, &plain, None, &basic(secret), "1.6").await,
        "boot Accepted"
    );
    let plain_wrong = boot(
        &python,
        &plain,
        None,
        &basic("not-the-password-at-all"),
        "1.6",
    )
    .await;
    assert!(plain_wrong.contains("401"), "{plain_wrong}");

    // Profile 3 with the operator's own CA: CN is the charge point id, O the operator's name.
    make_ocpp(&mesh, "CP201", asset::PileProtocol::Ocpp201, "CS-201").await;
    let name = chargemesh::demo::operator(DEMO_CREDIT_CODE).name;
    let dir = mesh.dir.clone();
    let cert = |file: &str, ca: &Authority, cn: &str, o: &str| {
        let pair = ca.issue_charge_point(cn, o, 30).expect("issued");
        let (c, k) = write(&dir, file, &pair);
        Credential::Certificate(c, k)
    };
    let station = cert("cs-201", &operator_ca, "CS-201", &name);
    assert_eq!(
        boot(&python, &wss_url(&mesh, "CS-201"), ca, &station, "2.0.1").await,
        "boot Accepted"
    );
    let on_pile_id = boot(&python, &wss_url(&mesh, "CP201"), ca, &station, "2.0.1").await;
    assert!(
        on_pile_id.contains("403"),
        "CN names another charge point: {on_pile_id}"
    );
    let other_o = cert("cs-201-other", &operator_ca, "CS-201", "Someone Else Ltd.");
    let refused = boot(&python, &wss_url(&mesh, "CS-201"), ca, &other_o, "2.0.1").await;
    assert!(refused.contains("401"), "O is not the operator: {refused}");
    let foreign_ca = Authority::new("another operator's CA").expect("ca");
    let forged = cert("cs-201-forged", &foreign_ca, "CS-201", &name);
    let refused = boot(&python, &wss_url(&mesh, "CS-201"), ca, &forged, "2.0.1").await;
    assert!(refused.starts_with("refused"), "a foreign CA: {refused}");
    let ghost = cert("cs-ghost", &operator_ca, "CS-GHOST", &name);
    let refused = boot(&python, &wss_url(&mesh, "CS-GHOST"), ca, &ghost, "2.0.1").await;
    assert!(refused.contains("404"), "not registered: {refused}");
    assert!(
        unknown_ids(&mesh).await.contains(&"CS-GHOST".to_owned()),
        "listed for the operator"
    );
    mesh.stop().await;
    let _ = std::fs::remove_dir_all(ca_dir);
}

/// What the OCPP edge says to a TLS connection of `config` that asks for a charge point's path
/// without upgrading, and whether the session was resumed from a ticket.
async fn plain_get(
    mesh: &common::TestMesh,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> (rustls::HandshakeKind, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = common::tls_to(super::ocpp_port(mesh), config.clone())
        .await
        .expect("handshake");
    let kind = tls.get_ref().1.handshake_kind().expect("handshaken");
    tls.write_all(b"GET /ocpp/CP16 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    (kind, status)
}

#[tokio::test]
async fn netsec_1_a_charge_point_that_reconnects_resumes_its_tls_session_and_is_checked_as_before()
{
    let mesh = fleet().await;
    let (cert, key) = pile_identity(&mesh.ca, &mesh.dir, "resuming-CP16", "CP16");
    let mut config = common::resuming_client(&mesh.pki().ca(), &cert, &key);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = std::sync::Arc::new(config);
    let (first, answer) = plain_get(&mesh, &config).await;
    assert_eq!(first, rustls::HandshakeKind::Full);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    // Back with the ticket: no certificate exchange, and the same answer (its certificate
    // was checked again: a path it may use, but no upgrade asked).
    let (again, resumed_answer) = plain_get(&mesh, &config).await;
    assert_eq!(again, rustls::HandshakeKind::Resumed);
    assert_eq!(resumed_answer, answer);
    mesh.stop().await;
}
