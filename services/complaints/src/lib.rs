//! Complaints (REQ CMP-1..CMP-4, EVAL-2, EVAL-3): every complaint answered within 24 hours,
//! investigated, promised, resolved, revisited for satisfaction and archived, with every step
//! kept and the clocks durable.

pub mod domain;
pub mod engine;
pub mod grpc;
pub mod journal;
pub mod retention;
pub mod store;

use serde::{Deserialize, Serialize};

use chargemesh_kit::component::{self, Component, ComponentError, Context};
use chargemesh_kit::config::ServiceConfig;
use chargemesh_kit::journal::JournalApi;

pub use grpc::ComplaintsApi;

/// The complaints component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComplaintsConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// How often due clocks are checked, in milliseconds.
    pub deadline_interval_ms: u64,
    /// The mesh URL of the dispatch component, where complaints about piles open repair work
    /// orders.
    pub dispatch_url: String,
    /// The mesh URL of the metering component, where billing complaints flag their order.
    pub metering_url: String,
}

impl Default for ComplaintsConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("complaints", 7004),
            deadline_interval_ms: 5_000,
            dispatch_url: "https://127.0.0.1:7002".into(),
            metering_url: "https://127.0.0.1:7003".into(),
        }
    }
}

/// Builds the complaints component: the engine with its durable clocks, the complaints API, its
/// journal, records and their purge.
pub async fn build(config: &ComplaintsConfig, ctx: &Context) -> Result<Component, ComponentError> {
    let db =
        component::open_database("complaints", &config.service.database, store::MIGRATIONS).await?;
    let store = store::for_database(&db);
    let tls = &config.service.tls;
    let engine = engine::Engine::new(
        store,
        ctx.clock.clone(),
        ctx.bus.clone(),
        component::mesh_channel(tls, &config.dispatch_url)?,
        component::mesh_channel(tls, &config.metering_url)?,
        db.clone(),
    );
    let outbox = engine.outbox().spawn(std::time::Duration::from_millis(
        config.deadline_interval_ms.min(1_000),
    ));
    let scheduler = engine.spawn_scheduler(std::time::Duration::from_millis(
        config.deadline_interval_ms,
    ));
    let (records, purge) =
        component::retention(&db, retention::RECORDS, &[], &ctx.clock, &config.service);
    Ok(Component::new("complaints", &config.service)
        .serve(JournalApi::new(db.clone()).into_server())
        .await
        .serve(retention::ComplaintsRecordsApi::new(records, ctx.clock.clone()).into_server())
        .await
        .serve(ComplaintsApi::new(engine).into_server())
        .await
        .spawn(scheduler)
        .spawn(outbox)
        .spawn(purge)
        .with_database(db))
}
