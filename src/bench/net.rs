//! How the benchmarks' piles reach the edge: from a loopback source address of their own, so a
//! client process's connections do not share one address's ephemeral ports with the others'.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::worker::Handshakes;

/// Handshakes this process's piles completed: full, and resumed from a session ticket.
static FULL: AtomicU64 = AtomicU64::new(0);
static RESUMED: AtomicU64 = AtomicU64::new(0);
/// Attempts whose TCP connection was made but whose handshake failed (shed, refused, closed).
static FAILED: AtomicU64 = AtomicU64::new(0);

/// What this process's piles' handshakes have been so far.
pub(super) fn handshakes() -> Handshakes {
    Handshakes {
        full: FULL.load(Ordering::Relaxed),
        resumed: RESUMED.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
    }
}

use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};
use tonic::transport::{Channel, Endpoint};

/// A TCP connection to `to`, from `from` when given (a port the system picks).
pub(super) async fn connect(from: Option<IpAddr>, to: SocketAddr) -> io::Result<TcpStream> {
    let tcp = match from {
        Some(ip) => {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(to).await?
        }
        None => TcpStream::connect(to).await?,
    };
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A TLS connection to `to` (its certificate names 127.0.0.1), from `from` when given.
pub(super) async fn tls(
    from: Option<IpAddr>,
    to: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = connect(from, to).await?;
    let name = ServerName::try_from(to.ip().to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .inspect_err(|_| {
            FAILED.fetch_add(1, Ordering::Relaxed);
        })?;
    let counter = match stream.get_ref().1.handshake_kind() {
        Some(rustls::HandshakeKind::Resumed) => &RESUMED,
        _ => &FULL,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    Ok(stream)
}

/// A lazily connected gRPC channel over mutual TLS to the gateway at `to`, from `from`: the
/// settings of a pile's own client (the default HTTP/2 windows; one stream).
pub(super) fn channel(
    from: Option<IpAddr>,
    to: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(format!("https://{to}"))?
        .connect_timeout(Duration::from_secs(10))
        .tcp_nodelay(true);
    let connector = tower::service_fn(move |_: http::Uri| {
        let config = config.clone();
        async move {
            let stream = tls(from, to, config).await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
