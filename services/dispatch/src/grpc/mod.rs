//! `chargemesh.dispatch.v1.DispatchService`: translation, access and persistence; the rules are
//! in [`crate::domain`].

use chrono::NaiveDate;
use tonic::Request;

use chargemesh_kit::clock::china_date;
use chargemesh_kit::error::{Reply, reply};
use chargemesh_kit::server::principal;
use chargemesh_kit::time::{opt_timestamp, to_timestamp};
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::dispatch::v1 as pb;
use chargemesh_proto::dispatch::v1::dispatch_service_server::{
    DispatchService, DispatchServiceServer,
};

use crate::domain::crew::{Employer, Risk, StaffMember, validate_crew};
use crate::domain::daily::{
    Camera, CameraResult, Link, LinkResult, Register, findings, link_results, overdue,
};
use crate::domain::defect::{Defect, DefectClass, DefectDeadlines, NewDefect};
use crate::domain::emergency::{Drill, EmergencyPlan, readiness};
use crate::domain::incident::{Incident, NewIncident};
use crate::domain::patrol::{ItemResult, Patrol, PatrolSchedule};
use crate::domain::plan::{MaintenancePlan, maintained_within_a_year};
use crate::domain::staffing::StationStaffing;
use crate::domain::training::Training;
use crate::domain::work_order::{Channel, WorkOrder};
use crate::engine::{Engine, new_order_id};
use crate::ledger::Scope;
use crate::store::kind::{DAILY_CHECK, DOWNTIME, MONITORING, STAFFING};
use crate::store::{
    DefectFilter, DocFilter, DocKey, Document, OrderFilter, StaffRecord, from_doc, to_doc,
};
use chargemesh_kit::paging::Keyset;

mod convert;
mod emergency;
mod logbook;
mod monitoring;
mod orders;
mod patrols;
mod plans;
mod staffing;

use convert::{
    defect_to_pb, hazard_of, hazard_to_pb, incident_to_pb, level_of, order_to_pb, patrol_to_pb,
    plan_to_pb, post_of, schedule_to_pb, staff_to_pb, staffing_to_pb, trigger_of,
};

/// How many of each kind of open record (orders, defects, patrols) the monitor's view shows at
/// most, the newest; the view's counts are of those shown.
const MONITOR_VIEW: u32 = 500;

/// The most members one dispatch names (REQ FAULT-1 needs two for high-voltage work).
const MAX_CREW: usize = 50;

#[derive(Debug, Clone)]
pub struct DispatchApi {
    engine: Engine,
}

/// The operator a request is about, when the caller may act for it (see
/// [`Principal::acting_for`]).
fn operator_for(p: &Principal, requested: &str) -> Result<String, Error> {
    p.acting_for(requested, "dispatch records")
}

fn date(field: &str, value: &str) -> Result<Option<NaiveDate>, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| Error::bad_field(field, "must be a date YYYY-MM-DD"))
}

