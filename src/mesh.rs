//! The mesh's components and how a process runs them: `serve --role X` runs one, `up` (and the
//! end-to-end tests) runs the gateway and every component in one process, from the same
//! configuration and with the same builders. Each component builds itself from its own
//! configuration (its crate's `build`); this file only lists them.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::component::{Component, ComponentError, Context, Shutdown, bind};
use chargemesh_kit::config::ServiceConfig;
use chargemesh_kit::db::Migrations;
use chargemesh_kit::events::SharedBus;

use crate::config::Config;
use crate::pki::{self, PkiDir};

type Built<'a> = Pin<Box<dyn Future<Output = Result<Component, ComponentError>> + Send + 'a>>;

/// A component of the mesh: its name (and role), its service settings in the configuration, its
/// migrations and its builder.
pub struct ComponentSpec {
    pub name: &'static str,
    pub service: fn(&mut Config) -> &mut ServiceConfig,
    pub migrations: Migrations,
    pub build: for<'a> fn(&'a Config, &'a Context) -> Built<'a>,
}

/// Every component behind the gateway, in start order. A new component is its crate, a line
/// here, its gateway routes and its chart template.
pub const COMPONENTS: &[ComponentSpec] = &[
    ComponentSpec {
        name: "asset",
        service: |c| &mut c.asset.service,
        migrations: chargemesh_asset::store::MIGRATIONS,
        build: |c, ctx| Box::pin(chargemesh_asset::build(&c.asset, ctx)),
    },
    ComponentSpec {
        name: "telemetry",
        service: |c| &mut c.telemetry.service,
        migrations: chargemesh_telemetry::store::MIGRATIONS,
        build: |c, ctx| Box::pin(chargemesh_telemetry::build(&c.telemetry, ctx)),
    },
    ComponentSpec {
        name: "dispatch",
        service: |c| &mut c.dispatch.service,
        migrations: chargemesh_dispatch::store::MIGRATIONS,
        build: |c, ctx| Box::pin(chargemesh_dispatch::build(&c.dispatch, ctx)),
    },
    ComponentSpec {
        name: "metering",
        service: |c| &mut c.metering.service,
        migrations: chargemesh_metering::store::MIGRATIONS,
        build: |c, ctx| Box::pin(chargemesh_metering::build(&c.metering, ctx)),
    },
    ComponentSpec {
        name: "complaints",
        service: |c| &mut c.complaints.service,
        migrations: chargemesh_complaints::store::MIGRATIONS,
        build: |c, ctx| Box::pin(chargemesh_complaints::build(&c.complaints, ctx)),
    },
    ComponentSpec {
        name: "reporting",
        service: |c| &mut c.reporting.service,
        migrations: chargemesh_reporting::store::MIGRATIONS,
        build: |c, ctx| Box::pin(chargemesh_reporting::build(&c.reporting, ctx)),
    },
];

/// The component of a role name.
pub fn component(name: &str) -> Option<&'static ComponentSpec> {
    COMPONENTS.iter().find(|c| c.name == name)
}

/// What every component of a process shares, from the configuration.
pub async fn context(config: &Config, clock: SharedClock) -> anyhow::Result<Context> {
    Ok(Context {
        trust_domain: config.trust_domain.clone(),
        clock,
        bus: chargemesh_kit::events::connect(&config.events.url, &config.events.prefix).await?,
        grace: Duration::from_secs(config.shutdown_grace_s),
    })
}

/// Runs one role until `shutdown`: the gateway or a component (`chargemesh serve --role`).
pub async fn serve(
    role: &str,
    config: &Config,
    ctx: &Context,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    if role == "gateway" {
        let listeners = chargemesh_gateway::Listeners::bind(&config.gateway).await?;
        return Ok(chargemesh_gateway::run(&config.gateway, ctx, listeners, shutdown).await?);
    }
    let spec = component(role).with_context(|| format!("no component {role}"))?;
    let mut config = config.clone();
    let listener = bind(&(spec.service)(&mut config).listen).await?;
    let built = (spec.build)(&config, ctx)
        .await
        .with_context(|| format!("building {role}"))?;
    Ok(built.run(listener, ctx, shutdown).await?)
}

/// Applies every component's migrations to its configured database.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let mut config = config.clone();
    for spec in COMPONENTS {
        let database = (spec.service)(&mut config).database.clone();
        let db =
            chargemesh_kit::component::open_database(spec.name, &database, spec.migrations).await?;
        db.close().await;
        tracing::info!(component = spec.name, "database migrated");
    }
    Ok(())
}

