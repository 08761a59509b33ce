//! `chargemesh sim`: a fleet of piles, stations or operator platforms reporting live telemetry
//! through the gateway, with plausible status cycles and meter values, each stream over a
//! [`crate::link::Link`] (kept until acknowledged, resent after a jittered reconnect); it
//! answers resync requests and takes start commands.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rust_decimal::Decimal;

use chargemesh_kit::Principal;
use chargemesh_kit::tls::{self, TlsFiles};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::telemetry::v1 as tm;

use crate::demo;
use crate::link::{Backoff, Link, LinkConfig, LinkEvent};
use crate::pki::{Authority, DEMO_OPERATOR_ID, PkiDir};

/// Who connects: one stream per pile, per station, or one for the whole operator platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Pile,
    Station,
    Platform,
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub gateway: SocketAddr,
    pub pki: PkiDir,
    pub trust_domain: String,
    pub mode: Mode,
    /// Stations `SIM-<n>` to register and simulate, or the given existing ones.
    pub stations: Vec<String>,
    pub piles_per_station: usize,
    /// Register the stations and piles first (ignored when they exist).
    pub create: bool,
    pub tick: Duration,
    pub seed: u64,
    /// Simulate OCPP charge points (one per pile, `Mode::Pile` only) instead of telemetry
    /// streams.
    pub ocpp: Option<OcppSim>,
    /// Simulate YKC piles (one TCP connection per pile, `Mode::Pile` only) on the YKC edge at
    /// this address instead of telemetry streams.
    pub ykc: Option<SocketAddr>,
    /// Only these piles of the stations (all when empty).
    pub only_piles: Vec<String>,
}

/// How simulated OCPP charge points connect.
#[derive(Debug, Clone)]
pub struct OcppSim {
    pub version: crate::sim_ocpp::OcppVersion,
    /// The OCPP edge, such as 127.0.0.1:7445.
    pub edge: SocketAddr,
    /// Security profile 2 with this password (set on each pile when it is registered);
    /// profile 3 with a certificate of the development CA when `None`.
    pub password: Option<String>,
}

/// A tiny deterministic generator (xorshift64*), enough for plausible noise.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn draw(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.draw() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }
}

/// One simulated connector's life.
#[derive(Debug, Clone)]
pub struct SimConnector {
    pub pile_id: String,
    pub connector_id: String,
    pub state: tm::ConnectorState,
    /// The energy register, Wh.
    pub register_wh: u64,
    pub power_kw: f64,
    /// A start the platform asked for: (order id, authorisation), taken by the next session.
    pub start_order: Option<(String, String)>,
    /// The platform asked the running session to stop.
    pub stop_requested: bool,
    /// Energy delivered below a whole watt-hour, Wh.
    pub carry_wh: f64,
}

