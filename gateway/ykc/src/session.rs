//! One YKC pile's connection after its login: its frames become telemetry reports on one stream
//! to the telemetry component (as the pile's principal), so durability, deduplication, scope
//! checks and commands come from the path every pile uses; the stream's commands become YKC
//! frames, and the pile's replies command results.
//!
//! - 0x03 heartbeats are answered at once and passed on now and then; a pile silent for
//!   `missed_heartbeats` periods is reported offline and its connection closed (REQ MON-1).
//! - 0x13 real-time data becomes the gun's connector status (reported when it changes), a meter
//!   sample while charging (energy relative to the session's start: YKC sends no register
//!   before the record) and an alarm per newly set hardware fault bit.
//! - A session the platform started (0x34, answered 0x33) or authorised (0x31, answered 0x32)
//!   starts when a 0x13 shows it charging under its serial (a remote start not charging within
//!   `start_window_s` failed, and the pile is told to stop); the 0x3B record ends it, and is
//!   confirmed (0x40) only once telemetry says the end is durable; a resent record has the
//!   same sequence, so it is stored once and confirmed again. A record of a session this
//!   connection never saw start is still reported: metering keeps it as an abnormal order
//!   (REQ MON-9).
//! - The billing model and clock are kept by `upkeep`, the BMS frames handled by `bms`.
//! - Frames of types the edge does not handle, encrypted frames and frames naming another pile
//!   are logged and skipped; the connection stays up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;

use chargemesh_kit::Principal;
use chargemesh_kit::identity::report_sequence;
use chargemesh_kit::tariff::Tariff;
use chargemesh_proto::telemetry::v1 as pb;
use pb::telemetry_message::Body;

use crate::config::YkcConfig;
use crate::fields::hex;
use crate::records::CardStartReply;
use crate::station_tariffs::TariffSource;
use crate::translate;
use crate::upkeep::Upkeep;
use crate::{Cp56Time, CrcOrder, Frame, Message};

/// A logged-in pile, as the registry knows it.
#[derive(Debug, Clone)]
pub struct Pile {
    pub principal: Principal,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    /// The YKC pile code it logged in with.
    pub code: String,
    /// Its connectors in registry order: gun n is the n-th.
    pub connectors: Vec<String>,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The pile closed it, or it failed.
    Closed,
    /// Silent for too long (REQ MON-1).
    Silent,
    /// A newer connection of the same pile code.
    Replaced,
    /// The telemetry stream ended.
    Upstream,
    /// The edge is stopping.
    Stopping,
}

/// What a durable report lets the edge answer.
#[derive(Debug, Clone)]
pub(crate) enum AfterDurable {
    /// Confirm a transaction record (0x40) with the request's sequence bytes.
    ConfirmRecord { serial: String, sequence: [u8; 2] },
}

/// A session the platform started or authorised, by serial.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    pub(crate) gun: u8,
    pub(crate) order_id: String,
    pub(crate) authorization_ref: String,
    pub(crate) any_token: bool,
    pub(crate) started: bool,
    pub(crate) platform_stopped: bool,
}

/// A gun as the connection last saw it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gun {
    pub(crate) state: Option<pb::ConnectorState>,
    pub(crate) faults: u16,
    pub(crate) heartbeat_fault: u8,
    pub(crate) serial: Option<String>,
}

/// A command sent to the pile, waiting for its reply.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) command_id: String,
    /// The frame type that settles it; [`AWAIT_CHARGING`] for a start the pile accepted.
    pub(crate) reply: u8,
    pub(crate) gun: Option<u8>,
    /// A remote start's serial.
    pub(crate) serial: Option<String>,
    pub(crate) deadline: Instant,
}

/// A remote start the pile accepted (0x33) waits for real-time data (0x13) charging under its
/// serial: only both make it started (`design/ykc.md` §4.2).
pub(crate) const AWAIT_CHARGING: u8 = 0x13;

/// The most sessions, reports awaiting durability and commands one connection keeps in mind;
/// a pile has a few guns, so only a misbehaving one reaches them.
pub(crate) const MAX_REMEMBERED: usize = 64;