/// Changes the configuration once every URL points at this process (a test routing one
/// component's calls through a switch it controls).
pub type Rewire = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// How to run the embedded mesh.
#[derive(Clone)]
pub struct EmbeddedOptions {
    /// SQLite files and the development PKI live here.
    pub data_dir: PathBuf,
    /// The configuration: the embedded defaults ([`Config::embedded`]), then whatever the
    /// caller layers over them (a file, the environment, a test's settings).
    pub config: Config,
    pub clock: SharedClock,
    /// How long open streams may finish after a stop, instead of `config.shutdown_grace_s`.
    pub grace: Option<Duration>,
    /// Applied after the wiring.
    pub rewire: Option<Rewire>,
}

impl std::fmt::Debug for EmbeddedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedOptions")
            .field("data_dir", &self.data_dir)
            .field("config", &self.config)
            .finish()
    }
}

impl EmbeddedOptions {
    /// The embedded defaults in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            config: Config::embedded(&data_dir),
            data_dir,
            clock: Arc::new(chargemesh_kit::clock::SystemClock),
            grace: None,
            rewire: None,
        }
    }

    /// The embedded defaults in `data_dir` with the TOML files and the environment over them,
    /// the same layering `serve` reads.
    pub fn load(
        data_dir: impl Into<PathBuf>,
        files: &[&Path],
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let data_dir = data_dir.into();
        let texts = chargemesh_kit::config::read_files(files)?;
        let config =
            chargemesh_kit::config::load_layers_over(Config::embedded(&data_dir), &texts, env)?;
        Ok(Self {
            config,
            data_dir,
            clock: Arc::new(chargemesh_kit::clock::SystemClock),
            grace: None,
            rewire: None,
        })
    }

    /// Every periodic pass (deadlines, followers, the directory) at most every `ms`, for tests
    /// that move a manual clock.
    pub fn poll_every(&mut self, ms: u64) {
        let c = &mut self.config;
        c.dispatch.deadline_interval_ms = ms;
        c.complaints.deadline_interval_ms = ms;
        c.metering.follow_interval_ms = ms.min(1_000);
        c.reporting.follow_interval_ms = ms.min(1_000);
        c.reporting.directory_interval_ms = ms.clamp(50, 5_000);
    }
}

