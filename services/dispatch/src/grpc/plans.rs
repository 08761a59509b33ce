//! Maintenance plans and their completions (REQ MAINT-1..4).

use super::*;

impl DispatchApi {
    pub(super) async fn create_maintenance_plan_(
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

    pub(super) async fn update_maintenance_plan_(
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

    pub(super) async fn approve_maintenance_plan_(
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

    pub(super) async fn record_maintenance_completion_(
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
        let ledger_change = self
            .engine
            .apply_any_ledger_change(scope, r.ledger_change)
            .await?;
        plan.complete(&r.item, &r.record, &by, ledger_change, now)?;
        self.engine.store.save(&plan, version, now).await?;
        Ok(pb::RecordMaintenanceCompletionResponse {
            plan: Some(plan_to_pb(&plan)),
        })
    }

    pub(super) async fn get_maintenance_compliance_(
        &self,
        p: &Principal,
        r: pb::GetMaintenanceComplianceRequest,
    ) -> Result<pb::GetMaintenanceComplianceResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let station = DocFilter {
            station_id: Some(r.station_id.trim()),
            open_only: false,
        };
        let plans: Vec<MaintenancePlan> = self.engine.store.newest(&op, station).await?;
        let (last, compliant) = maintained_within_a_year(&plans, self.engine.clock.now());
        Ok(pb::GetMaintenanceComplianceResponse {
            last_maintained_time: opt_timestamp(last),
            compliant,
        })
    }
}
