//! Charge orders as platforms report them: itemised to the fen, kept but not billable on an expired
//! meter, corrected as new versions, flagged by complaints, and refused when impossible (REQ
//! SETTLE-1, BASE-5, REC-2, MON-9).

use super::*;

#[tokio::test]
async fn settle_1_a_reported_session_is_itemised_per_period_to_the_fen() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = setup(&clock).await;
    let mut platform = metering(&mesh, "operator");
    let order = platform
        .report_charge_order(session(ORDER_1, "P1"))
        .await
        .expect("reported")
        .into_inner()
        .order
        .expect("order");
    assert!(order.billable, "{}", order.not_billable_reason);
    assert_eq!(order.energy_kwh, "40.000");
    assert_eq!(order.electricity_money, "32.60");
    assert_eq!(order.service_money, "28.00");
    assert_eq!(order.total_money, "60.60");
    let lines: Vec<(i32, &str, &str, &str)> = order
        .details
        .iter()
        .map(|d| {
            (
                d.label,
                d.energy_kwh.as_str(),
                d.electricity_price.as_str(),
                d.electricity_money.as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (asset::PeriodLabel::Flat as i32, "20.000", "0.6500", "13.00"),
            (asset::PeriodLabel::Peak as i32, "20.000", "0.9800", "19.60"),
        ]
    );
    assert!(order.flags.is_empty(), "{:?}", order.flags);
    assert_eq!(
        (
            order.flat_energy_kwh.as_str(),
            order.peak_energy_kwh.as_str()
        ),
        ("20.000", "20.000"),
        "the time-of-use split"
    );
    assert_eq!(order.valley_energy_kwh, "0.000");
    // The same report again is the same order, not a second one.
    let again = platform
        .report_charge_order(session(ORDER_1, "P1"))
        .await
        .expect("resent")
        .into_inner()
        .order
        .expect("order");
    assert_eq!((again.version, again.total_money.as_str()), (1, "60.60"));
    // Another session under a used id is refused rather than overwriting it.
    let mut other = session(ORDER_1, "P1");
    other.samples[2].register_kwh = "1041.000".into();
    let refused = platform
        .report_charge_order(other)
        .await
        .expect_err("duplicate id");
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert!(refused.message().contains("MON-9"), "{}", refused.message());
    // Bad input names the field.
    let mut foreign_id = session("MA2BCDEF3261120163000000001", "P1");
    foreign_id.stop_reason = 0;
    let bad = platform
        .report_charge_order(foreign_id)
        .await
        .expect_err("another operator's id");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("order_id"), "{}", bad.message());
    mesh.stop().await;
}

#[tokio::test]
async fn base_5_a_session_on_an_expired_certificate_is_kept_not_billable_and_raises_an_alert() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = setup(&clock).await;
    let bus = mesh.mesh.as_ref().expect("mesh").bus.clone();
    let mut events = bus
        .subscribe(chargemesh_metering::engine::METERING_TOPIC, "test", "t1")
        .await
        .expect("subscribed");
    let mut platform = metering(&mesh, "operator");
    platform
        .report_charge_order(session(ORDER_1, "P1"))
        .await
        .expect("billable one");
    let order = platform
        .report_charge_order(session(ORDER_2, "P2"))
        .await
        .expect("stored anyway")
        .into_inner()
        .order
        .expect("order");
    assert!(!order.billable);
    assert!(
        order.not_billable_reason.contains("BASE-5"),
        "{}",
        order.not_billable_reason
    );
    assert_eq!(order.total_money, "60.60", "itemised for the record");
    let alert = loop {
        let delivery = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("event");
        events.ack(&delivery.id).await.expect("ack");
        if delivery.envelope.r#type == chargemesh_metering::engine::NOT_BILLABLE_EVENT {
            break delivery;
        }
    };
    let payload: serde_json::Value = serde_json::from_slice(&alert.envelope.payload).expect("json");
    assert_eq!(payload["order_id"], ORDER_2);
    // Excluded from the settlement totals of the day.
    let check = platform
        .reconcile_charge_orders(pb::ReconcileChargeOrdersRequest {
            operator_id: OP.into(),
            check_order_seq: "CHK-1".into(),
            start_time: ts("2026-11-20T00:00:00+08:00"),
            end_time: ts("2026-11-21T00:00:00+08:00"),
            orders: vec![
                pb::ReconciledOrder {
                    order_id: ORDER_1.into(),
                    energy_kwh: "40.000".into(),
                    total_money: "60.60".into(),
                },
                pb::ReconciledOrder {
                    order_id: ORDER_2.into(),
                    energy_kwh: "40.000".into(),
                    total_money: "60.60".into(),
                },
            ],
        })
        .await
        .expect("reconciled")
        .into_inner();
    assert_eq!(
        (
            check.order_count,
            check.energy_kwh.as_str(),
            check.total_money.as_str()
        ),
        (1, "40.000", "60.60")
    );
    assert_eq!(check.dispute_count, 1);
    assert_eq!(check.disputes[0].order_id, ORDER_2);
    assert_eq!(check.disputes[0].reason, pb::DisputeReason::NotFound as i32);
    mesh.stop().await;
}

