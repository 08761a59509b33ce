//! `chargemesh bench fleet`: a city's fleet as it really talks. N piles, each its own pile
//! certificate and its own mTLS connection to a separately started mesh (one `chargemesh up`, or
//! with `--gateways` every role its own process behind gateway replicas), driven from client
//! processes of their own (`--clients`, each from its own loopback address), each pile sending
//! one message at a time at a realistic rate: a heartbeat every `heartbeat_s`, a status change
//! every `status_every_s` on average, and while charging (a `charging_share` of the piles) a
//! meter sample every `meter_every_s`. The connections open all at once, as after a restart, and
//! a refused attempt is retried with a jittered backoff as a real pile would. It prints the
//! connections held and how long they took to open, the durable msg/s, the acknowledgement
//! latency (p50/p99/p99.9), the serving processes' resident memory and CPU per connection (and
//! by role), and how long a status change takes from the pile's observation to a regulator's
//! `WatchStatusChanges` stream (p50/p99).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use chargemesh_kit::Principal;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use super::cluster::{ServeOptions, Serving};
use super::lifeline::Lifeline;
use super::pg_probe::PgProbe;
use super::schedule::{Due, Schedule};
use super::to_regulator::{Regulator, push_latencies, watch};
use super::worker::{Clients, Mode, clients_for};
use super::{cpu_time, machine_busy, net, percentile, rss_kib, status_body};
use crate::demo;
use crate::pki::{self, DEMO_OPERATOR_ID};

/// What `bench fleet` runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetOptions {
    pub piles: usize,
    pub seconds: u64,
    pub heartbeat_s: f64,
    pub status_every_s: f64,
    pub meter_every_s: f64,
    pub charging_share: f64,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    /// OCPP 1.6J charge points on the gateway's OCPP edge instead of native streams.
    pub ocpp: bool,
    /// Every role its own process with this many gateway replicas (`Some(0)`: as many as the
    /// fleet needs); one `chargemesh up` process when `None`.
    pub gateways: Option<usize>,
    /// Client processes driving the piles (0: as many as the fleet needs).
    pub clients: usize,
    /// Seconds between piles registered during the steady state (0: none), each announced to
    /// telemetry's registry cache while the fleet reports.
    #[serde(default)]
    pub register_every_s: f64,
}

impl FleetOptions {
    fn serve(&self) -> ServeOptions {
        ServeOptions {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            ocpp: self.ocpp,
            gateways: ServeOptions::gateways_for(self.piles, self.gateways),
            cec_push: None,
        }
    }
}

/// Piles per station of the benchmark's fleet.
const PER_STATION: usize = 100;

/// What the piles of a run share: their tally, how many are connected (and lost and regained
/// their connection), and since when all are.
#[derive(Debug, Default)]
pub(super) struct Run {
    pub(super) tally: Tally,
    /// Piles connected (and acknowledged) at least once.
    pub(super) connected: AtomicU64,
    /// Connections that broke after they had been acknowledged.
    pub(super) broken: AtomicU64,
    /// Piles connected and acknowledged again after a break.
    pub(super) back: AtomicU64,
    pub(super) steady: std::sync::OnceLock<chrono::DateTime<chrono::Utc>>,
}

/// Latencies and counts of every pile, gathered once the run ends.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) acked: AtomicU64,
    /// The acknowledgements of the steady state, with when they came.
    pub(super) acks: Mutex<Vec<super::stretch::TimedAck>>,
}

pub(super) fn pile_of(i: usize) -> (String, String) {
    let station = format!("F{}", i / PER_STATION);
    (format!("{station}-P{}", i % PER_STATION), station)
}

/// Registers the fleet: stations of a hundred piles each.
pub(super) async fn seed(
    gateway: SocketAddr,
    pki: &pki::PkiDir,
    piles: usize,
) -> anyhow::Result<()> {
    seed_as(gateway, pki, piles, asset::PileProtocol::Unspecified).await
}

