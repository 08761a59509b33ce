//! The OCPP edge's listener (REQ NETSEC-1): TLS, then the WebSocket upgrade, with the charge
//! point's identity settled before the upgrade is answered. Security profile 3: the client
//! certificate (chaining to the mesh CA, checked against its revocation list) names the pile by
//! its SPIFFE URI, and the path's charge point id must be that pile. A connection without a
//! certificate, one whose certificate names anything but a pile, or a path naming another pile is
//! refused with 401 or 403 before any OCPP frame is read, and the reason is logged. Connections
//! beyond the cap are closed as they arrive; the handshake and upgrade have a fixed time.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use chargemesh_kit::Principal;
use chargemesh_kit::tls::{self, ClientAuth, MeshChannel, TlsFiles};

use crate::{OcppConfig, Version};

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The components the edge talks to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// The asset component: the pile's connectors.
    pub registry: MeshChannel,
    /// The telemetry component: one stream per charge point.
    pub telemetry: MeshChannel,
}

/// The connections of this replica by pile: a new connection of a charge point replaces its old
/// one, which is told to close.
#[derive(Debug, Default, Clone)]
pub struct Connections {
    inner: Arc<Mutex<Held>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Connections {
    /// Registers a connection of `key`, closing the one it replaces; the receiver turns true
    /// when this one is replaced in turn.
    pub fn enter(&self, key: &str) -> (u64, watch::Receiver<bool>) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, old)) = map.insert(key.to_owned(), (id, tx)) {
            let _ = old.send(true);
        }
        (id, rx)
    }

    /// Forgets a connection that ended, unless it was replaced already.
    pub fn leave(&self, key: &str, id: u64) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|(held, _)| *held == id) {
            map.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Each pile's connection: its number and how it is told it was replaced.
type Held = HashMap<String, (u64, watch::Sender<bool>)>;

/// Who a charge point is, settled before the upgrade.
#[derive(Debug, Clone)]
pub struct ChargePoint {
    pub principal: Principal,
    pub operator_id: String,
    pub pile_id: String,
    pub version: Version,
}

/// Why an upgrade was refused: the HTTP status and the reason (logged, and sent as the body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

fn refuse(status: u16, reason: impl Into<String>) -> Refusal {
    Refusal {
        status,
        reason: reason.into(),
    }
}

/// Settles a charge point's identity from its upgrade request and certificate (profile 3).
pub fn identify(
    prefix: &str,
    path: &str,
    offers: &[&str],
    certificate: Option<&[u8]>,
    trust_domain: &str,
) -> Result<(ChargePoint, String), Refusal> {
    let id = path
        .strip_prefix(prefix)
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| refuse(404, format!("the path is {prefix}{{chargePointId}}")))?;
    let (version, offered) = if offers.is_empty() {
        // Some 1.6 firmware offers no subprotocol at all; it is taken as 1.6.
        (Version::V16, String::new())
    } else {
        Version::negotiate(offers.iter().copied()).ok_or_else(|| {
            refuse(
                400,
                format!(
                    "no supported subprotocol in {:?}: ocpp1.6 or ocpp2.0.1",
                    offers.join(",")
                ),
            )
        })?
    };
    let Some(der) = certificate else {
        return Err(refuse(
            401,
            "a client certificate is required (OCPP security profile 3)",
        ));
    };
    let principal = Principal::from_certificate(der, trust_domain)
        .map_err(|e| refuse(403, format!("the certificate names no pile: {e}")))?;
    let Principal::Pile {
        operator_id,
        pile_id,
        ..
    } = &principal
    else {
        return Err(refuse(403, format!("{principal} is not a charge point")));
    };
    if pile_id != id {
        return Err(refuse(
            403,
            format!("the certificate is pile {pile_id}'s, the path names {id}"),
        ));
    }
    Ok((
        ChargePoint {
            operator_id: operator_id.clone(),
            pile_id: pile_id.clone(),
            version,
            principal: principal.clone(),
        },
        offered,
    ))
}