/// One logged-in pile's state.
pub struct Session {
    pub pile: Pile,
    sender: String,
    pub(crate) config: YkcConfig,
    upstream: mpsc::Sender<pb::ConnectRequest>,
    /// The authorisation lookups for card starts.
    token_lookup: Box<dyn TokenLookup>,
    /// The CRC order the pile uses (recorded, not imitated: we send low byte first).
    pub crc_order: CrcOrder,
    frames_sent: u16,
    pub(crate) serials_made: u16,
    pub(crate) guns: HashMap<u8, Gun>,
    pub(crate) sessions: HashMap<String, Known>,
    pub(crate) waiting: HashMap<u64, AfterDurable>,
    pub(crate) pending: Vec<Pending>,
    last_heard: Instant,
    last_forwarded: Option<Instant>,
    /// The station's tariff and the pile's billing model and clock (REQ MON-10).
    pub(crate) upkeep: Upkeep,
}

/// How a card or VIN is checked against the operator's token list.
#[tonic::async_trait]
pub trait TokenLookup: Send + Sync {
    /// The verdict: `Some(any_token)` when the token may charge, `None` when it may not.
    async fn authorize(&self, token: &str) -> Option<bool>;
}

impl Session {
    pub fn new(
        pile: Pile,
        config: YkcConfig,
        upstream: mpsc::Sender<pb::ConnectRequest>,
        token_lookup: Box<dyn TokenLookup>,
        crc_order: CrcOrder,
        tariffs: Arc<dyn TariffSource>,
        tariff: Tariff,
    ) -> Self {
        Self {
            sender: pile.principal.to_string(),
            pile,
            config,
            upstream,
            token_lookup,
            crc_order,
            frames_sent: 0,
            serials_made: 0,
            guns: HashMap::new(),
            sessions: HashMap::new(),
            waiting: HashMap::new(),
            pending: Vec::new(),
            last_heard: Instant::now(),
            last_forwarded: None,
            upkeep: Upkeep::new(tariffs, tariff),
        }
    }

    /// The next sequence bytes for a frame of ours: a little-endian counter per connection.
    fn next_sequence(&mut self) -> [u8; 2] {
        let sequence = self.frames_sent.to_le_bytes();
        self.frames_sent = self.frames_sent.wrapping_add(1);
        sequence
    }

    pub(crate) fn frame(&mut self, message: &Message) -> Option<Frame> {
        let sequence = self.next_sequence();
        self.reply(message, sequence)
    }

    pub(crate) fn reply(&self, message: &Message, sequence: [u8; 2]) -> Option<Frame> {
        match message.to_frame(sequence) {
            Ok(frame) => Some(frame),
            Err(error) => {
                tracing::warn!(pile = %self.pile.code, %error, "a YKC frame could not be made");
                None
            }
        }
    }

    pub(crate) fn connector(&self, gun: u8) -> Option<&String> {
        self.pile.connectors.get(usize::from(gun).wrapping_sub(1))
    }

    pub(crate) fn guns(&self) -> impl Iterator<Item = u8> + use<> {
        1..=self.pile.connectors.len().min(99) as u8
    }

    /// A telemetry report whose sequence is made from `identity`, observed now.
    pub(crate) fn report(
        &self,
        identity: &[&str],
        connector: String,
        body: Body,
    ) -> pb::TelemetryMessage {
        self.report_at(identity, connector, body, Utc::now())
    }

    /// A telemetry report whose sequence is made from `identity`, observed at `now`.
    pub(crate) fn report_at(
        &self,
        identity: &[&str],
        connector: String,
        body: Body,
        now: chrono::DateTime<Utc>,
    ) -> pb::TelemetryMessage {
        let mut parts: Vec<&str> = vec![&self.sender];
        parts.extend_from_slice(identity);
        pb::TelemetryMessage {
            sequence: report_sequence(&parts),
            operator_id: String::new(),
            pile_id: self.pile.pile_id.clone(),
            connector_id: connector,
            observe_time: Some(prost_types::Timestamp {
                seconds: now.timestamp(),
                nanos: now.timestamp_subsec_nanos() as i32,
            }),
            body: Some(body),
        }
    }

    /// An identity part unique to this moment, for reports with no identity of their own.
    pub(crate) fn now_part() -> String {
        Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) async fn send(&self, messages: Vec<pb::TelemetryMessage>) -> bool {
        messages.is_empty()
            || self
                .upstream
                .send(pb::ConnectRequest { messages })
                .await
                .is_ok()
    }

