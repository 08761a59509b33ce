//! What telemetry knows of the registry, read from the asset component over the mesh: each
//! operator's stations and piles, cached.
//!
//! An operator is read whole once, when a report first needs it; an operator of 100,000 piles
//! takes 200 pages and seconds to read, so after that the cache is kept current piece by piece.
//! A change the asset component announces on the bus (topic `registry`) is read back as the one
//! station or pile it names and patched into the index; a pile a report names and the index lacks
//! is read alone the same way. The whole operator is read again, in the background while the
//! index it has keeps serving, when the entry passes its time to live (the net under a lost
//! announcement) or an announcement cannot be understood. No report waits for a whole read of an
//! operator the cache already holds.

mod changes;
mod client;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use prost::Message as _;

use chargemesh_kit::Error;
use chargemesh_kit::events::SharedBus;
use chargemesh_kit::metrics::KindLabels;
use chargemesh_proto::asset::v1 as apb;

use crate::domain::OperatorIndex;
use changes::{Dirty, Found};
pub use changes::{Entity, Touch, touch};
pub use client::{AssetClient, IndexSource};

/// The bus topic the asset component announces registry changes on.
pub const REGISTRY_TOPIC: &str = "registry";
/// The event type of a registry change (`chargemesh.asset.v1.RegistryChanged`).
pub const REGISTRY_EVENT: &str = "chargemesh.asset.v1.RegistryChanged";

/// Stations and piles read at once when patching an index.
const READS_IN_FLIGHT: usize = 16;
/// Between patch rounds, the patcher pauses this many times as long as its last round spent
/// copying indexes, and at most `MAX_PAUSE`.
const PAUSE_PER_COPY: u32 = 4;
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// How long a report naming a pile the index lacks waits for that pile to be read; past it, the
/// report is judged by the index as it is.
const PILE_READ_WAIT: Duration = Duration::from_secs(10);

/// A cached operator.
#[derive(Debug, Clone)]
struct Cached {
    /// When it was last read whole.
    read_at: Instant,
    /// Due to be read whole again before its time to live: a change could not be read.
    expired: bool,
    /// What it holds now.
    index: Arc<OperatorIndex>,
}

impl Cached {
    fn new(index: Arc<OperatorIndex>) -> Self {
        Self {
            read_at: Instant::now(),
            expired: false,
            index,
        }
    }

    fn due(&self, ttl: Duration) -> bool {
        self.expired || self.read_at.elapsed() >= ttl
    }
}

/// How a whole read of an operator ended.
enum Outcome {
    Read(Option<Arc<OperatorIndex>>),
    Failed,
}

/// Changes waiting to be read into the cached indexes, and the patch rounds taken so far.
#[derive(Debug, Default)]
struct Queue {
    dirty: HashMap<String, Dirty>,
    /// The last round that took its changes from the queue.
    taken: u64,
}

/// The registry cache of the ingest path.
#[derive(Debug)]
pub struct Registry {
    asset: AssetClient,
    source: Arc<dyn IndexSource>,
    cache: RwLock<HashMap<String, Cached>>,
    /// Each operator's whole read in progress, which concurrent misses wait for.
    loading: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Operators being read whole again in the background.
    refreshing: Mutex<HashSet<String>>,
    /// The operators being read whole, each with the changes announced since its read began:
    /// what the read returns may predate them, so they are read again once it is kept.
    reading: Mutex<HashMap<String, Dirty>>,
    /// Changes for the patcher, which reads them in rounds: a burst of announcements (an
    /// operator registering a thousand piles) costs one copy of the index per round, not one
    /// per pile.
    queue: Mutex<Queue>,
    wake: Arc<tokio::sync::Notify>,
    /// The last round the patcher finished.
    rounds: tokio::sync::watch::Sender<u64>,
    patcher: AtomicBool,
    ttl: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts a read of the registry: `operator` whole, or one `pile` or `station`.
fn counted(kind: &str) {
    chargemesh_kit::metrics::metrics()
        .registry_reads
        .get_or_create(&KindLabels {
            kind: kind.to_owned(),
        })
        .inc();
}

impl Registry {
    pub fn new(asset: AssetClient, ttl: Duration) -> Self {
        Self::with_source(asset.clone(), Arc::new(asset), ttl)
    }

    /// A cache reading the registry from `source`.
    pub fn with_source(asset: AssetClient, source: Arc<dyn IndexSource>, ttl: Duration) -> Self {
        Self {
            asset,
            source,
            cache: RwLock::new(HashMap::new()),
            loading: Mutex::new(HashMap::new()),
            refreshing: Mutex::new(HashSet::new()),
            reading: Mutex::new(HashMap::new()),
            queue: Mutex::new(Queue::default()),
            wake: Arc::new(tokio::sync::Notify::new()),
            rounds: tokio::sync::watch::Sender::new(0),
            patcher: AtomicBool::new(false),
            ttl,
        }
    }

    pub fn asset(&self) -> &AssetClient {
        &self.asset
    }

    fn cached(&self, operator_id: &str) -> Option<Cached> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(operator_id)
            .cloned()
    }