impl SimConnector {
    /// Advances one tick; returns the messages it produced (without sequence numbers).
    pub fn tick(&mut self, rng: &mut Rng, tick: Duration) -> Vec<tm::telemetry_message::Body> {
        use tm::ConnectorState as S;
        let before = self.state;
        let asked =
            self.start_order.is_some() && matches!(self.state, S::Idle | S::OccupiedNotCharging);
        let stop = std::mem::take(&mut self.stop_requested);
        self.state = match self.state {
            _ if asked => S::Charging,
            S::Charging if stop => S::Idle,
            S::Idle if rng.chance(0.05) => S::OccupiedNotCharging,
            S::OccupiedNotCharging if rng.chance(0.6) => S::Charging,
            S::OccupiedNotCharging if rng.chance(0.1) => S::Idle,
            S::Charging if rng.chance(0.03) => S::Idle,
            S::Fault if rng.chance(0.2) => S::Idle,
            s if s != S::Fault && rng.chance(0.002) => S::Fault,
            S::Unspecified | S::Offline => S::Idle,
            s => s,
        };
        let mut out = Vec::new();
        let register = || Decimal::new(self.register_wh as i64, 3).to_string();
        // A session ends before the connector says it stopped charging, and starts after it
        // says it is charging (REQ CHG-1, SETTLE-1).
        if before == S::Charging && self.state != S::Charging {
            out.push(tm::telemetry_message::Body::SessionEnd(tm::SessionEnd {
                meter_stop_kwh: register(),
                stop_reason: if self.state == S::Fault { 3 } else { 0 },
                end_confirmed: true,
                physically_separated: self.state != S::Fault,
                ..Default::default()
            }));
        }
        if self.state != before {
            out.push(self.status());
        }
        if self.state == S::Charging && before != S::Charging {
            let (order_id, authorization_ref) = self
                .start_order
                .take()
                .unwrap_or_else(|| (String::new(), format!("sim card {}", rng.draw() % 10_000)));
            out.push(tm::telemetry_message::Body::SessionStart(
                tm::SessionStart {
                    order_id,
                    authorization_ref,
                    meter_start_kwh: register(),
                    connector_checked: true,
                    charging_confirmed: true,
                    any_token: false,
                },
            ));
        }
        if self.state == S::Charging {
            let kw = self.power_kw * (0.6 + 0.4 * (rng.draw() % 100) as f64 / 100.0);
            // The register counts whole watt-hours; the rest carries over, so even a fast
            // simulation delivers exactly what its power says.
            self.carry_wh += kw * 1000.0 * tick.as_secs_f64() / 3600.0;
            let whole = self.carry_wh.floor();
            self.carry_wh -= whole;
            self.register_wh += whole as u64;
            out.push(tm::telemetry_message::Body::Meter(tm::MeterSample {
                energy_kwh: Decimal::new(self.register_wh as i64, 3).to_string(),
                power_kw: (kw * 10.0).round() / 10.0,
                voltage: 500.0,
                current: (kw * 1000.0 / 500.0 * 10.0).round() / 10.0,
                soc_percent: (20 + rng.draw() % 80) as f64,
            }));
        }
        out
    }

    fn status(&self) -> tm::telemetry_message::Body {
        tm::telemetry_message::Body::Status(tm::ConnectorStatus {
            state: self.state as i32,
            fault_code: if self.state == tm::ConnectorState::Fault {
                "E-SIM-01".into()
            } else {
                String::new()
            },
            fault_text: if self.state == tm::ConnectorState::Fault {
                "simulated insulation fault".into()
            } else {
                String::new()
            },
        })
    }
}

/// One stream's worth of connectors, with its unacknowledged messages.
struct Reporter {
    files: TlsFiles,
    gateway: SocketAddr,
    connectors: Vec<SimConnector>,
    rng: Rng,
    next_sequence: u64,
    tick: Duration,
}

impl Reporter {
    fn message(
        &mut self,
        pile_id: &str,
        connector_id: &str,
        body: tm::telemetry_message::Body,
    ) -> tm::TelemetryMessage {
        self.next_sequence += 1;
        tm::TelemetryMessage {
            sequence: self.next_sequence,
            pile_id: pile_id.to_owned(),
            connector_id: connector_id.to_owned(),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(body),
            ..Default::default()
        }
    }

    fn resync(&mut self) -> Vec<tm::TelemetryMessage> {
        let statuses: Vec<_> = self
            .connectors
            .iter()
            .map(|c| (c.pile_id.clone(), c.connector_id.clone(), c.status()))
            .collect();
        statuses
            .into_iter()
            .map(|(p, c, b)| self.message(&p, &c, b))
            .collect()
    }

