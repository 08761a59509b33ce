//! The YKC edge's listener (REQ NETSEC-1 for a protocol without credentials): a connection
//! from an address in no operator's networks is closed before a byte is read; a login is
//! accepted only for a pile code the registry holds as a YKC pile of an operator whose networks
//! hold the address; a second login of a pile code replaces the older connection. Every
//! refusal is logged with its reason, and the pile is told (0x02 result 0x01) when it logged in.
//! A connection that sends no login in time, or holds more than the edge allows, is closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};

use chargemesh_kit::Principal;
use chargemesh_kit::connections::Connections;
use chargemesh_kit::identity::{GATEWAY_SERVICE, request_as};
use chargemesh_kit::tls::{MeshChannel, TlsFiles};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use chargemesh_proto::asset::v1::charge_point_service_client::ChargePointServiceClient;
use chargemesh_proto::telemetry::v1 as pb;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use crate::config::{AllowList, YkcConfig};
use crate::connection;
use crate::session::{End, Pile, Session, TokenLookup};
use crate::station_tariffs::{StationTariffs, TariffSource};
use crate::{FrameReader, Message};

/// The components the edge talks to.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// The asset component: pile codes, connectors, the token list.
    pub registry: MeshChannel,
    /// The telemetry component: one stream per pile.
    pub telemetry: MeshChannel,
}

/// What each connection is served with.
#[derive(Clone)]
struct Served {
    upstreams: Upstreams,
    tariffs: Arc<dyn TariffSource>,
}

/// The edge's listeners: the protocol's own plain TCP, and TLS for the piles and tunnel boxes
/// that can use it; either or both.
#[derive(Debug, Default)]
pub struct Listeners {
    pub plain: Option<TcpListener>,
    pub tls: Option<TcpListener>,
}

/// The next connection on `listener` (backing off while accepting fails, out of descriptors
/// say); never, without one.
async fn accept(listener: Option<&TcpListener>) -> (TcpStream, SocketAddr) {
    match listener {
        Some(listener) => chargemesh_kit::tls::accept(listener, "YKC").await,
        None => std::future::pending().await,
    }
}

/// Serves YKC piles on `listeners` until `shutdown` completes (TLS with the certificate of
/// `files`); an error names a bad setting.
pub async fn serve(
    listeners: Listeners,
    config: YkcConfig,
    files: &TlsFiles,
    upstreams: Upstreams,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let allow = Arc::new(AllowList::new(&config.operators)?);
    let tls = match &listeners.tls {
        Some(_) => Some(
            crate::tls::server_config(files).map_err(|e| format!("gateway.ykc.tls_listen: {e}"))?,
        ),
        None => None,
    };
    let watching = tls.as_ref().map(|tls| tls.watch(Duration::from_secs(60)));
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let connections = Connections::default();
    let tariffs: Arc<dyn TariffSource> = Arc::new(StationTariffs::new(
        upstreams.registry.clone(),
        Duration::from_secs(config.tariff_refresh_s.max(1)),
    ));
    let config = Arc::new(config);
    let (stop_tx, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let ((stream, peer), secure) = tokio::select! {
            accepted = accept(listeners.plain.as_ref()) => (accepted, false),
            accepted = accept(listeners.tls.as_ref()) => (accepted, true),
            () = &mut shutdown => {
                let _ = stop_tx.send(true);
                if let Some(watching) = watching {
                    watching.abort();
                }
                return Ok(());
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "YKC connection refused: the edge holds its maximum of connections");
            continue;
        };
        // Checked before a handshake: TLS does not make an address allowed.
        let operators = allow.operators_of(peer.ip());
        if operators.is_empty() {
            tracing::warn!(%peer, "YKC connection refused: the address is in no operator's allow-listed networks (NETSEC-1)");
            continue;
        }
        let _ = stream.set_nodelay(true);
        let (config, served, connections, stop) = (
            config.clone(),
            Served {
                upstreams: upstreams.clone(),
                tariffs: tariffs.clone(),
            },
            connections.clone(),
            stop.clone(),
        );
        let acceptor = match (&tls, secure) {
            (Some(tls), true) => Some(tokio_rustls::TlsAcceptor::from(tls.current())),
            _ => None,
        };
        tokio::spawn(async move {
            let _slot = slot;
            let Some(acceptor) = acceptor else {
                connection(
                    stream,
                    peer,
                    operators,
                    &config,
                    &served,
                    &connections,
                    stop,
                )
                .await;
                return;
            };
            let timeout = Duration::from_secs(config.login_timeout_s.max(1));
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    connection(
                        stream,
                        peer,
                        operators,
                        &config,
                        &served,
                        &connections,
                        stop,
                    )
                    .await;
                }
                Ok(Err(error)) => {
                    tracing::info!(%peer, %error, "YKC TLS handshake failed");
                }
                Err(_) => tracing::info!(%peer, "YKC TLS handshake not done in time"),
            }
        });
    }
}

