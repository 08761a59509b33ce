//! What the fleet benchmarks run against: one `chargemesh up` process (the embedded default), or
//! the mesh as Kubernetes runs it, every role its own `chargemesh serve --role X` process with
//! as many gateway replicas as the fleet needs (one process may hold 20,000 open files here), the
//! components sharing events through Redis. Each process's memory and CPU is read from /proc, and
//! any role can be killed without warning and started again on the same data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::scratch::Scratch;
use super::{Up, free_port, temp_dir};
use crate::config::{Config, DEFAULT_TRUST_DOMAIN};
use crate::pki::{self, PkiDir};

/// Where the mesh runs and on what.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// PostgreSQL (a fresh schema per component) instead of SQLite files.
    pub database_url: Option<String>,
    /// Redis Streams instead of the in-process bus; required for separate processes.
    pub redis_url: Option<String>,
    /// Serve the OCPP edge too.
    pub ocpp: bool,
    /// Every role its own process with this many gateway replicas; `None`: one `up` process.
    pub gateways: Option<usize>,
    /// Regulator platforms to push to over T/CEC 102 (`reporting.cec_push`).
    pub cec_push: Option<chargemesh_reporting::push::PushConfig>,
}

/// Pile connections per gateway replica when the benchmark picks their number: under the
/// open-file limit of 20,000 with room for its upstream connections and files.
const GATEWAY_SHARE: usize = 18_000;

impl ServeOptions {
    /// The gateway replicas asked for (`Some(0)`: as many as `piles` need), or `None` for one
    /// `up` process.
    pub fn gateways_for(piles: usize, requested: Option<usize>) -> Option<usize> {
        requested.map(|n| {
            if n == 0 {
                piles.div_ceil(GATEWAY_SHARE).max(1)
            } else {
                n
            }
        })
    }

    pub(crate) fn backend(&self) -> &'static str {
        match (&self.database_url, &self.redis_url) {
            (Some(_), Some(_)) => "PostgreSQL over TCP + Redis Streams",
            (Some(_), None) => "PostgreSQL over TCP + in-process bus",
            (None, Some(_)) => "SQLite + Redis Streams",
            (None, None) => "SQLite + in-process bus (embedded default)",
        }
    }

    pub(crate) fn topology(&self) -> String {
        match self.gateways {
            None => "one chargemesh up process".into(),
            Some(n) => format!("every role its own process, {n} gateway replica(s)"),
        }
    }
}

/// A configuration file setting `reporting.cec_push` alone.
#[derive(serde::Serialize)]
struct PushOnly {
    reporting: PushSection,
}

#[derive(serde::Serialize)]
struct PushSection {
    cec_push: chargemesh_reporting::push::PushConfig,
}

/// A role the storm benchmark kills (`--kill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Victim {
    /// The whole `up` process, or every process of the split mesh.
    All,
    /// Every gateway replica (split mesh only).
    Gateway,
    /// The telemetry component (split mesh only).
    Telemetry,
}

/// The serving side of a benchmark.
pub(crate) enum Serving {
    One {
        up: Up,
        ocpp: Option<SocketAddr>,
        scratch: Scratch,
    },
    Split(Cluster),
}