/// Registers the fleet with its piles speaking `protocol`.
pub(super) async fn seed_as(
    gateway: SocketAddr,
    pki: &pki::PkiDir,
    piles: usize,
    protocol: asset::PileProtocol,
) -> anyhow::Result<()> {
    let mut client = super::register_operator(gateway, pki).await?;
    for s in 0..piles.div_ceil(PER_STATION) {
        let station = format!("F{s}");
        client
            .create_station(asset::CreateStationRequest {
                station: Some(demo::station(DEMO_OPERATOR_ID, &station, "330602")),
            })
            .await?;
    }
    // Piles in parallel, a few at a time: the registry is not what is measured.
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..piles {
        let mut client = client.clone();
        let (pile, station) = pile_of(i);
        pending.spawn(async move {
            loop {
                let mut record =
                    demo::pile(DEMO_OPERATOR_ID, &station, &pile, asset::PileType::Ac, 7.0);
                record.protocol = protocol as i32;
                let created = client
                    .create_pile(asset::CreatePileRequest { pile: Some(record) })
                    .await;
                match created {
                    // The operator's calls per second are bounded at the edge: slow down.
                    Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    other => break other,
                }
            }
        });
        if pending.len() >= 32
            && let Some(done) = pending.join_next().await
        {
            done??;
        }
    }
    while let Some(done) = pending.join_next().await {
        done??;
    }
    Ok(())
}

/// The own certificate of each pile `first..first + count`, issued in memory by the PKI's CA.
/// Their TLS sessions resume from the gateway's tickets when `resume`.
pub(super) fn identities(
    pki: &pki::PkiDir,
    first: usize,
    count: usize,
    resume: bool,
) -> anyhow::Result<Vec<Arc<rustls::ClientConfig>>> {
    let mut issuer = super::Issuer::load(pki, crate::config::DEFAULT_TRUST_DOMAIN)?;
    issuer.resume = resume;
    (first..first + count)
        .map(|i| {
            let (pile_id, station_id) = pile_of(i);
            issuer.client(&Principal::Pile {
                operator_id: DEMO_OPERATOR_ID.into(),
                station_id,
                pile_id,
            })
        })
        .collect()
}

/// One pile: connect, then report at its rates until `until`, every acknowledgement timed; a
/// refused attempt or a broken stream is tried again after a jittered backoff, as a real pile
/// does when a whole fleet connects at once or its gateway goes away.
pub(super) async fn pile(
    index: usize,
    gateway: SocketAddr,
    source: Option<IpAddr>,
    config: Arc<rustls::ClientConfig>,
    opts: FleetOptions,
    until: Instant,
    run: Arc<Run>,
) -> anyhow::Result<()> {
    let (pile_id, _) = pile_of(index);
    let mut pile = NativePile {
        connector_id: format!("{pile_id}-1"),
        pile_id,
        sequence: chrono::Utc::now().timestamp_micros() as u64,
    };
    let mut schedule = Schedule::new(&opts, index as u64 * 7919 + 1);
    let mut line = Lifeline::new(index, until, run);
    let ended = loop {
        let session = pile
            .session(gateway, source, &config, &mut schedule, until, &mut line)
            .await;
        if let Some(ended) = line.after(session).await {
            break ended;
        }
    };
    line.finish().await;
    ended
}

/// What a native pile keeps across its connections.
struct NativePile {
    pile_id: String,
    connector_id: String,
    sequence: u64,
}

impl NativePile {
    fn message(&mut self, body: tm::telemetry_message::Body) -> tm::TelemetryMessage {
        self.sequence += 1;
        tm::TelemetryMessage {
            sequence: self.sequence,
            pile_id: self.pile_id.clone(),
            connector_id: self.connector_id.clone(),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(body),
            ..Default::default()
        }
    }

    /// One connection: opens the stream with the connector's status (what a pile reports
    /// first after every connect), then reports on schedule until `until` or an error.
    async fn session(
        &mut self,
        gateway: SocketAddr,
        source: Option<IpAddr>,
        config: &Arc<rustls::ClientConfig>,
        schedule: &mut Schedule,
        until: Instant,
        line: &mut Lifeline,
    ) -> anyhow::Result<()> {
        schedule.connected(Instant::now());
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tx.send(tm::ConnectRequest {
            messages: vec![self.message(status_body(schedule.charging()))],
        })
        .await?;
        let channel = net::channel(source, gateway, config.clone())?;
        let mut inbound = TelemetryServiceClient::new(channel)
            .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .context("opening the pile's stream")?
            .into_inner();
        inbound
            .message()
            .await?
            .context("no first acknowledgement")?;
        line.opened();
        while let Some(due) = schedule.next(until).await {
            let body = match due {
                Due::Status(charging) => status_body(charging),
                Due::Meter(register_wh) => tm::telemetry_message::Body::Meter(tm::MeterSample {
                    energy_kwh: format!("{}.{:03}", register_wh / 1000, register_wh % 1000),
                    power_kw: 7.0,
                    ..Default::default()
                }),
                Due::Heartbeat => tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {}),
            };
            let sent = Instant::now();
            tx.send(tm::ConnectRequest {
                messages: vec![self.message(body)],
            })
            .await
            .context("the stream closed")?;
            match inbound.message().await? {
                Some(tm::ConnectResponse {
                    body: Some(tm::connect_response::Body::Acknowledgement(_)),
                }) => line.acknowledged(sent.elapsed()),
                Some(other) => anyhow::bail!("not an acknowledgement: {other:?}"),
                None => anyhow::bail!("the stream ended"),
            }
        }
        // The stream, its channel and the connection stay open while it holds.
        line.hold().await;
        Ok(())
    }
}

