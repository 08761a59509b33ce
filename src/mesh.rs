//! Running components: one role per process (`serve --role`), or every role in one process on the
//! embedded default (`up`, and the end-to-end tests). The same code runs in both; only the
//! wiring differs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use chargemesh_asset::AssetApi;
use chargemesh_gateway::{GatewayConfig, JwtSettings};
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::config::{DatabaseConfig, Secret, ServiceConfig};
use chargemesh_kit::db::Database;
use chargemesh_kit::server::{ServeLimits, health_and_reflection, serve_service};
use chargemesh_kit::tls::{ClientAuth, ReloadingServerConfig};
use chargemesh_proto::FILE_DESCRIPTOR_SET;
use chargemesh_proto::asset::v1::asset_service_server::AssetServiceServer;

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
}

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

/// Runs the asset service until `shutdown`.
pub async fn run_asset(
    config: &ServiceConfig,
    trust_domain: &str,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let db = open_database("asset", &config.database).await?;
    let store = chargemesh_asset::store::open(&db)
        .await
        .context("migrating the asset database")?;
    let (health, routes) = health_and_reflection(&[FILE_DESCRIPTOR_SET]);
    health.set_serving::<AssetServiceServer<AssetApi>>().await;
    let routes = routes.add_service(AssetApi::new(store, clock).into_server());
    let tls = ReloadingServerConfig::load(config.tls.clone(), ClientAuth::Required)?;
    let watcher = tls.watch(std::time::Duration::from_secs(30));
    tracing::info!(addr = %listener.local_addr()?, "asset serving");
    let served = serve_service(
        listener,
        tls,
        trust_domain.to_owned(),
        ServeLimits::default(),
        routes,
        shutdown.wait(),
    )
    .await;
    watcher.abort();
    db.close().await;
    Ok(served?)
}

/// Runs the gateway until `shutdown`.
pub async fn run_gateway(
    config: &GatewayConfig,
    trust_domain: &str,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "gateway serving");
    chargemesh_gateway::serve(
        config,
        trust_domain,
        listener,
        &[FILE_DESCRIPTOR_SET],
        shutdown.wait(),
    )
    .await?;
    Ok(())
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
        }
    }
}

/// Every role in one process.
pub struct EmbeddedMesh {
    pub gateway_addr: SocketAddr,
    pub asset_addr: SocketAddr,
    pub pki: PkiDir,
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
        };
        // The database is ready before the gateway takes calls.
        open_database("asset", &asset.database)
            .await?
            .migrate(chargemesh_asset::store::MIGRATIONS)
            .await
            .context("migrating the asset database")?;
        let mut tasks = Vec::new();
        {
            let (td, clock, shutdown) = (
                opts.trust_domain.clone(),
                opts.clock.clone(),
                shutdown.clone(),
            );
            tasks.push((
                "asset",
                tokio::spawn(async move {
                    run_asset(&asset, &td, asset_listener, clock, shutdown).await
                }),
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
            upstreams: [(
                "asset".to_owned(),
                format!("https://127.0.0.1:{}", asset_addr.port()),
            )]
            .into(),
        };
        {
            let (td, shutdown) = (opts.trust_domain.clone(), shutdown.clone());
            tasks.push((
                "gateway",
                tokio::spawn(async move {
                    run_gateway(&gateway, &td, gateway_listener, shutdown).await
                }),
            ));
        }
        Ok(Self {
            gateway_addr,
            asset_addr,
            pki,
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