impl Serving {
    pub(crate) async fn start(binary: &Path, opts: &ServeOptions) -> anyhow::Result<Self> {
        let schema = format!("bench{}_", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let scratch = Scratch {
            prefix: schema.clone(),
            database_url: opts.database_url.clone(),
            redis_url: opts.redis_url.clone(),
        };
        if let Some(gateways) = opts.gateways {
            return Ok(Self::Split(
                Cluster::start(binary, opts, gateways.max(1), scratch).await?,
            ));
        }
        let mut vars: Vec<(String, String)> = Vec::new();
        if let Some(url) = &opts.database_url {
            for component in crate::mesh::COMPONENTS {
                let key = component.name.to_uppercase();
                vars.push((format!("CHARGEMESH_{key}__DATABASE__URL"), url.clone()));
                vars.push((
                    format!("CHARGEMESH_{key}__DATABASE__SCHEMA"),
                    format!("{schema}{}", component.name),
                ));
            }
        }
        if let Some(url) = &opts.redis_url {
            vars.push(("CHARGEMESH_EVENTS__URL".into(), url.clone()));
            vars.push(("CHARGEMESH_EVENTS__PREFIX".into(), format!("{schema}:")));
        }
        let ocpp = if opts.ocpp {
            let edge: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
            vars.push(("CHARGEMESH_GATEWAY__OCPP__LISTEN".into(), edge.to_string()));
            Some(edge)
        } else {
            None
        };
        let env: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        // Over `up`'s defaults, a configuration file of what the variables cannot say.
        let file = match &opts.cec_push {
            Some(push) => Some(toml::to_string(&PushOnly {
                reporting: PushSection {
                    cec_push: push.clone(),
                },
            })?),
            None => None,
        };
        Ok(Self::One {
            up: Up::start_configured(binary, &env, file.as_deref()).await?,
            ocpp,
            scratch,
        })
    }

    /// The first gateway: where the benchmark registers the fleet and reads back.
    pub(crate) fn gateway(&self) -> SocketAddr {
        match self {
            Self::One { up, .. } => up.gateway,
            Self::Split(cluster) => cluster.gateways[0],
        }
    }

    /// Every gateway replica's gRPC address; piles spread over them.
    pub(crate) fn gateways(&self) -> Vec<SocketAddr> {
        match self {
            Self::One { up, .. } => vec![up.gateway],
            Self::Split(cluster) => cluster.gateways.clone(),
        }
    }

    /// Every gateway replica's OCPP edge (empty unless asked for).
    pub(crate) fn ocpp_edges(&self) -> Vec<SocketAddr> {
        match self {
            Self::One { ocpp, .. } => ocpp.iter().copied().collect(),
            Self::Split(cluster) => cluster.ocpp_edges.clone(),
        }
    }

    /// The prefix of the run's PostgreSQL schemas (`<prefix><component>`).
    pub(crate) fn schema_prefix(&self) -> &str {
        match self {
            Self::One { scratch, .. } => &scratch.prefix,
            Self::Split(cluster) => &cluster.scratch.prefix,
        }
    }

    pub(crate) fn pki(&self) -> &PkiDir {
        match self {
            Self::One { up, .. } => &up.pki,
            Self::Split(cluster) => &cluster.pki,
        }
    }

    /// Every serving process, by role.
    pub(crate) fn processes(&self) -> Vec<(&'static str, u32)> {
        match self {
            Self::One { up, .. } => vec![("up", up.pid)],
            Self::Split(cluster) => cluster
                .processes
                .iter()
                .filter_map(|p| Some((p.role, p.child.id()?)))
                .collect(),
        }
    }

    /// Kills `victim` without warning and starts it again on the same data and addresses;
    /// returns once it listens again.
    pub(crate) async fn restart(&mut self, victim: Victim) -> anyhow::Result<()> {
        match (self, victim) {
            (Self::One { up, .. }, Victim::All) => up.restart().await,
            (Self::One { .. }, _) => {
                anyhow::bail!("killing one role needs every role its own process (--gateways)")
            }
            (Self::Split(cluster), victim) => cluster.restart(victim).await,
        }
    }

    pub(crate) async fn stop(self) {
        match self {
            Self::One { up, scratch, .. } => {
                up.stop().await;
                scratch.remove().await;
            }
            Self::Split(cluster) => cluster.stop().await,
        }
    }
}

/// One serving process of the split mesh.
struct Process {
    role: &'static str,
    /// Variables over the shared configuration file (a replica's own addresses).
    env: Vec<(String, String)>,
    /// Where it listens once it is up.
    listens: SocketAddr,
    child: tokio::process::Child,
}

/// The mesh as separate processes from one configuration file.
pub(crate) struct Cluster {
    binary: PathBuf,
    dir: PathBuf,
    config_file: PathBuf,
    processes: Vec<Process>,
    pub(crate) gateways: Vec<SocketAddr>,
    pub(crate) ocpp_edges: Vec<SocketAddr>,
    pub(crate) pki: PkiDir,
    scratch: Scratch,
}

fn loopback() -> anyhow::Result<SocketAddr> {
    Ok(format!("127.0.0.1:{}", free_port()?).parse()?)
}

impl Cluster {
    async fn start(
        binary: &Path,
        opts: &ServeOptions,
        gateways: usize,
        scratch: Scratch,
    ) -> anyhow::Result<Self> {
        let schema = scratch.prefix.clone();
        let redis = opts.redis_url.as_deref().context(
            "separate processes share their events through Redis: pass --redis-url with --gateways",
        )?;
        let dir = temp_dir("cluster");
        std::fs::create_dir_all(&dir)?;
        let pki = pki::ensure(&dir.join("pki"), DEFAULT_TRUST_DOMAIN)?;
        // The embedded defaults (SQLite files and PKI in `dir`), each component on a port of
        // its own, written out as the one configuration file every process reads.
        let mut config = Config::embedded(&dir);
        let mut components = Vec::new();
        let mut urls = BTreeMap::new();
        for spec in crate::mesh::COMPONENTS {
            let addr = loopback()?;
            (spec.service)(&mut config).listen = addr.to_string();
            urls.insert(spec.name, format!("https://127.0.0.1:{}", addr.port()));
            components.push((spec.name, addr));
        }
        config.point_at(&urls);
        if let Some(url) = &opts.database_url {
            config.use_postgres(url, &schema);
        }
        if let Some(push) = &opts.cec_push {
            config.reporting.cec_push = push.clone();
        }
        config.events.url = redis.to_owned();
        config.events.prefix = format!("{schema}:");
        let config_file = dir.join("chargemesh.toml");
        std::fs::write(&config_file, toml::to_string(&config)?)?;
        let migrated = tokio::process::Command::new(binary)
            .arg("--config")
            .arg(&config_file)
            .arg("migrate")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .context("chargemesh migrate")?;
        anyhow::ensure!(migrated.success(), "chargemesh migrate failed: {migrated}");
        let mut this = Self {
            binary: binary.to_owned(),
            dir,
            config_file,
            processes: Vec::new(),
            gateways: Vec::new(),
            ocpp_edges: Vec::new(),
            pki,
            scratch,
        };
        for (name, listens) in components {
            this.spawn(name, listens, Vec::new()).await?;
        }
        for _ in 0..gateways {
            let listens = loopback()?;
            let mut env = vec![("CHARGEMESH_GATEWAY__LISTEN".into(), listens.to_string())];
            if opts.ocpp {
                let edge = loopback()?;
                env.push(("CHARGEMESH_GATEWAY__OCPP__LISTEN".into(), edge.to_string()));
                this.ocpp_edges.push(edge);
            }
            this.gateways.push(listens);
            this.spawn("gateway", listens, env).await?;
        }
        Ok(this)
    }

