//! `chargemesh bench storm`: N piles connected, each on its own certificate, reporting a status
//! every few seconds from one or more client processes; then the serving `chargemesh up` (or,
//! with every role its own process, every process, every gateway replica, or the telemetry
//! component alone) is killed (no goodbye) and started again on the same data. It prints how
//! long until every pile is connected and acknowledged again (and a half, nine tenths of them),
//! and then reads the telemetry log back to prove that every acknowledged report is stored, and
//! stored once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

use chargemesh_kit::tls;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use super::cluster::{ServeOptions, Serving, Victim};
use super::fleet::{Run, pile_of, seed};
use super::net;
use super::worker::{Clients, Mode, Progress, clients_for};
use crate::link::{Backoff, reconnect_delay};
use crate::sim::Rng;

/// One pile of the storm: reports a status every `every`, keeps what is not acknowledged, and
/// reconnects with a jittered backoff when its stream breaks; counts itself back after each
/// break.
pub(super) struct Pile {
    pub index: usize,
    pub gateway: SocketAddr,
    pub source: Option<IpAddr>,
    pub config: Arc<rustls::ClientConfig>,
    pub every: Duration,
}

impl Pile {
    /// Runs until `stop`; returns the pile's id and the observation time of every report it
    /// had acknowledged.
    pub(super) async fn run(
        self,
        mut stop: watch::Receiver<bool>,
        run: &Run,
    ) -> (String, Vec<(i64, i32)>) {
        let (pile_id, _) = pile_of(self.index);
        let connector_id = format!("{pile_id}-1");
        let mut rng = Rng::new(self.index as u64 * 104_729 + 7);
        let mut sequence = 1u64;
        let mut pending: Option<tm::TelemetryMessage> = None;
        let mut mine = Vec::new();
        let mut broken = false;
        let mut failures = 0u32;
        'connections: while !*stop.borrow() {
            let Ok(channel) = net::channel(self.source, self.gateway, self.config.clone()) else {
                break;
            };
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            let opened = TelemetryServiceClient::new(channel)
                .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            let mut inbound = match opened {
                Ok(response) => response.into_inner(),
                Err(_) => {
                    failures = failures.saturating_add(1);
                    let unit = (rng.draw() % 1000) as f64 / 1000.0;
                    tokio::time::sleep(reconnect_delay(Backoff::default(), failures, unit)).await;
                    continue;
                }
            };
            let mut first = true;
            loop {
                let message = match pending.take() {
                    Some(unacknowledged) => unacknowledged,
                    None => {
                        sequence += 1;
                        status(&pile_id, &connector_id, sequence)
                    }
                };
                let sent = message.sequence;
                let observed = message
                    .observe_time
                    .as_ref()
                    .map(|t| (t.seconds, t.nanos))
                    .unwrap_or_default();
                pending = Some(message.clone());
                if tx
                    .send(tm::ConnectRequest {
                        messages: vec![message],
                    })
                    .await
                    .is_err()
                {
                    if !first {
                        run.broken.fetch_add(1, Ordering::Relaxed);
                    }
                    broken = true;
                    continue 'connections;
                }
                match inbound.message().await {
                    Ok(Some(tm::ConnectResponse {
                        body: Some(tm::connect_response::Body::Acknowledgement(ack)),
                    })) if ack.last_sequence >= sent => {
                        pending = None;
                        mine.push(observed);
                        failures = 0;
                        if first {
                            first = false;
                            if broken {
                                run.back.fetch_add(1, Ordering::Relaxed);
                            } else {
                                run.connected.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    _ => {
                        if !first {
                            run.broken.fetch_add(1, Ordering::Relaxed);
                        }
                        broken = true;
                        failures = failures.saturating_add(1);
                        let unit = (rng.draw() % 1000) as f64 / 1000.0;
                        tokio::time::sleep(reconnect_delay(Backoff::default(), failures, unit))
                            .await;
                        continue 'connections;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(self.every) => {}
                    _ = stop.changed() => break 'connections,
                }
            }
        }
        (pile_id, mine)
    }
}

/// A status report of the storm's pile, alternating charging and idle, observed to the
/// millisecond as piles report (PostgreSQL keeps microseconds: a time in nanoseconds read back
/// from it would not match the one acknowledged).
fn status(pile_id: &str, connector_id: &str, sequence: u64) -> tm::TelemetryMessage {
    use chrono::SubsecRound as _;
    tm::TelemetryMessage {
        sequence,
        pile_id: pile_id.to_owned(),
        connector_id: connector_id.to_owned(),
        observe_time: Some(chargemesh_kit::time::to_timestamp(
            chrono::Utc::now().trunc_subsecs(3),
        )),
        body: Some(super::status_body(sequence.is_multiple_of(2))),
        ..Default::default()
    }
}

/// Waits until `pick` of the workers' progress reaches `target` or `limit` passes.
async fn wait_for(
    workers: &Clients,
    pick: fn(Progress) -> u64,
    target: u64,
    limit: Duration,
) -> u64 {
    let deadline = Instant::now() + limit;
    while pick(workers.progress()) < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pick(workers.progress())
}

/// What `bench storm` runs.
#[derive(Debug, Clone)]
pub struct StormOptions {
    pub piles: usize,
    /// Seconds between a pile's status reports.
    pub every_s: f64,
    pub serve: ServeOptions,
    /// What is killed.
    pub kill: Victim,
    /// Client processes (0: as many as the fleet needs).
    pub clients: usize,
    /// Piles resume their TLS sessions from the gateway's tickets.
    pub resume: bool,
}

/// Runs the storm benchmark and prints its figures.
pub async fn storm(opts: StormOptions, binary: &std::path::Path) -> anyhow::Result<()> {
    let piles = opts.piles;
    let mut serving = Serving::start(binary, &opts.serve).await?;
    seed(serving.gateway(), serving.pki(), piles)
        .await
        .context("registering the fleet")?;
    let clients = if opts.clients == 0 {
        clients_for(piles)
    } else {
        opts.clients
    };
    let victim = match opts.kill {
        Victim::All if opts.serve.gateways.is_some() => "every process of the mesh",
        Victim::All => "chargemesh up",
        Victim::Gateway => "every gateway replica",
        Victim::Telemetry => "the telemetry component",
    };
    println!(
        "bench storm: {piles} piles, each its own mTLS connection and certificate, a status every {} s, \
         from {clients} client process(es); {} on {}; {victim} killed and started again",
        opts.every_s,
        opts.serve.topology(),
        opts.serve.backend()
    );
    let every = Duration::from_secs_f64(opts.every_s.max(0.1));
    let started = Instant::now();
    let mut workers = Clients::start(
        binary,
        Mode::Storm {
            every_s: opts.every_s,
            resume: opts.resume,
        },
        &serving.pki().dir,
        piles,
        clients,
        serving.gateways(),
        Vec::new(),
    )
    .await?;
    let all = piles as u64;
    let first = wait_for(&workers, |p| p.connected, all, Duration::from_secs(600)).await;
    println!(
        "  first connection      {first} of {piles} connected and acknowledged in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(every * 2).await;
    let before = workers.progress().handshakes;
    let killed = Instant::now();
    serving.restart(opts.kill).await.context("restarting")?;
    let listening = killed.elapsed();
    let mut marks = Vec::new();
    for share in [0.5, 0.9, 1.0] {
        let target = ((all as f64) * share).ceil() as u64;
        let reached = wait_for(&workers, |p| p.back, target, Duration::from_secs(600)).await;
        marks.push((share, reached, killed.elapsed()));
    }
    let again = workers.progress().handshakes - before;
    println!(
        "  restart               killed and listening again after {:.1} s",
        listening.as_secs_f64()
    );
    println!(
        "  handshakes            {} full and {} resumed from a session ticket to get back, {} attempts failed ({})",
        again.full,
        again.resumed,
        again.failed,
        if opts.resume {
            "piles keep tickets"
        } else {
            "--no-resume: piles keep no tickets"
        }
    );
    for (share, reached, at) in marks {
        println!(
            "  back                  {:>3.0}%: {reached} piles connected and acknowledged {:.1} s after the kill",
            share * 100.0,
            at.as_secs_f64()
        );
    }
    tokio::time::sleep(every * 2).await;
    workers.tell("stop").await?;
    let acked = workers.finish().await?.acked;
    // Every acknowledged report is in the log, once.
    let config = Arc::new(tls::client_config(&serving.pki().files("metering"))?);
    let channel = tls::channel(&format!("https://{}", serving.gateway()), config)?;
    let mut telemetry = TelemetryServiceClient::new(channel);
    let mut stored: HashMap<(String, (i64, i32)), u32> = HashMap::new();
    let mut after = 0;
    loop {
        let page = telemetry
            .read_log(tm::ReadLogRequest {
                after_sequence: after,
                kinds: vec!["status".into()],
                limit: 1000,
            })
            .await?
            .into_inner();
        for entry in &page.entries {
            if let Some(m) = &entry.message
                && let Some(t) = &m.observe_time
            {
                *stored
                    .entry((m.pile_id.clone(), (t.seconds, t.nanos)))
                    .or_default() += 1;
            }
        }
        // A page may be empty yet move on: a read scans a bounded span for the kinds asked.
        if page.last_sequence <= after {
            break;
        }
        after = page.last_sequence;
    }
    let acknowledged: usize = acked.values().map(Vec::len).sum();
    let missing = acked
        .iter()
        .flat_map(|(p, seqs)| seqs.iter().map(move |s| (p.clone(), *s)))
        .filter(|k| !stored.contains_key(k))
        .count();
    let twice = stored.values().filter(|n| **n > 1).count();
    println!(
        "  durability            {acknowledged} reports acknowledged by {} piles: {missing} missing from the log, {twice} stored twice",
        acked.len()
    );
    serving.stop().await;
    Ok(())
}
