//! One charge point's connection: its CALLs become telemetry reports on one stream to the
//! telemetry component (as the pile's principal) and are answered once telemetry acknowledges
//! them as durable; the stream's commands and resync requests become CALLs to the charge point,
//! one outstanding at a time, and their answers become command results on the stream. A CALL that
//! cannot be read or broke a rule is answered with a CALLERROR and the connection stays up. When
//! the stream to telemetry breaks, the connection closes without answering what is not durable:
//! the charge point sends it again on its next connection.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use chargemesh_kit::identity::{report_sequence, request_as};
use chargemesh_proto::telemetry::v1 as pb;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use crate::edge::{ChargePoint, Connections, Socket, Upstreams};
use crate::rpc::{self, CallError, ErrorCode, Frame};
use crate::translate::{Handled, Known, Ledger, Memory, Report, Settings, Target};
use crate::{OcppConfig, Version, registry, v16, v201};

/// A CALL being made durable.
struct InFlight {
    id: String,
    action: String,
    waiting: HashSet<u64>,
    handled: Handled,
    refusal: Option<(String, String)>,
}

/// Something the platform asks of the charge point.
enum Outgoing {
    Command(pb::PileCommand),
    /// Telemetry asked for every connector's status.
    Resync,
}

/// A CALL the edge sent, waiting for its answer.
struct Outstanding {
    id: String,
    action: &'static str,
    command_id: Option<String>,
    deadline: Instant,
}

struct Session {
    charge_point: ChargePoint,
    sender: String,
    connectors: Vec<String>,
    /// The pile as the registry records it (REQ MAINT-4); `None` when it is not registered.
    ledger: Option<Ledger>,
    registry: chargemesh_kit::tls::MeshChannel,
    memory: Memory,
    settings: Settings,
    max_queued: usize,
    call_timeout: Duration,
    inbox: VecDeque<(String, String, Value)>,
    current: Option<InFlight>,
    outbox: VecDeque<Outgoing>,
    outstanding: Option<Outstanding>,
    calls_sent: u64,
    upstream: mpsc::Sender<pb::ConnectRequest>,
}

