//! Incidents, posts and qualifications (REQ EMERG-1, STAFF-1, STAFF-2).

use super::*;

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
