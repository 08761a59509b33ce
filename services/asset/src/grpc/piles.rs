//! The asset service's piles: creation, reading, updates, and the step every lifecycle
//! transition (suspension, resumption, retirement) goes through.

use super::*;

/// REQ NETSEC-1: a charge point names itself by its id alone, so no two piles share one.
fn charge_point_taken(id: &str) -> Error {
    Error::AlreadyExists(format!(
        "charge point id {id} is another pile's (charge point ids are unique across the platform)"
    ))
}

impl AssetApi {
    pub(super) async fn create_pile_(
        &self,
        p: &Principal,
        req: pb::CreatePileRequest,
    ) -> Result<pb::CreatePileResponse, Error> {
        let input = req
            .pile
            .ok_or_else(|| Error::bad_field("pile", "must be set"))?;
        let op = operator_of(p, &input.operator_id)?;
        let station = self
            .load_station(p, &op, input.station_id.trim(), Access::Write)
            .await?
            .value;
        let now = self.clock.now();
        let pile = rules::validate_pile(
            Pile {
                operator_id: op.clone(),
                pile_id: input.pile_id.trim().to_owned(),
                station_id: station.station_id.clone(),
                pile_type: pile_type("pile.pile_type", input.pile_type)?,
                manufacturer: input.manufacturer,
                model: input.model,
                serial_number: input.serial_number,
                production_date: parse_date("pile.production_date", &input.production_date)?,
                rated_voltage: input.rated_voltage,
                rated_current: input.rated_current,
                rated_power_kw: input.rated_power_kw,
                connectors: connectors("pile.connectors", &input.connectors)?,
                protocol: protocol("pile.protocol", input.protocol)?,
                charge_point_id: input.charge_point_id,
                password_set_at: None,
                state: PileState::InService,
                suspension: None,
                retired_at: None,
                created_at: now,
                updated_at: now,
            },
            china_date(now),
        )?;
        let change = self.change(
            p,
            "pile",
            &op,
            &pile.pile_id,
            "create",
            "",
            None::<&Pile>,
            &pile,
        );
        self.store
            .create_pile(&pile, &change)
            .await
            .map_err(|e| match &e {
                StoreError::Unique(what) if what.contains("connectors") => {
                    Error::AlreadyExists(format!(
                        "a connector id of pile {op}/{} (connector ids are unique per operator)",
                        pile.pile_id
                    ))
                }
                StoreError::Unique(what) if what.contains("charge_points") => {
                    charge_point_taken(&pile.charge_point_id)
                }
                _ => exists_as(e, format!("pile {op}/{}", pile.pile_id)),
            })?;
        self.announce(&change).await;
        Ok(pb::CreatePileResponse {
            pile: Some(pile_to_pb(&pile)),
        })
    }

