//! The T/CEC 102 edge (REQ BASE-2): an HTTPS listener beside the gRPC one, under a configurable
//! prefix such as `/evcs/v1/`, where regulator and operator platforms call Chargemesh the way
//! they call any operator platform. Each request is checked in order — its envelope (`Ret`
//! 4003), its sender among the configured peers, its signature (4001, before anything is
//! decrypted), its timestamp within the window and its `Seq` not repeated within its second
//! (4003), and its token (4002) — then answered from the mesh as the peer's principal: a
//! regulator peer sees its area, an operator peer its own stations.

mod listener;
mod pull;
mod push;

pub use listener::serve;

pub use crate::peers::{PeerAccess, PeerConfig, SecretsConfig};

use std::collections::HashMap;

use chargemesh_kit::events::{EventBus as _, InProcessBus, SharedBus};
use chargemesh_kit::tls::MeshChannel;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{CecError, Request, Response, Ret, Secrets};
use chargemesh_kit::Principal;
use chargemesh_kit::clock::SharedClock;

/// The T/CEC 102 edge's settings; off unless `listen` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CecConfig {
    pub listen: String,
    /// Our platform's OperatorID, which our pushes carry.
    pub operator_id: String,
    /// The path prefix of the interfaces, such as `/evcs/v1/`.
    pub prefix: String,
    /// How long an issued token is good for.
    pub token_ttl_s: u64,
    /// How far a request's TimeStamp may be from now.
    pub timestamp_window_s: u64,
    pub peers: Vec<PeerConfig>,
    /// A file of at least 32 secret bytes that keys the access tokens, the same on every
    /// replica (the chart mounts one Secret); empty means a random key of this process, whose
    /// tokens no other replica accepts.
    pub token_key_file: String,
    /// The largest request body read; a longer one is refused with 413 as soon as it is seen.
    pub max_body_bytes: usize,
    /// How long a client has for its TLS handshake, then for its request headers, then for its
    /// body; a client slower than that is disconnected.
    pub handshake_timeout_ms: u64,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    /// Connections served at once; one more is closed as it arrives.
    pub max_connections: usize,
}

impl Default for CecConfig {
    fn default() -> Self {
        Self {
            listen: String::new(),
            operator_id: String::new(),
            prefix: "/evcs/v1/".into(),
            token_ttl_s: 7_200,
            timestamp_window_s: 300,
            peers: Vec::new(),
            token_key_file: String::new(),
            max_body_bytes: 256 * 1024,
            handshake_timeout_ms: 10_000,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            max_connections: 1_024,
        }
    }
}

#[derive(Debug)]
struct Peer {
    config: PeerConfig,
    secrets: Secrets,
}

impl Peer {
    fn principal(&self) -> Principal {
        match &self.config.access {
            PeerAccess::Regulator { area_code } => Principal::Regulator {
                area_code: area_code.clone(),
            },
            // The registry view is the regulator API's, read as the mesh and narrowed here to
            // the operator's own stations.
            PeerAccess::Operator { .. } => Principal::Service {
                name: "gateway".into(),
            },
        }
    }

    /// The operator a platform-mode peer reports for; regulators report nothing.
    fn reporter(&self) -> Result<Principal, (Ret, String)> {
        match &self.config.access {
            PeerAccess::Operator { operator_id } => Ok(Principal::Operator {
                operator_id: operator_id.clone(),
            }),
            PeerAccess::Regulator { .. } => Err((
                Ret::BadPayload,
                "a regulator peer does not report stations".to_owned(),
            )),
        }
    }

    fn sees(&self, station: &chargemesh_proto::asset::v1::Station) -> bool {
        match &self.config.access {
            PeerAccess::Regulator { .. } => true,
            PeerAccess::Operator { operator_id } => &station.operator_id == operator_id,
        }
    }
}

/// The edge's state: peers, the token key, and where the Seqs seen within the window are kept.
pub struct Edge {
    prefix: String,
    window: chrono::Duration,
    ttl: chrono::Duration,
    peers: HashMap<String, Peer>,
    tokens: crate::token::TokenKey,
    /// Where a Seq is marked used, shared by every replica (the bus's store with expiry).
    seen: SharedBus,
    /// This replica's own marks, used while the shared store cannot be reached.
    seen_here: InProcessBus,
    upstreams: Upstreams,
    clock: SharedClock,
}