/// Serves the OCPP edge on `listener` until `shutdown` resolves.
pub async fn serve(
    config: &OcppConfig,
    tls_files: &TlsFiles,
    trust_domain: &str,
    upstreams: Upstreams,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), EdgeError> {
    let server = tls::ReloadingServerConfig::load_with_alpn(
        tls_files.clone(),
        ClientAuth::Optional,
        vec![b"http/1.1".to_vec()],
    )?;
    let watcher = server.watch(Duration::from_secs(30));
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let connections = Connections::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            (tcp, _) = tls::accept(&listener, "OCPP") => tcp,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!("OCPP connection cap reached; closing a new connection");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.current());
        let (config, trust_domain, upstreams, connections, stop) = (
            config.clone(),
            trust_domain.to_owned(),
            upstreams.clone(),
            connections.clone(),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = Duration::from_millis(config.handshake_timeout_ms.max(1));
            let accepted = tokio::time::timeout(handshake, async {
                let stream = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
                let certificate = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.as_ref().to_vec());
                upgrade(stream, &config, &trust_domain, certificate.as_deref()).await
            })
            .await;
            match accepted {
                Ok(Ok((ws, charge_point))) => {
                    crate::session::run(ws, charge_point, &config, upstreams, connections, stop)
                        .await;
                }
                Ok(Err(reason)) => tracing::info!(%reason, "OCPP connection refused"),
                Err(_) => tracing::debug!("OCPP handshake timed out"),
            }
        });
    }
    let _ = stop_tx.send(true);
    watcher.abort();
    Ok(())
}

/// The WebSocket stream of a charge point.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>;

/// Answers the upgrade: identity and subprotocol first, then 101 or the refusal.
// The handshake callback's error is tungstenite's HTTP response type, large by nature.
#[allow(clippy::result_large_err)]
async fn upgrade(
    stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    config: &OcppConfig,
    trust_domain: &str,
    certificate: Option<&[u8]>,
) -> Result<(Socket, ChargePoint), String> {
    let mut settled: Option<ChargePoint> = None;
    let mut refused: Option<Refusal> = None;
    let callback = |request: &Request, mut response: Response| {
        let offers: Vec<&str> = request
            .headers()
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        match identify(
            &config.path_prefix,
            request.uri().path(),
            &offers,
            certificate,
            trust_domain,
        ) {
            Ok((charge_point, offered)) => {
                if !offered.is_empty()
                    && let Ok(value) = http::HeaderValue::from_str(&offered)
                {
                    response
                        .headers_mut()
                        .insert(http::header::SEC_WEBSOCKET_PROTOCOL, value);
                }
                settled = Some(charge_point);
                Ok(response)
            }
            Err(refusal) => {
                let mut error = ErrorResponse::new(Some(refusal.reason.clone()));
                *error.status_mut() = http::StatusCode::from_u16(refusal.status)
                    .unwrap_or(http::StatusCode::FORBIDDEN);
                refused = Some(refusal);
                Err(error)
            }
        }
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_frame_bytes.max(1024)))
        .max_frame_size(Some(config.max_frame_bytes.max(1024)));
    let upgraded =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config)).await;
    match (upgraded, settled, refused) {
        (Ok(ws), Some(charge_point), _) => Ok((ws, charge_point)),
        (_, _, Some(refusal)) => Err(format!("{} {}", refusal.status, refusal.reason)),
        (Err(error), _, _) => Err(format!("not a WebSocket upgrade: {error}")),
        (Ok(_), None, None) => Err("the upgrade settled no charge point".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netsec_1_a_charge_point_without_a_certificate_or_on_a_wrong_path_is_refused() {
        let no_cert = identify("/ocpp/", "/ocpp/P1", &["ocpp1.6"], None, "cm.test");
        assert_eq!(no_cert.expect_err("no certificate").status, 401);
        let no_id = identify("/ocpp/", "/ocpp/", &["ocpp1.6"], None, "cm.test");
        assert_eq!(no_id.expect_err("no id").status, 404);
        let elsewhere = identify("/ocpp/", "/other/P1", &["ocpp1.6"], None, "cm.test");
        assert_eq!(elsewhere.expect_err("wrong prefix").status, 404);
        let garbage = identify("/ocpp/", "/ocpp/P1", &["ocpp1.6"], Some(b"junk"), "cm.test");
        assert_eq!(garbage.expect_err("no pile").status, 403);
        let protocol = identify("/ocpp/", "/ocpp/P1", &["ocpp1.5"], None, "cm.test");
        assert_eq!(protocol.expect_err("1.5").status, 400);
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
