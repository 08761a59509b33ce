//! `chargemesh bench storm`: N piles connected, each on its own certificate, reporting a status
//! every few seconds; then the serving `chargemesh up` is killed (no goodbye) and started again
//! on the same data. It prints how long until every pile is connected and acknowledged again
//! (and a half, nine tenths of them), and then reads the telemetry log back to prove that every
//! acknowledged report is stored, and stored once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{Mutex, watch};

use chargemesh_kit::tls;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use super::Up;
use super::fleet::{identities, pile_of, seed};
use crate::link::{Backoff, reconnect_delay};
use crate::sim::Rng;

/// What each pile had acknowledged, by pile id: each report by its observation time (the log
/// keeps that as the pile sent it; its own numbering is the log's).
type Acked = Mutex<HashMap<String, Vec<(i64, i32)>>>;

/// One pile: reports a status every `every`, keeps what is not acknowledged, and reconnects
/// with a jittered backoff when its stream breaks; counts itself back after each break.
#[allow(clippy::too_many_arguments)]
async fn pile(
    index: usize,
    gateway: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
    connected: Arc<AtomicU64>,
    back: Arc<AtomicU64>,
    acked: Arc<Acked>,
) {
    let (pile_id, _) = pile_of(index);
    let connector_id = format!("{pile_id}-1");
    let mut rng = Rng::new(index as u64 * 104_729 + 7);
    let mut sequence = 1u64;
    let mut pending: Option<tm::TelemetryMessage> = None;
    let mut mine = Vec::new();
    let mut broken = false;
    let mut failures = 0u32;
    'connections: while !*stop.borrow() {
        let channel = match tls::channel(
            &format!("https://127.0.0.1:{}", gateway.port()),
            config.clone(),
        ) {
            Ok(channel) => channel,
            Err(_) => break,
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
                    tm::TelemetryMessage {
                        sequence,
                        pile_id: pile_id.clone(),
                        connector_id: connector_id.clone(),
                        observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
                        body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                            state: if sequence.is_multiple_of(2) {
                                tm::ConnectorState::Charging
                            } else {
                                tm::ConnectorState::Idle
                            } as i32,
                            ..Default::default()
                        })),
                        ..Default::default()
                    }
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
                            back.fetch_add(1, Ordering::Relaxed);
                        } else {
                            connected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                _ => {
                    broken = true;
                    failures = failures.saturating_add(1);
                    let unit = (rng.draw() % 1000) as f64 / 1000.0;
                    tokio::time::sleep(reconnect_delay(Backoff::default(), failures, unit)).await;
                    continue 'connections;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => break 'connections,
            }
        }
    }
    acked.lock().await.insert(pile_id, mine);
}

/// Runs the storm benchmark and prints its figures.
pub async fn storm(piles: usize, every_s: f64, binary: &std::path::Path) -> anyhow::Result<()> {
    let mut up = Up::start(binary, &[]).await?;
    seed(&up, piles).await.context("registering the fleet")?;
    let configs = identities(&up.pki, piles)?;
    println!(
        "bench storm: {piles} piles, each its own mTLS connection and certificate, a status every {every_s} s; \
         chargemesh up (SQLite + in-process bus) killed and started again"
    );
    let (stop_tx, stop) = watch::channel(false);
    let connected = Arc::new(AtomicU64::new(0));
    let back = Arc::new(AtomicU64::new(0));
    let acked: Arc<Acked> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let every = Duration::from_secs_f64(every_s.max(0.1));
    let started = Instant::now();
    for (i, config) in configs.into_iter().enumerate() {
        tasks.spawn(pile(
            i,
            up.gateway,
            config,
            every,
            stop.clone(),
            connected.clone(),
            back.clone(),
            acked.clone(),
        ));
    }
    let all = piles as u64;
    let wait_for = |counter: Arc<AtomicU64>, target: u64, limit: Duration| async move {
        let deadline = Instant::now() + limit;
        while counter.load(Ordering::Relaxed) < target && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        counter.load(Ordering::Relaxed)
    };
    let first = wait_for(connected.clone(), all, Duration::from_secs(300)).await;
    println!(
        "  first connection      {first} of {piles} connected and acknowledged in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(every * 2).await;
    let killed = Instant::now();
    up.restart().await.context("restarting")?;
    let listening = killed.elapsed();
    let mut marks = Vec::new();
    for share in [0.5, 0.9, 1.0] {
        let target = ((all as f64) * share).ceil() as u64;
        let reached = wait_for(back.clone(), target, Duration::from_secs(300)).await;
        marks.push((share, reached, killed.elapsed()));
    }
    println!(
        "  restart               killed and listening again after {:.1} s",
        listening.as_secs_f64()
    );
    for (share, reached, at) in marks {
        println!(
            "  back                  {:>3.0}%: {reached} piles connected and acknowledged {:.1} s after the kill",
            share * 100.0,
            at.as_secs_f64()
        );
    }
    tokio::time::sleep(every * 2).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    // Every acknowledged report is in the log, once.
    let config = Arc::new(tls::client_config(&up.pki.files("metering"))?);
    let channel = tls::channel(&format!("https://127.0.0.1:{}", up.gateway.port()), config)?;
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
        if page.entries.is_empty() || page.last_sequence <= after {
            break;
        }
        after = page.last_sequence;
    }
    let acked = acked.lock().await;
    let acknowledged: usize = acked.values().map(Vec::len).sum();
    let missing = acked
        .iter()
        .flat_map(|(p, seqs)| seqs.iter().map(move |s| (p.clone(), *s)))
        .filter(|k| !stored.contains_key(k))
        .count();
    let twice = stored.values().filter(|n| **n > 1).count();
    println!(
        "  durability            {acknowledged} reports acknowledged: {missing} missing from the log, {twice} stored twice"
    );
    up.stop().await;
    Ok(())
}
