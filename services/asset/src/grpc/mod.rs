//! The gRPC face of the asset service: translation, access checks and persistence calls. The
//! rules themselves live in [`crate::domain`].

mod convert;

pub use convert::{pile_to_pb, station_to_pb};

/// The bus topic registry changes are announced on.
pub const REGISTRY_TOPIC: &str = "registry";
/// The type of a registry change event (`chargemesh.asset.v1.RegistryChanged`).
pub const REGISTRY_EVENT: &str = "chargemesh.asset.v1.RegistryChanged";

use std::sync::Arc;

use serde::Serialize;
use tonic::Request;

use chargemesh_kit::clock::{SharedClock, china_date};
use chargemesh_kit::db::StoreError;
use chargemesh_kit::error::{Reply, reply};
use chargemesh_kit::events::{SharedBus, envelope};
use chargemesh_kit::paging::{decode_token, encode_token, page_size};
use chargemesh_kit::server::principal;
use chargemesh_kit::time::from_timestamp;
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::asset::v1 as pb;
use chargemesh_proto::asset::v1::asset_service_server::{AssetService, AssetServiceServer};

use crate::domain::codes::{area_prefix, parse_date, validate_area_code};
use crate::domain::commissioning::{CommissioningSettings, commissioning_gate};
use crate::domain::model::*;
use crate::domain::rules;
use crate::domain::tenancy::{Access, Decision, PLATFORM_ADMIN, Target, decide, station_scope};
use crate::store::{
    AssetStore, ChangeQuery, Filter, NewChange, Page, StationCertificate, Versioned,
};
use crate::trial::TrialDays;
use convert::*;

/// The asset service.
#[derive(Debug, Clone)]
pub struct AssetApi {
    store: Arc<dyn AssetStore>,
    clock: SharedClock,
    /// Where commissioning reads the published trial-operation days, and what it asks of them.
    trial: TrialDays,
    commissioning: CommissioningSettings,
    /// Every committed registry change is announced here (topic `registry`), so caches
    /// elsewhere reload at once.
    bus: chargemesh_kit::events::Publisher,
}

