//! Telemetry: the streaming ingest every pile protocol feeds (acknowledged only after the
//! durable log commits, deduplicated by sender and sequence), liveness (REQ MON-1), the live
//! status and its commit-ordered log, pile commands, trial-operation days (REQ BASE-2), and the
//! regulator's status views (`chargemesh.regulator.v2.StatusService`).
//!
//! It reads the registry from the asset component over the mesh (cached, reloaded on the asset
//! component's `registry` events), tells the asset component when a filed station is connected
//! by its first report, and serves the trial-operation days the asset component's commissioning
//! asks for. It imports nothing of the asset crate.

pub mod commands;
pub mod convert;
pub mod domain;
pub mod feed;
pub mod grpc;
pub mod heartbeats;
pub mod ingest;
pub mod liveness;
pub mod publish;
pub mod registry;
pub mod regulator;
pub mod retention;
pub mod store;
pub mod streams;
pub mod trial;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use chargemesh_kit::component::{self, Component, ComponentError, Context};
use chargemesh_kit::config::ServiceConfig;

pub use feed::ChangeFeed;
pub use ingest::Telemetry;
pub use regulator::StatusApi;

/// How telemetry behaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// REQ MON-1: a connector silent this long becomes offline.
    pub offline_after_seconds: u64,
    /// How often silence is checked, in milliseconds.
    pub sweep_interval_ms: u64,
    /// How often the heartbeats of confirmed piles, noted in memory, move their connectors'
    /// last-seen time in the store, in milliseconds (one statement per operator, not a write
    /// per heartbeat).
    pub heartbeat_flush_ms: u64,
    /// The most messages one batch may carry.
    pub max_batch: usize,
    /// How often waiting pile commands are delivered to the streams of this process, in
    /// milliseconds.
    pub command_interval_ms: u64,
    /// How long a pile may take to answer a command before it is sent again, in milliseconds.
    pub command_timeout_ms: u64,
    /// How many times a command goes out before it has timed out.
    pub command_attempts: u32,
    /// How often closed trial-operation days are computed and published, in milliseconds.
    pub trial_publish_interval_ms: u64,
    /// How long a cached operator registry is used before it is read whole again (in the
    /// background), in seconds. The stations and piles changes announced on the bus name are
    /// read back at once, as is a pile the cache lacks, so this bounds only how long a change
    /// event lost on the bus goes unseen. Five minutes: an
    /// operator of 50,000 piles is 100 pages, and reading them every 30 s was a sixth of what
    /// the database did under a fleet.
    pub registry_ttl_s: u64,
    /// The least time between the starts of two small ingest transactions (fewer than 32
    /// messages), in milliseconds: batches arriving meanwhile share the next commit (0: a
    /// transaction as soon as one is waiting).
    pub writer_pace_ms: u64,
}

impl TelemetrySettings {
    /// How long a pile confirmed live (by a logged report, or a flush that found its connectors
    /// online) may send heartbeats that skip the log: the silence limit (REQ MON-1) less two
    /// flushes. A confirmation's flush moved the last-seen time to at most a flush before it, so
    /// a heartbeat taken within this reaches the store (a flush later) before the connectors
    /// could be judged silent; a pile whose heartbeat interval is under it (60 s natively, the
    /// OCPP edge's pings, YKC's forwarded heartbeats) never writes one through the log.
    pub fn heartbeat_fresh_for(&self) -> Duration {
        let flushes = 2 * self.heartbeat_flush_every().as_millis() as u64;
        Duration::from_millis((self.offline_after_seconds * 1000).saturating_sub(flushes))
    }

    /// How old a pile's confirmation may grow before a flush writes its noted heartbeats: two
    /// thirds of the silence limit (120 s by default). Until then the store's last-seen time,
    /// which the confirmation vouches for, keeps the connectors from being judged silent, so a
    /// heartbeat need not be written at all: a pile heartbeating every 60 s writes every second
    /// one, and one whose meter samples move its last-seen time meanwhile writes none. The third
    /// left is the flush's margin (a minute by default; at least two flushes, see
    /// `heartbeat_flush_every`): a flush that late, and a live pile would be judged silent.
    pub fn heartbeat_write_after(&self) -> Duration {
        Duration::from_millis(self.offline_after_seconds * 1000 * 2 / 3)
    }

    /// How often noted heartbeats are flushed: `heartbeat_flush_ms`, never slower than a sixth
    /// of the silence limit.
    pub fn heartbeat_flush_every(&self) -> Duration {
        Duration::from_millis(
            self.heartbeat_flush_ms
                .min(self.offline_after_seconds * 1000 / 6)
                .max(10),
        )
    }
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            offline_after_seconds: 180,
            sweep_interval_ms: 15_000,
            heartbeat_flush_ms: 5_000,
            max_batch: 1_000,
            command_interval_ms: 500,
            command_timeout_ms: 60_000,
            command_attempts: 3,
            trial_publish_interval_ms: 60_000,
            registry_ttl_s: 300,
            writer_pace_ms: 5,
        }
    }
}

