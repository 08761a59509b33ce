//! What telemetry knows of the registry, read from the asset component over the mesh: each
//! operator's stations and piles, cached. A cached operator is reloaded when the asset component
//! announces a change of its registry on the bus (topic `registry`), when a report names a pile
//! the cache does not know, or when the entry is older than its time to live — so a lost event
//! costs at most the time to live, never a report.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Where the cache reads an operator's index from: the asset component, or a test's stand-in.
#[tonic::async_trait]
pub trait IndexSource: Send + Sync + std::fmt::Debug {
    /// The operator's stations and piles; `None` when the operator is not registered.
    async fn operator_index(&self, operator_id: &str) -> Result<Option<OperatorIndex>, Error>;
}

#[tonic::async_trait]
impl IndexSource for AssetClient {
    async fn operator_index(&self, operator_id: &str) -> Result<Option<OperatorIndex>, Error> {
        if !self.operator_exists(operator_id).await? {
            return Ok(None);
        }
        let mut index = OperatorIndex::default();
        for s in self
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
        for p in self.piles(operator_id, "").await? {
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
        Ok(Some(index))
    }
}

/// A cached operator: when it was read, and what.
type Cached = (Instant, Arc<OperatorIndex>);

/// The registry cache of the ingest path.
///
/// An index past its time to live is still used while it is read again in the background: the
/// time to live is the net under a lost change event, and an operator of 100,000 piles takes
/// 200 pages to read, during which every report of its piles would otherwise wait. A pile the
/// index lacks, or a change announced on the bus, still waits for a fresh read.
#[derive(Debug)]
pub struct Registry {
    asset: AssetClient,
    source: Arc<dyn IndexSource>,
    cache: RwLock<HashMap<String, Cached>>,
    /// Each operator's load in progress, which concurrent misses wait for.
    loading: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Operators being read again in the background.
    refreshing: std::sync::Mutex<HashSet<String>>,
    /// Counts announced changes, so a background read begun before one is not kept.
    changes: AtomicU64,
    ttl: Duration,
}

impl Registry {
    pub fn new(asset: AssetClient, ttl: Duration) -> Self {
        Self::with_source(asset.clone(), Arc::new(asset), ttl)
    }

    /// A cache reading its indexes from `source`.
    pub fn with_source(asset: AssetClient, source: Arc<dyn IndexSource>, ttl: Duration) -> Self {
        Self {
            asset,
            source,
            cache: RwLock::new(HashMap::new()),
            loading: std::sync::Mutex::new(HashMap::new()),
            refreshing: std::sync::Mutex::new(HashSet::new()),
            changes: AtomicU64::new(0),
            ttl,
        }
    }

    pub fn asset(&self) -> &AssetClient {
        &self.asset
    }

    /// Reads an operator's index from the source for `why`, logging how many piles it held and
    /// how long it took (an operator of 100,000 piles takes seconds).
    async fn read(&self, operator_id: &str, why: &str) -> Result<Option<OperatorIndex>, Error> {
        let began = Instant::now();
        let read = self.source.operator_index(operator_id).await;
        if let Ok(Some(index)) = &read {
            tracing::debug!(
                operator_id,
                why,
                piles = index.piles.len(),
                elapsed_ms = began.elapsed().as_millis() as u64,
                "registry read"
            );
        }
        read
    }

    /// Forgets an operator after a change of its registry.
    pub fn invalidate(&self, operator_id: &str) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        self.changes.fetch_add(1, Ordering::SeqCst);
        cache.remove(operator_id);
    }

