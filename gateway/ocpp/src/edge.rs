//! The OCPP edge's listeners (REQ NETSEC-1). On the TLS listener a charge point is known, before
//! its upgrade is answered, by one of:
//!
//! - security profile 3 with our certificate: the mesh CA's certificate names the pile by its
//!   SPIFFE URI, and the path's charge point id must be that pile (its id or its registered
//!   charge point id);
//! - security profile 3 with a certificate of the operator's own CA (the OCPP security
//!   whitepaper): subject CN must be the path's charge point id and O the operator's name, and
//!   the charge point must be registered to that operator (an unknown one is listed for the
//!   operator);
//! - security profile 2: HTTP Basic with the charge point id as user and the password set
//!   through the asset API.
//!
//! The insecure listener (profile 1: Basic over plain TCP) exists only when configured, for a
//! TLS-terminating proxy in front. Anything else (no credential, a wrong password, an unknown
//! charge point, a foreign CA, a certificate naming another charge point) is refused with 401,
//! 403 or 404 before any OCPP frame is read, and the reason is logged. Connections beyond the
//! cap are closed as they arrive; the handshake and upgrade have a fixed time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use chargemesh_kit::Principal;
use chargemesh_kit::identity::request_as;
use chargemesh_kit::tls::{self, MeshChannel, TlsFiles};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use chargemesh_proto::asset::v1::charge_point_service_client::ChargePointServiceClient;

use crate::handshake::{self, Head, Refusal, refuse};
use crate::tls::{EdgeTls, Issuer};
use crate::{OcppConfig, Version};

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The components the edge talks to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// The asset component: charge point credentials, the pile's connectors, id tokens.
    pub registry: MeshChannel,
    /// The telemetry component: one stream per charge point.
    pub telemetry: MeshChannel,
}

/// The edge's listeners: TLS (profiles 2 and 3) and, only when configured, plain TCP behind a
/// TLS-terminating proxy (profile 1).
#[derive(Debug, Default)]
pub struct OcppListeners {
    pub tls: Option<TcpListener>,
    pub insecure: Option<TcpListener>,
}

pub use chargemesh_kit::connections::Connections;

/// How a charge point proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Basic over plain TCP, behind a TLS-terminating proxy.
    One,
    /// Basic over TLS.
    Two,
    /// A client certificate.
    Three,
}

/// Who a charge point is, settled before the upgrade.
#[derive(Debug, Clone)]
pub struct ChargePoint {
    pub principal: Principal,
    pub operator_id: String,
    pub pile_id: String,
    /// The id it named itself by (the path).
    pub charge_point_id: String,
    pub version: Version,
    pub profile: Profile,
}

/// What a charge point presented at the TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// No certificate (or no TLS at all).
    Nothing,
    /// A certificate chain (end entity first) and the CA it chains to.
    Certificate { issuer: Issuer, der: Vec<u8> },
}

/// The charge point id of a request path.
pub fn path_id<'a>(prefix: &str, path: &'a str) -> Result<&'a str, Refusal> {
    let path = path.split('?').next().unwrap_or_default();
    path.strip_prefix(prefix)
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| refuse(404, format!("the path is {prefix}{{chargePointId}}")))
}

/// The version an upgrade asks for, and the subprotocol to answer with.
pub fn subprotocol(head: &Head) -> Result<(Version, String), Refusal> {
    let offers: Vec<&str> = head.all("sec-websocket-protocol").collect();
    if offers.is_empty() {
        // Some 1.6 firmware offers no subprotocol at all; it is taken as 1.6.
        return Ok((Version::V16, String::new()));
    }
    Version::negotiate(offers.iter().copied()).ok_or_else(|| {
        refuse(
            400,
            format!(
                "no supported subprotocol in {:?}: ocpp1.6 or ocpp2.0.1",
                offers.join(",")
            ),
        )
    })
}

/// The pile a mesh certificate names (profile 3 with our PKI).
pub fn mesh_pile(der: &[u8], trust_domain: &str) -> Result<Principal, Refusal> {
    let principal = Principal::from_certificate(der, trust_domain)
        .map_err(|e| refuse(403, format!("the certificate names no pile: {e}")))?;
    match &principal {
        Principal::Pile { .. } => Ok(principal),
        _ => Err(refuse(403, format!("{principal} is not a charge point"))),
    }
}

/// What identification needs besides the request.
#[derive(Debug, Clone)]
struct Identifier {
    prefix: String,
    trust_domain: String,
    registry: MeshChannel,
    /// Password checks are deliberately slow (a salted PBKDF2); at most this many at once.
    password_checks: Arc<Semaphore>,
}