impl DispatchApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    pub fn into_server(self) -> DispatchServiceServer<Self> {
        DispatchServiceServer::new(self)
    }

    fn reply_order(&self, o: &WorkOrder) -> Option<pb::WorkOrder> {
        Some(order_to_pb(o, self.engine.clock.now()))
    }

    async fn load(
        &self,
        p: &Principal,
        operator_id: &str,
        order_id: &str,
    ) -> Result<(WorkOrder, i64), Error> {
        let op = operator_for(p, operator_id)?;
        self.engine
            .store
            .order(&op, order_id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("work order {}", order_id.trim())))
    }

    async fn save(&self, order: &WorkOrder, version: i64) -> Result<(), Error> {
        Ok(self
            .engine
            .store
            .update_order(order, version, self.engine.clock.now(), &[])
            .await?)
    }

    async fn create_staff(
        &self,
        p: &Principal,
        req: pb::CreateStaffMemberRequest,
    ) -> Result<pb::StaffMember, Error> {
        let input = req
            .staff_member
            .ok_or_else(|| Error::bad_field("staff_member", "must be set"))?;
        let operator_id = operator_for(p, &input.operator_id)?;
        let staff_id = input.staff_id.trim().to_owned();
        if staff_id.is_empty()
            || staff_id.len() > 64
            || !staff_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::bad_field(
                "staff_member.staff_id",
                "must have 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        if input.name.trim().is_empty() {
            return Err(Error::invalid("staff_member.name", "BASE-4", "is required"));
        }
        let employer = match pb::Employer::try_from(input.employer) {
            Ok(pb::Employer::Own) => Employer::Own,
            Ok(pb::Employer::Contractor) => Employer::Contractor,
            _ => {
                return Err(Error::invalid(
                    "staff_member.employer",
                    "FAULT-2",
                    "must be set",
                ));
            }
        };
        let record = StaffRecord {
            operator_id,
            member: StaffMember {
                staff_id,
                name: input.name.trim().to_owned(),
                employer,
                electrician_certificate_until: date(
                    "staff_member.electrician_certificate_until",
                    &input.electrician_certificate_until,
                )?,
                qualified_until: date("staff_member.qualified_until", &input.qualified_until)?,
                trainings: Vec::new(),
            },
        };
        self.engine
            .store
            .create_staff(&record, self.engine.clock.now())
            .await
            .map_err(|e| match e {
                chargemesh_kit::db::StoreError::Unique(_) => {
                    Error::AlreadyExists(format!("staff member {}", record.member.staff_id))
                }
                other => Error::Store(other),
            })?;
        Ok(staff_to_pb(&record, china_date(self.engine.clock.now())))
    }

    async fn create_order(
        &self,
        p: &Principal,
        req: pb::CreateWorkOrderRequest,
    ) -> Result<WorkOrder, Error> {
        let operator_id = operator_for(p, &req.operator_id)?;
        let channel = match pb::Channel::try_from(req.channel) {
            Ok(pb::Channel::Patrol) => Channel::Patrol,
            Ok(pb::Channel::Phone) => Channel::Phone,
            _ => {
                return Err(Error::invalid(
                    "channel",
                    "FAULT-4",
                    "a manual order comes from patrol staff or a phone call",
                ));
            }
        };
        if req.description.trim().is_empty() {
            return Err(Error::invalid("description", "MON-2", "is required"));
        }
        if req.pile_id.trim().is_empty() {
            return Err(Error::bad_field("pile_id", "is required"));
        }
        let facts = self
            .engine
            .station(&operator_id, req.station_id.trim())
            .await?;
        let connector = Some(req.connector_id.trim().to_owned()).filter(|c| !c.is_empty());
        let request_id = req.request_id.trim();
        let order_id = if request_id.is_empty() {
            new_order_id()
        } else {
            if request_id.len() > 64
                || !request_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Error::bad_field(
                    "request_id",
                    "is up to 64 letters, digits, '-' and '_'",
                ));
            }
            // A repeat of the request finds the order it made.
            let order_id = format!("WO-R-{request_id}");
            if let Some((existing, _)) = self.engine.store.order(&operator_id, &order_id).await? {
                return Ok(existing);
            }
            order_id
        };
        let order = WorkOrder::receive(
            order_id,
            operator_id,
            req.station_id.trim().to_owned(),
            req.pile_id.trim().to_owned(),
            connector,
            channel,
            facts.zone,
            String::new(),
            req.description.trim().to_owned(),
            self.engine.clock.now(),
        );
        if !self.engine.open(&order).await?
            && let Some((existing, _)) = self
                .engine
                .store
                .order(&order.operator_id, &order.order_id)
                .await?
        {
            // Made meanwhile by the same request, retried.
            return Ok(existing);
        }
        Ok(order)
    }

    async fn dispatch(
        &self,
        p: &Principal,
        req: pb::DispatchWorkOrderRequest,
    ) -> Result<WorkOrder, Error> {
        let (mut order, version) = self.load(p, &req.operator_id, &req.order_id).await?;
        let risk = match pb::Risk::try_from(req.risk) {
            Ok(pb::Risk::HighVoltage) => Risk::HighVoltage,
            Ok(pb::Risk::WorkAtHeight) => Risk::WorkAtHeight,
            Ok(pb::Risk::Normal) | Ok(pb::Risk::Unspecified) => Risk::Normal,
            Err(_) => return Err(Error::bad_field("risk", "is not a known risk")),
        };
        if req.crew.len() > MAX_CREW {
            return Err(Error::bad_field(
                "crew",
                format!("names at most {MAX_CREW} members"),
            ));
        }
        let mut crew = Vec::with_capacity(req.crew.len());
        for id in &req.crew {
            let (member, _) = self
                .engine
                .store
                .staff_member(&order.operator_id, id.trim())
                .await?
                .ok_or_else(|| Error::NotFound(format!("staff member {}", id.trim())))?;
            crew.push(member.member);
        }
        let now = self.engine.clock.now();
        validate_crew(&crew, risk, china_date(now))?;
        order.dispatch(crew.iter().map(|m| m.staff_id.clone()).collect(), now)?;
        self.save(&order, version).await?;
        Ok(order)
    }

    async fn register(
        &self,
        p: &Principal,
        req: pb::RegisterDefectRequest,
    ) -> Result<Defect, Error> {
        let operator_id = operator_for(p, &req.operator_id)?;
        let class = match pb::DefectClass::try_from(req.class) {
            Ok(pb::DefectClass::Critical) => DefectClass::Critical,
            Ok(pb::DefectClass::Serious) => DefectClass::Serious,
            Ok(pb::DefectClass::General) => DefectClass::General,
            _ => {
                return Err(Error::invalid(
                    "class",
                    "DEF-1",
                    "a defect is classified critical, serious or general",
                ));
            }
        };
        // The station must exist in the registry (and be the caller's).
        self.engine
            .station(&operator_id, req.station_id.trim())
            .await?;
        let defect = Defect::register(
            NewDefect {
                defect_id: format!("DF-{}", uuid::Uuid::now_v7().simple()),
                operator_id,
                station_id: req.station_id.trim().to_owned(),
                pile_id: Some(req.pile_id.trim().to_owned()).filter(|p| !p.is_empty()),
                class,
                description: req.description,
                finder: p.to_string(),
                elimination_plan: req.elimination_plan,
                maintenance_plan: Some(req.maintenance_plan),
            },
            DefectDeadlines::default(),
            self.engine.clock.now(),
        )?;
        self.engine.store.create_defect(&defect).await?;
        if matches!(defect.class, DefectClass::Critical | DefectClass::Serious) {
            // REQ DEF-2: reported at once, with the preliminary elimination plan.
            tracing::warn!(defect = %defect.defect_id, class = ?defect.class, station = %defect.station_id, "defect reported");
            let payload = to_doc(&defect)?;
            self.engine
                .announce(&defect.operator_id, crate::engine::DEFECT_EVENT, &payload)
                .await;
        }
        Ok(defect)
    }

    /// A record of the caller's operator with its version, or NOT_FOUND naming `what`.
    async fn record<D: Document>(
        &self,
        p: &Principal,
        operator_id: &str,
        id: &str,
        what: &str,
    ) -> Result<(D, i64), Error> {
        let op = operator_for(p, operator_id)?;
        self.engine
            .store
            .load::<D>(&op, id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("{what} {}", id.trim())))
    }

    async fn change_defect(
        &self,
        p: &Principal,
        operator_id: &str,
        defect_id: &str,
        change: impl FnOnce(&mut Defect, chrono::DateTime<chrono::Utc>) -> Result<(), Error>,
    ) -> Result<Defect, Error> {
        let op = operator_for(p, operator_id)?;
        let (mut defect, version) = self
            .engine
            .store
            .defect(&op, defect_id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("defect {}", defect_id.trim())))?;
        let now = self.engine.clock.now();
        change(&mut defect, now)?;
        self.engine
            .store
            .update_defect(&defect, version, now)
            .await?;
        Ok(defect)
    }

    /// REQ EQ-3: a pile with an open critical defect or an active fault order is not available.
    async fn availability(
        &self,
        p: &Principal,
        req: pb::CheckPileAvailabilityRequest,
    ) -> Result<pb::CheckPileAvailabilityResponse, Error> {
        let op = operator_for(p, &req.operator_id)?;
        let pile = req.pile_id.trim();
        let mut reasons = Vec::new();
        let filter = DefectFilter {
            pile_id: Some(pile),
            open_only: true,
            ..DefectFilter::default()
        };
        let page = Keyset::first(crate::store::INTERNAL_READ);
        for d in self.engine.store.defects(&op, filter, &page).await? {
            let d = d.item;
            if d.blocks_pile() {
                reasons.push(format!(
                    "critical defect {} is not accepted (REQ EQ-3, DEF-4)",
                    d.defect_id
                ));
            }
        }
        let filter = OrderFilter {
            pile_id: Some(pile),
            open_only: true,
            ..OrderFilter::default()
        };
        for o in self.engine.store.orders(&op, filter, &page).await? {
            reasons.push(format!(
                "repair order {} is open (REQ EQ-3)",
                o.item.order_id
            ));
        }
        Ok(pb::CheckPileAvailabilityResponse {
            available: reasons.is_empty(),
            reason: reasons.join("; "),
        })
    }

    async fn check_in(
        &self,
        p: &Principal,
        req: pb::CheckInWorkOrderRequest,
    ) -> Result<WorkOrder, Error> {
        let (mut order, version) = self.load(p, &req.operator_id, &req.order_id).await?;
        let facts = self
            .engine
            .station(&order.operator_id, &order.station_id)
            .await?;
        order.arrive(
            (req.longitude, req.latitude),
            facts.location,
            self.engine.clock.now(),
        )?;
        self.save(&order, version).await?;
        Ok(order)
    }
}

