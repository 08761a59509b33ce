//! Serving a mesh component: the fixed layer stack, health and reflection, and the check that
//! turns the gateway's principal metadata into a [`Principal`] only when the peer is the gateway.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::{Request, Status};

use crate::identity::{GATEWAY_SERVICE, PRINCIPAL_METADATA_KEY, Principal};
use crate::tls::{PeerInfo, ReloadingServerConfig, incoming};

/// Limits every server applies.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    pub request_timeout: Duration,
    pub concurrency_per_connection: usize,
    /// HTTP/2 streams one connection may have open at once; `None` leaves them unbounded (the
    /// mesh, where the gateway carries every client's streams over few connections).
    pub max_concurrent_streams: Option<u32>,
    /// A ping this often on a quiet connection, and the connection closed when one goes
    /// unanswered this long: a peer that vanished without a FIN frees what it held.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// A connection older than this is told to go away (GOAWAY) and closed after the grace,
    /// so clients spread over replicas that came up since; `None` for the mesh.
    pub max_connection_age: Option<(Duration, Duration)>,
    /// The largest request head (HTTP/2 header list) accepted.
    pub max_header_list_bytes: u32,
    /// Streams a peer may reset before the server accepts them, pending at once, before the
    /// connection is closed (the HTTP/2 rapid-reset defence). Low at the edge; on the mesh the
    /// one peer is the gateway, whose one connection carries every client's streams, and a
    /// burst of clients giving up at once must not close it under all the others.
    pub max_pending_accept_reset_streams: usize,
    /// The HTTP/2 connection-level receive window, bytes. h2 closes a connection whose peer
    /// has more small DATA frames waiting unread than half of it allows (its framing-overhead
    /// budget): on the mesh, the gateway's one connection carries a small message on each of
    /// tens of thousands of pile streams at once, so the window is wide there.
    pub connection_window: Option<u32>,
}

/// The mesh's HTTP/2 connection window: 64 MiB, a budget of about 130,000 small frames waiting.
pub const MESH_CONNECTION_WINDOW: u32 = 64 << 20;

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            // The mesh multiplexes every caller's calls over few connections (the gateway's to
            // a component carries all its clients'): a low bound here refuses work the edge's
            // own per-principal limits already admitted.
            concurrency_per_connection: 4096,
            max_concurrent_streams: None,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_connection_age: None,
            max_header_list_bytes: 16 * 1024,
            max_pending_accept_reset_streams: 16_384,
            connection_window: Some(MESH_CONNECTION_WINDOW),
        }
    }
}

/// The standard stack: tracing, timeout, concurrency limit, load shedding, and the transport's
/// bounds (streams per connection, keepalive, connection age, header size).
pub fn builder(limits: ServeLimits) -> Server {
    let server = Server::builder()
        .trace_fn(crate::telemetry::call_span)
        .timeout(limits.request_timeout)
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .load_shed(true)
        .tcp_nodelay(true)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
        .http2_max_header_list_size(limits.max_header_list_bytes)
        .http2_max_pending_accept_reset_streams(Some(limits.max_pending_accept_reset_streams))
        .initial_connection_window_size(limits.connection_window);
    match limits.max_connection_age {
        Some((age, grace)) => server
            .max_connection_age(age)
            .max_connection_age_grace(grace),
        None => server,
    }
}

pub use tonic_health::ServingStatus;
pub use tonic_health::server::HealthReporter;

/// gRPC health (every named service reported) and reflection over the given descriptor sets.
pub fn health_and_reflection(
    descriptor_sets: &[&'static [u8]],
) -> (tonic_health::server::HealthReporter, Routes) {
    let (reporter, health) = tonic_health::server::health_reporter();
    let mut reflection = tonic_reflection::server::Builder::configure();
    for set in descriptor_sets {
        reflection = reflection.register_encoded_file_descriptor_set(set);
    }
    let mut routes = Routes::new(health);
    match reflection.build_v1() {
        Ok(svc) => routes = routes.add_service(svc),
        Err(error) => tracing::warn!(%error, "reflection disabled"),
    }
    (reporter, routes)
}

/// Whether a path is open to any authenticated mesh peer without a principal.
pub fn is_infrastructure_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// Serves a mesh service over mutual TLS until `shutdown` resolves.
pub async fn serve_service(
    listener: TcpListener,
    tls: ReloadingServerConfig,
    trust_domain: String,
    limits: ServeLimits,
    routes: Routes,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    builder(limits)
        .layer(crate::metrics::MetricsLayer)
        .layer(MeshAuthLayer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming(listener, tls, trust_domain), shutdown)
        .await
}

/// Decides who a mesh call is from: the gateway's forwarded principal (only when the peer
/// certificate is the gateway's), or the calling mesh service itself. Anything else is refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct MeshAuthLayer;

impl<S> tower::Layer<S> for MeshAuthLayer {
    type Service = MeshAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeshAuth { inner }
    }
}

