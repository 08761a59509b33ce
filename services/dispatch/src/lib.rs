//! Dispatch: staff and crews, and repair work orders on the standard's clocks — opened from the
//! status log (faults and offline connectors), by patrol staff or from phone calls; dispatched to
//! valid crews; checked in, resolved, confirmed; durable deadlines that survive restarts, fire
//! once and record breaches (REQ FAULT-1..FAULT-8, MON-2, MON-4, STAFF-2, STAFF-3).

pub mod domain;
pub mod engine;
pub mod grpc;
pub mod journal;
pub mod ledger;
pub mod patrols;
pub mod retention;
pub mod store;

use serde::{Deserialize, Serialize};

use chargemesh_kit::component::{self, Component, ComponentError, Context};
use chargemesh_kit::config::ServiceConfig;
use chargemesh_kit::journal::JournalApi;

pub use grpc::DispatchApi;

/// The dispatch component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DispatchConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The mesh URL of the asset component: the registry, suspensions and the ledger.
    pub asset_url: String,
    /// The mesh URL of the telemetry component: the status log dispatch follows and the links
    /// piles report.
    pub telemetry_url: String,
    /// How often due deadlines are checked, in milliseconds.
    pub deadline_interval_ms: u64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("dispatch", 7002),
            asset_url: "https://127.0.0.1:7001".into(),
            telemetry_url: "https://127.0.0.1:7006".into(),
            deadline_interval_ms: 5_000,
        }
    }
}

/// Builds the dispatch component: the engine (the status log follower and the deadline
/// scheduler), the dispatch API, its journal, records and their purge.
pub async fn build(config: &DispatchConfig, ctx: &Context) -> Result<Component, ComponentError> {
    let db =
        component::open_database("dispatch", &config.service.database, store::MIGRATIONS).await?;
    let store = store::for_database(&db);
    let tls = &config.service.tls;
    let telemetry = component::mesh_channel(tls, &config.telemetry_url)?;
    let engine = engine::Engine::new(
        store,
        ctx.clock.clone(),
        component::mesh_channel(tls, &config.asset_url)?,
        telemetry.clone(),
        ctx.bus.clone(),
        db.clone(),
    );
    let follower = engine.spawn_follower(telemetry);
    let outbox = engine.outbox().spawn(std::time::Duration::from_millis(
        config.deadline_interval_ms.min(1_000),
    ));
    let scheduler = engine.spawn_scheduler(std::time::Duration::from_millis(
        config.deadline_interval_ms,
    ));
    let (records, purge) =
        component::retention(&db, retention::RECORDS, &[], &ctx.clock, &config.service);
    Ok(Component::new("dispatch", &config.service)
        .serve(JournalApi::new(db.clone()).into_server())
        .await
        .serve(retention::DispatchRecordsApi::new(records, ctx.clock.clone()).into_server())
        .await
        .serve(DispatchApi::new(engine).into_server())
        .await
        .spawn(follower)
        .spawn(scheduler)
        .spawn(outbox)
        .spawn(purge)
        .with_database(db))
}
