//! `chargemesh sim --protocol ykc`: simulated YKC (云快充) 1.6 piles, one TCP connection each to
//! the gateway's YKC edge, speaking the frames of `design/ykc.md` through the codec (whose
//! encodings the clean vectors pin down). Each logs in, heartbeats every 10 s, reports its guns'
//! real-time data (0x13) as [`crate::sim::SimConnector`] lives them, asks for card starts
//! (0x31) for the sessions it begins itself, obeys remote starts and stops (0x34, 0x36),
//! restarts, working parameters and time syncs, and sends a transaction record (0x3B) at the end
//! of each session, again every few seconds until the platform confirms it (0x40), as real piles
//! do. It reconnects with a jittered backoff when the connection goes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{Timelike as _, Utc};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_ykc::records::{BillingModel, CardStart, Login, PeriodUse, Realtime, Transaction};
use chargemesh_ykc::{Cp56Time, CrcOrder, Frame, FrameReader, Message};
use tm::telemetry_message::Body;

use crate::link::{Backoff, reconnect_delay};
use crate::sim::{Rng, SimConnector};

/// One simulated YKC pile.
#[derive(Debug, Clone)]
pub struct YkcPileOptions {
    pub edge: SocketAddr,
    /// Its 14-digit pile code.
    pub code: String,
    /// Its guns in registry order: gun n is the n-th connector.
    pub connectors: Vec<SimConnector>,
    pub tick: Duration,
    pub seed: u64,
    /// Send the CRC high byte first, as some pile firmware does.
    pub crc_high_first: bool,
    /// Seconds between a record and its resending while unconfirmed.
    pub record_resend_s: u64,
}

/// A gun's session as the pile keeps it.
#[derive(Debug, Clone)]
struct GunSession {
    serial: String,
    start: chrono::DateTime<Utc>,
    start_wh: u64,
    remote: bool,
    stop_asked: bool,
}

/// A record waiting for its confirmation.
#[derive(Debug, Clone)]
struct Unconfirmed {
    record: Transaction,
    next_send: Instant,
}

/// What one pile keeps across its connections: its guns, their sessions and its unconfirmed
/// records (sent again after a reconnect, as real piles do).
struct Pile {
    opts: YkcPileOptions,
    rng: Rng,
    sessions: HashMap<u8, GunSession>,
    /// Serials the platform gave for starts not yet begun, by gun.
    granted: HashMap<u8, (String, bool)>,
    records: HashMap<String, Unconfirmed>,
    frames: u16,
    /// The billing model it holds (`0000` before the platform gave one).
    model: String,
    /// Its prices and slots, once given.
    prices: Option<BillingModel>,
}

/// Runs one simulated pile until the task is dropped.
pub async fn run(opts: YkcPileOptions) {
    let seed = opts.seed | 1;
    let mut pile = Pile {
        opts,
        rng: Rng::new(seed),
        sessions: HashMap::new(),
        granted: HashMap::new(),
        records: HashMap::new(),
        frames: 0,
        model: "0000".into(),
        prices: None,
    };
    let mut failures = 0u32;
    loop {
        match pile.connection().await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::info!(pile = %pile.opts.code, %error, "simulated YKC pile disconnected");
            }
        }
        let unit = (pile.rng.draw() % 1000) as f64 / 1000.0;
        tokio::time::sleep(reconnect_delay(Backoff::default(), failures, unit)).await;
    }
}

impl Pile {
    fn frame(&mut self, message: &Message) -> anyhow::Result<Vec<u8>> {
        let sequence = self.frames.to_le_bytes();
        self.frames = self.frames.wrapping_add(1);
        self.encode(message, sequence)
    }

    fn encode(&self, message: &Message, sequence: [u8; 2]) -> anyhow::Result<Vec<u8>> {
        let order = if self.opts.crc_high_first {
            CrcOrder::HighFirst
        } else {
            CrcOrder::LowFirst
        };
        Ok(message.to_frame(sequence)?.encode_with(order)?)
    }

    fn code(&self) -> String {
        self.opts.code.clone()
    }

