//! Reporting end to end: a scripted month of telemetry, work orders, defects and complaints gives
//! the expected KPIs to the exact figure; an approved exemption changes exactly the figures of its
//! period and stations; the regulator reads its area's; the CSV export opens with the columns a
//! spreadsheet user expects; a restart that reads the journals again changes nothing.

mod common;

use std::sync::Arc;

use tonic::Code;

use chargemesh::pki::{self, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_kit::time::to_timestamp;
use chargemesh_proto::complaints::v1 as cp;
use chargemesh_proto::complaints::v1::complaints_service_client::ComplaintsServiceClient;
use chargemesh_proto::dispatch::v1 as dp;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use chargemesh_proto::kpi::v1 as kpi;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::kpi_service_client::KpiServiceClient;
use chargemesh_proto::reporting::v1 as pb;
use chargemesh_proto::reporting::v1::reporting_service_client::ReportingServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use common::{TelemetryStream, TestMesh, eventually, with_token};

const OP: &str = DEMO_OPERATOR_ID;
const MONTH_SECONDS: i64 = 31 * 24 * 3600;

/// Local time (UTC+8) on a March 2026 day.
fn local(day: u32, hour: u32, minute: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDate::from_ymd_opt(2026, 3, day)
        .and_then(|d| d.and_hms_opt(hour, minute, 0))
        .and_then(|t| {
            t.and_local_timezone(chargemesh_kit::clock::china_offset())
                .single()
        })
        .expect("valid local time")
        .to_utc()
}

fn scope(period: kpi::KpiPeriod, start: &str) -> pb::ReportScope {
    pb::ReportScope {
        operator_id: OP.into(),
        station_id: String::new(),
        period: period as i32,
        period_start: start.into(),
    }
}

struct Staff {
    channel: tonic::transport::Channel,
    pki: pki::PkiDir,
}

impl Staff {
    fn token(&self, role: &str) -> String {
        self.token_of(role, OP)
    }

    fn token_of(&self, role: &str, operator: &str) -> String {
        pki::mint_token(&self.pki, role, Some(operator), &[role.to_owned()], 3600).expect("token")
    }

    fn dispatch(&self) -> DispatchServiceClient<tonic::transport::Channel> {
        DispatchServiceClient::new(self.channel.clone())
    }

    fn reports(&self) -> ReportingServiceClient<tonic::transport::Channel> {
        ReportingServiceClient::new(self.channel.clone())
    }

    async fn report(&self, period: kpi::KpiPeriod, start: &str) -> kpi::KpiReport {
        self.reports()
            .get_kpi_report(with_token(
                pb::GetKpiReportRequest {
                    scope: Some(scope(period, start)),
                },
                &self.token("om_manager"),
            ))
            .await
            .expect("report")
            .into_inner()
            .report
            .expect("report")
    }

    async fn month(&self) -> kpi::KpiReport {
        self.report(kpi::KpiPeriod::Month, "2026-03").await
    }

    /// Takes an order through check-in at `arrive` and the on-site repair at `repair`, closed by
    /// the monitor.
    async fn work(&self, clock: &ManualClock, order: &str, arrive: i64, repair: i64) {
        let received = clock.now();
        let mut client = self.dispatch();
        client
            .dispatch_work_order(with_token(
                dp::DispatchWorkOrderRequest {
                    operator_id: OP.into(),
                    order_id: order.into(),
                    crew: vec!["alice".into(), "bob".into()],
                    risk: dp::Risk::Normal as i32,
                },
                &self.token("monitor"),
            ))
            .await
            .expect("dispatched");
        clock.set(received + chrono::Duration::minutes(arrive));
        client
            .check_in_work_order(with_token(
                dp::CheckInWorkOrderRequest {
                    operator_id: OP.into(),
                    order_id: order.into(),
                    longitude: 120.582,
                    latitude: 30.0,
                },
                &self.token("repairer"),
            ))
            .await
            .expect("checked in");
        clock.set(received + chrono::Duration::minutes(repair));
        client
            .resolve_work_order(with_token(
                dp::ResolveWorkOrderRequest {
                    operator_id: OP.into(),
                    order_id: order.into(),
                    test_record: "test charge 10 min OK".into(),
                },
                &self.token("repairer"),
            ))
            .await
            .expect("resolved");
        client
            .confirm_work_order(with_token(
                dp::ConfirmWorkOrderRequest {
                    operator_id: OP.into(),
                    order_id: order.into(),
                },
                &self.token("monitor"),
            ))
            .await
            .expect("confirmed");
    }

    /// A critical defect on P1 found now, eliminated an hour later and accepted an hour after
    /// that (REQ DEF-2..DEF-4); returns its id.
    async fn fixed_critical_defect(&self, clock: &ManualClock) -> String {
        let defect = self
            .dispatch()
            .register_defect(with_token(
                dp::RegisterDefectRequest {
                    operator_id: OP.into(),
                    station_id: "S-URB".into(),
                    pile_id: "P1".into(),
                    class: dp::DefectClass::Critical as i32,
                    description: "cracked connector".into(),
                    elimination_plan: "replace the gun today".into(),
                    maintenance_plan: String::new(),
                },
                &self.token("repairer"),
            ))
            .await
            .expect("defect")
            .into_inner()
            .defect
            .expect("defect")
            .defect_id;
        clock.advance(chrono::Duration::hours(1));
        self.dispatch()
            .eliminate_defect(with_token(
                dp::EliminateDefectRequest {
                    operator_id: OP.into(),
                    defect_id: defect.clone(),
                    record: "gun replaced".into(),
                },
                &self.token("repairer"),
            ))
            .await
            .expect("eliminated");
        clock.advance(chrono::Duration::hours(1));
        self.dispatch()
            .accept_defect(with_token(
                dp::AcceptDefectRequest {
                    operator_id: OP.into(),
                    defect_id: defect.clone(),
                    passed: true,
                },
                &self.token("om_manager"),
            ))
            .await
            .expect("accepted");
        defect
    }

    async fn complaint(&self, clock: &ManualClock, station: &str, answer_after_hours: i64) {
        let mut client = ComplaintsServiceClient::new(self.channel.clone());
        let token = self.token("complaint_handler");
        let c = client
            .submit_complaint(with_token(
                cp::SubmitComplaintRequest {
                    complaint: Some(cp::Complaint {
                        operator_id: OP.into(),
                        kind: cp::ComplaintKind::Complaint as i32,
                        channel: cp::ComplaintChannel::Phone as i32,
                        category: cp::ComplaintCategory::Queueing as i32,
                        customer_contact: "138 0000 0000".into(),
                        station_id: station.into(),
                        description: "an hour's queue".into(),
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
        clock.advance(chrono::Duration::hours(answer_after_hours));
        client
            .acknowledge_complaint(with_token(
                cp::AcknowledgeComplaintRequest {
                    operator_id: OP.into(),
                    complaint_id: c.complaint_id,
                    reply: "we are looking into it".into(),
                },
                &token,
            ))
            .await
            .expect("acknowledged");
    }
}

/// The demo operator with an urban station (S-URB, pile P1) and an outlying one (S-OUT, P2) in
/// Yuecheng district, and two staff for the crews.
async fn setup(mesh: &TestMesh) -> Staff {
    common::two_station_fleet(mesh).await;
    let staff = Staff {
        channel: mesh.anonymous_channel(),
        pki: mesh.pki().clone(),
    };
    for id in ["alice", "bob"] {
        staff
            .dispatch()
            .create_staff_member(with_token(
                dp::CreateStaffMemberRequest {
                    staff_member: Some(dp::StaffMember {
                        operator_id: OP.into(),
                        staff_id: id.into(),
                        name: id.into(),
                        employer: dp::Employer::Own as i32,
                        electrician_certificate_until: "2030-12-31".into(),
                        qualified_until: "2030-12-31".into(),
                        ..Default::default()
                    }),
                },
                &staff.token("om_manager"),
            ))
            .await
            .expect("staff member");
    }
    staff
}

fn status(
    pile: &str,
    at: chrono::DateTime<chrono::Utc>,
    seq: u64,
    state: tm::ConnectorState,
) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence: seq,
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        observe_time: Some(to_timestamp(at)),
        body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
            state: state as i32,
            fault_code: if state == tm::ConnectorState::Fault {
                "E42".into()
            } else {
                String::new()
            },
            fault_text: String::new(),
        })),
        ..Default::default()
    }
}

/// Runs March: P1 faulted 3 hours on the 5th (arrived in 50 minutes, repaired in 3 hours), a
/// phone order at S-OUT on the 10th (arrived 30 minutes late, repaired in 3 h 30), a critical
/// defect eliminated in an hour on the 12th, and two complaints, one answered late.
async fn run_march(mesh: &TestMesh, clock: &ManualClock, staff: &Staff) {
    let stream = TelemetryStream::open(mesh.channel("operator")).await;
    stream
        .send(vec![
            status("P1", local(1, 0, 0), 1, tm::ConnectorState::Idle),
            status("P2", local(1, 0, 0), 2, tm::ConnectorState::Idle),
        ])
        .await;
    clock.set(local(5, 8, 0));
    stream
        .send(vec![status(
            "P1",
            local(5, 8, 0),
            3,
            tm::ConnectorState::Fault,
        )])
        .await;
    let monitor = staff.token("monitor");
    let automatic = eventually(
        async || {
            staff
                .dispatch()
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
                .work_orders
        },
        |orders| !orders.is_empty(),
    )
    .await;
    staff.work(clock, &automatic[0].order_id, 50, 180).await;
    stream
        .send(vec![status(
            "P1",
            local(5, 11, 0),
            4,
            tm::ConnectorState::Idle,
        )])
        .await;

    clock.set(local(10, 8, 0));
    let phone = staff
        .dispatch()
        .create_work_order(with_token(
            dp::CreateWorkOrderRequest {
                operator_id: OP.into(),
                station_id: "S-OUT".into(),
                pile_id: "P2".into(),
                connector_id: "P2-1".into(),
                channel: dp::Channel::Phone as i32,
                description: "customer reports the screen is dark".into(),
                request_id: String::new(),
            },
            &monitor,
        ))
        .await
        .expect("order")
        .into_inner()
        .work_order
        .expect("order");
    staff.work(clock, &phone.order_id, 150, 210).await;

    clock.set(local(12, 9, 0));
    staff.fixed_critical_defect(clock).await;

    clock.set(local(15, 9, 0));
    staff.complaint(clock, "S-URB", 2).await;
    clock.set(local(20, 9, 0));
    staff.complaint(clock, "S-OUT", 30).await;
    clock.set(local(31, 23, 0) + chrono::Duration::hours(2));
}

fn row<'a>(report: &'a kpi::KpiReport, station: &str) -> &'a kpi::Kpis {
    report
        .rows
        .iter()
        .find(|r| r.station_id == station)
        .and_then(|r| r.kpis.as_ref())
        .unwrap_or_else(|| panic!("no row for {station:?}"))
}

