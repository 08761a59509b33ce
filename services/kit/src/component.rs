//! A mesh component as the binary runs it: each component's crate builds one from its
//! configuration and the process [`Context`] (its routes, its background tasks, its database),
//! and [`Component::run`] serves it over mutual TLS until the process stops. `chargemesh serve
//! --role X` runs one; `chargemesh up` runs them all in one process, the same way.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;

use crate::clock::SharedClock;
use crate::config::{DatabaseConfig, ServiceConfig};
use crate::db::{Database, Migrations, StoreError};
use crate::events::{BusError, SharedBus};
use crate::retention::{LogTable, RecordTable, Records};
use crate::server::{HealthReporter, ServeLimits, ServingStatus, health_and_reflection};
use crate::tls::{ClientAuth, MeshChannel, ReloadingServerConfig, TlsError, TlsFiles};

/// How long open streams may take to finish after a stop signal.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A signal every component of a process stops on.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// The signal and its trigger: send `true` to stop.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// Resolves once the stop is signalled (or its trigger is gone).
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
        grace: Duration,
        serve: impl Future<Output = Result<(), E>>,
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

/// What a process gives each of its components.
#[derive(Debug, Clone)]
pub struct Context {
    /// The SPIFFE trust domain of every certificate identity.
    pub trust_domain: String,
    pub clock: SharedClock,
    /// The event bus every component of the process shares.
    pub bus: SharedBus,
    /// How long open calls may finish after a stop.
    pub grace: Duration,
}

/// Why a component could not be built or served.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("{component} database: {source}")]
    Database {
        component: &'static str,
        source: StoreError,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error(transparent)]
    Serve(#[from] tonic::transport::Error),
    #[error("{0}")]
    Config(String),
}

/// A component ready to serve: its gRPC services, its background tasks and its database.
pub struct Component {
    name: &'static str,
    service: ServiceConfig,
    health: HealthReporter,
    routes: Routes,
    services: Vec<&'static str>,
    background: Vec<JoinHandle<()>>,
    on_stop: Vec<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>,
    db: Option<Database>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("listen", &self.service.listen)
            .field("services", &self.services)
            .finish()
    }
}

impl Component {
    /// A component named `name` with its service settings (listener, TLS files, admin port);
    /// gRPC health and reflection are always served.
    pub fn new(name: &'static str, service: &ServiceConfig) -> Self {
        let (health, routes) = health_and_reflection(&[chargemesh_proto::FILE_DESCRIPTOR_SET]);
        Self {
            name,
            service: service.clone(),
            health,
            routes,
            services: Vec::new(),
            background: Vec::new(),
            on_stop: Vec::new(),
            db: None,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The gRPC services it serves, by full name (`chargemesh.asset.v1.AssetService`).
    pub fn services(&self) -> &[&'static str] {
        &self.services
    }

    /// Serves a gRPC service and reports it SERVING in health.
    pub async fn serve<S>(mut self, service: S) -> Self
    where
        S: tower::Service<
                http::Request<Body>,
                Response = http::Response<Body>,
                Error = std::convert::Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.health
            .set_service_status(S::NAME, ServingStatus::Serving)
            .await;
        self.services.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }

    /// A background task that runs while the component serves and is stopped with it.
    pub fn spawn(mut self, task: JoinHandle<()>) -> Self {
        self.background.push(task);
        self
    }

    /// Work done once when it stops: after its calls have finished and its background tasks
    /// have stopped, before its database closes (to write what a background task held in
    /// memory).
    pub fn on_stop(mut self, work: impl Future<Output = ()> + Send + 'static) -> Self {
        self.on_stop.push(Box::pin(work));
        self
    }

    /// The database it closes when it stops.
    pub fn with_database(mut self, db: Database) -> Self {
        self.db = Some(db);
        self
    }

    /// Serves on `listener` until `shutdown`, lets open calls finish for the context's grace,
    /// then stops the background tasks, does its work on stopping and closes the database.
    pub async fn run(
        self,
        listener: TcpListener,
        ctx: &Context,
        shutdown: Shutdown,
    ) -> Result<(), ComponentError> {
        let admin =
            spawn_admin(self.name, &self.service.admin_listen, &shutdown, ctx.grace).await?;
        let tls = ReloadingServerConfig::load(self.service.tls.clone(), ClientAuth::Required)?;
        let watcher = tls.watch(Duration::from_secs(30));
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(component = self.name, %addr, "serving");
        }
        let served = shutdown
            .clone()
            .serve_with_grace(
                ctx.grace,
                crate::server::serve_service(
                    listener,
                    tls,
                    ctx.trust_domain.clone(),
                    ServeLimits::default(),
                    self.routes,
                    shutdown.wait(),
                ),
            )
            .await;
        watcher.abort();
        if let Some(admin) = admin {
            admin.abort();
        }
        for task in self.background {
            task.abort();
            // Wait for it to stop, so that no stopping work runs beside it.
            let _ = task.await;
        }
        for work in self.on_stop {
            work.await;
        }
        if let Some(db) = self.db {
            db.close().await;
        }
        Ok(served?)
    }
}