/// The telemetry component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The mesh URL of the asset component: the registry.
    pub asset_url: String,
    #[serde(flatten)]
    pub settings: TelemetrySettings,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("telemetry", 7006),
            asset_url: "https://127.0.0.1:7001".into(),
            settings: TelemetrySettings::default(),
        }
    }
}

/// Builds the telemetry component: its database, the registry cache, the ingest with its
/// writer, the regulator's status views, liveness, command delivery, trial publishing and the
/// purge.
pub async fn build(config: &TelemetryConfig, ctx: &Context) -> Result<Component, ComponentError> {
    let db =
        component::open_database("telemetry", &config.service.database, store::MIGRATIONS).await?;
    let store = store::for_database(&db);
    let asset = registry::AssetClient::new(component::mesh_channel(
        &config.service.tls,
        &config.asset_url,
    )?);
    let settings = config.settings.clone();
    let registry = Arc::new(registry::Registry::new(
        asset,
        Duration::from_secs(settings.registry_ttl_s),
    ));
    let latest = store
        .latest_cursor()
        .await
        .map_err(|source| ComponentError::Database {
            component: "telemetry",
            source,
        })?;
    let feed = ChangeFeed::new(latest, ctx.bus.clone());
    let telemetry = Telemetry::new(
        store.clone(),
        registry.clone(),
        ctx.clock.clone(),
        feed.clone(),
        settings.clone(),
    );
    let status = StatusApi::new(store.clone(), registry.clone(), feed.clone());
    let (records, purge) = component::retention(
        &db,
        retention::RECORDS,
        retention::LOGS,
        &ctx.clock,
        &config.service,
    );
    Ok(Component::new("telemetry", &config.service)
        .serve(telemetry.clone().into_server())
        .await
        .serve(status.into_server())
        .await
        .serve(retention::TelemetryRecordsApi::new(records, ctx.clock.clone()).into_server())
        .await
        .spawn(purge)
        .spawn(telemetry.spawn_liveness())
        .spawn(telemetry.heartbeats.clone().spawn_flusher(
            store.clone(),
            ctx.clock.clone(),
            settings.heartbeat_flush_every(),
        ))
        .on_stop({
            // REQ MON-1: the heartbeats noted and not yet due are written before the database
            // closes, so a restart judges silence from the latest the piles sent; within the
            // grace, as a database that does not answer must not hold the stop.
            let (heartbeats, store, clock, grace) = (
                telemetry.heartbeats.clone(),
                store.clone(),
                ctx.clock.clone(),
                ctx.grace,
            );
            async move {
                let flushed =
                    tokio::time::timeout(grace, heartbeats.flush_all(store.as_ref(), clock.now()));
                if flushed.await.is_err() {
                    tracing::warn!(?grace, "noted heartbeats not all written within the grace");
                }
            }
        })
        .spawn(
            telemetry.spawn_command_delivery(Duration::from_millis(settings.command_interval_ms)),
        )
        .spawn(
            telemetry
                .spawn_trial_publisher(Duration::from_millis(settings.trial_publish_interval_ms)),
        )
        .spawn(feed.follow_bus())
        .spawn(feed.watch_log(store, Duration::from_secs(1)))
        .spawn(registry.follow_changes(ctx.bus.clone()))
        .with_database(db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_1_heartbeats_skip_the_log_until_two_flushes_before_the_silence_limit() {
        let defaults = TelemetrySettings::default();
        assert_eq!(defaults.heartbeat_flush_every(), Duration::from_secs(5));
        // 180 s less two 5 s flushes: a pile heartbeating every 60 s (or an OCPP charge point
        // answering the edge's 60 s pings) stays off the log.
        assert_eq!(defaults.heartbeat_fresh_for(), Duration::from_secs(170));
        for offline_after_seconds in [1, 3, 60, 180, 900] {
            let settings = TelemetrySettings {
                offline_after_seconds,
                ..TelemetrySettings::default()
            };
            let (fresh, flush) = (
                settings.heartbeat_fresh_for(),
                settings.heartbeat_flush_every(),
            );
            assert!(fresh > Duration::ZERO, "{offline_after_seconds}");
            assert_eq!(
                fresh + 2 * flush,
                Duration::from_secs(offline_after_seconds),
                "a heartbeat taken while fresh is flushed before the silence limit"
            );
        }
    }

    #[test]
    fn mon_1_noted_heartbeats_are_written_a_third_of_the_silence_limit_before_it() {
        let defaults = TelemetrySettings::default();
        assert_eq!(defaults.heartbeat_write_after(), Duration::from_secs(120));
        for offline_after_seconds in [1, 3, 60, 180, 900] {
            let settings = TelemetrySettings {
                offline_after_seconds,
                ..TelemetrySettings::default()
            };
            let (write_after, fresh, flush) = (
                settings.heartbeat_write_after(),
                settings.heartbeat_fresh_for(),
                settings.heartbeat_flush_every(),
            );
            // A confirmation due for writing is still fresh enough to have taken heartbeats,
            // and the flush that writes them comes two flushes or more before the limit.
            assert!(write_after <= fresh, "{offline_after_seconds}");
            assert!(
                write_after + 2 * flush <= Duration::from_secs(offline_after_seconds),
                "{offline_after_seconds}"
            );
        }
    }
}