fn seconds(d: &Option<prost_types::Duration>) -> Option<i64> {
    d.as_ref().map(|d| d.seconds)
}

fn counts(k: &kpi::Kpis) -> (u32, u32, u32, u32, u32, u32) {
    (
        k.faults,
        k.arrivals_judged,
        k.arrivals_on_time,
        k.repairs_judged,
        k.repairs_on_time,
        k.exempted_work_orders,
    )
}

async fn mesh_at(clock: &ManualClock) -> TestMesh {
    let mesh_clock = clock.clone();
    TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
        opts.poll_every(20);
        opts.config.telemetry.settings.offline_after_seconds = 90 * 24 * 3600;
    })
    .await
}

#[tokio::test]
async fn mon_1_fault_5_def_5_cmp_1_a_scripted_month_gives_the_kpis_to_the_exact_figure_and_mon_9_exemptions_change_only_theirs()
 {
    let clock = ManualClock::new(local(1, 0, 0));
    let mut mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    run_march(&mesh, &clock, &staff).await;
    let month = eventually(
        async || staff.month().await,
        |r| {
            r.rows.len() == 3 && {
                let all = row(r, "");
                all.faults == 2
                    && all.complaints == 2
                    && all.defects.first().is_some_and(|d| d.closed == 1)
                    && all.observed_seconds == 2 * MONTH_SECONDS
            }
        },
    )
    .await;
    let keys: Vec<_> = month.rows.iter().map(|r| r.station_id.as_str()).collect();
    assert_eq!(keys, ["S-OUT", "S-URB", ""]);
    let urban = row(&month, "S-URB");
    assert_eq!(urban.observed_seconds, MONTH_SECONDS);
    assert_eq!(urban.available_seconds, MONTH_SECONDS - 3 * 3600);
    assert_eq!(counts(urban), (1, 1, 1, 1, 1, 0));
    assert_eq!(seconds(&urban.mean_time_to_arrive), Some(50 * 60));
    assert_eq!(seconds(&urban.mean_time_to_repair), Some(3 * 3600));
    let critical = &urban.defects[0];
    assert_eq!(
        (
            critical.defect_class.as_str(),
            critical.opened,
            critical.closed,
            critical.closed_on_time
        ),
        ("critical", 1, 1, 1)
    );
    assert_eq!(
        (
            urban.complaints,
            urban.responses_judged,
            urban.responses_on_time
        ),
        (1, 1, 1)
    );
    let outlying = row(&month, "S-OUT");
    assert_eq!(outlying.available_seconds, MONTH_SECONDS);
    assert_eq!(counts(outlying), (1, 1, 0, 1, 1, 0));
    assert_eq!(seconds(&outlying.mean_time_to_arrive), Some(150 * 60));
    assert_eq!((outlying.complaints, outlying.responses_on_time), (1, 0));
    let all = row(&month, "");
    assert_eq!(all.available_seconds, 2 * MONTH_SECONDS - 3 * 3600);
    assert_eq!(counts(all), (2, 2, 1, 2, 2, 0));
    assert_eq!(seconds(&all.mean_time_to_arrive), Some(100 * 60));
    assert_eq!(seconds(&all.mean_time_to_repair), Some(195 * 60));
    assert!((all.arrival_on_time_share - 0.5).abs() < 1e-12);
    assert!((all.response_on_time_share - 0.5).abs() < 1e-12);
    assert_eq!((all.sessions, all.energy_kwh.as_str()), (0, "0.000"));
    assert!(month.exemptions_applied.is_empty());
    let day_5 = staff.report(kpi::KpiPeriod::Day, "2026-03-05").await;
    assert_eq!(row(&day_5, "S-URB").available_seconds, 21 * 3600);

    // REQ MON-9: a platform failure at S-OUT on the 10th, 07:00 to 12:00, declared and approved.
    let mut reports = staff.reports();
    let declaration = |evidence: &[&str]| pb::DeclareExemptionRequest {
        exemption: Some(pb::Exemption {
            operator_id: OP.into(),
            station_ids: vec!["S-OUT".into()],
            start_time: Some(to_timestamp(local(10, 7, 0))),
            end_time: Some(to_timestamp(local(10, 12, 0))),
            cause: pb::ExemptionCause::PlatformFailure as i32,
            evidence_refs: evidence.iter().map(|e| (*e).to_owned()).collect(),
            ..Default::default()
        }),
    };
    let no_evidence = reports
        .declare_exemption(with_token(declaration(&[]), &staff.token("monitor")))
        .await
        .expect_err("no evidence");
    assert_eq!(no_evidence.code(), Code::InvalidArgument);
    assert!(
        no_evidence.message().contains("exemption.evidence_refs")
            && no_evidence.message().contains("MON-9"),
        "{}",
        no_evidence.message()
    );
    let declared = reports
        .declare_exemption(with_token(
            declaration(&["incident-report-0310.pdf"]),
            &staff.token("monitor"),
        ))
        .await
        .expect("declared")
        .into_inner()
        .exemption
        .expect("exemption");
    assert_eq!(declared.state, pb::ExemptionState::Declared as i32);
    // Declared is not approved: nothing changes yet.
    let pending = staff.month().await;
    assert_eq!(pending.rows, month.rows);
    let decide = || pb::DecideExemptionRequest {
        operator_id: OP.into(),
        exemption_id: declared.exemption_id.clone(),
        approve: true,
        note: "platform outage log checked".into(),
    };
    let monitor_may_not = reports
        .decide_exemption(with_token(decide(), &staff.token("monitor")))
        .await
        .expect_err("a manager decides");
    assert_eq!(monitor_may_not.code(), Code::PermissionDenied);
    reports
        .decide_exemption(with_token(decide(), &staff.token("om_manager")))
        .await
        .expect("approved");
    let twice = reports
        .decide_exemption(with_token(decide(), &staff.token("om_manager")))
        .await
        .expect_err("decided once");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let exempted = staff.month().await;
    assert_eq!(exempted.exemptions_applied.len(), 1);
    assert_eq!(
        exempted.exemptions_applied[0].exemption_id,
        declared.exemption_id
    );
    assert_eq!(
        row(&exempted, "S-URB"),
        urban,
        "another station is untouched"
    );
    let out = row(&exempted, "S-OUT");
    assert_eq!(out.observed_seconds, MONTH_SECONDS - 5 * 3600);
    assert_eq!(out.exempted_seconds, 5 * 3600);
    assert_eq!(counts(out), (1, 0, 0, 0, 0, 1));
    assert_eq!(seconds(&out.mean_time_to_arrive), None);
    assert_eq!(
        (out.complaints, out.responses_on_time),
        (1, 0),
        "complaints are not the exemption's"
    );
    let day_5_after = staff.report(kpi::KpiPeriod::Day, "2026-03-05").await;
    assert_eq!(day_5_after.rows, day_5.rows, "another period is untouched");
    assert!(day_5_after.exemptions_applied.is_empty());

    // The regulator of Shaoxing reads the same figures for its area; Shanghai is not its area.
    let mut regulator = KpiServiceClient::new(mesh.channel_as(&Principal::Regulator {
        area_code: "330600".into(),
    }));
    let area = regulator
        .get_kpi_report(reg::GetKpiReportRequest {
            area_code: String::new(),
            period: kpi::KpiPeriod::Month as i32,
            period_start: "2026-03".into(),
        })
        .await
        .expect("area report")
        .into_inner()
        .report
        .expect("report");
    assert_eq!(area.rows.len(), 3);
    assert_eq!(row(&area, ""), row(&exempted, ""));
    assert_eq!(area.rows[0].operator_id, OP);
    let outside = regulator
        .get_kpi_report(reg::GetKpiReportRequest {
            area_code: "310000".into(),
            period: kpi::KpiPeriod::Month as i32,
            period_start: "2026-03".into(),
        })
        .await
        .expect_err("outside its area");
    assert_eq!(outside.code(), Code::PermissionDenied);

    // The CSV a manager downloads.
    let export = reports
        .export_report(with_token(
            pb::ExportReportRequest {
                kind: pb::ReportKind::Kpi as i32,
                format: pb::ExportFormat::Csv as i32,
                scope: Some(scope(kpi::KpiPeriod::Month, "2026-03")),
            },
            &staff.token("om_manager"),
        ))
        .await
        .expect("export")
        .into_inner();
    assert_eq!(export.content_type, "text/csv; charset=utf-8");
    assert_eq!(export.file_name, format!("kpi-2026-03-{OP}.csv"));
    let csv = String::from_utf8(export.content).expect("utf-8");
    let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert!(
        lines[0].starts_with(
            "operator_id,station_id,area_code,period,availability_pct,observed_hours,available_hours"
        ),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines.len(),
        5,
        "header, two stations, the total and the final line end"
    );
    let header: Vec<&str> = lines[0].split(',').collect();
    let total: Vec<&str> = lines[3].split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).expect("column");
    assert_eq!(total[column("station_id")], "ALL");
    assert_eq!(total[column("faults")], "2");
    assert_eq!(total[column("arrivals_on_time")], "1");
    assert_eq!(total[column("arrival_on_time_pct")], "100.00");
    assert_eq!(total[column("response_within_24h_pct")], "50.00");

    // Bad input is named; another operator learns nothing.
    let bad = reports
        .get_kpi_report(with_token(
            pb::GetKpiReportRequest {
                scope: Some(scope(kpi::KpiPeriod::Month, "2026-13")),
            },
            &staff.token("om_manager"),
        ))
        .await
        .expect_err("bad month");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("scope.period_start"),
        "{}",
        bad.message()
    );
    let outsider = reports
        .get_kpi_report(with_token(
            pb::GetKpiReportRequest {
                scope: Some(scope(kpi::KpiPeriod::Month, "2026-03")),
            },
            &staff.token_of("om_manager", "MA2BCDEF3"),
        ))
        .await
        .expect_err("hidden");
    assert_eq!(outsider.code(), Code::NotFound);

    // A restart reads the journals again from behind its positions: not one figure moves.
    mesh.restart().await;
    let staff = Staff {
        channel: mesh.anonymous_channel(),
        pki: mesh.pki().clone(),
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let replayed = staff.month().await;
    assert_eq!(replayed.rows, exempted.rows);
    assert_eq!(replayed.exemptions_applied, exempted.exemptions_applied);
    mesh.stop().await;
}

