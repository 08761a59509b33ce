//! Complaints end to end through the gateway with staff JWTs: the 24-hour response and the
//! promise on durable clocks, the lifecycle in order, reopening, and tenancy.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use chargemesh::pki::{self, DEMO_OPERATOR_ID};
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_proto::complaints::v1 as pb;
use chargemesh_proto::complaints::v1::complaints_service_client::ComplaintsServiceClient;
use common::{TestMesh, eventually, with_token};

const OP: &str = DEMO_OPERATOR_ID;

async fn mesh_at(clock: &ManualClock) -> TestMesh {
    let mesh_clock = clock.clone();
    TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.deadline_interval_ms = 20;
    })
    .await
}

struct Desk {
    client: ComplaintsServiceClient<tonic::transport::Channel>,
    pki: pki::PkiDir,
}

impl Desk {
    fn new(mesh: &TestMesh) -> Self {
        Self {
            client: ComplaintsServiceClient::new(mesh.anonymous_channel()),
            pki: mesh.pki().clone(),
        }
    }

    fn token(&self, role: &str, operator: &str) -> String {
        pki::mint_token(&self.pki, role, Some(operator), &[role.to_owned()], 3600).expect("token")
    }

    async fn submit(&mut self, description: &str) -> pb::Complaint {
        let token = self.token("complaint_handler", OP);
        self.client
            .submit_complaint(with_token(
                pb::SubmitComplaintRequest {
                    complaint: Some(pb::Complaint {
                        operator_id: OP.into(),
                        kind: pb::ComplaintKind::Complaint as i32,
                        channel: pb::ComplaintChannel::Phone as i32,
                        category: pb::ComplaintCategory::ChargingFailure as i32,
                        customer_contact: "138 0000 0000".into(),
                        station_id: "S1".into(),
                        description: description.into(),
                        ..Default::default()
                    }),
                },
                &token,
            ))
            .await
            .expect("submitted")
            .into_inner()
            .complaint
            .expect("complaint")
    }

    async fn get(&mut self, id: &str) -> pb::Complaint {
        let token = self.token("complaint_handler", OP);
        self.client
            .get_complaint(with_token(
                pb::GetComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                },
                &token,
            ))
            .await
            .expect("complaint")
            .into_inner()
            .complaint
            .expect("complaint")
    }

    async fn acknowledge(&mut self, id: &str) -> Result<pb::Complaint, tonic::Status> {
        let token = self.token("complaint_handler", OP);
        Ok(self
            .client
            .acknowledge_complaint(with_token(
                pb::AcknowledgeComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                    reply: "we are sorry and look into it today".into(),
                },
                &token,
            ))
            .await?
            .into_inner()
            .complaint
            .unwrap_or_default())
    }
}

#[tokio::test]
async fn cmp_1_acknowledged_after_25_hours_is_a_breach_raised_on_time_across_a_restart_and_after_23_it_is_not()
 {
    let clock = ManualClock::new(chrono::Utc::now());
    let mut mesh = mesh_at(&clock).await;
    let mut desk = Desk::new(&mesh);
    let prompt = desk.submit("the gun would not lock").await;
    let slow = desk.submit("charged but no energy").await;
    // The mesh restarts; the 24-hour clocks are rows, not timers.
    mesh.restart().await;
    let mut desk = Desk::new(&mesh);
    let bus = mesh.mesh.as_ref().expect("mesh").bus.clone();
    let mut events = bus
        .subscribe(
            chargemesh_complaints::engine::COMPLAINTS_TOPIC,
            "test",
            "t1",
        )
        .await
        .expect("subscribed");
    clock.advance(chrono::Duration::hours(23));
    desk.acknowledge(&prompt.complaint_id)
        .await
        .expect("in time");
    clock.advance(chrono::Duration::hours(2));
    // The clock fires on its own at the 24th hour and raises the breach with its lateness.
    let breach = loop {
        let delivery = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("event");
        events.ack(&delivery.id).await.expect("ack");
        if delivery.envelope.r#type == chargemesh_complaints::engine::BREACH_EVENT {
            break delivery;
        }
    };
    let payload: serde_json::Value =
        serde_json::from_slice(&breach.envelope.payload).expect("json");
    assert_eq!(payload["complaint_id"], slow.complaint_id.as_str());
    assert_eq!(payload["rule"], "CMP-1");
    let acknowledged = desk.acknowledge(&slow.complaint_id).await.expect("late");
    assert_eq!(
        acknowledged
            .breaches
            .iter()
            .map(|b| b.rule.as_str())
            .collect::<Vec<_>>(),
        ["CMP-1"]
    );
    assert!(
        acknowledged.breaches[0]
            .lateness
            .as_ref()
            .is_some_and(|l| l.seconds == 3600),
        "25 hours is one hour late"
    );
    assert!(desk.get(&prompt.complaint_id).await.breaches.is_empty());
    mesh.stop().await;
}

