//! Running components: one role per process (`serve --role`), or every role in one process on the
//! embedded default (`up`, and the end-to-end tests). The same code runs in both; only the
//! wiring differs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use std::sync::Arc;

use chargemesh_asset::telemetry::registry::Registry;
use chargemesh_asset::telemetry::trial::TrialSettings;
use chargemesh_asset::telemetry::{ChangeFeed, RegulatorApi, Telemetry, TelemetrySettings};
use chargemesh_asset::{AssetApi, TrialGate};
use chargemesh_complaints::{ComplaintsApi, ComplaintsConfig};
use chargemesh_dispatch::{DispatchApi, DispatchConfig};
use chargemesh_gateway::{GatewayConfig, JwtSettings};
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::config::{DatabaseConfig, Secret, ServiceConfig};
use chargemesh_kit::db::Database;
use chargemesh_kit::events::SharedBus;
use chargemesh_kit::journal::JournalApi;
use chargemesh_kit::server::{ServeLimits, health_and_reflection, serve_service};
use chargemesh_kit::tls::{ClientAuth, ReloadingServerConfig};
use chargemesh_metering::{MeteringApi, MeteringConfig};
use chargemesh_proto::FILE_DESCRIPTOR_SET;
use chargemesh_proto::asset::v1::asset_service_server::AssetServiceServer;
use chargemesh_proto::complaints::v1::complaints_service_server::ComplaintsServiceServer;
use chargemesh_proto::dispatch::v1::dispatch_service_server::DispatchServiceServer;
use chargemesh_proto::metering::v1::metering_service_server::MeteringServiceServer;
use chargemesh_proto::regulator::v1::regulator_service_server::RegulatorServiceServer;
use chargemesh_proto::reporting::v1::reporting_service_server::ReportingServiceServer;
use chargemesh_proto::telemetry::v1::telemetry_service_server::TelemetryServiceServer;
use chargemesh_reporting::{ReportingApi, ReportingConfig};

use crate::pki::{self, PkiDir};

/// A signal every component of a process stops on.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    pub async fn wait(mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    /// Runs a server until it ends by itself, or until `grace` after the signal: streams still
    /// open then (watchers, telemetry) are cut, so a stop never hangs on a long-lived client.
    pub async fn serve_with_grace<E>(
        self,
        grace: std::time::Duration,
        serve: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<(), E> {
        tokio::select! {
            result = serve => result,
            () = async { self.wait().await; tokio::time::sleep(grace).await } => {
                tracing::info!("grace period over, closing the remaining streams");
                Ok(())
            }
        }
    }
}

