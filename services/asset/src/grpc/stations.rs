//! The asset service's stations: creation, reading, tariffs, updates and the lifecycle to
//! commissioning.

use super::*;

impl AssetApi {
    pub(super) async fn create_station_(
        &self,
        p: &Principal,
        req: pb::CreateStationRequest,
    ) -> Result<pb::CreateStationResponse, Error> {
        let input = req
            .station
            .ok_or_else(|| Error::bad_field("station", "must be set"))?;
        let operator_id = operator_of(p, &input.operator_id)?;
        let now = self.clock.now();
        let station = Station {
            operator_id: operator_id.clone(),
            station_id: input.station_id.trim().to_owned(),
            name: input.name,
            kind: station_kind("station.kind", input.kind)?,
            area_code: input.area_code.trim().to_owned(),
            address: input.address,
            location: location("station.location", input.location.as_ref())?,
            opening_hours: input.opening_hours,
            service_phone: input.service_phone,
            connection_mode: connection_mode("station.connection_mode", input.connection_mode)?
                .ok_or_else(|| {
                    Error::invalid("station.connection_mode", "BASE-2", "must be set")
                })?,
            service_zone: service_zone("station.service_zone", input.service_zone)?,
            tariff: {
                let mut tariff = Tariff::default();
                tariff.add_version(
                    "station.price_board",
                    now,
                    price_board("station.price_board", &input.price_board)?,
                    now,
                )?;
                tariff
            },
            service_items: input.service_items,
            accept_any_id_token: input.accept_any_id_token,
            state: StationState::Registered,
            acceptance: None,
            filing: None,
            connected_at: None,
            trial_started_at: None,
            commissioned_at: None,
            created_at: now,
            updated_at: now,
        };
        let target = Target {
            operator_id: &operator_id,
            station_id: Some(&station.station_id),
            pile_id: None,
            area_code: Some(&station.area_code),
        };
        Self::check(p, target, Access::Write, || {
            format!("operator {operator_id}")
        })?;
        let station = rules::validate_station(station)?;
        if self.store.operator(&operator_id).await?.is_none() {
            return Err(Error::NotFound(format!("operator {operator_id}")));
        }
        let change = self.change(
            p,
            "station",
            &operator_id,
            &station.station_id,
            "create",
            "",
            None::<&Station>,
            &station,
        );
        self.store
            .create_station(&station, &change)
            .await
            .map_err(|e| exists_as(e, format!("station {operator_id}/{}", station.station_id)))?;
        self.announce(&change).await;
        Ok(pb::CreateStationResponse {
            station: Some(station_to_pb(&station, self.clock.now())),
        })
    }

