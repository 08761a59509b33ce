//! What telemetry knows of the registry, read from the asset component over the mesh: each
//! operator's stations and piles, cached. A cached operator is reloaded when the asset component
//! announces a change of its registry on the bus (topic `registry`), when a report names a pile
//! the cache does not know, or when the entry is older than its time to live — so a lost event
//! costs at most the time to live, never a report.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prost::Message as _;
use tonic::Code;

use chargemesh_kit::Error;
use chargemesh_kit::events::SharedBus;
use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::asset::v1 as apb;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;

use crate::domain::{OperatorIndex, PileRef, StationRef};

/// The bus topic the asset component announces registry changes on.
pub const REGISTRY_TOPIC: &str = "registry";
/// The event type of a registry change (`chargemesh.asset.v1.RegistryChanged`).
pub const REGISTRY_EVENT: &str = "chargemesh.asset.v1.RegistryChanged";

/// The largest page the asset API serves.
const PAGE: i32 = 500;

/// A client of the asset component's registry, as the telemetry component (a mesh service).
#[derive(Debug, Clone)]
pub struct AssetClient(AssetServiceClient<MeshChannel>);

impl AssetClient {
    pub fn new(channel: MeshChannel) -> Self {
        Self(AssetServiceClient::new(channel))
    }

    fn client(&self) -> AssetServiceClient<MeshChannel> {
        self.0.clone()
    }

    /// A station, or `None` when there is none.
    pub async fn station(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Option<apb::Station>, Error> {
        let request = apb::GetStationRequest {
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
        };
        match self.client().get_station(request).await {
            Ok(reply) => Ok(reply.into_inner().station),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(upstream(status)),
        }
    }

    /// Every station of an operator (every operator when empty), optionally in one state.
    pub async fn stations(
        &self,
        operator_id: &str,
        state: apb::StationState,
    ) -> Result<Vec<apb::Station>, Error> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client()
                .list_stations(apb::ListStationsRequest {
                    operator_id: operator_id.to_owned(),
                    area_code: String::new(),
                    page_size: PAGE,
                    page_token,
                    state: state as i32,
                })
                .await
                .map_err(upstream)?
                .into_inner();
            out.extend(page.stations);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Every pile of an operator, or of one of its stations.
    pub async fn piles(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Vec<apb::Pile>, Error> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client()
                .list_piles(apb::ListPilesRequest {
                    operator_id: operator_id.to_owned(),
                    station_id: station_id.to_owned(),
                    page_size: PAGE,
                    page_token,
                })
                .await
                .map_err(upstream)?
                .into_inner();
            out.extend(page.piles);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Whether the operator is registered.
    pub async fn operator_exists(&self, operator_id: &str) -> Result<bool, Error> {
        let request = apb::GetOperatorRequest {
            operator_id: operator_id.to_owned(),
        };
        match self.client().get_operator(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(upstream(status)),
        }
    }

    /// REQ BASE-2: tells the registry a filed station is connected, by its first report.
    pub async fn connect_station(
        &self,
        operator_id: &str,
        station_id: &str,
        note: String,
    ) -> Result<(), Error> {
        let request = apb::ConnectStationRequest {
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
            connection_mode: apb::ConnectionMode::Unspecified as i32,
            note,
        };
        self.client()
            .connect_station(request)
            .await
            .map(|_| ())
            .map_err(upstream)
    }
}

/// A failed call to the asset component: unavailable to our caller, whatever it was upstream,
/// except a refusal it made for a reason the caller can act on.
fn upstream(status: tonic::Status) -> Error {
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound => {
            Error::Upstream(status.code(), status.message().to_owned())
        }
        _ => Error::Upstream(
            Code::Unavailable,
            format!("the registry is unavailable: {}", status.message()),
        ),
    }
}

/// The registry cache of the ingest path.
#[derive(Debug)]
pub struct Registry {
    asset: AssetClient,
    cache: RwLock<HashMap<String, (Instant, Arc<OperatorIndex>)>>,
    /// Each operator's load in progress, which concurrent misses wait for.
    loading: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    ttl: Duration,
}

impl Registry {
    pub fn new(asset: AssetClient, ttl: Duration) -> Self {
        Self {
            asset,
            cache: RwLock::new(HashMap::new()),
            loading: std::sync::Mutex::new(HashMap::new()),
            ttl,
        }
    }

