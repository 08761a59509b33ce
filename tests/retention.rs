//! Record retention end to end through the gateway (REQ REC-3, FAULT-9): a record is kept 3
//! years from its last change, an important one for good; the purge removes only what is past
//! retention.

mod common;

use std::sync::Arc;

use tonic::Code;

use chargemesh::demo;
use chargemesh::pki::{self, DEMO_CREDIT_CODE, DEMO_OPERATOR_ID};
use chargemesh_kit::clock::ManualClock;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::complaints::v1 as cp;
use chargemesh_proto::complaints::v1::complaints_records_service_client::ComplaintsRecordsServiceClient;
use chargemesh_proto::complaints::v1::complaints_service_client::ComplaintsServiceClient;
use chargemesh_proto::dispatch::v1 as dp;
use chargemesh_proto::dispatch::v1::dispatch_records_service_client::DispatchRecordsServiceClient;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use chargemesh_proto::reporting::v1 as rp;
use chargemesh_proto::reporting::v1::reporting_records_service_client::ReportingRecordsServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_records_service_client::TelemetryRecordsServiceClient;
use common::{TelemetryStream, TestMesh, eventually, with_token};

const OP: &str = DEMO_OPERATOR_ID;

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("time")
        .to_utc()
}

#[tokio::test]
async fn rec_3_and_fault_9_records_are_kept_3_years_important_ones_for_good_and_the_purge_removes_only_the_expired()
 {
    let clock = ManualClock::new(at("2026-01-10T02:00:00Z"));
    let mesh_clock = clock.clone();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.poll_every(20);
        opts.config.telemetry.settings.offline_after_seconds = 10 * 365 * 24 * 3600;
    })
    .await;
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
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
    let token = |role: &str| {
        pki::mint_token(mesh.pki(), role, Some(OP), &[role.to_owned()], 3600).expect("token")
    };
    let admin = pki::mint_token(
        mesh.pki(),
        "admin",
        None,
        &["platform_admin".to_owned()],
        3600,
    )
    .expect("token");
    let channel = mesh.anonymous_channel();
    // Status reports of 2026, which asset logs and reporting copies.
    let stream = TelemetryStream::open(mesh.channel("operator")).await;
    stream
        .send(vec![tm::TelemetryMessage {
            sequence: 1,
            pile_id: "P1".into(),
            connector_id: "P1-1".into(),
            observe_time: Some(chargemesh_kit::time::to_timestamp(at(
                "2026-01-10T02:00:00Z",
            ))),
            body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                state: tm::ConnectorState::Idle as i32,
                ..Default::default()
            })),
            ..Default::default()
        }])
        .await;
    let history = || {
        let mut client =
            chargemesh_proto::reporting::v1::reporting_service_client::ReportingServiceClient::new(
                channel.clone(),
            );
        let monitor = token("monitor");
        async move {
            client
                .list_status_history(with_token(
                    rp::ListStatusHistoryRequest {
                        operator_id: OP.into(),
                        station_id: "S1".into(),
                        ..Default::default()
                    },
                    &monitor,
                ))
                .await
                .expect("history")
                .into_inner()
                .changes
                .len()
        }
    };
    assert_eq!(
        eventually(history, |n| *n == 1).await,
        1,
        "reporting copied the change"
    );
    // A drill record: no clock runs on it, so it last changed the day it was made.
    let drill = DispatchServiceClient::new(channel.clone())
        .record_drill(with_token(
            dp::RecordDrillRequest {
                operator_id: OP.into(),
                station_id: "S1".into(),
                hazard: dp::Hazard::BatteryFire as i32,
                held_on: "2026-01-10".into(),
                participants: vec!["alice".into(), "bob".into()],
                record: "evacuation and extinguisher drill".into(),
            },
            &token("safety_officer"),
        ))
        .await
        .expect("drill")
        .into_inner()
        .drill_id;
    let last_drill = || {
        let mut client = DispatchServiceClient::new(channel.clone());
        let monitor = token("monitor");
        async move {
            client
                .get_emergency_readiness(with_token(
                    dp::GetEmergencyReadinessRequest {
                        operator_id: OP.into(),
                        station_id: "S1".into(),
                    },
                    &monitor,
                ))
                .await
                .expect("readiness")
                .into_inner()
                .last_drill_on
        }
    };
    assert_eq!(last_drill().await, "2026-01-10");
    let complaint = ComplaintsServiceClient::new(channel.clone())
        .submit_complaint(with_token(
            cp::SubmitComplaintRequest {
                complaint: Some(cp::Complaint {
                    operator_id: OP.into(),
                    kind: cp::ComplaintKind::Complaint as i32,
                    channel: cp::ComplaintChannel::Phone as i32,
                    category: cp::ComplaintCategory::FacilitySafety as i32,
                    customer_contact: "138 0000 0000".into(),
                    station_id: "S1".into(),
                    description: "sparks from the connector".into(),
                    ..Default::default()
                }),
            },
            &token("complaint_handler"),
        ))
        .await
        .expect("complaint")
        .into_inner()
        .complaint
        .expect("complaint");

    // Two years on, the drill record may not be deleted.
    clock.set(at("2028-01-10T02:00:00Z"));
    let mut dispatch_records = DispatchRecordsServiceClient::new(channel.clone());
    let delete_order = || dp::DeleteRecordRequest {
        operator_id: OP.into(),
        kind: "drill".into(),
        record_id: drill.clone(),
    };
    let early = dispatch_records
        .delete_record(with_token(delete_order(), &token("om_manager")))
        .await
        .expect_err("kept 3 years");
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(
        early.message().contains("REC-3") && early.message().contains("2029-01-10"),
        "{}",
        early.message()
    );
    let unknown = dispatch_records
        .delete_record(with_token(
            dp::DeleteRecordRequest {
                kind: "invoice".into(),
                ..delete_order()
            },
            &token("om_manager"),
        ))
        .await
        .expect_err("unknown kind");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("work_order"),
        "{}",
        unknown.message()
    );
    let repairer = dispatch_records
        .delete_record(with_token(delete_order(), &token("repairer")))
        .await
        .expect_err("management deletes");
    assert_eq!(repairer.code(), Code::PermissionDenied);

    // The safety complaint is important: kept for good.
    let mut complaint_records = ComplaintsRecordsServiceClient::new(channel.clone());
    let mark = |reason: &str| cp::MarkRecordImportantRequest {
        operator_id: OP.into(),
        kind: "complaint".into(),
        record_id: complaint.complaint_id.clone(),
        reason: reason.into(),
    };
    let no_reason = complaint_records
        .mark_record_important(with_token(mark(" "), &token("om_manager")))
        .await
        .expect_err("a reason");
    assert!(
        no_reason.message().contains("FAULT-9"),
        "{}",
        no_reason.message()
    );
    complaint_records
        .mark_record_important(with_token(
            mark("a safety incident under investigation"),
            &token("om_manager"),
        ))
        .await
        .expect("marked");

    // Past three years: the purge removes the drill record and nothing important.
    clock.set(at("2029-02-01T02:00:00Z"));
    let dry = dispatch_records
        .purge_expired_records(with_token(
            dp::PurgeExpiredRecordsRequest { dry_run: true },
            &admin,
        ))
        .await
        .expect("dry run")
        .into_inner()
        .removed;
    assert!(
        dry.iter()
            .any(|r| r.kind == "drill" && r.record_id == drill),
        "{dry:?}"
    );
    assert_eq!(
        last_drill().await,
        "2026-01-10",
        "a dry run removes nothing"
    );
    let not_admin = dispatch_records
        .purge_expired_records(with_token(
            dp::PurgeExpiredRecordsRequest { dry_run: false },
            &token("om_manager"),
        ))
        .await
        .expect_err("the platform purges");
    assert_eq!(not_admin.code(), Code::PermissionDenied);
    let purged = dispatch_records
        .purge_expired_records(with_token(
            dp::PurgeExpiredRecordsRequest { dry_run: false },
            &admin,
        ))
        .await
        .expect("purged")
        .into_inner()
        .removed;
    assert_eq!(purged, dry);
    assert_eq!(last_drill().await, "", "the drill record is gone");
    let complaints_purged = complaint_records
        .purge_expired_records(with_token(
            cp::PurgeExpiredRecordsRequest { dry_run: false },
            &admin,
        ))
        .await
        .expect("purged")
        .into_inner()
        .removed;
    assert!(
        complaints_purged
            .iter()
            .all(|r| r.record_id != complaint.complaint_id),
        "{complaints_purged:?}"
    );
    let kept = complaint_records
        .delete_record(with_token(
            cp::DeleteRecordRequest {
                operator_id: OP.into(),
                kind: "complaint".into(),
                record_id: complaint.complaint_id.clone(),
            },
            &token("om_manager"),
        ))
        .await
        .expect_err("important");
    assert_eq!(kept.code(), Code::FailedPrecondition);
    assert!(kept.message().contains("FAULT-9"), "{}", kept.message());
    // Logs go by age: the telemetry and status changes of 2026, and reporting's copy.
    let telemetry_records = TelemetryRecordsServiceClient::new(channel.clone());
    let entry_by_entry = telemetry_records
        .clone()
        .delete_record(with_token(
            tm::DeleteRecordRequest {
                operator_id: OP.into(),
                kind: "telemetry".into(),
                record_id: "1".into(),
            },
            &token("om_manager"),
        ))
        .await
        .expect_err("a log goes by age");
    assert_eq!(entry_by_entry.code(), Code::FailedPrecondition);
    assert!(
        entry_by_entry.message().contains("REC-3"),
        "{}",
        entry_by_entry.message()
    );
    let purge_telemetry = |dry_run| {
        let mut client = telemetry_records.clone();
        let admin = admin.clone();
        async move {
            client
                .purge_expired_records(with_token(
                    tm::PurgeExpiredRecordsRequest { dry_run },
                    &admin,
                ))
                .await
                .expect("purge")
                .into_inner()
                .removed
        }
    };
    let logs = purge_telemetry(false).await;
    let kinds: Vec<&str> = logs.iter().map(|r| r.kind.as_str()).collect();
    assert!(
        kinds.contains(&"telemetry") && kinds.contains(&"status_change"),
        "{logs:?}"
    );
    assert!(
        purge_telemetry(true)
            .await
            .iter()
            .all(|r| r.kind != "telemetry" && r.kind != "status_change"),
        "nothing older is left"
    );
    let reporting_purged = ReportingRecordsServiceClient::new(channel.clone())
        .purge_expired_records(with_token(
            rp::PurgeExpiredRecordsRequest { dry_run: false },
            &admin,
        ))
        .await
        .expect("purge")
        .into_inner()
        .removed;
    assert!(
        reporting_purged.iter().any(|r| r.kind == "status_history"),
        "{reporting_purged:?}"
    );
    assert_eq!(history().await, 0, "reporting's copy went with it");

    // Another operator's manager learns nothing of it.
    let outsider = pki::mint_token(
        mesh.pki(),
        "om_manager",
        Some("MA2BCDEF3"),
        &["om_manager".to_owned()],
        3600,
    )
    .expect("token");
    let hidden = complaint_records
        .mark_record_important(with_token(mark("mine now"), &outsider))
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    mesh.stop().await;
}
