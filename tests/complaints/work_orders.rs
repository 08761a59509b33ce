//! A complaint about a broken connector opens exactly one work order in dispatch, also when
//! dispatch was unreachable (REQ FAULT-4).

use super::*;

use chargemesh::demo;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::dispatch::v1 as dp;

/// The demo operator with station S1 and its pile P1.
async fn station_with_pile(mesh: &TestMesh) {
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(chargemesh::pki::DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    op.create_station(asset::CreateStationRequest {
        station: Some(demo::station(OP, "S1", "330602")),
    })
    .await
    .expect("station");
    op.create_pile(asset::CreatePileRequest {
        pile: Some(demo::pile(OP, "S1", "P1", asset::PileType::Dc, 60.0)),
    })
    .await
    .expect("pile");
}

/// A phoned-in complaint about pile P1 of S1, kept whatever dispatch does.
async fn broken_connector(desk: &mut Desk, description: &str) -> pb::Complaint {
    let token = desk.token("complaint_handler", OP);
    desk.client
        .submit_complaint(with_token(
            pb::SubmitComplaintRequest {
                complaint: Some(pb::Complaint {
                    operator_id: OP.into(),
                    kind: pb::ComplaintKind::Complaint as i32,
                    channel: pb::ComplaintChannel::Phone as i32,
                    category: pb::ComplaintCategory::ChargingFailure as i32,
                    customer_contact: "139 1111 2222".into(),
                    station_id: "S1".into(),
                    pile_id: "P1".into(),
                    description: description.into(),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("kept, whether dispatch is reachable or not")
        .into_inner()
        .complaint
        .expect("complaint")
}

/// The operator's work orders, as its monitor lists them.
async fn work_orders(mesh: &TestMesh, desk: &Desk) -> Vec<dp::WorkOrder> {
    dp::dispatch_service_client::DispatchServiceClient::new(mesh.anonymous_channel())
        .list_work_orders(with_token(
            dp::ListWorkOrdersRequest {
                operator_id: OP.into(),
                ..Default::default()
            },
            &desk.token("monitor", OP),
        ))
        .await
        .expect("orders")
        .into_inner()
        .work_orders
}

#[tokio::test]
async fn fault_4_a_complaint_about_a_broken_connector_opens_exactly_one_work_order() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    station_with_pile(&mesh).await;
    let mut desk = Desk::new(&mesh);
    let complaint =
        broken_connector(&mut desk, "connector 1 is broken, the latch is missing").await;
    assert_eq!(complaint.links.len(), 1, "{:?}", complaint.links);
    assert_eq!(complaint.links[0].kind, "work_order");
    let orders = work_orders(&mesh, &desk).await;
    assert_eq!(orders.len(), 1, "exactly one work order");
    assert_eq!(orders[0].order_id, complaint.links[0].id);
    assert_eq!(orders[0].channel, dp::Channel::Phone as i32);
    assert!(orders[0].description.contains(&complaint.complaint_id));
    // The complaint shows the order and its state.
    let shown = desk.get(&complaint.complaint_id).await;
    assert_eq!(shown.links[0].state, "received");
    // A complaint that names no pile opens nothing.
    let vague = desk.submit("charging was slow somewhere").await;
    assert!(vague.links.is_empty());
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_4_the_work_order_of_a_complaint_is_opened_once_dispatch_is_reachable_again() {
    let clock = ManualClock::new(chrono::Utc::now());
    let switch = Arc::new(common::Switch::start().await);
    let (mesh_clock, url) = (clock.clone(), switch.url());
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.poll_every(20);
        // Complaints reach dispatch through a switch the test holds.
        opts.rewire = Some(Arc::new(move |c| c.complaints.dispatch_url = url.clone()));
    })
    .await;
    switch.point_to(mesh.mesh.as_ref().expect("running").addrs["dispatch"]);
    station_with_pile(&mesh).await;
    let mut desk = Desk::new(&mesh);
    // Dispatch is unreachable when the complaint comes in: it is kept all the same.
    let complaint = broken_connector(&mut desk, "the screen stays black").await;
    assert!(complaint.links.is_empty(), "{:?}", complaint.links);
    // Back: the work order is opened and linked, once.
    switch.on();
    let linked = eventually(
        async || desk.get(&complaint.complaint_id).await,
        |c| !c.links.is_empty(),
    )
    .await;
    assert_eq!(linked.links.len(), 1, "{:?}", linked.links);
    assert_eq!(linked.links[0].kind, "work_order");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let orders = work_orders(&mesh, &desk).await;
    assert_eq!(orders.len(), 1, "exactly one work order");
    assert_eq!(orders[0].order_id, linked.links[0].id);
    mesh.stop().await;
}