    fn step(&mut self, beat: bool) -> Vec<tm::TelemetryMessage> {
        let mut produced = Vec::new();
        for i in 0..self.connectors.len() {
            let bodies = self.connectors[i].tick(&mut self.rng, self.tick);
            let (p, c) = (
                self.connectors[i].pile_id.clone(),
                self.connectors[i].connector_id.clone(),
            );
            produced.extend(bodies.into_iter().map(|b| (p.clone(), c.clone(), b)));
        }
        if beat {
            let mut piles: Vec<String> =
                self.connectors.iter().map(|c| c.pile_id.clone()).collect();
            piles.dedup();
            for p in piles {
                produced.push((
                    p,
                    String::new(),
                    tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {}),
                ));
            }
        }
        produced
            .into_iter()
            .map(|(p, c, b)| self.message(&p, &c, b))
            .collect()
    }

    /// Reports until the task is aborted, over a link that reconnects with jitter and resends
    /// what was not acknowledged; every connector's status goes again on each new stream.
    async fn run(mut self) {
        let tls = match tls::client_config(&self.files) {
            Ok(c) => Arc::new(c),
            Err(error) => {
                tracing::error!(%error, "simulator identity unusable");
                return;
            }
        };
        let mut link = Link::spawn(LinkConfig {
            gateway: format!("https://127.0.0.1:{}", self.gateway.port()),
            tls,
            backoff: Backoff::default(),
            seed: self.rng.draw(),
        });
        let mut ticks = tokio::time::interval(self.tick);
        let mut n = 0u64;
        loop {
            let messages = tokio::select! {
                _ = ticks.tick() => {
                    n += 1;
                    self.step(n.is_multiple_of(10))
                }
                event = link.event() => match event {
                    Some(LinkEvent::Connected { .. } | LinkEvent::Resync) => self.resync(),
                    Some(LinkEvent::Command(command)) => {
                        let pile = command.pile_id.clone();
                        let (outcome, detail) = match command.action {
                            Some(tm::pile_command::Action::StartCharge(start)) => {
                                match self.connectors.iter_mut().find(|c| {
                                    c.pile_id == command.pile_id
                                        && c.connector_id == command.connector_id
                                }) {
                                    Some(c) => {
                                        c.start_order =
                                            Some((start.order_id, start.authorization_ref));
                                        (tm::CommandOutcome::Accepted, String::new())
                                    }
                                    None => (tm::CommandOutcome::Rejected, "no such connector".into()),
                                }
                            }
                            _ => (tm::CommandOutcome::Rejected, "not supported".into()),
                        };
                        // Every command is answered, so the platform knows it is done.
                        vec![self.message(
                            &pile,
                            "",
                            tm::telemetry_message::Body::CommandResult(tm::CommandResult {
                                command_id: command.command_id,
                                outcome: outcome as i32,
                                detail,
                            }),
                        )]
                    }
                    Some(LinkEvent::Rejected(r)) => {
                        tracing::warn!(sequence = r.sequence, code = %r.code, reason = %r.reason, "simulated message rejected");
                        Vec::new()
                    }
                    Some(LinkEvent::Acknowledged { .. } | LinkEvent::Dropped { .. }) => Vec::new(),
                    None => return,
                },
            };
            if !messages.is_empty() && link.send(messages).await.is_err() {
                return;
            }
        }
    }
}

async fn register(opts: &SimOptions) -> anyhow::Result<()> {
    let mut client = demo::asset_client(opts.gateway, &opts.pki.files("operator"))?;
    let registered = client
        .create_operator(asset::CreateOperatorRequest {
            operator: Some(demo::operator(crate::pki::DEMO_CREDIT_CODE)),
        })
        .await;
    if let Err(status) = registered
        && status.code() != tonic::Code::AlreadyExists
    {
        return Err(status).context("registering the demo operator");
    }
    for station in &opts.stations {
        let created = client
            .create_station(asset::CreateStationRequest {
                station: Some(demo::station(DEMO_OPERATOR_ID, station, "330602")),
            })
            .await;
        if let Err(status) = created
            && status.code() != tonic::Code::AlreadyExists
        {
            return Err(status).context("registering a simulated station");
        }
        for p in 0..opts.piles_per_station {
            let pile = format!("{station}-P{p:02}");
            let mut record =
                demo::pile(DEMO_OPERATOR_ID, station, &pile, asset::PileType::Dc, 60.0);
            if opts.ykc.is_some() {
                record.protocol = asset::PileProtocol::Ykc as i32;
                record.charge_point_id = crate::sim_ykc::pile_code(station, &pile);
            }
            if let Some(ocpp) = &opts.ocpp {
                record.protocol = match ocpp.version {
                    crate::sim_ocpp::OcppVersion::V16 => asset::PileProtocol::Ocpp16,
                    crate::sim_ocpp::OcppVersion::V201 => asset::PileProtocol::Ocpp201,
                } as i32;
            }
            let created = client
                .create_pile(asset::CreatePileRequest { pile: Some(record) })
                .await;
            if let Err(status) = created
                && status.code() != tonic::Code::AlreadyExists
            {
                return Err(status).context("registering a simulated pile");
            }
            if let Some(password) = opts.ocpp.as_ref().and_then(|o| o.password.as_ref()) {
                crate::demo::set_password(opts.gateway, &opts.pki, &pile, password).await?;
            }
        }
    }
    Ok(())
}