fn registry_refusal(status: &tonic::Status, id: &str) -> Refusal {
    match status.code() {
        tonic::Code::NotFound => refuse(404, format!("charge point {id} is not registered")),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            refuse(401, status.message().to_owned())
        }
        _ => refuse(
            503,
            format!("the registry is unavailable ({}); retry", status.code()),
        ),
    }
}

impl Identifier {
    async fn identify(
        &self,
        head: &Head,
        presented: &Presented,
        secure: bool,
    ) -> Result<(ChargePoint, String), Refusal> {
        let id = path_id(&self.prefix, &head.path)?;
        let (version, offered) = subprotocol(head)?;
        let (principal, profile) = match presented {
            Presented::Certificate {
                issuer: Issuer::Mesh,
                der,
            } => (self.mesh(der, id).await?, Profile::Three),
            Presented::Certificate {
                issuer: Issuer::Operator(operator_id),
                der,
            } => (self.whitepaper(operator_id, der, id).await?, Profile::Three),
            Presented::Nothing => {
                let profile = if secure { Profile::Two } else { Profile::One };
                (self.basic(head, id).await?, profile)
            }
        };
        let Principal::Pile {
            operator_id,
            pile_id,
            ..
        } = &principal
        else {
            return Err(refuse(403, format!("{principal} is not a charge point")));
        };
        Ok((
            ChargePoint {
                operator_id: operator_id.clone(),
                pile_id: pile_id.clone(),
                charge_point_id: id.to_owned(),
                version,
                profile,
                principal: principal.clone(),
            },
            offered,
        ))
    }

    /// Profile 3, our PKI: the path names the certificate's pile by its id or its registered
    /// charge point id.
    async fn mesh(&self, der: &[u8], id: &str) -> Result<Principal, Refusal> {
        let principal = mesh_pile(der, &self.trust_domain)?;
        let Principal::Pile {
            operator_id,
            pile_id,
            ..
        } = &principal
        else {
            return Err(refuse(403, "not a charge point"));
        };
        if pile_id == id {
            return Ok(principal);
        }
        let registered = AssetServiceClient::new(self.registry.clone())
            .get_pile(request_as(
                &principal,
                asset::GetPileRequest {
                    operator_id: operator_id.clone(),
                    pile_id: pile_id.clone(),
                },
            ))
            .await
            .map_err(|s| registry_refusal(&s, id))?
            .into_inner()
            .pile
            .map(|p| p.charge_point_id)
            .unwrap_or_default();
        if registered == id {
            Ok(principal)
        } else {
            Err(refuse(
                403,
                format!("the certificate is pile {pile_id}'s, the path names {id}"),
            ))
        }
    }

    /// Profile 3, the operator's PKI: CN is the charge point, O the operator.
    async fn whitepaper(
        &self,
        operator_id: &str,
        der: &[u8],
        id: &str,
    ) -> Result<Principal, Refusal> {
        let (common_name, organization) = crate::tls::subject_names(der)
            .ok_or_else(|| refuse(403, "the certificate cannot be read"))?;
        if common_name != id {
            return Err(refuse(
                403,
                format!("the certificate is charge point {common_name:?}'s, the path names {id}"),
            ));
        }
        let mut client = ChargePointServiceClient::new(self.registry.clone());
        let answer = client
            .authenticate_charge_point(as_edge(asset::AuthenticateChargePointRequest {
                charge_point_id: id.to_owned(),
                credential: Some(
                    asset::authenticate_charge_point_request::Credential::Certificate(
                        asset::CertificateSubject {
                            issuer_operator_id: operator_id.to_owned(),
                            common_name,
                            organization: organization.clone(),
                        },
                    ),
                ),
            }))
            .await;
        match answer {
            Ok(found) => Ok(pile_principal(found.into_inner())),
            Err(status) => {
                if status.code() == tonic::Code::NotFound {
                    // Listed for the operator whose CA vouched for it.
                    let note = asset::RecordUnknownChargePointRequest {
                        operator_id: operator_id.to_owned(),
                        charge_point_id: id.to_owned(),
                        detail: format!(
                            "connected with a certificate of the operator's CA (O {organization:?}) but is not registered"
                        ),
                    };
                    if let Err(error) = client.record_unknown_charge_point(as_edge(note)).await {
                        tracing::warn!(%error, "an unknown charge point could not be listed");
                    }
                }
                Err(registry_refusal(&status, id))
            }
        }
    }