    /// What the edge sends right after a successful login: the time, then a request for each
    /// gun's real-time data (a heartbeat does not say what a gun is doing).
    pub fn greeting(&mut self) -> Vec<Frame> {
        let code = self.pile.code.clone();
        let mut out: Vec<Frame> = self
            .frame(&Message::TimeSync {
                pile: code.clone(),
                time: Cp56Time::from_utc(Utc::now()),
            })
            .into_iter()
            .collect();
        for gun in self.guns() {
            out.extend(self.frame(&Message::ReadRealtime {
                pile: code.clone(),
                gun,
            }));
        }
        out
    }

    /// A frame from the pile; what to send back now. `Err` ends the connection.
    pub async fn on_frame(&mut self, frame: Frame) -> Result<Vec<Frame>, End> {
        self.last_heard = Instant::now();
        let message = match Message::decode(&frame) {
            Ok(message) => message,
            Err(error) => {
                tracing::info!(pile = %self.pile.code, kind = frame.kind, %error, "a YKC frame skipped");
                return Ok(Vec::new());
            }
        };
        if let Some(named) = message.pile()
            && named != self.pile.code
        {
            tracing::warn!(pile = %self.pile.code, named, kind = frame.kind, "a YKC frame naming another pile code skipped (one pile per connection)");
            if let Message::Transaction(record) = &message {
                return Ok(self
                    .reply(
                        &Message::TransactionAck {
                            serial: record.serial.clone(),
                            result: 0x01,
                        },
                        frame.sequence,
                    )
                    .into_iter()
                    .collect());
            }
            return Ok(Vec::new());
        }
        let code = self.pile.code.clone();
        let out = match message {
            Message::Heartbeat { gun, status, .. } => {
                let mut out: Vec<Frame> = self
                    .reply(
                        &Message::HeartbeatReply {
                            pile: code.clone(),
                            gun,
                            status: 0,
                        },
                        frame.sequence,
                    )
                    .into_iter()
                    .collect();
                let entry = self.guns.entry(gun).or_default();
                if entry.heartbeat_fault != status {
                    // The fault flag changed: ask what the gun is doing now.
                    entry.heartbeat_fault = status;
                    out.extend(self.frame(&Message::ReadRealtime { pile: code, gun }));
                }
                let due = self.last_forwarded.is_none_or(|at| {
                    at.elapsed() >= Duration::from_secs(self.config.forward_heartbeat_s.max(1))
                });
                if due {
                    self.last_forwarded = Some(Instant::now());
                    let beat = self.report(
                        &["heartbeat", &Self::now_part()],
                        String::new(),
                        Body::Heartbeat(pb::Heartbeat {}),
                    );
                    if !self.send(vec![beat]).await {
                        return Err(End::Upstream);
                    }
                }
                out
            }
            Message::Login(_) => {
                // A login again on a live connection: answered, nothing else changes.
                self.reply(
                    &Message::LoginReply {
                        pile: code,
                        result: 0x00,
                    },
                    frame.sequence,
                )
                .into_iter()
                .collect()
            }
            Message::Realtime(data) => {
                let messages = self.on_realtime(&data);
                if !self.send(messages).await {
                    return Err(End::Upstream);
                }
                if data.status == 0x03 {
                    self.started(&data.serial).await?;
                }
                Vec::new()
            }
            Message::Bms { kind, frame: bms } => {
                self.on_bms(kind, bms).await?;
                Vec::new()
            }
            Message::CardStart(start) => {
                let token = match start.mode {
                    0x03 => start.vin(),
                    _ => hex(&start.card),
                };
                let verdict = self.token_lookup.authorize(&token).await;
                self.serials_made = self.serials_made.wrapping_add(1);
                let serial = translate::new_serial(&code, start.gun, Utc::now(), self.serials_made);
                if let Some(any_token) = verdict {
                    self.remember(
                        serial.clone(),
                        Known {
                            gun: start.gun,
                            authorization_ref: token.clone(),
                            any_token,
                            ..Known::default()
                        },
                    );
                }
                tracing::info!(pile = %code, gun = start.gun, accepted = verdict.is_some(), "a YKC card or VIN start");
                let reply = Message::CardStartReply(CardStartReply {
                    serial,
                    pile: code,
                    gun: start.gun,
                    logical_card: translate::logical_card(&hex(&start.card)),
                    balance: self.config.remote_start_balance_yuan.saturating_mul(100),
                    accepted: u8::from(verdict.is_some()),
                    // 0x01: no such account.
                    reason: if verdict.is_some() { 0x00 } else { 0x01 },
                });
                self.reply(&reply, frame.sequence).into_iter().collect()
            }
            Message::RemoteStartReply {
                serial,
                gun,
                result,
                reason,
                ..
            } => {
                let detail = match (result, reason) {
                    (0x01, _) => String::new(),
                    (_, 0x01) => "refused: number mismatch".into(),
                    (_, 0x02) => "refused: already charging".into(),
                    (_, 0x03) => "refused: the pile is faulted".into(),
                    (_, 0x04) => "refused: the pile is offline".into(),
                    (_, 0x05) => "refused: no vehicle plugged in".into(),
                    (_, other) => format!("refused: reason 0x{other:02X}"),
                };
                if result == 0x01 {
                    // Started only once it charges under the serial, within the start window.
                    self.await_charging(&serial, gun);
                } else {
                    self.sessions.remove(&serial);
                    self.resolve(0x33, Some(gun), false, detail).await?;
                }
                Vec::new()
            }
            Message::RemoteStopReply {
                gun,
                result,
                reason,
                ..
            } => {
                let detail = match (result, reason) {
                    (0x01, _) => "stopped".to_owned(),
                    (_, 0x02) => "refused: not charging".into(),
                    (_, other) => format!("refused: reason 0x{other:02X}"),
                };
                self.resolve(0x35, Some(gun), result == 0x01, detail)
                    .await?;
                Vec::new()
            }
            Message::RestartReply { result, .. } => {
                self.resolve(0x91, None, result == 0x01, result_text(result))
                    .await?;
                Vec::new()
            }
            Message::WorkParamsReply { result, .. } => {
                self.resolve(0x51, None, result == 0x01, result_text(result))
                    .await?;
                Vec::new()
            }
            Message::ModelSetReply { result, .. } => {
                self.on_model_set_reply(result).await?;
                Vec::new()
            }
            Message::TimeSyncReply { time, .. } => {
                if let Ok(at) = time.to_utc() {
                    let skew = (Utc::now() - at).num_seconds();
                    if skew.abs() > 60 {
                        tracing::warn!(pile = %code, skew_s = skew, "a YKC pile's clock is off after the time sync");
                    }
                }
                Vec::new()
            }
            Message::Transaction(record) => self.on_record(*record, frame.sequence).await?,
            // REQ MON-10: the pile's model is checked against the tariff in force; a pile with
            // another asks for it (0x09) and is given it.
            Message::ModelCheck { model, .. } => {
                self.upkeep.pile_has(&model);
                let same = match self.billing_model() {
                    Ok(current) => current.model == model,
                    Err(reason) => {
                        tracing::warn!(pile = %code, %reason, "no billing model for a YKC pile");
                        false
                    }
                };
                self.reply(
                    &Message::ModelCheckReply {
                        pile: code,
                        model,
                        result: u8::from(!same),
                    },
                    frame.sequence,
                )
                .into_iter()
                .collect()
            }
            Message::ModelRequest { .. } => match self.billing_model() {
                Ok(model) => {
                    self.upkeep.pile_has(&model.model);
                    self.reply(&Message::Model(model), frame.sequence)
                        .into_iter()
                        .collect()
                }
                Err(reason) => {
                    tracing::warn!(pile = %code, %reason, "a YKC pile asked for a billing model there is none of; it cannot charge");
                    Vec::new()
                }
            },
            other => {
                tracing::info!(pile = %code, kind = other.kind(), "a YKC frame the edge does not handle; skipped");
                Vec::new()
            }
        };
        Ok(out)
    }