/// The gateway and every component in one process.
pub struct EmbeddedMesh {
    pub gateway_addr: SocketAddr,
    /// Where the T/CEC 102 edge listens, when it runs.
    pub cec_addr: Option<SocketAddr>,
    /// Where the OCPP edge listens, when it runs.
    pub ocpp_addr: Option<SocketAddr>,
    /// The gateway's YKC edge, when configured.
    pub ykc_addr: Option<SocketAddr>,
    /// The YKC edge's TLS listener, when configured.
    pub ykc_tls_addr: Option<SocketAddr>,
    /// The OCPP edge's profile 1 listener (plain TCP for a TLS-terminating proxy), when on.
    pub ocpp_insecure_addr: Option<SocketAddr>,
    /// Where each component listens on the mesh.
    pub addrs: BTreeMap<&'static str, SocketAddr>,
    /// The asset component's mesh address.
    pub asset_addr: SocketAddr,
    pub pki: PkiDir,
    /// The configuration the process runs with, every URL pointing at this process.
    pub config: Config,
    /// The event bus every component of the process shares.
    pub bus: SharedBus,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

impl EmbeddedMesh {
    /// Starts the mesh; makes the development PKI in `data_dir/pki` on first run, reuses it
    /// after. Every component is built and migrated before the gateway takes calls.
    pub async fn start(opts: EmbeddedOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&opts.data_dir)
            .with_context(|| format!("creating {}", opts.data_dir.display()))?;
        let mut config = opts.config;
        let pki = pki::ensure(&opts.data_dir.join("pki"), &config.trust_domain)?;
        let (stop, shutdown) = Shutdown::new();
        let mut ctx = context(&config, opts.clock).await?;
        if let Some(grace) = opts.grace {
            ctx.grace = grace;
        }
        // Every listener first, so each component knows where the others are: in one process,
        // every URL points here.
        let mut listeners: Vec<(&'static ComponentSpec, TcpListener)> = Vec::new();
        let mut addrs = BTreeMap::new();
        for spec in COMPONENTS {
            let listener = bind(&(spec.service)(&mut config).listen).await?;
            addrs.insert(spec.name, listener.local_addr()?);
            listeners.push((spec, listener));
        }
        let urls: BTreeMap<&str, String> = addrs
            .iter()
            .map(|(name, addr)| (*name, format!("https://127.0.0.1:{}", addr.port())))
            .collect();
        config.point_at(&urls);
        if let Some(rewire) = &opts.rewire {
            rewire(&mut config);
        }
        let mut tasks = Vec::new();
        for (spec, listener) in listeners {
            let built = (spec.build)(&config, &ctx)
                .await
                .with_context(|| format!("building {}", spec.name))?;
            let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
            tasks.push((
                spec.name,
                tokio::spawn(async move { Ok(built.run(listener, &ctx, shutdown).await?) }),
            ));
        }
        let gateway = chargemesh_gateway::Listeners::bind(&config.gateway).await?;
        let gateway_addr = gateway.grpc.local_addr()?;
        let cec_addr = match &gateway.cec {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let ocpp_addr = match &gateway.ocpp {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let ykc_addr = match &gateway.ykc.plain {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let ykc_tls_addr = match &gateway.ykc.tls {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        let ocpp_insecure_addr = match &gateway.ocpp_insecure {
            Some(listener) => Some(listener.local_addr()?),
            None => None,
        };
        {
            let (gateway_config, ctx, shutdown) =
                (config.gateway.clone(), ctx.clone(), shutdown.clone());
            tasks.push((
                "gateway",
                tokio::spawn(async move {
                    Ok(chargemesh_gateway::run(&gateway_config, &ctx, gateway, shutdown).await?)
                }),
            ));
        }
        Ok(Self {
            gateway_addr,
            cec_addr,
            ocpp_addr,
            ykc_addr,
            ykc_tls_addr,
            ocpp_insecure_addr,
            asset_addr: addrs["asset"],
            addrs,
            pki,
            config,
            bus: ctx.bus,
            stop,
            tasks,
        })
    }

    /// Waits until a component stops on its own (an error) or `signal` resolves, then stops all.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let first_exit = first_to_end(&mut self.tasks);
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
async fn first_to_end(
    tasks: &mut [(&'static str, JoinHandle<anyhow::Result<()>>)],
) -> (
    &'static str,
    Result<anyhow::Result<()>, tokio::task::JoinError>,
) {
    std::future::poll_fn(|cx| {
        for (name, task) in tasks.iter_mut() {
            if let std::task::Poll::Ready(result) = Pin::new(task).poll(cx) {
                return std::task::Poll::Ready((*name, result));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_layers_the_configuration_file_and_the_environment_over_the_embedded_defaults() {
        let dir = std::env::temp_dir().join(format!("cm-up-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("mesh.toml");
        let peers = include_str!("../deploy/examples/peers.toml");
        std::fs::write(
            &file,
            format!(
                "[telemetry]\noffline_after_seconds = 600\n\n[gateway.cec]\n\
                 listen = \"127.0.0.1:0\"\noperator_id = \"MA01H3BQ2\"\n\n{peers}"
            ),
        )
        .expect("file");
        let env = [(
            "CHARGEMESH_DISPATCH__DEADLINE_INTERVAL_MS".to_owned(),
            "250".to_owned(),
        )];
        let opts = EmbeddedOptions::load(&dir, &[file.as_path()], env).expect("loads");
        let c = &opts.config;
        assert_eq!(c.telemetry.settings.offline_after_seconds, 600, "the file");
        assert_eq!(c.dispatch.deadline_interval_ms, 250, "the environment");
        assert_eq!(c.gateway.cec.operator_id, "MA01H3BQ2");
        assert_eq!(c.gateway.cec.peers.len(), 1, "T/CEC peers from the file");
        assert_eq!(c.reporting.cec_push.peers.len(), 1, "pushes from the file");
        // The embedded defaults stand where the file says nothing.
        assert_eq!(c.asset.service.listen, "127.0.0.1:0");
        assert!(
            c.telemetry
                .service
                .database
                .url
                .expose()
                .starts_with("sqlite:")
        );
        assert!(
            c.telemetry
                .service
                .tls
                .cert_file
                .starts_with(dir.join("pki"))
        );
        assert!(c.gateway.jwt.is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_binary_runs_the_components_the_gateway_routes_to() {
        let names: Vec<&str> = COMPONENTS.iter().map(|c| c.name).collect();
        assert_eq!(names, chargemesh_gateway::routes::COMPONENTS);
        assert_eq!(names, crate::pki::COMPONENTS[1..]);
    }
}