#[tokio::test]
async fn cmp_4_the_lifecycle_runs_in_order_a_missed_promise_is_a_breach_and_unsatisfied_reopens() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    let mut desk = Desk::new(&mesh);
    let c = desk.submit("the app charged me twice").await;
    let token = desk.token("complaint_handler", OP);
    let id = c.complaint_id.clone();
    // Out of order: a promise before any response.
    let at = |t: chrono::DateTime<chrono::Utc>| chargemesh_kit::time::to_timestamp(t);
    let promise = |due: chrono::DateTime<chrono::Utc>| pb::PromiseResolutionRequest {
        operator_id: OP.into(),
        complaint_id: id.clone(),
        handling: "refund the second charge".into(),
        reply: "refunded within two days".into(),
        due_time: Some(at(due)),
    };
    let early = desk
        .client
        .promise_resolution(with_token(
            promise(clock.now() + chrono::Duration::days(2)),
            &token,
        ))
        .await
        .expect_err("out of order");
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("CMP-4"), "{}", early.message());
    // A repairer is not the complaint department.
    let repairer = desk.token("repairer", OP);
    let denied = desk
        .client
        .acknowledge_complaint(with_token(
            pb::AcknowledgeComplaintRequest {
                operator_id: OP.into(),
                complaint_id: id.clone(),
                reply: "hi".into(),
            },
            &repairer,
        ))
        .await
        .expect_err("not a handler");
    assert_eq!(denied.code(), Code::PermissionDenied);
    desk.acknowledge(&id).await.expect("acknowledged");
    desk.client
        .investigate_complaint(with_token(
            pb::InvestigateComplaintRequest {
                operator_id: OP.into(),
                complaint_id: id.clone(),
                event: "a retried payment was captured twice".into(),
                responsible_party: "payment provider".into(),
            },
            &token,
        ))
        .await
        .expect("investigated");
    desk.client
        .promise_resolution(with_token(
            promise(clock.now() + chrono::Duration::days(2)),
            &token,
        ))
        .await
        .expect("promised");
    // The promise passes unkept: its clock records the breach.
    clock.advance(chrono::Duration::days(2) + chrono::Duration::hours(1));
    let late = eventually(
        async || desk.get(&id).await,
        |c| c.breaches.iter().any(|b| b.rule == "CMP-4"),
    )
    .await;
    assert!(late.breaches.iter().any(|b| b.what == "promise"));
    desk.client
        .resolve_complaint(with_token(
            pb::ResolveComplaintRequest {
                operator_id: OP.into(),
                complaint_id: id.clone(),
                record: "refund of 36.50 issued".into(),
            },
            &token,
        ))
        .await
        .expect("resolved");
    let revisited = desk
        .client
        .revisit_complaint(with_token(
            pb::RevisitComplaintRequest {
                operator_id: OP.into(),
                complaint_id: id.clone(),
                satisfaction: 1,
                comment: "the refund has not arrived".into(),
            },
            &token,
        ))
        .await
        .expect("revisited")
        .into_inner();
    assert!(revisited.reopened);
    let reopened = revisited.complaint.expect("complaint");
    assert_eq!(reopened.state, pb::ComplaintState::Investigating as i32);
    assert_eq!(reopened.reopened, 1);
    assert!(reopened.steps.len() >= 7, "every step kept");
    // Another operator's handler learns nothing of it.
    let outsider = desk.token("complaint_handler", "MA2BCDEF3");
    let hidden = desk
        .client
        .get_complaint(with_token(
            pb::GetComplaintRequest {
                operator_id: OP.into(),
                complaint_id: id.clone(),
            },
            &outsider,
        ))
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    let own = desk
        .client
        .list_complaints(with_token(pb::ListComplaintsRequest::default(), &outsider))
        .await
        .expect("own queue")
        .into_inner();
    assert!(own.complaints.is_empty());
    // The handler's queue shows it with no running limit while it is being investigated.
    let queue = desk
        .client
        .list_complaints(with_token(pb::ListComplaintsRequest::default(), &token))
        .await
        .expect("queue")
        .into_inner()
        .complaints;
    assert_eq!(queue.len(), 1);
    mesh.stop().await;
}

#[tokio::test]
async fn fault_4_a_complaint_about_a_broken_connector_opens_exactly_one_work_order() {
    use chargemesh::demo;
    use chargemesh_proto::asset::v1 as asset;
    use chargemesh_proto::dispatch::v1 as dp;
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
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
    let mut desk = Desk::new(&mesh);
    let token = desk.token("complaint_handler", OP);
    let complaint = desk
        .client
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
                    description: "connector 1 is broken, the latch is missing".into(),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("submitted")
        .into_inner()
        .complaint
        .expect("complaint");
    assert_eq!(complaint.links.len(), 1, "{:?}", complaint.links);
    assert_eq!(complaint.links[0].kind, "work_order");
    let monitor = desk.token("monitor", OP);
    let orders = dp::dispatch_service_client::DispatchServiceClient::new(mesh.anonymous_channel())
        .list_work_orders(with_token(
            dp::ListWorkOrdersRequest {
                operator_id: OP.into(),
                ..Default::default()
            },
            &monitor,
        ))
        .await
        .expect("orders")
        .into_inner()
        .work_orders;
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
