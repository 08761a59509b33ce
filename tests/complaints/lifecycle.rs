//! A complaint's lifecycle and its time limits: acknowledged within 24 hours, promises kept,
//! reopened when the customer is not satisfied (REQ CMP-1, CMP-4).

use super::*;

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