/// A unique violation on creation means the record exists; other store errors pass through.
fn exists_as(err: StoreError, what: impl Into<String>) -> Error {
    match err {
        StoreError::Unique(_) => Error::AlreadyExists(what.into()),
        other => Error::Store(other),
    }
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn is_platform_admin(p: &Principal) -> bool {
    matches!(
        p,
        Principal::Staff {
            operator_id: None,
            ..
        }
    ) && p.has_role(PLATFORM_ADMIN)
}

/// The operator a request is about: the one named, or the caller's own.
fn operator_of(p: &Principal, requested: &str) -> Result<String, Error> {
    let requested = requested.trim();
    if !requested.is_empty() {
        return Ok(requested.to_owned());
    }
    p.operator_id()
        .map(str::to_owned)
        .ok_or_else(|| Error::bad_field("operator_id", "is required"))
}

fn mask_paths(
    mask: Option<&prost_types::FieldMask>,
    allowed: &[&str],
) -> Result<Vec<String>, Error> {
    let paths = mask.map(|m| m.paths.clone()).unwrap_or_default();
    if paths.is_empty() {
        return Err(Error::bad_field(
            "update_mask",
            "must name the fields to change",
        ));
    }
    if let Some(bad) = paths.iter().find(|p| !allowed.contains(&p.as_str())) {
        return Err(Error::bad_field(
            "update_mask",
            format!("cannot change {bad}; changeable: {}", allowed.join(", ")),
        ));
    }
    Ok(paths)
}

fn page_from(token: &str, size: i32) -> Result<Page, Error> {
    Ok(Page {
        after: decode_token(token, 2)?.map(|mut parts| {
            let id = parts.pop().unwrap_or_default();
            (parts.pop().unwrap_or_default(), id)
        }),
        limit: page_size(size)?,
    })
}

fn next_token<T>(items: &[T], page: &Page, key: impl Fn(&T) -> (&str, &str)) -> String {
    match items.last() {
        Some(last) if items.len() as u32 >= page.limit => {
            let (op, id) = key(last);
            encode_token(&[op, id])
        }
        _ => String::new(),
    }
}

impl AssetApi {
    pub fn new(
        store: Arc<dyn AssetStore>,
        clock: SharedClock,
        trial: TrialDays,
        commissioning: CommissioningSettings,
        bus: SharedBus,
    ) -> Self {
        Self {
            store,
            clock,
            trial,
            commissioning,
            bus: chargemesh_kit::events::Publisher::spawn(bus, 1_024),
        }
    }

    /// Announces a committed change of an operator's registry. A lost announcement costs the
    /// caches their time to live, never data: the registry is the truth.
    async fn announce(&self, change: &NewChange) {
        let payload = pb::RegistryChanged {
            operator_id: change.operator_id.clone(),
            entity_type: change.entity_type.to_owned(),
            entity_id: change.entity_id.clone(),
        };
        let event = envelope(
            "asset",
            &change.operator_id,
            REGISTRY_EVENT,
            prost::Message::encode_to_vec(&payload),
            change.recorded_at,
        );
        self.bus.offer(REGISTRY_TOPIC, vec![event]);
    }

    pub fn into_server(self) -> AssetServiceServer<Self> {
        AssetServiceServer::new(self)
    }

    #[allow(clippy::too_many_arguments)]
    fn change<T: Serialize>(
        &self,
        p: &Principal,
        entity_type: &'static str,
        operator_id: &str,
        entity_id: &str,
        action: &'static str,
        note: &str,
        before: Option<&T>,
        after: &T,
    ) -> NewChange {
        NewChange {
            operator_id: operator_id.to_owned(),
            entity_type,
            entity_id: entity_id.to_owned(),
            action,
            actor: p.to_string(),
            note: note.trim().to_owned(),
            recorded_at: self.clock.now(),
            before: before.map(to_json),
            after: to_json(after),
        }
    }

    fn check(
        p: &Principal,
        target: Target<'_>,
        access: Access,
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        match decide(p, target, access) {
            Decision::Allow => Ok(()),
            Decision::Hidden => Err(Error::NotFound(what())),
            Decision::Denied => Err(Error::PermissionDenied(format!(
                "{} is read-only for {p}",
                what()
            ))),
        }
    }

    async fn load_station(
        &self,
        p: &Principal,
        operator_id: &str,
        station_id: &str,
        access: Access,
    ) -> Result<Versioned<Station>, Error> {
        let what = || format!("station {operator_id}/{station_id}");
        let found = self
            .store
            .station(operator_id, station_id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?;
        let target = Target {
            operator_id,
            station_id: Some(station_id),
            pile_id: None,
            area_code: Some(&found.value.area_code),
        };
        Self::check(p, target, access, what)?;
        Ok(found)
    }

    async fn load_pile(
        &self,
        p: &Principal,
        operator_id: &str,
        pile_id: &str,
        access: Access,
    ) -> Result<(Versioned<Pile>, Station), Error> {
        let what = || format!("pile {operator_id}/{pile_id}");
        let pile = self
            .store
            .pile(operator_id, pile_id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?;
        let station = self
            .store
            .station(operator_id, &pile.value.station_id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?
            .value;
        let target = Target {
            operator_id,
            station_id: Some(&station.station_id),
            pile_id: Some(pile_id),
            area_code: Some(&station.area_code),
        };
        Self::check(p, target, access, what)?;
        Ok((pile, station))
    }

    fn can_see_operator(p: &Principal, operator_id: &str) -> bool {
        match p {
            // Operator identity and hotline are public notice (REQ SVC-1).
            Principal::Service { .. } | Principal::Regulator { .. } => true,
            Principal::Staff {
                operator_id: None, ..
            } => is_platform_admin(p),
            _ => p.operator_id() == Some(operator_id),
        }
    }

    fn can_write_operator(p: &Principal, operator_id: &str) -> bool {
        match p {
            Principal::Service { .. } => true,
            Principal::Staff {
                operator_id: None, ..
            } => is_platform_admin(p),
            Principal::Operator { operator_id: own }
            | Principal::Staff {
                operator_id: Some(own),
                ..
            } => own == operator_id,
            _ => false,
        }
    }

    // ---- operators ----

    async fn create_operator_(
        &self,
        p: &Principal,
        req: pb::CreateOperatorRequest,
    ) -> Result<pb::CreateOperatorResponse, Error> {
        let input = req
            .operator
            .ok_or_else(|| Error::bad_field("operator", "must be set"))?;
        let now = self.clock.now();
        let op = rules::validate_operator(Operator {
            operator_id: String::new(),
            credit_code: input.credit_code,
            name: input.name,
            business_scope: input.business_scope,
            supervision_hotline: input.supervision_hotline,
            created_at: now,
            updated_at: now,
        })?;
        if !Self::can_write_operator(p, &op.operator_id) {
            return Err(Error::PermissionDenied(format!(
                "{p} cannot register operator {}; an operator registers itself with its own certificate",
                op.operator_id
            )));
        }
        let change = self.change(
            p,
            "operator",
            &op.operator_id,
            &op.operator_id,
            "create",
            "",
            None::<&Operator>,
            &op,
        );
        self.store
            .create_operator(&op, &change)
            .await
            .map_err(|e| exists_as(e, format!("operator {}", op.operator_id)))?;
        self.announce(&change).await;
        Ok(pb::CreateOperatorResponse {
            operator: Some(operator_to_pb(&op)),
        })
    }

    async fn get_operator_(
        &self,
        p: &Principal,
        req: pb::GetOperatorRequest,
    ) -> Result<pb::GetOperatorResponse, Error> {
        let id = operator_of(p, &req.operator_id)?;
        let what = || format!("operator {id}");
        if !Self::can_see_operator(p, &id) {
            return Err(Error::NotFound(what()));
        }
        let op = self
            .store
            .operator(&id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?;
        Ok(pb::GetOperatorResponse {
            operator: Some(operator_to_pb(&op.value)),
        })
    }

    async fn list_operators_(
        &self,
        p: &Principal,
        req: pb::ListOperatorsRequest,
    ) -> Result<pb::ListOperatorsResponse, Error> {
        let page = page_from(&req.page_token, req.page_size)?;
        let filters = match p {
            Principal::Service { .. } | Principal::Regulator { .. } => vec![],
            _ if is_platform_admin(p) => vec![],
            _ => match p.operator_id() {
                Some(own) => vec![Filter::Eq("operator_id", own.to_owned())],
                None => return Ok(pb::ListOperatorsResponse::default()),
            },
        };
        let ops = self.store.list_operators(&filters, &page).await?;
        Ok(pb::ListOperatorsResponse {
            next_page_token: next_token(&ops, &page, |o| (&o.operator_id, &o.operator_id)),
            operators: ops.iter().map(operator_to_pb).collect(),
        })
    }

    async fn update_operator_(
        &self,
        p: &Principal,
        req: pb::UpdateOperatorRequest,
    ) -> Result<pb::UpdateOperatorResponse, Error> {
        let input = req
            .operator
            .ok_or_else(|| Error::bad_field("operator", "must be set"))?;
        let paths = mask_paths(
            req.update_mask.as_ref(),
            &["name", "business_scope", "supervision_hotline"],
        )?;
        let id = operator_of(p, &input.operator_id)?;
        let what = || format!("operator {id}");
        if !Self::can_see_operator(p, &id) {
            return Err(Error::NotFound(what()));
        }
        if !Self::can_write_operator(p, &id) {
            return Err(Error::PermissionDenied(format!(
                "{} is read-only for {p}",
                what()
            )));
        }
        let current = self
            .store
            .operator(&id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?;
        let mut next = current.value.clone();
        for path in &paths {
            match path.as_str() {
                "name" => next.name = input.name.clone(),
                "business_scope" => next.business_scope = input.business_scope.clone(),
                _ => next.supervision_hotline = input.supervision_hotline.clone(),
            }
        }
        next.updated_at = self.clock.now();
        let next = rules::validate_operator(next)?;
        let change = self.change(
            p,
            "operator",
            &id,
            &id,
            "update",
            "",
            Some(&current.value),
            &next,
        );
        self.store
            .update_operator(&next, current.version, &change)
            .await?;
        self.announce(&change).await;
        Ok(pb::UpdateOperatorResponse {
            operator: Some(operator_to_pb(&next)),
        })
    }

    // ---- stations ----

    async fn create_station_(
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

    async fn get_station_(
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

    async fn list_stations_(
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
    async fn schedule_tariff_(
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

    async fn list_tariff_versions_(
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

    async fn update_station_(
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

    async fn save_station(
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

    async fn transition(
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

    async fn commission_(
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

    // ---- piles ----

    async fn create_pile_(
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
                _ => exists_as(e, format!("pile {op}/{}", pile.pile_id)),
            })?;
        self.announce(&change).await;
        Ok(pb::CreatePileResponse {
            pile: Some(pile_to_pb(&pile)),
        })
    }

    async fn get_pile_(
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

    async fn list_piles_(
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

    async fn save_pile(
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
        self.store
            .update_pile(&next, current.version, &change)
            .await
            .map_err(|e| match &e {
                StoreError::Unique(_) => Error::AlreadyExists(
                    "a connector id of this pile (connector ids are unique per operator)".into(),
                ),
                _ => Error::Store(e),
            })?;
        self.announce(&change).await;
        Ok(pile_to_pb(&next))
    }

    async fn update_pile_(
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

    async fn pile_transition(
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

    // ---- equipment ledger ----

    async fn create_equipment_(
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

    async fn list_equipment_(
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

    async fn update_equipment_(
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

    // ---- metrology ----

    async fn create_certificate_(
        &self,
        p: &Principal,
        req: pb::CreateMetrologyCertificateRequest,
    ) -> Result<pb::CreateMetrologyCertificateResponse, Error> {
        let input = req
            .certificate
            .ok_or_else(|| Error::bad_field("certificate", "must be set"))?;
        let op = operator_of(p, &input.operator_id)?;
        let (pile, _) = self
            .load_pile(p, &op, input.pile_id.trim(), Access::Write)
            .await?;
        let now = self.clock.now();
        let cert = rules::validate_certificate(
            Certificate {
                operator_id: op.clone(),
                pile_id: pile.value.pile_id.clone(),
                certificate_id: uuid::Uuid::now_v7().to_string(),
                procedure: procedure("certificate.procedure", input.procedure)?,
                certificate_number: input.certificate_number,
                verifying_body: input.verifying_body,
                verified_on: parse_date("certificate.verified_on", &input.verified_on)?,
                valid_until: parse_date("certificate.valid_until", &input.valid_until)?,
                created_at: now,
            },
            &pile.value,
            china_date(now),
        )?;
        let stored = StationCertificate {
            station_id: pile.value.station_id.clone(),
            certificate: cert.clone(),
        };
        let change = self.change(
            p,
            "certificate",
            &op,
            &cert.certificate_id,
            "create",
            "",
            None::<&Certificate>,
            &cert,
        );
        self.store
            .create_certificate(&stored, &change)
            .await
            .map_err(|e| {
                exists_as(
                    e,
                    format!(
                        "certificate {} of {}",
                        cert.certificate_number, cert.verifying_body
                    ),
                )
            })?;
        self.announce(&change).await;
        Ok(pb::CreateMetrologyCertificateResponse {
            certificate: Some(certificate_to_pb(&cert)),
        })
    }

    async fn pile_certificates(&self, pile: &Pile) -> Result<Vec<Certificate>, Error> {
        let filters = [
            Filter::Eq("operator_id", pile.operator_id.clone()),
            Filter::Eq("pile_id", pile.pile_id.clone()),
        ];
        let mut certs = self.store.list_certificates(&filters).await?;
        certs.sort_by(|a, b| {
            b.verified_on
                .cmp(&a.verified_on)
                .then(b.created_at.cmp(&a.created_at))
        });
        Ok(certs)
    }

    async fn list_certificates_(
        &self,
        p: &Principal,
        req: pb::ListMetrologyCertificatesRequest,
    ) -> Result<pb::ListMetrologyCertificatesResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let (pile, _) = self
            .load_pile(p, &op, req.pile_id.trim(), Access::Read)
            .await?;
        let certs = self.pile_certificates(&pile.value).await?;
        Ok(pb::ListMetrologyCertificatesResponse {
            certificates: certs.iter().map(certificate_to_pb).collect(),
        })
    }

    async fn eligibility_(
        &self,
        p: &Principal,
        req: pb::CheckSettlementEligibilityRequest,
    ) -> Result<pb::CheckSettlementEligibilityResponse, Error> {
        let op = operator_of(p, &req.operator_id)?;
        let at = match &req.time {
            Some(ts) => from_timestamp(ts)
                .ok_or_else(|| Error::bad_field("time", "is not a valid timestamp"))?,
            None => self.clock.now(),
        };
        let (pile, _) = self
            .load_pile(p, &op, req.pile_id.trim(), Access::Read)
            .await?;
        let certs = self.pile_certificates(&pile.value).await?;
        let e = rules::settlement_eligibility(&pile.value, &certs, at);
        Ok(pb::CheckSettlementEligibilityResponse {
            eligible: e.eligible,
            reason: e.reason,
            certificate: e.certificate.as_ref().map(certificate_to_pb),
        })
    }

    // ---- history ----

    async fn list_changes_(
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

/// The trait impl: each simple RPC takes the principal the mesh layer resolved, runs its inner
/// method and maps the error once; the transitions below need a little more.
macro_rules! asset_service {
    ($( $name:ident($req:ty) -> $resp:ty => $inner:ident; )* { $($custom:tt)* }) => {
        #[tonic::async_trait]
        impl AssetService for AssetApi {
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

asset_service! {
    create_operator(pb::CreateOperatorRequest) -> pb::CreateOperatorResponse => create_operator_;
    get_operator(pb::GetOperatorRequest) -> pb::GetOperatorResponse => get_operator_;
    list_operators(pb::ListOperatorsRequest) -> pb::ListOperatorsResponse => list_operators_;
    update_operator(pb::UpdateOperatorRequest) -> pb::UpdateOperatorResponse => update_operator_;
    create_station(pb::CreateStationRequest) -> pb::CreateStationResponse => create_station_;
    get_station(pb::GetStationRequest) -> pb::GetStationResponse => get_station_;
    list_stations(pb::ListStationsRequest) -> pb::ListStationsResponse => list_stations_;
    update_station(pb::UpdateStationRequest) -> pb::UpdateStationResponse => update_station_;
    schedule_tariff(pb::ScheduleTariffRequest) -> pb::ScheduleTariffResponse => schedule_tariff_;
    list_tariff_versions(pb::ListTariffVersionsRequest) -> pb::ListTariffVersionsResponse => list_tariff_versions_;
    create_pile(pb::CreatePileRequest) -> pb::CreatePileResponse => create_pile_;
    get_pile(pb::GetPileRequest) -> pb::GetPileResponse => get_pile_;
    list_piles(pb::ListPilesRequest) -> pb::ListPilesResponse => list_piles_;
    update_pile(pb::UpdatePileRequest) -> pb::UpdatePileResponse => update_pile_;
    create_equipment(pb::CreateEquipmentRequest) -> pb::CreateEquipmentResponse => create_equipment_;
    list_equipment(pb::ListEquipmentRequest) -> pb::ListEquipmentResponse => list_equipment_;
    update_equipment(pb::UpdateEquipmentRequest) -> pb::UpdateEquipmentResponse => update_equipment_;
    create_metrology_certificate(pb::CreateMetrologyCertificateRequest) -> pb::CreateMetrologyCertificateResponse => create_certificate_;
    list_metrology_certificates(pb::ListMetrologyCertificatesRequest) -> pb::ListMetrologyCertificatesResponse => list_certificates_;
    check_settlement_eligibility(pb::CheckSettlementEligibilityRequest) -> pb::CheckSettlementEligibilityResponse => eligibility_;
    list_change_records(pb::ListChangeRecordsRequest) -> pb::ListChangeRecordsResponse => list_changes_;
    {
    async fn accept_station(&self, request: Request<pb::AcceptStationRequest>) -> Reply<pb::AcceptStationResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let now = self.clock.now();
        let result = async {
            let acceptance = acceptance(r.acceptance.as_ref())?;
            self.transition(&p, &r.operator_id, &r.station_id, "accept", |st| rules::accept(st, acceptance, now))
                .await
        };
        reply(result.await.map(|s| pb::AcceptStationResponse { station: Some(s) }))
    }

    async fn file_station(&self, request: Request<pb::FileStationRequest>) -> Reply<pb::FileStationResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let now = self.clock.now();
        let result = async {
            let filing = filing(r.filing.as_ref())?;
            self.transition(&p, &r.operator_id, &r.station_id, "file", |st| rules::file(st, filing, now))
                .await
        };
        reply(result.await.map(|s| pb::FileStationResponse { station: Some(s) }))
    }

    async fn connect_station(&self, request: Request<pb::ConnectStationRequest>) -> Reply<pb::ConnectStationResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let now = self.clock.now();
        let result = async {
            let mode = connection_mode("connection_mode", r.connection_mode)?;
            let op = operator_of(&p, &r.operator_id)?;
            let current = self
                .load_station(&p, &op, r.station_id.trim(), Access::Write)
                .await?;
            let next = rules::connect(current.value.clone(), mode, now)?;
            self.save_station(&p, current, next, "connect", &r.note).await
        };
        reply(result.await.map(|s| pb::ConnectStationResponse { station: Some(s) }))
    }

    async fn start_trial_operation(&self, request: Request<pb::StartTrialOperationRequest>) -> Reply<pb::StartTrialOperationResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let now = self.clock.now();
        let result = self
            .transition(&p, &r.operator_id, &r.station_id, "start_trial_operation", |st| rules::start_trial(st, now))
            .await;
        reply(result.map(|s| pb::StartTrialOperationResponse { station: Some(s) }))
    }

    async fn commission_station(&self, request: Request<pb::CommissionStationRequest>) -> Reply<pb::CommissionStationResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        reply(self.commission_(&p, r).await.map(|s| pb::CommissionStationResponse { station: Some(s) }))
    }


    async fn suspend_pile(&self, request: Request<pb::SuspendPileRequest>) -> Reply<pb::SuspendPileResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let now = self.clock.now();
        let result = async {
            let reason = suspension_reason("reason", r.reason)?;
            let note = r.note.clone();
            self.pile_transition(&p, &r.operator_id, &r.pile_id, "suspend", &r.note, |pile| {
                rules::suspend(pile, reason, r.evidence_refs, note, now)
            })
            .await
        };
        reply(result.await.map(|pile| pb::SuspendPileResponse { pile: Some(pile) }))
    }

    async fn resume_pile(&self, request: Request<pb::ResumePileRequest>) -> Reply<pb::ResumePileResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let now = self.clock.now();
        let result = self
            .pile_transition(&p, &r.operator_id, &r.pile_id, "resume", &r.note, |pile| rules::resume(pile, now))
            .await;
        reply(result.map(|pile| pb::ResumePileResponse { pile: Some(pile) }))
    }

    async fn retire_pile(&self, request: Request<pb::RetirePileRequest>) -> Reply<pb::RetirePileResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let now = self.clock.now();
        let result = self
            .pile_transition(&p, &r.operator_id, &r.pile_id, "retire", &r.reason, |pile| rules::retire(pile, &r.reason, now))
            .await;
        reply(result.map(|pile| pb::RetirePileResponse { pile: Some(pile) }))
    }
    }
}
