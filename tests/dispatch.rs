//! Repair dispatch end to end, through the gateway with staff JWTs, on the injectable clock
//! (REQ FAULT-1..FAULT-8, STAFF-3, MON-2).

mod common;

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use chargemesh::demo;
use chargemesh::pki::{self, DEMO_OPERATOR_ID};
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::dispatch::v1 as pb;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use common::{TelemetryStream, TestMesh, eventually, with_token};

const OP: &str = DEMO_OPERATOR_ID;

async fn mesh_at(clock: &ManualClock) -> TestMesh {
    let mesh_clock = clock.clone();
    TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.poll_every(20);
        opts.config.telemetry.settings.offline_after_seconds = 30 * 24 * 3600;
    })
    .await
}

/// The demo operator with an urban station (S-URB, pile P1) and an outlying one (S-OUT, pile P2),
/// and four staff members.
async fn setup(mesh: &TestMesh) -> Staff {
    common::two_station_fleet(mesh).await;
    let staff = Staff::new(mesh);
    let manager = staff.token("om_manager");
    let mut client = staff.client();
    for (id, employer, cert) in [
        ("alice", pb::Employer::Own, "2030-12-31"),
        ("bob", pb::Employer::Own, "2030-12-31"),
        ("carol", pb::Employer::Own, "2020-01-31"),
    ] {
        client
            .create_staff_member(with_token(
                pb::CreateStaffMemberRequest {
                    staff_member: Some(pb::StaffMember {
                        operator_id: OP.into(),
                        staff_id: id.into(),
                        name: id.into(),
                        employer: employer as i32,
                        electrician_certificate_until: cert.into(),
                        qualified_until: "2030-12-31".into(),
                        ..Default::default()
                    }),
                },
                &manager,
            ))
            .await
            .expect("staff member");
    }
    staff
}

/// Staff apps: no certificate, a bearer token per role.
struct Staff {
    channel: tonic::transport::Channel,
    pki: pki::PkiDir,
}

impl Staff {
    fn new(mesh: &TestMesh) -> Self {
        Self {
            channel: mesh.anonymous_channel(),
            pki: mesh.pki().clone(),
        }
    }

    fn token(&self, role: &str) -> String {
        pki::mint_token(&self.pki, role, Some(OP), &[role.to_owned()], 3600).expect("token")
    }

    fn client(&self) -> DispatchServiceClient<tonic::transport::Channel> {
        DispatchServiceClient::new(self.channel.clone())
    }

    async fn phone_order(&self, station: &str, pile: &str) -> pb::WorkOrder {
        common::phone_work_order(self.channel.clone(), &self.token("monitor"), station, pile).await
    }

    async fn dispatch(&self, order: &str, crew: &[&str]) -> Result<pb::WorkOrder, tonic::Status> {
        self.client()
            .dispatch_work_order(with_token(
                pb::DispatchWorkOrderRequest {
                    operator_id: OP.into(),
                    order_id: order.into(),
                    crew: crew.iter().map(|c| (*c).to_owned()).collect(),
                    risk: pb::Risk::Normal as i32,
                },
                &self.token("monitor"),
            ))
            .await
            .map(|r| r.into_inner().work_order.expect("order"))
    }

    async fn get(&self, order: &str) -> pb::WorkOrder {
        self.client()
            .get_work_order(with_token(
                pb::GetWorkOrderRequest {
                    operator_id: OP.into(),
                    order_id: order.into(),
                },
                &self.token("monitor"),
            ))
            .await
            .expect("order")
            .into_inner()
            .work_order
            .expect("order")
    }

    /// A maintenance plan drafted by a repairer, awaiting approval (REQ MAINT-1).
    async fn draft_plan(&self, station: &str, items: &[&str]) -> pb::MaintenancePlan {
        self.client()
            .create_maintenance_plan(with_token(
                pb::CreateMaintenancePlanRequest {
                    plan: Some(pb::MaintenancePlan {
                        operator_id: OP.into(),
                        station_id: station.into(),
                        title: "2026 annual maintenance".into(),
                        period: "2026".into(),
                        items: items.iter().map(|i| (*i).to_owned()).collect(),
                        ..Default::default()
                    }),
                },
                &self.token("repairer"),
            ))
            .await
            .expect("drafted")
            .into_inner()
            .plan
            .expect("plan")
    }

    async fn approve_plan(
        &self,
        plan_id: &str,
        role: &str,
    ) -> Result<pb::MaintenancePlan, tonic::Status> {
        Ok(self
            .client()
            .approve_maintenance_plan(with_token(
                pb::ApproveMaintenancePlanRequest {
                    operator_id: OP.into(),
                    plan_id: plan_id.into(),
                },
                &self.token(role),
            ))
            .await?
            .into_inner()
            .plan
            .unwrap_or_default())
    }

    /// A phone order dispatched to alice and bob, a valid crew.
    async fn dispatched_order(&self, station: &str, pile: &str) -> pb::WorkOrder {
        let order = self.phone_order(station, pile).await;
        self.dispatch(&order.order_id, &["alice", "bob"])
            .await
            .expect("dispatched")
    }

    /// The operator's open work orders, as the monitor sees them.
    async fn open_orders(&self) -> Vec<pb::WorkOrder> {
        self.client()
            .list_work_orders(with_token(
                pb::ListWorkOrdersRequest {
                    operator_id: OP.into(),
                    open_only: true,
                    ..Default::default()
                },
                &self.token("monitor"),
            ))
            .await
            .expect("open orders")
            .into_inner()
            .work_orders
    }