/// Runs the fleet benchmark and prints its figures.
pub async fn fleet(opts: FleetOptions, binary: &std::path::Path) -> anyhow::Result<()> {
    let mut regulator = Regulator::bind().await?;
    let serve = ServeOptions {
        cec_push: Some(regulator.push_config()),
        ..opts.serve()
    };
    let serving = Serving::start(binary, &serve).await?;
    regulator.start(serving.pki())?;
    let protocol = if opts.ocpp {
        asset::PileProtocol::Ocpp16
    } else {
        asset::PileProtocol::Unspecified
    };
    let seeding = Instant::now();
    seed_as(serving.gateway(), serving.pki(), opts.piles, protocol)
        .await
        .context("registering the fleet")?;
    let clients = if opts.clients == 0 {
        clients_for(opts.piles)
    } else {
        opts.clients
    };
    println!(
        "bench fleet: {} {} piles, each its own mTLS connection; heartbeat every {} s, a status change every {} s, \
         {:.0}% charging with a meter sample every {} s; {} s; {} on {}; {clients} client process(es); \
         registered in {:.1} s",
        opts.piles,
        if opts.ocpp { "OCPP 1.6J" } else { "native" },
        opts.heartbeat_s,
        opts.status_every_s,
        opts.charging_share * 100.0,
        opts.meter_every_s,
        opts.seconds,
        serve.topology(),
        serve.backend(),
        seeding.elapsed().as_secs_f64()
    );
    let processes = serving.processes();
    let rss =
        |pids: &[(&str, u32)]| -> u64 { pids.iter().filter_map(|(_, p)| rss_kib(*p).ok()).sum() };
    let cpu = |pids: &[(&str, u32)]| -> Duration {
        pids.iter().filter_map(|(_, p)| cpu_time(*p).ok()).sum()
    };
    let rss_before = rss(&processes);
    let run = Arc::new(Run::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(opts.seconds.max(1));
    let span = super::stretch::Span::of(started, until);
    let watcher = tokio::spawn(watch(
        serving.gateway(),
        serving.pki().clone(),
        until,
        run.clone(),
    ));
    let mut workers = Clients::start(
        binary,
        Mode::Fleet(opts.clone()),
        &serving.pki().dir,
        opts.piles,
        clients,
        serving.gateways(),
        serving.ocpp_edges(),
    )
    .await?;
    // When every pile is connected, and the servers' CPU from then to the end.
    let all = opts.piles as u64;
    let opened = loop {
        let now = workers.progress();
        if now.connected >= all || now.failed > 0 && now.connected + now.failed >= all {
            break started.elapsed();
        }
        if Instant::now() >= until {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = run.steady.set(chrono::Utc::now());
    workers.tell("steady").await?;
    let churn = (opts.register_every_s > 0.0).then(|| {
        tokio::spawn(super::churn::register_piles(
            serving.gateway(),
            serving.pki().clone(),
            Duration::from_secs_f64(opts.register_every_s),
            until,
        ))
    });
    let database = PgProbe::start(opts.database_url.as_deref(), serving.schema_prefix()).await;
    let cpu_from = (Instant::now(), cpu(&processes));
    // The load generators: the client processes and this one (its watcher and mock regulator).
    let generators: Vec<(&str, u32)> = workers
        .pids()
        .into_iter()
        .chain([std::process::id()])
        .map(|pid| ("load", pid))
        .collect();
    let generators_from = cpu(&generators);
    let machine_from = machine_busy().unwrap_or_default();
    let cpu_each: Vec<Duration> = processes
        .iter()
        .map(|(_, pid)| cpu_time(*pid).unwrap_or_default())
        .collect();
    let acked_from = workers.progress().acked;
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    let rss_held = rss(&processes);
    let window = cpu_from.0.elapsed();
    let per_role: Vec<String> = processes
        .iter()
        .zip(&cpu_each)
        .map(|((role, pid), from)| {
            let used = cpu_time(*pid).unwrap_or_default().saturating_sub(*from);
            format!(
                "{role} {:.0} MiB {:.0}%",
                rss_kib(*pid).unwrap_or_default() as f64 / 1024.0,
                100.0 * used.as_secs_f64() / window.as_secs_f64().max(1e-9)
            )
        })
        .collect();
    let generated = cpu(&generators).saturating_sub(generators_from);
    let cpu = cpu(&processes).saturating_sub(cpu_from.1);
    let machine = machine_busy()
        .unwrap_or_default()
        .saturating_sub(machine_from);
    let acked = workers.progress().acked.saturating_sub(acked_from);
    let database = match database {
        Some(probe) => probe.stop().await,
        None => None,
    };
    let super::worker::Finished { total, done, .. } = workers.finish().await?;
    let watched = watcher.await??;
    let registered = match churn {
        Some(task) => Some(task.await??),
        None => None,
    };
    let mut pushed = match run.steady.get() {
        Some(since) => push_latencies(
            &watched.changes,
            &regulator.status_pushes(),
            (*since).into(),
        ),
        None => Vec::new(),
    };
    pushed.sort_unstable();
    let latencies = super::stretch::sorted(&done.acks);
    let to_stream = super::stretch::sorted(&watched.arrivals);
    // Held at the end: connected once, less those whose connection broke and did not return.
    let held = total
        .connected
        .saturating_sub(total.broken.saturating_sub(total.back));
    use super::stretch::ms;
    println!(
        "  connections held      {held} of {} at the end ({} connected at least once, all by {:.1} s after the start; \
         {} connections broke and {} came back; {} piles ended with an error: never connected, or stuck at the end)",
        opts.piles,
        total.connected,
        opened.as_secs_f64(),
        total.broken,
        total.back,
        total.failed
    );
    println!(
        "  durable messages      {:.0} msg/s over the last {:.1} s",
        acked as f64 / window.as_secs_f64().max(1e-9),
        window.as_secs_f64()
    );
    println!(
        "  acknowledgement       p50 {:.2} ms   p99 {:.2} ms   p99.9 {:.2} ms   ({} acknowledged once all were connected)",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 0.999)),
        latencies.len()
    );
    super::stretch::print(&done.acks, span);
    if let Some(registered) = registered {
        println!(
            "  registry changes      {registered} piles registered during the steady state, one every {} s",
            opts.register_every_s
        );
    }
    println!(
        "  serving processes     RSS {:.1} MiB before, {:.1} MiB holding them ({:.1} KiB per connection); CPU {:.0}% of a core ({:.1} µs per message)",
        rss_before as f64 / 1024.0,
        rss_held as f64 / 1024.0,
        rss_held.saturating_sub(rss_before) as f64 / held.max(1) as f64,
        100.0 * cpu.as_secs_f64() / window.as_secs_f64().max(1e-9),
        1e6 * cpu.as_secs_f64() / acked.max(1) as f64
    );
    if processes.len() > 1 {
        println!(
            "                        RSS and CPU (of a core) by role: {}",
            per_role.join(", ")
        );
    }
    let share = |d: Duration| 100.0 * d.as_secs_f64() / window.as_secs_f64().max(1e-9);
    // Shares of a window shorter than the clock's tick (the steady state never came) are noise.
    if window >= Duration::from_secs(1) {
        println!(
            "  the whole machine     CPU {:.0}% of a core: serving {:.0}%, load generators {:.0}% (client processes, and this one with its mock regulator), the rest {:.0}% (PostgreSQL, Redis, the kernel)",
            share(machine),
            share(cpu),
            share(generated),
            share(machine.saturating_sub(cpu).saturating_sub(generated))
        );
    }
    println!(
        "  status change to the regulator's stream   p50 {:.2} ms   p99 {:.2} ms   ({} changes once all were connected)",
        ms(percentile(&to_stream, 0.50)),
        ms(percentile(&to_stream, 0.99)),
        to_stream.len()
    );
    super::stretch::print_stream(&watched.arrivals, span);
    println!(
        "  ... and to its T/CEC 102 push      p50 {:.2} ms   p99 {:.2} ms   ({} of them pushed by the end; the outbox is read every {} ms)",
        ms(percentile(&pushed, 0.50)),
        ms(percentile(&pushed, 0.99)),
        pushed.len(),
        serve.cec_push.as_ref().map_or(0, |p| p.interval_ms)
    );
    if let Some(database) = database {
        database.print(window, acked);
    }
    serving.stop().await;
    Ok(())
}
