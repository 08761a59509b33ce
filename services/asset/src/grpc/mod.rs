//! The gRPC face of the asset service: translation, access checks and persistence calls. The
//! rules themselves live in [`crate::domain`].

mod charge_points;
mod convert;
mod equipment;
mod history;
mod metrology;
mod operators;
mod piles;
mod public;
mod stations;

pub use charge_points::ChargePointApi;
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
    /// Steps after a commit: a lifecycle change reaching the pile (crate::availability).
    outbox: Option<chargemesh_kit::outbox::Outbox>,
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
            outbox: None,
        }
    }

    /// Carries out the steps that follow a commit through `outbox` (its retries are the
    /// outbox runner's).
    pub fn with_outbox(mut self, outbox: chargemesh_kit::outbox::Outbox) -> Self {
        self.outbox = Some(outbox);
        self
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
    get_public_station(pb::GetPublicStationRequest) -> pb::GetPublicStationResponse => get_public_station_;
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