    /// Polls until `check` holds, within ten seconds.
    async fn until(&self, order: &str, check: impl Fn(&pb::WorkOrder) -> bool) -> pb::WorkOrder {
        eventually(async || self.get(order).await, check).await
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

async fn available(staff: &Staff, pile: &str) -> (bool, String) {
    let r = staff
        .client()
        .check_pile_availability(with_token(
            pb::CheckPileAvailabilityRequest {
                operator_id: OP.into(),
                pile_id: pile.into(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("availability")
        .into_inner();
    (r.available, r.reason)
}

#[tokio::test]
async fn eq_3_a_critical_defect_makes_its_pile_unavailable_until_accepted() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    assert!(available(&staff, "P1").await.0);
    let register = |class: pb::DefectClass, plan: &str| pb::RegisterDefectRequest {
        operator_id: OP.into(),
        station_id: "S-URB".into(),
        pile_id: "P1".into(),
        class: class as i32,
        description: "cracked connector with exposed cable".into(),
        elimination_plan: plan.into(),
        maintenance_plan: String::new(),
    };
    // REQ DEF-2: no elimination plan, no registration.
    let refused = staff
        .client()
        .register_defect(with_token(
            register(pb::DefectClass::Critical, ""),
            &staff.token("repairer"),
        ))
        .await
        .expect_err("no plan");
    assert!(refused.message().contains("DEF-2"), "{}", refused.message());
    let defect = staff
        .client()
        .register_defect(with_token(
            register(pb::DefectClass::Critical, "replace the gun today"),
            &staff.token("repairer"),
        ))
        .await
        .expect("registered")
        .into_inner()
        .defect
        .expect("defect");
    assert!(defect.enhanced_watch);
    let (ok, why) = available(&staff, "P1").await;
    assert!(
        !ok && why.contains(&defect.defect_id) && why.contains("EQ-3"),
        "{why}"
    );
    let eliminate = |record: &str| pb::EliminateDefectRequest {
        operator_id: OP.into(),
        defect_id: defect.defect_id.clone(),
        record: record.into(),
    };
    let accept = |passed: bool| pb::AcceptDefectRequest {
        operator_id: OP.into(),
        defect_id: defect.defect_id.clone(),
        passed,
    };
    staff
        .client()
        .eliminate_defect(with_token(
            eliminate("gun replaced"),
            &staff.token("repairer"),
        ))
        .await
        .expect("eliminated");
    assert!(
        !available(&staff, "P1").await.0,
        "eliminated is not yet accepted"
    );
    // A repairer may not accept; a failed acceptance reopens (REQ DEF-4).
    let denied = staff
        .client()
        .accept_defect(with_token(accept(true), &staff.token("repairer")))
        .await
        .expect_err("policy");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let reopened = staff
        .client()
        .accept_defect(with_token(accept(false), &staff.token("om_manager")))
        .await
        .expect("failed acceptance")
        .into_inner()
        .defect
        .expect("defect");
    assert_eq!(
        (reopened.state, reopened.reopened),
        (pb::DefectState::Open as i32, 1)
    );
    staff
        .client()
        .eliminate_defect(with_token(
            eliminate("gun replaced, insulation tested"),
            &staff.token("repairer"),
        ))
        .await
        .expect("eliminated again");
    staff
        .client()
        .accept_defect(with_token(accept(true), &staff.token("om_manager")))
        .await
        .expect("accepted");
    assert!(available(&staff, "P1").await.0, "available once accepted");
    mesh.stop().await;
}

#[tokio::test]
async fn maint_1_a_plan_edited_after_approval_awaits_approval_and_a_repairer_cannot_approve() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let plan = staff
        .draft_plan("S-URB", &["metering", "grounding_resistance_test"])
        .await;
    assert_eq!(plan.state, pb::PlanState::AwaitingApproval as i32);
    let denied = staff
        .approve_plan(&plan.plan_id, "repairer")
        .await
        .expect_err("a repairer cannot approve");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let approved = staff
        .approve_plan(&plan.plan_id, "om_manager")
        .await
        .expect("approved");
    assert_eq!(approved.state, pb::PlanState::Approved as i32);
    let edited = staff
        .client()
        .update_maintenance_plan(with_token(
            pb::UpdateMaintenancePlanRequest {
                operator_id: OP.into(),
                plan_id: plan.plan_id.clone(),
                items: vec!["metering".into(), "cleaning".into()],
                ..Default::default()
            },
            &staff.token("repairer"),
        ))
        .await
        .expect("edited")
        .into_inner()
        .plan
        .expect("plan");
    assert_eq!(
        (edited.state, edited.revision),
        (pb::PlanState::AwaitingApproval as i32, 2)
    );
    // MAINT-3: only listed items.
    let bad = staff
        .client()
        .update_maintenance_plan(with_token(
            pb::UpdateMaintenancePlanRequest {
                operator_id: OP.into(),
                plan_id: plan.plan_id.clone(),
                items: vec!["painting".into()],
                ..Default::default()
            },
            &staff.token("repairer"),
        ))
        .await
        .expect_err("not a MAINT-3 item");
    assert!(bad.message().contains("MAINT-3"), "{}", bad.message());
    mesh.stop().await;
}

/// The patrols made from one schedule, by id.
async fn scheduled_patrols(staff: &Staff, schedule_id: &str) -> Vec<pb::Patrol> {
    let mut patrols: Vec<pb::Patrol> = staff
        .client()
        .list_patrols(with_token(
            pb::ListPatrolsRequest::default(),
            &staff.token("monitor"),
        ))
        .await
        .expect("patrols")
        .into_inner()
        .patrols
        .into_iter()
        .filter(|p| p.schedule_id == schedule_id)
        .collect();
    patrols.sort_by(|a, b| a.patrol_id.cmp(&b.patrol_id));
    patrols
}

#[tokio::test]
async fn patrol_1_a_weekly_schedule_makes_each_normal_patrol_in_turn_across_a_restart_until_stopped()
 {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let start = clock.now();
    let at = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    };
    let create = |every_days: u32| pb::CreatePatrolScheduleRequest {
        schedule: Some(pb::PatrolSchedule {
            operator_id: OP.into(),
            station_id: "S-OUT".into(),
            every_days,
            first_due_time: Some(at(start + chrono::Duration::days(1))),
            ..Default::default()
        }),
    };
    let refused = staff
        .client()
        .create_patrol_schedule(with_token(create(0), &staff.token("station_master")))
        .await
        .expect_err("no period");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("schedule.every_days") && refused.message().contains("PATROL-1"),
        "{}",
        refused.message()
    );
    let denied = staff
        .client()
        .create_patrol_schedule(with_token(create(7), &staff.token("repairer")))
        .await
        .expect_err("a repairer keeps no patrol plans");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let schedule = staff
        .client()
        .create_patrol_schedule(with_token(create(7), &staff.token("station_master")))
        .await
        .expect("schedule")
        .into_inner()
        .schedule
        .expect("schedule");
    assert_eq!(
        schedule.next_due_time.map(|t| t.seconds),
        Some(at(start + chrono::Duration::days(1)).seconds)
    );
    // The first patrol is listed at once, with the PATROL-3 checklist.
    let first = eventually(
        async || scheduled_patrols(&staff, &schedule.schedule_id).await,
        |p| !p.is_empty(),
    )
    .await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind, "normal");
    assert!(first[0].checklist.iter().any(|c| c.contains("grounding")));
    // The mesh restarts; the schedule is rows, not timers. When the first falls due, the
    // second is made, a week later.
    mesh.restart().await;
    let staff = Staff::new(&mesh);
    clock.advance(chrono::Duration::days(1) + chrono::Duration::minutes(1));
    let two = eventually(
        async || scheduled_patrols(&staff, &schedule.schedule_id).await,
        |p| p.len() >= 2,
    )
    .await;
    assert_eq!(two.len(), 2, "made once each");
    assert_eq!(
        two[1].due_time.as_ref().map(|t| t.seconds),
        Some(at(start + chrono::Duration::days(8)).seconds)
    );
    assert!(two[0].overdue && !two[1].overdue, "REQ MON-3");
    // Stopped, it makes no more; what it made stays to be done.
    let stopped = staff
        .client()
        .stop_patrol_schedule(with_token(
            pb::StopPatrolScheduleRequest {
                operator_id: OP.into(),
                schedule_id: schedule.schedule_id.clone(),
            },
            &staff.token("om_manager"),
        ))
        .await
        .expect("stopped")
        .into_inner()
        .schedule
        .expect("schedule");
    assert!(stopped.stop_time.is_some() && stopped.next_due_time.is_none());
    clock.advance(chrono::Duration::days(8));
    // Deadline passes run every 20 ms: give them many chances to make a third patrol.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        scheduled_patrols(&staff, &schedule.schedule_id).await.len(),
        2
    );
    mesh.stop().await;
}