/// A day's check as recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct DailyCheck {
    station_id: String,
    day: NaiveDate,
    cameras: Vec<CameraResult>,
    links: Vec<LinkResult>,
    findings: Vec<String>,
    by: String,
}

/// A pile's suspension, from suspension to resumption (REQ MON-5).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Downtime {
    operator_id: String,
    pile_id: String,
    suspended_at: chrono::DateTime<chrono::Utc>,
    resumed_at: chrono::DateTime<chrono::Utc>,
    minutes: i64,
}

/// The trait impl: each simple RPC takes the principal the mesh layer resolved, runs its inner
/// method and maps the error once; the others are written out.
macro_rules! dispatch_service {
    ($( $name:ident($req:ty) -> $resp:ty => $inner:ident; )* { $($custom:tt)* }) => {
        #[tonic::async_trait]
        impl DispatchService for DispatchApi {
            $(
                async fn $name(&self, request: Request<$req>) -> Reply<$resp> {
                    let p = principal(&request)?;
                    reply(self.$inner(&p, request.into_inner()).await)
                }
            )*
            $($custom)*
        }
    };
}

dispatch_service! {
    record_training(pb::RecordTrainingRequest) -> pb::RecordTrainingResponse => record_training_;
    list_work_orders(pb::ListWorkOrdersRequest) -> pb::ListWorkOrdersResponse => list_work_orders_;
    resolve_work_order(pb::ResolveWorkOrderRequest) -> pb::ResolveWorkOrderResponse => resolve_work_order_;
    request_suspension(pb::RequestSuspensionRequest) -> pb::RequestSuspensionResponse => request_suspension_;
    list_defects(pb::ListDefectsRequest) -> pb::ListDefectsResponse => list_defects_;
    create_maintenance_plan(pb::CreateMaintenancePlanRequest) -> pb::CreateMaintenancePlanResponse => create_maintenance_plan_;
    update_maintenance_plan(pb::UpdateMaintenancePlanRequest) -> pb::UpdateMaintenancePlanResponse => update_maintenance_plan_;
    approve_maintenance_plan(pb::ApproveMaintenancePlanRequest) -> pb::ApproveMaintenancePlanResponse => approve_maintenance_plan_;
    record_patrol_trigger(pb::RecordPatrolTriggerRequest) -> pb::RecordPatrolTriggerResponse => record_patrol_trigger_;
    record_maintenance_completion(pb::RecordMaintenanceCompletionRequest) -> pb::RecordMaintenanceCompletionResponse => record_maintenance_completion_;
    get_maintenance_compliance(pb::GetMaintenanceComplianceRequest) -> pb::GetMaintenanceComplianceResponse => get_maintenance_compliance_;
    create_emergency_plan(pb::CreateEmergencyPlanRequest) -> pb::CreateEmergencyPlanResponse => create_emergency_plan_;
    record_drill(pb::RecordDrillRequest) -> pb::RecordDrillResponse => record_drill_;
    open_incident(pb::OpenIncidentRequest) -> pb::OpenIncidentResponse => open_incident_;
    record_incident_step(pb::RecordIncidentStepRequest) -> pb::RecordIncidentStepResponse => record_incident_step_;
    close_incident(pb::CloseIncidentRequest) -> pb::CloseIncidentResponse => close_incident_;
    list_incidents(pb::ListIncidentsRequest) -> pb::ListIncidentsResponse => list_incidents_;
    record_work_log(pb::RecordWorkLogRequest) -> pb::RecordWorkLogResponse => record_work_log_;
    list_work_logs(pb::ListWorkLogsRequest) -> pb::ListWorkLogsResponse => list_work_logs_;
    record_shift_handover(pb::RecordShiftHandoverRequest) -> pb::RecordShiftHandoverResponse => record_shift_handover_;
    list_shift_handovers(pb::ListShiftHandoversRequest) -> pb::ListShiftHandoversResponse => list_shift_handovers_;
    get_emergency_readiness(pb::GetEmergencyReadinessRequest) -> pb::GetEmergencyReadinessResponse => get_emergency_readiness_;
    request_resumption(pb::RequestResumptionRequest) -> pb::RequestResumptionResponse => request_resumption_;
    assign_post(pb::AssignPostRequest) -> pb::AssignPostResponse => assign_post_;
    get_station_staffing(pb::GetStationStaffingRequest) -> pb::GetStationStaffingResponse => get_station_staffing_;
    schedule_patrol(pb::SchedulePatrolRequest) -> pb::SchedulePatrolResponse => schedule_patrol_;
    create_patrol_schedule(pb::CreatePatrolScheduleRequest) -> pb::CreatePatrolScheduleResponse => create_patrol_schedule_;
    list_patrol_schedules(pb::ListPatrolSchedulesRequest) -> pb::ListPatrolSchedulesResponse => list_patrol_schedules_;
    stop_patrol_schedule(pb::StopPatrolScheduleRequest) -> pb::StopPatrolScheduleResponse => stop_patrol_schedule_;
    complete_patrol(pb::CompletePatrolRequest) -> pb::CompletePatrolResponse => complete_patrol_;
    register_monitoring_equipment(pb::RegisterMonitoringEquipmentRequest) -> pb::RegisterMonitoringEquipmentResponse => register_monitoring_equipment_;
    record_daily_check(pb::RecordDailyCheckRequest) -> pb::RecordDailyCheckResponse => record_daily_check_;
    get_daily_check_status(pb::GetDailyCheckStatusRequest) -> pb::GetDailyCheckStatusResponse => get_daily_check_status_;
    get_monitoring_equipment(pb::GetMonitoringEquipmentRequest) -> pb::GetMonitoringEquipmentResponse => get_monitoring_equipment_;
    get_monitor_view(pb::GetMonitorViewRequest) -> pb::GetMonitorViewResponse => get_monitor_view_;
    confirm_work_order(pb::ConfirmWorkOrderRequest) -> pb::ConfirmWorkOrderResponse => confirm_work_order_;
    {
    async fn create_staff_member(
        &self,
        request: Request<pb::CreateStaffMemberRequest>,
    ) -> Reply<pb::CreateStaffMemberResponse> {
        let p = principal(&request)?;
        reply(self.create_staff(&p, request.into_inner()).await.map(|s| {
            pb::CreateStaffMemberResponse {
                staff_member: Some(s),
            }
        }))
    }

    async fn list_staff_members(
        &self,
        request: Request<pb::ListStaffMembersRequest>,
    ) -> Reply<pb::ListStaffMembersResponse> {
        let p = principal(&request)?;
        let result = async {
            let r = request.get_ref();
            let op = operator_for(&p, &r.operator_id)?;
            let today = china_date(self.engine.clock.now());
            let page = Keyset::from_request(r.page_size, &r.page_token)?;
            // The filter is the rule's, so a page may hold fewer than it read; the token still
            // carries on after the last member read.
            let staff = page.page(self.engine.store.staff(&op, &page).await?);
            Ok(pb::ListStaffMembersResponse {
                staff_members: staff
                    .items
                    .iter()
                    .filter(|s| !r.retraining_due_only || s.member.retraining_due(today))
                    .map(|s| staff_to_pb(s, today))
                    .collect(),
                next_page_token: staff.next_page_token,
            })
        };
        reply(result.await)
    }

    async fn create_work_order(
        &self,
        request: Request<pb::CreateWorkOrderRequest>,
    ) -> Reply<pb::CreateWorkOrderResponse> {
        let p = principal(&request)?;
        reply(self.create_order(&p, request.into_inner()).await.map(|o| {
            pb::CreateWorkOrderResponse {
                work_order: self.reply_order(&o),
            }
        }))
    }

    async fn get_work_order(
        &self,
        request: Request<pb::GetWorkOrderRequest>,
    ) -> Reply<pb::GetWorkOrderResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        reply(
            self.load(&p, &r.operator_id, &r.order_id)
                .await
                .map(|(o, _)| pb::GetWorkOrderResponse {
                    work_order: self.reply_order(&o),
                }),
        )
    }

    async fn dispatch_work_order(
        &self,
        request: Request<pb::DispatchWorkOrderRequest>,
    ) -> Reply<pb::DispatchWorkOrderResponse> {
        let p = principal(&request)?;
        reply(self.dispatch(&p, request.into_inner()).await.map(|o| {
            pb::DispatchWorkOrderResponse {
                work_order: self.reply_order(&o),
            }
        }))
    }

    async fn check_in_work_order(
        &self,
        request: Request<pb::CheckInWorkOrderRequest>,
    ) -> Reply<pb::CheckInWorkOrderResponse> {
        let p = principal(&request)?;
        reply(
            self.check_in(&p, request.into_inner())
                .await
                .map(|o| pb::CheckInWorkOrderResponse {
                    work_order: self.reply_order(&o),
                }),
        )
    }

    async fn register_defect(
        &self,
        request: Request<pb::RegisterDefectRequest>,
    ) -> Reply<pb::RegisterDefectResponse> {
        let p = principal(&request)?;
        let now = self.engine.clock.now();
        reply(
            self.register(&p, request.into_inner())
                .await
                .map(|d| pb::RegisterDefectResponse {
                    defect: Some(defect_to_pb(&d, now)),
                }),
        )
    }

    async fn eliminate_defect(
        &self,
        request: Request<pb::EliminateDefectRequest>,
    ) -> Reply<pb::EliminateDefectResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = self
            .change_defect(&p, &r.operator_id, &r.defect_id, |d, now| {
                d.eliminate(&r.record, now)
            })
            .await;
        let now = self.engine.clock.now();
        reply(result.map(|d| pb::EliminateDefectResponse {
            defect: Some(defect_to_pb(&d, now)),
        }))
    }

    async fn accept_defect(
        &self,
        request: Request<pb::AcceptDefectRequest>,
    ) -> Reply<pb::AcceptDefectResponse> {
        let p = principal(&request)?;
        let by = p.to_string();
        let r = request.into_inner();
        let result = self
            .change_defect(&p, &r.operator_id, &r.defect_id, |d, now| {
                d.accept(r.passed, &by, now)
            })
            .await;
        let now = self.engine.clock.now();
        reply(result.map(|d| pb::AcceptDefectResponse {
            defect: Some(defect_to_pb(&d, now)),
        }))
    }

    async fn check_pile_availability(
        &self,
        request: Request<pb::CheckPileAvailabilityRequest>,
    ) -> Reply<pb::CheckPileAvailabilityResponse> {
        let p = principal(&request)?;
        reply(self.availability(&p, request.into_inner()).await)
    }

    async fn list_maintenance_plans(
        &self,
        request: Request<pb::ListMaintenancePlansRequest>,
    ) -> Reply<pb::ListMaintenancePlansResponse> {
        let p = principal(&request)?;
        let result = async {
            let r = request.get_ref();
            let op = operator_for(&p, &r.operator_id)?;
            let page = Keyset::from_request(r.page_size, &r.page_token)?;
            let filter = DocFilter {
                station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
                open_only: false,
            };
            let plans = page.page(
                self.engine
                    .store
                    .list::<MaintenancePlan>(&op, filter, &page)
                    .await?,
            );
            Ok(pb::ListMaintenancePlansResponse {
                plans: plans.items.iter().map(plan_to_pb).collect(),
                next_page_token: plans.next_page_token,
            })
        };
        reply(result.await)
    }

    async fn list_patrols(
        &self,
        request: Request<pb::ListPatrolsRequest>,
    ) -> Reply<pb::ListPatrolsResponse> {
        let p = principal(&request)?;
        let result = async {
            let r = request.get_ref();
            let op = operator_for(&p, &r.operator_id)?;
            let now = self.engine.clock.now();
            let page = Keyset::from_request(r.page_size, &r.page_token)?;
            let filter = DocFilter {
                station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
                open_only: r.open_only,
            };
            let patrols = page.page(self.engine.store.list::<Patrol>(&op, filter, &page).await?);
            Ok(pb::ListPatrolsResponse {
                patrols: patrols
                    .items
                    .iter()
                    .map(|pt| patrol_to_pb(pt, now))
                    .collect(),
                next_page_token: patrols.next_page_token,
            })
        };
        reply(result.await)
    }
    }
}