/// How long open streams may take to finish after a stop signal.
pub const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn bind(addr: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

/// Connects and migrates a service's database.
pub async fn open_database(name: &str, config: &DatabaseConfig) -> anyhow::Result<Database> {
    let schema = if config.schema.is_empty() {
        name
    } else {
        &config.schema
    };
    let db = Database::connect(config.url.expose(), schema, config.max_connections)
        .await
        .with_context(|| format!("connecting the {name} database"))?;
    Ok(db)
}

/// What the asset component runs with besides its service configuration.
#[derive(Debug, Clone)]
pub struct AssetRuntime {
    pub clock: SharedClock,
    pub bus: SharedBus,
    pub telemetry: TelemetrySettings,
    pub trial: TrialSettings,
    pub shutdown_grace: std::time::Duration,
}

/// Runs the asset component (registry, telemetry ingest, regulator view) until `shutdown`.
pub async fn run_asset(
    config: &ServiceConfig,
    trust_domain: &str,
    listener: TcpListener,
    runtime: AssetRuntime,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let db = open_database("asset", &config.database).await?;
    let stores = chargemesh_asset::store::open_all(&db)
        .await
        .context("migrating the asset database")?;
    let registry = Arc::new(Registry::new(
        stores.assets.clone(),
        std::time::Duration::from_secs(30),
    ));
    let latest = stores.telemetry.latest_cursor().await?;
    let feed = ChangeFeed::new(latest, runtime.bus.clone());
    let telemetry = Telemetry::new(
        stores.assets.clone(),
        stores.telemetry.clone(),
        registry.clone(),
        runtime.clock.clone(),
        feed.clone(),
        runtime.telemetry.clone(),
    );
    let regulator = RegulatorApi::new(
        stores.assets.clone(),
        stores.telemetry.clone(),
        feed.clone(),
        runtime.clock.clone(),
    );
    let gate = TrialGate {
        store: stores.telemetry.clone(),
        settings: runtime.trial.clone(),
    };
    let assets =
        AssetApi::new(stores.assets.clone(), runtime.clock.clone(), gate).with_registry(registry);
    let (health, routes) = health_and_reflection(&[FILE_DESCRIPTOR_SET]);
    health.set_serving::<AssetServiceServer<AssetApi>>().await;
    health
        .set_serving::<TelemetryServiceServer<Telemetry>>()
        .await;
    health
        .set_serving::<RegulatorServiceServer<RegulatorApi>>()
        .await;
    let records =
        chargemesh_kit::retention::Records::new(db.clone(), chargemesh_asset::retention::RECORDS)
            .with_logs(chargemesh_asset::retention::LOGS);
    let purge = records.spawn_purge(
        runtime.clock.clone(),
        std::time::Duration::from_secs(config.retention_purge_interval_s),
    );
    let routes = routes
        .add_service(assets.into_server())
        .add_service(telemetry.clone().into_server())
        .add_service(regulator.into_server())
        .add_service(
            chargemesh_asset::retention::AssetRecordsApi::new(records, runtime.clock.clone())
                .into_server(),
        );
    let background = [
        purge,
        telemetry.spawn_liveness(),
        telemetry.spawn_command_delivery(std::time::Duration::from_millis(
            runtime.telemetry.command_interval_ms,
        )),
        telemetry.spawn_trial_publisher(std::time::Duration::from_millis(
            runtime.trial.publish_interval_ms,
        )),
        feed.follow_bus(),
    ];
    let served = serve_component(
        "asset",
        &config.tls,
        &config.admin_listen,
        trust_domain,
        listener,
        routes,
        shutdown,
        runtime.shutdown_grace,
    )
    .await;
    for task in background {
        task.abort();
    }
    db.close().await;
    served
}

/// Serves a mesh component's routes over mutual TLS (certificates reloaded as they change)
/// until `shutdown`, then lets open streams finish for `grace`.
#[allow(clippy::too_many_arguments)]
async fn serve_component(
    name: &'static str,
    tls: &chargemesh_kit::tls::TlsFiles,
    admin_listen: &str,
    trust_domain: &str,
    listener: TcpListener,
    routes: tonic::service::Routes,
    shutdown: Shutdown,
    grace: std::time::Duration,
) -> anyhow::Result<()> {
    let admin = spawn_admin(name, admin_listen, &shutdown, grace).await?;
    let tls = ReloadingServerConfig::load(tls.clone(), ClientAuth::Required)?;
    let watcher = tls.watch(std::time::Duration::from_secs(30));
    tracing::info!(component = name, addr = %listener.local_addr()?, "serving");
    let served = shutdown
        .clone()
        .serve_with_grace(
            grace,
            serve_service(
                listener,
                tls,
                trust_domain.to_owned(),
                ServeLimits::default(),
                routes,
                shutdown.wait(),
            ),
        )
        .await;
    watcher.abort();
    if let Some(admin) = admin {
        admin.abort();
    }
    Ok(served?)
}

/// Serves the component's plaintext health for Kubernetes' probes on `listen`, when set.
async fn spawn_admin(
    name: &'static str,
    listen: &str,
    shutdown: &Shutdown,
    grace: std::time::Duration,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if listen.trim().is_empty() {
        return Ok(None);
    }
    let listener = bind(listen).await?;
    tracing::info!(component = name, addr = %listener.local_addr()?, "admin (health) serving");
    let stop = shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        if let Err(error) = chargemesh_kit::server::serve_admin(listener, stop.wait(), grace).await
        {
            tracing::warn!(component = name, %error, "admin listener failed");
        }
    })))
}

