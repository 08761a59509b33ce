//! `chargemesh bench ingest`: concurrent telemetry streams through the gateway over mutual TLS
//! into the durable log at full speed, then the same client loop against a bare tonic stream on
//! loopback that decodes and discards, so the ratio shows what durability, TLS and the extra hop
//! cost.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_stream::Stream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use chargemesh_kit::Principal;
use chargemesh_kit::tls;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use chargemesh_proto::telemetry::v1::telemetry_service_server::{
    TelemetryService, TelemetryServiceServer,
};

use super::{Issuer, percentile, scratch, status_body, temp_dir};
use crate::demo;
use crate::mesh::{EmbeddedMesh, EmbeddedOptions};
use crate::pki::{self, DEMO_OPERATOR_ID};

/// What `bench ingest` runs.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub connections: usize,
    pub piles_per_connection: usize,
    pub batch: usize,
    /// Batches in flight per connection before waiting for an acknowledgement.
    pub window: usize,
    pub seconds: u64,
    /// PostgreSQL instead of SQLite files.
    pub database_url: Option<String>,
    /// Redis Streams instead of the in-process bus.
    pub redis_url: Option<String>,
}

/// Figures of one run.
#[derive(Debug, Clone)]
pub struct Figures {
    pub messages: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Figures {
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A batch of status reports cycling through the connection's piles; one in ten changes state.
fn batch(
    station: usize,
    piles: usize,
    first_sequence: u64,
    size: usize,
) -> Vec<tm::TelemetryMessage> {
    let now = chargemesh_kit::time::to_timestamp(chrono::Utc::now());
    (0..size)
        .map(|i| {
            let sequence = first_sequence + i as u64;
            let pile = format!("B{station}-P{}", sequence as usize % piles);
            let charging = (sequence / piles as u64) % 10 == 9;
            tm::TelemetryMessage {
                sequence,
                connector_id: format!("{pile}-1"),
                pile_id: pile,
                observe_time: Some(now),
                body: Some(status_body(charging)),
                ..Default::default()
            }
        })
        .collect()
}

/// One connection at full speed for `duration`: returns messages acknowledged and batch latencies.
async fn drive(
    channel: Channel,
    station: usize,
    opts: &IngestOptions,
    duration: Duration,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    let mut client = TelemetryServiceClient::new(channel).max_decoding_message_size(16 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel(opts.window.max(1) * 2);
    let mut inbound = client
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .context("opening a telemetry stream")?
        .into_inner();
    let mut next_sequence = 1u64;
    let mut in_flight: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut latencies = Vec::new();
    let mut acknowledged = 0u64;
    let deadline = Instant::now() + duration;
    loop {
        while in_flight.len() < opts.window.max(1) && Instant::now() < deadline {
            let messages = batch(
                station,
                opts.piles_per_connection,
                next_sequence,
                opts.batch,
            );
            next_sequence += opts.batch as u64;
            in_flight.push_back((next_sequence - 1, Instant::now()));
            tx.send(tm::ConnectRequest { messages })
                .await
                .context("stream closed")?;
        }
        if in_flight.is_empty() {
            break;
        }
        let Some(answer) = inbound.message().await? else {
            anyhow::bail!("the server closed the stream");
        };
        match answer.body {
            Some(tm::connect_response::Body::Acknowledgement(ack)) => {
                while let Some((last, sent)) = in_flight.front().copied() {
                    if last > ack.last_sequence {
                        break;
                    }
                    in_flight.pop_front();
                    latencies.push(sent.elapsed());
                    acknowledged += opts.batch as u64;
                }
            }
            Some(tm::connect_response::Body::Rejection(r)) => {
                anyhow::bail!("rejected {}: {}", r.sequence, r.reason)
            }
            _ => {}
        }
    }
    Ok((acknowledged, latencies))
}

async fn run_clients(channels: Vec<Channel>, opts: &IngestOptions) -> anyhow::Result<Figures> {
    let started = Instant::now();
    let duration = Duration::from_secs(opts.seconds);
    let mut tasks = Vec::new();
    for (station, channel) in channels.into_iter().enumerate() {
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            drive(channel, station, &opts, duration).await
        }));
    }
    let mut messages = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (n, mut l) = task.await??;
        messages += n;
        latencies.append(&mut l);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(Figures {
        messages,
        elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    })
}

