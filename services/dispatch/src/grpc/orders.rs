//! Repair work orders after dispatch, suspension and resumption (REQ FAULT-5..8, MON-4, MON-5).

use super::*;

impl DispatchApi {
    pub(super) async fn list_work_orders_(
        &self,
        p: &Principal,
        r: pb::ListWorkOrdersRequest,
    ) -> Result<pb::ListWorkOrdersResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let page = Keyset::from_request(r.page_size, &r.page_token)?;
        let filter = OrderFilter {
            station_id: Some(r.station_id.trim()).filter(|s| !s.is_empty()),
            pile_id: Some(r.pile_id.trim()).filter(|s| !s.is_empty()),
            open_only: r.open_only,
        };
        let orders = page.page(self.engine.store.orders(&op, filter, &page).await?);
        let now = self.engine.clock.now();
        Ok(pb::ListWorkOrdersResponse {
            work_orders: orders.items.iter().map(|o| order_to_pb(o, now)).collect(),
            next_page_token: orders.next_page_token,
        })
    }

    pub(super) async fn resolve_work_order_(
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

    pub(super) async fn confirm_work_order_(
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

    pub(super) async fn request_suspension_(
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

    pub(super) async fn request_resumption_(
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
            .insert_doc(
                DocKey {
                    kind: DOWNTIME,
                    operator_id: &op,
                    id: &id,
                },
                "",
                true,
                &to_doc(&downtime)?,
                now,
                &[crate::journal::downtime_entry(
                    &op,
                    &id,
                    pile,
                    suspended_at,
                    now,
                )],
            )
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
}
