//! Reporting: its own copy of the mesh's history, built by following the source logs, and the
//! figures computed from it: the connectors' status history (REQ MON-1, BASE-2) from the
//! telemetry component's gapless status log, the station directory, and the facts dispatch, metering and
//! complaints journal; the KPIs (with the exemptions of MON-9 applied) are computed from them.

pub mod directory;
pub mod domain;
pub mod export;
pub mod facts;
pub mod follow;
pub mod grpc;
pub mod journals;
pub mod push;
pub mod report;
pub mod retention;
pub mod store;
pub mod views;

use serde::{Deserialize, Serialize};

use chargemesh_kit::component::{self, Component, ComponentError, Context};
use chargemesh_kit::config::ServiceConfig;

pub use grpc::ReportingApi;

/// The reporting component's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportingConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The mesh URL of the asset component, whose registry makes the station directory.
    pub asset_url: String,
    /// The mesh URL of the telemetry component, whose status log reporting follows with its own
    /// certificate for the status history.
    pub telemetry_url: String,
    /// The mesh URLs of the components whose journals reporting follows.
    pub dispatch_url: String,
    pub metering_url: String,
    pub complaints_url: String,
    /// How often the journals are read, in milliseconds.
    pub follow_interval_ms: u64,
    /// How often the station directory is listed again, in milliseconds.
    pub directory_interval_ms: u64,
    /// Pushes to regulator platforms over T/CEC 102; off without peers that take pushes.
    pub cec_push: push::PushConfig,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::for_service("reporting", 7005),
            asset_url: "https://127.0.0.1:7001".into(),
            telemetry_url: "https://127.0.0.1:7006".into(),
            dispatch_url: "https://127.0.0.1:7002".into(),
            metering_url: "https://127.0.0.1:7003".into(),
            complaints_url: "https://127.0.0.1:7004".into(),
            follow_interval_ms: 1_000,
            directory_interval_ms: 30_000,
            cec_push: push::PushConfig::default(),
        }
    }
}

/// Builds the reporting component: the followers of the status log, the station directory and
/// the journals, the pusher to regulator platforms when peers take pushes, the reporting and
/// regulator KPI APIs, records and their purge.
pub async fn build(config: &ReportingConfig, ctx: &Context) -> Result<Component, ComponentError> {
    use std::time::Duration;
    let db =
        component::open_database("reporting", &config.service.database, store::MIGRATIONS).await?;
    let store = store::for_database(&db);
    let tls = &config.service.tls;
    let every = Duration::from_millis(config.follow_interval_ms);
    let mut built = Component::new("reporting", &config.service)
        .spawn(follow::spawn(
            component::mesh_channel(tls, &config.telemetry_url)?,
            store.clone(),
        ))
        .spawn(directory::spawn(
            component::mesh_channel(tls, &config.asset_url)?,
            store.clone(),
            Duration::from_millis(config.directory_interval_ms),
        ));
    for (name, url) in [
        ("dispatch", &config.dispatch_url),
        ("metering", &config.metering_url),
        ("complaints", &config.complaints_url),
    ] {
        built = built.spawn(journals::spawn(
            name,
            component::mesh_channel(tls, url)?,
            store.clone(),
            every,
        ));
    }
    let pushes = config
        .cec_push
        .peers
        .iter()
        .any(|p| p.push_url.is_some() && p.outbound.is_some());
    let pusher = if pushes {
        let client_tls = chargemesh_kit::tls::anonymous_client_config(&tls.ca_file)?;
        let pusher = push::Pusher::new(db.clone(), config.cec_push.clone(), client_tls)
            .map_err(|e| ComponentError::Config(format!("reporting.cec_push: {e}")))?;
        built = built.spawn(pusher.spawn());
        Some(pusher)
    } else {
        None
    };
    let (records, purge) = component::retention(
        &db,
        retention::RECORDS,
        retention::LOGS,
        &ctx.clock,
        &config.service,
    );
    let api = ReportingApi::new(store, ctx.clock.clone()).with_pusher(pusher);
    Ok(built
        .serve(api.clone().into_server())
        .await
        .serve(api.regulator_server())
        .await
        .serve(retention::ReportingRecordsApi::new(records, ctx.clock.clone()).into_server())
        .await
        .spawn(purge)
        .with_database(db))
}