/// One connection, from its login to its end.
async fn connection<S>(
    mut stream: S,
    peer: SocketAddr,
    operators: Vec<String>,
    config: &YkcConfig,
    served: &Served,
    connections: &Connections,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let upstreams = &served.upstreams;
    let mut reader = FrameReader::new();
    let timeout = Duration::from_secs(config.login_timeout_s.max(1));
    let (login, sequence, crc_order) = match connection::read_login(
        &mut stream,
        &mut reader,
        timeout,
    )
    .await
    {
        Ok(login) => login,
        Err(reason) => {
            tracing::info!(%peer, reason, skipped = reader.skipped(), "YKC connection closed before a login");
            return;
        }
    };
    let pile = match identify(&upstreams.registry, &login.pile, operators).await {
        Ok(pile) => pile,
        Err(reason) => {
            tracing::warn!(%peer, pile = %login.pile, %reason, "YKC login refused (NETSEC-1)");
            let reply = Message::LoginReply {
                pile: login.pile.clone(),
                result: 0x01,
            };
            if let Ok(bytes) = reply.to_frame(sequence).and_then(|f| f.encode()) {
                let _ = stream.write_all(&bytes).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.shutdown()).await;
            return;
        }
    };
    if usize::from(login.guns) > pile.connectors.len() {
        tracing::info!(pile = %pile.code, guns = login.guns, registered = pile.connectors.len(), "a YKC pile reports more guns than the registry lists; the extra ones are skipped");
    }
    let key = format!("{}/{}", pile.operator_id, pile.pile_id);
    let (conn_id, mut replaced) = connections.enter(&key);
    let (tx, rx) = mpsc::channel::<pb::ConnectRequest>(16);
    let mut answers = match TelemetryServiceClient::new(upstreams.telemetry.clone())
        .connect(request_as(
            &pile.principal,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => {
            connections.leave(&key, conn_id);
            // Not the pile's fault: it logs in again.
            tracing::warn!(%status, pile = %pile.code, "the telemetry stream could not open; closing so the pile logs in again");
            return;
        }
    };
    let welcome = Message::LoginReply {
        pile: login.pile.clone(),
        result: 0x00,
    };
    let Ok(welcome) = welcome.to_frame(sequence).and_then(|f| f.encode()) else {
        connections.leave(&key, conn_id);
        return;
    };
    if stream.write_all(&welcome).await.is_err() {
        connections.leave(&key, conn_id);
        return;
    }
    tracing::info!(%peer, pile = %pile.code, pile_id = %pile.pile_id, version = login.protocol, software = %login.software, crc = ?crc_order, "YKC pile logged in");
    let lookup = Box::new(Tokens {
        registry: upstreams.registry.clone(),
        pile: pile.clone(),
    });
    let tariff = served.tariffs.tariff(&pile).await.unwrap_or_default();
    let mut session = Session::new(
        pile,
        config.clone(),
        tx.clone(),
        lookup,
        crc_order,
        served.tariffs.clone(),
        tariff,
    );
    let end = connection::serve(
        &mut stream,
        &mut reader,
        &mut session,
        &mut answers,
        &mut replaced,
        &mut stop,
    )
    .await;
    connections.leave(&key, conn_id);
    // REQ MON-1: the pile's guns are offline now, unless a newer connection holds it; the
    // stream is kept open until telemetry has them (a dropped stream is reset, and what was
    // sent on it lost).
    if !matches!(end, End::Replaced | End::Upstream) {
        let offline = session.offline();
        let mut waiting: std::collections::HashSet<u64> =
            offline.iter().map(|m| m.sequence).collect();
        if tx
            .send(pb::ConnectRequest { messages: offline })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Ok(Some(answer)) = answers.message().await {
                    match answer.body {
                        Some(pb::connect_response::Body::Acknowledgement(ack)) => {
                            waiting
                                .retain(|s| !(ack.first_sequence..=ack.last_sequence).contains(s));
                        }
                        Some(pb::connect_response::Body::Rejection(rejection)) => {
                            waiting.remove(&rejection.sequence);
                        }
                        _ => {}
                    }
                    if waiting.is_empty() {
                        break;
                    }
                }
            })
            .await;
        }
    }
    drop(tx);
    tracing::info!(%peer, pile = %session.pile.code, end = ?end, "YKC connection ended");
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.shutdown()).await;
}