/// What ends a connection.
enum End {
    Closed,
    Close(CloseCode, &'static str),
}

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Serves one charge point until it goes, is replaced, or the edge stops.
pub async fn run(
    mut ws: Socket,
    charge_point: ChargePoint,
    config: &OcppConfig,
    upstreams: Upstreams,
    connections: Connections,
    mut stop: watch::Receiver<bool>,
) {
    let key = format!("{}/{}", charge_point.operator_id, charge_point.pile_id);
    let (conn_id, mut replaced) = connections.enter(&key);
    tracing::info!(charge_point = %key, version = charge_point.version.subprotocol(), "OCPP charge point connected");
    let end = serve(
        &mut ws,
        charge_point,
        config,
        &upstreams,
        &mut replaced,
        &mut stop,
    )
    .await;
    connections.leave(&key, conn_id);
    if let End::Close(code, reason) = end {
        tracing::info!(charge_point = %key, reason, "OCPP connection closed by the edge");
        let _ = ws
            .close(Some(CloseFrame {
                code,
                reason: reason.into(),
            }))
            .await;
        // The charge point's close answers ours; then TLS ends with its close_notify, so the
        // charger sees an orderly close, not a cut connection.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    } else {
        tracing::info!(charge_point = %key, "OCPP charge point disconnected");
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::io::AsyncWriteExt::shutdown(ws.get_mut()),
    )
    .await;
}

async fn serve(
    ws: &mut Socket,
    charge_point: ChargePoint,
    config: &OcppConfig,
    upstreams: &Upstreams,
    replaced: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> End {
    let (connectors, ledger) = match registry::registered(upstreams, &charge_point).await {
        Ok(registered) => registered,
        Err(status) => {
            tracing::warn!(%status, "the registry is unreachable; the charge point will retry");
            return End::Close(CloseCode::Again, "the platform is unavailable; retry");
        }
    };
    let (tx, rx) = mpsc::channel::<pb::ConnectRequest>(16);
    let mut telemetry = TelemetryServiceClient::new(upstreams.telemetry.clone());
    let mut answers = match telemetry
        .connect(request_as(
            &charge_point.principal,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await
    {
        Ok(response) => response.into_inner(),
        Err(status) => {
            tracing::warn!(%status, "the telemetry stream could not open");
            return End::Close(CloseCode::Again, "the platform is unavailable; retry");
        }
    };
    let mut session = Session {
        sender: charge_point.principal.to_string(),
        charge_point,
        connectors,
        ledger,
        registry: upstreams.registry.clone(),
        memory: Memory::default(),
        settings: Settings {
            heartbeat_interval_s: config.heartbeat_interval_s,
        },
        max_queued: config.max_queued_calls.max(1),
        call_timeout: Duration::from_secs(config.call_timeout_s.max(1)),
        inbox: VecDeque::new(),
        current: None,
        outbox: VecDeque::new(),
        outstanding: None,
        calls_sent: 0,
        upstream: tx,
    };
    let ping_every = Duration::from_secs(config.ping_interval_s.max(1));
    let silence = ping_every + Duration::from_secs(config.pong_timeout_s.max(1));
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    loop {
        let deadline = session
            .outstanding
            .as_ref()
            .map(|o| tokio::time::Instant::from_std(o.deadline));
        tokio::select! {
            frame = ws.next() => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        let out = session.on_text(text.as_str()).await;
                        if send_all(ws, out).await.is_err() {
                            return End::Closed;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        return End::Close(CloseCode::Unsupported, "OCPP-J frames are text");
                    }
                    Some(Ok(Message::Close(_))) | None => return End::Closed,
                    Some(Ok(_)) => {}
                    Some(Err(error)) => {
                        tracing::debug!(%error, "OCPP connection failed");
                        return match error {
                            tokio_tungstenite::tungstenite::Error::Capacity(_) => {
                                End::Close(CloseCode::Size, "a message over the size limit")
                            }
                            _ => End::Closed,
                        };
                    }
                }
            }
            answer = answers.message() => match answer {
                Ok(Some(answer)) => {
                    let out = session.on_answer(answer).await;
                    if send_all(ws, out).await.is_err() {
                        return End::Closed;
                    }
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("the telemetry stream ended; closing so the charge point reconnects");
                    return End::Close(CloseCode::Again, "the platform is unavailable; retry");
                }
            },
            _ = pings.tick() => {
                if last_heard.elapsed() > silence {
                    return End::Close(CloseCode::Away, "no answer to pings");
                }
                // REQ MON-1: a charge point that answered the last ping is there, whatever its
                // heartbeat interval (300 s by default, and chargers keep their own) says.
                if last_heard.elapsed() <= ping_every && !session.alive().await {
                    return End::Close(CloseCode::Again, "the platform is unavailable; retry");
                }
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return End::Closed;
                }
            }
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(o) = session.outstanding.take() {
                    tracing::info!(action = o.action, id = %o.id, "a CALL to the charge point went unanswered");
                }
                let out = session.next_outgoing().await;
                if send_all(ws, out).await.is_err() {
                    return End::Closed;
                }
            }
            _ = replaced.changed() => {
                return End::Close(CloseCode::Policy, "replaced by a new connection of this charge point");
            }
            _ = stop.changed() => return End::Close(CloseCode::Away, "the edge is stopping"),
        }
    }
}

async fn send_all(ws: &mut Socket, frames: Vec<String>) -> Result<(), ()> {
    for frame in frames {
        ws.feed(Message::text(frame)).await.map_err(|_| ())?;
    }
    ws.flush().await.map_err(|_| ())
}

impl Session {
    fn version(&self) -> Version {
        self.charge_point.version
    }

    fn error(&self, id: &str, error: &CallError) -> String {
        rpc::error(id, error, self.version())
    }