    /// Profiles 1 and 2: HTTP Basic, the user being the charge point id.
    async fn basic(&self, head: &Head, id: &str) -> Result<Principal, Refusal> {
        let Some((user, password)) = head.basic() else {
            return Err(refuse(
                401,
                "a client certificate (security profile 3) or HTTP Basic credentials (profile 2) are required",
            ));
        };
        if user != id {
            return Err(refuse(
                401,
                format!("the Basic user {user:?} is not the path's charge point {id}"),
            ));
        }
        let _permit = self
            .password_checks
            .acquire()
            .await
            .map_err(|_| refuse(503, "the edge is stopping"))?;
        let answer = ChargePointServiceClient::new(self.registry.clone())
            .authenticate_charge_point(as_edge(asset::AuthenticateChargePointRequest {
                charge_point_id: id.to_owned(),
                credential: Some(
                    asset::authenticate_charge_point_request::Credential::Password(password),
                ),
            }))
            .await
            .map_err(|s| match s.code() {
                // Whether the id exists is not told to a client without the password.
                tonic::Code::NotFound => {
                    refuse(401, format!("charge point {id}: unknown or wrong password"))
                }
                _ => registry_refusal(&s, id),
            })?;
        Ok(pile_principal(answer.into_inner()))
    }
}

/// A call the edge makes as itself (the gateway), not for a charge point: authentication and
/// the list of unknown charge points.
pub fn as_edge<T>(message: T) -> tonic::Request<T> {
    request_as(
        &Principal::Service {
            name: chargemesh_kit::identity::GATEWAY_SERVICE.to_owned(),
        },
        message,
    )
}

fn pile_principal(found: asset::AuthenticateChargePointResponse) -> Principal {
    Principal::Pile {
        operator_id: found.operator_id,
        station_id: found.station_id,
        pile_id: found.pile_id,
    }
}

/// A stream a charge point talks over: TLS or, behind a proxy, plain TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The WebSocket stream of a charge point.
pub type Socket = tokio_tungstenite::WebSocketStream<Box<dyn Io>>;