    pub(super) async fn get_pile_(
        &self,
        p: &Principal,
        req: pb::GetPileRequest,
    ) -> Result<pb::GetPileResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let (pile, _) = self
            .load_pile(p, &op, req.pile_id.trim(), Access::Read)
            .await?;
        Ok(pb::GetPileResponse {
            pile: Some(pile_to_pb(&pile.value)),
        })
    }

    pub(super) async fn list_piles_(
        &self,
        p: &Principal,
        req: pb::ListPilesRequest,
    ) -> Result<pb::ListPilesResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let page = page_from(&req.page_token, req.page_size)?;
        let mut filters = vec![Filter::Eq("operator_id", op.clone())];
        if req.station_id.trim().is_empty() {
            // Every pile of the operator, for whoever sees the whole operator.
            let whole = Target {
                operator_id: &op,
                ..Target::default()
            };
            if decide(p, whole, Access::Read) != Decision::Allow {
                return Err(Error::bad_field(
                    "station_id",
                    "is required unless you see the whole operator",
                ));
            }
        } else {
            let station = self
                .load_station(p, &op, req.station_id.trim(), Access::Read)
                .await?
                .value;
            filters.push(Filter::Eq("station_id", station.station_id));
        }
        if let Principal::Pile { pile_id, .. } = p {
            filters.push(Filter::Eq("pile_id", pile_id.clone()));
        }
        let piles = self.store.list_piles(&filters, &page).await?;
        Ok(pb::ListPilesResponse {
            next_page_token: next_token(&piles, &page, |x| (&x.operator_id, &x.pile_id)),
            piles: piles.iter().map(pile_to_pb).collect(),
        })
    }

    pub(super) async fn save_pile(
        &self,
        p: &Principal,
        current: Versioned<Pile>,
        next: Pile,
        action: &'static str,
        note: &str,
    ) -> Result<pb::Pile, Error> {
        let change = self.change(
            p,
            "pile",
            &next.operator_id,
            &next.pile_id,
            action,
            note,
            Some(&current.value),
            &next,
        );
        let steps: Vec<_> = crate::availability::step(&next, action, current.version + 1)
            .into_iter()
            .collect();
        self.store
            .update_pile(&next, current.version, &change, &steps)
            .await
            .map_err(|e| match &e {
                StoreError::Unique(what) if what.contains("charge_points") => {
                    charge_point_taken(&next.charge_point_id)
                }
                StoreError::Unique(_) => Error::AlreadyExists(
                    "a connector id of this pile (connector ids are unique per operator)".into(),
                ),
                _ => Error::Store(e),
            })?;
        self.announce(&change).await;
        if let Some(outbox) = &self.outbox {
            for step in steps {
                let outbox = outbox.clone();
                // At once when it can be; the runner retries what fails.
                tokio::spawn(async move {
                    if let Err(error) = outbox.run_now(&step.step_id).await {
                        tracing::warn!(%error, step = %step.step_id, "an outbox step could not run now");
                    }
                });
            }
        }
        Ok(pile_to_pb(&next))
    }

    pub(super) async fn update_pile_(
        &self,
        p: &Principal,
        req: pb::UpdatePileRequest,
    ) -> Result<pb::UpdatePileResponse, Error> {
        let input = req
            .pile
            .ok_or_else(|| Error::bad_field("pile", "must be set"))?;
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &[
                "manufacturer",
                "model",
                "serial_number",
                "rated_voltage",
                "rated_current",
                "rated_power_kw",
                "connectors",
                "protocol",
                "charge_point_id",
            ],
        )?;
        let op = operator_of(p, &input.operator_id)?;
        let (current, _) = self
            .load_pile(p, &op, input.pile_id.trim(), Access::Write)
            .await?;
        if current.value.state == PileState::Retired {
            return Err(Error::precondition(
                "MON-6",
                "a retired pile's archive is closed",
            ));
        }
        let mut next = current.value.clone();
        for path in &paths {
            match path.as_str() {
                "manufacturer" => next.manufacturer = input.manufacturer.clone(),
                "model" => next.model = input.model.clone(),
                "serial_number" => next.serial_number = input.serial_number.clone(),
                "rated_voltage" => next.rated_voltage = input.rated_voltage,
                "rated_current" => next.rated_current = input.rated_current,
                "rated_power_kw" => next.rated_power_kw = input.rated_power_kw,
                "protocol" => next.protocol = protocol("pile.protocol", input.protocol)?,
                "charge_point_id" => next.charge_point_id = input.charge_point_id.clone(),
                _ => next.connectors = connectors("pile.connectors", &input.connectors)?,
            }
        }
        let now = self.clock.now();
        next.updated_at = now;
        // REQ MAINT-4: the technical archive follows every change of model or parameter.
        let next = rules::validate_pile(next, china_date(now))?;
        let pile = self
            .save_pile(p, current, next, "update", &req.reason)
            .await?;
        Ok(pb::UpdatePileResponse { pile: Some(pile) })
    }

    pub(super) async fn pile_transition(
        &self,
        p: &Principal,
        operator_id: &str,
        pile_id: &str,
        action: &'static str,
        note: &str,
        apply: impl FnOnce(Pile) -> Result<Pile, Error>,
    ) -> Result<pb::Pile, Error> {
        let op = operator_of(p, operator_id)?;
        let (current, _) = self
            .load_pile(p, &op, pile_id.trim(), Access::Write)
            .await?;
        let next = apply(current.value.clone())?;
        self.save_pile(p, current, next, action, note).await
    }
}