#[tokio::test]
async fn rec_2_a_correction_is_a_new_version_and_the_original_stays_readable() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = setup(&clock).await;
    let mut platform = metering(&mesh, "operator");
    // The pile reported its register going backwards: kept, flagged, not billable.
    let mut broken = session(ORDER_1, "P1");
    broken.samples[2].register_kwh = "1010.000".into();
    let original = platform
        .report_charge_order(broken)
        .await
        .expect("kept")
        .into_inner()
        .order
        .expect("order");
    assert!(!original.billable);
    assert_eq!(
        original.flags.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [pb::FlagKind::RegisterBackwards as i32]
    );
    let staff = |role: &str| {
        chargemesh::pki::mint_token(mesh.pki(), role, Some(OP), &[role.to_owned()], 3600)
            .expect("token")
    };
    let mut desk = MeteringServiceClient::new(mesh.anonymous_channel());
    let correction = pb::CorrectChargeOrderRequest {
        operator_id: OP.into(),
        order_id: ORDER_1.into(),
        reason: "the meter display photographed at 17:30 reads 1040.000 kWh".into(),
        samples: session(ORDER_1, "P1").samples,
        end_time: None,
    };
    let denied = desk
        .correct_charge_order(with_token(correction.clone(), &staff("repairer")))
        .await
        .expect_err("a repairer does not correct orders");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut no_reason = correction.clone();
    no_reason.reason = " ".into();
    let refused = desk
        .correct_charge_order(with_token(no_reason, &staff("monitor")))
        .await
        .expect_err("no reason");
    assert!(refused.message().contains("MON-9"), "{}", refused.message());
    let corrected = desk
        .correct_charge_order(with_token(correction, &staff("monitor")))
        .await
        .expect("corrected")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(corrected.version, 2);
    assert!(corrected.billable && corrected.flags.is_empty());
    assert_eq!(corrected.total_money, "60.60");
    assert!(corrected.recorded_by.contains("monitor"));
    let get = |version: u32| pb::GetChargeOrderRequest {
        operator_id: OP.into(),
        order_id: ORDER_1.into(),
        version,
    };
    let first = platform
        .get_charge_order(get(1))
        .await
        .expect("version 1")
        .into_inner();
    assert_eq!(first.latest_version, 2);
    let first = first.order.expect("order");
    assert_eq!(first, original, "the original, exactly as recorded");
    let latest = platform
        .get_charge_order(get(0))
        .await
        .expect("latest")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(latest.version, 2);
    // The platform resending its original report gets the order as it stands now.
    let mut broken = session(ORDER_1, "P1");
    broken.samples[2].register_kwh = "1010.000".into();
    let resent = platform
        .report_charge_order(broken)
        .await
        .expect("resent")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(resent.version, 2);
    let other = platform
        .report_charge_order(session(ORDER_1, "P1"))
        .await
        .expect_err("another session under the id");
    assert_eq!(other.code(), Code::AlreadyExists);
    // A flag the monitor verifies as normal: a version with the reason and nothing else changed.
    let mut heavy = session(ORDER_2, "P1");
    heavy.start_time = ts("2026-11-20T12:30:00+08:00");
    heavy.samples = vec![
        sample("2026-11-20T12:30:00+08:00", "2000.000"),
        sample("2026-11-20T13:30:00+08:00", "2080.000"),
    ];
    heavy.end_time = ts("2026-11-20T13:30:00+08:00");
    let flagged = platform
        .report_charge_order(heavy)
        .await
        .expect("kept")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        flagged.flags.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [pb::FlagKind::EnergyAboveRated as i32]
    );
    let verified = desk
        .correct_charge_order(with_token(
            pb::CorrectChargeOrderRequest {
                operator_id: OP.into(),
                order_id: ORDER_2.into(),
                reason: "P1 was re-rated to 90 kW on site; the ledger update is pending".into(),
                ..Default::default()
            },
            &staff("monitor"),
        ))
        .await
        .expect("verified")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(verified.version, 2);
    assert!(verified.flags.is_empty());
    assert_eq!(
        verified.verified_flags,
        [pb::FlagKind::EnergyAboveRated as i32]
    );
    assert_eq!(verified.samples, flagged.samples);
    mesh.stop().await;
}

