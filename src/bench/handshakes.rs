//! `chargemesh bench handshakes`: what a pile's mutual-TLS handshake costs the gateway, full and
//! resumed from a session ticket, through the gateway's own accept path (`incoming_gated` over
//! the edge's resumable configuration: handshakes in turn, a resumed certificate checked again).
//! The server runs on a thread of its own, so its CPU time is read apart from the clients'.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_stream::StreamExt as _;

use chargemesh_kit::Principal;
use chargemesh_kit::tls::{self, ClientAuth, ReloadingServerConfig, TlsFiles};

use crate::config::DEFAULT_TRUST_DOMAIN;
use crate::pki::{self, DEMO_OPERATOR_ID};

/// Clients handshaking at once.
const CONCURRENCY: usize = 8;

/// Runs the benchmark: `count` handshakes each way, and prints what each cost.
pub async fn handshakes(count: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "chargemesh-bench-handshakes-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let result = run(&dir, count.max(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(dir: &std::path::Path, count: usize) -> anyhow::Result<()> {
    let pki = pki::init(dir, DEFAULT_TRUST_DOMAIN)?;
    let files = TlsFiles {
        ticket_key_file: Some(pki.ticket_key()),
        ..pki.files("gateway")
    };
    let server = Server::start(ReloadingServerConfig::resumable(
        files,
        ClientAuth::Required,
    )?)?;
    let mut issuer = super::Issuer::load(&pki, DEFAULT_TRUST_DOMAIN)?;
    println!(
        "bench handshakes: {count} mutual-TLS 1.3 handshakes each way through the gateway's accept path \
         (ECDSA P-256 certificates, X25519), {CONCURRENCY} clients at once, the server on one thread"
    );
    for resume in [false, true] {
        issuer.resume = resume;
        // One identity per client, as piles have; each resumes from its own tickets.
        let clients = (0..CONCURRENCY)
            .map(|i| {
                issuer.client(&Principal::Pile {
                    operator_id: DEMO_OPERATOR_ID.into(),
                    station_id: "H".into(),
                    pile_id: format!("H-P{i}"),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if resume {
            // The first connection of each is full and brings its tickets.
            for config in &clients {
                handshake(server.addr, config.clone()).await?;
            }
        }
        let (server_before, process_before) = (server.cpu().await?, process_cpu()?);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, config) in clients.into_iter().enumerate() {
            let share = count / CONCURRENCY + usize::from(i < count % CONCURRENCY);
            let addr = server.addr;
            tasks.spawn(async move {
                let mut resumed = 0;
                for _ in 0..share {
                    resumed += usize::from(handshake(addr, config.clone()).await?);
                }
                anyhow::Ok(resumed)
            });
        }
        let mut resumed = 0;
        while let Some(done) = tasks.join_next().await {
            resumed += done??;
        }
        let wall = started.elapsed();
        let server_cpu = server.cpu().await? - server_before;
        let client_cpu = (process_cpu()? - process_before).saturating_sub(server_cpu);
        let each = |cpu: Duration| cpu.as_secs_f64() * 1e6 / count as f64;
        println!(
            "  {:<8} {count} in {:.2} s ({:.0}/s), {resumed} resumed; CPU per handshake: server {:.0} µs, client {:.0} µs",
            if resume { "resumed" } else { "full" },
            wall.as_secs_f64(),
            count as f64 / wall.as_secs_f64(),
            each(server_cpu),
            each(client_cpu),
        );
    }
    Ok(())
}

/// One connection: the handshake, then the server's one byte (so the tickets it sent after the
/// handshake are read). Whether the session was resumed.
async fn handshake(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> anyhow::Result<bool> {
    let mut stream = super::net::tls(None, addr, config)
        .await
        .context("handshake")?;
    let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    let mut byte = Vec::new();
    stream.read_to_end(&mut byte).await?;
    anyhow::ensure!(byte == b"k", "the server closed the connection unserved");
    Ok(resumed)
}

/// The gateway's accept path on a thread of its own.
struct Server {
    addr: SocketAddr,
    cpu: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Duration>>,
}

impl Server {
    fn start(config: ReloadingServerConfig) -> anyhow::Result<Self> {
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (cpu, mut asked) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<_>>(1);
        std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(anyhow::Error::from(error)));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.into()));
                        return;
                    }
                };
                let _ = ready_tx.send(listener.local_addr().map_err(Into::into));
                let mut incoming = Box::pin(tls::incoming_gated(
                    listener,
                    config,
                    DEFAULT_TRUST_DOMAIN.to_owned(),
                    None,
                    tls::HANDSHAKE_TIMEOUT,
                ));
                loop {
                    tokio::select! {
                        Some(Ok(mut conn)) = incoming.next() => {
                            tokio::spawn(async move {
                                let _ = conn.write_all(b"k").await;
                                let _ = conn.shutdown().await;
                            });
                        }
                        Some(reply) = asked.recv() => {
                            let _ = reply.send(thread_cpu().unwrap_or_default());
                        }
                        else => return,
                    }
                }
            });
        });
        let addr = ready.recv().context("the server thread")??;
        Ok(Self { addr, cpu })
    }

    /// CPU time the server's thread has used so far.
    async fn cpu(&self) -> anyhow::Result<Duration> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.cpu.send(reply).await.context("the server thread")?;
        Ok(answer.await?)
    }
}

/// CPU time the calling thread has used.
fn thread_cpu() -> anyhow::Result<Duration> {
    super::stat_cpu("/proc/thread-self/stat")
}

/// CPU time this process has used.
fn process_cpu() -> anyhow::Result<Duration> {
    super::stat_cpu("/proc/self/stat")
}
