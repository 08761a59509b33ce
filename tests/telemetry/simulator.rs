//! The simulator reports a live fleet in every mode.

use super::*;

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
            ocpp: None,
            ykc: None,
            only_piles: Vec::new(),
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