/// What a component behind the gateway runs with: its identity's trust domain, its listener,
/// the clock, the event bus and when to stop.
pub struct Run {
    pub trust_domain: String,
    pub listener: TcpListener,
    pub clock: SharedClock,
    pub bus: SharedBus,
    pub shutdown: Shutdown,
    pub grace: std::time::Duration,
}

/// A component behind the gateway: the routes it serves, the database it keeps and the
/// background tasks that feed it.
struct Component<'a> {
    name: &'static str,
    tls: &'a chargemesh_kit::tls::TlsFiles,
    admin_listen: &'a str,
    db: Database,
    routes: tonic::service::Routes,
    background: Vec<JoinHandle<()>>,
}

impl Component<'_> {
    /// Serves until `shutdown`, then stops the background tasks and closes the database.
    async fn run(
        self,
        trust_domain: &str,
        listener: TcpListener,
        shutdown: Shutdown,
        grace: std::time::Duration,
    ) -> anyhow::Result<()> {
        let served = serve_component(
            self.name,
            self.tls,
            self.admin_listen,
            trust_domain,
            listener,
            self.routes,
            shutdown,
            grace,
        )
        .await;
        for task in self.background {
            task.abort();
        }
        self.db.close().await;
        served
    }
}

/// A channel over the mesh to another component, with this component's certificate.
fn mesh_channel(
    tls: &chargemesh_kit::tls::TlsFiles,
    url: &str,
) -> anyhow::Result<chargemesh_kit::tls::MeshChannel> {
    let client = Arc::new(chargemesh_kit::tls::client_config(tls)?);
    Ok(chargemesh_kit::tls::mesh_channel(url, client)?)
}

/// Runs the gateway until `shutdown`, with the T/CEC 102 edge on `cec` when given.
pub async fn run_gateway(
    config: &GatewayConfig,
    trust_domain: &str,
    listener: TcpListener,
    cec: Option<(TcpListener, SharedClock)>,
    shutdown: Shutdown,
    grace: std::time::Duration,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "gateway serving");
    let admin = spawn_admin("gateway", &config.admin_listen, &shutdown, grace).await?;
    let cec_task = match cec {
        Some((cec_listener, clock)) => {
            let asset = config
                .upstreams
                .get("regulator")
                .or_else(|| config.upstreams.get("asset"))
                .cloned()
                .context("the T/CEC 102 edge needs the asset upstream")?;
            let metering = config
                .upstreams
                .get("metering")
                .cloned()
                .context("the T/CEC 102 edge needs the metering upstream")?;
            tracing::info!(addr = %cec_listener.local_addr()?, prefix = %config.cec.prefix, "T/CEC 102 edge serving");
            let (cec_config, tls, stop) =
                (config.cec.clone(), config.tls.clone(), shutdown.clone());
            Some(tokio::spawn(async move {
                chargemesh_gateway::cec::serve(
                    &cec_config,
                    &tls,
                    &asset,
                    &metering,
                    cec_listener,
                    clock,
                    stop.wait(),
                )
                .await
            }))
        }
        None => None,
    };
    let serve = chargemesh_gateway::serve(
        config,
        trust_domain,
        listener,
        &[FILE_DESCRIPTOR_SET],
        shutdown.clone().wait(),
    );
    shutdown.serve_with_grace(grace, serve).await?;
    if let Some(task) = cec_task {
        task.await.context("the T/CEC 102 edge")??;
    }
    if let Some(admin) = admin {
        admin.abort();
    }
    Ok(())
}

