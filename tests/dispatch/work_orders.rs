//! Repair work orders: creation, crews, arrival and repair limits, suspension, confirmation,
//! isolation and listing (REQ FAULT-1..FAULT-8, STAFF-3, MON-2, MON-4, MON-5).

use super::*;

/// P1 once the asset registry shows it suspended, within ten seconds.
async fn suspended_pile(mesh: &TestMesh) -> asset::Pile {
    let mut op = mesh.client("operator");
    eventually(
        async || {
            op.get_pile(asset::GetPileRequest {
                operator_id: OP.into(),
                pile_id: "P1".into(),
            })
            .await
            .expect("pile")
            .into_inner()
            .pile
            .expect("pile")
        },
        |pile| pile.state == asset::PileState::Suspended as i32,
    )
    .await
}

async fn check_in(staff: &Staff, order: &str) -> pb::WorkOrder {
    staff
        .client()
        .check_in_work_order(with_token(
            pb::CheckInWorkOrderRequest {
                operator_id: OP.into(),
                order_id: order.into(),
                longitude: 120.582,
                latitude: 30.0,
            },
            &staff.token("repairer"),
        ))
        .await
        .expect("checked in")
        .into_inner()
        .work_order
        .expect("order")
}

/// Every page of the operator's work orders, `page_size` at a time, with the pages' sizes.
async fn every_work_order(staff: &Staff, page_size: i32) -> (Vec<pb::WorkOrder>, Vec<usize>) {
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = staff
            .client()
            .list_work_orders(with_token(
                pb::ListWorkOrdersRequest {
                    operator_id: OP.into(),
                    page_size,
                    page_token: token,
                    ..Default::default()
                },
                &staff.token("monitor"),
            ))
            .await
            .expect("page")
            .into_inner();
        sizes.push(page.work_orders.len());
        all.extend(page.work_orders);
        if page.next_page_token.is_empty() {
            return (all, sizes);
        }
        token = page.next_page_token;
    }
}

#[tokio::test]
async fn fault_4_a_pile_fault_opens_one_work_order() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let pile = TelemetryStream::open(mesh.channel("operator")).await;
    let status = |sequence: u64, state: tm::ConnectorState| tm::TelemetryMessage {
        sequence,
        pile_id: "P1".into(),
        connector_id: "P1-1".into(),
        observe_time: Some(chargemesh_kit::time::to_timestamp(
            clock.now() + chrono::Duration::seconds(sequence as i64),
        )),
        body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
            state: state as i32,
            fault_code: if state == tm::ConnectorState::Fault {
                "E42".into()
            } else {
                String::new()
            },
            fault_text: "insulation".into(),
        })),
        ..Default::default()
    };
    // A fault, the same fault again, a brief recovery and the fault once more: one open order.
    pile.send(vec![
        status(1, tm::ConnectorState::Fault),
        status(2, tm::ConnectorState::Fault),
        status(3, tm::ConnectorState::Idle),
        status(4, tm::ConnectorState::Fault),
    ])
    .await;
    let orders = eventually(
        async || staff.open_orders().await,
        |orders| !orders.is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(orders.len(), 1, "one open order per connector fault");
    let o = &orders[0];
    assert_eq!(o.channel, pb::Channel::Automatic as i32);
    assert_eq!(
        (
            o.station_id.as_str(),
            o.connector_id.as_str(),
            o.fault_code.as_str()
        ),
        ("S-URB", "P1-1", "E42")
    );
    assert_eq!(o.zone, pb::Zone::MainUrban as i32);
    mesh.stop().await;
}

