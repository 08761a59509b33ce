//! The gRPC edge: mutual TLS (or a staff JWT) turned into a principal, the method policy, and
//! forwarding over the mesh to the one component that implements the method ([`crate::routes`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use tokio::net::TcpListener;
use tonic::Status;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::Channel;
use tower::ServiceExt as _;

use chargemesh_kit::Principal;
use chargemesh_kit::identity::PRINCIPAL_METADATA_KEY;
use chargemesh_kit::jwt::{JwtVerifier, ReloadingJwtVerifier};
use chargemesh_kit::server::{
    HealthReporter, ServeLimits, builder, health_and_reflection, is_infrastructure_path,
};
use chargemesh_kit::tls::{self, ClientAuth, PeerInfo, ReloadingServerConfig};

use crate::frames::{FrameGuard, FrameLimit, Tripped};
use crate::limits::{ConnectionLimits, EdgeLimits, PrincipalLimiter};
use crate::{GatewayConfig, GatewayError, drain, policy, routes, upstream};

/// The edge service: authenticate, authorise, forward.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    jwt: Option<ReloadingJwtVerifier>,
    upstreams: HashMap<String, Channel>,
    local: Routes,
    /// True once the gateway is stopping: long-lived streams end, new ones are refused.
    drain: tokio::sync::watch::Sender<bool>,
    /// What each principal holds, against the edge's limits.
    limiter: Arc<PrincipalLimiter>,
}

/// The pile and platform telemetry stream, whose frames are batches of telemetry messages.
const TELEMETRY_CONNECT: &str = "/chargemesh.telemetry.v1.TelemetryService/Connect";

/// The limits of `path`'s messages.
fn frame_limit(limits: &EdgeLimits, path: &str) -> FrameLimit {
    if path == TELEMETRY_CONNECT {
        FrameLimit {
            max_bytes: limits.telemetry_frame_bytes,
            bytes_setting: "gateway.limits.telemetry_frame_bytes",
            // ConnectRequest.messages is field 1.
            max_entries: Some((1, limits.telemetry_batch, "gateway.limits.telemetry_batch")),
        }
    } else {
        FrameLimit {
            max_bytes: limits.max_message_bytes,
            bytes_setting: "gateway.limits.max_message_bytes",
            max_entries: None,
        }
    }
}

/// The transport limits of the edge's listener.
pub fn serve_limits(limits: &EdgeLimits) -> ServeLimits {
    ServeLimits {
        max_concurrent_streams: Some(limits.max_concurrent_streams.max(1)),
        keepalive_interval: std::time::Duration::from_secs(limits.keepalive_interval_s.max(1)),
        keepalive_timeout: std::time::Duration::from_secs(limits.keepalive_timeout_s.max(1)),
        max_connection_age: (limits.max_connection_age_s > 0).then(|| {
            (
                std::time::Duration::from_secs(limits.max_connection_age_s),
                std::time::Duration::from_secs(limits.max_connection_age_grace_s),
            )
        }),
        // Untrusted clients, each on its own connection: the rapid-reset defence stays tight.
        max_pending_accept_reset_streams: 64,
        // Each client its own connection: the transport's default window and budget.
        connection_window: None,
        ..ServeLimits::default()
    }
}

