//! Every kind of record the standard names is kept (REQ REC-1).

use super::*;

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
