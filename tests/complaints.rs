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
        opts.poll_every(20);
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

    /// Takes a complaint from wherever it is in its handling to a revisit with `score`;
    /// returns whether the revisit reopened it.
    async fn revisit_with(
        &mut self,
        id: &str,
        score: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        let token = self.token("complaint_handler", OP);
        if self.get(id).await.state == pb::ComplaintState::Received as i32 {
            self.acknowledge(id).await.expect("acknowledged");
        }
        if self.get(id).await.state == pb::ComplaintState::Acknowledged as i32 {
            self.client
                .investigate_complaint(with_token(
                    pb::InvestigateComplaintRequest {
                        operator_id: OP.into(),
                        complaint_id: id.into(),
                        event: "bays taken by parked cars".into(),
                        responsible_party: "station".into(),
                    },
                    &token,
                ))
                .await
                .expect("investigated");
        }
        let due = chargemesh_kit::time::to_timestamp(now + chrono::Duration::days(1));
        self.client
            .promise_resolution(with_token(
                pb::PromiseResolutionRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                    handling: "a warden at peak hours".into(),
                    reply: "we will keep the bays free".into(),
                    due_time: Some(due),
                },
                &token,
            ))
            .await
            .expect("promised");
        self.client
            .resolve_complaint(with_token(
                pb::ResolveComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                    record: "warden posted".into(),
                },
                &token,
            ))
            .await
            .expect("resolved");
        self.client
            .revisit_complaint(with_token(
                pb::RevisitComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: id.into(),
                    satisfaction: score,
                    comment: String::new(),
                },
                &token,
            ))
            .await
            .expect("revisited")
            .into_inner()
            .reopened
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_4_the_work_order_of_a_complaint_is_opened_once_dispatch_is_reachable_again() {
    use chargemesh::demo;
    use chargemesh_proto::asset::v1 as asset;
    use chargemesh_proto::dispatch::v1 as dp;
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
    // Dispatch is unreachable when the complaint comes in: it is kept all the same.
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
                    description: "the screen stays black".into(),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("kept though dispatch is unreachable")
        .into_inner()
        .complaint
        .expect("complaint");
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
    let orders = dp::dispatch_service_client::DispatchServiceClient::new(mesh.anonymous_channel())
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
        .work_orders;
    assert_eq!(orders.len(), 1, "exactly one work order");
    assert_eq!(orders[0].order_id, linked.links[0].id);
    mesh.stop().await;
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("time")
        .to_utc()
}

fn survey(id: &str, station: &str, score: u32) -> pb::RecordSurveyAnswerRequest {
    pb::RecordSurveyAnswerRequest {
        answer: Some(pb::SurveyAnswer {
            operator_id: OP.into(),
            answer_id: id.into(),
            survey: "2026 spring station survey".into(),
            station_id: station.into(),
            respondent_contact: "137 0000 1111".into(),
            score,
            ..Default::default()
        }),
    }
}

fn tally(t: &Option<pb::ScoreTally>) -> (u32, f64, u32) {
    let t = t.unwrap_or_default();
    (
        t.answers,
        (t.mean_score * 1000.0).round() / 1000.0,
        t.satisfied,
    )
}