    fn command(&self, role: &str, env: &[(String, String)]) -> tokio::process::Command {
        // `CHARGEMESH_BENCH_WRAP_<ROLE>` runs that role under a profiler, such as
        // `valgrind --tool=massif --massif-out-file=gateway.%p.massif` for where its memory goes.
        let wrap = profiler_of(role).unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(profiler) => {
                let mut command = tokio::process::Command::new(profiler);
                command.args(words).arg(&self.binary);
                command
            }
            None => tokio::process::Command::new(&self.binary),
        };
        command
            .arg("--config")
            .arg(&self.config_file)
            .args(["serve", "--role", role])
            // Warnings, but not the gateway's one line per stream its killed upstream broke
            // (100,000 of them in a storm); `CHARGEMESH_BENCH_LOG` sets the filter.
            .env(
                "RUST_LOG",
                std::env::var("CHARGEMESH_BENCH_LOG")
                    .unwrap_or_else(|_| "warn,chargemesh_gateway::upstream=error".into()),
            )
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    async fn spawn(
        &mut self,
        role: &'static str,
        listens: SocketAddr,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        let child = self
            .command(role, &env)
            .spawn()
            .with_context(|| format!("starting chargemesh serve --role {role}"))?;
        wait_listening(listens, role).await?;
        self.processes.push(Process {
            role,
            env,
            listens,
            child,
        });
        Ok(())
    }

    async fn restart(&mut self, victim: Victim) -> anyhow::Result<()> {
        let hit = |role: &str| match victim {
            Victim::All => true,
            Victim::Gateway => role == "gateway",
            Victim::Telemetry => role == "telemetry",
        };
        for process in self.processes.iter_mut().filter(|p| hit(p.role)) {
            let _ = process.child.kill().await;
        }
        // Started again in the order they first started: components before gateways.
        for i in 0..self.processes.len() {
            if !hit(self.processes[i].role) {
                continue;
            }
            let (role, listens) = (self.processes[i].role, self.processes[i].listens);
            let child = self
                .command(role, &self.processes[i].env)
                .spawn()
                .with_context(|| format!("restarting {role}"))?;
            self.processes[i].child = child;
            wait_listening(listens, role).await?;
        }
        Ok(())
    }

    async fn stop(mut self) {
        // A role under a profiler is asked to stop (SIGTERM) and waited for, so the profiler
        // writes its report.
        for process in &mut self.processes {
            if let (Some(_), Some(pid)) = (profiler_of(process.role), process.child.id()) {
                let _ = tokio::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
                let _ = tokio::time::timeout(Duration::from_secs(120), process.child.wait()).await;
            }
        }
        // All at once, so none outlives a peer long enough to complain of it.
        for process in &mut self.processes {
            let _ = process.child.start_kill();
        }
        for process in &mut self.processes {
            let _ = process.child.wait().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        self.scratch.remove().await;
    }
}

/// The profiler a role runs under (`CHARGEMESH_BENCH_WRAP_<ROLE>`), if one is asked for.
fn profiler_of(role: &str) -> Option<String> {
    std::env::var(format!("CHARGEMESH_BENCH_WRAP_{}", role.to_uppercase()))
        .ok()
        .filter(|wrap| !wrap.trim().is_empty())
}

async fn wait_listening(addr: SocketAddr, role: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "chargemesh serve --role {role} did not listen on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