#[tokio::test]
async fn mon_9_a_billing_complaint_flags_its_order_for_verification() {
    use chargemesh_proto::complaints::v1 as cp;
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = setup(&clock).await;
    let mut platform = metering(&mesh, "operator");
    platform
        .report_charge_order(session(ORDER_1, "P1"))
        .await
        .expect("reported");
    let handler = chargemesh::pki::mint_token(
        mesh.pki(),
        "desk",
        Some(OP),
        &["complaint_handler".to_owned()],
        3600,
    )
    .expect("token");
    let mut desk =
        cp::complaints_service_client::ComplaintsServiceClient::new(mesh.anonymous_channel());
    let complaint = desk
        .submit_complaint(with_token(
            cp::SubmitComplaintRequest {
                complaint: Some(cp::Complaint {
                    operator_id: OP.into(),
                    kind: cp::ComplaintKind::Complaint as i32,
                    channel: cp::ComplaintChannel::App as i32,
                    category: cp::ComplaintCategory::Billing as i32,
                    customer_contact: "app user 7".into(),
                    description: "charged 60.60 but my car shows 35 kWh".into(),
                    charge_order_id: ORDER_1.into(),
                    ..Default::default()
                }),
            },
            &handler,
        ))
        .await
        .expect("submitted")
        .into_inner()
        .complaint
        .expect("complaint");
    assert_eq!(
        complaint
            .links
            .iter()
            .map(|l| (l.kind.as_str(), l.id.as_str()))
            .collect::<Vec<_>>(),
        [("charge_order", ORDER_1)]
    );
    let order = platform
        .get_charge_order(pb::GetChargeOrderRequest {
            operator_id: OP.into(),
            order_id: ORDER_1.into(),
            version: 0,
        })
        .await
        .expect("order")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        order.version, 2,
        "the dispute is a new version; the original stays"
    );
    assert!(
        order
            .flags
            .iter()
            .any(|f| f.kind == pb::FlagKind::CustomerDispute as i32
                && f.detail.contains(&complaint.complaint_id))
    );
    let shown = desk
        .get_complaint(with_token(
            cp::GetComplaintRequest {
                operator_id: OP.into(),
                complaint_id: complaint.complaint_id.clone(),
            },
            &handler,
        ))
        .await
        .expect("complaint")
        .into_inner()
        .complaint
        .expect("complaint");
    assert_eq!(shown.links[0].state, "disputed");
    mesh.stop().await;
}

#[tokio::test]
async fn settle_1_impossible_sessions_are_refused_naming_the_field_and_nothing_panics() {
    let clock = ManualClock::new(t("2026-11-21T08:00:00+08:00"));
    let mesh = setup(&clock).await;
    let mut platform = metering(&mesh, "operator");
    let refused = |mut request: pb::ReportChargeOrderRequest, n: u32| {
        let mut platform = platform.clone();
        async move {
            request.order_id = format!("MA2D3K7Q0261120163000009{n:03}");
            platform
                .report_charge_order(request)
                .await
                .expect_err("refused")
        }
    };
    // A century-long session: settlement would cut it into millions of pieces.
    let mut long = session("", "P1");
    long.end_time = ts("2126-11-20T17:30:00+08:00");
    long.samples[2].sample_time = long.end_time;
    let status = refused(long, 1).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("end_time"),
        "{}",
        status.message()
    );
    // A week and a second.
    let mut week = session("", "P1");
    week.end_time = ts("2026-11-27T16:30:01+08:00");
    week.samples[2].sample_time = week.end_time;
    let status = refused(week, 2).await;
    assert!(status.message().contains("7 days"), "{}", status.message());
    // Times chrono cannot hold.
    let mut far = session("", "P1");
    far.start_time = Some(prost_types::Timestamp {
        seconds: i64::MAX,
        nanos: 0,
    });
    let status = refused(far, 3).await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("start_time"),
        "{}",
        status.message()
    );
    let mut early = session("", "P1");
    early.start_time = Some(prost_types::Timestamp {
        seconds: i64::MIN / 2,
        nanos: 0,
    });
    assert_eq!(refused(early, 4).await.code(), tonic::Code::InvalidArgument);
    // A register beyond any meter, and totals beyond any session.
    let mut register = session("", "P1");
    register.samples[2].register_kwh = "99999999999999999999999.999".into();
    let status = refused(register, 5).await;
    assert!(
        status.message().starts_with("samples[2].register_kwh"),
        "{}",
        status.message()
    );
    let mut money = session("", "P1");
    money.reported_energy_kwh = "40.000".into();
    money.reported_total_money = "79228162514264337593543950335".into();
    let status = refused(money, 6).await;
    assert!(
        status.message().starts_with("reported_total_money"),
        "{}",
        status.message()
    );
    // Too many readings.
    let mut many = session("", "P1");
    many.samples = (0..10_001)
        .map(|_| sample("2026-11-20T16:30:00+08:00", "1000.000"))
        .collect();
    assert!(refused(many, 7).await.message().starts_with("samples"));
    // Still serving.
    let kept = platform
        .report_charge_order(session(ORDER_1, "P1"))
        .await
        .expect("a real session is kept")
        .into_inner();
    assert!(kept.order.is_some());
    mesh.stop().await;
}
