//! The asset service's the equipment ledger (REQ MAINT-4).

use super::*;

impl AssetApi {
    pub(super) async fn create_equipment_(
        &self,
        p: &Principal,
        req: pb::CreateEquipmentRequest,
    ) -> Result<pb::CreateEquipmentResponse, Error> {
        let input = req
            .equipment
            .ok_or_else(|| Error::bad_field("equipment", "must be set"))?;
        let op = operator_of(p, &input.operator_id)?;
        let station = self
            .load_station(p, &op, input.station_id.trim(), Access::Write)
            .await?
            .value;
        let now = self.clock.now();
        let eq = rules::validate_equipment(Equipment {
            operator_id: op.clone(),
            equipment_id: uuid::Uuid::now_v7().to_string(),
            station_id: station.station_id,
            category: equipment_category("equipment.category", input.category)?,
            name: input.name,
            manufacturer: input.manufacturer,
            model: input.model,
            serial_number: input.serial_number,
            quantity: input.quantity,
            parameters: input.parameters.into_iter().collect(),
            created_at: now,
            updated_at: now,
        })?;
        let change = self.change(
            p,
            "equipment",
            &op,
            &eq.equipment_id,
            "create",
            "",
            None::<&Equipment>,
            &eq,
        );
        self.store.create_equipment(&eq, &change).await?;
        self.announce(&change).await;
        Ok(pb::CreateEquipmentResponse {
            equipment: Some(equipment_to_pb(&eq)),
        })
    }

    pub(super) async fn list_equipment_(
        &self,
        p: &Principal,
        req: pb::ListEquipmentRequest,
    ) -> Result<pb::ListEquipmentResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let station = self
            .load_station(p, &op, req.station_id.trim(), Access::Read)
            .await?
            .value;
        let page = page_from(&req.page_token, req.page_size)?;
        let filters = [
            Filter::Eq("operator_id", op),
            Filter::Eq("station_id", station.station_id),
        ];
        let items = self.store.list_equipment(&filters, &page).await?;
        Ok(pb::ListEquipmentResponse {
            next_page_token: next_token(&items, &page, |e| (&e.operator_id, &e.equipment_id)),
            equipment: items.iter().map(equipment_to_pb).collect(),
        })
    }

    pub(super) async fn update_equipment_(
        &self,
        p: &Principal,
        req: pb::UpdateEquipmentRequest,
    ) -> Result<pb::UpdateEquipmentResponse, Error> {
        let input = req
            .equipment
            .ok_or_else(|| Error::bad_field("equipment", "must be set"))?;
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &[
                "name",
                "manufacturer",
                "model",
                "serial_number",
                "quantity",
                "parameters",
            ],
        )?;
        let op = operator_of(p, &input.operator_id)?;
        let what = || format!("equipment {op}/{}", input.equipment_id);
        let current = self
            .store
            .equipment(&op, input.equipment_id.trim())
            .await?
            .ok_or_else(|| Error::NotFound(what()))?;
        self.load_station(p, &op, &current.value.station_id, Access::Write)
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound(what()),
                other => other,
            })?;
        let mut next = current.value.clone();
        for path in &paths {
            match path.as_str() {
                "name" => next.name = input.name.clone(),
                "manufacturer" => next.manufacturer = input.manufacturer.clone(),
                "model" => next.model = input.model.clone(),
                "serial_number" => next.serial_number = input.serial_number.clone(),
                "quantity" => next.quantity = input.quantity,
                _ => next.parameters = input.parameters.clone().into_iter().collect(),
            }
        }
        next.updated_at = self.clock.now();
        // REQ MAINT-4: the ledger is updated at once when a model, quantity or parameter changes.
        let next = rules::validate_equipment(next)?;
        let change = self.change(
            p,
            "equipment",
            &op,
            &next.equipment_id,
            "update",
            &req.reason,
            Some(&current.value),
            &next,
        );
        self.store
            .update_equipment(&next, current.version, &change)
            .await?;
        self.announce(&change).await;
        Ok(pb::UpdateEquipmentResponse {
            equipment: Some(equipment_to_pb(&next)),
        })
    }
}