    /// One connection: the login, then frames both ways until it breaks.
    async fn connection(&mut self) -> anyhow::Result<()> {
        let mut stream = TcpStream::connect(self.opts.edge).await?;
        stream.set_nodelay(true)?;
        self.frames = 0;
        let login = Message::Login(Login {
            pile: self.code(),
            pile_type: 0,
            guns: self.opts.connectors.len().min(99) as u8,
            protocol: 0x10,
            software: "CMSIM1.6".into(),
            network: 0,
            iccid: "89860000000000000000".into(),
            carrier: 0,
        });
        let bytes = self.frame(&login)?;
        stream.write_all(&bytes).await?;
        let mut reader = FrameReader::new();
        let mut buffer = [0u8; 1024];
        // The login's answer before anything else.
        let welcomed = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                while let Some(received) = reader.next_frame() {
                    if let Ok(Message::LoginReply { result, .. }) = Message::decode(&received.frame)
                    {
                        return Ok::<bool, anyhow::Error>(result == 0x00);
                    }
                }
                let n = stream.read(&mut buffer).await?;
                anyhow::ensure!(n > 0, "closed before the login's answer");
                reader.extend(&buffer[..n]);
            }
        })
        .await??;
        anyhow::ensure!(welcomed, "login refused");
        tracing::info!(pile = %self.opts.code, "simulated YKC pile logged in");
        // Its billing model checked after every login, as real piles do.
        let check = Message::ModelCheck {
            pile: self.code(),
            model: self.model.clone(),
        };
        let bytes = self.frame(&check)?;
        stream.write_all(&bytes).await?;
        let mut ticks = tokio::time::interval(self.opts.tick);
        let mut beats = tokio::time::interval(Duration::from_secs(10));
        loop {
            let out = tokio::select! {
                read = stream.read(&mut buffer) => {
                    let n = read?;
                    anyhow::ensure!(n > 0, "the edge closed the connection");
                    reader.extend(&buffer[..n]);
                    let mut out = Vec::new();
                    while let Some(received) = reader.next_frame() {
                        out.extend(self.on_frame(&received.frame)?);
                    }
                    out
                }
                _ = ticks.tick() => self.on_tick()?,
                _ = beats.tick() => {
                    let faulted = self.opts.connectors.first().is_some_and(|c| c.state == tm::ConnectorState::Fault);
                    self.frame(&Message::Heartbeat { pile: self.code(), gun: 1, status: u8::from(faulted) })?
                }
            };
            if !out.is_empty() {
                stream.write_all(&out).await?;
            }
        }
    }

    /// A gun's real-time data now.
    fn realtime(&self, gun: u8) -> Option<Realtime> {
        let connector = self.opts.connectors.get(usize::from(gun).checked_sub(1)?)?;
        let session = self.sessions.get(&gun);
        let (status, plugged) = match connector.state {
            tm::ConnectorState::Offline => (0x00, 0),
            tm::ConnectorState::Fault => (0x01, 0),
            tm::ConnectorState::OccupiedNotCharging => (0x02, 1),
            tm::ConnectorState::Charging if session.is_some() => (0x03, 1),
            tm::ConnectorState::Charging => (0x02, 1),
            _ => (0x02, 0),
        };
        let charging = status == 0x03;
        let energy = session.map_or(0, |s| connector.register_wh.saturating_sub(s.start_wh) * 10);
        Some(Realtime {
            serial: session
                .filter(|_| charging)
                .map_or_else(|| "0".repeat(32), |s| s.serial.clone()),
            pile: self.code(),
            gun,
            status,
            returned: u8::from(!charging && plugged == 0),
            plugged,
            voltage: if charging { 4000 } else { 0 },
            current: if charging {
                (connector.power_kw * 1000.0 / 400.0 * 10.0) as u16
            } else {
                0
            },
            gun_temperature: 75,
            cable_code: [0; 8],
            soc: 0,
            battery_temperature: 75,
            minutes: session.map_or(0, |s| (Utc::now() - s.start).num_minutes().max(0) as u16),
            remaining_minutes: 0,
            energy: energy as u32,
            lossy_energy: energy as u32,
            amount: 0,
            faults: if status == 0x01 { 0b100 } else { 0 },
        })
    }

    fn realtime_frame(&mut self, gun: u8) -> anyhow::Result<Vec<u8>> {
        match self.realtime(gun) {
            Some(data) => self.frame(&Message::Realtime(data)),
            None => Ok(Vec::new()),
        }
    }

    /// A step of the simulation: what each gun lived through, as YKC frames.
    fn on_tick(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        for i in 0..self.opts.connectors.len() {
            let gun = (i + 1).min(99) as u8;
            let tick = self.opts.tick;
            let bodies = self.opts.connectors[i].tick(&mut self.rng, tick);
            let mut report = false;
            for body in bodies {
                match body {
                    Body::SessionStart(start) => {
                        if let Some((serial, remote)) = self.granted.remove(&gun) {
                            self.begin(gun, serial, remote);
                            report = true;
                        } else {
                            // A session the pile begins itself: it asks for the card first and
                            // charges under the serial the platform answers with.
                            let card = card_bytes(&start.authorization_ref);
                            out.extend(self.frame(&Message::CardStart(CardStart {
                                pile: self.code(),
                                gun,
                                mode: 0x01,
                                password_flag: 0x00,
                                card,
                                password_md5: [0; 16],
                                vin_reversed: [0; 17],
                            }))?);
                        }
                    }
                    Body::SessionEnd(end) => {
                        if let Some(session) = self.sessions.remove(&gun) {
                            let record = self.record(gun, &session, end.stop_reason);
                            self.records.insert(
                                record.serial.clone(),
                                Unconfirmed {
                                    record,
                                    next_send: Instant::now(),
                                },
                            );
                        }
                        report = true;
                    }
                    Body::Status(_) | Body::Meter(_) => report = true,
                    _ => {}
                }
            }
            if report {
                out.extend(self.realtime_frame(gun)?);
            }
        }
        let now = Instant::now();
        let resend = Duration::from_secs(self.opts.record_resend_s.max(1));
        let due: Vec<Transaction> = self
            .records
            .values_mut()
            .filter(|u| u.next_send <= now)
            .map(|u| {
                u.next_send = now + resend;
                u.record.clone()
            })
            .collect();
        for record in due {
            out.extend(self.frame(&Message::Transaction(Box::new(record)))?);
        }
        Ok(out)
    }

    fn begin(&mut self, gun: u8, serial: String, remote: bool) {
        let start_wh = self
            .opts
            .connectors
            .get(usize::from(gun) - 1)
            .map_or(0, |c| c.register_wh);
        self.sessions.insert(
            gun,
            GunSession {
                serial,
                start: Utc::now(),
                start_wh,
                remote,
                stop_asked: false,
            },
        );
    }

    /// The transaction record of a session that ended.
    fn record(&self, gun: u8, session: &GunSession, stop_reason: i32) -> Transaction {
        let stop_wh = self
            .opts
            .connectors
            .get(usize::from(gun) - 1)
            .map_or(session.start_wh, |c| c.register_wh);
        let energy = (stop_wh.saturating_sub(session.start_wh) * 10) as u32;
        let end = Utc::now();
        // Priced as the pile's model has it, all in the period the session ended in (sessions
        // here are short); without a model, unpriced.
        let label = self.prices.as_ref().map_or(2, |m| {
            let local = end.with_timezone(&chargemesh_ykc::fields::china());
            let slot = (local.hour() * 2 + local.minute() / 30) as usize;
            usize::from(m.slots.get(slot).copied().unwrap_or(2)).min(3)
        });
        let price = self
            .prices
            .as_ref()
            .map_or(0, |m| m.rates[label].0 + m.rates[label].1);
        let amount = (u64::from(energy) * u64::from(price) / 100_000) as u32;
        let mut periods = [PeriodUse::default(); 4];
        periods[label] = PeriodUse {
            price,
            energy,
            lossy_energy: energy,
            amount,
        };
        Transaction {
            serial: session.serial.clone(),
            pile: self.code(),
            gun,
            start: Cp56Time::from_utc(session.start),
            end: Cp56Time::from_utc(end),
            periods,
            meter_start: session.start_wh * 10,
            meter_stop: stop_wh * 10,
            energy,
            lossy_energy: energy,
            amount,
            vin: String::new(),
            start_type: if session.remote { 0x01 } else { 0x02 },
            trade_time: Cp56Time::from_utc(end),
            stop_reason: match stop_reason {
                _ if session.stop_asked => 0x40,
                3 => 0x72,
                _ => 0x45,
            },
            physical_card: [0; 8],
        }
    }

    /// A frame from the edge; what to send back.
    fn on_frame(&mut self, frame: &Frame) -> anyhow::Result<Vec<u8>> {
        let code = self.code();
        let message = match Message::decode(frame) {
            Ok(message) => message,
            Err(error) => {
                tracing::info!(pile = %code, %error, "simulated YKC pile skipped a frame");
                return Ok(Vec::new());
            }
        };
        let reply = |this: &Self, message: Message| this.encode(&message, frame.sequence);
        Ok(match message {
            Message::ReadRealtime { gun, .. } => self.realtime_frame(gun)?,
            Message::TimeSync { .. } => reply(
                self,
                Message::TimeSyncReply {
                    pile: code,
                    time: Cp56Time::from_utc(Utc::now()),
                },
            )?,
            Message::RemoteStart(start) => {
                let gun = start.gun;
                let state = self
                    .opts
                    .connectors
                    .get(usize::from(gun).wrapping_sub(1))
                    .map(|c| c.state);
                let reason = match state {
                    None => 0x01,
                    Some(tm::ConnectorState::Charging) => 0x02,
                    Some(tm::ConnectorState::Fault) => 0x03,
                    _ if self.sessions.contains_key(&gun) => 0x02,
                    _ => 0x00,
                };
                if reason == 0x00 {
                    self.granted.insert(gun, (start.serial.clone(), true));
                    if let Some(c) = self.opts.connectors.get_mut(usize::from(gun) - 1) {
                        c.start_order = Some((String::new(), start.logical_card.clone()));
                    }
                }
                reply(
                    self,
                    Message::RemoteStartReply {
                        serial: start.serial,
                        pile: code,
                        gun,
                        result: u8::from(reason == 0x00),
                        reason,
                    },
                )?
            }
            Message::CardStartReply(answer) => {
                if answer.accepted == 0x01 {
                    self.begin(answer.gun, answer.serial, false);
                    self.realtime_frame(answer.gun)?
                } else {
                    tracing::info!(pile = %code, gun = answer.gun, reason = answer.reason, "a simulated card start refused");
                    Vec::new()
                }
            }
            Message::RemoteStop { gun, .. } => {
                let running = self.sessions.get_mut(&gun);
                let result = u8::from(running.is_some());
                if let Some(session) = running {
                    session.stop_asked = true;
                    if let Some(c) = self.opts.connectors.get_mut(usize::from(gun) - 1) {
                        c.stop_requested = true;
                    }
                }
                reply(
                    self,
                    Message::RemoteStopReply {
                        pile: code,
                        gun,
                        result,
                        reason: if result == 1 { 0x00 } else { 0x02 },
                    },
                )?
            }
            Message::TransactionAck { serial, .. } => {
                self.records.remove(&serial);
                Vec::new()
            }
            Message::Restart { .. } => reply(
                self,
                Message::RestartReply {
                    pile: code,
                    result: 0x01,
                },
            )?,
            Message::WorkParams { .. } => reply(
                self,
                Message::WorkParamsReply {
                    pile: code,
                    result: 0x01,
                },
            )?,
            Message::ModelCheckReply { result: 0x01, .. } => {
                self.frame(&Message::ModelRequest { pile: code })?
            }
            Message::Model(model) => {
                self.model = model.model.clone();
                self.prices = Some(model);
                Vec::new()
            }
            Message::ModelSet(model) => {
                self.model = model.model.clone();
                self.prices = Some(model);
                reply(
                    self,
                    Message::ModelSetReply {
                        pile: code,
                        result: 0x01,
                    },
                )?
            }
            _ => Vec::new(),
        })
    }
}

/// A card number as the 8 bytes a YKC pile reads from the card: the hex digits of `reference`
/// when it has at most 16, a fixed test card otherwise.
fn card_bytes(reference: &str) -> [u8; 8] {
    let digits = chargemesh_ykc::translate::logical_card(reference);
    let mut out = [0u8; 8];
    for (i, pair) in digits.as_bytes().chunks(2).enumerate().take(8) {
        out[i] = std::str::from_utf8(pair)
            .ok()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .unwrap_or(0);
    }
    if out == [0; 8] {
        out = [0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
    }
    out
}

/// A 14-digit pile code for a simulated or demo pile: "3306" and ten digits of its name's hash.
pub fn pile_code(station: &str, pile: &str) -> String {
    let hash = chargemesh_kit::identity::report_sequence(&["ykc", station, pile]);
    format!("3306{:010}", hash % 10_000_000_000)
}