/// Runs the reporting component until `shutdown`: it follows the asset component's status log
/// with its own mesh certificate and serves the history it keeps.
pub async fn run_reporting(config: &ReportingConfig, run: Run) -> anyhow::Result<()> {
    use std::time::Duration;
    let db = open_database("reporting", &config.service.database).await?;
    let store = chargemesh_reporting::store::open(&db)
        .await
        .context("migrating the reporting database")?;
    let tls = &config.service.tls;
    let source = mesh_channel(tls, &config.status_source)?;
    let every = Duration::from_millis(config.follow_interval_ms);
    let mut background = vec![
        chargemesh_reporting::follow::spawn(source.clone(), store.clone()),
        chargemesh_reporting::directory::spawn(
            source,
            store.clone(),
            Duration::from_millis(config.directory_interval_ms),
        ),
    ];
    for (name, url) in [
        ("dispatch", &config.dispatch_url),
        ("metering", &config.metering_url),
        ("complaints", &config.complaints_url),
    ] {
        let channel = mesh_channel(tls, url)?;
        background.push(chargemesh_reporting::journals::spawn(
            name,
            channel,
            store.clone(),
            every,
        ));
    }
    let (health, routes) = health_and_reflection(&[FILE_DESCRIPTOR_SET]);
    health
        .set_serving::<ReportingServiceServer<ReportingApi>>()
        .await;
    let (records, purge) = retention(
        &db,
        chargemesh_reporting::retention::RECORDS,
        chargemesh_reporting::retention::LOGS,
        &run.clock,
        &config.service,
    );
    background.push(purge);
    let records =
        chargemesh_reporting::retention::ReportingRecordsApi::new(records, run.clock.clone())
            .into_server();
    let pushes = config
        .cec_push
        .peers
        .iter()
        .any(|p| p.push_url.is_some() && p.outbound.is_some());
    let pusher = if pushes {
        let tls = chargemesh_kit::tls::anonymous_client_config(&config.service.tls.ca_file)?;
        let pusher =
            chargemesh_reporting::push::Pusher::new(db.clone(), config.cec_push.clone(), tls)
                .map_err(|e| anyhow::anyhow!("reporting.cec_push: {e}"))?;
        background.push(pusher.spawn());
        Some(pusher)
    } else {
        None
    };
    let api = ReportingApi::new(store, run.clock).with_pusher(pusher);
    Component {
        name: "reporting",
        tls,
        admin_listen: &config.service.admin_listen,
        db,
        routes: routes
            .add_service(api.clone().into_server())
            .add_service(api.regulator_server())
            .add_service(records),
        background,
    }
    .run(&run.trust_domain, run.listener, run.shutdown, run.grace)
    .await
}

/// A component's records under the retention rules (REQ REC-3) and their periodic purge.
fn retention(
    db: &Database,
    tables: &'static [chargemesh_kit::retention::RecordTable],
    logs: &'static [chargemesh_kit::retention::LogTable],
    clock: &SharedClock,
    service: &ServiceConfig,
) -> (
    chargemesh_kit::retention::Records,
    tokio::task::JoinHandle<()>,
) {
    let records = chargemesh_kit::retention::Records::new(db.clone(), tables).with_logs(logs);
    let purge = records.spawn_purge(
        clock.clone(),
        std::time::Duration::from_secs(service.retention_purge_interval_s),
    );
    (records, purge)
}

/// Runs the dispatch component until `shutdown`: it follows the asset component's status log,
/// keeps the work orders' deadlines and serves `DispatchService`.
pub async fn run_dispatch(config: &DispatchConfig, run: Run) -> anyhow::Result<()> {
    let clock = run.clock.clone();
    let db = open_database("dispatch", &config.service.database).await?;
    let store = chargemesh_dispatch::store::open(&db)
        .await
        .context("migrating the dispatch database")?;
    let asset = mesh_channel(&config.service.tls, &config.asset_url)?;
    let engine = chargemesh_dispatch::engine::Engine::new(store, run.clock, asset.clone(), run.bus);
    let background = vec![
        engine.spawn_follower(asset),
        engine.spawn_scheduler(std::time::Duration::from_millis(
            config.deadline_interval_ms,
        )),
    ];
    let (health, routes) = health_and_reflection(&[FILE_DESCRIPTOR_SET]);
    health
        .set_serving::<DispatchServiceServer<DispatchApi>>()
        .await;
    let (records, purge) = retention(
        &db,
        chargemesh_dispatch::retention::RECORDS,
        &[],
        &clock,
        &config.service,
    );
    let records = chargemesh_dispatch::retention::DispatchRecordsApi::new(records, clock.clone())
        .into_server();
    let journal = JournalApi::new(db.clone()).into_server();
    Component {
        name: "dispatch",
        tls: &config.service.tls,
        admin_listen: &config.service.admin_listen,
        db,
        routes: routes
            .add_service(journal)
            .add_service(records)
            .add_service(DispatchApi::new(engine).into_server()),
        background: background.into_iter().chain([purge]).collect(),
    }
    .run(&run.trust_domain, run.listener, run.shutdown, run.grace)
    .await
}