#[tokio::test]
async fn patrol_2_a_storm_alert_creates_special_patrols_for_exactly_the_stations_of_that_area() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    // A third station, in Hangzhou, outside the alert.
    let mut op = mesh.client("operator");
    op.create_station(asset::CreateStationRequest {
        station: Some(demo::station(OP, "S-HZ", "330102")),
    })
    .await
    .expect("station");
    let patrols = staff
        .client()
        .record_patrol_trigger(with_token(
            pb::RecordPatrolTriggerRequest {
                operator_id: OP.into(),
                trigger: pb::PatrolTrigger::Thunderstorm as i32,
                area_code: "330600".into(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("recorded")
        .into_inner()
        .patrols;
    let mut stations: Vec<&str> = patrols.iter().map(|p| p.station_id.as_str()).collect();
    stations.sort_unstable();
    assert_eq!(
        stations,
        ["S-OUT", "S-URB"],
        "the Shaoxing stations, not Hangzhou's"
    );
    assert!(
        patrols
            .iter()
            .all(|p| p.kind == "special" && p.checklist.iter().any(|c| c.contains("flashover")))
    );
    // Overdue after 24 hours (REQ MON-3).
    clock.advance(chrono::Duration::hours(25));
    let listed = staff
        .client()
        .list_patrols(with_token(
            pb::ListPatrolsRequest::default(),
            &staff.token("monitor"),
        ))
        .await
        .expect("list")
        .into_inner()
        .patrols;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|p| p.overdue));
    mesh.stop().await;
}

#[tokio::test]
async fn maint_4_a_model_change_made_by_maintenance_updates_the_ledger_at_once() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let plan = staff.draft_plan("S-URB", &["charging_modes"]).await;
    staff
        .approve_plan(&plan.plan_id, "om_manager")
        .await
        .expect("approved");
    let change = |pile: &str, model: &str| {
        let mut pile = demo::pile(OP, "S-URB", pile, asset::PileType::Dc, 60.0);
        pile.model = model.into();
        pb::record_maintenance_completion_request::LedgerChange::PileChange(
            asset::UpdatePileRequest {
                pile: Some(pile),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["model".into()],
                }),
                reason: String::new(),
            },
        )
    };
    let complete = |ledger_change| pb::RecordMaintenanceCompletionRequest {
        operator_id: OP.into(),
        plan_id: plan.plan_id.clone(),
        item: "charging_modes".into(),
        record: "power module replaced with the DC-60B".into(),
        ledger_change: Some(ledger_change),
    };
    // A pile of another station is refused, and nothing is recorded or changed.
    let elsewhere = staff
        .client()
        .record_maintenance_completion(with_token(
            complete(change("P2", "DC-60B")),
            &staff.token("repairer"),
        ))
        .await
        .expect_err("P2 is at S-OUT");
    assert_eq!(elsewhere.code(), Code::InvalidArgument);
    assert!(
        elsewhere.message().contains("MAINT-4"),
        "{}",
        elsewhere.message()
    );
    let done = staff
        .client()
        .record_maintenance_completion(with_token(
            complete(change("P1", "DC-60B")),
            &staff.token("repairer"),
        ))
        .await
        .expect("completed")
        .into_inner()
        .plan
        .expect("plan");
    assert_eq!(done.completions.len(), 1, "the refused one left no record");
    assert_eq!(done.completions[0].ledger_change, "pile P1: model");
    // The ledger shows the new model at once, with the plan as the reason in its history.
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
    assert_eq!(pile.model, "DC-60B");
    let history = op
        .list_change_records(asset::ListChangeRecordsRequest {
            operator_id: OP.into(),
            entity_type: "pile".into(),
            entity_id: "P1".into(),
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner();
    assert!(
        history
            .change_records
            .iter()
            .any(|r| r.note.contains(&plan.plan_id)),
        "{history:?}"
    );
    let untouched = op
        .get_pile(asset::GetPileRequest {
            operator_id: OP.into(),
            pile_id: "P2".into(),
        })
        .await
        .expect("pile")
        .into_inner()
        .pile
        .expect("pile");
    assert_ne!(untouched.model, "DC-60B");
    // A change that names nothing is refused citing MAINT-4.
    let mut vague = change("P1", "DC-60C");
    if let pb::record_maintenance_completion_request::LedgerChange::PileChange(r) = &mut vague {
        r.update_mask = None;
    }
    let refused = staff
        .client()
        .record_maintenance_completion(with_token(complete(vague), &staff.token("repairer")))
        .await
        .expect_err("no mask");
    assert!(
        refused.message().contains("MAINT-4"),
        "{}",
        refused.message()
    );
    mesh.stop().await;
}

#[tokio::test]
async fn emerg_1_an_incident_closes_only_once_limited_isolated_and_reported_up_level_by_level() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let incident = staff
        .client()
        .open_incident(with_token(
            pb::OpenIncidentRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                pile_id: "P1".into(),
                hazard: pb::Hazard::BatteryFire as i32,
                description: "smoke from a vehicle on P1".into(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("opened")
        .into_inner()
        .incident
        .expect("incident");
    assert_eq!(incident.missing_steps.len(), 3);
    let step = |step: pb::IncidentStep, level: pb::EscalationLevel, to: &str| {
        let mut client = staff.client();
        let request = pb::RecordIncidentStepRequest {
            operator_id: OP.into(),
            incident_id: incident.incident_id.clone(),
            step: step as i32,
            level: level as i32,
            to: to.into(),
        };
        let token = staff.token("repairer");
        async move {
            client
                .record_incident_step(with_token(request, &token))
                .await
        }
    };
    let close = |report: &str, role: &str, model: Option<&str>| {
        let mut client = staff.client();
        let ledger_change = model.map(|model| {
            let mut pile = demo::pile(OP, "S-URB", "P1", asset::PileType::Dc, 60.0);
            pile.model = model.into();
            pb::close_incident_request::LedgerChange::PileChange(asset::UpdatePileRequest {
                pile: Some(pile),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["model".into()],
                }),
                reason: String::new(),
            })
        });
        let request = pb::CloseIncidentRequest {
            operator_id: OP.into(),
            incident_id: incident.incident_id.clone(),
            report: report.into(),
            ledger_change,
        };
        let token = staff.token(role);
        async move { client.close_incident(with_token(request, &token)).await }
    };
    let early = close("all fine", "station_master", None)
        .await
        .expect_err("steps missing");
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("EMERG-1"), "{}", early.message());
    use pb::EscalationLevel as L;
    use pb::IncidentStep as S;
    let skipped = step(S::Escalated, L::Operator, "O&M manager")
        .await
        .expect_err("the station level first");
    assert_eq!(skipped.code(), Code::FailedPrecondition);
    let unlimited = step(S::Isolated, L::Unspecified, "")
        .await
        .expect_err("limit first");
    assert!(
        unlimited.message().contains("EMERG-1"),
        "{}",
        unlimited.message()
    );
    step(S::Escalated, L::Station, "station master Li")
        .await
        .expect("reported");
    step(S::Contained, L::Unspecified, "")
        .await
        .expect("limited");
    let isolated = step(S::Isolated, L::Unspecified, "")
        .await
        .expect("isolated")
        .into_inner()
        .incident
        .expect("incident");
    assert!(isolated.missing_steps.is_empty());
    let denied = close("report", "repairer", None)
        .await
        .expect_err("a repairer does not close incidents");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let closed = close(
        "vehicle battery fire put out; P1's cable replaced with a new model",
        "station_master",
        Some("DC-60C"),
    )
    .await
    .expect("closed")
    .into_inner()
    .incident
    .expect("incident");
    assert!(closed.close_time.is_some());
    assert_eq!(closed.ledger_changes, ["pile P1: model"]);
    let pile = mesh
        .client("operator")
        .get_pile(asset::GetPileRequest {
            operator_id: OP.into(),
            pile_id: "P1".into(),
        })
        .await
        .expect("pile")
        .into_inner()
        .pile
        .expect("pile");
    assert_eq!(pile.model, "DC-60C", "changed equipment updates the ledger");
    let open = staff
        .client()
        .list_incidents(with_token(
            pb::ListIncidentsRequest {
                operator_id: OP.into(),
                open_only: true,
                ..Default::default()
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("listed")
        .into_inner()
        .incidents;
    assert!(open.is_empty());
    mesh.stop().await;
}

#[tokio::test]
async fn maint_2_and_emerg_2_yearly_maintenance_and_half_yearly_drills_are_tracked() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let compliance = |staff: &Staff| {
        let mut client = staff.client();
        let token = staff.token("monitor");
        async move {
            client
                .get_maintenance_compliance(with_token(
                    pb::GetMaintenanceComplianceRequest {
                        operator_id: OP.into(),
                        station_id: "S-URB".into(),
                    },
                    &token,
                ))
                .await
                .expect("compliance")
                .into_inner()
        }
    };
    assert!(!compliance(&staff).await.compliant, "never maintained");
    let plan = staff.draft_plan("S-URB", &["metering"]).await;
    let complete = pb::RecordMaintenanceCompletionRequest {
        operator_id: OP.into(),
        plan_id: plan.plan_id.clone(),
        item: "metering".into(),
        record: "meter verified against the standard".into(),
        ledger_change: None,
    };
    let early = staff
        .client()
        .record_maintenance_completion(with_token(complete.clone(), &staff.token("repairer")))
        .await
        .expect_err("not approved");
    assert!(early.message().contains("MAINT-1"), "{}", early.message());
    staff
        .approve_plan(&plan.plan_id, "om_manager")
        .await
        .expect("approved");
    staff
        .client()
        .record_maintenance_completion(with_token(complete, &staff.token("repairer")))
        .await
        .expect("completed");
    assert!(compliance(&staff).await.compliant);
    clock.advance(chrono::Duration::days(366));
    assert!(
        !compliance(&staff).await.compliant,
        "a year without maintenance (REQ MAINT-2)"
    );

    // Drills: overdue until one is held, and again six months later.
    let readiness = |staff: &Staff| {
        let mut client = staff.client();
        let token = staff.token("monitor");
        async move {
            client
                .get_emergency_readiness(with_token(
                    pb::GetEmergencyReadinessRequest {
                        operator_id: OP.into(),
                        station_id: "S-URB".into(),
                    },
                    &token,
                ))
                .await
                .expect("readiness")
                .into_inner()
        }
    };
    let before = readiness(&staff).await;
    assert!(before.drill_overdue);
    assert_eq!(before.missing_plans.len(), 6, "no SAFE-1 plan yet");
    staff
        .client()
        .create_emergency_plan(with_token(
            pb::CreateEmergencyPlanRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                hazard: pb::Hazard::BatteryFire as i32,
                document_ref: "EP-BATTERY-2026".into(),
            },
            &staff.token("safety_officer"),
        ))
        .await
        .expect("plan");
    let today = chargemesh_kit::clock::china_date(clock.now());
    staff
        .client()
        .record_drill(with_token(
            pb::RecordDrillRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                hazard: pb::Hazard::BatteryFire as i32,
                held_on: today.to_string(),
                participants: vec!["alice".into(), "bob".into()],
                record: "evacuation and extinguisher drill, 6 minutes".into(),
            },
            &staff.token("safety_officer"),
        ))
        .await
        .expect("drill");
    let after = readiness(&staff).await;
    assert!(!after.drill_overdue);
    assert_eq!(after.missing_plans.len(), 5);
    assert!(
        !after
            .missing_plans
            .contains(&(pb::Hazard::BatteryFire as i32))
    );
    clock.advance(chrono::Duration::days(200));
    assert!(
        readiness(&staff).await.drill_overdue,
        "no drill for six months (REQ EMERG-2)"
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
async fn staff_1_an_attended_station_shows_the_posts_still_missing() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let assign = |post: pb::Post, who: &str, procedure: &str| pb::AssignPostRequest {
        operator_id: OP.into(),
        station_id: "S-URB".into(),
        attended: true,
        post: post as i32,
        staff_id: who.into(),
        procedure_ref: procedure.into(),
    };
    let no_procedure = staff
        .client()
        .assign_post(with_token(
            assign(pb::Post::Monitor, "alice", ""),
            &staff.token("station_master"),
        ))
        .await
        .expect_err("no procedure");
    assert!(
        no_procedure.message().contains("BASE-4"),
        "{}",
        no_procedure.message()
    );
    let assigned = staff
        .client()
        .assign_post(with_token(
            assign(pb::Post::Monitor, "alice", "SOP-MON-2026"),
            &staff.token("station_master"),
        ))
        .await
        .expect("assigned")
        .into_inner();
    assert_eq!(assigned.assignments.len(), 1);
    assert_eq!(
        assigned.missing_posts.len(),
        4,
        "station master, safety officer, technician, attendant"
    );
    let staffing = staff
        .client()
        .get_station_staffing(with_token(
            pb::GetStationStaffingRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("staffing")
        .into_inner();
    assert!(staffing.attended);
    assert!(!staffing.missing_posts.contains(&(pb::Post::Monitor as i32)));
    mesh.stop().await;
}

#[tokio::test]
async fn staff_2_a_lapsed_qualification_is_renewed_by_a_recorded_training() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let today = chargemesh_kit::clock::china_date(clock.now());
    let day = |offset: i64| (today + chrono::Duration::days(offset)).to_string();
    staff
        .client()
        .create_staff_member(with_token(
            pb::CreateStaffMemberRequest {
                staff_member: Some(pb::StaffMember {
                    operator_id: OP.into(),
                    staff_id: "dave".into(),
                    name: "Dave".into(),
                    employer: pb::Employer::Own as i32,
                    electrician_certificate_until: day(400),
                    qualified_until: day(-1),
                    ..Default::default()
                }),
            },
            &staff.token("om_manager"),
        ))
        .await
        .expect("dave");
    let assign = || pb::AssignPostRequest {
        operator_id: OP.into(),
        station_id: "S-URB".into(),
        attended: true,
        post: pb::Post::Monitor as i32,
        staff_id: "dave".into(),
        procedure_ref: "SOP-MON-2026".into(),
    };
    let lapsed = staff
        .client()
        .assign_post(with_token(assign(), &staff.token("station_master")))
        .await
        .expect_err("lapsed");
    assert!(lapsed.message().contains("STAFF-2"), "{}", lapsed.message());
    let due = |staff: &Staff| {
        let mut client = staff.client();
        let token = staff.token("monitor");
        async move {
            client
                .list_staff_members(with_token(
                    pb::ListStaffMembersRequest {
                        operator_id: OP.into(),
                        retraining_due_only: true,
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .expect("list")
                .into_inner()
                .staff_members
                .into_iter()
                .map(|m| m.staff_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due(&staff).await, ["dave"], "only dave is due");
    let training = |record_ref: &str| pb::RecordTrainingRequest {
        operator_id: OP.into(),
        staff_id: "dave".into(),
        training: Some(pb::Training {
            course: "annual electrical safety".into(),
            completed_on: day(0),
            valid_until: day(365),
            record_ref: record_ref.into(),
        }),
    };
    let denied = staff
        .client()
        .record_training(with_token(training("CERT-7"), &staff.token("repairer")))
        .await
        .expect_err("a repairer records no trainings");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let unevidenced = staff
        .client()
        .record_training(with_token(training(" "), &staff.token("safety_officer")))
        .await
        .expect_err("no record");
    assert_eq!(unevidenced.code(), Code::InvalidArgument);
    assert!(
        unevidenced.message().contains("training.record_ref")
            && unevidenced.message().contains("STAFF-2"),
        "{}",
        unevidenced.message()
    );
    let renewed = staff
        .client()
        .record_training(with_token(
            training("CERT-7"),
            &staff.token("safety_officer"),
        ))
        .await
        .expect("recorded")
        .into_inner()
        .staff_member
        .expect("member");
    assert_eq!(renewed.qualified_until, day(365));
    assert_eq!(renewed.trainings.len(), 1);
    assert!(!renewed.retraining_due);
    assert!(due(&staff).await.is_empty());
    staff
        .client()
        .assign_post(with_token(assign(), &staff.token("station_master")))
        .await
        .expect("qualified now");
    // Eleven months on, the training comes due again.
    clock.advance(chrono::Duration::days(340));
    assert_eq!(due(&staff).await, ["dave"]);
    mesh.stop().await;
}

#[tokio::test]
async fn patrol_3_a_failed_checklist_item_registers_a_linked_defect() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let patrol = staff
        .client()
        .schedule_patrol(with_token(
            pb::SchedulePatrolRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                due_time: Some(chargemesh_kit::time::to_timestamp(
                    clock.now() + chrono::Duration::days(1),
                )),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("scheduled")
        .into_inner()
        .patrol
        .expect("patrol");
    assert_eq!(patrol.kind, "normal");
    let results = |fail_class: pb::DefectClass, plan: &str| -> Vec<pb::ChecklistResult> {
        patrol
            .checklist
            .iter()
            .enumerate()
            .map(|(i, item)| pb::ChecklistResult {
                item: item.clone(),
                ok: i != 3,
                note: if i == 3 {
                    "grounding resistance 12 ohm".into()
                } else {
                    String::new()
                },
                defect_class: fail_class as i32,
                maintenance_plan: String::new(),
                elimination_plan: plan.into(),
            })
            .collect()
    };
    let complete = |results: Vec<pb::ChecklistResult>| {
        let mut client = staff.client();
        let token = staff.token("repairer");
        let patrol_id = patrol.patrol_id.clone();
        async move {
            client
                .complete_patrol(with_token(
                    pb::CompletePatrolRequest {
                        operator_id: OP.into(),
                        patrol_id,
                        results,
                    },
                    &token,
                ))
                .await
        }
    };
    // A serious defect without an elimination plan refuses the whole report; nothing is written.
    let refused = complete(results(pb::DefectClass::Serious, ""))
        .await
        .expect_err("no plan");
    assert!(refused.message().contains("DEF-2"), "{}", refused.message());
    let defects_before = staff
        .client()
        .list_defects(with_token(
            pb::ListDefectsRequest {
                operator_id: OP.into(),
                ..Default::default()
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("defects")
        .into_inner()
        .defects;
    assert!(defects_before.is_empty());
    let done = complete(results(
        pb::DefectClass::Serious,
        "re-bond the earth strap this week",
    ))
    .await
    .expect("done")
    .into_inner();
    assert_eq!(done.defects.len(), 1);
    assert!(done.defects[0].description.contains("grounding"));
    let patrol_done = done.patrol.expect("patrol");
    assert!(patrol_done.done && patrol_done.failed_items.len() == 1);
    mesh.stop().await;
}

#[tokio::test]
async fn mon_8_a_failed_daily_check_opens_defects_and_a_missed_one_is_overdue() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    staff
        .client()
        .register_monitoring_equipment(with_token(
            pb::RegisterMonitoringEquipmentRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                cameras: vec![pb::Camera {
                    camera_id: "CAM-1".into(),
                    covers: vec!["P1".into(), "bay 1".into()],
                }],
                links: vec![pb::CommunicationLink {
                    link_id: "SIM-1".into(),
                    iccid: "89860012345".into(),
                    carrier: "China Mobile".into(),
                    traffic_min_mb: 5.0,
                    traffic_max_mb: 50.0,
                }],
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("registered");
    let status = |staff: &Staff, day: String| {
        let mut client = staff.client();
        let token = staff.token("monitor");
        async move {
            client
                .get_daily_check_status(with_token(
                    pb::GetDailyCheckStatusRequest {
                        operator_id: OP.into(),
                        station_id: "S-URB".into(),
                        day,
                    },
                    &token,
                ))
                .await
                .expect("status")
                .into_inner()
        }
    };
    let today = chargemesh_kit::clock::china_date(clock.now()).to_string();
    let pending = status(&staff, today.clone()).await;
    assert!(!pending.done && !pending.overdue, "today is not over yet");
    let recorded = staff
        .client()
        .record_daily_check(with_token(
            pb::RecordDailyCheckRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                day: today.clone(),
                cameras: vec![pb::CameraCheck {
                    camera_id: "CAM-1".into(),
                    aimed: true,
                    live_video: true,
                    recording: false,
                }],
                links: vec![pb::LinkCheck {
                    link_id: "SIM-1".into(),
                    up: true,
                    traffic_mb: 480.0,
                }],
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("recorded")
        .into_inner();
    assert_eq!(recorded.findings.len(), 2, "{:?}", recorded.findings);
    assert_eq!(recorded.defects.len(), 2, "each finding opens a defect");
    assert!(status(&staff, today).await.done);
    // Tomorrow, without a check, becomes overdue the day after.
    clock.advance(chrono::Duration::days(1));
    let tomorrow = chargemesh_kit::clock::china_date(clock.now()).to_string();
    clock.advance(chrono::Duration::days(1));
    assert!(status(&staff, tomorrow).await.overdue);
    mesh.stop().await;
}

#[tokio::test]
async fn mon_8_link_states_the_piles_report_stand_in_the_daily_check() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    staff
        .client()
        .register_monitoring_equipment(with_token(
            pb::RegisterMonitoringEquipmentRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                cameras: Vec::new(),
                links: vec![pb::CommunicationLink {
                    link_id: "SIM-1".into(),
                    iccid: "89860012345".into(),
                    carrier: "China Mobile".into(),
                    traffic_min_mb: 5.0,
                    traffic_max_mb: 50.0,
                }],
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("registered");
    // P1 reports its SIM by ICCID: active in the morning, inactive an hour later.
    let mut pile = TelemetryStream::open(mesh.channel("operator")).await;
    let link = |sequence: u64, up: bool| tm::TelemetryMessage {
        sequence,
        pile_id: "P1".into(),
        observe_time: Some(chargemesh_kit::time::to_timestamp(
            clock.now() - chrono::Duration::hours(3 - sequence as i64),
        )),
        body: Some(tm::telemetry_message::Body::Link(tm::LinkState {
            iccid: "89860012345".into(),
            up,
            traffic_mb_24h: if up { 20.0 } else { 0.0 },
            ..Default::default()
        })),
        ..Default::default()
    };
    pile.send(vec![link(1, true), link(2, false)]).await;
    let ack = pile.next().await;
    assert!(
        matches!(ack, tm::connect_response::Body::Acknowledgement(ref a) if a.last_sequence == 2),
        "{ack:?}"
    );
    // The monitor reads them through the gateway.
    let mut telemetry =
        tm::telemetry_service_client::TelemetryServiceClient::new(mesh.anonymous_channel());
    let states = telemetry
        .list_link_states(with_token(
            tm::ListLinkStatesRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                day: String::new(),
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("link states")
        .into_inner()
        .links;
    assert_eq!(states.len(), 1, "the latest per link");
    assert_eq!(states[0].state.as_ref().map(|s| s.up), Some(false));
    // The check names no link by hand: the report stands in, and the dead SIM opens a defect.
    let check = |day: String| pb::RecordDailyCheckRequest {
        operator_id: OP.into(),
        station_id: "S-URB".into(),
        day,
        cameras: Vec::new(),
        links: Vec::new(),
    };
    let today = chargemesh_kit::clock::china_date(clock.now()).to_string();
    let recorded = staff
        .client()
        .record_daily_check(with_token(check(today), &staff.token("monitor")))
        .await
        .expect("recorded")
        .into_inner();
    assert_eq!(recorded.findings.len(), 1, "{:?}", recorded.findings);
    assert!(recorded.findings[0].contains("89860012345 is inactive"));
    assert_eq!(recorded.defects.len(), 1);
    // The next day nothing is reported and nothing checked by hand: refused, naming MON-8.
    clock.advance(chrono::Duration::days(1));
    let tomorrow = chargemesh_kit::clock::china_date(clock.now()).to_string();
    let refused = staff
        .client()
        .record_daily_check(with_token(check(tomorrow), &staff.token("monitor")))
        .await
        .expect_err("no result");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("MON-8"), "{}", refused.message());
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

/// The record kinds a component's records service keeps, as it names them when asked for an
/// unknown one.
async fn record_kinds(status: Result<impl Sized, tonic::Status>) -> String {
    let refused = status.err().expect("an unknown kind is refused");
    assert_eq!(
        refused.code(),
        Code::InvalidArgument,
        "{}",
        refused.message()
    );
    refused.message().to_owned()
}

#[tokio::test]
async fn rec_1_every_kind_of_record_the_standard_names_is_kept() {
    use chargemesh_proto::dispatch::v1::dispatch_records_service_client::DispatchRecordsServiceClient;
    use chargemesh_proto::metering::v1 as mpb;
    use chargemesh_proto::metering::v1::metering_records_service_client::MeteringRecordsServiceClient;
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    let repairer = staff.token("repairer");
    let now = chargemesh_kit::time::to_timestamp(clock.now());
    let hour_ago = chargemesh_kit::time::to_timestamp(clock.now() - chrono::Duration::hours(1));

    // Work logs: what alice did at the urban station, from when to when.
    let log = staff
        .client()
        .record_work_log(with_token(
            pb::RecordWorkLogRequest {
                work_log: Some(pb::WorkLog {
                    operator_id: OP.into(),
                    station_id: "S-URB".into(),
                    staff_id: "alice".into(),
                    work: "cleaned the P1 gun and checked its seal".into(),
                    start_time: Some(hour_ago),
                    end_time: Some(now),
                    ..Default::default()
                }),
            },
            &repairer,
        ))
        .await
        .expect("work log")
        .into_inner()
        .work_log
        .expect("log");
    assert!(log.log_id.starts_with("WL-") && log.recorded_by.contains("repairer"));
    let refused = staff
        .client()
        .record_work_log(with_token(
            pb::RecordWorkLogRequest {
                work_log: Some(pb::WorkLog {
                    staff_id: "mallory".into(),
                    ..log.clone()
                }),
            },
            &repairer,
        ))
        .await
        .expect_err("not our staff");
    assert_eq!(refused.code(), Code::NotFound);

    // Shift handovers: alice to bob, with the station's open repair order in the record.
    let order = staff.phone_order("S-URB", "P1").await;
    let handover = staff
        .client()
        .record_shift_handover(with_token(
            pb::RecordShiftHandoverRequest {
                handover: Some(pb::ShiftHandover {
                    operator_id: OP.into(),
                    station_id: "S-URB".into(),
                    from_staff_id: "alice".into(),
                    to_staff_id: "bob".into(),
                    notes: "P1 waits for a new gun".into(),
                    ..Default::default()
                }),
            },
            &repairer,
        ))
        .await
        .expect("handover")
        .into_inner()
        .handover
        .expect("handover");
    assert_eq!(
        handover.open_work_order_ids,
        std::slice::from_ref(&order.order_id)
    );
    let to_self = staff
        .client()
        .record_shift_handover(with_token(
            pb::RecordShiftHandoverRequest {
                handover: Some(pb::ShiftHandover {
                    to_staff_id: "alice".into(),
                    ..handover.clone()
                }),
            },
            &repairer,
        ))
        .await
        .expect_err("to oneself");
    assert!(to_self.message().contains("REC-1"), "{}", to_self.message());
    let listed = staff
        .client()
        .list_shift_handovers(with_token(
            pb::ListShiftHandoversRequest {
                operator_id: OP.into(),
                station_id: "S-URB".into(),
                ..Default::default()
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("handovers")
        .into_inner()
        .handovers;
    assert_eq!(listed, std::slice::from_ref(&handover));
    let logs = staff
        .client()
        .list_work_logs(with_token(
            pb::ListWorkLogsRequest {
                operator_id: OP.into(),
                ..Default::default()
            },
            &staff.token("monitor"),
        ))
        .await
        .expect("logs")
        .into_inner()
        .work_logs;
    assert_eq!(logs, std::slice::from_ref(&log));

    // Every REC-1 kind is a record its component keeps under REC-3: charging with metering;
    // maintenance, maintenance tests (on the work order), patrols, work logs and handovers with
    // dispatch.
    let manager = staff.token("om_manager");
    let mut dispatch_records = DispatchRecordsServiceClient::new(staff.channel.clone());
    let dispatch_kinds = record_kinds(
        dispatch_records
            .delete_record(with_token(
                pb::DeleteRecordRequest {
                    operator_id: OP.into(),
                    kind: "no_such_kind".into(),
                    record_id: "x".into(),
                },
                &manager,
            ))
            .await,
    )
    .await;
    for kind in [
        "maintenance_plan",
        "work_order",
        "patrol",
        "work_log",
        "shift_handover",
    ] {
        assert!(dispatch_kinds.contains(kind), "{kind}: {dispatch_kinds}");
    }
    let mut metering_records = MeteringRecordsServiceClient::new(staff.channel.clone());
    let metering_kinds = record_kinds(
        metering_records
            .delete_record(with_token(
                mpb::DeleteRecordRequest {
                    operator_id: OP.into(),
                    kind: "no_such_kind".into(),
                    record_id: "x".into(),
                },
                &manager,
            ))
            .await,
    )
    .await;
    assert!(metering_kinds.contains("charge_order"), "{metering_kinds}");
    // And kept: the log and the handover cannot be deleted within three years.
    for (kind, id) in [
        ("work_log", log.log_id.clone()),
        ("shift_handover", handover.handover_id.clone()),
    ] {
        let kept = dispatch_records
            .delete_record(with_token(
                pb::DeleteRecordRequest {
                    operator_id: OP.into(),
                    kind: kind.into(),
                    record_id: id,
                },
                &manager,
            ))
            .await
            .expect_err("kept");
        assert_eq!(kept.code(), Code::FailedPrecondition, "{kind}");
        assert!(kept.message().contains("REC-3"), "{}", kept.message());
    }
    mesh.stop().await;
}
