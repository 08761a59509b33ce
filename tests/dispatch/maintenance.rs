//! Defects, maintenance plans and the ledger (REQ EQ-3, MAINT-1, MAINT-2, MAINT-4).

use super::*;

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