/// A client identity per connection, issued in memory by the PKI's CA: the pile itself when a
/// connection reports for one pile; the operator's platform (the 互联互通 shape, one principal
/// over several connections) when for several.
fn identities(
    pki: &pki::PkiDir,
    opts: &IngestOptions,
    trust_domain: &str,
) -> anyhow::Result<Vec<Arc<rustls::ClientConfig>>> {
    let issuer = Issuer::load(pki, trust_domain)?;
    (0..opts.connections)
        .map(|s| {
            let station = format!("B{s}");
            let principal = if opts.piles_per_connection == 1 {
                Principal::Pile {
                    operator_id: DEMO_OPERATOR_ID.into(),
                    pile_id: format!("{station}-P0"),
                    station_id: station,
                }
            } else {
                Principal::Operator {
                    operator_id: DEMO_OPERATOR_ID.into(),
                }
            };
            issuer.client(&principal)
        })
        .collect()
}

/// Registers the bench operator's stations `B<i>` with piles `B<i>-P<j>` through the gateway.
pub(super) async fn seed(
    gateway: SocketAddr,
    pki: &pki::PkiDir,
    opts: &IngestOptions,
) -> anyhow::Result<()> {
    let mut client = super::register_operator(gateway, pki).await?;
    for s in 0..opts.connections {
        let station = format!("B{s}");
        client
            .create_station(asset::CreateStationRequest {
                station: Some(demo::station(DEMO_OPERATOR_ID, &station, "330602")),
            })
            .await?;
        for p in 0..opts.piles_per_connection {
            let pile = format!("{station}-P{p}");
            client
                .create_pile(asset::CreatePileRequest {
                    pile: Some(demo::pile(
                        DEMO_OPERATOR_ID,
                        &station,
                        &pile,
                        asset::PileType::Dc,
                        60.0,
                    )),
                })
                .await?;
        }
    }
    Ok(())
}

/// The baseline: decode each batch and acknowledge it at once, storing nothing.
#[derive(Debug, Clone, Copy)]
struct Discard;