/// Connections a listener queues before it accepts them. After a restart a whole fleet
/// reconnects at once; at tokio's default of 1,024 the kernel drops the overflow's handshakes and
/// the piles wait for their retransmissions, seconds each. The kernel caps it at
/// `net.core.somaxconn` (4,096 by default since Linux 5.4).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener (the first address `addr` resolves to) with [`LISTEN_BACKLOG`].
pub async fn bind(addr: &str) -> Result<TcpListener, ComponentError> {
    let failed = |e| ComponentError::Listen(addr.to_owned(), e);
    let resolved = tokio::net::lookup_host(addr)
        .await
        .map_err(failed)?
        .next()
        .ok_or_else(|| {
            failed(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "resolves to no address",
            ))
        })?;
    let socket = if resolved.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(failed)?;
    // As std's and tokio's own bind: a restarted server takes its port back at once.
    socket.set_reuseaddr(true).map_err(failed)?;
    socket.bind(resolved).map_err(failed)?;
    socket.listen(LISTEN_BACKLOG).map_err(failed)
}

/// Serves a component's plaintext health and metrics for Kubernetes on `listen`, when set.
pub async fn spawn_admin(
    name: &'static str,
    listen: &str,
    shutdown: &Shutdown,
    grace: Duration,
) -> Result<Option<JoinHandle<()>>, ComponentError> {
    if listen.trim().is_empty() {
        return Ok(None);
    }
    let listener = bind(listen).await?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(component = name, %addr, "admin (health) serving");
    }
    let stop = shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        if let Err(error) = crate::server::serve_admin(listener, stop.wait(), grace).await {
            tracing::warn!(component = name, %error, "admin listener failed");
        }
    })))
}

/// Connects a component's database (its schema named after it unless configured) and applies
/// its migrations.
pub async fn open_database(
    component: &'static str,
    config: &DatabaseConfig,
    migrations: Migrations,
) -> Result<Database, ComponentError> {
    let failed = |source| ComponentError::Database { component, source };
    let schema = if config.schema.is_empty() {
        component
    } else {
        &config.schema
    };
    let db = Database::connect(config.url.expose(), schema, config.max_connections)
        .await
        .map_err(failed)?;
    db.migrate(migrations).await.map_err(failed)?;
    Ok(db)
}

/// A channel over the mesh to another component, with this component's certificate.
pub fn mesh_channel(tls: &TlsFiles, url: &str) -> Result<MeshChannel, ComponentError> {
    let client = std::sync::Arc::new(crate::tls::client_config(tls)?);
    Ok(crate::tls::mesh_channel(url, client)?)
}

/// A component's records under the retention rules (REQ REC-3) and their periodic purge.
pub fn retention(
    db: &Database,
    tables: &'static [RecordTable],
    logs: &'static [LogTable],
    clock: &SharedClock,
    service: &ServiceConfig,
) -> (Records, JoinHandle<()>) {
    let records = Records::new(db.clone(), tables).with_logs(logs);
    let purge = records.spawn_purge(
        clock.clone(),
        Duration::from_secs(service.retention_purge_interval_s),
    );
    (records, purge)
}