/// Runs the metering component until `shutdown`: it settles charge orders by the asset
/// registry's tariffs and serves `MeteringService`.
pub async fn run_metering(config: &MeteringConfig, run: Run) -> anyhow::Result<()> {
    let clock = run.clock.clone();
    let db = open_database("metering", &config.service.database).await?;
    let store = chargemesh_metering::store::open(&db)
        .await
        .context("migrating the metering database")?;
    let asset = mesh_channel(&config.service.tls, &config.asset_url)?;
    let engine = chargemesh_metering::engine::Engine::new(store, run.clock, asset, run.bus)
        .with_leadership(db.clone());
    let follower =
        engine.spawn_follower(std::time::Duration::from_millis(config.follow_interval_ms));
    let (health, routes) = health_and_reflection(&[FILE_DESCRIPTOR_SET]);
    health
        .set_serving::<MeteringServiceServer<MeteringApi>>()
        .await;
    let api = MeteringApi::new(engine);
    let regulator = chargemesh_metering::regulator::RegulatorOrders::new(api.clone());
    let (records, purge) = retention(
        &db,
        chargemesh_metering::retention::RECORDS,
        &[],
        &clock,
        &config.service,
    );
    let records = chargemesh_metering::retention::MeteringRecordsApi::new(records, clock.clone())
        .into_server();
    let journal = JournalApi::new(db.clone()).into_server();
    Component {
        name: "metering",
        tls: &config.service.tls,
        admin_listen: &config.service.admin_listen,
        db,
        routes: routes
            .add_service(api.into_server())
            .add_service(regulator.into_server())
            .add_service(journal)
            .add_service(records),
        background: vec![follower, purge],
    }
    .run(&run.trust_domain, run.listener, run.shutdown, run.grace)
    .await
}

/// Runs the complaints component until `shutdown`: its clocks and `ComplaintsService`.
pub async fn run_complaints(config: &ComplaintsConfig, run: Run) -> anyhow::Result<()> {
    let clock = run.clock.clone();
    let db = open_database("complaints", &config.service.database).await?;
    let store = chargemesh_complaints::store::open(&db)
        .await
        .context("migrating the complaints database")?;
    let dispatch = mesh_channel(&config.service.tls, &config.dispatch_url)?;
    let metering = mesh_channel(&config.service.tls, &config.metering_url)?;
    let engine =
        chargemesh_complaints::engine::Engine::new(store, run.clock, run.bus, dispatch, metering);
    let scheduler = engine.spawn_scheduler(std::time::Duration::from_millis(
        config.deadline_interval_ms,
    ));
    let (health, routes) = health_and_reflection(&[FILE_DESCRIPTOR_SET]);
    health
        .set_serving::<ComplaintsServiceServer<ComplaintsApi>>()
        .await;
    let (records, purge) = retention(
        &db,
        chargemesh_complaints::retention::RECORDS,
        &[],
        &clock,
        &config.service,
    );
    let records =
        chargemesh_complaints::retention::ComplaintsRecordsApi::new(records, clock.clone())
            .into_server();
    let journal = JournalApi::new(db.clone()).into_server();
    Component {
        name: "complaints",
        tls: &config.service.tls,
        admin_listen: &config.service.admin_listen,
        db,
        routes: routes
            .add_service(journal)
            .add_service(records)
            .add_service(ComplaintsApi::new(engine).into_server()),
        background: vec![scheduler, purge],
    }
    .run(&run.trust_domain, run.listener, run.shutdown, run.grace)
    .await
}