    /// A text frame from the charge point; what to send back now.
    async fn on_text(&mut self, text: &str) -> Vec<String> {
        match rpc::parse(text) {
            Err(unreadable) => vec![self.error(&unreadable.id, &unreadable.error)],
            Ok(Frame::Call {
                id,
                action,
                payload,
            }) => {
                if self.inbox.len() >= self.max_queued {
                    let busy = CallError::new(
                        ErrorCode::GenericError,
                        "too many CALLs waiting: OCPP allows one at a time",
                    );
                    return vec![self.error(&id, &busy)];
                }
                self.inbox.push_back((id, action, payload));
                self.advance().await
            }
            Ok(Frame::Result { id, payload }) => self.on_reply(&id, Ok(payload)).await,
            Ok(Frame::Error {
                id,
                code,
                description,
            }) => {
                self.on_reply(&id, Err(format!("{code}: {description}")))
                    .await
            }
        }
    }

    /// Takes the next waiting CALL when none is being made durable.
    async fn advance(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.current.is_none() {
            let Some((id, action, payload)) = self.inbox.pop_front() else {
                break;
            };
            let now = Utc::now();
            let known = self.look_up(&action, &payload).await;
            let handled = match self.version() {
                Version::V16 => v16::handle(
                    &action,
                    &payload,
                    &mut self.memory,
                    self.settings,
                    &known,
                    now,
                ),
                Version::V201 => v201::handle(
                    &action,
                    &payload,
                    &mut self.memory,
                    self.settings,
                    &known,
                    now,
                ),
            };
            let handled = match handled {
                Ok(handled) => handled,
                Err(error) => {
                    tracing::info!(%action, code = ?error.code, description = %error.description, "OCPP CALL refused");
                    out.push(self.error(&id, &error));
                    continue;
                }
            };
            let messages = match self.messages(&handled.reports) {
                Ok(messages) => messages,
                Err(error) => {
                    out.push(self.error(&id, &error));
                    continue;
                }
            };
            if messages.is_empty() {
                out.push(rpc::result(&id, &handled.reply));
                continue;
            }
            let waiting = messages.iter().map(|m| m.sequence).collect();
            if self
                .upstream
                .send(pb::ConnectRequest { messages })
                .await
                .is_err()
            {
                // The stream is gone; the loop sees it end and closes.
                break;
            }
            self.current = Some(InFlight {
                id,
                action,
                waiting,
                handled,
                refusal: None,
            });
        }
        out
    }

    /// What a CALL needs looked up before it is handled: the verdict on the id token it
    /// carries (the operator's list, or the station's "any token"), the ledger, the connectors.
    async fn look_up(&self, action: &str, payload: &Value) -> Known {
        let token = match self.version() {
            Version::V16 => v16::token(action, payload),
            Version::V201 => v201::token(action, payload),
        };
        let token = match token.filter(|t| !t.trim().is_empty()) {
            Some(token) => registry::authorize(&self.registry, &self.charge_point, &token).await,
            None => None,
        };
        Known {
            token,
            ledger: self.ledger.clone(),
            connectors: self.connectors.len(),
        }
    }

    /// The reports as telemetry messages, each with its fingerprint as its sequence.
    fn messages(&self, reports: &[Report]) -> Result<Vec<pb::TelemetryMessage>, CallError> {
        reports
            .iter()
            .map(|r| {
                let connector_id = match r.target {
                    Target::Pile => String::new(),
                    Target::Connector(n) => self
                        .connectors
                        .get((n as usize).wrapping_sub(1))
                        .cloned()
                        .ok_or_else(|| {
                            CallError::new(
                                ErrorCode::PropertyConstraintViolation,
                                format!(
                                    "connector {n}: pile {} has {} connector(s)",
                                    self.charge_point.pile_id,
                                    self.connectors.len()
                                ),
                            )
                        })?,
                };
                let mut parts: Vec<&str> = vec![&self.sender];
                parts.extend(r.identity.iter().map(String::as_str));
                Ok(pb::TelemetryMessage {
                    sequence: report_sequence(&parts),
                    operator_id: String::new(),
                    pile_id: self.charge_point.pile_id.clone(),
                    connector_id,
                    observe_time: Some(timestamp(r.at)),
                    body: Some(r.body.clone()),
                })
            })
            .collect()
    }