/// The mesh components the edge answers from, reached with the gateway's certificate.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// The asset component: the registry.
    pub registry: MeshChannel,
    /// The telemetry component: live status, statistics, and the ingest pushed statuses go to.
    pub telemetry: MeshChannel,
    /// The metering component: orders and reconciliation.
    pub metering: MeshChannel,
}

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tls(#[from] chargemesh_kit::tls::TlsError),
    #[error(transparent)]
    Cec(#[from] CecError),
    #[error("{0}")]
    Config(String),
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("prefix", &self.prefix)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A refusal: its code and what is logged.
fn refusal(error: CecError) -> (Ret, String) {
    (error.ret(), error.to_string())
}

impl Edge {
    /// The edge; `tokens` signs and checks access tokens (the same key on every replica), and
    /// `seen` keeps the Seqs used within the window for every replica sharing it.
    pub fn new(
        config: &CecConfig,
        upstreams: Upstreams,
        clock: SharedClock,
        tokens: crate::token::TokenKey,
        seen: SharedBus,
    ) -> Result<Self, CecError> {
        let mut peers = HashMap::new();
        for p in &config.peers {
            p.validate()?;
            peers.insert(
                p.operator_id.clone(),
                Peer {
                    secrets: p.inbound.secrets()?,
                    config: p.clone(),
                },
            );
        }
        let mut prefix = config.prefix.clone();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(Self {
            prefix,
            window: chrono::Duration::seconds(
                i64::try_from(config.timestamp_window_s).unwrap_or(300),
            ),
            ttl: chrono::Duration::seconds(i64::try_from(config.token_ttl_s).unwrap_or(7_200)),
            peers,
            tokens,
            seen,
            seen_here: InProcessBus::new(),
            upstreams,
            clock,
        })
    }

    /// Where a request goes: its interface, or `None` outside the prefix (404).
    fn interface<'p>(&self, path: &'p str) -> Option<&'p str> {
        path.strip_prefix(&self.prefix)
    }

    /// What can be checked before a byte of the body is read or parsed: the interface is ours,
    /// and every interface but `query_token` brings a genuine, unexpired token of a configured
    /// peer. A refusal is the answer to send as it is: signed for the token's peer when the token
    /// is genuine (an expired one, say), unsigned when nothing says who sent the request.
    pub fn precheck(&self, path: &str, bearer: Option<&str>) -> Result<(), (u16, Vec<u8>)> {
        let interface = self.interface(path).ok_or((404, Vec::new()))?;
        if interface == "query_token" {
            return Ok(());
        }
        let token = bearer.ok_or_else(|| unsigned(Ret::BadToken, "no token"))?;
        let (owner, expires) = self
            .tokens
            .issued_to(token)
            .map_err(|e| unsigned(Ret::BadToken, &e.to_string()))?;
        let peer = self
            .peers
            .get(owner)
            .ok_or_else(|| unsigned(Ret::BadToken, "token of no configured peer"))?;
        if self.clock.now().timestamp() >= expires {
            tracing::info!(interface, peer = %peer.config.name, "T/CEC 102 token expired");
            let response =
                Response::seal(&peer.secrets, Ret::BadToken, Ret::BadToken.message(), None);
            return Err((200, serde_json::to_vec(&response).unwrap_or_default()));
        }
        Ok(())
    }

    /// Answers one POST: the HTTP status and the body.
    pub async fn handle(&self, path: &str, bearer: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        if let Err(refused) = self.precheck(path, bearer) {
            return refused;
        }
        let Some(interface) = self.interface(path) else {
            return (404, Vec::new());
        };
        let request = match Request::parse(body) {
            Ok(r) => r,
            Err(error) => {
                tracing::info!(interface, %error, "T/CEC 102 request refused");
                return unsigned(error.ret(), &error.to_string());
            }
        };
        let Some(peer) = self.peers.get(&request.operator_id) else {
            tracing::info!(interface, operator = %request.operator_id, "T/CEC 102 request from an unknown operator");
            return unsigned(Ret::BadEnvelope, "unknown OperatorID");
        };
        let answer = match self.admit(peer, interface, &request, bearer).await {
            Ok(payload) => self.answer(peer, interface, &request, payload).await,
            Err(e) => Err(e),
        };
        let response = match answer {
            Ok(mut value) => {
                peer.config.dialect.outbound(&mut value);
                let bytes = serde_json::to_vec(&value).unwrap_or_default();
                Response::seal(&peer.secrets, Ret::Ok, "", Some(&bytes))
            }
            Err((ret, why)) => {
                tracing::info!(interface, peer = %peer.config.name, ret = ret.code(), why, "T/CEC 102 request refused");
                Response::seal(&peer.secrets, ret, ret.message(), None)
            }
        };
        (200, serde_json::to_vec(&response).unwrap_or_default())
    }

    /// The checks, in order: signature, timestamp window, Seq once within its second, token;
    /// then the payload decrypted.
    async fn admit(
        &self,
        peer: &Peer,
        interface: &str,
        request: &Request,
        bearer: Option<&str>,
    ) -> Result<Value, (Ret, String)> {
        request.verify(&peer.secrets).map_err(refusal)?;
        let now = self.clock.now();
        let stamped = crate::parse_timestamp(&request.time_stamp)
            .ok_or_else(|| (Ret::BadEnvelope, "TimeStamp".to_owned()))?;
        if (now - stamped).abs() > self.window {
            return Err((
                Ret::BadEnvelope,
                format!("TimeStamp {} is outside the window", request.time_stamp),
            ));
        }
        if !self.first_use(peer, request).await {
            return Err((
                Ret::BadEnvelope,
                format!("Seq {} repeated within {}", request.seq, request.time_stamp),
            ));
        }
        if interface != "query_token" {
            let token = bearer.ok_or_else(|| (Ret::BadToken, "no token".to_owned()))?;
            self.tokens
                .check(token, &peer.config.operator_id, now)
                .map_err(|e| (Ret::BadToken, e.to_string()))?;
        }
        let bytes = peer.secrets.decrypt(&request.data).map_err(refusal)?;
        let mut value: Value = serde_json::from_slice(&bytes)
            .map_err(|_| (Ret::BadPayload, "Data is not JSON".to_owned()))?;
        peer.config.dialect.inbound(&mut value);
        Ok(value)
    }

    /// Whether this is the first request of the peer with its TimeStamp and Seq, on any
    /// replica, while the TimeStamp is within the window. While the shared store cannot be
    /// reached, this replica's own marks stand in (and the outage is logged).
    async fn first_use(&self, peer: &Peer, request: &Request) -> bool {
        let key = format!(
            "cec-seq:{}:{}:{}",
            peer.config.operator_id, request.time_stamp, request.seq
        );
        // A TimeStamp stays acceptable until it is a window old, from as much as a window ahead.
        let ttl = (self.window * 2)
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(600));
        let here = self.seen_here.first_use(&key, ttl).await.unwrap_or(false);
        match self.seen.first_use(&key, ttl).await {
            Ok(first) => first,
            Err(error) => {
                tracing::warn!(%error, "T/CEC 102 replay store unreachable; checking this replica's Seqs only");
                here
            }
        }
    }

    async fn answer(
        &self,
        peer: &Peer,
        interface: &str,
        request: &Request,
        payload: Value,
    ) -> Result<Value, (Ret, String)> {
        match interface {
            "query_token" => Ok(self.issue_token(peer, request, &payload)),
            "query_stations_info" => self.stations_info(peer, &payload).await,
            "query_station_status" => self.station_status(peer, &payload).await,
            "query_station_stats" => self.station_stats(peer, &payload).await,
            "query_equip_business_policy" => self.business_policy(peer, &payload).await,
            "notification_stationStatus" => self.received_status(peer, &payload).await,
            "notification_equip_charge_status" => self.received_charge_status(peer, &payload).await,
            "notification_charge_order_info" => self.received_order(peer, &payload).await,
            "check_charge_orders" => self.check_orders(peer, &payload).await,
            other => Err((Ret::BadPayload, format!("no interface {other}"))),
        }
    }

    /// `query_token` (102.4 Appendix A): the peer proves itself with its OperatorSecret.
    fn issue_token(&self, peer: &Peer, request: &Request, payload: &Value) -> Value {
        let claimed = payload["OperatorID"].as_str().unwrap_or_default();
        let secret = payload["OperatorSecret"].as_str().unwrap_or_default();
        let fail = |reason: i32| json!({"OperatorID": claimed, "SuccStat": 1, "AccessToken": "", "TokenAvailableTime": 0, "FailReason": reason});
        if claimed != request.operator_id {
            return fail(1);
        }
        if secret != peer.secrets.operator_secret {
            return fail(2);
        }
        let expires = self.clock.now() + self.ttl;
        let token = self.tokens.issue(&peer.config.operator_id, expires);
        json!({
            "OperatorID": claimed,
            "SuccStat": 0,
            "AccessToken": token,
            "TokenAvailableTime": self.ttl.num_seconds(),
            "FailReason": 0,
        })
    }
}

/// A text field that a peer may send as a string or a number.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A number that a peer may send as a number or a string.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A payload time field (`yyyy-MM-dd HH:mm:ss`, China time).
fn time_of(p: &Value, field: &str) -> Result<DateTime<Utc>, (Ret, String)> {
    p[field]
        .as_str()
        .and_then(crate::parse_payload_time)
        .ok_or_else(|| (Ret::BadPayload, format!("{field} is yyyy-MM-dd HH:mm:ss")))
}

/// An answer that cannot be signed: the sender is unknown or the envelope unreadable.
fn unsigned(ret: Ret, msg: &str) -> (u16, Vec<u8>) {
    let response = Response {
        ret: ret.code(),
        msg: format!("{} ({msg})", ret.message()),
        data: String::new(),
        sig: String::new(),
    };
    (200, serde_json::to_vec(&response).unwrap_or_default())
}