#[tokio::test]
async fn fault_1_and_staff_3_a_crew_of_one_or_with_an_expired_certificate_is_refused() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let order = staff.phone_order("S-URB", "P1").await;
    let alone = staff
        .dispatch(&order.order_id, &["alice"])
        .await
        .expect_err("alone");
    assert_eq!(alone.code(), Code::InvalidArgument);
    assert!(alone.message().contains("FAULT-1"), "{}", alone.message());
    let expired = staff
        .dispatch(&order.order_id, &["alice", "carol"])
        .await
        .expect_err("expired");
    assert!(
        expired.message().contains("STAFF-3") && expired.message().contains("carol"),
        "{}",
        expired.message()
    );
    let unknown = staff
        .dispatch(&order.order_id, &["alice", "mallory"])
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let dispatched = staff
        .dispatch(&order.order_id, &["alice", "bob"])
        .await
        .expect("a valid crew");
    assert_eq!(dispatched.state, pb::WorkOrderState::Dispatched as i32);
    // A repairer may not dispatch.
    let refused = staff
        .client()
        .dispatch_work_order(with_token(
            pb::DispatchWorkOrderRequest {
                operator_id: OP.into(),
                order_id: order.order_id.clone(),
                crew: vec!["alice".into(), "bob".into()],
                risk: pb::Risk::Normal as i32,
            },
            &staff.token("repairer"),
        ))
        .await
        .expect_err("policy");
    assert_eq!(refused.code(), Code::PermissionDenied);
    mesh.stop().await;
}

#[tokio::test]
async fn fault_5_arrival_after_61_minutes_breaches_in_the_main_urban_zone_only() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let urban = staff.phone_order("S-URB", "P1").await;
    let outlying = staff.phone_order("S-OUT", "P2").await;
    for o in [&urban, &outlying] {
        staff
            .dispatch(&o.order_id, &["alice", "bob"])
            .await
            .expect("dispatched");
    }
    clock.advance(chrono::Duration::minutes(61));
    let urban = check_in(&staff, &urban.order_id).await;
    let outlying = check_in(&staff, &outlying.order_id).await;
    let arrival: Vec<_> = urban
        .breaches
        .iter()
        .filter(|b| b.what == "arrival")
        .collect();
    assert_eq!(arrival.len(), 1, "{:?}", urban.breaches);
    assert_eq!(arrival[0].rule, "FAULT-5");
    assert_eq!(arrival[0].lateness.as_ref().map(|d| d.seconds), Some(60));
    assert!(
        outlying.breaches.is_empty(),
        "2 hours elsewhere: {:?}",
        outlying.breaches
    );
    // A check-in far from the station is refused (REQ FAULT-7).
    let other = staff.phone_order("S-URB", "P1").await;
    staff
        .dispatch(&other.order_id, &["alice", "bob"])
        .await
        .expect("dispatched");
    let far = staff
        .client()
        .check_in_work_order(with_token(
            pb::CheckInWorkOrderRequest {
                operator_id: OP.into(),
                order_id: other.order_id.clone(),
                longitude: 120.70,
                latitude: 30.0,
            },
            &staff.token("repairer"),
        ))
        .await
        .expect_err("far away");
    assert!(far.message().contains("FAULT-7"), "{}", far.message());
    mesh.stop().await;
}

