//! Revisits, survey answers and corrective actions, counted and tracked for the evaluation (REQ
//! EVAL-2, EVAL-3).

use super::*;

fn tally(t: &Option<pb::ScoreTally>) -> (u32, f64, u32) {
    let t = t.unwrap_or_default();
    (
        t.answers,
        (t.mean_score * 1000.0).round() / 1000.0,
        t.satisfied,
    )
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
