//! Accepting TLS connections: handshakes in turn under a bound, a resumed session's
//! certificate checked again, the peer's principal derived once and carried into tonic.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::server::danger::ClientCertVerifier;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use super::{Built, ReloadingServerConfig};
use crate::identity::Principal;

/// What a server knows of the peer of a connection; a request extension in every handler.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    pub remote_addr: Option<SocketAddr>,
    /// The principal of a verified client certificate; `None` when the client presented none.
    pub principal: Option<Principal>,
    /// Why the connection is over its principal's limits ([`ConnectionGate`]): every call on it
    /// is refused with this.
    pub refused: Option<String>,
    /// What the connection holds under its principal's limits, released when it closes.
    pub held: Option<Held>,
}

/// Something a connection holds for its life (a place under a limit), released when the
/// connection and every request of it are gone.
#[derive(Clone)]
pub struct Held(pub Arc<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Held")
    }
}

/// Decides, as a connection is made, whether it is within its principal's limits.
pub trait ConnectionGate: Send + Sync + 'static {
    /// A place for the connection, or why there is none.
    fn admit(&self, info: &PeerInfo) -> Result<Held, String>;
}

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server-side TLS connection, carrying its [`PeerInfo`] into tonic.
#[derive(Debug)]
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// TLS handshakes a listener runs at once; the rest wait their turn in arrival order. A fleet
/// reconnecting at once brings thousands of handshakes, each a millisecond or so of CPU:
/// run all at once, they crowd the acknowledgements of connected clients out of the CPU and
/// every one of them finishes late (many past their client's timeout); in turn, the first
/// finish first and the rest wait without costing anything.
pub const HANDSHAKES_AT_ONCE: usize = 64;

/// The longest a connection waits for its handshake's turn before it is closed unhandshaken.
pub const HANDSHAKE_QUEUE_WAIT: Duration = Duration::from_secs(2);

/// Accepts TCP connections and completes TLS handshakes concurrently, yielding only connections
/// whose handshake succeeded. A client certificate without a valid SPIFFE identity of the trust
/// domain is dropped at once.
pub fn incoming(
    listener: TcpListener,
    config: ReloadingServerConfig,
    trust_domain: String,
) -> impl Stream<Item = io::Result<TlsConn>> {
    incoming_gated(listener, config, trust_domain, None, HANDSHAKE_TIMEOUT)
}

/// The next connection on `listener`. A failed accept (out of file descriptors, say) is logged
/// and retried after a pause doubling from 10 ms to a second, so a failing listener does not
/// spin; `edge` names the listener in the log.
pub async fn accept(listener: &TcpListener, edge: &str) -> (TcpStream, SocketAddr) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(error) => {
                tracing::warn!(%error, edge, delay_ms = backoff.as_millis(), "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// As [`incoming`], each connection admitted by `gate` (when given) and its handshake bounded
/// by `handshake_timeout`. A failed accept (out of descriptors, say) backs off, doubling from
/// 10 ms to a second, rather than spin.
pub fn incoming_gated(
    listener: TcpListener,
    config: ReloadingServerConfig,
    trust_domain: String,
    gate: Option<Arc<dyn ConnectionGate>>,
    handshake_timeout: Duration,
) -> impl Stream<Item = io::Result<TlsConn>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<TlsConn>>(64);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_AT_ONCE));
    tokio::spawn(async move {
        loop {
            let (tcp, remote_addr) = tokio::select! {
                accepted = accept(&listener, "gRPC") => accepted,
                () = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let Built {
                config: server,
                resumed_verifier,
            } = config.built();
            let acceptor = tokio_rustls::TlsAcceptor::from(server);
            let tx = tx.clone();
            let trust_domain = trust_domain.clone();
            let gate = gate.clone();
            let handshakes = handshakes.clone();
            tokio::spawn(async move {
                // In turn (the semaphore is first come, first served), but not after a long
                // wait: a client that waited that long is about to give up, and a handshake
                // finished after it did costs the CPU the fresh ones need (under a reconnect
                // storm every handshake would then finish too late). Closed unhandshaken, the
                // client tries again after its backoff, which spreads the storm out.
                let waited = Instant::now();
                let queue_wait = HANDSHAKE_QUEUE_WAIT.min(handshake_timeout);
                let Ok(Ok(turn)) = tokio::time::timeout(queue_wait, handshakes.acquire()).await
                else {
                    tracing::debug!(%remote_addr, "tls handshake shed: no turn in time");
                    return;
                };
                let left = handshake_timeout.saturating_sub(waited.elapsed());
                let stream = match tokio::time::timeout(left, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%remote_addr, %error, "tls handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote_addr, "tls handshake timed out");
                        return;
                    }
                };
                drop(turn);
                if let Some(verifier) = &resumed_verifier
                    && let Err(error) = check_resumed(stream.get_ref().1, verifier.as_ref())
                {
                    tracing::info!(%remote_addr, %error, "resumed session refused");
                    return;
                }
                let leaf = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first());
                let principal = match leaf {
                    None => None,
                    Some(der) => match Principal::from_certificate(der, &trust_domain) {
                        Ok(p) => Some(p),
                        Err(error) => {
                            tracing::info!(%remote_addr, %error, "client certificate has no usable identity");
                            return;
                        }
                    },
                };
                let mut info = PeerInfo {
                    remote_addr: Some(remote_addr),
                    principal,
                    ..PeerInfo::default()
                };
                if let Some(gate) = &gate {
                    match gate.admit(&info) {
                        Ok(held) => info.held = Some(held),
                        Err(why) => {
                            tracing::info!(%remote_addr, why, "connection over its principal's limits");
                            info.refused = Some(why);
                        }
                    }
                }
                let _ = tx
                    .send(Ok(TlsConn {
                        inner: stream,
                        info,
                    }))
                    .await;
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Checks the client certificate of a session resumed from a ticket again with `verifier`, as
/// the full handshake did: a certificate revoked, expired or of a CA no longer trusted since
/// the ticket was issued is refused. A full handshake passes as it is.
pub fn check_resumed(
    connection: &rustls::ServerConnection,
    verifier: &dyn ClientCertVerifier,
) -> Result<(), rustls::Error> {
    if connection.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
        return Ok(());
    }
    match connection.peer_certificates().and_then(|c| c.split_first()) {
        Some((end_entity, intermediates)) => verifier
            .verify_client_cert(end_entity, intermediates, rustls_pki_types::UnixTime::now())
            .map(|_| ()),
        None if verifier.client_auth_mandatory() => Err(rustls::Error::NoCertificatesPresented),
        None => Ok(()),
    }
}