/// Local (UTC+8) midnight of a 2026 day.
fn day(month: u32, day: u32) -> chrono::DateTime<chrono::Utc> {
    let date = chrono::NaiveDate::from_ymd_opt(2026, month, day).expect("date");
    chargemesh_kit::clock::china_day(date).0
}

impl Staff {
    async fn drill(&self, clock: &ManualClock, station: &str, month: u32, on: u32) {
        clock.set(day(month, on) + chrono::Duration::hours(10));
        self.dispatch()
            .record_drill(with_token(
                dp::RecordDrillRequest {
                    operator_id: OP.into(),
                    station_id: station.into(),
                    hazard: dp::Hazard::BatteryFire as i32,
                    held_on: format!("2026-{month:02}-{on:02}"),
                    participants: vec!["alice".into(), "bob".into()],
                    record: "evacuation and extinguisher drill".into(),
                },
                &self.token("safety_officer"),
            ))
            .await
            .expect("drill");
    }

    async fn phone_order(
        &self,
        clock: &ManualClock,
        station: &str,
        pile: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> String {
        clock.set(at);
        common::phone_work_order(self.channel.clone(), &self.token("monitor"), station, pile)
            .await
            .order_id
    }
}

#[tokio::test]
async fn eval_1_fault_8_def_5_the_self_evaluation_lists_a_late_arrival_and_an_overdue_drill_and_nothing_on_time()
 {
    let clock = ManualClock::new(day(1, 2));
    let mesh = mesh_at(&clock).await;
    let staff = setup(&mesh).await;
    // Drills: S-URB goes from January to September without one (overdue from mid-July); S-OUT
    // drills in January and June, on time.
    staff.drill(&clock, "S-URB", 1, 15).await;
    staff.drill(&clock, "S-OUT", 1, 15).await;
    // On time: the urban crew arrives in 50 minutes and repairs in 3 hours.
    let on_time = staff
        .phone_order(
            &clock,
            "S-URB",
            "P1",
            day(3, 5) + chrono::Duration::hours(8),
        )
        .await;
    staff.work(&clock, &on_time, 50, 180).await;
    // Late: the outlying crew arrives after 2 h 30, half an hour past its 2-hour limit.
    let late = staff
        .phone_order(
            &clock,
            "S-OUT",
            "P2",
            day(4, 10) + chrono::Duration::hours(8),
        )
        .await;
    staff.work(&clock, &late, 150, 210).await;
    // A critical defect eliminated and accepted within its day.
    clock.set(day(5, 12) + chrono::Duration::hours(9));
    let defect = staff.fixed_critical_defect(&clock).await;
    staff.drill(&clock, "S-OUT", 6, 20).await;
    staff.drill(&clock, "S-URB", 9, 20).await;
    clock.set(day(10, 1));

    let mut reports = staff.reports();
    let manager = staff.token("om_manager");
    let evaluation = eventually(
        async || {
            reports
                .clone()
                .get_self_evaluation(with_token(
                    pb::GetSelfEvaluationRequest {
                        operator_id: OP.into(),
                        year: "2026".into(),
                    },
                    &manager,
                ))
                .await
                .expect("self-evaluation")
                .into_inner()
                .evaluation
                .expect("evaluation")
        },
        // Until the last drill has been read from dispatch's journal.
        |e| {
            e.non_conformities
                .iter()
                .any(|n| n.rule == "EMERG-2" && n.detail.contains("days late"))
        },
    )
    .await;
    let listed: Vec<_> = evaluation
        .non_conformities
        .iter()
        .map(|n| (n.rule.as_str(), n.station_id.as_str(), n.record_id.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("FAULT-5", "S-OUT", late.as_str()),
            ("EMERG-2", "S-URB", listed[1].2)
        ],
        "{:?}",
        evaluation.non_conformities
    );
    assert_eq!(evaluation.non_conformities[1].record_kind, "drill");
    assert!(
        evaluation.non_conformities[0].detail.contains("30 min"),
        "{}",
        evaluation.non_conformities[0].detail
    );
    assert!(
        !evaluation.year_complete,
        "maintenance is judged at the year's end"
    );
    let year_total = evaluation
        .kpis
        .last()
        .and_then(|r| r.kpis.as_ref())
        .expect("kpis");
    assert_eq!((year_total.faults, year_total.arrivals_on_time), (2, 1));

    // REQ FAULT-8: April's fault analysis shows the late order.
    let april = reports
        .get_fault_analysis(with_token(
            pb::GetFaultAnalysisRequest {
                scope: Some(scope(kpi::KpiPeriod::Month, "2026-04")),
            },
            &manager,
        ))
        .await
        .expect("fault analysis")
        .into_inner()
        .analysis
        .expect("analysis");
    assert_eq!(april.orders.len(), 1);
    assert_eq!(
        (
            april.orders[0].order_id.as_str(),
            april.orders[0].arrival_late,
            april.orders[0].repair_late
        ),
        (late.as_str(), true, false)
    );
    assert_eq!(april.by_pile.len(), 1);
    // REQ DEF-5: May's defect statistics.
    let may = reports
        .get_defect_statistics(with_token(
            pb::GetDefectStatisticsRequest {
                scope: Some(scope(kpi::KpiPeriod::Month, "2026-05")),
            },
            &manager,
        ))
        .await
        .expect("defect statistics")
        .into_inner()
        .statistics
        .expect("statistics");
    assert_eq!(may.defects.len(), 1);
    assert_eq!(may.defects[0].defect_id, defect);
    assert!(!may.defects[0].overdue);
    assert_eq!(
        may.by_station
            .iter()
            .map(|s| (s.station_id.as_str(), s.opened, s.closed, s.open_at_end))
            .collect::<Vec<_>>(),
        [("S-URB", 1, 1, 0)]
    );
    let critical = &may.by_class[0];
    assert_eq!(
        (critical.opened, critical.closed, critical.closed_on_time),
        (1, 1, 1)
    );

    // The page management is handed.
    let page = reports
        .export_report(with_token(
            pb::ExportReportRequest {
                kind: pb::ReportKind::SelfEvaluation as i32,
                format: pb::ExportFormat::Html as i32,
                scope: Some(scope(kpi::KpiPeriod::Year, "2026")),
            },
            &manager,
        ))
        .await
        .expect("export")
        .into_inner();
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert_eq!(page.file_name, format!("self-evaluation-2026-{OP}.html"));
    let html = String::from_utf8(page.content).expect("utf-8");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("Non-conformity report"));
    assert!(html.contains(&late) && html.contains("EMERG-2"));
    assert!(
        !html.contains(&on_time),
        "an order on time is not a non-conformity"
    );
    let csv = reports
        .export_report(with_token(
            pb::ExportReportRequest {
                kind: pb::ReportKind::FaultAnalysis as i32,
                format: pb::ExportFormat::Csv as i32,
                scope: Some(scope(kpi::KpiPeriod::Year, "2026")),
            },
            &manager,
        ))
        .await
        .expect("export")
        .into_inner();
    let text = String::from_utf8(csv.content).expect("utf-8");
    assert!(
        text.trim_start_matches('\u{feff}')
            .starts_with("order_id,station_id,pile_id")
    );
    assert_eq!(text.matches("\r\n").count(), 3, "a header and two orders");
    let unknown = reports
        .export_report(with_token(
            pb::ExportReportRequest {
                kind: pb::ReportKind::Kpi as i32,
                format: pb::ExportFormat::Unspecified as i32,
                scope: Some(scope(kpi::KpiPeriod::Year, "2026")),
            },
            &manager,
        ))
        .await
        .expect_err("no format");
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert!(
        unknown.message().contains("format"),
        "{}",
        unknown.message()
    );
    mesh.stop().await;
}

