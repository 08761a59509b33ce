//! `chargemesh sim --protocol ocpp1.6|ocpp2.0.1`: simulated OCPP charge points, written against
//! the wire rather than our own types, so they exercise the gateway's OCPP edge as a charger
//! would. Each connects to `wss://EDGE/ocpp/{chargePointId}` with security profile 3 (a
//! certificate of the development PKI) or profile 2 (HTTP Basic), boots, heartbeats, reports its
//! connectors' status, meter values and transactions as [`crate::sim::SimConnector`] lives them,
//! obeys remote start and stop, availability and trigger requests, and reconnects with a
//! jittered backoff when the connection goes.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use chargemesh_kit::tls::{self, TlsFiles};
use chargemesh_proto::telemetry::v1 as tm;
use tm::telemetry_message::Body;

use crate::link::{Backoff, reconnect_delay};
use crate::sim::{Rng, SimConnector};

/// The OCPP version a simulated charge point speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OcppVersion {
    #[value(name = "ocpp1.6")]
    V16,
    #[value(name = "ocpp2.0.1")]
    V201,
}

impl OcppVersion {
    pub fn subprotocol(self) -> &'static str {
        match self {
            OcppVersion::V16 => "ocpp1.6",
            OcppVersion::V201 => "ocpp2.0.1",
        }
    }
}

/// How a simulated charge point proves who it is.
#[derive(Debug, Clone)]
pub enum Credential {
    /// Security profile 3: a client certificate (the files' CA is the edge's).
    Certificate(TlsFiles),
    /// Security profile 2: HTTP Basic with the charge point id and this password, trusting
    /// the CA in the file.
    Password { ca_file: PathBuf, password: String },
}

/// One simulated charge point.
#[derive(Debug, Clone)]
pub struct ChargePointOptions {
    /// `wss://HOST:PORT/ocpp/`: the charge point id follows.
    pub base_url: String,
    pub charge_point_id: String,
    pub version: OcppVersion,
    pub credential: Credential,
    /// Its connectors in registry order: OCPP connector (EVSE) n is the n-th.
    pub connectors: Vec<SimConnector>,
    pub tick: Duration,
    pub seed: u64,
}

/// What the CSMS asked that changes the simulation.
#[derive(Debug)]
enum Asked {
    Start {
        connector: usize,
        token: String,
        remote_start_id: Option<i64>,
    },
    Stop {
        transaction: String,
    },
    Statuses,
}

/// A CALL to send, and what its answer means.
#[derive(Debug, Clone, Default)]
struct Pending {
    action: &'static str,
    payload: Value,
    /// The connector whose transaction a StartTransaction answer names.
    starts: Option<usize>,
    /// 1.6: the connector whose running transaction id the payload takes when it is sent (the
    /// start's answer may not have come when the call was queued).
    of: Option<usize>,
    /// 1.6: the transaction ends with this call.
    ends: bool,
}

/// What one connection remembers of its transactions.
#[derive(Debug, Default)]
struct Transactions {
    /// The transaction running on each connector (1.6: the id given; 2.0.1: ours).
    running: HashMap<usize, String>,
    /// 1.6: connectors with a session begun here, whether or not its id came back yet.
    open: std::collections::HashSet<usize>,
    /// 2.0.1: the next seqNo of each transaction.
    seq: HashMap<String, u32>,
    /// 2.0.1: the remoteStartId of a start the CSMS asked for, by connector.
    remote: HashMap<usize, i64>,
    next: u64,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A register in kWh (as telemetry writes it) in Wh.
fn wh(kwh: &str) -> i64 {
    kwh.parse::<Decimal>()
        .ok()
        .and_then(|d| (d * Decimal::from(1000)).round().to_string().parse().ok())
        .unwrap_or(0)
}

fn status_16(state: i32) -> (&'static str, &'static str) {
    match tm::ConnectorState::try_from(state) {
        Ok(tm::ConnectorState::OccupiedNotCharging) => ("Preparing", "NoError"),
        Ok(tm::ConnectorState::Charging) => ("Charging", "NoError"),
        Ok(tm::ConnectorState::Fault) => ("Faulted", "OtherError"),
        _ => ("Available", "NoError"),
    }
}

fn status_201(state: i32) -> &'static str {
    match tm::ConnectorState::try_from(state) {
        Ok(tm::ConnectorState::OccupiedNotCharging | tm::ConnectorState::Charging) => "Occupied",
        Ok(tm::ConnectorState::Fault) => "Faulted",
        _ => "Available",
    }
}

