//! The asset service: operators, stations, piles and connectors, the equipment ledger,
//! metrology certificates, the station and pile lifecycles, and the change history. It also
//! serves the registry to regulators (`chargemesh.regulator.v2.RegistryService`) and announces
//! every committed registry change on the bus (topic `registry`). Live telemetry is the
//! telemetry component's; commissioning reads its trial-operation days over the mesh.

pub mod availability;
pub mod domain;
pub mod grpc;
pub mod regulator;
pub mod retention;
pub mod store;
pub mod trial;

use serde::{Deserialize, Serialize};

use chargemesh_kit::component::{self, Component, ComponentError, Context};
use chargemesh_kit::config::ServiceConfig;

pub use domain::commissioning::CommissioningSettings;
pub use grpc::AssetApi;

/// The asset component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AssetConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The mesh URL of the telemetry component, whose trial-operation days commissioning reads.
    pub telemetry_url: String,
    /// What commissioning asks of trial operation (REQ BASE-2).
    pub commissioning: CommissioningSettings,
}

impl Default for AssetConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("asset", 7001),
            telemetry_url: "https://127.0.0.1:7006".into(),
            commissioning: CommissioningSettings::default(),
        }
    }
}

/// Builds the asset component: the registry API, the regulator's registry view, records and
/// their purge.
pub async fn build(config: &AssetConfig, ctx: &Context) -> Result<Component, ComponentError> {
    let db = component::open_database("asset", &config.service.database, store::MIGRATIONS).await?;
    let store = store::for_database(&db);
    let telemetry = component::mesh_channel(&config.service.tls, &config.telemetry_url)?;
    let outbox = chargemesh_kit::outbox::Outbox::new(
        db.clone(),
        std::sync::Arc::new(availability::AvailabilitySteps {
            telemetry: telemetry.clone(),
        }),
        ctx.clock.clone(),
    );
    let assets = AssetApi::new(
        store.clone(),
        ctx.clock.clone(),
        trial::TrialDays::new(telemetry),
        config.commissioning.clone(),
        ctx.bus.clone(),
    )
    .with_outbox(outbox.clone());
    let steps = outbox.spawn(std::time::Duration::from_secs(1));
    let (records, purge) = component::retention(
        &db,
        retention::RECORDS,
        retention::LOGS,
        &ctx.clock,
        &config.service,
    );
    Ok(Component::new("asset", &config.service)
        .serve(assets.clone().into_server())
        .await
        .serve(grpc::ChargePointApi(assets).into_server())
        .await
        .serve(regulator::RegistryApi::new(store, ctx.clock.clone()).into_server())
        .await
        .serve(retention::AssetRecordsApi::new(records, ctx.clock.clone()).into_server())
        .await
        .spawn(purge)
        .spawn(steps)
        .with_database(db))
}