    /// Something from the telemetry stream.
    async fn on_answer(&mut self, answer: pb::ConnectResponse) -> Vec<String> {
        use pb::connect_response::Body;
        let mut out = Vec::new();
        match answer.body {
            Some(Body::Acknowledgement(ack)) => {
                if let Some(current) = &mut self.current {
                    current
                        .waiting
                        .retain(|s| !(ack.first_sequence..=ack.last_sequence).contains(s));
                }
            }
            Some(Body::Rejection(rejection)) => {
                if let Some(current) = &mut self.current
                    && current.waiting.remove(&rejection.sequence)
                    && current.refusal.is_none()
                {
                    current.refusal = Some((rejection.code, rejection.reason));
                }
            }
            Some(Body::Resync(_)) => {
                self.outbox.push_back(Outgoing::Resync);
                out.extend(self.next_outgoing().await);
            }
            Some(Body::Command(command)) => {
                if self.outbox.len() < crate::translate::MAX_REMEMBERED {
                    self.outbox.push_back(Outgoing::Command(command));
                } else {
                    // Not lost: unanswered, telemetry sends it again or times it out.
                    tracing::warn!(command_id = %command.command_id, "too many commands waiting for this charge point; one left to telemetry's retry");
                }
                out.extend(self.next_outgoing().await);
            }
            None => {}
        }
        if self.current.as_ref().is_some_and(|c| c.waiting.is_empty())
            && let Some(done) = self.current.take()
        {
            if done.action == "BootNotification"
                && self.ledger.is_none()
                && let Some((code, reason)) = &done.refusal
            {
                tracing::info!(charge_point = %self.charge_point.charge_point_id, %code, %reason, "an unregistered charge point booted; rejected and listed for its operator");
                registry::note_unknown(
                    &self.registry,
                    &self.charge_point,
                    format!("boot rejected: {code} {reason}"),
                )
                .await;
            }
            out.push(self.answer(done));
            out.extend(self.advance().await);
        }
        out
    }

    /// The answer to a CALL whose reports are all handled.
    fn answer(&self, done: InFlight) -> String {
        match (done.refusal, done.handled.refused) {
            (None, _) => rpc::result(&done.id, &done.handled.reply),
            (Some((code, reason)), Some(refused)) => {
                tracing::info!(%code, %reason, "OCPP CALL refused by telemetry; answered as refused");
                rpc::result(&done.id, &refused)
            }
            (Some((code, reason)), None) => {
                let error = match code.as_str() {
                    "PERMISSION_DENIED" | "UNAUTHENTICATED" => ErrorCode::SecurityError,
                    "INVALID_ARGUMENT" | "NOT_FOUND" | "FAILED_PRECONDITION" => {
                        ErrorCode::PropertyConstraintViolation
                    }
                    _ => ErrorCode::InternalError,
                };
                self.error(
                    &done.id,
                    &CallError::new(error, format!("{code}: {reason}")),
                )
            }
        }
    }

    /// A CALLRESULT or CALLERROR from the charge point, for the CALL the edge sent.
    async fn on_reply(&mut self, id: &str, reply: Result<Value, String>) -> Vec<String> {
        let Some(outstanding) = self.outstanding.take_if(|o| o.id == id) else {
            tracing::debug!(%id, "an answer to no outstanding CALL");
            return Vec::new();
        };
        if let Some(command_id) = outstanding.command_id {
            let (outcome, detail) = match &reply {
                Ok(payload) => match self.version() {
                    Version::V16 => v16::outcome(outstanding.action, payload),
                    Version::V201 => v201::outcome(outstanding.action, payload),
                },
                Err(error) => (pb::CommandOutcome::Failed, error.clone()),
            };
            self.report_result(&command_id, outcome, detail).await;
        }
        self.next_outgoing().await
    }