    pub(super) async fn get_station_(
        &self,
        p: &Principal,
        req: pb::GetStationRequest,
    ) -> Result<pb::GetStationResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let st = self
            .load_station(p, &op, req.station_id.trim(), Access::Read)
            .await?;
        Ok(pb::GetStationResponse {
            station: Some(station_to_pb(&st.value, self.clock.now())),
        })
    }

    pub(super) async fn list_stations_(
        &self,
        p: &Principal,
        req: pb::ListStationsRequest,
    ) -> Result<pb::ListStationsResponse, Error> {
        let page = page_from(&req.page_token, req.page_size)?;
        let scope = station_scope(p);
        if scope.nothing {
            return Ok(pb::ListStationsResponse::default());
        }
        let mut filters = Vec::new();
        if let Some(op) = scope.operator_id {
            filters.push(Filter::Eq("operator_id", op));
        }
        if let Some(st) = scope.station_id {
            filters.push(Filter::Eq("station_id", st));
        }
        if let Some(prefix) = scope.area_prefix {
            filters.push(Filter::Prefix("area_code", prefix));
        }
        if !req.operator_id.trim().is_empty() {
            filters.push(Filter::Eq("operator_id", req.operator_id.trim().to_owned()));
        }
        if !req.area_code.trim().is_empty() {
            validate_area_code("area_code", req.area_code.trim())?;
            filters.push(Filter::Prefix(
                "area_code",
                area_prefix(req.area_code.trim()).to_owned(),
            ));
        }
        if let Some(state) = station_state_filter("state", req.state)? {
            filters.push(Filter::Eq("state", state.as_str().to_owned()));
        }
        let stations = self.store.list_stations(&filters, &page).await?;
        Ok(pb::ListStationsResponse {
            next_page_token: next_token(&stations, &page, |s| (&s.operator_id, &s.station_id)),
            stations: stations
                .iter()
                .map(|s| station_to_pb(s, self.clock.now()))
                .collect(),
        })
    }

    /// REQ BASE-3, MON-10: a new tariff version, kept with the station and its change history.
    pub(super) async fn schedule_tariff_(
        &self,
        p: &Principal,
        req: pb::ScheduleTariffRequest,
    ) -> Result<pb::ScheduleTariffResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let current = self
            .load_station(p, &op, req.station_id.trim(), Access::Write)
            .await?;
        let effective = req
            .effective_time
            .as_ref()
            .and_then(chargemesh_kit::time::from_timestamp)
            .ok_or_else(|| Error::bad_field("effective_time", "is required"))?;
        let now = self.clock.now();
        let mut next = current.value.clone();
        let version = next.tariff.add_version(
            "periods",
            effective,
            price_board("periods", &req.periods)?,
            now,
        )?;
        next.updated_at = now;
        let note = format!("tariff version {} from {effective}", version.version);
        self.save_station(p, current, next, "schedule_tariff", &note)
            .await?;
        Ok(pb::ScheduleTariffResponse {
            version: Some(tariff_version_to_pb(&version)),
        })
    }

    pub(super) async fn list_tariff_versions_(
        &self,
        p: &Principal,
        req: pb::ListTariffVersionsRequest,
    ) -> Result<pb::ListTariffVersionsResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let station = self
            .load_station(p, &op, req.station_id.trim(), Access::Read)
            .await?;
        Ok(pb::ListTariffVersionsResponse {
            versions: station
                .value
                .tariff
                .versions
                .iter()
                .map(tariff_version_to_pb)
                .collect(),
        })
    }

    pub(super) async fn update_station_(
        &self,
        p: &Principal,
        req: pb::UpdateStationRequest,
    ) -> Result<pb::UpdateStationResponse, Error> {
        let input = req
            .station
            .ok_or_else(|| Error::bad_field("station", "must be set"))?;
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &[
                "name",
                "kind",
                "address",
                "location",
                "opening_hours",
                "service_phone",
                "connection_mode",
                "service_zone",
                "price_board",
                "service_items",
                "accept_any_id_token",
            ],
        )?;
        let op = operator_of(p, &input.operator_id)?;
        let current = self
            .load_station(p, &op, input.station_id.trim(), Access::Write)
            .await?;
        let mut next = current.value.clone();
        for path in &paths {
            match path.as_str() {
                "name" => next.name = input.name.clone(),
                "kind" => next.kind = station_kind("station.kind", input.kind)?,
                "address" => next.address = input.address.clone(),
                "location" => {
                    next.location = location("station.location", input.location.as_ref())?
                }
                "opening_hours" => next.opening_hours = input.opening_hours.clone(),
                "service_phone" => next.service_phone = input.service_phone.clone(),
                "connection_mode" => {
                    next.connection_mode =
                        connection_mode("station.connection_mode", input.connection_mode)?
                            .ok_or_else(|| {
                                Error::invalid("station.connection_mode", "BASE-2", "must be set")
                            })?
                }
                "service_zone" => {
                    next.service_zone = service_zone("station.service_zone", input.service_zone)?
                }
                // REQ BASE-3, MON-10: a new board is a new tariff version, in force from now.
                "price_board" => {
                    let now = self.clock.now();
                    next.tariff.add_version(
                        "station.price_board",
                        now,
                        price_board("station.price_board", &input.price_board)?,
                        now,
                    )?;
                }
                "accept_any_id_token" => next.accept_any_id_token = input.accept_any_id_token,
                _ => next.service_items = input.service_items.clone(),
            }
        }
        next.updated_at = self.clock.now();
        let next = rules::validate_station(next)?;
        self.save_station(p, current, next, "update", "")
            .await
            .map(|station| pb::UpdateStationResponse {
                station: Some(station),
            })
    }

    pub(super) async fn save_station(
        &self,
        p: &Principal,
        current: Versioned<Station>,
        next: Station,
        action: &'static str,
        note: &str,
    ) -> Result<pb::Station, Error> {
        let change = self.change(
            p,
            "station",
            &next.operator_id,
            &next.station_id,
            action,
            note,
            Some(&current.value),
            &next,
        );
        self.store
            .update_station(&next, current.version, &change)
            .await?;
        self.announce(&change).await;
        Ok(station_to_pb(&next, self.clock.now()))
    }

    pub(super) async fn transition(
        &self,
        p: &Principal,
        operator_id: &str,
        station_id: &str,
        action: &'static str,
        apply: impl FnOnce(Station) -> Result<Station, Error>,
    ) -> Result<pb::Station, Error> {
        let op = operator_of(p, operator_id)?;
        let current = self
            .load_station(p, &op, station_id.trim(), Access::Write)
            .await?;
        let next = apply(current.value.clone())?;
        self.save_station(p, current, next, action, "").await
    }

    pub(super) async fn commission_(
        &self,
        p: &Principal,
        req: pb::CommissionStationRequest,
    ) -> Result<pb::Station, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let current = self
            .load_station(p, &op, req.station_id.trim(), Access::Write)
            .await?;
        let station_filters = [
            Filter::Eq("operator_id", op.clone()),
            Filter::Eq("station_id", current.value.station_id.clone()),
        ];
        let piles = self
            .store
            .list_piles(&station_filters, &Page::WHOLE_STATION)
            .await?;
        let certificates = self.store.list_certificates(&station_filters).await?;
        let next = rules::commission(
            current.value.clone(),
            &piles,
            &certificates,
            self.clock.now(),
        )?;
        // REQ BASE-2: enough published trial-operation days at the availability required,
        // as the telemetry component published them.
        let days = self.trial.days(&op, &next.station_id).await?;
        commissioning_gate(&days, &self.commissioning)?;
        self.save_station(p, current, next, "commission", "").await
    }
}
