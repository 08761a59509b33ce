//! The asset service's the change history of the registry.

use super::*;

impl AssetApi {
    pub(super) async fn list_changes_(
        &self,
        p: &Principal,
        req: pb::ListChangeRecordsRequest,
    ) -> Result<pb::ListChangeRecordsResponse, Error> {
        const TYPES: &[&str] = &["operator", "station", "pile", "equipment", "certificate"];
        let op = operator_of(p, &req.operator_id)?;
        let entity_type = Some(req.entity_type.trim()).filter(|t| !t.is_empty());
        let entity_id = Some(req.entity_id.trim()).filter(|t| !t.is_empty());
        if entity_type.is_some_and(|t| !TYPES.contains(&t)) {
            return Err(Error::bad_field(
                "entity_type",
                format!("must be one of {}", TYPES.join(", ")),
            ));
        }
        if entity_id.is_some() && entity_type.is_none() {
            return Err(Error::bad_field(
                "entity_type",
                "is required with entity_id",
            ));
        }
        let operator_wide = Target {
            operator_id: &op,
            ..Target::default()
        };
        if decide(p, operator_wide, Access::Read) != Decision::Allow {
            // Regulators and station or pile certificates read the history of one visible record.
            match (entity_type, entity_id) {
                (Some("station"), Some(id)) => {
                    self.load_station(p, &op, id, Access::Read).await?;
                }
                (Some("pile"), Some(id)) => {
                    self.load_pile(p, &op, id, Access::Read).await?;
                }
                _ => return Err(Error::NotFound(format!("history of operator {op}"))),
            }
        }
        let after_sequence = match decode_token(&req.page_token, 1)? {
            Some(parts) => parts[0].parse().map_err(|_| {
                Error::bad_field("page_token", "is not a token this service issued")
            })?,
            None => 0,
        };
        let limit = page_size(req.page_size)?;
        let records = self
            .store
            .list_changes(&ChangeQuery {
                operator_id: op,
                entity_type: entity_type.map(str::to_owned),
                entity_id: entity_id.map(str::to_owned),
                after_sequence,
                limit,
            })
            .await?;
        let next_page_token = match records.last() {
            Some(last) if records.len() as u32 >= limit => {
                encode_token(&[&last.sequence.to_string()])
            }
            _ => String::new(),
        };
        Ok(pb::ListChangeRecordsResponse {
            change_records: records.iter().map(change_to_pb).collect(),
            next_page_token,
        })
    }
}
