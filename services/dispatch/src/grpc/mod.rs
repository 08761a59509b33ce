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
use crate::domain::defect::{Defect, DefectClass, DefectDeadlines, DefectState, NewDefect};
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
use crate::store::{Document, StaffRecord, from_doc, to_doc};

mod convert;

use convert::{
    defect_to_pb, hazard_of, hazard_to_pb, incident_to_pb, level_of, order_to_pb, patrol_to_pb,
    plan_to_pb, post_of, schedule_to_pb, staff_to_pb, staffing_to_pb, trigger_of,
};

#[derive(Debug, Clone)]
pub struct DispatchApi {
    engine: Engine,
}

/// The operator a request is about, when the caller may act for it; others' records are absent.
fn operator_for(p: &Principal, requested: &str) -> Result<String, Error> {
    let requested = requested.trim();
    let own = p.operator_id();
    let operator = if requested.is_empty() {
        own.ok_or_else(|| Error::bad_field("operator_id", "is required"))?
            .to_owned()
    } else {
        requested.to_owned()
    };
    match p {
        Principal::Service { .. } => Ok(operator),
        _ if own == Some(operator.as_str()) => Ok(operator),
        _ => Err(Error::NotFound(format!(
            "operator {operator}'s dispatch records"
        ))),
    }
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
            .update_order(order, version, self.engine.clock.now())
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
        let order = WorkOrder::receive(
            new_order_id(),
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
        self.engine.open(&order).await?;
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
        let staff = self.engine.store.staff(&order.operator_id).await?;
        let mut crew = Vec::with_capacity(req.crew.len());
        for id in &req.crew {
            let member = staff
                .iter()
                .find(|s| s.member.staff_id == id.trim())
                .ok_or_else(|| Error::NotFound(format!("staff member {}", id.trim())))?;
            crew.push(member.member.clone());
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
        for d in self.engine.store.defects(&op, Some(pile)).await? {
            if d.blocks_pile() {
                reasons.push(format!(
                    "critical defect {} is not accepted (REQ EQ-3, DEF-4)",
                    d.defect_id
                ));
            }
        }
        for o in self.engine.store.orders(&op, None, true).await? {
            if o.pile_id == pile {
                reasons.push(format!("repair order {} is open (REQ EQ-3)", o.order_id));
            }
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

/// The handlers of the RPCs that take the caller and the request and answer or fail once.
impl DispatchApi {
    async fn record_training_(
        &self,
        p: &Principal,
        r: pb::RecordTrainingRequest,
    ) -> Result<pb::RecordTrainingResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let t = r
            .training
            .ok_or_else(|| Error::bad_field("training", "must be set"))?;
        let today = china_date(self.engine.clock.now());
        let required = |field: &str, value: &str| {
            date(field, value)?.ok_or_else(|| Error::bad_field(field, "is required"))
        };
        let training = Training::new(
            &t.course,
            required("training.completed_on", &t.completed_on)?,
            required("training.valid_until", &t.valid_until)?,
            &t.record_ref,
            today,
        )
        .map_err(|e| e.within("training"))?;
        let (mut record, version) = self
            .engine
            .store
            .staff_member(&op, r.staff_id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("staff member {}", r.staff_id.trim())))?;
        record.member.record_training(training);
        self.engine.store.update_staff(&record, version).await?;
        Ok(pb::RecordTrainingResponse {
            staff_member: Some(staff_to_pb(&record, today)),
        })
    }

    async fn list_work_orders_(
        &self,
        p: &Principal,
        r: pb::ListWorkOrdersRequest,
    ) -> Result<pb::ListWorkOrdersResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = Some(r.station_id.trim()).filter(|s| !s.is_empty());
        let mut orders = self.engine.store.orders(&op, station, r.open_only).await?;
        orders.sort_by_key(|o| (!o.is_open(), o.received_at));
        let now = self.engine.clock.now();
        Ok(pb::ListWorkOrdersResponse {
            work_orders: orders.iter().map(|o| order_to_pb(o, now)).collect(),
        })
    }

    async fn resolve_work_order_(
        &self,
        p: &Principal,
        r: pb::ResolveWorkOrderRequest,
    ) -> Result<pb::ResolveWorkOrderResponse, Error> {
        let (mut order, version) = self.load(p, &r.operator_id, &r.order_id).await?;
        order.resolve(&r.test_record, self.engine.clock.now())?;
        self.save(&order, version).await?;
        Ok(pb::ResolveWorkOrderResponse {
            work_order: self.reply_order(&order),
        })
    }

    async fn request_suspension_(
        &self,
        p: &Principal,
        r: pb::RequestSuspensionRequest,
    ) -> Result<pb::RequestSuspensionResponse, Error> {
        let (mut order, version) = self.load(p, &r.operator_id, &r.order_id).await?;
        // REQ MON-4: not before two hours after dispatch without a fix.
        order.may_request_suspension(self.engine.clock.now())?;
        self.engine.suspend_pile(&order, &r.evidence_refs).await?;
        if !order.suspension_requested {
            order.suspension_requested = true;
            self.save(&order, version).await?;
        }
        Ok(pb::RequestSuspensionResponse {
            work_order: self.reply_order(&order),
        })
    }

    async fn list_defects_(
        &self,
        p: &Principal,
        r: pb::ListDefectsRequest,
    ) -> Result<pb::ListDefectsResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let pile = Some(r.pile_id.trim()).filter(|s| !s.is_empty());
        let now = self.engine.clock.now();
        let defects = self.engine.store.defects(&op, pile).await?;
        Ok(pb::ListDefectsResponse {
            defects: defects.iter().map(|d| defect_to_pb(d, now)).collect(),
        })
    }

    async fn create_maintenance_plan_(
        &self,
        p: &Principal,
        r: pb::CreateMaintenancePlanRequest,
    ) -> Result<pb::CreateMaintenancePlanResponse, Error> {
        let input = r
            .plan
            .ok_or_else(|| Error::bad_field("plan", "must be set"))?;
        let op = operator_for(p, &input.operator_id)?;
        self.engine.station(&op, input.station_id.trim()).await?;
        let plan = MaintenancePlan::draft(
            format!("MP-{}", uuid::Uuid::now_v7().simple()),
            op,
            input.station_id.trim().to_owned(),
            &input.title,
            &input.period,
            &input.items,
            p.to_string(),
        )?;
        let now = self.engine.clock.now();
        self.engine.store.insert(&plan, now).await?;
        Ok(pb::CreateMaintenancePlanResponse {
            plan: Some(plan_to_pb(&plan)),
        })
    }

    async fn update_maintenance_plan_(
        &self,
        p: &Principal,
        r: pb::UpdateMaintenancePlanRequest,
    ) -> Result<pb::UpdateMaintenancePlanResponse, Error> {
        let (mut plan, version) = self
            .record::<MaintenancePlan>(p, &r.operator_id, &r.plan_id, "maintenance plan")
            .await?;
        let title = Some(r.title.as_str()).filter(|t| !t.trim().is_empty());
        let items = Some(r.items.as_slice()).filter(|i| !i.is_empty());
        plan.edit(title, items)?;
        self.engine
            .store
            .save(&plan, version, self.engine.clock.now())
            .await?;
        Ok(pb::UpdateMaintenancePlanResponse {
            plan: Some(plan_to_pb(&plan)),
        })
    }

    async fn approve_maintenance_plan_(
        &self,
        p: &Principal,
        r: pb::ApproveMaintenancePlanRequest,
    ) -> Result<pb::ApproveMaintenancePlanResponse, Error> {
        let (mut plan, version) = self
            .record::<MaintenancePlan>(p, &r.operator_id, &r.plan_id, "maintenance plan")
            .await?;
        let now = self.engine.clock.now();
        plan.approve(&p.to_string(), now)?;
        self.engine.store.save(&plan, version, now).await?;
        Ok(pb::ApproveMaintenancePlanResponse {
            plan: Some(plan_to_pb(&plan)),
        })
    }

    async fn record_patrol_trigger_(
        &self,
        p: &Principal,
        r: pb::RecordPatrolTriggerRequest,
    ) -> Result<pb::RecordPatrolTriggerResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let trigger = trigger_of(r.trigger)?;
        let area = r.area_code.trim();
        if area.len() != 6 || !area.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad_field(
                "area_code",
                "must be a 6-digit GB/T 2260 area code",
            ));
        }
        let now = self.engine.clock.now();
        let mut patrols = Vec::new();
        // REQ PATROL-2: a special patrol for exactly the stations of the area.
        for (station_id, area_code) in self.engine.stations_in_area(&op, area).await? {
            let patrol = Patrol::special(
                format!("PT-{}", uuid::Uuid::now_v7().simple()),
                &op,
                &station_id,
                &area_code,
                trigger,
                now,
            );
            self.engine.store.insert(&patrol, now).await?;
            patrols.push(patrol_to_pb(&patrol, now));
        }
        Ok(pb::RecordPatrolTriggerResponse { patrols })
    }

    async fn record_maintenance_completion_(
        &self,
        p: &Principal,
        r: pb::RecordMaintenanceCompletionRequest,
    ) -> Result<pb::RecordMaintenanceCompletionResponse, Error> {
        let (mut plan, version) = self
            .record::<MaintenancePlan>(p, &r.operator_id, &r.plan_id, "maintenance plan")
            .await?;
        let now = self.engine.clock.now();
        let by = p.to_string();
        // The completion is checked before the ledger changes, so a refused completion
        // changes nothing.
        plan.clone().complete(&r.item, &r.record, &by, None, now)?;
        // REQ MAINT-4: the ledger takes the change at once, before the completion records it.
        let ledger_change = match r.ledger_change {
            Some(change) => {
                let reason = format!(
                    "maintenance plan {} item {}: {}",
                    plan.plan_id,
                    r.item.trim(),
                    r.record.trim()
                );
                let scope = Scope {
                    operator_id: &plan.operator_id,
                    station_id: &plan.station_id,
                    reason: &reason,
                };
                Some(
                    self.engine
                        .apply_ledger_change(scope, change.into())
                        .await?,
                )
            }
            None => None,
        };
        plan.complete(&r.item, &r.record, &by, ledger_change, now)?;
        self.engine.store.save(&plan, version, now).await?;
        Ok(pb::RecordMaintenanceCompletionResponse {
            plan: Some(plan_to_pb(&plan)),
        })
    }

    async fn get_maintenance_compliance_(
        &self,
        p: &Principal,
        r: pb::GetMaintenanceComplianceRequest,
    ) -> Result<pb::GetMaintenanceComplianceResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let plans: Vec<MaintenancePlan> = self
            .engine
            .store
            .all::<MaintenancePlan>(&op)
            .await?
            .into_iter()
            .filter(|plan| plan.station_id == r.station_id.trim())
            .collect();
        let (last, compliant) = maintained_within_a_year(&plans, self.engine.clock.now());
        Ok(pb::GetMaintenanceComplianceResponse {
            last_maintained_time: opt_timestamp(last),
            compliant,
        })
    }

    async fn create_emergency_plan_(
        &self,
        p: &Principal,
        r: pb::CreateEmergencyPlanRequest,
    ) -> Result<pb::CreateEmergencyPlanResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let hazard = hazard_of(r.hazard)?;
        if r.document_ref.trim().is_empty() {
            return Err(Error::invalid(
                "document_ref",
                "SAFE-1",
                "the plan document is referenced",
            ));
        }
        self.engine.station(&op, r.station_id.trim()).await?;
        let plan = EmergencyPlan {
            plan_id: format!("EP-{}", uuid::Uuid::now_v7().simple()),
            operator_id: op,
            station_id: r.station_id.trim().to_owned(),
            hazard,
            document_ref: r.document_ref.trim().to_owned(),
        };
        self.engine
            .store
            .insert(&plan, self.engine.clock.now())
            .await?;
        Ok(pb::CreateEmergencyPlanResponse {
            plan_id: plan.plan_id,
        })
    }

    async fn record_drill_(
        &self,
        p: &Principal,
        r: pb::RecordDrillRequest,
    ) -> Result<pb::RecordDrillResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let hazard = hazard_of(r.hazard)?;
        let held_on = date("held_on", &r.held_on)?
            .ok_or_else(|| Error::invalid("held_on", "EMERG-2", "is required"))?;
        if held_on > china_date(self.engine.clock.now()) {
            return Err(Error::invalid("held_on", "EMERG-2", "lies in the future"));
        }
        if r.record.trim().is_empty() {
            return Err(Error::invalid("record", "EMERG-2", "the drill is recorded"));
        }
        self.engine.station(&op, r.station_id.trim()).await?;
        let drill = Drill {
            drill_id: format!("DR-{}", uuid::Uuid::now_v7().simple()),
            operator_id: op,
            station_id: r.station_id.trim().to_owned(),
            hazard,
            held_on,
            participants: r.participants,
            record: r.record.trim().to_owned(),
        };
        self.engine
            .store
            .insert(&drill, self.engine.clock.now())
            .await?;
        Ok(pb::RecordDrillResponse {
            drill_id: drill.drill_id,
        })
    }

    async fn open_incident_(
        &self,
        p: &Principal,
        r: pb::OpenIncidentRequest,
    ) -> Result<pb::OpenIncidentResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let hazard = match r.hazard {
            0 => None,
            v => Some(hazard_of(v)?),
        };
        let station = r.station_id.trim().to_owned();
        self.engine.station(&op, &station).await?;
        let now = self.engine.clock.now();
        let incident = Incident::open(
            format!("IN-{}", uuid::Uuid::now_v7().simple()),
            NewIncident {
                operator_id: op,
                station_id: station,
                pile_id: Some(r.pile_id.trim().to_owned()),
                hazard,
                description: r.description,
            },
            &p.to_string(),
            now,
        )?;
        self.engine.store.insert(&incident, now).await?;
        let payload = serde_json::json!({
            "incident_id": incident.incident_id,
            "station_id": incident.station_id,
            "pile_id": incident.pile_id,
            "hazard": incident.hazard,
            "description": incident.description,
        });
        self.engine
            .announce(
                &incident.operator_id,
                crate::engine::INCIDENT_EVENT,
                &payload,
            )
            .await;
        Ok(pb::OpenIncidentResponse {
            incident: Some(incident_to_pb(&incident)),
        })
    }

    async fn record_incident_step_(
        &self,
        p: &Principal,
        r: pb::RecordIncidentStepRequest,
    ) -> Result<pb::RecordIncidentStepResponse, Error> {
        let (mut incident, version) = self
            .record::<Incident>(p, &r.operator_id, &r.incident_id, "incident")
            .await?;
        let now = self.engine.clock.now();
        match pb::IncidentStep::try_from(r.step) {
            Ok(pb::IncidentStep::Contained) => incident.contain(now)?,
            Ok(pb::IncidentStep::Isolated) => incident.isolate(now)?,
            Ok(pb::IncidentStep::Escalated) => {
                incident.escalate(level_of(r.level)?, &r.to, &p.to_string(), now)?;
            }
            _ => return Err(Error::bad_field("step", "must be set")),
        }
        self.engine.store.save(&incident, version, now).await?;
        Ok(pb::RecordIncidentStepResponse {
            incident: Some(incident_to_pb(&incident)),
        })
    }

    async fn close_incident_(
        &self,
        p: &Principal,
        r: pb::CloseIncidentRequest,
    ) -> Result<pb::CloseIncidentResponse, Error> {
        let (mut incident, version) = self
            .record::<Incident>(p, &r.operator_id, &r.incident_id, "incident")
            .await?;
        let now = self.engine.clock.now();
        // Every step is checked before the ledger changes, so a refused close changes nothing.
        incident.clone().close(&r.report, None, now)?;
        let ledger_change = match r.ledger_change {
            Some(change) => {
                let reason = format!("incident {}: {}", incident.incident_id, r.report.trim());
                let scope = Scope {
                    operator_id: &incident.operator_id,
                    station_id: &incident.station_id,
                    reason: &reason,
                };
                Some(
                    self.engine
                        .apply_ledger_change(scope, change.into())
                        .await?,
                )
            }
            None => None,
        };
        incident.close(&r.report, ledger_change, now)?;
        self.engine.store.save(&incident, version, now).await?;
        Ok(pb::CloseIncidentResponse {
            incident: Some(incident_to_pb(&incident)),
        })
    }

    async fn list_incidents_(
        &self,
        p: &Principal,
        r: pb::ListIncidentsRequest,
    ) -> Result<pb::ListIncidentsResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let incidents = self.engine.store.all::<Incident>(&op).await?;
        Ok(pb::ListIncidentsResponse {
            incidents: incidents
                .iter()
                .filter(|i| station.is_empty() || i.station_id == station)
                .filter(|i| !r.open_only || i.closed_at.is_none())
                .map(incident_to_pb)
                .collect(),
        })
    }

    async fn get_emergency_readiness_(
        &self,
        p: &Principal,
        r: pb::GetEmergencyReadinessRequest,
    ) -> Result<pb::GetEmergencyReadinessResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let plans: Vec<EmergencyPlan> = self
            .engine
            .store
            .all::<EmergencyPlan>(&op)
            .await?
            .into_iter()
            .filter(|plan| plan.station_id == station)
            .collect();
        let drills: Vec<Drill> = self
            .engine
            .store
            .all::<Drill>(&op)
            .await?
            .into_iter()
            .filter(|drill| drill.station_id == station)
            .collect();
        let state = readiness(&plans, &drills, china_date(self.engine.clock.now()));
        Ok(pb::GetEmergencyReadinessResponse {
            missing_plans: state.missing_plans.into_iter().map(hazard_to_pb).collect(),
            last_drill_on: state
                .last_drill_on
                .map(|d| d.to_string())
                .unwrap_or_default(),
            drill_overdue: state.drill_overdue,
        })
    }

    async fn request_resumption_(
        &self,
        p: &Principal,
        r: pb::RequestResumptionRequest,
    ) -> Result<pb::RequestResumptionResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let pile = r.pile_id.trim();
        // REQ EQ-3: not while a critical defect or a fault order stands.
        let check = self
            .availability(
                p,
                pb::CheckPileAvailabilityRequest {
                    operator_id: op.clone(),
                    pile_id: pile.to_owned(),
                },
            )
            .await?;
        if !check.available {
            return Err(Error::precondition(
                "EQ-3",
                format!("pile {pile} is not back to normal: {}", check.reason),
            ));
        }
        let suspended_at = self.engine.resume_pile(&op, pile, &r.note).await?;
        let now = self.engine.clock.now();
        let downtime = Downtime {
            operator_id: op.clone(),
            pile_id: pile.to_owned(),
            suspended_at,
            resumed_at: now,
            minutes: (now - suspended_at).num_minutes(),
        };
        let id = format!("DT-{}", uuid::Uuid::now_v7().simple());
        self.engine
            .store
            .insert_doc(DOWNTIME, &op, &id, "", &to_doc(&downtime)?, now)
            .await?;
        Ok(pb::RequestResumptionResponse {
            suspend_time: Some(to_timestamp(suspended_at)),
            resume_time: Some(to_timestamp(now)),
            downtime: prost_types::Duration::try_from(
                (now - suspended_at).to_std().unwrap_or_default(),
            )
            .ok(),
        })
    }

    async fn assign_post_(
        &self,
        p: &Principal,
        r: pb::AssignPostRequest,
    ) -> Result<pb::AssignPostResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let post = post_of(r.post)?;
        self.engine.station(&op, station).await?;
        let member = self
            .engine
            .store
            .staff(&op)
            .await?
            .into_iter()
            .find(|s| s.member.staff_id == r.staff_id.trim())
            .ok_or_else(|| Error::NotFound(format!("staff member {}", r.staff_id.trim())))?;
        let now = self.engine.clock.now();
        let existing = self.engine.store.doc(STAFFING, &op, station).await?;
        let (mut staffing, version) = match existing {
            Some((doc, version)) => (from_doc::<StationStaffing>(doc)?, Some(version)),
            None => (StationStaffing::new(&op, station, r.attended), None),
        };
        staffing.attended = r.attended;
        staffing.assign(post, &member.member, &r.procedure_ref, china_date(now))?;
        match version {
            Some(v) => {
                self.engine
                    .store
                    .update_doc(STAFFING, &op, station, &to_doc(&staffing)?, v, now)
                    .await?
            }
            None => {
                self.engine
                    .store
                    .insert_doc(STAFFING, &op, station, station, &to_doc(&staffing)?, now)
                    .await?
            }
        }
        let (assignments, missing_posts) = staffing_to_pb(&staffing);
        Ok(pb::AssignPostResponse {
            assignments,
            missing_posts,
        })
    }

    async fn get_station_staffing_(
        &self,
        p: &Principal,
        r: pb::GetStationStaffingRequest,
    ) -> Result<pb::GetStationStaffingResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let staffing = match self.engine.store.doc(STAFFING, &op, station).await? {
            Some((doc, _)) => from_doc::<StationStaffing>(doc)?,
            None => {
                self.engine.station(&op, station).await?;
                StationStaffing::new(&op, station, true)
            }
        };
        let (assignments, missing_posts) = staffing_to_pb(&staffing);
        Ok(pb::GetStationStaffingResponse {
            attended: staffing.attended,
            assignments,
            missing_posts,
        })
    }

    async fn schedule_patrol_(
        &self,
        p: &Principal,
        r: pb::SchedulePatrolRequest,
    ) -> Result<pb::SchedulePatrolResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let now = self.engine.clock.now();
        let due = r
            .due_time
            .as_ref()
            .and_then(chargemesh_kit::time::from_timestamp)
            .filter(|due| *due > now)
            .ok_or_else(|| {
                Error::invalid(
                    "due_time",
                    "PATROL-1",
                    "a patrol is scheduled for a time to come",
                )
            })?;
        self.engine.station(&op, station).await?;
        let patrol = Patrol::normal(
            format!("PT-{}", uuid::Uuid::now_v7().simple()),
            &op,
            station,
            "",
            due,
            now,
        );
        self.engine.store.insert(&patrol, now).await?;
        Ok(pb::SchedulePatrolResponse {
            patrol: Some(patrol_to_pb(&patrol, now)),
        })
    }

    async fn create_patrol_schedule_(
        &self,
        p: &Principal,
        r: pb::CreatePatrolScheduleRequest,
    ) -> Result<pb::CreatePatrolScheduleResponse, Error> {
        let input = r
            .schedule
            .ok_or_else(|| Error::bad_field("schedule", "must be set"))?;
        let op = operator_for(p, &input.operator_id)?;
        let now = self.engine.clock.now();
        let first_due = input
            .first_due_time
            .as_ref()
            .and_then(chargemesh_kit::time::from_timestamp)
            .ok_or_else(|| Error::bad_field("schedule.first_due_time", "is required"))?;
        let schedule = PatrolSchedule::new(
            format!("PS-{}", uuid::Uuid::now_v7().simple()),
            &op,
            input.station_id.trim(),
            input.every_days,
            first_due,
            now,
        )
        .map_err(|e| e.within("schedule"))?;
        self.engine.station(&op, &schedule.station_id).await?;
        self.engine.start_schedule(&schedule).await?;
        Ok(pb::CreatePatrolScheduleResponse {
            schedule: Some(schedule_to_pb(&schedule, now)),
        })
    }

    async fn list_patrol_schedules_(
        &self,
        p: &Principal,
        r: pb::ListPatrolSchedulesRequest,
    ) -> Result<pb::ListPatrolSchedulesResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        let now = self.engine.clock.now();
        let schedules = self.engine.store.all::<PatrolSchedule>(&op).await?;
        Ok(pb::ListPatrolSchedulesResponse {
            schedules: schedules
                .iter()
                .filter(|s| station.is_empty() || s.station_id == station)
                .map(|s| schedule_to_pb(s, now))
                .collect(),
        })
    }

    async fn stop_patrol_schedule_(
        &self,
        p: &Principal,
        r: pb::StopPatrolScheduleRequest,
    ) -> Result<pb::StopPatrolScheduleResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let id = r.schedule_id.trim();
        let (mut schedule, version) = self
            .engine
            .store
            .load::<PatrolSchedule>(&op, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("patrol schedule {id}")))?;
        let now = self.engine.clock.now();
        schedule.stop(now)?;
        self.engine.store.save(&schedule, version, now).await?;
        Ok(pb::StopPatrolScheduleResponse {
            schedule: Some(schedule_to_pb(&schedule, now)),
        })
    }

    async fn complete_patrol_(
        &self,
        p: &Principal,
        r: pb::CompletePatrolRequest,
    ) -> Result<pb::CompletePatrolResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let (mut patrol, version) = self
            .engine
            .store
            .load::<Patrol>(&op, r.patrol_id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(format!("patrol {}", r.patrol_id.trim())))?;
        let now = self.engine.clock.now();
        let results: Vec<ItemResult> = r
            .results
            .iter()
            .map(|x| ItemResult {
                item: x.item.clone(),
                ok: x.ok,
                note: x.note.clone(),
            })
            .collect();
        let failed = patrol.complete(&results, now)?;
        // Every failed item is a defect. All are checked before any is written, so a bad one
        // refuses the whole report instead of leaving half of it registered.
        let requests: Vec<pb::RegisterDefectRequest> = failed
            .iter()
            .map(|f| {
                let given = r.results.iter().find(|x| x.item == f.item);
                pb::RegisterDefectRequest {
                    operator_id: op.clone(),
                    station_id: patrol.station_id.clone(),
                    pile_id: String::new(),
                    class: given.map_or(0, |g| g.defect_class),
                    description: format!("{}: {}", f.item, f.note.trim()),
                    elimination_plan: given
                        .map(|g| g.elimination_plan.clone())
                        .unwrap_or_default(),
                    maintenance_plan: given
                        .map(|g| g.maintenance_plan.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        for request in &requests {
            let class = match pb::DefectClass::try_from(request.class) {
                Ok(pb::DefectClass::Critical) => DefectClass::Critical,
                Ok(pb::DefectClass::Serious) => DefectClass::Serious,
                Ok(pb::DefectClass::General) => DefectClass::General,
                _ => {
                    return Err(Error::invalid(
                        "results.defect_class",
                        "DEF-1",
                        "a failed item names the class of its defect",
                    ));
                }
            };
            Defect::register(
                NewDefect {
                    defect_id: String::new(),
                    operator_id: op.clone(),
                    station_id: patrol.station_id.clone(),
                    pile_id: None,
                    class,
                    description: request.description.clone(),
                    finder: p.to_string(),
                    elimination_plan: request.elimination_plan.clone(),
                    maintenance_plan: Some(request.maintenance_plan.clone()),
                },
                DefectDeadlines::default(),
                now,
            )?;
        }
        let mut defects = Vec::new();
        for request in requests {
            let mut defect = self.register(p, request).await?;
            let (_, defect_version) = self
                .engine
                .store
                .defect(&op, &defect.defect_id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("defect {}", defect.defect_id)))?;
            defect.found_on_patrol = Some(patrol.patrol_id.clone());
            self.engine
                .store
                .update_defect(&defect, defect_version, now)
                .await?;
            defects.push(defect_to_pb(&defect, now));
        }
        self.engine.store.save(&patrol, version, now).await?;
        Ok(pb::CompletePatrolResponse {
            patrol: Some(patrol_to_pb(&patrol, now)),
            defects,
        })
    }

    async fn register_monitoring_equipment_(
        &self,
        p: &Principal,
        r: pb::RegisterMonitoringEquipmentRequest,
    ) -> Result<pb::RegisterMonitoringEquipmentResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim();
        self.engine.station(&op, station).await?;
        let register = Register {
            cameras: r
                .cameras
                .into_iter()
                .map(|c| Camera {
                    camera_id: c.camera_id,
                    covers: c.covers,
                })
                .collect(),
            links: r
                .links
                .into_iter()
                .map(|l| {
                    if l.iccid.trim().is_empty() {
                        Link::Ethernet { link_id: l.link_id }
                    } else {
                        Link::Sim {
                            link_id: l.link_id,
                            iccid: l.iccid,
                            carrier: l.carrier,
                            traffic_min_mb: l.traffic_min_mb,
                            traffic_max_mb: l.traffic_max_mb,
                        }
                    }
                })
                .collect(),
        };
        let now = self.engine.clock.now();
        match self.engine.store.doc(MONITORING, &op, station).await? {
            Some((_, version)) => {
                self.engine
                    .store
                    .update_doc(MONITORING, &op, station, &to_doc(&register)?, version, now)
                    .await?
            }
            None => {
                self.engine
                    .store
                    .insert_doc(MONITORING, &op, station, station, &to_doc(&register)?, now)
                    .await?
            }
        }
        Ok(pb::RegisterMonitoringEquipmentResponse {})
    }

    async fn record_daily_check_(
        &self,
        p: &Principal,
        r: pb::RecordDailyCheckRequest,
    ) -> Result<pb::RecordDailyCheckResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = r.station_id.trim().to_owned();
        let now = self.engine.clock.now();
        let day = date("day", &r.day)?.unwrap_or_else(|| china_date(now));
        let register: Register = match self.engine.store.doc(MONITORING, &op, &station).await? {
            Some((doc, _)) => from_doc(doc)?,
            None => {
                return Err(Error::precondition(
                    "MON-7",
                    format!("station {station} has no registered cameras or links"),
                ));
            }
        };
        let cameras: Vec<CameraResult> = r
            .cameras
            .iter()
            .map(|c| CameraResult {
                camera_id: c.camera_id.clone(),
                aimed: c.aimed,
                live_video: c.live_video,
                recording: c.recording,
            })
            .collect();
        let by_hand: Vec<LinkResult> = r
            .links
            .iter()
            .map(|l| LinkResult {
                link_id: l.link_id.clone(),
                up: l.up,
                traffic_mb: l.traffic_mb,
                from_telemetry: false,
            })
            .collect();
        // REQ MON-8: where the piles report their links, the day's reports stand in.
        let reported = if register.links.is_empty() {
            Vec::new()
        } else {
            self.engine.reported_links(&op, &station, day).await?
        };
        let links = link_results(&register, &by_hand, &reported);
        let found = findings(&register, &cameras, &links)?;
        let id = format!("{station}/{day}");
        if self
            .engine
            .store
            .doc(DAILY_CHECK, &op, &id)
            .await?
            .is_some()
        {
            return Err(Error::AlreadyExists(format!(
                "the daily check of {station} for {day}"
            )));
        }
        let check = DailyCheck {
            station_id: station.clone(),
            day,
            cameras,
            links,
            findings: found.clone(),
            by: p.to_string(),
        };
        self.engine
            .store
            .insert_doc(DAILY_CHECK, &op, &id, &station, &to_doc(&check)?, now)
            .await?;
        let mut defects = Vec::new();
        for finding in &found {
            let defect = self
                .register(
                    p,
                    pb::RegisterDefectRequest {
                        operator_id: op.clone(),
                        station_id: station.clone(),
                        pile_id: String::new(),
                        class: pb::DefectClass::Serious as i32,
                        description: finding.clone(),
                        elimination_plan: "restore monitoring and communication; check again"
                            .into(),
                        maintenance_plan: String::new(),
                    },
                )
                .await?;
            defects.push(defect_to_pb(&defect, now));
        }
        Ok(pb::RecordDailyCheckResponse {
            findings: found,
            defects,
        })
    }

    async fn get_daily_check_status_(
        &self,
        p: &Principal,
        r: pb::GetDailyCheckStatusRequest,
    ) -> Result<pb::GetDailyCheckStatusResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let today = china_date(self.engine.clock.now());
        let day = date("day", &r.day)?.unwrap_or(today);
        let check = self
            .engine
            .store
            .doc(DAILY_CHECK, &op, &format!("{}/{day}", r.station_id.trim()))
            .await?;
        let findings = match &check {
            Some((doc, _)) => from_doc::<DailyCheck>(doc.clone())?.findings,
            None => Vec::new(),
        };
        Ok(pb::GetDailyCheckStatusResponse {
            done: check.is_some(),
            overdue: overdue(day, check.is_some(), today),
            findings,
        })
    }

    async fn get_monitor_view_(
        &self,
        p: &Principal,
        r: pb::GetMonitorViewRequest,
    ) -> Result<pb::GetMonitorViewResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = Some(r.station_id.trim()).filter(|s| !s.is_empty());
        let now = self.engine.clock.now();
        let in_scope = |s: &str| station.is_none_or(|want| want == s);
        let mut orders = self.engine.store.orders(&op, station, true).await?;
        orders.sort_by_key(|o| o.received_at);
        let mut breached = 0;
        let work_orders = orders
            .iter()
            .map(|o| {
                let d = o.deadlines();
                let next = if let Some(due) = d.arrival_due
                    && o.arrived_at.is_none()
                {
                    Some(("arrival", due))
                } else if o.resolved_at.is_none() {
                    Some(("resolution", d.resolution_due))
                } else {
                    None
                };
                let pb_order = order_to_pb(o, now);
                if !pb_order.breaches.is_empty() {
                    breached += 1;
                }
                pb::OpenWorkOrder {
                    work_order: Some(pb_order),
                    next_limit: next.map(|(what, _)| what.to_owned()).unwrap_or_default(),
                    time_left: next.map(|(_, due)| {
                        let left = due - now;
                        prost_types::Duration {
                            seconds: left.num_seconds(),
                            nanos: 0,
                        }
                    }),
                }
            })
            .collect();
        let defects: Vec<Defect> = self
            .engine
            .store
            .defects(&op, None)
            .await?
            .into_iter()
            .filter(|d| d.state != DefectState::Accepted && in_scope(&d.station_id))
            .collect();
        let patrols: Vec<Patrol> = self
            .engine
            .store
            .all::<Patrol>(&op)
            .await?
            .into_iter()
            .filter(|pt| pt.done_at.is_none() && in_scope(&pt.station_id))
            .collect();
        Ok(pb::GetMonitorViewResponse {
            work_orders,
            overdue_defects: defects.iter().filter(|d| d.overdue(now)).count() as u32,
            overdue_patrols: patrols.iter().filter(|pt| pt.overdue(now)).count() as u32,
            defects: defects.iter().map(|d| defect_to_pb(d, now)).collect(),
            patrols: patrols.iter().map(|pt| patrol_to_pb(pt, now)).collect(),
            breached_orders: breached,
        })
    }

    async fn confirm_work_order_(
        &self,
        p: &Principal,
        r: pb::ConfirmWorkOrderRequest,
    ) -> Result<pb::ConfirmWorkOrderResponse, Error> {
        let (mut order, version) = self.load(p, &r.operator_id, &r.order_id).await?;
        order.confirm(&p.to_string(), self.engine.clock.now())?;
        self.save(&order, version).await?;
        Ok(pb::ConfirmWorkOrderResponse {
            work_order: self.reply_order(&order),
        })
    }
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
            let staff = self.engine.store.staff(&op).await?;
            Ok(pb::ListStaffMembersResponse {
                staff_members: staff
                    .iter()
                    .filter(|s| !r.retraining_due_only || s.member.retraining_due(today))
                    .map(|s| staff_to_pb(s, today))
                    .collect(),
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
            let op = operator_for(&p, &request.get_ref().operator_id)?;
            let plans = self.engine.store.all::<MaintenancePlan>(&op).await?;
            Ok(pb::ListMaintenancePlansResponse {
                plans: plans.iter().map(plan_to_pb).collect(),
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
            let op = operator_for(&p, &request.get_ref().operator_id)?;
            let now = self.engine.clock.now();
            let patrols = self.engine.store.all::<Patrol>(&op).await?;
            Ok(pb::ListPatrolsResponse {
                patrols: patrols.iter().map(|pt| patrol_to_pb(pt, now)).collect(),
            })
        };
        reply(result.await)
    }
    }
}
