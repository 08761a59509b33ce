//! REQ MAINT-4, EMERG-1: a change of model, quantity or parameter made by maintenance or an
//! emergency repair updates the asset ledger at once, through the asset registry, with the plan
//! or the incident as the reason.

use chargemesh_kit::Error;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::dispatch::v1 as pb;

use crate::engine::Engine;

/// A change to the asset ledger, as a request carries it (fields `pile_change` or
/// `equipment_change`).
#[derive(Debug, Clone, PartialEq)]
pub enum LedgerChange {
    Pile(asset::UpdatePileRequest),
    Equipment(asset::UpdateEquipmentRequest),
}

impl From<pb::record_maintenance_completion_request::LedgerChange> for LedgerChange {
    fn from(change: pb::record_maintenance_completion_request::LedgerChange) -> Self {
        use pb::record_maintenance_completion_request::LedgerChange as C;
        match change {
            C::PileChange(r) => LedgerChange::Pile(r),
            C::EquipmentChange(r) => LedgerChange::Equipment(r),
        }
    }
}

impl From<pb::close_incident_request::LedgerChange> for LedgerChange {
    fn from(change: pb::close_incident_request::LedgerChange) -> Self {
        use pb::close_incident_request::LedgerChange as C;
        match change {
            C::PileChange(r) => LedgerChange::Pile(r),
            C::EquipmentChange(r) => LedgerChange::Equipment(r),
        }
    }
}

/// Where a ledger change may apply, and why it is made.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub operator_id: &'a str,
    pub station_id: &'a str,
    /// Kept in the ledger's change history, such as the plan and the record.
    pub reason: &'a str,
}

/// What a ledger refusal means to the caller, naming the request field it came through.
fn refusal(field: &str, what: &str, status: &tonic::Status) -> Error {
    match status.code() {
        tonic::Code::InvalidArgument => Error::bad_field(field, status.message().to_owned()),
        tonic::Code::NotFound => Error::NotFound(what.to_owned()),
        tonic::Code::FailedPrecondition => {
            Error::precondition("MAINT-4", status.message().to_owned())
        }
        _ => Error::Unavailable("the asset registry is unavailable".into()),
    }
}

/// The changed paths, refused when there are none: a ledger change says what changed.
fn paths(field: &str, mask: Option<&prost_types::FieldMask>) -> Result<Vec<String>, Error> {
    let paths: Vec<String> = mask
        .map(|m| m.paths.iter().map(|p| p.trim().to_owned()).collect())
        .unwrap_or_default();
    if paths.is_empty() || paths.iter().any(String::is_empty) {
        return Err(Error::invalid(
            field,
            "MAINT-4",
            "name the model, quantity or parameter that changed",
        ));
    }
    Ok(paths)
}

fn elsewhere(field: &str, what: &str, scope: Scope<'_>) -> Error {
    Error::invalid(
        field,
        "MAINT-4",
        format!("{what} is not at station {}", scope.station_id),
    )
}

impl Engine {
    /// REQ MAINT-4: applies a ledger change to the asset registry and returns what changed,
    /// such as "pile P1: model, rated_power_kw". The change is on the scope's operator and must
    /// concern the scope's station.
    /// The same for a request that may carry no change: nothing to do then.
    pub async fn apply_any_ledger_change(
        &self,
        scope: Scope<'_>,
        change: Option<impl Into<LedgerChange>>,
    ) -> Result<Option<String>, Error> {
        match change {
            Some(change) => Ok(Some(self.apply_ledger_change(scope, change.into()).await?)),
            None => Ok(None),
        }
    }

    pub async fn apply_ledger_change(
        &self,
        scope: Scope<'_>,
        change: LedgerChange,
    ) -> Result<String, Error> {
        match change {
            LedgerChange::Pile(mut request) => {
                let paths = paths("pile_change.update_mask", request.update_mask.as_ref())?;
                let pile = request.pile.as_mut().ok_or_else(|| {
                    Error::bad_field("pile_change.pile", "the changed pile is required")
                })?;
                scope.operator_id.clone_into(&mut pile.operator_id);
                let pile_id = pile.pile_id.trim().to_owned();
                let what = format!("pile {pile_id}");
                let current = self
                    .assets()
                    .get_pile(asset::GetPileRequest {
                        operator_id: scope.operator_id.to_owned(),
                        pile_id: pile_id.clone(),
                    })
                    .await
                    .map_err(|s| refusal("pile_change.pile.pile_id", &what, &s))?
                    .into_inner()
                    .pile
                    .ok_or_else(|| Error::NotFound(what.clone()))?;
                if current.station_id != scope.station_id {
                    return Err(elsewhere("pile_change.pile.pile_id", &what, scope));
                }
                scope.reason.clone_into(&mut request.reason);
                self.assets()
                    .update_pile(request)
                    .await
                    .map_err(|s| refusal("pile_change", &what, &s))?;
                Ok(format!("{what}: {}", paths.join(", ")))
            }
            LedgerChange::Equipment(mut request) => {
                let paths = paths("equipment_change.update_mask", request.update_mask.as_ref())?;
                let equipment = request.equipment.as_mut().ok_or_else(|| {
                    Error::bad_field("equipment_change.equipment", "the changed item is required")
                })?;
                scope.operator_id.clone_into(&mut equipment.operator_id);
                let id = equipment.equipment_id.trim().to_owned();
                let what = format!("equipment {id}");
                if !self.station_has_equipment(scope, &id).await? {
                    return Err(elsewhere(
                        "equipment_change.equipment.equipment_id",
                        &what,
                        scope,
                    ));
                }
                scope.reason.clone_into(&mut request.reason);
                self.assets()
                    .update_equipment(request)
                    .await
                    .map_err(|s| refusal("equipment_change", &what, &s))?;
                Ok(format!("{what}: {}", paths.join(", ")))
            }
        }
    }

    /// Whether the ledger item is one of the scope's station's.
    async fn station_has_equipment(
        &self,
        scope: Scope<'_>,
        equipment_id: &str,
    ) -> Result<bool, Error> {
        let mut page_token = String::new();
        loop {
            let page = self
                .assets()
                .list_equipment(asset::ListEquipmentRequest {
                    operator_id: scope.operator_id.to_owned(),
                    station_id: scope.station_id.to_owned(),
                    page_size: 500,
                    page_token: page_token.clone(),
                })
                .await
                .map_err(|s| refusal("equipment_change", "the station's ledger", &s))?
                .into_inner();
            if page
                .equipment
                .iter()
                .any(|e| e.equipment_id == equipment_id)
            {
                return Ok(true);
            }
            if page.next_page_token.is_empty() {
                return Ok(false);
            }
            page_token = page.next_page_token;
        }
    }
}