/// Which pile a login's code is, and its connectors; the reason when it is refused.
async fn identify(
    registry: &MeshChannel,
    code: &str,
    operators: Vec<String>,
) -> Result<Pile, String> {
    let edge = Principal::Service {
        name: GATEWAY_SERVICE.to_owned(),
    };
    let found = ChargePointServiceClient::new(registry.clone())
        .authenticate_charge_point(request_as(
            &edge,
            asset::AuthenticateChargePointRequest {
                charge_point_id: code.to_owned(),
                credential: Some(
                    asset::authenticate_charge_point_request::Credential::YkcSource(
                        asset::YkcSource {
                            operator_ids: operators,
                        },
                    ),
                ),
            },
        ))
        .await
        .map_err(|status| match status.code() {
            tonic::Code::NotFound => format!("pile code {code} is not registered"),
            _ => status.message().to_owned(),
        })?
        .into_inner();
    let principal = Principal::Pile {
        operator_id: found.operator_id.clone(),
        station_id: found.station_id.clone(),
        pile_id: found.pile_id.clone(),
    };
    let pile = AssetServiceClient::new(registry.clone())
        .get_pile(request_as(
            &principal,
            asset::GetPileRequest {
                operator_id: found.operator_id.clone(),
                pile_id: found.pile_id.clone(),
            },
        ))
        .await
        .map_err(|status| format!("the registry could not be read: {}", status.message()))?
        .into_inner()
        .pile
        .ok_or_else(|| format!("pile code {code} is not registered"))?;
    Ok(Pile {
        principal,
        operator_id: found.operator_id,
        station_id: found.station_id,
        pile_id: found.pile_id,
        code: code.to_owned(),
        connectors: pile
            .connectors
            .into_iter()
            .map(|c| c.connector_id)
            .collect(),
    })
}

/// Card and VIN starts checked against the operator's token list.
struct Tokens {
    registry: MeshChannel,
    pile: Pile,
}

#[tonic::async_trait]
impl TokenLookup for Tokens {
    async fn authorize(&self, token: &str) -> Option<bool> {
        let mut client = ChargePointServiceClient::new(self.registry.clone());
        let asked = client.authorize_id_token(request_as(
            &self.pile.principal,
            asset::AuthorizeIdTokenRequest {
                operator_id: self.pile.operator_id.clone(),
                pile_id: self.pile.pile_id.clone(),
                token: token.to_owned(),
            },
        ));
        match tokio::time::timeout(Duration::from_secs(10), asked).await {
            Ok(Ok(answer)) => {
                let answer = answer.into_inner();
                (answer.status == asset::IdTokenStatus::Accepted as i32)
                    .then_some(answer.method == asset::AuthorizationMethod::AnyToken as i32)
            }
            Ok(Err(status)) => {
                tracing::warn!(%status, "the token list could not be read; the start is refused");
                None
            }
            Err(_) => {
                tracing::warn!("the token list did not answer in time; the start is refused");
                None
            }
        }
    }
}