    /// Sends one message of the pile's own, identified by `identity` after the sender, on the
    /// stream: durable there, waited for by nothing here. False when the stream is gone.
    async fn send_own(
        &mut self,
        identity: &[&str],
        at: DateTime<Utc>,
        body: pb::telemetry_message::Body,
    ) -> bool {
        let mut parts: Vec<&str> = vec![&self.sender];
        parts.extend_from_slice(identity);
        let message = pb::TelemetryMessage {
            sequence: report_sequence(&parts),
            operator_id: String::new(),
            pile_id: self.charge_point.pile_id.clone(),
            connector_id: String::new(),
            observe_time: Some(timestamp(at)),
            body: Some(body),
        };
        self.upstream
            .send(pb::ConnectRequest {
                messages: vec![message],
            })
            .await
            .is_ok()
    }

    /// Sends a command's result on the stream (durable there; nothing waits for it here).
    async fn report_result(
        &mut self,
        command_id: &str,
        outcome: pb::CommandOutcome,
        detail: String,
    ) {
        let detail: String = detail.chars().take(500).collect();
        let body = pb::telemetry_message::Body::CommandResult(pb::CommandResult {
            command_id: command_id.to_owned(),
            outcome: outcome as i32,
            detail,
        });
        // A stream gone is seen by the connection's loop, which closes.
        let _ = self
            .send_own(&["result", command_id], Utc::now(), body)
            .await;
    }

    /// Tells telemetry the charge point is connected and answering (REQ MON-1): a heartbeat on
    /// its behalf, acknowledged like any report and waited for by nothing here. Without it a
    /// charger heartbeating less often than the silence limit (`telemetry.offline_after_seconds`,
    /// 180 s, against the 300 s it is told at boot) would turn offline between heartbeats.
    /// Nothing is sent for a charge point the registry does not know (its reports are refused).
    /// False when the stream to telemetry is gone.
    async fn alive(&mut self) -> bool {
        if self.ledger.is_none() {
            return true;
        }
        let now = Utc::now();
        let body = pb::telemetry_message::Body::Heartbeat(pb::Heartbeat {});
        self.send_own(&["link-alive", &crate::map::format_time(now)], now, body)
            .await
    }

    /// Sends the next CALL to the charge point when none is outstanding.
    async fn next_outgoing(&mut self) -> Vec<String> {
        while self.outstanding.is_none() {
            let Some(next) = self.outbox.pop_front() else {
                break;
            };
            self.calls_sent += 1;
            let (id, action, payload, command_id) = match next {
                Outgoing::Resync => {
                    let payload = serde_json::json!({ "requestedMessage": "StatusNotification" });
                    (
                        format!("resync-{}", self.calls_sent),
                        "TriggerMessage",
                        payload,
                        None,
                    )
                }
                Outgoing::Command(command) => {
                    let connector = if command.connector_id.is_empty() {
                        Some(0)
                    } else {
                        self.connectors
                            .iter()
                            .position(|c| *c == command.connector_id)
                            .map(|i| i as u32 + 1)
                    };
                    let translated = match connector {
                        None => Err(format!(
                            "{} is not a connector of this pile",
                            command.connector_id
                        )),
                        Some(n) => match self.version() {
                            Version::V16 => v16::command(&command, n, &mut self.memory),
                            Version::V201 => v201::command(&command, n, &mut self.memory),
                        },
                    };
                    match translated {
                        Ok((action, payload)) => {
                            let id: String = command.command_id.chars().take(36).collect();
                            (id, action, payload, Some(command.command_id))
                        }
                        Err(reason) => {
                            self.report_result(
                                &command.command_id,
                                pb::CommandOutcome::Failed,
                                reason,
                            )
                            .await;
                            continue;
                        }
                    }
                }
            };
            self.outstanding = Some(Outstanding {
                id: id.clone(),
                action,
                command_id,
                deadline: Instant::now() + self.call_timeout,
            });
            return vec![rpc::call(&id, action, &payload)];
        }
        Vec::new()
    }
}