#[tokio::test]
async fn eval_2_revisits_and_survey_answers_are_counted_per_station_operator_and_month() {
    let clock = ManualClock::new(at("2026-03-10T02:00:00Z"));
    let mesh = mesh_at(&clock).await;
    let mut desk = Desk::new(&mesh);
    let token = desk.token("complaint_handler", OP);
    let now = clock.now();
    // At S1: one complaint revisited at 4; one unsatisfied at 2, reopened, then 5.
    let a = desk.submit("an hour's queue").await;
    let b = desk.submit("no free bay").await;
    assert!(!desk.revisit_with(&a.complaint_id, 4, now).await);
    assert!(desk.revisit_with(&b.complaint_id, 2, now).await);
    assert!(!desk.revisit_with(&b.complaint_id, 5, now).await);
    // Praise at S2 is counted, not scored.
    desk.client
        .submit_complaint(with_token(
            pb::SubmitComplaintRequest {
                complaint: Some(pb::Complaint {
                    operator_id: OP.into(),
                    kind: pb::ComplaintKind::Praise as i32,
                    channel: pb::ComplaintChannel::App as i32,
                    category: pb::ComplaintCategory::ServiceAttitude as i32,
                    customer_contact: "136 2222 3333".into(),
                    station_id: "S2".into(),
                    description: "the attendant helped with the card".into(),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("praise");
    // Survey answers: S1 3, S2 5, the operator as a whole 1.
    for (id, station, score) in [("Q-1", "S1", 3), ("Q-2", "S2", 5), ("Q-3", "", 1)] {
        let kept = desk
            .client
            .record_survey_answer(with_token(survey(id, station, score), &token))
            .await
            .expect("recorded")
            .into_inner()
            .answer
            .expect("answer");
        assert_eq!((kept.answer_id.as_str(), kept.score), (id, score));
    }
    // A resend is safe; another answer under a used id is not.
    desk.client
        .record_survey_answer(with_token(survey("Q-1", "S1", 3), &token))
        .await
        .expect("resend");
    let clash = desk
        .client
        .record_survey_answer(with_token(survey("Q-1", "S1", 4), &token))
        .await
        .expect_err("used id");
    assert_eq!(clash.code(), Code::AlreadyExists);
    let bad = desk
        .client
        .record_survey_answer(with_token(survey("Q-9", "S1", 6), &token))
        .await
        .expect_err("score");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("answer.score") && bad.message().contains("EVAL-2"),
        "{}",
        bad.message()
    );
    // April.
    clock.set(at("2026-04-02T02:00:00Z"));
    desk.client
        .record_survey_answer(with_token(survey("Q-4", "S2", 4), &token))
        .await
        .expect("recorded");
    let figures = |station: &str| pb::GetSatisfactionRequest {
        operator_id: OP.into(),
        from_month: "2026-03".into(),
        to_month: "2026-04".into(),
        station_id: station.into(),
    };
    let manager = desk.token("om_manager", OP);
    let rows = desk
        .client
        .get_satisfaction(with_token(figures(""), &manager))
        .await
        .expect("figures")
        .into_inner()
        .rows;
    let keys: Vec<_> = rows
        .iter()
        .map(|r| (r.month.as_str(), r.station_id.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("2026-03", ""),
            ("2026-03", "S1"),
            ("2026-03", "S2"),
            ("2026-04", ""),
            ("2026-04", "S2")
        ]
    );
    let march = &rows[0];
    assert_eq!(tally(&march.revisits), (3, 3.667, 2));
    assert_eq!(tally(&march.surveys), (3, 3.0, 1));
    assert_eq!(tally(&march.overall), (6, 3.333, 3));
    assert_eq!(
        (march.complaints, march.praise, march.suggestions),
        (2, 1, 0)
    );
    let s1 = &rows[1];
    assert_eq!(tally(&s1.revisits), (3, 3.667, 2));
    assert_eq!(tally(&s1.surveys), (1, 3.0, 0));
    assert_eq!(s1.complaints, 2);
    let s2 = &rows[2];
    assert_eq!(tally(&s2.overall), (1, 5.0, 1));
    assert_eq!((s2.complaints, s2.praise), (0, 1));
    assert_eq!(tally(&rows[3].overall), (1, 4.0, 1));
    // One station's rows, beside the operator's.
    let only_s2 = desk
        .client
        .get_satisfaction(with_token(figures("S2"), &manager))
        .await
        .expect("figures")
        .into_inner()
        .rows;
    assert_eq!(only_s2.len(), 4);
    assert!(only_s2.iter().all(|r| r.station_id != "S1"));
    // A month written wrong is named.
    let wrong = desk
        .client
        .get_satisfaction(with_token(
            pb::GetSatisfactionRequest {
                from_month: "March".into(),
                ..figures("")
            },
            &manager,
        ))
        .await
        .expect_err("bad month");
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert!(
        wrong.message().contains("from_month"),
        "{}",
        wrong.message()
    );
    // Another operator's staff learn nothing.
    let outsider = desk.token("om_manager", "MA2BCDEF3");
    let hidden = desk
        .client
        .get_satisfaction(with_token(figures(""), &outsider))
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    mesh.stop().await;
}

#[tokio::test]
async fn eval_3_a_corrective_action_is_tracked_on_its_deadline_across_a_restart_until_effective() {
    let clock = ManualClock::new(at("2026-03-10T02:00:00Z"));
    let mut mesh = mesh_at(&clock).await;
    let mut desk = Desk::new(&mesh);
    let handler = desk.token("complaint_handler", OP);
    let manager = desk.token("om_manager", OP);
    let a = desk.submit("an hour's queue").await;
    let b = desk.submit("bays taken by petrol cars").await;
    let ts = chargemesh_kit::time::to_timestamp;
    let opening = |ids: &[&str]| pb::OpenCorrectiveActionRequest {
        action: Some(pb::CorrectiveAction {
            operator_id: OP.into(),
            complaint_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            problem: "bays taken by cars not charging".into(),
            plan: "signs and a parking fee for idle cars".into(),
            owner: "station master Li".into(),
            due_time: Some(ts(at("2026-03-13T02:00:00Z"))),
            ..Default::default()
        }),
    };
    let unknown = desk
        .client
        .open_corrective_action(with_token(opening(&["CP-nope"]), &handler))
        .await
        .expect_err("unknown complaint");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(unknown.message().contains("action.complaint_ids"));
    let none = desk
        .client
        .open_corrective_action(with_token(opening(&[]), &handler))
        .await
        .expect_err("no complaint");
    assert!(none.message().contains("EVAL-3"), "{}", none.message());
    let action = desk
        .client
        .open_corrective_action(with_token(
            opening(&[&a.complaint_id, &b.complaint_id]),
            &handler,
        ))
        .await
        .expect("opened")
        .into_inner()
        .action
        .expect("action");
    let id = action.action_id.clone();
    assert_eq!(action.state, pb::CorrectiveActionState::Open as i32);
    assert_eq!(
        (action.round, action.station_ids.clone()),
        (1, vec!["S1".to_owned()])
    );
    // The complaint shows the action answering it.
    let shown = desk.get(&a.complaint_id).await;
    assert!(
        shown
            .links
            .iter()
            .any(|l| l.kind == "corrective_action" && l.id == id && l.state == "open"),
        "{:?}",
        shown.links
    );
    let check = |effective: bool, next: &str, due: Option<&str>| pb::CheckCorrectiveActionRequest {
        operator_id: OP.into(),
        action_id: id.clone(),
        effective,
        evidence: "complaints at S1 since the signs went up".into(),
        next_plan: next.into(),
        next_due_time: due.map(|d| ts(at(d))),
    };
    let early = desk
        .client
        .check_corrective_action(with_token(check(true, "", None), &manager))
        .await
        .expect_err("not implemented yet");
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("EVAL-3"), "{}", early.message());
    // The deadline is a durable clock: it fires after a restart, a day late.
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
    clock.set(at("2026-03-14T02:00:00Z"));
    // (The unanswered complaints' own CMP-1 clocks fire too.)
    let payload = loop {
        let delivery = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("event");
        events.ack(&delivery.id).await.expect("ack");
        let payload: serde_json::Value =
            serde_json::from_slice(&delivery.envelope.payload).expect("json");
        if delivery.envelope.r#type == chargemesh_complaints::engine::BREACH_EVENT
            && payload["rule"] == "EVAL-3"
        {
            break payload;
        }
    };
    assert_eq!(payload["action_id"], id.as_str());
    assert_eq!(payload["rule"], "EVAL-3");
    assert_eq!(payload["lateness_seconds"], 86_400);
    // The owner records it done; a handler may not judge it.
    let master = desk.token("station_master", OP);
    let implemented = desk
        .client
        .implement_corrective_action(with_token(
            pb::ImplementCorrectiveActionRequest {
                operator_id: OP.into(),
                action_id: id.clone(),
                record: "signs up, fee in the app".into(),
            },
            &master,
        ))
        .await
        .expect("implemented")
        .into_inner()
        .action
        .expect("action");
    assert_eq!(
        implemented.state,
        pb::CorrectiveActionState::Implemented as i32
    );
    assert_eq!(implemented.breaches.len(), 1);
    assert_eq!(implemented.breaches[0].rule, "EVAL-3");
    let denied = desk
        .client
        .check_corrective_action(with_token(check(true, "", None), &handler))
        .await
        .expect_err("management judges");
    assert_eq!(denied.code(), Code::PermissionDenied);
    // The same complaint again at S1 is the evidence: not effective, a second round.
    clock.set(at("2026-03-16T02:00:00Z"));
    desk.submit("still no free bay").await;
    let got = desk
        .client
        .get_corrective_action(with_token(
            pb::GetCorrectiveActionRequest {
                operator_id: OP.into(),
                action_id: id.clone(),
            },
            &handler,
        ))
        .await
        .expect("got")
        .into_inner()
        .action
        .expect("action");
    assert_eq!(got.recurrences, 1);
    let no_plan = desk
        .client
        .check_corrective_action(with_token(check(false, "", None), &manager))
        .await
        .expect_err("no next plan");
    assert!(
        no_plan.message().contains("next_plan"),
        "{}",
        no_plan.message()
    );
    let second = desk
        .client
        .check_corrective_action(with_token(
            check(
                false,
                "a warden at peak hours",
                Some("2026-03-23T02:00:00Z"),
            ),
            &manager,
        ))
        .await
        .expect("second round")
        .into_inner()
        .action
        .expect("action");
    assert_eq!(
        (second.state, second.round, second.plan.as_str()),
        (
            pb::CorrectiveActionState::Open as i32,
            2,
            "a warden at peak hours"
        )
    );
    desk.client
        .implement_corrective_action(with_token(
            pb::ImplementCorrectiveActionRequest {
                operator_id: OP.into(),
                action_id: id.clone(),
                record: "warden on duty 17:00-20:00".into(),
            },
            &master,
        ))
        .await
        .expect("implemented");
    clock.set(at("2026-04-20T02:00:00Z"));
    let closed = desk
        .client
        .check_corrective_action(with_token(check(true, "", None), &manager))
        .await
        .expect("effective")
        .into_inner()
        .action
        .expect("action");
    assert_eq!(closed.state, pb::CorrectiveActionState::Effective as i32);
    assert_eq!(closed.breaches.len(), 1, "the second round was on time");
    assert_eq!(closed.steps.len(), 5);
    let list = |include_closed: bool, complaint: &str| pb::ListCorrectiveActionsRequest {
        operator_id: OP.into(),
        include_closed,
        complaint_id: complaint.into(),
        ..Default::default()
    };
    let open = desk
        .client
        .list_corrective_actions(with_token(list(false, ""), &handler))
        .await
        .expect("list")
        .into_inner()
        .actions;
    assert!(open.is_empty());
    let answering_b = desk
        .client
        .list_corrective_actions(with_token(list(true, &b.complaint_id), &handler))
        .await
        .expect("list")
        .into_inner()
        .actions;
    assert_eq!(answering_b.len(), 1);
    mesh.stop().await;
}
