//! `chargemesh sim --protocol ocpp1.6|ocpp2.0.1`: simulated charge points register as OCPP piles,
//! connect over profile 3 (certificates) or profile 2 (a password), and their sessions are
//! settled like any other pile's.

use std::time::Duration;

use chargemesh::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID as OP};
use chargemesh::sim_ocpp::OcppVersion;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::metering::v1 as mt;

use super::common::{TD, TestMesh};

#[tokio::test]
async fn base_2_simulated_ocpp_charge_points_of_both_versions_report_and_are_settled() {
    let mesh = TestMesh::start_with_options(|opts| {
        opts.config.gateway.ocpp.listen = "127.0.0.1:0".into();
    })
    .await;
    mesh.client("operator")
        .create_operator(asset::CreateOperatorRequest {
            operator: Some(chargemesh::demo::operator(DEMO_CREDIT_CODE)),
        })
        .await
        .expect("operator");
    let m = mesh.mesh.as_ref().expect("mesh");
    let edge = m.ocpp_addr.expect("the OCPP edge");
    let mut tasks = Vec::new();
    for (station, version, password) in [
        (
            "SIM-O16",
            OcppVersion::V16,
            Some("simulated-password-16".to_owned()),
        ),
        ("SIM-O201", OcppVersion::V201, None),
    ] {
        tasks.extend(
            chargemesh::sim::start(chargemesh::sim::SimOptions {
                gateway: m.gateway_addr,
                pki: mesh.pki().clone(),
                trust_domain: TD.into(),
                mode: chargemesh::sim::Mode::Pile,
                stations: vec![station.into()],
                piles_per_station: 2,
                create: true,
                tick: Duration::from_millis(20),
                seed: 5,
                ocpp: Some(chargemesh::sim::OcppSim {
                    version,
                    edge,
                    password,
                }),
                ykc: None,
                only_piles: Vec::new(),
            })
            .await
            .expect("the simulator starts"),
        );
    }
    assert_eq!(tasks.len(), 4, "one charge point per pile");
    let pile = mesh
        .client("operator")
        .get_pile(asset::GetPileRequest {
            operator_id: OP.into(),
            pile_id: "SIM-O16-P00".into(),
        })
        .await
        .expect("pile")
        .into_inner()
        .pile
        .expect("pile");
    assert_eq!(pile.protocol, asset::PileProtocol::Ocpp16 as i32);
    assert!(pile.password_set, "profile 2");
    // Sessions of both versions become settled orders (REQ SETTLE-1).
    let orders = super::orders_when(&mesh, |orders| {
        ["SIM-O16", "SIM-O201"].iter().all(|s| {
            orders
                .iter()
                .any(|o| o.station_id == *s && o.end_time.is_some() && o.energy_kwh != "0.000")
        })
    })
    .await;
    let ours: Vec<_> = orders
        .iter()
        .filter(|o| o.station_id.starts_with("SIM-O"))
        .collect();
    let broken = [
        mt::FlagKind::NeverEnded as i32,
        mt::FlagKind::NeverStarted as i32,
    ];
    assert!(
        ours.iter()
            .all(|o| o.recorded_by == "telemetry"
                && !o.flags.iter().any(|f| broken.contains(&f.kind))),
        "every session started and ended as the charge point said: {ours:?}"
    );
    for task in tasks {
        task.abort();
    }
    mesh.stop().await;
}