    pub(crate) fn remember(&mut self, serial: String, known: Known) {
        if self.sessions.len() >= MAX_REMEMBERED
            && let Some(oldest) = self.sessions.keys().next().cloned()
        {
            self.sessions.remove(&oldest);
        }
        self.sessions.insert(serial, known);
    }

    /// Something from the telemetry stream; what to send the pile now.
    pub async fn on_answer(&mut self, answer: pb::ConnectResponse) -> Result<Vec<Frame>, End> {
        use pb::connect_response::Body as A;
        let mut out = Vec::new();
        match answer.body {
            Some(A::Acknowledgement(ack)) => {
                let durable: Vec<u64> = self
                    .waiting
                    .keys()
                    .copied()
                    .filter(|s| (ack.first_sequence..=ack.last_sequence).contains(s))
                    .collect();
                for sequence in durable {
                    if let Some(AfterDurable::ConfirmRecord { serial, sequence }) =
                        self.waiting.remove(&sequence)
                    {
                        out.extend(self.reply(
                            &Message::TransactionAck {
                                serial,
                                result: 0x00,
                            },
                            sequence,
                        ));
                    }
                }
            }
            Some(A::Rejection(rejection)) => {
                if let Some(AfterDurable::ConfirmRecord { serial, sequence }) =
                    self.waiting.remove(&rejection.sequence)
                {
                    tracing::warn!(pile = %self.pile.code, %serial, code = %rejection.code, reason = %rejection.reason, "a YKC transaction record refused by telemetry");
                    // Refused as wrong: the pile is told it is illegal. Anything else (the
                    // mesh unavailable) is left unconfirmed, so the pile sends it again.
                    if rejection.code == "INVALID_ARGUMENT" {
                        out.extend(self.reply(
                            &Message::TransactionAck {
                                serial,
                                result: 0x01,
                            },
                            sequence,
                        ));
                    }
                }
            }
            Some(A::Resync(_)) => {
                let code = self.pile.code.clone();
                for gun in self.guns() {
                    // Forget what was reported, so the answers are reported again.
                    if let Some(entry) = self.guns.get_mut(&gun) {
                        entry.state = None;
                    }
                    out.extend(self.frame(&Message::ReadRealtime {
                        pile: code.clone(),
                        gun,
                    }));
                }
            }
            Some(A::Command(command)) => out.extend(self.on_command(command).await?),
            None => {}
        }
        Ok(out)
    }

