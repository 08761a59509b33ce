//! What ingest knows of the registry: each operator's piles, connectors and stations, cached and
//! reloaded when a report names something the cache does not know yet, or when it is stale.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chargemesh_kit::db::StoreError;

use super::domain::{OperatorIndex, PileRef, StationRef};
use crate::store::{AssetStore, Filter, Page};

const PAGE: u32 = 500;

#[derive(Debug)]
pub struct Registry {
    store: Arc<dyn AssetStore>,
    cache: RwLock<HashMap<String, (Instant, Arc<OperatorIndex>)>>,
    ttl: Duration,
}

impl Registry {
    pub fn new(store: Arc<dyn AssetStore>, ttl: Duration) -> Self {
        Self {
            store,
            cache: RwLock::new(HashMap::new()),
            ttl,
        }
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
    ) -> Result<Option<Arc<OperatorIndex>>, StoreError> {
        let cached = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(operator_id)
            .cloned();
        if let Some((loaded, index)) = cached
            && loaded.elapsed() < self.ttl
            && (pile_id.is_empty() || index.piles.contains_key(pile_id))
        {
            return Ok(Some(index));
        }
        if self.store.operator(operator_id).await?.is_none() {
            return Ok(None);
        }
        let index = Arc::new(self.load(operator_id).await?);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(operator_id.to_owned(), (Instant::now(), index.clone()));
        Ok(Some(index))
    }

    async fn load(&self, operator_id: &str) -> Result<OperatorIndex, StoreError> {
        let filters = [Filter::Eq("operator_id", operator_id.to_owned())];
        let mut index = OperatorIndex::default();
        let mut after = None;
        loop {
            let stations = self
                .store
                .list_stations(
                    &filters,
                    &Page {
                        after: after.clone(),
                        limit: PAGE,
                    },
                )
                .await?;
            for s in &stations {
                index.stations.insert(
                    s.station_id.clone(),
                    StationRef {
                        area_code: s.area_code.clone(),
                        state: s.state,
                    },
                );
            }
            match stations.last() {
                Some(last) if stations.len() as u32 == PAGE => {
                    after = Some((last.operator_id.clone(), last.station_id.clone()))
                }
                _ => break,
            }
        }
        let mut after = None;
        loop {
            let piles = self
                .store
                .list_piles(
                    &filters,
                    &Page {
                        after: after.clone(),
                        limit: PAGE,
                    },
                )
                .await?;
            for p in &piles {
                index.piles.insert(
                    p.pile_id.clone(),
                    PileRef {
                        station_id: p.station_id.clone(),
                        connectors: p
                            .connectors
                            .iter()
                            .map(|c| c.connector_id.clone())
                            .collect(),
                        rated_power_kw: p.rated_power_kw,
                        state: p.state,
                    },
                );
            }
            match piles.last() {
                Some(last) if piles.len() as u32 == PAGE => {
                    after = Some((last.operator_id.clone(), last.pile_id.clone()))
                }
                _ => break,
            }
        }
        Ok(index)
    }
}