#[derive(Debug, Clone)]
pub struct MeshAuth<S> {
    inner: S,
}

/// The principal a mesh request is made for.
pub fn resolve_mesh_principal(
    peer: Option<&PeerInfo>,
    forwarded: Option<&[u8]>,
) -> Result<Principal, Status> {
    let peer = peer
        .and_then(|p| p.principal.as_ref())
        .ok_or_else(|| Status::unauthenticated("a mesh call needs a client certificate"))?;
    match (peer, forwarded) {
        (Principal::Service { name }, Some(encoded)) if name == GATEWAY_SERVICE => {
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(trim_padding(encoded))
                .map_err(|_| Status::unauthenticated("principal metadata is not base64"))?;
            Principal::from_metadata_bytes(&bytes)
                .map_err(|_| Status::unauthenticated("principal metadata is malformed"))
        }
        (Principal::Service { name }, None) if name == GATEWAY_SERVICE => Err(
            Status::unauthenticated("the gateway forwarded a call without a principal"),
        ),
        (Principal::Service { .. }, Some(_)) => Err(Status::permission_denied(
            "principal metadata is accepted only from the gateway",
        )),
        (Principal::Service { name }, None) => Ok(Principal::Service { name: name.clone() }),
        (_, _) => Err(Status::permission_denied(
            "services are reached through the gateway, not directly (REQ NETSEC-1)",
        )),
    }
}

fn trim_padding(encoded: &[u8]) -> &[u8] {
    let end = encoded
        .iter()
        .rposition(|b| *b != b'=')
        .map_or(0, |i| i + 1);
    &encoded[..end]
}

impl<S> tower::Service<http::Request<Body>> for MeshAuth<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        // The ready service answers this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !is_infrastructure_path(req.uri().path()) {
            let forwarded = req.headers_mut().remove(PRINCIPAL_METADATA_KEY);
            let resolved = resolve_mesh_principal(
                req.extensions().get::<PeerInfo>(),
                forwarded.as_ref().map(|v| v.as_bytes()),
            );
            match resolved {
                Ok(principal) => {
                    req.extensions_mut().insert(principal);
                }
                Err(status) => {
                    tracing::info!(path = %req.uri().path(), code = ?status.code(), "mesh call refused");
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        Box::pin(inner.call(req))
    }
}

/// The principal of a request that passed [`MeshAuthLayer`].
pub fn principal<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no principal"))
}

/// Serves gRPC health in plaintext on `listener` — for Kubernetes' native gRPC probes, which
/// speak neither TLS nor mutual TLS — `SERVING` while the component serves, and the Prometheus
/// metrics at `GET /metrics`. When `shutdown`
/// resolves it answers `NOT_SERVING` (the pod leaves its Service) and stops after `linger`.
pub async fn serve_admin(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    linger: Duration,
) -> Result<(), tonic::transport::Error> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let stop = async move {
        shutdown.await;
        reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        tokio::time::sleep(linger).await;
    };
    let router = Routes::new(health).into_axum_router().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                crate::metrics::encode(),
            )
        }),
    );
    Server::builder()
        .accept_http1(true)
        .add_routes(Routes::from(router))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            stop,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(p: Principal) -> PeerInfo {
        PeerInfo {
            principal: Some(p),
            ..PeerInfo::default()
        }
    }

    fn encoded(p: &Principal) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .encode(p.to_metadata_bytes())
            .into_bytes()
    }

    #[test]
    fn netsec_1_only_the_gateway_may_forward_a_principal() {
        let gateway = peer(Principal::Service {
            name: "gateway".into(),
        });
        let regulator = Principal::Regulator {
            area_code: "330600".into(),
        };
        assert_eq!(
            resolve_mesh_principal(Some(&gateway), Some(&encoded(&regulator))).ok(),
            Some(regulator.clone())
        );
        let operator = peer(Principal::Operator {
            operator_id: "OP".into(),
        });
        let forged = resolve_mesh_principal(Some(&operator), Some(&encoded(&regulator)));
        assert_eq!(
            forged.map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        let direct = resolve_mesh_principal(Some(&operator), None);
        assert_eq!(
            direct.map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        let other_service = peer(Principal::Service {
            name: "dispatch".into(),
        });
        let relayed = resolve_mesh_principal(Some(&other_service), Some(&encoded(&regulator)));
        assert_eq!(
            relayed.map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            resolve_mesh_principal(Some(&other_service), None).ok(),
            Some(Principal::Service {
                name: "dispatch".into()
            })
        );
        assert_eq!(
            resolve_mesh_principal(None, None).map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );
    }
}
