//! `chargemesh bench`: figures for the edge and the ingest path, printed, never asserted.
//!
//! `bench ingest` (bench/ingest.rs) measures the durable ingest path at full speed; `bench fleet`
//! and `bench storm` a city's fleet of piles and its reconnect after a restart; `bench idle`
//! holds many idle pile connections open against a separate `chargemesh up` process and reads
//! that process's resident memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use chargemesh_kit::Principal;
use chargemesh_kit::tls;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use crate::pki;

mod churn;
pub mod cli;
mod cluster;
mod fleet;
mod fleet_ocpp;
mod handshakes;
mod hostile;
mod ingest;
mod lifeline;
mod net;
mod pg_probe;
mod schedule;
mod scratch;
mod storm;
mod stretch;
mod to_regulator;
mod worker;
pub use cluster::{ServeOptions, Victim};
pub use fleet::{FleetOptions, fleet};
pub use handshakes::handshakes;
pub use hostile::hostile;
pub use ingest::{Figures, IngestOptions, ingest};
pub use storm::{StormOptions, storm};
pub use worker::run as worker;

/// Registers the benchmark's operator through the gateway; returns the operator's asset client,
/// with which each benchmark registers its stations and piles.
pub(crate) async fn register_operator(
    gateway: SocketAddr,
    pki: &pki::PkiDir,
) -> anyhow::Result<AssetServiceClient<tonic::transport::Channel>> {
    let mut client = crate::demo::asset_client(gateway, &pki.files("operator"))?;
    client
        .create_operator(asset::CreateOperatorRequest {
            operator: Some(crate::demo::operator(pki::DEMO_CREDIT_CODE)),
        })
        .await?;
    Ok(client)
}

/// The `p` quantile of `sorted` latencies (zero when there are none).
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Issues benchmark clients their own certificates (two days), in memory, from the PKI's CA.
pub(crate) struct Issuer {
    ca: pki::Authority,
    roots: Arc<rustls::RootCertStore>,
    trust_domain: String,
    /// Whether its clients resume their TLS sessions from the tickets servers send.
    pub(crate) resume: bool,
}

impl Issuer {
    pub(crate) fn load(pki: &pki::PkiDir, trust_domain: &str) -> anyhow::Result<Self> {
        Ok(Self {
            ca: pki::Authority::load(&pki.dir)?,
            roots: tls::root_store(&pki.ca())?,
            trust_domain: trust_domain.to_owned(),
            resume: true,
        })
    }

    /// A TLS client configuration presenting `principal`'s new certificate.
    pub(crate) fn client(
        &self,
        principal: &Principal,
    ) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let (cert, key) = self
            .ca
            .issue_for_days(principal, &self.trust_domain, &[], 2)?;
        Ok(Arc::new(tls::client_config_from_pem(
            self.roots.clone(),
            &cert,
            &key,
            self.resume,
        )?))
    }
}

fn temp_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "chargemesh-bench-{name}-{}",
        uuid::Uuid::now_v7().simple()
    ))
}

/// CPU time the whole machine has spent busy since boot (every core, from /proc/stat).
pub(crate) fn machine_busy() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("an empty /proc/stat")?;
    // cpu user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: u64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| !matches!(i, 3 | 4) && *i < 8)
        .map(|(_, t)| t)
        .sum();
    Ok(Duration::from_secs_f64(busy as f64 / 100.0))
}

/// The CPU time (user + system) of a process so far.
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