/// How to run the embedded mesh.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// SQLite files and the development PKI live here.
    pub data_dir: PathBuf,
    /// Where the gateway listens.
    pub gateway_listen: String,
    pub trust_domain: String,
    pub clock: SharedClock,
    /// A database URL to use instead of SQLite files (tests on PostgreSQL), with a schema prefix.
    pub database: Option<(String, String)>,
    /// Accept staff JWTs (certificates become optional at the handshake).
    pub accept_jwt: bool,
    /// A Redis URL and stream prefix for the event bus; `None` for the in-process bus.
    pub events: Option<(String, String)>,
    pub telemetry: TelemetrySettings,
    pub trial: TrialSettings,
    /// How long open streams may finish after a stop.
    pub shutdown_grace: std::time::Duration,
    /// How often dispatch checks its due deadlines, in milliseconds; metering polls a quiet
    /// telemetry log as often (at most every second).
    pub deadline_interval_ms: u64,
    /// The T/CEC 102 edge, when regulator or operator platforms are to connect.
    pub cec: Option<chargemesh_gateway::cec::CecConfig>,
    /// Pushes to regulator platforms over T/CEC 102.
    pub cec_push: chargemesh_reporting::push::PushConfig,
}

impl EmbeddedOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            gateway_listen: "127.0.0.1:7443".into(),
            trust_domain: crate::config::DEFAULT_TRUST_DOMAIN.into(),
            clock: std::sync::Arc::new(chargemesh_kit::clock::SystemClock),
            database: None,
            accept_jwt: true,
            events: None,
            telemetry: TelemetrySettings::default(),
            trial: TrialSettings::default(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            deadline_interval_ms: 5_000,
            cec: None,
            cec_push: chargemesh_reporting::push::PushConfig::default(),
        }
    }
}

/// Every role in one process.
pub struct EmbeddedMesh {
    pub gateway_addr: SocketAddr,
    /// Where the T/CEC 102 edge listens, when it runs.
    pub cec_addr: Option<SocketAddr>,
    pub asset_addr: SocketAddr,
    pub pki: PkiDir,
    /// The event bus every component of the process shares.
    pub bus: SharedBus,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

impl EmbeddedMesh {
    /// Starts the mesh; makes the development PKI in `data_dir/pki` on first run, reuses it after.
    pub async fn start(opts: EmbeddedOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("creating {}", opts.data_dir.display()))?;
        let pki = ensure_pki(&opts.data_dir.join("pki"), &opts.trust_domain)?;
        let (stop, shutdown) = Shutdown::new();
        let database = |name: &str| match &opts.database {
            Some((url, prefix)) => DatabaseConfig {
                url: Secret::new(url.clone()),
                schema: format!("{prefix}{name}"),
                max_connections: 5,
            },
            None => DatabaseConfig {
                url: Secret::new(Database::sqlite_url(
                    &opts.data_dir.join(format!("{name}.db")),
                )),
                schema: name.to_owned(),
                max_connections: 5,
            },
        };

        let asset_listener = bind("127.0.0.1:0").await?;
        let asset_addr = asset_listener.local_addr()?;
        let asset = ServiceConfig {
            listen: asset_addr.to_string(),
            tls: pki.files("asset"),
            database: database("asset"),
            retention_purge_interval_s: 3_600,
            admin_listen: String::new(),
        };
        // The database is ready before the gateway takes calls.
        open_database("asset", &asset.database)
            .await?
            .migrate(chargemesh_asset::store::MIGRATIONS)
            .await
            .context("migrating the asset database")?;
        let bus: SharedBus = match &opts.events {
            Some((url, prefix)) => {
                Arc::new(chargemesh_kit::events::RedisBus::connect(url, prefix).await?)
            }
            None => Arc::new(chargemesh_kit::events::InProcessBus::new()),
        };
        let runtime_bus = bus.clone();
        let runtime = AssetRuntime {
            clock: opts.clock.clone(),
            bus,
            telemetry: opts.telemetry.clone(),
            trial: opts.trial.clone(),
            shutdown_grace: opts.shutdown_grace,
        };
        let mut tasks = Vec::new();
        {
            let (td, shutdown) = (opts.trust_domain.clone(), shutdown.clone());
            tasks.push((
                "asset",
                tokio::spawn(async move {
                    run_asset(&asset, &td, asset_listener, runtime, shutdown).await
                }),
            ));
        }