    fn cached(&self, operator_id: &str) -> Option<Cached> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(operator_id)
            .cloned()
    }

    fn gate(&self, operator_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(operator_id.to_owned())
            .or_default()
            .clone()
    }

    /// The operator's index; read afresh when the cache lacks it or `pile_id`, read again in the
    /// background when it is past its time to live. `None` when the operator is not registered.
    pub async fn index(
        self: &Arc<Self>,
        operator_id: &str,
        pile_id: &str,
    ) -> Result<Option<Arc<OperatorIndex>>, Error> {
        let cached = self.cached(operator_id);
        if let Some((loaded, index)) = &cached
            && (pile_id.is_empty() || index.piles.contains_key(pile_id))
        {
            if loaded.elapsed() >= self.ttl {
                self.refresh(operator_id);
            }
            return Ok(Some(index.clone()));
        }
        // One load per operator at a time: a thousand piles connecting at once wait for the
        // one load their first started, instead of each reading the whole registry.
        let asked = Instant::now();
        let gate = self.gate(operator_id);
        let _loading = gate.lock().await;
        if let Some((loaded, index)) = self.cached(operator_id)
            && loaded >= asked
        {
            // Loaded while this one waited: as new as a load of its own would be.
            return Ok(Some(index));
        }
        let changes = self.changes.load(Ordering::SeqCst);
        let index = match (self.read(operator_id, "miss").await, cached) {
            (Ok(None), _) => return Ok(None),
            (Ok(Some(index)), _) => Arc::new(index),
            // The registry is unreachable: what was known stays good rather than refusing
            // reports from piles that were registered a moment ago.
            (Err(error), Some((_, stale))) => {
                tracing::warn!(operator_id, %error, "registry unavailable, using the cached copy");
                return Ok(Some(stale));
            }
            (Err(error), None) => return Err(error),
        };
        // Answered either way; kept only when no change was announced during the read, as a
        // background read is.
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if self.changes.load(Ordering::SeqCst) == changes {
            cache.insert(operator_id.to_owned(), (Instant::now(), index.clone()));
        }
        Ok(Some(index))
    }

    /// Reads an operator's index again in the background, once at a time; the cached one serves
    /// until it is replaced. A read begun before an announced change is dropped (the change
    /// removed the entry, and the next report reads it afresh).
    fn refresh(self: &Arc<Self>, operator_id: &str) {
        if !self
            .refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(operator_id.to_owned())
        {
            return;
        }
        // Counted when asked: an announced change after this, even before the read begins,
        // drops what it reads.
        let changes = self.changes.load(Ordering::SeqCst);
        let (this, operator_id) = (self.clone(), operator_id.to_owned());
        tokio::spawn(async move {
            let gate = this.gate(&operator_id);
            let loading = gate.lock().await;
            let read = this.read(&operator_id, "time to live").await;
            {
                let mut cache = this.cache.write().unwrap_or_else(|e| e.into_inner());
                if this.changes.load(Ordering::SeqCst) == changes {
                    match read {
                        Ok(Some(index)) => {
                            cache.insert(operator_id.clone(), (Instant::now(), Arc::new(index)));
                        }
                        Ok(None) => {
                            cache.remove(&operator_id);
                        }
                        // Kept, and tried again a time to live from now.
                        Err(error) => {
                            tracing::warn!(%operator_id, %error, "registry unavailable, using the cached copy");
                            if let Some(entry) = cache.get_mut(&operator_id) {
                                entry.0 = Instant::now();
                            }
                        }
                    }
                }
            }
            drop(loading);
            this.refreshing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&operator_id);
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A registry of one operator whose reads wait while `hold` has no permit.
    #[derive(Debug)]
    struct Source {
        piles: std::sync::Mutex<Vec<&'static str>>,
        reads: AtomicUsize,
        /// Reads begun, answered or still held.
        begun: AtomicUsize,
        hold: tokio::sync::Semaphore,
    }

    impl Source {
        fn new(piles: &[&'static str]) -> Arc<Self> {
            Arc::new(Self {
                piles: std::sync::Mutex::new(piles.to_vec()),
                reads: AtomicUsize::new(0),
                begun: AtomicUsize::new(0),
                hold: tokio::sync::Semaphore::new(1_000),
            })
        }

        /// Reads wait from now on.
        fn block(&self) {
            self.hold.forget_permits(usize::MAX);
        }

        fn release(&self) {
            self.hold.add_permits(1_000);
        }
    }

    #[tonic::async_trait]
    impl IndexSource for Source {
        async fn operator_index(&self, _operator: &str) -> Result<Option<OperatorIndex>, Error> {
            self.begun.fetch_add(1, Ordering::SeqCst);
            let _permit = self
                .hold
                .acquire()
                .await
                .map_err(|_| Error::Unavailable("closed".into()))?;
            self.reads.fetch_add(1, Ordering::SeqCst);
            let mut index = OperatorIndex::default();
            for pile in self.piles.lock().expect("piles").iter() {
                index.piles.insert(
                    (*pile).to_owned(),
                    PileRef {
                        station_id: "S1".into(),
                        connectors: vec![format!("{pile}-1")],
                        rated_power_kw: 7.0,
                        retired: false,
                    },
                );
            }
            Ok(Some(index))
        }
    }

    fn registry(source: Arc<Source>, ttl: Duration) -> Arc<Registry> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let nowhere = chargemesh_kit::tls::mesh_channel("https://127.0.0.1:1", Arc::new(client))
            .expect("channel");
        Arc::new(Registry::with_source(
            AssetClient::new(nowhere),
            source,
            ttl,
        ))
    }

    /// Waits (bounded, as a guard against a hang) until no background read is under way.
    async fn settled(registry: &Registry) {
        for _ in 0..1_000 {
            if registry.refreshing.lock().expect("refreshing").is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("a background read never finished");
    }

    #[tokio::test]
    async fn a_stale_index_answers_at_once_and_is_replaced_by_one_background_read() {
        let source = Source::new(&["P1"]);
        // Every index is stale at once.
        let registry = registry(source.clone(), Duration::ZERO);
        let first = registry
            .index("OP", "P1")
            .await
            .expect("read")
            .expect("known");
        assert!(first.piles.contains_key("P1"));
        source.block();
        source.piles.lock().expect("piles").push("P2");
        for _ in 0..3 {
            let stale = tokio::time::timeout(Duration::from_secs(10), registry.index("OP", "P1"))
                .await
                .expect("a stale index must not wait for the registry")
                .expect("read")
                .expect("known");
            assert!(!stale.piles.contains_key("P2"));
        }
        source.release();
        settled(&registry).await;
        // One read at first, one in the background for the three stale answers.
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
        let (_, fresh) = registry.cached("OP").expect("cached");
        assert!(fresh.piles.contains_key("P2"));
    }

    #[tokio::test]
    async fn a_pile_the_index_lacks_waits_for_a_fresh_read() {
        let source = Source::new(&["P1"]);
        let registry = registry(source.clone(), Duration::from_secs(3600));
        registry.index("OP", "P1").await.expect("read");
        source.piles.lock().expect("piles").push("P2");
        let index = registry
            .index("OP", "P2")
            .await
            .expect("read")
            .expect("known");
        assert!(index.piles.contains_key("P2"));
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_background_read_begun_before_an_announced_change_is_not_kept() {
        let source = Source::new(&["P1"]);
        let registry = registry(source.clone(), Duration::ZERO);
        registry.index("OP", "P1").await.expect("read");
        source.block();
        // Starts the background read, which waits for the registry.
        registry.index("OP", "P1").await.expect("read");
        registry.invalidate("OP");
        source.release();
        settled(&registry).await;
        assert!(
            registry.cached("OP").is_none(),
            "a read from before the change was kept"
        );
    }

    #[tokio::test]
    async fn a_fresh_read_under_way_when_a_change_is_announced_answers_but_is_not_kept() {
        let source = Source::new(&["P1"]);
        let registry = registry(source.clone(), Duration::from_secs(3600));
        source.block();
        let asking = {
            let registry = registry.clone();
            tokio::spawn(async move { registry.index("OP", "P1").await })
        };
        for _ in 0..1_000 {
            if source.begun.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            source.begun.load(Ordering::SeqCst),
            1,
            "the read never began"
        );
        registry.invalidate("OP");
        source.release();
        let answered = asking.await.expect("task").expect("read").expect("known");
        assert!(answered.piles.contains_key("P1"));
        assert!(
            registry.cached("OP").is_none(),
            "a read from before the change was kept"
        );
    }
}