/// The simulated stations' piles, read back from the registry.
struct Fleet {
    /// Each station's connectors.
    stations: Vec<(String, Vec<SimConnector>)>,
    /// Each pile's charge point id (a YKC pile's pile code).
    charge_point_ids: std::collections::HashMap<String, String>,
}

/// The connectors of the simulated stations, read back from the registry.
async fn connectors(opts: &SimOptions) -> anyhow::Result<Fleet> {
    let mut client = demo::asset_client(opts.gateway, &opts.pki.files("operator"))?;
    let mut out = Vec::new();
    let mut charge_point_ids = std::collections::HashMap::new();
    let mut rng = Rng(opts.seed | 1);
    for station in &opts.stations {
        let piles = client
            .list_piles(asset::ListPilesRequest {
                operator_id: DEMO_OPERATOR_ID.into(),
                station_id: station.clone(),
                page_size: 500,
                page_token: String::new(),
            })
            .await
            .with_context(|| format!("reading the piles of {station}"))?
            .into_inner()
            .piles;
        charge_point_ids.extend(
            piles
                .iter()
                .map(|p| (p.pile_id.clone(), p.charge_point_id.clone())),
        );
        let mut list = Vec::new();
        for p in piles.iter().filter(|p| {
            p.state != asset::PileState::Retired as i32
                && (opts.only_piles.is_empty() || opts.only_piles.contains(&p.pile_id))
        }) {
            for c in &p.connectors {
                list.push(SimConnector {
                    pile_id: p.pile_id.clone(),
                    connector_id: c.connector_id.clone(),
                    state: tm::ConnectorState::Idle,
                    register_wh: 1_000_000 + rng.draw() % 1_000_000,
                    power_kw: c.power_kw,
                    start_order: None,
                    stop_requested: false,
                    carry_wh: 0.0,
                });
            }
        }
        out.push((station.clone(), list));
    }
    Ok(Fleet {
        stations: out,
        charge_point_ids,
    })
}