/// The CPU time (user + system) of the process or thread whose `stat` file `path` is.
pub(crate) fn stat_cpu(path: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(path)?;
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // Fields 14 and 15 of stat (utime, stime), counted after the command's ")".
    let total = ticks(11) + ticks(12);
    Ok(Duration::from_secs_f64(total as f64 / 100.0))
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS:`, `VmHWM:` the peak).
fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field}"))
}

/// A `chargemesh up` of the benchmark's own, in a fresh data directory, whose resident memory
/// the benchmark reads.
/// The configuration file a benchmark's `up` reads from its data directory, when it has one.
const UP_CONFIG_FILE: &str = "bench.toml";

pub(crate) struct Up {
    child: tokio::process::Child,
    pub pid: u32,
    pub gateway: SocketAddr,
    pub pki: pki::PkiDir,
    dir: PathBuf,
    binary: PathBuf,
    env: Vec<(String, String)>,
}

impl Up {
    /// Starts `binary up` with `env` over its defaults and waits for its gateway.
    pub(crate) async fn start(binary: &Path, env: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::start_configured(binary, env, None).await
    }

    /// As [`Up::start`], with `config` (TOML) as a configuration file under the variables.
    pub(crate) async fn start_configured(
        binary: &Path,
        env: &[(&str, String)],
        config: Option<&str>,
    ) -> anyhow::Result<Self> {
        let dir = temp_dir("up");
        if let Some(config) = config {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(UP_CONFIG_FILE), config)?;
        }
        let port = free_port()?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let gateway: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let child = Self::spawn(binary, &dir, gateway, &env).await?;
        Ok(Self {
            pid: child.id().context("no pid")?,
            child,
            gateway,
            pki: pki::PkiDir {
                dir: dir.join("pki"),
            },
            dir,
            binary: binary.to_owned(),
            env,
        })
    }

    async fn spawn(
        binary: &Path,
        dir: &Path,
        gateway: SocketAddr,
        env: &[(String, String)],
    ) -> anyhow::Result<tokio::process::Child> {
        let mut command = tokio::process::Command::new(binary);
        let config = dir.join(UP_CONFIG_FILE);
        if config.exists() {
            command.arg("--config").arg(config);
        }
        command
            .args(["up", "--data-dir"])
            .arg(dir)
            .args(["--listen", &gateway.to_string()])
            // `CHARGEMESH_BENCH_LOG` sets the served process's log filter (warnings otherwise).
            .env(
                "RUST_LOG",
                std::env::var("CHARGEMESH_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().context("starting chargemesh up")?;
        let pki = pki::PkiDir {
            dir: dir.join("pki"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if pki.exists() && tokio::net::TcpStream::connect(gateway).await.is_ok() {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "chargemesh up did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(child)
    }

    /// Kills the process (no goodbye to anyone) and starts it again on the same data, port and
    /// settings; returns once its gateway listens.
    pub(crate) async fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill().await;
        self.child = Self::spawn(&self.binary, &self.dir, self.gateway, &self.env).await?;
        self.pid = self.child.id().context("no pid")?;
        Ok(())
    }

    /// Resident memory now and at its peak so far, KiB.
    pub(crate) fn memory(&self) -> anyhow::Result<(u64, u64)> {
        Ok((rss_kib(self.pid)?, status_kib(self.pid, "VmHWM:")?))
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connector status report: charging, or idle.
pub(crate) fn status_body(charging: bool) -> tm::telemetry_message::Body {
    tm::telemetry_message::Body::Status(tm::ConnectorStatus {
        state: if charging {
            tm::ConnectorState::Charging
        } else {
            tm::ConnectorState::Idle
        } as i32,
        ..Default::default()
    })
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(crate::ports::free_port()?)
}

/// Holds `connections` idle pile connections (each sent one heartbeat) open against a separate
/// `chargemesh up` and prints that process's resident memory before and after.
pub async fn idle(connections: usize, binary: &Path) -> anyhow::Result<()> {
    // Every connection here is the one operator certificate's: what is measured is the cost of a
    // connection, not the per-principal limits (real piles each have their own).
    let allowance = (connections + 16).to_string();
    let up = Up::start(
        binary,
        &[
            (
                "CHARGEMESH_GATEWAY__LIMITS__CONNECTIONS_PER_PRINCIPAL",
                allowance.clone(),
            ),
            (
                "CHARGEMESH_GATEWAY__LIMITS__STREAMS_PER_PRINCIPAL",
                allowance,
            ),
        ],
    )
    .await?;
    let (pid, gateway, pki) = (up.pid, up.gateway, up.pki.clone());
    let port = gateway.port();
    let opts = IngestOptions {
        connections: 1,
        piles_per_connection: 1,
        batch: 1,
        window: 1,
        seconds: 0,
        database_url: None,
        redis_url: None,
    };
    ingest::seed(gateway, &pki, &opts).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid)?;
    let config = Arc::new(tls::client_config(&pki.files("operator"))?);
    let mut held = Vec::with_capacity(connections);
    let started = Instant::now();
    for i in 0..connections {
        let channel = tls::channel(&format!("https://127.0.0.1:{port}"), config.clone())?;
        let mut client = TelemetryServiceClient::new(channel);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let heartbeat = tm::TelemetryMessage {
            sequence: i as u64 + 1,
            pile_id: "B0-P0".into(),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {})),
            ..Default::default()
        };
        tx.send(tm::ConnectRequest {
            messages: vec![heartbeat],
        })
        .await?;
        let mut inbound = client
            .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        inbound.message().await?.context("no acknowledgement")?;
        held.push((tx, inbound));
    }
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid)?;
    println!(
        "bench idle: {connections} idle pile connections (mTLS, one heartbeat each) opened in {:.1} s\n  \
         chargemesh up resident memory: {:.1} MiB before, {:.1} MiB with them open ({:.1} KiB per connection)",
        opened.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / connections.max(1) as f64
    );
    drop(held);
    up.stop().await;
    Ok(())
}