#[tokio::test]
async fn fault_6_an_order_unresolved_at_4_hours_closes_with_a_suspension_request_even_across_a_restart()
 {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let order = staff.dispatched_order("S-URB", "P1").await;
    // The mesh restarts in the middle; the deadline is a row, not a timer.
    mesh.restart().await;
    let staff = Staff::new(&mesh);
    clock.advance(chrono::Duration::hours(4));
    let closed = staff
        .until(&order.order_id, |o| {
            o.state == pb::WorkOrderState::Closed as i32
        })
        .await;
    assert_eq!(closed.outcome, pb::Outcome::Unresolved as i32);
    assert!(closed.suspension_requested);
    let close = closed
        .close_time
        .as_ref()
        .map(|t| t.seconds)
        .unwrap_or_default();
    let follow_up = closed
        .follow_up_due_time
        .as_ref()
        .map(|t| t.seconds)
        .unwrap_or_default();
    assert_eq!(
        follow_up - close,
        5 * 24 * 3600,
        "the repair is due within 5 days"
    );
    assert!(closed.breaches.iter().any(|b| b.what == "resolution"));
    // The suspension is carried out in the asset registry, with the order as evidence.
    let pile = suspended_pile(&mesh).await;
    let suspension = pile.suspension.expect("suspension");
    assert_eq!(
        suspension.reason,
        asset::SuspensionReason::UnrepairedFault as i32
    );
    assert!(
        suspension
            .evidence_refs
            .contains(&format!("work-order:{}", order.order_id))
    );
    // REQ FAULT-6: the repair carries on as one follow-up order, due 5 days after the close,
    // with no arrival clock.
    assert!(!closed.follow_up_order_id.is_empty());
    let follow_up = eventually(
        async || {
            staff
                .client()
                .get_work_order(with_token(
                    pb::GetWorkOrderRequest {
                        operator_id: OP.into(),
                        order_id: closed.follow_up_order_id.clone(),
                    },
                    &staff.token("monitor"),
                ))
                .await
                .ok()
                .and_then(|r| r.into_inner().work_order)
        },
        Option::is_some,
    )
    .await
    .expect("the follow-up order");
    assert_eq!(follow_up.follow_up_of, order.order_id);
    assert_eq!(follow_up.state, pb::WorkOrderState::Received as i32);
    assert_eq!(follow_up.pile_id, order.pile_id);
    assert!(follow_up.arrival_due_time.is_none());
    assert_eq!(
        follow_up.resolution_due_time.map(|t| t.seconds),
        closed.follow_up_due_time.map(|t| t.seconds)
    );
    // Still unfixed after the 5 days: a FAULT-6 breach, and the follow-up stays open.
    clock.advance(chrono::Duration::days(5) + chrono::Duration::minutes(1));
    let late = staff
        .until(&follow_up.order_id, |o| {
            o.breaches.iter().any(|b| b.rule == "FAULT-6")
        })
        .await;
    assert_eq!(late.state, pb::WorkOrderState::Received as i32);
    assert!(late.breaches.iter().all(|b| b.rule == "FAULT-6"));
    let open = staff.open_orders().await;
    assert_eq!(
        open.iter()
            .filter(|o| o.follow_up_of == order.order_id)
            .count(),
        1,
        "one follow-up, made once"
    );
    mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_6_the_suspension_at_4_hours_is_carried_out_once_the_registry_is_back() {
    let clock = ManualClock::new(chrono::Utc::now());
    let switch = Arc::new(common::Switch::start().await);
    let (mesh_clock, url) = (clock.clone(), switch.url());
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.poll_every(20);
        opts.config.telemetry.settings.offline_after_seconds = 30 * 24 * 3600;
        // Dispatch reaches the asset registry through a switch the test holds.
        opts.rewire = Some(Arc::new(move |c| c.dispatch.asset_url = url.clone()));
    })
    .await;
    switch.point_to(mesh.mesh.as_ref().expect("running").addrs["asset"]);
    switch.on();
    let staff = setup(&mesh).await;
    let order = staff.dispatched_order("S-URB", "P1").await;
    // The registry is unreachable from dispatch when the 4 hours are up.
    switch.off();
    clock.advance(chrono::Duration::hours(4));
    let closed = staff
        .until(&order.order_id, |o| {
            o.state == pb::WorkOrderState::Closed as i32
        })
        .await;
    assert!(closed.suspension_requested);
    let mut op = mesh.client("operator");
    let pile =
        |op: &mut asset::asset_service_client::AssetServiceClient<tonic::transport::Channel>| {
            let mut op = op.clone();
            async move {
                op.get_pile(asset::GetPileRequest {
                    operator_id: OP.into(),
                    pile_id: "P1".into(),
                })
                .await
                .expect("pile")
                .into_inner()
                .pile
                .expect("pile")
            }
        };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_ne!(
        pile(&mut op).await.state,
        asset::PileState::Suspended as i32,
        "not suspended while the registry is unreachable"
    );
    // Back: the step is retried and carried out, once.
    switch.on();
    let suspended = suspended_pile(&mesh).await;
    assert!(
        suspended
            .suspension
            .expect("suspension")
            .evidence_refs
            .contains(&format!("work-order:{}", order.order_id))
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let history = op
        .list_change_records(asset::ListChangeRecordsRequest {
            operator_id: OP.into(),
            entity_type: "pile".into(),
            entity_id: "P1".into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .change_records;
    assert_eq!(
        history.iter().filter(|r| r.action == "suspend").count(),
        1,
        "suspended once: {history:?}"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn fault_8_a_fixed_order_closes_only_when_the_monitor_confirms() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let order = staff.dispatched_order("S-URB", "P1").await;
    clock.advance(chrono::Duration::minutes(30));
    check_in(&staff, &order.order_id).await;
    let resolved = staff
        .client()
        .resolve_work_order(with_token(
            pb::ResolveWorkOrderRequest {
                operator_id: OP.into(),
                order_id: order.order_id.clone(),
                test_record: "test charge 10 min OK".into(),
            },
            &staff.token("repairer"),
        ))
        .await
        .expect("resolved")
        .into_inner()
        .work_order
        .expect("order");
    assert_eq!(resolved.state, pb::WorkOrderState::Resolved as i32);
    let confirmed = staff
        .client()
        .confirm_work_order(with_token(
            pb::ConfirmWorkOrderRequest {
                operator_id: OP.into(),
                order_id: order.order_id.clone(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("confirmed")
        .into_inner()
        .work_order
        .expect("order");
    assert_eq!(
        (confirmed.state, confirmed.outcome),
        (pb::WorkOrderState::Closed as i32, pb::Outcome::Fixed as i32)
    );
    assert!(confirmed.confirmed_by.contains("monitor"));
    // Past every limit now, the closed order shows no breach and the scheduler leaves it be.
    clock.advance(chrono::Duration::hours(5));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = staff.get(&order.order_id).await;
    assert!(after.breaches.is_empty(), "{:?}", after.breaches);
    assert_eq!(after.outcome, pb::Outcome::Fixed as i32);
    mesh.stop().await;
}

#[tokio::test]
async fn operator_a_staff_cannot_see_operator_b_work_orders() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let order = staff.phone_order("S-URB", "P1").await;
    let outsider = pki::mint_token(
        mesh.pki(),
        "eve",
        Some("MA2BCDEF3"),
        &["monitor".into()],
        3600,
    )
    .expect("token");
    let hidden = staff
        .client()
        .get_work_order(with_token(
            pb::GetWorkOrderRequest {
                operator_id: OP.into(),
                order_id: order.order_id.clone(),
            },
            &outsider,
        ))
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    let own = staff
        .client()
        .list_work_orders(with_token(pb::ListWorkOrdersRequest::default(), &outsider))
        .await
        .expect("own list")
        .into_inner();
    assert!(own.work_orders.is_empty());
    mesh.stop().await;
}

#[tokio::test]
async fn mon_4_the_monitor_may_request_suspension_two_hours_after_dispatch() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let order = staff.dispatched_order("S-URB", "P1").await;
    let request = |staff: &Staff| {
        let mut client = staff.client();
        let token = staff.token("monitor");
        let order_id = order.order_id.clone();
        async move {
            client
                .request_suspension(with_token(
                    pb::RequestSuspensionRequest {
                        operator_id: OP.into(),
                        order_id,
                        evidence_refs: vec!["photo-7".into()],
                    },
                    &token,
                ))
                .await
        }
    };
    clock.advance(chrono::Duration::minutes(119));
    let early = request(&staff).await.expect_err("too early");
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("MON-4"), "{}", early.message());
    clock.advance(chrono::Duration::minutes(1));
    let done = request(&staff)
        .await
        .expect("requested")
        .into_inner()
        .work_order
        .expect("order");
    assert!(done.suspension_requested);
    let pile = suspended_pile(&mesh).await;
    assert_eq!(pile.state, asset::PileState::Suspended as i32);
    let evidence = pile.suspension.expect("suspension").evidence_refs;
    assert!(
        evidence.contains(&"photo-7".to_owned())
            && evidence.iter().any(|e| e.starts_with("work-order:"))
    );
    mesh.stop().await;
}

#[tokio::test]
async fn mon_5_a_pile_resumes_once_its_repair_is_closed_with_the_downtime_recorded() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let order = staff.dispatched_order("S-URB", "P1").await;
    clock.advance(chrono::Duration::hours(2));
    staff
        .client()
        .request_suspension(with_token(
            pb::RequestSuspensionRequest {
                operator_id: OP.into(),
                order_id: order.order_id.clone(),
                evidence_refs: vec![],
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("suspension requested");
    assert_eq!(
        suspended_pile(&mesh).await.state,
        asset::PileState::Suspended as i32
    );
    let resume = |staff: &Staff| {
        let mut client = staff.client();
        let token = staff.token("monitor");
        async move {
            client
                .request_resumption(with_token(
                    pb::RequestResumptionRequest {
                        operator_id: OP.into(),
                        pile_id: "P1".into(),
                        note: "fault cleared".into(),
                    },
                    &token,
                ))
                .await
        }
    };
    let blocked = resume(&staff)
        .await
        .expect_err("the repair order is still open");
    assert!(blocked.message().contains("EQ-3"), "{}", blocked.message());
    check_in(&staff, &order.order_id).await;
    staff
        .client()
        .resolve_work_order(with_token(
            pb::ResolveWorkOrderRequest {
                operator_id: OP.into(),
                order_id: order.order_id.clone(),
                test_record: "test charge OK".into(),
            },
            &staff.token("repairer"),
        ))
        .await
        .expect("resolved");
    staff
        .client()
        .confirm_work_order(with_token(
            pb::ConfirmWorkOrderRequest {
                operator_id: OP.into(),
                order_id: order.order_id.clone(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("confirmed");
    clock.advance(chrono::Duration::minutes(90));
    let resumed = resume(&staff).await.expect("resumed").into_inner();
    assert_eq!(
        resumed.downtime.map(|d| d.seconds),
        Some(90 * 60),
        "downtime from suspension to resumption"
    );
    let again = resume(&staff).await.expect_err("not suspended any more");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let mut op = mesh.client("operator");
    let pile = op
        .get_pile(asset::GetPileRequest {
            operator_id: OP.into(),
            pile_id: "P1".into(),
        })
        .await
        .expect("pile")
        .into_inner()
        .pile
        .expect("pile");
    assert_eq!(pile.state, asset::PileState::InService as i32);
    mesh.stop().await;
}

#[tokio::test]
async fn mon_2_the_monitor_sees_open_orders_with_time_left_and_breaches() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let urban = staff.phone_order("S-URB", "P1").await;
    staff.phone_order("S-OUT", "P2").await;
    clock.advance(chrono::Duration::minutes(70));
    let view = staff
        .client()
        .get_monitor_view(with_token(
            pb::GetMonitorViewRequest {
                operator_id: OP.into(),
                ..Default::default()
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("view")
        .into_inner();
    assert_eq!(view.work_orders.len(), 2);
    let by_id = |id: &str| {
        view.work_orders
            .iter()
            .find(|o| o.work_order.as_ref().is_some_and(|w| w.order_id == id))
            .expect("order")
    };
    let u = by_id(&urban.order_id);
    assert_eq!(u.next_limit, "arrival");
    assert_eq!(
        u.time_left.as_ref().map(|d| d.seconds),
        Some(-10 * 60),
        "10 minutes past the urban hour"
    );
    assert_eq!(view.breached_orders, 1, "only the urban order is late");
    let one_station = staff
        .client()
        .get_monitor_view(with_token(
            pb::GetMonitorViewRequest {
                operator_id: OP.into(),
                station_id: "S-OUT".into(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("view")
        .into_inner();
    assert_eq!(one_station.work_orders.len(), 1);
    assert_eq!(one_station.breached_orders, 0);
    mesh.stop().await;
}

#[tokio::test]
async fn fault_5_a_breach_is_published_as_an_event_with_its_lateness() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let bus = mesh.mesh.as_ref().expect("mesh").bus.clone();
    let mut events = bus
        .subscribe(chargemesh_dispatch::engine::DISPATCH_TOPIC, "test", "t1")
        .await
        .expect("subscribed");
    let staff = setup(&mesh).await;
    let order = staff.dispatched_order("S-URB", "P1").await;
    clock.advance(chrono::Duration::minutes(61));
    let breach = loop {
        let delivery = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("event");
        events.ack(&delivery.id).await.expect("ack");
        if delivery.envelope.r#type == chargemesh_dispatch::engine::BREACH_EVENT {
            break delivery;
        }
    };
    let payload: serde_json::Value =
        serde_json::from_slice(&breach.envelope.payload).expect("json");
    assert_eq!(payload["order_id"], order.order_id.as_str());
    assert_eq!(payload["what"], "arrival");
    assert!(
        payload["lateness_seconds"]
            .as_i64()
            .is_some_and(|s| s >= 60),
        "{payload}"
    );
    assert_eq!(breach.envelope.operator_id, OP);
    mesh.stop().await;
}

#[tokio::test]
async fn work_orders_are_listed_newest_first_a_page_at_a_time_with_none_out_of_reach() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    // More orders than the old listing's 1,000-row cap, ten to each second of the clock, so
    // pages also break between orders received at the same moment.
    let mut created = std::collections::HashSet::new();
    let monitor = staff.token("monitor");
    for batch in 0..105 {
        let mut orders = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (channel, token) = (staff.channel.clone(), monitor.clone());
            orders.spawn(
                async move { common::phone_work_order(channel, &token, "S-URB", "P1").await },
            );
        }
        created.extend(orders.join_all().await.into_iter().map(|o| o.order_id));
        if batch < 104 {
            clock.advance(chrono::Duration::seconds(1));
        }
    }
    assert_eq!(created.len(), 1050);
    let latest = chargemesh_kit::time::to_timestamp(clock.now());

    let (listed, sizes) = every_work_order(&staff, 200).await;
    assert_eq!(
        sizes,
        [200, 200, 200, 200, 200, 50],
        "full pages, then the rest"
    );
    let ids: std::collections::HashSet<_> = listed.iter().map(|o| o.order_id.clone()).collect();
    assert_eq!(ids.len(), listed.len(), "no order on two pages");
    assert_eq!(ids, created, "every order reachable, the newest too");
    let times: Vec<_> = listed
        .iter()
        .map(|o| {
            let t = o.receive_time.expect("received");
            (t.seconds, t.nanos)
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert_eq!(
        listed[0].receive_time.map(|t| t.seconds),
        Some(latest.seconds),
        "the first page starts with the newest"
    );

    // A token is the service's own: anything else is refused, naming the field.
    let forged = staff
        .client()
        .list_work_orders(with_token(
            pb::ListWorkOrdersRequest {
                operator_id: OP.into(),
                page_token: "not-a-token".into(),
                ..Default::default()
            },
            &staff.token("monitor"),
        ))
        .await
        .expect_err("forged token");
    assert_eq!(forged.code(), Code::InvalidArgument);
    assert!(
        forged.message().contains("page_token"),
        "{}",
        forged.message()
    );
    mesh.stop().await;
}