    pub fn asset(&self) -> &AssetClient {
        &self.asset
    }

    /// Forgets an operator after a change of its registry.
    pub fn invalidate(&self, operator_id: &str) {
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(operator_id);
    }

    /// The operator's index, reloaded when stale or when it lacks `pile_id`. `None` when the
    /// operator is not registered.
    pub async fn index(
        &self,
        operator_id: &str,
        pile_id: &str,
    ) -> Result<Option<Arc<OperatorIndex>>, Error> {
        let cached = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(operator_id)
            .cloned();
        if let Some((loaded, index)) = &cached
            && loaded.elapsed() < self.ttl
            && (pile_id.is_empty() || index.piles.contains_key(pile_id))
        {
            return Ok(Some(index.clone()));
        }
        // One load per operator at a time: a thousand piles connecting at once wait for the
        // one load their first started, instead of each reading the whole registry.
        let asked = Instant::now();
        let gate = self
            .loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(operator_id.to_owned())
            .or_default()
            .clone();
        let _loading = gate.lock().await;
        let fresh = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(operator_id)
            .cloned();
        if let Some((loaded, index)) = &fresh
            && *loaded >= asked
        {
            // Loaded while this one waited: as new as a load of its own would be.
            return Ok(Some(index.clone()));
        }
        let loaded = match self.asset.operator_exists(operator_id).await {
            Ok(false) => return Ok(None),
            Ok(true) => self.load(operator_id).await,
            Err(error) => Err(error),
        };
        let index = match (loaded, cached) {
            (Ok(index), _) => Arc::new(index),
            // The registry is unreachable: what was known stays good rather than refusing
            // reports from piles that were registered a moment ago.
            (Err(error), Some((_, stale))) => {
                tracing::warn!(operator_id, %error, "registry unavailable, using the cached copy");
                return Ok(Some(stale));
            }
            (Err(error), None) => return Err(error),
        };
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(operator_id.to_owned(), (Instant::now(), index.clone()));
        Ok(Some(index))
    }

    async fn load(&self, operator_id: &str) -> Result<OperatorIndex, Error> {
        let mut index = OperatorIndex::default();
        for s in self
            .asset
            .stations(operator_id, apb::StationState::Unspecified)
            .await?
        {
            index.stations.insert(
                s.station_id,
                StationRef {
                    area_code: s.area_code,
                    filed: s.state == apb::StationState::Filed as i32,
                },
            );
        }
        for p in self.asset.piles(operator_id, "").await? {
            index.piles.insert(
                p.pile_id,
                PileRef {
                    station_id: p.station_id,
                    connectors: p.connectors.into_iter().map(|c| c.connector_id).collect(),
                    rated_power_kw: p.rated_power_kw,
                    retired: p.state == apb::PileState::Retired as i32,
                },
            );
        }
        Ok(index)
    }

    /// Follows the asset component's registry changes on the bus and forgets the operators they
    /// name, so the next report reloads them.
    pub fn follow_changes(self: &Arc<Self>, bus: SharedBus) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            // Each replica keeps its own cache: its own consumer group.
            let group = format!("registry-{}", uuid::Uuid::now_v7().simple());
            loop {
                let mut sub = match bus.subscribe(REGISTRY_TOPIC, &group, "cache").await {
                    Ok(sub) => sub,
                    Err(error) => {
                        tracing::warn!(%error, "cannot follow registry changes, retrying");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        continue;
                    }
                };
                loop {
                    match sub.next().await {
                        Ok(delivery) => {
                            let envelope = &delivery.envelope;
                            if envelope.r#type == REGISTRY_EVENT {
                                match apb::RegistryChanged::decode(envelope.payload.as_slice()) {
                                    Ok(change) => this.invalidate(&change.operator_id),
                                    Err(_) => this.invalidate(&envelope.operator_id),
                                }
                            }
                            let _ = sub.ack(&delivery.id).await;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "registry change feed failed, resubscribing");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    }
                }
            }
        })
    }
}
