//! The station tariffs the YKC edge gives its piles as billing models (REQ MON-10, BASE-3):
//! read from the registry, kept per station for `tariff_refresh_s`, so the piles of a station
//! logging in together (a reconnect storm) or checking for a change once a minute cost one read
//! per station and period, not one per pile.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chargemesh_kit::identity::request_as;
use chargemesh_kit::tariff::{Tariff, wire};
use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;

use crate::session::Pile;

/// Where a session reads its station's tariff.
#[tonic::async_trait]
pub trait TariffSource: Send + Sync {
    /// The pile's station tariff; `None` when it cannot be read now (the caller keeps what it
    /// has).
    async fn tariff(&self, pile: &Pile) -> Option<Tariff>;
}

/// The most stations kept; beyond it, stale entries are dropped first.
const MAX_STATIONS: usize = 100_000;

/// The registry's tariffs, each kept for a while.
pub struct StationTariffs {
    registry: MeshChannel,
    max_age: Duration,
    kept: Mutex<HashMap<(String, String), (Instant, Tariff)>>,
}

impl StationTariffs {
    pub fn new(registry: MeshChannel, max_age: Duration) -> Self {
        Self {
            registry,
            max_age,
            kept: Mutex::new(HashMap::new()),
        }
    }

    fn fresh(&self, key: &(String, String)) -> Option<Tariff> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(key)
            .filter(|(read, _)| read.elapsed() < self.max_age)
            .map(|(_, tariff)| tariff.clone())
    }

    fn keep(&self, key: (String, String), tariff: Tariff) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_STATIONS && !kept.contains_key(&key) {
            let max_age = self.max_age;
            kept.retain(|_, (read, _)| read.elapsed() < max_age);
            if kept.len() >= MAX_STATIONS {
                kept.clear();
            }
        }
        kept.insert(key, (Instant::now(), tariff));
    }

    async fn read(&self, pile: &Pile) -> Option<Tariff> {
        let mut client = AssetServiceClient::new(self.registry.clone());
        let listed = client.list_tariff_versions(request_as(
            &pile.principal,
            asset::ListTariffVersionsRequest {
                operator_id: pile.operator_id.clone(),
                station_id: pile.station_id.clone(),
            },
        ));
        let versions = match tokio::time::timeout(Duration::from_secs(10), listed).await {
            Ok(Ok(listed)) => listed.into_inner().versions,
            Ok(Err(status)) => {
                tracing::warn!(pile = %pile.code, %status, "the station's tariff could not be read");
                return None;
            }
            Err(_) => {
                tracing::warn!(pile = %pile.code, "the station's tariff was not read in time");
                return None;
            }
        };
        let versions = versions
            .iter()
            .filter_map(|v| match wire::version_from_pb(v) {
                Ok(version) => Some(version),
                Err(error) => {
                    tracing::warn!(pile = %pile.code, %error, "a tariff version could not be read");
                    None
                }
            })
            .collect();
        Some(Tariff { versions })
    }
}

#[tonic::async_trait]
impl TariffSource for StationTariffs {
    async fn tariff(&self, pile: &Pile) -> Option<Tariff> {
        let key = (pile.operator_id.clone(), pile.station_id.clone());
        if let Some(tariff) = self.fresh(&key) {
            return Some(tariff);
        }
        let tariff = self.read(pile).await?;
        self.keep(key, tariff.clone());
        Some(tariff)
    }
}