    fn gate(&self, operator_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.loading)
            .entry(operator_id.to_owned())
            .or_default()
            .clone()
    }

    /// The operator's index, read whole when the cache lacks the operator; a pile it lacks is
    /// read alone first. Read again in the background when past its time to live. `None` when
    /// the operator is not registered.
    pub async fn index(
        self: &Arc<Self>,
        operator_id: &str,
        pile_id: &str,
    ) -> Result<Option<Arc<OperatorIndex>>, Error> {
        let index = match self.cached(operator_id) {
            Some(cached) => {
                if cached.due(self.ttl) {
                    self.refresh(operator_id, "time to live");
                }
                cached.index
            }
            None => match self.load(operator_id).await? {
                // Read whole just now: a pile it lacks is not registered.
                Some(index) => return Ok(Some(index)),
                None => return Ok(None),
            },
        };
        if pile_id.is_empty() || index.piles.contains_key(pile_id) {
            return Ok(Some(index));
        }
        // Registered since the index was read and its announcement not yet read (or lost), or
        // not registered at all: one pile to read either way.
        let round = self.enqueue(
            operator_id,
            Dirty::of(Touch::One(Entity::Pile(pile_id.to_owned()))),
        );
        let mut rounds = self.rounds.subscribe();
        let read = tokio::time::timeout(PILE_READ_WAIT, rounds.wait_for(|done| *done >= round));
        if read.await.is_err() {
            tracing::warn!(
                operator_id,
                pile_id,
                "a pile's registry read is late, judging by the cached index"
            );
        }
        Ok(Some(
            self.cached(operator_id).map_or(index, |now| now.index),
        ))
    }

    /// Reads an operator whole for a report, one read at a time: a thousand piles connecting at
    /// once wait for the read their first began.
    async fn load(
        self: &Arc<Self>,
        operator_id: &str,
    ) -> Result<Option<Arc<OperatorIndex>>, Error> {
        let gate = self.gate(operator_id);
        let _loading = gate.lock().await;
        if let Some(cached) = self.cached(operator_id) {
            // Read while this one waited.
            return Ok(Some(cached.index));
        }
        match self.read(operator_id, "miss").await {
            Ok(index) => {
                let index = index.map(Arc::new);
                self.settle(operator_id, Outcome::Read(index.clone()));
                Ok(index)
            }
            Err(error) => {
                self.settle(operator_id, Outcome::Failed);
                Err(error)
            }
        }
    }

    /// Reads an operator whole again in the background, once at a time; the cached index serves
    /// until it is replaced.
    fn refresh(self: &Arc<Self>, operator_id: &str, why: &'static str) {
        if !lock(&self.refreshing).insert(operator_id.to_owned()) {
            return;
        }
        let (this, operator_id) = (self.clone(), operator_id.to_owned());
        tokio::spawn(async move {
            let gate = this.gate(&operator_id);
            let loading = gate.lock().await;
            let outcome = match this.read(&operator_id, why).await {
                Ok(index) => Outcome::Read(index.map(Arc::new)),
                Err(error) => {
                    tracing::warn!(%operator_id, %error, "registry unavailable, using the cached copy");
                    Outcome::Failed
                }
            };
            this.settle(&operator_id, outcome);
            drop(loading);
            lock(&this.refreshing).remove(&operator_id);
        });
    }

    /// Reads an operator's index whole from the source for `why`, noting the changes announced
    /// while it runs, and logging how many piles it held and how long it took.
    async fn read(&self, operator_id: &str, why: &str) -> Result<Option<OperatorIndex>, Error> {
        lock(&self.reading).insert(operator_id.to_owned(), Dirty::default());
        counted("operator");
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

    /// Keeps what a whole read found (a failed one keeps the cached index for another time to
    /// live), then queues the changes announced while it ran, which it may predate.
    fn settle(self: &Arc<Self>, operator_id: &str, outcome: Outcome) {
        let announced = {
            // Held while the cache changes, so an announcement lands either in the read's
            // changes or after the index is kept, where the patcher finds it.
            let mut reading = lock(&self.reading);
            let announced = reading.remove(operator_id).unwrap_or_default();
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            match outcome {
                Outcome::Read(Some(index)) => {
                    cache.insert(operator_id.to_owned(), Cached::new(index));
                }
                Outcome::Read(None) => {
                    cache.remove(operator_id);
                }
                Outcome::Failed => {
                    if let Some(entry) = cache.get_mut(operator_id) {
                        *entry = Cached::new(entry.index.clone());
                    }
                }
            }
            announced
        };
        if !announced.is_empty() {
            self.enqueue(operator_id, announced);
        }
    }

    /// Takes note of an announced change of an operator's registry.
    pub fn note(self: &Arc<Self>, operator_id: &str, touch: Touch) {
        let dirty = Dirty::of(touch);
        if dirty.is_empty() {
            return;
        }
        if let Some(announced) = lock(&self.reading).get_mut(operator_id) {
            announced.merge(dirty);
            return;
        }
        self.enqueue(operator_id, dirty);
    }

    /// Queues changes for the patcher; returns the round that will read them.
    fn enqueue(self: &Arc<Self>, operator_id: &str, dirty: Dirty) -> u64 {
        let round = {
            let mut queue = lock(&self.queue);
            queue
                .dirty
                .entry(operator_id.to_owned())
                .or_default()
                .merge(dirty);
            queue.taken + 1
        };
        if !self.patcher.swap(true, Ordering::SeqCst) {
            // The patcher lives as long as the cache: it holds it only during a round.
            let (cache, wake) = (Arc::downgrade(self), self.wake.clone());
            tokio::spawn(async move {
                loop {
                    wake.notified().await;
                    let Some(this) = cache.upgrade() else { return };
                    let copying = this.round().await;
                    drop(this);
                    // Copying an index of 100,000 piles takes milliseconds: an operator
                    // registering piles one by one for an hour costs the patcher a fifth of a
                    // core at most, at the price of a little wait for the next round.
                    tokio::time::sleep((copying * PAUSE_PER_COPY).min(MAX_PAUSE)).await;
                }
            });
        }
        self.wake.notify_one();
        round
    }

    /// Reads everything queued, one copy of each operator's index for all its changes; returns
    /// how long the copies took.
    async fn round(self: &Arc<Self>) -> Duration {
        let (taken, round) = {
            let mut queue = lock(&self.queue);
            queue.taken += 1;
            (std::mem::take(&mut queue.dirty), queue.taken)
        };
        let mut copying = Duration::ZERO;
        for (operator_id, dirty) in taken {
            copying += self.patch(&operator_id, dirty).await;
        }
        self.rounds.send_replace(round);
        copying
    }

    /// Reads an operator's changed stations and piles and patches them into its cached index;
    /// returns how long the copy took.
    async fn patch(self: &Arc<Self>, operator_id: &str, dirty: Dirty) -> Duration {
        // Not cached: the next report reads it whole, changes and all.
        let Some(Cached { index, .. }) = self.cached(operator_id) else {
            return Duration::ZERO;
        };
        let Some(entities) = dirty.into_entities() else {
            self.refresh(operator_id, "announced change");
            return Duration::ZERO;
        };
        let changed = entities.len();
        let mut found = match self.read_each(operator_id, entities).await {
            Ok(found) => found,
            Err(error) => return self.unpatched(operator_id, error),
        };
        let stations = changes::missing_stations(&index, &found);
        if !stations.is_empty() {
            match self
                .read_each(operator_id, stations.into_iter().map(Entity::Station))
                .await
            {
                Ok(more) => found.extend(more),
                Err(error) => return self.unpatched(operator_id, error),
            }
        }
        // Copied outside the lock, which every report takes; kept only onto the index it was
        // copied from, else copied again from the one a whole read put there meanwhile.
        let mut copying = Duration::ZERO;
        let next = loop {
            let Some(Cached { index, .. }) = self.cached(operator_id) else {
                return copying;
            };
            let began = Instant::now();
            let next = Arc::new(changes::patched(&index, &found));
            copying += began.elapsed();
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            match cache.get_mut(operator_id) {
                Some(entry) if Arc::ptr_eq(&entry.index, &index) => {
                    entry.index = next.clone();
                    break next;
                }
                Some(_) => continue,
                None => return copying,
            }
        };
        tracing::debug!(
            operator_id,
            changed,
            piles = next.piles.len(),
            copy_us = copying.as_micros() as u64,
            "registry patch"
        );
        copying
    }

    /// A patch the registry could not answer: the cached index serves, expired so that the next
    /// report reads the operator whole again in the background.
    fn unpatched(&self, operator_id: &str, error: Error) -> Duration {
        tracing::warn!(operator_id, %error, "registry unavailable, a change waits for the next read");
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = cache.get_mut(operator_id) {
            entry.expired = true;
        }
        Duration::ZERO
    }

    /// What the registry holds now for each entity, a few reads at a time.
    async fn read_each(
        &self,
        operator_id: &str,
        entities: impl IntoIterator<Item = Entity>,
    ) -> Result<Vec<Found>, Error> {
        futures_util::stream::iter(entities)
            .map(|entity| async move {
                match entity {
                    Entity::Station(id) => {
                        counted("station");
                        let station = self.source.station_ref(operator_id, &id).await?;
                        Ok(Found::Station(id, station))
                    }
                    Entity::Pile(id) => {
                        counted("pile");
                        let pile = self.source.pile_ref(operator_id, &id).await?;
                        Ok(Found::Pile(id, pile))
                    }
                }
            })
            .buffer_unordered(READS_IN_FLIGHT)
            .collect::<Vec<Result<Found, Error>>>()
            .await
            .into_iter()
            .collect()
    }

    /// Follows the asset component's registry changes on the bus and patches the stations and
    /// piles they name into the cached indexes.
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
                                    Ok(change) => this.note(
                                        &change.operator_id,
                                        touch(&change.entity_type, &change.entity_id),
                                    ),
                                    Err(_) => this.note(&envelope.operator_id, Touch::Everything),
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