impl Transactions {
    /// The CALLs that report what a connector (1-based `n`) lived through in one tick.
    fn calls(&mut self, version: OcppVersion, n: usize, body: &Body) -> Vec<Pending> {
        let plain = |action, payload| Pending {
            action,
            payload,
            ..Pending::default()
        };
        match (version, body) {
            (OcppVersion::V16, Body::Status(s)) => {
                let (status, error) = status_16(s.state);
                vec![plain(
                    "StatusNotification",
                    json!({ "connectorId": n, "errorCode": error, "status": status,
                            "vendorErrorCode": s.fault_code, "timestamp": now() }),
                )]
            }
            (OcppVersion::V16, Body::SessionStart(s)) => {
                let tag: String = s.authorization_ref.chars().take(20).collect();
                self.open.insert(n);
                vec![Pending {
                    action: "StartTransaction",
                    payload: json!({ "connectorId": n, "idTag": tag,
                                     "meterStart": wh(&s.meter_start_kwh), "timestamp": now() }),
                    starts: Some(n),
                    ..Pending::default()
                }]
            }
            (OcppVersion::V16, Body::Meter(m)) => vec![Pending {
                action: "MeterValues",
                payload: json!({ "connectorId": n, "meterValue": [{
                "timestamp": now(),
                "sampledValue": [
                    { "value": wh(&m.energy_kwh).to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh" },
                    { "value": format!("{:.0}", m.power_kw * 1000.0), "measurand": "Power.Active.Import", "unit": "W" },
                    { "value": format!("{:.0}", m.soc_percent), "measurand": "SoC", "unit": "Percent" },
                ]}]}),
                of: self.open.contains(&n).then_some(n),
                ..Pending::default()
            }],
            (OcppVersion::V16, Body::SessionEnd(e)) if self.open.remove(&n) => vec![Pending {
                action: "StopTransaction",
                payload: json!({ "meterStop": wh(&e.meter_stop_kwh), "timestamp": now(),
                                 "reason": if e.stop_reason == 3 { "Other" } else { "Local" } }),
                of: Some(n),
                ends: true,
                ..Pending::default()
            }],
            (OcppVersion::V201, Body::Status(s)) => vec![plain(
                "StatusNotification",
                json!({ "timestamp": now(), "connectorStatus": status_201(s.state),
                        "evseId": n, "connectorId": 1 }),
            )],
            (OcppVersion::V201, Body::SessionStart(s)) => {
                self.next += 1;
                let id = format!(
                    "SIM-{}-{}",
                    chrono::Utc::now().timestamp_millis(),
                    self.next
                );
                self.running.insert(n, id.clone());
                let mut info = json!({ "transactionId": id, "chargingState": "Charging" });
                let (trigger, kind) = match self.remote.remove(&n) {
                    Some(remote) => {
                        info["remoteStartId"] = json!(remote);
                        ("RemoteStart", "Central")
                    }
                    None => ("Authorized", "ISO14443"),
                };
                let token: String = s.authorization_ref.chars().take(36).collect();
                vec![plain(
                    "TransactionEvent",
                    json!({ "eventType": "Started", "timestamp": now(), "triggerReason": trigger,
                            "seqNo": self.seq_no(&id), "transactionInfo": info,
                            "idToken": { "idToken": token, "type": kind },
                            "evse": { "id": n, "connectorId": 1 },
                            "meterValue": [energy_201(wh(&s.meter_start_kwh), "Transaction.Begin")] }),
                )]
            }
            (OcppVersion::V201, Body::Meter(m)) => match self.running.get(&n).cloned() {
                Some(id) => vec![plain(
                    "TransactionEvent",
                    json!({ "eventType": "Updated", "timestamp": now(),
                            "triggerReason": "MeterValuePeriodic", "seqNo": self.seq_no(&id),
                            "transactionInfo": { "transactionId": id, "chargingState": "Charging" },
                            "meterValue": [energy_201(wh(&m.energy_kwh), "Sample.Periodic")] }),
                )],
                None => Vec::new(),
            },
            (OcppVersion::V201, Body::SessionEnd(e)) => match self.running.remove(&n) {
                Some(id) => {
                    let seq = self.seq_no(&id);
                    self.seq.remove(&id);
                    vec![plain(
                        "TransactionEvent",
                        json!({ "eventType": "Ended", "timestamp": now(),
                                "triggerReason": "StopAuthorized", "seqNo": seq,
                                "transactionInfo": { "transactionId": id,
                                    "stoppedReason": if e.stop_reason == 3 { "Other" } else { "Local" } },
                                "meterValue": [energy_201(wh(&e.meter_stop_kwh), "Transaction.End")] }),
                    )]
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Fills in the transaction id a 1.6 call takes when it is sent; `None` when the call has
    /// nothing to say any more (a stop of a start the CSMS never answered).
    fn ready(&mut self, mut pending: Pending) -> Option<Pending> {
        if let Some(n) = pending.of {
            let id = self.running.get(&n).and_then(|t| t.parse::<i64>().ok());
            match id {
                Some(id) => pending.payload["transactionId"] = json!(id),
                None if pending.ends => return None,
                None => {}
            }
            if pending.ends {
                self.running.remove(&n);
            }
        }
        Some(pending)
    }

    fn seq_no(&mut self, id: &str) -> u32 {
        let seq = self.seq.entry(id.to_owned()).or_insert(0);
        let now = *seq;
        *seq += 1;
        now
    }
}

fn energy_201(wh: i64, context: &str) -> Value {
    json!({ "timestamp": now(), "sampledValue": [{
        "value": wh, "context": context, "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": { "unit": "Wh" } }] })
}

/// The answer to a CALL from the CSMS, and what it asks of the simulation.
fn answer(version: OcppVersion, action: &str, payload: &Value) -> (Value, Option<Asked>) {
    let accepted = json!({ "status": "Accepted" });
    match (version, action) {
        (OcppVersion::V16, "RemoteStartTransaction") => (
            accepted,
            Some(Asked::Start {
                connector: payload["connectorId"].as_u64().unwrap_or(1) as usize,
                token: payload["idTag"].as_str().unwrap_or_default().to_owned(),
                remote_start_id: None,
            }),
        ),
        (OcppVersion::V16, "RemoteStopTransaction") => (
            accepted,
            Some(Asked::Stop {
                transaction: payload["transactionId"].to_string(),
            }),
        ),
        (OcppVersion::V201, "RequestStartTransaction") => (
            accepted,
            Some(Asked::Start {
                connector: payload["evseId"].as_u64().unwrap_or(1) as usize,
                token: payload["idToken"]["idToken"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                remote_start_id: payload["remoteStartId"].as_i64(),
            }),
        ),
        (OcppVersion::V201, "RequestStopTransaction") => (
            accepted,
            Some(Asked::Stop {
                transaction: payload["transactionId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            }),
        ),
        (_, "TriggerMessage") => (accepted, Some(Asked::Statuses)),
        (_, "ChangeAvailability" | "Reset" | "ChangeConfiguration") => (accepted, None),
        (_, "UnlockConnector") => (json!({ "status": "Unlocked" }), None),
        (OcppVersion::V16, "GetConfiguration") => (json!({ "configurationKey": [] }), None),
        (OcppVersion::V201, "GetVariables") => (json!({ "getVariableResult": [] }), None),
        (OcppVersion::V201, "SetVariables") => (json!({ "setVariableResult": [] }), None),
        _ => (Value::Null, None),
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket with the credential and subprotocol.
async fn connect(opts: &ChargePointOptions) -> anyhow::Result<Ws> {
    let url = format!("{}{}", opts.base_url, opts.charge_point_id);
    let authority = url
        .strip_prefix("wss://")
        .and_then(|rest| rest.split('/').next())
        .context("the OCPP URL is wss://HOST:PORT/...")?
        .to_owned();
    let (mut config, basic) = match &opts.credential {
        Credential::Certificate(files) => (tls::client_config(files)?, None),
        Credential::Password { ca_file, password } => (
            tls::anonymous_client_config(ca_file)?,
            Some(
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{password}", opts.charge_point_id)),
            ),
        ),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(&authority).await?;
    let host = authority
        .rsplit_once(':')
        .map_or(authority.as_str(), |(h, _)| h);
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static(opts.version.subprotocol()),
    );
    if let Some(basic) = basic {
        request
            .headers_mut()
            .insert("Authorization", format!("Basic {basic}").parse()?);
    }
    let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(ws)
}

/// Runs the charge point until the task is aborted, reconnecting when a connection goes.
pub async fn run(mut opts: ChargePointOptions) {
    let mut rng = Rng::new(opts.seed | 1);
    let mut failures = 0u32;
    loop {
        match connect(&opts).await {
            Ok(ws) => {
                failures = 0;
                match session(ws, &mut opts, &mut rng).await {
                    Ok(()) => {}
                    Err(error) => {
                        tracing::info!(charge_point = %opts.charge_point_id, %error, "simulated OCPP connection ended");
                    }
                }
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::info!(charge_point = %opts.charge_point_id, %error, "simulated OCPP charge point could not connect");
            }
        }
        let unit = (rng.draw() % 1000) as f64 / 1000.0;
        tokio::time::sleep(
            reconnect_delay(Backoff::default(), failures, unit).max(Duration::from_millis(200)),
        )
        .await;
    }
}

/// One connection: boot, then report and obey until it goes.
async fn session(mut ws: Ws, opts: &mut ChargePointOptions, rng: &mut Rng) -> anyhow::Result<()> {
    let version = opts.version;
    let mut ids = 0u64;
    let mut call = |action: &str, payload: &Value| {
        ids += 1;
        let id = format!("sim-{ids}");
        (id.clone(), json!([2, id, action, payload]).to_string())
    };
    let boot = match version {
        OcppVersion::V16 => {
            json!({ "chargePointVendor": "Chargemesh", "chargePointModel": "SIM-OCPP",
                                    "chargePointSerialNumber": opts.charge_point_id, "firmwareVersion": env!("CARGO_PKG_VERSION") })
        }
        OcppVersion::V201 => json!({ "reason": "PowerUp", "chargingStation": {
            "vendorName": "Chargemesh", "model": "SIM-OCPP", "serialNumber": opts.charge_point_id,
            "firmwareVersion": env!("CARGO_PKG_VERSION") } }),
    };
    // Boot until accepted, at the interval the CSMS names.
    let interval = loop {
        let (id, frame) = call("BootNotification", &boot);
        ws.send(Message::text(frame)).await?;
        let result = result_of(&mut ws, &id, version).await?;
        let interval = result["interval"].as_u64().unwrap_or(300).clamp(5, 3600);
        if result["status"] == "Accepted" {
            break interval;
        }
        tracing::info!(charge_point = %opts.charge_point_id, status = %result["status"], "boot not accepted; trying again after the interval");
        tokio::time::sleep(Duration::from_secs(interval)).await;
    };
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut transactions = Transactions::default();
    let statuses = |connectors: &[SimConnector], tx: &mut Transactions| -> Vec<Pending> {
        connectors
            .iter()
            .enumerate()
            .flat_map(|(i, c)| tx.calls(version, i + 1, &status_body(c)))
            .collect()
    };
    queue.extend(statuses(&opts.connectors, &mut transactions));
    let mut ticks = tokio::time::interval(opts.tick);
    let mut beats = tokio::time::interval(Duration::from_secs(interval));
    beats.tick().await;
    let mut outstanding: Option<(String, Pending)> = None;
    loop {
        while outstanding.is_none()
            && let Some(next) = queue.pop_front()
        {
            let Some(next) = transactions.ready(next) else {
                continue;
            };
            let (id, frame) = call(next.action, &next.payload);
            ws.send(Message::text(frame)).await?;
            outstanding = Some((id, next));
        }
        tokio::select! {
            _ = ticks.tick() => {
                for (i, c) in opts.connectors.iter_mut().enumerate() {
                    for body in c.tick(rng, opts.tick) {
                        queue.extend(transactions.calls(version, i + 1, &body));
                    }
                }
            }
            _ = beats.tick() => {
                queue.push_back(Pending { action: "Heartbeat", payload: json!({}), ..Pending::default() });
            }
            frame = ws.next() => {
                let Some(frame) = frame else { return Ok(()) };
                let Message::Text(text) = frame? else { continue };
                let value: Value = serde_json::from_str(text.as_str()).context("a frame that is not JSON")?;
                match value[0].as_u64() {
                    Some(2) => {
                        let (id, action) = (value[1].clone(), value[2].as_str().unwrap_or_default().to_owned());
                        let (reply, asked) = answer(version, &action, &value[3]);
                        let frame = if reply.is_null() {
                            json!([4, id, "NotImplemented", format!("{action} is not simulated"), {}])
                        } else {
                            json!([3, id, reply])
                        };
                        ws.send(Message::text(frame.to_string())).await?;
                        match asked {
                            Some(Asked::Start { connector, token, remote_start_id }) => {
                                if let Some(c) = opts.connectors.get_mut(connector.saturating_sub(1)) {
                                    c.start_order = Some((String::new(), token));
                                    if let Some(remote) = remote_start_id {
                                        transactions.remote.insert(connector, remote);
                                    }
                                }
                            }
                            Some(Asked::Stop { transaction }) => {
                                let on = transactions.running.iter().find(|(_, t)| **t == transaction).map(|(n, _)| *n);
                                if let Some(c) = on.and_then(|n| opts.connectors.get_mut(n - 1)) {
                                    c.stop_requested = true;
                                }
                            }
                            Some(Asked::Statuses) => queue.extend(statuses(&opts.connectors, &mut transactions)),
                            None => {}
                        }
                    }
                    Some(3 | 4) => {
                        if let Some((id, pending)) = outstanding.take() {
                            if value[1].as_str() != Some(id.as_str()) {
                                outstanding = Some((id, pending));
                                continue;
                            }
                            if value[0] == 4 {
                                tracing::warn!(charge_point = %opts.charge_point_id, action = pending.action, error = %value, "the CSMS refused a simulated CALL");
                            } else if let Some(n) = pending.starts {
                                let id = value[2]["transactionId"].to_string();
                                transactions.running.insert(n, id);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn status_body(c: &SimConnector) -> Body {
    Body::Status(tm::ConnectorStatus {
        state: c.state as i32,
        fault_code: String::new(),
        fault_text: String::new(),
    })
}

/// Waits for the answer to the CALL `id`, answering nothing else meanwhile (only the boot
/// waits so, before the CSMS may send anything).
async fn result_of(ws: &mut Ws, id: &str, version: OcppVersion) -> anyhow::Result<Value> {
    let _ = version;
    let wait = async {
        while let Some(frame) = ws.next().await {
            if let Message::Text(text) = frame? {
                let value: Value = serde_json::from_str(text.as_str())?;
                if value[1].as_str() == Some(id) {
                    return match value[0].as_u64() {
                        Some(3) => Ok(value[2].clone()),
                        _ => Err(anyhow::anyhow!("the CSMS answered {value}")),
                    };
                }
            }
        }
        Err(anyhow::anyhow!("the connection closed"))
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .context("no answer within a minute")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulated_session_is_reported_as_each_version_reports_it() {
        let mut tx = Transactions::default();
        let start = Body::SessionStart(tm::SessionStart {
            authorization_ref: "sim card 7".into(),
            meter_start_kwh: "1000.500".into(),
            ..Default::default()
        });
        let calls = tx.calls(OcppVersion::V16, 2, &start);
        assert_eq!(calls[0].action, "StartTransaction");
        assert_eq!(calls[0].payload["meterStart"], 1_000_500);
        assert_eq!(calls[0].starts, Some(2));
        // The stop is queued before the start's answer names the transaction; it takes the
        // id when it is sent.
        let stop_16 = Body::SessionEnd(tm::SessionEnd {
            meter_stop_kwh: "1001.000".into(),
            ..Default::default()
        });
        let stop = tx.calls(OcppVersion::V16, 2, &stop_16).remove(0);
        tx.running.insert(2, "4711".into());
        let sent = tx.ready(stop).expect("sent");
        assert_eq!(sent.payload["transactionId"], 4711);
        assert!(tx.running.is_empty(), "ended");
        let calls = tx.calls(OcppVersion::V201, 1, &start);
        assert_eq!(calls[0].payload["eventType"], "Started");
        assert_eq!(calls[0].payload["seqNo"], 0);
        let end = Body::SessionEnd(tm::SessionEnd {
            meter_stop_kwh: "1010.000".into(),
            ..Default::default()
        });
        let calls = tx.calls(OcppVersion::V201, 1, &end);
        assert_eq!(calls[0].payload["eventType"], "Ended");
        assert_eq!(calls[0].payload["seqNo"], 1);
        assert!(
            tx.calls(OcppVersion::V201, 1, &end).is_empty(),
            "nothing runs any more"
        );
        assert_eq!(
            answer(OcppVersion::V16, "FlyToTheMoon", &json!({})).0,
            Value::Null
        );
    }
}
