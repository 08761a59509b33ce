//! The T/CEC 102 edge (REQ BASE-2): an HTTPS listener beside the gRPC one, under a configurable
//! prefix such as `/evcs/v1/`, where regulator and operator platforms call Chargemesh the way
//! they call any operator platform. Each request is checked in order — its envelope (`Ret`
//! 4003), its sender among the configured peers, its signature (4001, before anything is
//! decrypted), its timestamp within the window and its `Seq` not repeated within its second
//! (4003), and its token (4002) — then answered from the mesh as the peer's principal: a
//! regulator peer sees its area, an operator peer its own stations.

pub use chargemesh_cec::client;
pub use chargemesh_cec::map;
pub use chargemesh_cec::peers::{PeerAccess, PeerConfig, SecretsConfig};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use chargemesh_kit::tls::MeshChannel;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use chargemesh_cec::{CecError, Dialect, Request, Response, Ret, Secrets};
use chargemesh_kit::Principal;
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::identity::PRINCIPAL_METADATA_KEY;
use chargemesh_kit::tls::{self, ClientAuth, TlsFiles};
use chargemesh_proto::regulator::v1 as reg;
use chargemesh_proto::regulator::v1::regulator_service_client::RegulatorServiceClient;

use crate::GatewayError;

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

/// The edge's state: peers, issued tokens and the Seqs seen within the window.
pub struct Edge {
    prefix: String,
    window: chrono::Duration,
    ttl: chrono::Duration,
    peers: HashMap<String, Peer>,
    tokens: chargemesh_cec::token::TokenKey,
    seen: Mutex<HashMap<String, BTreeMap<String, HashSet<String>>>>,
    asset: MeshChannel,
    metering: MeshChannel,
    clock: SharedClock,
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
    /// The edge; `tokens` signs and checks access tokens (the same key on every replica).
    pub fn new(
        config: &CecConfig,
        asset: MeshChannel,
        metering: MeshChannel,
        clock: SharedClock,
        tokens: chargemesh_cec::token::TokenKey,
    ) -> Result<Self, CecError> {
        let mut peers = HashMap::new();
        for p in &config.peers {
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
            seen: Mutex::new(HashMap::new()),
            asset,
            metering,
            clock,
        })
    }

    /// Answers one POST: the HTTP status and the body.
    pub async fn handle(&self, path: &str, bearer: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
        let Some(interface) = path.strip_prefix(&self.prefix) else {
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
        let answer = match self.admit(peer, interface, &request, bearer) {
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
    fn admit(
        &self,
        peer: &Peer,
        interface: &str,
        request: &Request,
        bearer: Option<&str>,
    ) -> Result<Value, (Ret, String)> {
        request.verify(&peer.secrets).map_err(refusal)?;
        let now = self.clock.now();
        let stamped = chargemesh_cec::parse_timestamp(&request.time_stamp)
            .ok_or_else(|| (Ret::BadEnvelope, "TimeStamp".to_owned()))?;
        if (now - stamped).abs() > self.window {
            return Err((
                Ret::BadEnvelope,
                format!("TimeStamp {} is outside the window", request.time_stamp),
            ));
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let by_second = seen.entry(peer.config.operator_id.clone()).or_default();
            let oldest = chargemesh_cec::timestamp(now - self.window);
            by_second.retain(|second, _| second.as_str() >= oldest.as_str());
            if !by_second
                .entry(request.time_stamp.clone())
                .or_default()
                .insert(request.seq.clone())
            {
                return Err((
                    Ret::BadEnvelope,
                    format!("Seq {} repeated within {}", request.seq, request.time_stamp),
                ));
            }
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

    fn client(&self) -> RegulatorServiceClient<MeshChannel> {
        RegulatorServiceClient::new(self.asset.clone())
    }

    /// A mesh request made as the peer's principal, which the services trust from the
    /// gateway's certificate.
    fn as_peer<T>(&self, peer: &Peer, message: T) -> tonic::Request<T> {
        as_principal(&peer.principal(), message)
    }

    /// Every station the peer sees, changed since `since` when given, in station order.
    async fn stations(
        &self,
        peer: &Peer,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<reg::StationRecord>, (Ret, String)> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .client()
                .list_stations(self.as_peer(
                    peer,
                    reg::ListStationsRequest {
                        updated_since: since.map(chargemesh_kit::time::to_timestamp),
                        page_size: 100,
                        page_token: token,
                    },
                ))
                .await
                .map_err(|s| (Ret::SystemError, s.message().to_owned()))?
                .into_inner();
            out.extend(
                page.stations
                    .into_iter()
                    .filter(|r| r.station.as_ref().is_some_and(|s| peer.sees(s))),
            );
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        out.sort_by(|a, b| {
            let key = |r: &reg::StationRecord| {
                r.station
                    .as_ref()
                    .map(|s| s.station_id.clone())
                    .unwrap_or_default()
            };
            key(a).cmp(&key(b))
        });
        Ok(out)
    }

    /// `query_stations_info`: paged, optionally only what changed since LastQueryTime.
    async fn stations_info(&self, peer: &Peer, p: &Value) -> Result<Value, (Ret, String)> {
        let since = match p["LastQueryTime"].as_str().filter(|s| !s.trim().is_empty()) {
            Some(text) => Some(chargemesh_cec::parse_payload_time(text).ok_or_else(|| {
                (
                    Ret::BadPayload,
                    "LastQueryTime is yyyy-MM-dd HH:mm:ss".to_owned(),
                )
            })?),
            None => None,
        };
        let page_no = p["PageNo"].as_u64().unwrap_or(1).max(1);
        let page_size = p["PageSize"].as_u64().unwrap_or(10).clamp(1, 100);
        let stations = self.stations(peer, since).await?;
        let total = stations.len() as u64;
        let page_count = total.div_ceil(page_size).max(1);
        let start = usize::try_from((page_no - 1) * page_size).unwrap_or(usize::MAX);
        let items: Vec<Value> = stations
            .iter()
            .skip(start)
            .take(usize::try_from(page_size).unwrap_or(10))
            .map(map::station_info)
            .collect();
        Ok(json!({
            "PageNo": page_no,
            "PageCount": page_count,
            "ItemSize": total,
            "StationInfos": items,
        }))
    }

    /// The operator of each station id the peer named, from what it sees.
    async fn keys(
        &self,
        peer: &Peer,
        ids: &[String],
    ) -> Result<Vec<(String, reg::StationRecord)>, (Ret, String)> {
        let stations = self.stations(peer, None).await?;
        Ok(ids
            .iter()
            .filter_map(|id| {
                stations
                    .iter()
                    .find(|r| r.station.as_ref().is_some_and(|s| &s.station_id == id))
                    .map(|r| (id.clone(), r.clone()))
            })
            .collect())
    }

    /// `query_station_status`: up to 50 stations.
    async fn station_status(&self, peer: &Peer, p: &Value) -> Result<Value, (Ret, String)> {
        let ids: Vec<String> = p["StationIDs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() || ids.len() > 50 {
            return Err((Ret::BadPayload, "StationIDs names 1 to 50 stations".into()));
        }
        let keys: Vec<reg::StationKey> = self
            .keys(peer, &ids)
            .await?
            .into_iter()
            .filter_map(|(_, r)| {
                r.station.map(|s| reg::StationKey {
                    operator_id: s.operator_id,
                    station_id: s.station_id,
                })
            })
            .collect();
        let statuses = if keys.is_empty() {
            Vec::new()
        } else {
            self.client()
                .get_station_status(
                    self.as_peer(peer, reg::GetStationStatusRequest { stations: keys }),
                )
                .await
                .map_err(|s| (Ret::SystemError, s.message().to_owned()))?
                .into_inner()
                .stations
        };
        Ok(json!({
            "Total": statuses.len(),
            "StationStatusInfos": statuses.iter().map(map::station_status_info).collect::<Vec<_>>(),
        }))
    }

    /// `query_station_stats`: energy per station, equipment and connector over whole days.
    async fn station_stats(&self, peer: &Peer, p: &Value) -> Result<Value, (Ret, String)> {
        let id = p["StationID"].as_str().unwrap_or_default().to_owned();
        let day = |field: &str| {
            p[field]
                .as_str()
                .and_then(|t| chrono::NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d").ok())
                .ok_or_else(|| (Ret::BadPayload, format!("{field} is yyyy-MM-dd")))
        };
        let (first, last) = (day("StartTime")?, day("EndTime")?);
        if last < first {
            return Err((Ret::BadPayload, "EndTime is not before StartTime".into()));
        }
        let Some((_, record)) = self
            .keys(peer, std::slice::from_ref(&id))
            .await?
            .into_iter()
            .next()
        else {
            return Err((Ret::BadPayload, format!("no station {id}")));
        };
        let station = record.station.unwrap_or_default();
        let start = chargemesh_kit::clock::china_day(first).0;
        let end = chargemesh_kit::clock::china_day(last).1;
        let stats = self
            .client()
            .get_station_stats(self.as_peer(
                peer,
                reg::GetStationStatsRequest {
                    operator_id: station.operator_id,
                    station_id: station.station_id,
                    start_time: Some(chargemesh_kit::time::to_timestamp(start)),
                    end_time: Some(chargemesh_kit::time::to_timestamp(end)),
                },
            ))
            .await
            .map_err(|s| (Ret::BadPayload, s.message().to_owned()))?
            .into_inner();
        Ok(map::station_stats(
            &stats,
            &first.format("%Y-%m-%d").to_string(),
            &last.format("%Y-%m-%d").to_string(),
        ))
    }

    /// The pile and station of a connector among what the peer sees.
    async fn locate(
        &self,
        peer: &Peer,
        connector: &str,
    ) -> Result<(String, String), (Ret, String)> {
        self.stations(peer, None)
            .await?
            .iter()
            .find_map(|r| {
                let pile = r
                    .piles
                    .iter()
                    .find(|p| p.connectors.iter().any(|c| c.connector_id == connector))?;
                Some((r.station.as_ref()?.station_id.clone(), pile.pile_id.clone()))
            })
            .ok_or_else(|| (Ret::BadPayload, format!("no connector {connector}")))
    }

    /// `notification_stationStatus` from a platform-mode operator: the same status telemetry its
    /// piles would send, deduplicated and validated by the same ingest; `Status` 0 when kept, 1
    /// when refused.
    async fn received_status(&self, peer: &Peer, p: &Value) -> Result<Value, (Ret, String)> {
        let connectors = Dialect::status_received(p);
        if connectors.is_empty() {
            return Err((Ret::BadPayload, "ConnectorStatusInfo is required".into()));
        }
        let mut reported = Vec::with_capacity(connectors.len());
        for c in &connectors {
            let connector = text(&c["ConnectorID"])
                .ok_or_else(|| (Ret::BadPayload, "ConnectorID is required".to_owned()))?;
            reported.push((connector, c["Status"].as_i64().unwrap_or(-1)));
        }
        let refused = self.report_statuses(peer, &reported).await?;
        Ok(json!({"Status": i32::from(refused)}))
    }

    /// `notification_equip_charge_status`: the connector's status in it becomes the same status
    /// telemetry as `notification_stationStatus` (so a charging connector shows as charging);
    /// the session's energy and money reach metering with its order
    /// (`notification_charge_order_info`). `SuccStat` 0 when kept, 1 when refused.
    async fn received_charge_status(&self, peer: &Peer, p: &Value) -> Result<Value, (Ret, String)> {
        let seq = p["StartChargeSeq"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| (Ret::BadPayload, "StartChargeSeq is required".to_owned()))?;
        let connector = text(&p["ConnectorID"])
            .ok_or_else(|| (Ret::BadPayload, "ConnectorID is required".to_owned()))?;
        let code = p["ConnectorStatus"]
            .as_i64()
            .ok_or_else(|| (Ret::BadPayload, "ConnectorStatus is required".to_owned()))?;
        let refused = self.report_statuses(peer, &[(connector, code)]).await?;
        Ok(json!({"StartChargeSeq": seq, "SuccStat": i32::from(refused)}))
    }

    /// Sends connector statuses (CEC codes) as the peer's telemetry; true when any was refused.
    async fn report_statuses(
        &self,
        peer: &Peer,
        reported: &[(String, i64)],
    ) -> Result<bool, (Ret, String)> {
        use chargemesh_proto::telemetry::v1 as tm;
        use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
        let reporter = peer.reporter()?;
        let now = self.clock.now();
        let mut messages = Vec::with_capacity(reported.len());
        for (connector, code) in reported {
            let code = *code;
            let state = match code {
                0 => tm::ConnectorState::Offline,
                1 => tm::ConnectorState::Idle,
                2 => tm::ConnectorState::OccupiedNotCharging,
                3 => tm::ConnectorState::Charging,
                4 => tm::ConnectorState::Reserved,
                255 => tm::ConnectorState::Fault,
                _ => {
                    return Err((
                        Ret::BadPayload,
                        format!("Status {code} is not a CEC status"),
                    ));
                }
            };
            let (_, pile) = self.locate(peer, connector).await?;
            let second = chargemesh_cec::timestamp(now);
            messages.push(tm::TelemetryMessage {
                sequence: report_sequence(&[connector, &code.to_string(), &second]),
                operator_id: reporter.operator_id().unwrap_or_default().to_owned(),
                pile_id: pile,
                connector_id: connector.clone(),
                observe_time: Some(chargemesh_kit::time::to_timestamp(now)),
                body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                    state: state as i32,
                    fault_code: if code == 255 {
                        "CEC-255".into()
                    } else {
                        String::new()
                    },
                    fault_text: String::new(),
                })),
            });
        }
        let mut pending: HashSet<u64> = messages.iter().map(|m| m.sequence).collect();
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        sender
            .send(tm::ConnectRequest { messages })
            .await
            .map_err(|_| (Ret::SystemError, "telemetry unavailable".to_owned()))?;
        let mut answers = TelemetryServiceClient::new(self.asset.clone())
            .connect(as_principal(
                &reporter,
                tokio_stream::wrappers::ReceiverStream::new(receiver),
            ))
            .await
            .map_err(|s| (Ret::SystemError, s.message().to_owned()))?
            .into_inner();
        let mut refused = false;
        while !pending.is_empty() {
            let answer = answers
                .message()
                .await
                .map_err(|s| (Ret::SystemError, s.message().to_owned()))?;
            let Some(answer) = answer else {
                break;
            };
            match answer.body {
                Some(tm::connect_response::Body::Acknowledgement(a)) => {
                    pending.retain(|s| *s < a.first_sequence || *s > a.last_sequence);
                }
                Some(tm::connect_response::Body::Rejection(r)) => {
                    tracing::info!(peer = %peer.config.name, reason = %r.reason, "a received status was refused");
                    refused = true;
                    pending.remove(&r.sequence);
                }
                _ => {}
            }
        }
        drop(sender);
        if !pending.is_empty() {
            return Err((Ret::SystemError, "telemetry did not acknowledge".into()));
        }
        Ok(refused)
    }

    /// `notification_charge_order_info` from a platform-mode operator: the same order the gRPC
    /// path reports, its register readings rebuilt from the ChargeDetails so each period keeps its
    /// energy; `ConfirmResult` 0 when kept (or the same kept before), 1 when it disputes an order
    /// kept under its StartChargeSeq.
    async fn received_order(&self, peer: &Peer, p: &Value) -> Result<Value, (Ret, String)> {
        use chargemesh_proto::metering::v1 as mt;
        use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
        let reporter = peer.reporter()?;
        let seq = text(&p["StartChargeSeq"])
            .ok_or_else(|| (Ret::BadPayload, "StartChargeSeq is required".to_owned()))?;
        let connector = text(&p["ConnectorID"])
            .ok_or_else(|| (Ret::BadPayload, "ConnectorID is required".to_owned()))?;
        let (start, end) = (time_of(p, "StartTime")?, time_of(p, "EndTime")?);
        let total = number(&p["TotalPower"])
            .ok_or_else(|| (Ret::BadPayload, "TotalPower is required".to_owned()))?;
        let mut samples = Vec::new();
        let mut register = 0f64;
        for d in p["ChargeDetails"].as_array().into_iter().flatten() {
            let (Ok(from), Ok(to), Some(energy)) = (
                time_of(d, "DetailStartTime"),
                time_of(d, "DetailEndTime"),
                number(&d["DetailPower"]),
            ) else {
                return Err((
                    Ret::BadPayload,
                    "ChargeDetails need their times and DetailPower".into(),
                ));
            };
            if samples.is_empty() {
                samples.push((from, register));
            }
            register += energy;
            samples.push((to, register));
        }
        if samples.len() < 2 {
            samples = vec![(start, 0.0), (end, total)];
        }
        let (station, pile) = self.locate(peer, &connector).await?;
        let report = mt::ReportChargeOrderRequest {
            operator_id: reporter.operator_id().unwrap_or_default().to_owned(),
            order_id: seq.clone(),
            station_id: station,
            pile_id: pile,
            connector_id: connector.clone(),
            start_time: Some(chargemesh_kit::time::to_timestamp(start)),
            end_time: Some(chargemesh_kit::time::to_timestamp(end)),
            stop_reason: i32::try_from(p["StopReason"].as_i64().unwrap_or(0)).unwrap_or(0),
            samples: samples
                .into_iter()
                .map(|(at, kwh)| mt::MeterSample {
                    sample_time: Some(chargemesh_kit::time::to_timestamp(at)),
                    register_kwh: format!("{kwh:.3}"),
                })
                .collect(),
            steps: None,
            reported_energy_kwh: format!("{total:.3}"),
            reported_total_money: number(&p["TotalMoney"])
                .map(|m| format!("{m:.2}"))
                .unwrap_or_default(),
        };
        let outcome = MeteringServiceClient::new(self.metering.clone())
            .report_charge_order(as_principal(&reporter, report))
            .await;
        let confirm = match outcome {
            Ok(_) => 0,
            Err(status) if status.code() == tonic::Code::AlreadyExists => 1,
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
                ) =>
            {
                return Err((Ret::BadPayload, status.message().to_owned()));
            }
            Err(status) => return Err((Ret::SystemError, status.message().to_owned())),
        };
        Ok(json!({"StartChargeSeq": seq, "ConnectorID": connector, "ConfirmResult": confirm}))
    }

    /// `check_charge_orders`: the peer's totals reconciled against the orders kept.
    async fn check_orders(&self, peer: &Peer, p: &Value) -> Result<Value, (Ret, String)> {
        use chargemesh_proto::metering::v1 as mt;
        use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
        let reporter = peer.reporter()?;
        let orders = p["ChargeOrders"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| mt::ReconciledOrder {
                order_id: text(&o["StartChargeSeq"]).unwrap_or_default(),
                energy_kwh: number(&o["TotalPower"])
                    .map(|v| format!("{v:.3}"))
                    .unwrap_or_default(),
                total_money: number(&o["TotalMoney"])
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_default(),
            })
            .collect();
        let check = text(&p["CheckOrderSeq"]).unwrap_or_default();
        let request = mt::ReconcileChargeOrdersRequest {
            operator_id: reporter.operator_id().unwrap_or_default().to_owned(),
            check_order_seq: check.clone(),
            start_time: Some(chargemesh_kit::time::to_timestamp(time_of(p, "StartTime")?)),
            end_time: Some(chargemesh_kit::time::to_timestamp(time_of(p, "EndTime")?)),
            orders,
        };
        let answer = MeteringServiceClient::new(self.metering.clone())
            .reconcile_charge_orders(as_principal(&reporter, request))
            .await
            .map_err(|s| (Ret::BadPayload, s.message().to_owned()))?
            .into_inner();
        let decimal = |t: &str| t.parse::<f64>().unwrap_or(0.0);
        let disputes: Vec<Value> = answer
            .disputes
            .iter()
            .map(|d| {
                json!({
                    "StartChargeSeq": d.order_id,
                    "TotalPower": decimal(&d.energy_kwh),
                    "TotalMoney": decimal(&d.total_money),
                    "DisputeReason": d.reason,
                })
            })
            .collect();
        Ok(json!({
            "CheckOrderSeq": check,
            "StartTime": p["StartTime"],
            "EndTime": p["EndTime"],
            "TotalDisputeOrder": answer.dispute_count,
            "TotalDisputePower": decimal(&answer.dispute_energy_kwh),
            "TotalDisputeMoney": decimal(&answer.dispute_money),
            "DisputeOrders": disputes,
        }))
    }

    /// `query_equip_business_policy`: the price board of the connector's station.
    async fn business_policy(&self, peer: &Peer, p: &Value) -> Result<Value, (Ret, String)> {
        let connector = p["ConnectorID"].as_str().unwrap_or_default();
        let seq = p["EquipBizSeq"].as_str().unwrap_or_default();
        let stations = self.stations(peer, None).await?;
        let found = stations.iter().find(|r| {
            r.piles
                .iter()
                .any(|pile| pile.connectors.iter().any(|c| c.connector_id == connector))
        });
        Ok(match found.and_then(|r| r.station.as_ref()) {
            Some(station) => {
                let infos = map::policy_infos(&station.price_board);
                json!({
                    "EquipBizSeq": seq,
                    "ConnectorID": connector,
                    "SuccStat": 0,
                    "FailReason": 0,
                    "SumPeriod": infos.len(),
                    "PolicyInfos": infos,
                })
            }
            None => json!({
                "EquipBizSeq": seq,
                "ConnectorID": connector,
                "SuccStat": 1,
                "FailReason": 1,
                "SumPeriod": 0,
                "PolicyInfos": [],
            }),
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
        .and_then(chargemesh_cec::parse_payload_time)
        .ok_or_else(|| (Ret::BadPayload, format!("{field} is yyyy-MM-dd HH:mm:ss")))
}

fn as_principal<T>(principal: &Principal, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert_bin(
        PRINCIPAL_METADATA_KEY,
        tonic::metadata::MetadataValue::from_bytes(&principal.to_metadata_bytes()),
    );
    request
}

/// The sequence a received status report is deduplicated by: the same report again has the same
/// one (FNV-1a of its connector, status and the second it arrived in, kept within 63 bits).
fn report_sequence(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    (hash >> 1).max(1)
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

/// Serves the T/CEC 102 edge on `listener` (HTTPS, HTTP/1.1) until `shutdown` resolves.
pub async fn serve(
    config: &CecConfig,
    tls_files: &TlsFiles,
    asset_url: &str,
    metering_url: &str,
    listener: TcpListener,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    let client = Arc::new(tls::client_config(tls_files)?);
    let asset = tls::mesh_channel(asset_url, client.clone())?;
    let metering = tls::mesh_channel(metering_url, client)?;
    // Every gateway replica mounts the same certificate Secret: the same token key.
    let material = std::fs::read(&tls_files.key_file)
        .map_err(|e| GatewayError::Config(format!("{}: {e}", tls_files.key_file.display())))?;
    let tokens = chargemesh_cec::token::TokenKey::derive(&material);
    let edge = Arc::new(
        Edge::new(config, asset, metering, clock, tokens)
            .map_err(|e| GatewayError::Config(e.to_string()))?,
    );
    // The edge's certificate follows its files, as the gRPC edge's does.
    let server = tls::ReloadingServerConfig::load_with_alpn(
        tls_files.clone(),
        ClientAuth::Optional,
        vec![b"http/1.1".to_vec()],
    )?;
    let watcher = server.watch(std::time::Duration::from_secs(30));
    let result = accept_loop(edge, server, listener, shutdown).await;
    watcher.abort();
    result
}

/// Serves T/CEC 102 connections until `shutdown`; each takes the current certificate.
async fn accept_loop(
    edge: Arc<Edge>,
    server: tls::ReloadingServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GatewayError> {
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "T/CEC 102 accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(server.current());
        let edge = edge.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let edge = edge.clone();
                    async move {
                        let (status, body) = if req.method() != http::Method::POST {
                            (405, Vec::new())
                        } else {
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
                            match req.into_body().collect().await {
                                Ok(collected) => {
                                    edge.handle(&path, bearer.as_deref(), &collected.to_bytes())
                                        .await
                                }
                                Err(_) => (400, Vec::new()),
                            }
                        };
                        let response = http::Response::builder()
                            .status(status)
                            .header(http::header::CONTENT_TYPE, "application/json;charset=utf-8")
                            .body(Full::new(Bytes::from(body)));
                        Ok::<_, http::Error>(
                            response
                                .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new()))),
                        )
                    }
                });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "T/CEC 102 connection ended");
            }
        });
    }
}