#[tokio::test]
async fn reporting_checks_the_callers_scope_itself_not_only_the_gateways_policy() {
    let mesh = TestMesh::start().await;
    // As if the gateway's policy let these through: reporting decides on its own.
    let channel = mesh.direct_channel("reporting", &mesh.pki_files("gateway"));
    let mut reports = ReportingServiceClient::new(channel.clone());
    let mut kpis = KpiServiceClient::new(channel);
    let operator = Principal::Operator {
        operator_id: DEMO_OPERATOR_ID.into(),
    };
    let operators_admin = Principal::Staff {
        subject: "mallory".into(),
        operator_id: Some(DEMO_OPERATOR_ID.into()),
        roles: vec!["platform_admin".into()],
    };
    for who in [&operator, &operators_admin] {
        let parked = reports
            .list_parked_pushes(chargemesh_kit::identity::request_as(
                who,
                pb::ListParkedPushesRequest::default(),
            ))
            .await
            .expect_err("what was pushed to every peer");
        assert_eq!(parked.code(), Code::PermissionDenied, "{who}");
        let kpi = kpis
            .get_kpi_report(chargemesh_kit::identity::request_as(
                who,
                reg::GetKpiReportRequest {
                    area_code: "330600".into(),
                    period: kpi::KpiPeriod::Month as i32,
                    ..Default::default()
                },
            ))
            .await
            .expect_err("the regulator's view of an area");
        assert_eq!(kpi.code(), Code::PermissionDenied, "{who}");
    }
    let platform = Principal::Staff {
        subject: "root".into(),
        operator_id: None,
        roles: vec!["platform_admin".into()],
    };
    reports
        .list_parked_pushes(chargemesh_kit::identity::request_as(
            &platform,
            pb::ListParkedPushesRequest::default(),
        ))
        .await
        .expect("the platform's administrator");
    mesh.stop().await;
}
