//! Emergency plans, drills and incidents (REQ SAFE-1, EMERG-1, EMERG-2).

use super::*;

impl DispatchApi {
    pub(super) async fn create_emergency_plan_(
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

    pub(super) async fn record_drill_(
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

    pub(super) async fn open_incident_(
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

    pub(super) async fn record_incident_step_(
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

    pub(super) async fn close_incident_(
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
        let reason = format!("incident {}: {}", incident.incident_id, r.report.trim());
        let scope = Scope {
            operator_id: &incident.operator_id,
            station_id: &incident.station_id,
            reason: &reason,
        };
        let ledger_change = self
            .engine
            .apply_any_ledger_change(scope, r.ledger_change)
            .await?;
        incident.close(&r.report, ledger_change, now)?;
        self.engine.store.save(&incident, version, now).await?;
        Ok(pb::CloseIncidentResponse {
            incident: Some(incident_to_pb(&incident)),
        })
    }

    pub(super) async fn list_incidents_(
        &self,
        p: &Principal,
        r: pb::ListIncidentsRequest,
    ) -> Result<pb::ListIncidentsResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let filter = DocFilter {
            station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
            open_only: r.open_only,
        };
        let incidents = page.page(
            self.engine
                .store
                .list::<Incident>(&op, filter, &page)
                .await?,
        );
        Ok(pb::ListIncidentsResponse {
            incidents: incidents.items.iter().map(incident_to_pb).collect(),
            next_page_token: incidents.next_page_token,
        })
    }

    pub(super) async fn get_emergency_readiness_(
        &self,
        p: &Principal,
        r: pb::GetEmergencyReadinessRequest,
    ) -> Result<pb::GetEmergencyReadinessResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = DocFilter {
            station_id: Some(r.station_id.trim()),
            open_only: false,
        };
        let plans: Vec<EmergencyPlan> = self.engine.store.newest(&op, station).await?;
        let drills: Vec<Drill> = self.engine.store.newest(&op, station).await?;
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
}