impl Gateway {
    /// Builds the edge from its configuration; upstream connections are made lazily.
    pub fn new(
        config: &GatewayConfig,
        descriptor_sets: &[&'static [u8]],
    ) -> Result<(Self, HealthReporter), GatewayError> {
        let client = Arc::new(tls::client_config(&config.tls)?);
        let upstreams = config
            .upstreams
            .iter()
            .map(|(name, url)| Ok((name.clone(), tls::channel(url, client.clone())?)))
            .collect::<Result<HashMap<_, _>, tls::TlsError>>()?;
        let jwt = match &config.jwt {
            Some(j) => Some(ReloadingJwtVerifier::load_with_claims(
                &j.jwks_file,
                &j.issuer,
                &j.audience,
                chargemesh_kit::jwt::ClaimNames {
                    roles: j.roles_claim.clone(),
                    operator: j.operator_claim.clone(),
                },
            )?),
            None => None,
        };
        let (reporter, local) = health_and_reflection(descriptor_sets);
        Ok((
            Self {
                inner: Arc::new(Inner {
                    jwt,
                    upstreams,
                    local,
                    drain: tokio::sync::watch::Sender::new(false),
                    limiter: PrincipalLimiter::new(config.limits.clone()),
                }),
            },
            reporter,
        ))
    }

    /// Starts draining: every long-lived stream ends with `UNAVAILABLE` (its client reconnects
    /// elsewhere) once what the service already sent is passed on; new ones are refused.
    pub fn drain(&self) {
        self.inner.drain.send_replace(true);
    }
}

/// Who the caller is: a staff JWT when one is presented, else the client certificate, else
/// the public.
pub fn authenticate(
    jwt: Option<&JwtVerifier>,
    peer: Option<&PeerInfo>,
    authorization: Option<&str>,
) -> Result<Principal, Status> {
    if let Some(value) = authorization {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be a bearer token"))?;
        let verifier = jwt
            .ok_or_else(|| Status::unauthenticated("this gateway does not accept staff tokens"))?;
        return verifier
            .verify(token.trim())
            .map(|claims| claims.into_principal())
            .map_err(|e| Status::unauthenticated(e.to_string()));
    }
    // No credential at all: the public, who may call only the public methods.
    Ok(peer
        .and_then(|p| p.principal.clone())
        .unwrap_or(Principal::Public))
}

/// The answer to a caller without a credential calling a method that needs one.
fn credential_required() -> Status {
    Status::unauthenticated("present a client certificate or a staff bearer token (REQ NETSEC-1)")
}

impl Inner {
    async fn handle(&self, mut req: http::Request<Body>) -> http::Response<Body> {
        let path = req.uri().path().to_owned();
        if is_infrastructure_path(&path) {
            return match self.local.clone().oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
        }
        let Some(rule) = policy::rule_for(&path) else {
            return Status::unimplemented(format!("unknown method {path}")).into_http();
        };
        let long_lived = policy::is_long_lived(&path);
        if long_lived && *self.drain.borrow() {
            return Status::unavailable(drain::DRAINING).into_http();
        }
        if let Some(why) = req
            .extensions()
            .get::<PeerInfo>()
            .and_then(|p| p.refused.clone())
        {
            return Status::resource_exhausted(why).into_http();
        }
        let authorization = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("?"));
        let keys = self.jwt.as_ref().map(ReloadingJwtVerifier::current);
        let principal = match authenticate(
            keys.as_deref(),
            req.extensions().get::<PeerInfo>(),
            authorization,
        ) {
            Ok(p) => p,
            Err(status) => {
                tracing::info!(%path, code = ?status.code(), "edge call refused");
                return status.into_http();
            }
        };
        if !rule.allows(&principal) && principal == Principal::Public {
            tracing::info!(%path, "edge call without a credential refused");
            return credential_required().into_http();
        }
        if !rule.allows(&principal) {
            tracing::info!(%path, %principal, "policy refused");
            return Status::permission_denied(format!("{principal} may not call {path}"))
                .into_http();
        }
        let who = principal.to_string();
        if let Err(status) = self.limiter.admit_call(&who) {
            return status.into_http();
        }
        let stream_permit = if long_lived {
            match self.limiter.open_stream(&who) {
                Ok(permit) => Some(permit),
                Err(status) => return status.into_http(),
            }
        } else {
            None
        };
        let upstream = routes::component_of(&path).and_then(|c| self.upstreams.get(c));
        let Some(channel) = upstream else {
            return Status::unavailable(format!("no upstream serves {path}")).into_http();
        };
        let headers = req.headers_mut();
        headers.remove(http::header::AUTHORIZATION);
        let internal: Vec<_> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("x-chargemesh-"))
            .cloned()
            .collect();
        for key in internal {
            headers.remove(key);
        }
        // The trace continues in the service: the gateway's call span is the parent there.
        chargemesh_kit::telemetry::inject_current(headers);
        let encoded =
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(principal.to_metadata_bytes());
        match http::HeaderValue::from_str(&encoded) {
            Ok(value) => {
                headers.insert(PRINCIPAL_METADATA_KEY, value);
            }
            Err(_) => return Status::internal("cannot encode principal").into_http(),
        }
        // The client's messages pass on whole and within their limits, checked as they come.
        let tripped = Tripped::default();
        let limit = frame_limit(self.limiter.limits(), &path);
        let req = req.map(|body| FrameGuard::wrap(body, limit, tripped.clone()));
        let held = stream_permit.map(|p| Box::new(p) as Box<dyn Send + Sync>);
        match channel.clone().oneshot(req).await {
            Ok(resp) if long_lived => upstream::Upstream::wrap_with(resp, Some(tripped), held)
                .map(|body| drain::Draining::wrap(body, self.drain.subscribe())),
            Ok(resp) => upstream::Upstream::wrap_with(resp, Some(tripped), held),
            Err(_) if tripped.get().is_some() => tripped
                .get()
                .cloned()
                .unwrap_or_else(|| Status::resource_exhausted("refused"))
                .into_http(),
            Err(error) => {
                tracing::warn!(%path, %error, "upstream unavailable");
                Status::unavailable("the service is unavailable, retry later").into_http()
            }
        }
    }
}