        let component_run = |listener| Run {
            trust_domain: opts.trust_domain.clone(),
            listener,
            clock: opts.clock.clone(),
            bus: runtime_bus.clone(),
            shutdown: shutdown.clone(),
            grace: opts.shutdown_grace,
        };
        let dispatch_listener = bind("127.0.0.1:0").await?;
        let dispatch_addr = dispatch_listener.local_addr()?;
        let dispatch = DispatchConfig {
            service: ServiceConfig {
                listen: dispatch_addr.to_string(),
                tls: pki.files("dispatch"),
                database: database("dispatch"),
                retention_purge_interval_s: 3_600,
                admin_listen: String::new(),
            },
            asset_url: format!("https://127.0.0.1:{}", asset_addr.port()),
            deadline_interval_ms: opts.deadline_interval_ms,
        };
        {
            let run = component_run(dispatch_listener);
            tasks.push((
                "dispatch",
                tokio::spawn(async move { run_dispatch(&dispatch, run).await }),
            ));
        }

        let metering_listener = bind("127.0.0.1:0").await?;
        let metering_addr = metering_listener.local_addr()?;
        let metering = MeteringConfig {
            service: ServiceConfig {
                listen: metering_addr.to_string(),
                tls: pki.files("metering"),
                database: database("metering"),
                retention_purge_interval_s: 3_600,
                admin_listen: String::new(),
            },
            asset_url: format!("https://127.0.0.1:{}", asset_addr.port()),
            follow_interval_ms: opts.deadline_interval_ms.min(1_000),
        };
        {
            let run = component_run(metering_listener);
            tasks.push((
                "metering",
                tokio::spawn(async move { run_metering(&metering, run).await }),
            ));
        }

        let complaints_listener = bind("127.0.0.1:0").await?;
        let complaints_addr = complaints_listener.local_addr()?;
        let complaints = ComplaintsConfig {
            service: ServiceConfig {
                listen: complaints_addr.to_string(),
                tls: pki.files("complaints"),
                database: database("complaints"),
                retention_purge_interval_s: 3_600,
                admin_listen: String::new(),
            },
            deadline_interval_ms: opts.deadline_interval_ms,
            dispatch_url: format!("https://127.0.0.1:{}", dispatch_addr.port()),
            metering_url: format!("https://127.0.0.1:{}", metering_addr.port()),
        };
        {
            let run = component_run(complaints_listener);
            tasks.push((
                "complaints",
                tokio::spawn(async move { run_complaints(&complaints, run).await }),
            ));
        }

        let reporting_listener = bind("127.0.0.1:0").await?;
        let reporting_addr = reporting_listener.local_addr()?;
        let reporting = ReportingConfig {
            service: ServiceConfig {
                listen: reporting_addr.to_string(),
                tls: pki.files("reporting"),
                database: database("reporting"),
                retention_purge_interval_s: 3_600,
                admin_listen: String::new(),
            },
            status_source: format!("https://127.0.0.1:{}", asset_addr.port()),
            dispatch_url: format!("https://127.0.0.1:{}", dispatch_addr.port()),
            metering_url: format!("https://127.0.0.1:{}", metering_addr.port()),
            complaints_url: format!("https://127.0.0.1:{}", complaints_addr.port()),
            follow_interval_ms: opts.deadline_interval_ms.min(1_000),
            directory_interval_ms: opts.deadline_interval_ms.clamp(50, 5_000),
            cec_push: opts.cec_push.clone(),
        };
        {
            let run = component_run(reporting_listener);
            tasks.push((
                "reporting",
                tokio::spawn(async move { run_reporting(&reporting, run).await }),
            ));
        }