/// Everything a connection needs, shared by the listeners.
#[derive(Debug, Clone)]
struct Shared {
    config: OcppConfig,
    identifier: Identifier,
    upstreams: Upstreams,
    connections: Connections,
    permits: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

/// Serves the OCPP edge on its listeners until `shutdown` resolves.
pub async fn serve(
    config: &OcppConfig,
    tls_files: &TlsFiles,
    trust_domain: &str,
    upstreams: Upstreams,
    listeners: OcppListeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EdgeError> {
    let edge_tls = EdgeTls::load(tls_files, &config.operator_cas, config.allow_tls12)?;
    let watcher = edge_tls.config.watch(Duration::from_secs(30));
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Shared {
        identifier: Identifier {
            prefix: config.path_prefix.clone(),
            trust_domain: trust_domain.to_owned(),
            registry: upstreams.registry.clone(),
            password_checks: Arc::new(Semaphore::new(config.max_password_checks.max(1))),
        },
        config: config.clone(),
        upstreams,
        connections: Connections::default(),
        permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
        stop: stop_rx,
    };
    let secure = listeners
        .tls
        .map(|l| tokio::spawn(accept_loop(l, Some(edge_tls.clone()), shared.clone())));
    let insecure = listeners.insecure.map(|l| {
        tracing::warn!(
            "OCPP security profile 1 listener on: plain TCP, for a TLS-terminating proxy only"
        );
        tokio::spawn(accept_loop(l, None, shared.clone()))
    });
    shutdown.await;
    let _ = stop_tx.send(true);
    for task in [secure, insecure].into_iter().flatten() {
        task.abort();
    }
    watcher.abort();
    Ok(())
}

async fn accept_loop(listener: TcpListener, edge_tls: Option<EdgeTls>, shared: Shared) {
    // TLS handshakes in turn, as on the gRPC edge (`tls::HANDSHAKES_AT_ONCE`).
    let handshakes = Arc::new(tokio::sync::Semaphore::new(tls::HANDSHAKES_AT_ONCE));
    loop {
        let (tcp, _) = tls::accept(&listener, "OCPP").await;
        let Ok(permit) = shared.permits.clone().try_acquire_owned() else {
            tracing::debug!("OCPP connection cap reached; closing a new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (shared, edge_tls) = (shared.clone(), edge_tls.clone());
        let handshakes = handshakes.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = Duration::from_millis(shared.config.handshake_timeout_ms.max(1));
            let accepted = tokio::time::timeout(handshake, async {
                match &edge_tls {
                    Some(edge_tls) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(edge_tls.config.current());
                        let turn = handshakes.acquire().await;
                        let stream = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
                        drop(turn);
                        let presented = match stream.get_ref().1.peer_certificates() {
                            Some(chain) if !chain.is_empty() => {
                                match edge_tls.verifier().issuer(chain) {
                                    Some(issuer) => Presented::Certificate {
                                        issuer,
                                        der: chain[0].as_ref().to_vec(),
                                    },
                                    None => return Err("a certificate of no known CA".into()),
                                }
                            }
                            _ => Presented::Nothing,
                        };
                        upgrade(Box::new(stream), &shared, &presented, true).await
                    }
                    None => upgrade(Box::new(tcp), &shared, &Presented::Nothing, false).await,
                }
            })
            .await;
            match accepted {
                Ok(Ok((ws, charge_point))) => {
                    crate::session::run(
                        ws,
                        charge_point,
                        &shared.config,
                        shared.upstreams,
                        shared.connections,
                        shared.stop,
                    )
                    .await;
                }
                Ok(Err(reason)) => tracing::info!(%reason, "OCPP connection refused"),
                Err(_) => tracing::debug!("OCPP handshake timed out"),
            }
        });
    }
}

/// Answers the upgrade: identity and subprotocol first, then 101 or the refusal.
async fn upgrade(
    mut stream: Box<dyn Io>,
    shared: &Shared,
    presented: &Presented,
    secure: bool,
) -> Result<(Socket, ChargePoint), String> {
    let (head, rest) = match handshake::read_head(&mut stream).await {
        Ok(read) => read,
        Err(refusal) => {
            let _ = stream
                .write_all(handshake::refusal(&refusal).as_bytes())
                .await;
            return Err(format!("{} {}", refusal.status, refusal.reason));
        }
    };
    let settled = match head.upgrade_key() {
        Ok(key) => shared
            .identifier
            .identify(&head, presented, secure)
            .await
            .map(|(charge_point, offered)| (key.to_owned(), charge_point, offered)),
        Err(refusal) => Err(refusal),
    };
    match settled {
        Ok((key, charge_point, offered)) => {
            stream
                .write_all(handshake::switching(&key, &offered).as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            // A charge point sends a small frame now and then: small buffers (tungstenite's
            // defaults are 128 KiB each way, which at thousands of charge points is most of the
            // edge's memory); they grow for the odd large message up to the frame limit.
            let ws_config = WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(4 * 1024)
                .max_message_size(Some(shared.config.max_frame_bytes.max(1024)))
                .max_frame_size(Some(shared.config.max_frame_bytes.max(1024)));
            let ws = tokio_tungstenite::WebSocketStream::from_partially_read(
                stream,
                rest,
                Role::Server,
                Some(ws_config),
            )
            .await;
            Ok((ws, charge_point))
        }
        Err(refusal) => {
            let _ = stream
                .write_all(handshake::refusal(&refusal).as_bytes())
                .await;
            let _ = stream.shutdown().await;
            Err(format!(
                "{} {} (path {})",
                refusal.status, refusal.reason, head.path
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(path: &str, protocols: &[&str]) -> Head {
        Head {
            method: "GET".into(),
            path: path.into(),
            headers: protocols
                .iter()
                .map(|p| ("Sec-WebSocket-Protocol".to_owned(), (*p).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn netsec_1_the_path_names_one_charge_point_and_the_subprotocol_is_known() {
        assert_eq!(path_id("/ocpp/", "/ocpp/P1"), Ok("P1"));
        assert_eq!(path_id("/ocpp/", "/ocpp/P1/?x=1"), Ok("P1"));
        assert_eq!(path_id("/ocpp/", "/ocpp/").map_err(|r| r.status), Err(404));
        assert_eq!(
            path_id("/ocpp/", "/other/P1").map_err(|r| r.status),
            Err(404)
        );
        assert_eq!(
            path_id("/ocpp/", "/ocpp/a/b").map_err(|r| r.status),
            Err(404)
        );
        assert_eq!(
            subprotocol(&head("/ocpp/P1", &["ocpp1.5"])).map_err(|r| r.status),
            Err(400)
        );
        assert_eq!(
            subprotocol(&head("/ocpp/P1", &[])).map(|v| v.0),
            Ok(Version::V16),
            "1.6 firmware that offers none"
        );
    }

    #[test]
    fn netsec_1_a_certificate_that_names_no_pile_is_refused() {
        assert_eq!(
            mesh_pile(b"junk", "cm.test").map_err(|r| r.status),
            Err(403)
        );
    }

    #[test]
    fn a_new_connection_replaces_the_old_one() {
        let connections = Connections::default();
        let (first, old) = connections.enter("op/P1");
        let (second, new) = connections.enter("op/P1");
        assert!(*old.borrow(), "the old one is told to close");
        assert!(!*new.borrow());
        connections.leave("op/P1", first);
        assert_eq!(
            connections.len(),
            1,
            "the old one leaving keeps the new one"
        );
        connections.leave("op/P1", second);
        assert!(connections.is_empty());
    }
}