impl tower::Service<http::Request<Body>> for Gateway {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move { Ok(inner.handle(req).await) })
    }
}

/// Serves the edge on `listener` until `shutdown` resolves.
pub async fn serve(
    config: &GatewayConfig,
    trust_domain: &str,
    listener: TcpListener,
    descriptor_sets: &[&'static [u8]],
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    // Without staff tokens every client must present a certificate at the handshake.
    let client_auth = if config.jwt.is_some() {
        ClientAuth::Optional
    } else {
        ClientAuth::Required
    };
    // Piles that reconnect (to another replica, after a restart) resume their sessions from
    // tickets; the certificate a resumed session carries is checked again as it is accepted.
    let tls = ReloadingServerConfig::resumable(config.tls.clone(), client_auth)?;
    let watcher = tls.watch(std::time::Duration::from_secs(30));
    let (gateway, reporter) = Gateway::new(config, descriptor_sets)?;
    let gate: Arc<dyn tls::ConnectionGate> =
        Arc::new(ConnectionLimits(gateway.inner.limiter.clone()));
    // The staff token keys follow their JWKS file, as the certificate follows its files.
    let jwks_watcher = gateway
        .inner
        .jwt
        .as_ref()
        .map(|jwt| jwt.watch(std::time::Duration::from_secs(30)));
    let draining = gateway.clone();
    // On the stop signal: not serving, long-lived streams told to reconnect, and (tonic) GOAWAY
    // on every connection with no new ones accepted; then the calls in flight finish.
    let shutdown = async move {
        shutdown.await;
        tracing::info!("gateway draining");
        reporter
            .set_service_status("", chargemesh_kit::server::ServingStatus::NotServing)
            .await;
        draining.drain();
    };
    let result = builder(serve_limits(&config.limits))
        .layer(chargemesh_kit::metrics::MetricsLayer)
        .serve_with_incoming_shutdown(
            gateway,
            tls::incoming_gated(
                listener,
                tls,
                trust_domain.to_owned(),
                Some(gate),
                std::time::Duration::from_millis(config.limits.handshake_timeout_ms.max(1)),
            ),
            shutdown,
        )
        .await;
    watcher.abort();
    if let Some(jwks_watcher) = jwks_watcher {
        jwks_watcher.abort();
    }
    Ok(result?)
}
