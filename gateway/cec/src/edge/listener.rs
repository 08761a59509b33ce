//! The T/CEC 102 edge's listener: HTTPS over HTTP/1.1, with everything a client can make it
//! hold bounded (REQ NETSEC-1). Connections beyond the cap are closed as they arrive; a client
//! has a fixed time for its TLS handshake, then for each request's headers (also while a kept-
//! alive connection idles), then for its body; a body is read only after the token is checked
//! (every interface but `query_token`) and only up to the configured size, so neither a slow
//! nor a large unauthenticated request costs more than a few kilobytes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{CecConfig, Edge, EdgeError, Upstreams};
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::events::SharedBus;
use chargemesh_kit::tls::{self, ClientAuth, TlsFiles};

/// The largest request head (line and headers) a client may send.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// What one client may take.
#[derive(Debug, Clone, Copy)]
struct Limits {
    body_bytes: usize,
    handshake: Duration,
    header: Duration,
    body: Duration,
}

impl Limits {
    fn of(config: &CecConfig) -> Self {
        let ms = |v: u64| Duration::from_millis(v.max(1));
        Self {
            body_bytes: config.max_body_bytes.max(1),
            handshake: ms(config.handshake_timeout_ms),
            header: ms(config.header_timeout_ms),
            body: ms(config.body_timeout_ms),
        }
    }
}

/// Serves the T/CEC 102 edge on `listener` until `shutdown` resolves. `seen` is where the Seqs
/// used within the window are kept for every replica (the mesh's bus).
pub async fn serve(
    config: &CecConfig,
    tls_files: &TlsFiles,
    upstreams: Upstreams,
    listener: TcpListener,
    clock: SharedClock,
    seen: SharedBus,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EdgeError> {
    let tokens = match config.token_key_file.trim() {
        "" => {
            tracing::warn!(
                "gateway.cec.token_key_file is not set: access tokens are good on this replica only"
            );
            crate::token::TokenKey::random()
        }
        path => crate::token::TokenKey::from_file(std::path::Path::new(path))
            .map_err(|e| EdgeError::Config(format!("gateway.cec.token_key_file: {e}")))?,
    };
    let edge = Arc::new(Edge::new(config, upstreams, clock, tokens, seen)?);
    // The edge's certificate follows its files, as the gRPC edge's does.
    let server = tls::ReloadingServerConfig::load_with_alpn(
        tls_files.clone(),
        ClientAuth::Optional,
        vec![b"http/1.1".to_vec()],
    )?;
    let watcher = server.watch(Duration::from_secs(30));
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let result = accept_loop(
        edge,
        server,
        listener,
        Limits::of(config),
        permits,
        shutdown,
    )
    .await;
    watcher.abort();
    result
}

/// Serves connections until `shutdown`; each takes the current certificate and a permit.
async fn accept_loop(
    edge: Arc<Edge>,
    server: tls::ReloadingServerConfig,
    listener: TcpListener,
    limits: Limits,
    permits: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EdgeError> {
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            (tcp, _) = tls::accept(&listener, "T/CEC 102") => tcp,
            () = &mut shutdown => return Ok(()),
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!("T/CEC 102 connection cap reached; closing a new connection");
            drop(tcp);
            continue;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(server.current());
        let edge = edge.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "T/CEC 102 handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("T/CEC 102 handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let edge = edge.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&edge, req, limits).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header)
                .max_buf_size(MAX_HEAD_BYTES.max(8192))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "T/CEC 102 connection ended");
            }
        });
    }
}

/// One request's answer. The token is checked before the body is read; the body is read up to
/// the limit within the time allowed (413 past the size, whether declared or streamed; 408 past
/// the time), and only then parsed.
async fn respond(
    edge: &Edge,
    req: http::Request<hyper::body::Incoming>,
    limits: Limits,
) -> http::Response<Full<Bytes>> {
    if req.method() != http::Method::POST {
        return reply(405, Vec::new(), false);
    }
    let path = req.uri().path().to_owned();
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned());
    if let Err((status, body)) = edge.precheck(&path, bearer.as_deref()) {
        // Nothing of the body is read: the connection closes rather than drain it.
        return reply(status, body, true);
    }
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body_bytes as u64) {
        return too_large(limits);
    }
    let body = Limited::new(req.into_body(), limits.body_bytes);
    let bytes = match tokio::time::timeout(limits.body, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return too_large(limits);
        }
        Ok(Err(_)) => return reply(400, Vec::new(), true),
        Err(_) => return reply(408, Vec::new(), true),
    };
    let (status, body) = edge.handle(&path, bearer.as_deref(), &bytes).await;
    reply(status, body, false)
}

fn too_large(limits: Limits) -> http::Response<Full<Bytes>> {
    tracing::info!(
        limit = limits.body_bytes,
        "T/CEC 102 request body over the limit"
    );
    reply(413, Vec::new(), true)
}

/// A response; `close` ends the connection after it (a body left unread is not drained).
fn reply(status: u16, body: Vec<u8>, close: bool) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json;charset=utf-8");
    if close {
        response = response.header(http::header::CONNECTION, "close");
    }
    response
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new())))
}
