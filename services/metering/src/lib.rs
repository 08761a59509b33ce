//! Metering: charging sessions and their orders, settled exactly by the station's tariff in force
//! (REQ SETTLE-1, BASE-3, MON-10), refused for settlement on an unverified meter (BASE-5, EQ-4),
//! checked for abnormal transactions (MON-9) and corrected only as new versions (REC-2).

pub mod domain;
pub mod engine;
pub mod follower;
pub mod grpc;
pub mod journal;
pub mod regulator;
pub mod retention;
pub mod store;

use serde::{Deserialize, Serialize};

use chargemesh_kit::component::{self, Component, ComponentError, Context};
use chargemesh_kit::config::ServiceConfig;
use chargemesh_kit::journal::JournalApi;

pub use grpc::MeteringApi;

/// The metering component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MeteringConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The mesh URL of the asset component: piles, tariffs and metrology certificates.
    pub asset_url: String,
    /// The mesh URL of the telemetry component: the log sessions are assembled from, and where
    /// start commands for piles go.
    pub telemetry_url: String,
    /// How often the telemetry log is polled when it is quiet, in milliseconds.
    pub follow_interval_ms: u64,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("metering", 7003),
            asset_url: "https://127.0.0.1:7001".into(),
            telemetry_url: "https://127.0.0.1:7006".into(),
            follow_interval_ms: 1_000,
        }
    }
}

/// Builds the metering component: the engine (leading the telemetry log follower among replicas),
/// the metering and regulator order APIs, its journal, records and their purge.
pub async fn build(config: &MeteringConfig, ctx: &Context) -> Result<Component, ComponentError> {
    let db =
        component::open_database("metering", &config.service.database, store::MIGRATIONS).await?;
    let store = store::for_database(&db);
    let tls = &config.service.tls;
    let engine = engine::Engine::new(
        store,
        ctx.clock.clone(),
        component::mesh_channel(tls, &config.asset_url)?,
        component::mesh_channel(tls, &config.telemetry_url)?,
        ctx.bus.clone(),
    )
    .with_leadership(db.clone());
    let follower =
        engine.spawn_follower(std::time::Duration::from_millis(config.follow_interval_ms));
    let api = MeteringApi::new(engine);
    let (records, purge) =
        component::retention(&db, retention::RECORDS, &[], &ctx.clock, &config.service);
    Ok(Component::new("metering", &config.service)
        .serve(api.clone().into_server())
        .await
        .serve(regulator::RegulatorOrders::new(api).into_server())
        .await
        .serve(JournalApi::new(db.clone()).into_server())
        .await
        .serve(retention::MeteringRecordsApi::new(records, ctx.clock.clone()).into_server())
        .await
        .spawn(follower)
        .spawn(purge)
        .with_database(db))
}