    /// Once a second: commands past their time fail; a silent pile ends (REQ MON-1); the
    /// pile's clock and billing model are kept (what to send it now).
    pub async fn tick(&mut self) -> Result<Vec<Frame>, End> {
        let now = Instant::now();
        let expired: Vec<Pending> = self
            .pending
            .iter()
            .filter(|p| p.deadline <= now)
            .cloned()
            .collect();
        self.pending.retain(|p| p.deadline > now);
        let mut out = Vec::new();
        for pending in expired {
            let detail = match &pending.serial {
                // A start not seen charging in its window failed; the pile is told to stop in
                // case it still starts (§13.3).
                Some(serial) => {
                    self.sessions.remove(serial);
                    if let Some(gun) = pending.gun {
                        out.extend(self.frame(&Message::RemoteStop {
                            pile: self.pile.code.clone(),
                            gun,
                        }));
                    }
                    format!(
                        "the pile did not start charging under serial {serial} within {} s",
                        self.config.start_window_s
                    )
                }
                None => format!(
                    "the pile did not answer in {} s",
                    self.config.command_timeout_s
                ),
            };
            self.result(&pending.command_id, pb::CommandOutcome::Failed, detail)
                .await?;
        }
        let silence = Duration::from_secs(
            self.config.heartbeat_s.max(1) * u64::from(self.config.missed_heartbeats.max(1)),
        ) + Duration::from_secs(self.config.heartbeat_s.max(1) / 2);
        if self.last_heard.elapsed() > silence {
            return Err(End::Silent);
        }
        out.extend(self.upkeep().await);
        Ok(out)
    }

    /// REQ MON-1: every gun offline, as the connection ends; sent before the stream closes.
    pub fn offline(&self) -> Vec<pb::TelemetryMessage> {
        let now = Self::now_part();
        self.pile
            .connectors
            .iter()
            .map(|connector| {
                self.report(
                    &["offline", connector, &now],
                    connector.clone(),
                    Body::Status(pb::ConnectorStatus {
                        state: pb::ConnectorState::Offline as i32,
                        fault_code: String::new(),
                        fault_text: String::new(),
                    }),
                )
            })
            .collect()
    }
}

fn result_text(result: u8) -> String {
    if result == 0x01 {
        "done".into()
    } else {
        format!("failed (0x{result:02X})")
    }
}