type AnswerStream =
    Pin<Box<dyn Stream<Item = Result<tm::ConnectResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TelemetryService for Discard {
    type ConnectStream = AnswerStream;

    /// The baseline holds no pile streams to command.
    async fn send_pile_command(
        &self,
        _request: Request<tm::SendPileCommandRequest>,
    ) -> Result<Response<tm::SendPileCommandResponse>, Status> {
        Err(Status::unimplemented(
            "the ingest baseline sends no commands",
        ))
    }

    /// The baseline holds no commands.
    async fn get_pile_command(
        &self,
        _request: Request<tm::GetPileCommandRequest>,
    ) -> Result<Response<tm::GetPileCommandResponse>, Status> {
        Err(Status::unimplemented(
            "the ingest baseline holds no commands",
        ))
    }

    /// The baseline keeps no log to read.
    async fn read_log(
        &self,
        _request: Request<tm::ReadLogRequest>,
    ) -> Result<Response<tm::ReadLogResponse>, Status> {
        Err(Status::unimplemented(
            "the ingest baseline keeps no telemetry",
        ))
    }

    /// The baseline keeps nothing, so it has no link states to list.
    async fn list_link_states(
        &self,
        _request: Request<tm::ListLinkStatesRequest>,
    ) -> Result<Response<tm::ListLinkStatesResponse>, Status> {
        Err(Status::unimplemented(
            "the ingest baseline keeps no telemetry",
        ))
    }

    async fn connect(
        &self,
        request: Request<Streaming<tm::ConnectRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            while let Ok(Some(batch)) = inbound.message().await {
                let (Some(first), Some(last)) = (batch.messages.first(), batch.messages.last())
                else {
                    continue;
                };
                let ack = tm::Acknowledgement {
                    first_sequence: first.sequence,
                    last_sequence: last.sequence,
                };
                let answer = tm::ConnectResponse {
                    body: Some(tm::connect_response::Body::Acknowledgement(ack)),
                };
                if tx.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

async fn baseline(opts: &IngestOptions) -> anyhow::Result<Figures> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TelemetryServiceServer::new(Discard))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut channels = Vec::new();
    for _ in 0..opts.connections {
        channels.push(
            Channel::from_shared(format!("http://{addr}"))?
                .connect()
                .await?,
        );
    }
    let figures = run_clients(channels, opts).await;
    server.abort();
    figures
}

/// The durable half of the ingest benchmark: the mesh in-process, its fleet seeded, the clients
/// run through the gateway.
async fn ingest_durable(
    mesh_opts: EmbeddedOptions,
    opts: &IngestOptions,
    backend: &str,
) -> anyhow::Result<Figures> {
    let mesh = EmbeddedMesh::start(mesh_opts).await?;
    seed(mesh.gateway_addr, &mesh.pki, opts).await?;
    let identities = identities(&mesh.pki, opts, &mesh.config.trust_domain)?;
    let mut channels = Vec::new();
    for client_config in identities {
        // One TCP + TLS connection per stream, each its own principal, as separate piles or
        // station controllers would have.
        let channel = tls::channel(
            &format!("https://127.0.0.1:{}", mesh.gateway_addr.port()),
            client_config,
        )?;
        channels.push(channel);
    }
    println!(
        "bench ingest: {} connections x {} piles, batches of {}, window {}, {} s, {backend}",
        opts.connections, opts.piles_per_connection, opts.batch, opts.window, opts.seconds
    );
    let durable = run_clients(channels, opts).await;
    mesh.stop().await;
    durable
}

/// Runs the ingest benchmark and prints its figures.
pub async fn ingest(opts: IngestOptions) -> anyhow::Result<()> {
    let dir = temp_dir("ingest");
    let mut mesh_opts = EmbeddedOptions::new(&dir);
    mesh_opts.config.gateway.listen = "127.0.0.1:0".into();
    // A platform's connections are one principal's: allow it as many as the run opens.
    let limits = &mut mesh_opts.config.gateway.limits;
    limits.connections_per_principal = limits.connections_per_principal.max(opts.connections + 8);
    limits.streams_per_principal = limits.streams_per_principal.max(opts.connections + 8);
    let schema = format!("bench{}_", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    if let Some(url) = &opts.database_url {
        mesh_opts.config.use_postgres(url, &schema);
    }
    if let Some(url) = &opts.redis_url {
        mesh_opts.config.events.url = url.clone();
        mesh_opts.config.events.prefix = format!("{schema}:");
    }
    let backend = match (&opts.database_url, &opts.redis_url) {
        (Some(_), Some(_)) => "PostgreSQL + Redis Streams",
        (Some(_), None) => "PostgreSQL + in-process bus",
        (None, Some(_)) => "SQLite + Redis Streams",
        (None, None) => "SQLite + in-process bus (embedded default)",
    };
    // The run's schemas and streams are removed when it ends, whatever its outcome.
    let scratch = scratch::Scratch {
        prefix: schema,
        database_url: opts.database_url.clone(),
        redis_url: opts.redis_url.clone(),
    };
    let durable = ingest_durable(mesh_opts, &opts, backend).await;
    let _ = std::fs::remove_dir_all(&dir);
    scratch.remove().await;
    let durable = durable?;
    let bare = baseline(&opts).await?;
    let row = |name: &str, f: &Figures| {
        println!(
            "  {name:<44} {:>10.0} msg/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} messages in {:.1} s)",
            f.rate(),
            f.p50.as_secs_f64() * 1e3,
            f.p99.as_secs_f64() * 1e3,
            f.messages,
            f.elapsed.as_secs_f64()
        );
    };
    row("durable, through the mTLS gateway", &durable);
    row("baseline: bare tonic stream, decode+discard", &bare);
    println!(
        "  durable / baseline: {:.1}%",
        100.0 * durable.rate() / bare.rate().max(1e-9)
    );
    Ok(())
}