/// Starts the simulated fleet; returns the reporting tasks.
pub async fn start(opts: SimOptions) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    if opts.create {
        register(&opts).await?;
    }
    let fleet = connectors(&opts).await?;
    let ca = match opts.mode {
        Mode::Platform => None,
        _ => Some(
            Authority::load(&opts.pki.dir)
                .context("sim issues identities from the development CA")?,
        ),
    };
    let identity = |name: &str, principal: &Principal| -> anyhow::Result<TlsFiles> {
        let ca = ca.as_ref().context("no CA")?;
        opts.pki.simulated(ca, &opts.trust_domain, name, principal)
    };
    let mut groups: Vec<(TlsFiles, Vec<SimConnector>)> = Vec::new();
    let mut charge_points = Vec::new();
    if (opts.ocpp.is_some() || opts.ykc.is_some()) && opts.mode != Mode::Pile {
        anyhow::bail!("OCPP and YKC piles are simulated one per pile (--mode pile)");
    }
    let Fleet {
        stations: fleet,
        charge_point_ids: ykc_codes,
    } = fleet;
    let mut ykc_piles = Vec::new();
    match opts.mode {
        Mode::Platform => groups.push((
            opts.pki.files("operator"),
            fleet.into_iter().flat_map(|(_, c)| c).collect(),
        )),
        Mode::Station => {
            for (station, list) in fleet {
                let principal = Principal::Station {
                    operator_id: DEMO_OPERATOR_ID.into(),
                    station_id: station.clone(),
                };
                groups.push((identity(&format!("station-{station}"), &principal)?, list));
            }
        }
        Mode::Pile => {
            for (station, list) in fleet {
                let mut by_pile: Vec<(String, Vec<SimConnector>)> = Vec::new();
                for c in list {
                    match by_pile.last_mut() {
                        Some((p, v)) if *p == c.pile_id => v.push(c),
                        _ => by_pile.push((c.pile_id.clone(), vec![c])),
                    }
                }
                for (pile, list) in by_pile {
                    let principal = Principal::Pile {
                        operator_id: DEMO_OPERATOR_ID.into(),
                        station_id: station.clone(),
                        pile_id: pile.clone(),
                    };
                    if let Some(edge) = opts.ykc {
                        let Some(code) = ykc_codes.get(&pile).filter(|c| !c.is_empty()) else {
                            tracing::warn!(%pile, "not a YKC pile (no pile code registered); not simulated");
                            continue;
                        };
                        ykc_piles.push(crate::sim_ykc::YkcPileOptions {
                            edge,
                            code: code.clone(),
                            connectors: list,
                            tick: opts.tick,
                            seed: opts.seed.wrapping_add(ykc_piles.len() as u64 * 7919),
                            crc_high_first: false,
                            record_resend_s: 5,
                        });
                        continue;
                    }
                    if let Some(ocpp) = &opts.ocpp {
                        let credential = match &ocpp.password {
                            Some(password) => crate::sim_ocpp::Credential::Password {
                                ca_file: opts.pki.ca(),
                                password: password.clone(),
                            },
                            None => crate::sim_ocpp::Credential::Certificate(identity(
                                &format!("pile-{pile}"),
                                &principal,
                            )?),
                        };
                        charge_points.push(crate::sim_ocpp::ChargePointOptions {
                            base_url: format!("wss://{}/ocpp/", ocpp.edge),
                            charge_point_id: pile.clone(),
                            version: ocpp.version,
                            credential,
                            connectors: list,
                            tick: opts.tick,
                            seed: opts.seed.wrapping_add(charge_points.len() as u64 * 7919),
                        });
                        continue;
                    }
                    groups.push((identity(&format!("pile-{pile}"), &principal)?, list));
                }
            }
        }
    }
    let mut tasks = Vec::new();
    for (i, (files, connectors)) in groups.into_iter().enumerate() {
        let reporter = Reporter {
            files,
            gateway: opts.gateway,
            connectors,
            rng: Rng((opts.seed.wrapping_add(i as u64 * 7919)) | 1),
            next_sequence: chrono::Utc::now().timestamp_micros() as u64,
            tick: opts.tick,
        };
        tasks.push(tokio::spawn(reporter.run()));
    }
    for charge_point in charge_points {
        tasks.push(tokio::spawn(crate::sim_ocpp::run(charge_point)));
    }
    for pile in ykc_piles {
        tasks.push(tokio::spawn(crate::sim_ykc::run(pile)));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectors_cycle_through_plausible_states_and_the_register_only_rises() {
        let mut rng = Rng(42);
        let mut c = SimConnector {
            pile_id: "P".into(),
            connector_id: "C".into(),
            state: tm::ConnectorState::Idle,
            register_wh: 1000,
            power_kw: 60.0,
            start_order: None,
            stop_requested: false,
            carry_wh: 0.0,
        };
        let mut seen = std::collections::HashSet::new();
        let mut last = c.register_wh;
        let mut open = false;
        let mut sessions = 0;
        for _ in 0..5000 {
            for body in c.tick(&mut rng, Duration::from_secs(5)) {
                match body {
                    tm::telemetry_message::Body::SessionStart(_) => {
                        assert!(!open, "one session at a time");
                        open = true;
                        sessions += 1;
                    }
                    tm::telemetry_message::Body::SessionEnd(_) => {
                        assert!(open, "an end follows its start");
                        open = false;
                    }
                    tm::telemetry_message::Body::Meter(_) => {
                        assert!(open, "readings within a session")
                    }
                    _ => {}
                }
            }
            seen.insert(c.state as i32);
            assert!(c.register_wh >= last);
            last = c.register_wh;
        }
        assert!(sessions > 10, "{sessions} sessions");
        // A start the platform asked for begins at the next tick under its order id.
        let mut asked = SimConnector {
            state: tm::ConnectorState::Idle,
            start_order: Some(("MA2D3K7Q0261120174000000001".into(), "app".into())),
            ..c.clone()
        };
        let started = asked
            .tick(&mut rng, Duration::from_secs(5))
            .into_iter()
            .any(|b| {
                matches!(b, tm::telemetry_message::Body::SessionStart(s)
                    if s.order_id == "MA2D3K7Q0261120174000000001")
            });
        assert!(started && asked.start_order.is_none());
        assert!(seen.contains(&(tm::ConnectorState::Charging as i32)));
        assert!(seen.contains(&(tm::ConnectorState::Idle as i32)));
        assert!(last > 1000, "charging delivered energy");
    }
}
