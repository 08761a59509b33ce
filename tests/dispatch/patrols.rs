//! Patrols: schedules, special patrols and checklists (REQ PATROL-1..PATROL-3).

use super::*;

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
