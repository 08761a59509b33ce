//! `chargemesh sim --protocol ykc`: simulated YKC piles register with their pile codes, log in
//! to the YKC edge, start sessions by card (0x31/0x32), and their transaction records become
//! settled orders like any other pile's.

use std::time::Duration;

use chargemesh::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID as OP};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::metering::v1 as mt;

use super::common::{TD, TestMesh};

#[tokio::test]
async fn base_2_simulated_ykc_piles_log_in_charge_by_card_and_are_settled() {
    let mesh = TestMesh::start_with_options(|opts| {
        let ykc = &mut opts.config.gateway.ykc;
        ykc.listen = "127.0.0.1:0".into();
        ykc.operators = vec![chargemesh_ykc::config::OperatorNetworks {
            operator_id: OP.into(),
            networks: vec!["127.0.0.0/8".into()],
        }];
    })
    .await;
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(chargemesh::demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    // The simulated piles' cards are not on a list: the station accepts any.
    let mut station = chargemesh::demo::station(OP, "SIM-Y", "330602");
    station.accept_any_id_token = true;
    op.create_station(asset::CreateStationRequest {
        station: Some(station),
    })
    .await
    .expect("station");
    let m = mesh.mesh.as_ref().expect("mesh");
    let tasks = chargemesh::sim::start(chargemesh::sim::SimOptions {
        gateway: m.gateway_addr,
        pki: mesh.pki().clone(),
        trust_domain: TD.into(),
        mode: chargemesh::sim::Mode::Pile,
        stations: vec!["SIM-Y".into()],
        piles_per_station: 2,
        create: true,
        tick: Duration::from_millis(20),
        seed: 5,
        ocpp: None,
        ykc: Some(m.ykc_addr.expect("the YKC edge")),
        only_piles: Vec::new(),
    })
    .await
    .expect("the simulator starts");
    assert_eq!(tasks.len(), 2, "one connection per pile");
    let pile = op
        .get_pile(asset::GetPileRequest {
            operator_id: OP.into(),
            pile_id: "SIM-Y-P00".into(),
        })
        .await
        .expect("pile")
        .into_inner()
        .pile
        .expect("pile");
    assert_eq!(pile.protocol, asset::PileProtocol::Ykc as i32);
    assert_eq!(pile.charge_point_id.len(), 14, "a pile code");
    // Card sessions become settled orders (REQ SETTLE-1), started and ended as the pile said.
    let mut metering =
        chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient::new(
            mesh.channel("operator"),
        );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let orders = loop {
        let orders = metering
            .list_charge_orders(mt::ListChargeOrdersRequest {
                operator_id: OP.into(),
                ..Default::default()
            })
            .await
            .expect("orders")
            .into_inner()
            .orders;
        let settled = orders
            .iter()
            .filter(|o| o.end_time.is_some() && o.energy_kwh != "0.000")
            .count();
        if settled >= 2 || tokio::time::Instant::now() > deadline {
            break orders;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let settled: Vec<_> = orders
        .iter()
        .filter(|o| o.end_time.is_some() && o.energy_kwh != "0.000")
        .collect();
    assert!(settled.len() >= 2, "{orders:?}");
    // Priced by the pile from the model the platform gave it, as metering prices them
    // (REQ SETTLE-1): no amount disagrees.
    let broken = [
        mt::FlagKind::NeverEnded as i32,
        mt::FlagKind::NeverStarted as i32,
        mt::FlagKind::AmountMismatch as i32,
    ];
    assert!(
        settled
            .iter()
            .all(|o| !o.flags.iter().any(|f| broken.contains(&f.kind))),
        "every session started, ended and was priced as the pile said: {settled:?}"
    );
    for task in tasks {
        task.abort();
    }
    mesh.stop().await;
}