        let gateway_listener = bind(&opts.gateway_listen).await?;
        let gateway_addr = gateway_listener.local_addr()?;
        let gateway = GatewayConfig {
            listen: gateway_addr.to_string(),
            tls: pki.files("gateway"),
            jwt: opts.accept_jwt.then(|| JwtSettings {
                jwks_file: pki.jwks(),
                issuer: pki::JWT_ISSUER.into(),
                audience: pki::JWT_AUDIENCE.into(),
            }),
            upstreams: ["asset", "telemetry", "regulator"]
                .into_iter()
                .map(|c| {
                    (
                        c.to_owned(),
                        format!("https://127.0.0.1:{}", asset_addr.port()),
                    )
                })
                .chain([
                    (
                        "reporting".to_owned(),
                        format!("https://127.0.0.1:{}", reporting_addr.port()),
                    ),
                    (
                        "dispatch".to_owned(),
                        format!("https://127.0.0.1:{}", dispatch_addr.port()),
                    ),
                    (
                        "metering".to_owned(),
                        format!("https://127.0.0.1:{}", metering_addr.port()),
                    ),
                    (
                        "complaints".to_owned(),
                        format!("https://127.0.0.1:{}", complaints_addr.port()),
                    ),
                ])
                .collect(),
            cec: opts.cec.clone().unwrap_or_default(),
            admin_listen: String::new(),
        };
        let (cec, cec_addr) = match &opts.cec {
            Some(config) => {
                let listener = bind(&config.listen).await?;
                let addr = listener.local_addr()?;
                (Some((listener, opts.clock.clone())), Some(addr))
            }
            None => (None, None),
        };
        {
            let (td, shutdown, grace) = (
                opts.trust_domain.clone(),
                shutdown.clone(),
                opts.shutdown_grace,
            );
            tasks.push((
                "gateway",
                tokio::spawn(async move {
                    run_gateway(&gateway, &td, gateway_listener, cec, shutdown, grace).await
                }),
            ));
        }
        Ok(Self {
            gateway_addr,
            cec_addr,
            asset_addr,
            pki,
            bus: runtime_bus,
            stop,
            tasks,
        })
    }

    /// Waits until a component stops on its own (an error) or `signal` resolves, then stops all.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let first_exit = futures_like_select(&mut self.tasks);
        tokio::select! {
            (name, result) = first_exit => {
                let _ = self.stop.send(true);
                match result {
                    Ok(Ok(())) => anyhow::bail!("{name} stopped unexpectedly"),
                    Ok(Err(e)) => Err(e.context(format!("{name} failed"))),
                    Err(e) => anyhow::bail!("{name} panicked: {e}"),
                }
            }
            () = signal => {
                self.stop().await;
                Ok(())
            }
        }
    }

    /// Stops every component and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(component = name, error = %error, "stopped with an error")
                }
                Err(error) => tracing::warn!(component = name, %error, "panicked"),
            }
        }
    }
}

/// Resolves when the first of the tasks ends.
async fn futures_like_select(
    tasks: &mut [(&'static str, JoinHandle<anyhow::Result<()>>)],
) -> (
    &'static str,
    Result<anyhow::Result<()>, tokio::task::JoinError>,
) {
    std::future::poll_fn(|cx| {
        for (name, task) in tasks.iter_mut() {
            if let std::task::Poll::Ready(result) = std::pin::Pin::new(task).poll(cx) {
                return std::task::Poll::Ready((*name, result));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

use std::future::Future as _;

/// The PKI in `dir`, made on first use.
pub fn ensure_pki(dir: &Path, trust_domain: &str) -> anyhow::Result<PkiDir> {
    let existing = PkiDir {
        dir: dir.to_owned(),
    };
    if existing.exists() {
        return Ok(existing);
    }
    pki::init(dir, trust_domain)
}
