//! The YKC (云快充) edge end to end: a pile written against the wire (frames built by the codec
//! whose encodings the note's clean vectors pin down) logs in over TCP to the gateway of a mesh,
//! reports, charges and is settled; the refusals of REQ NETSEC-1 for a protocol without
//! credentials; liveness (REQ MON-1); and `chargemesh sim --protocol ykc` ([`simulator`]).

mod commands;
#[path = "../common/mod.rs"]
mod common;
mod simulator;
mod upkeep;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use chargemesh::demo;
use chargemesh::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID as OP};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::metering::v1 as mt;
use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use chargemesh_ykc::records::{Login, PeriodUse, Realtime, Transaction};
use chargemesh_ykc::{Cp56Time, CrcOrder, Frame, FrameReader, Message, YkcConfig};
use common::{TestMesh, eventually, orders_when};

const PILE: &str = "YP1";
const CODE: &str = "33060200000101";

/// The mesh with the YKC edge (the operator's piles allowed from 127.0.0.1 only), an operator,
/// a station and a verified DC pile registered as a YKC pile.
async fn fleet_with(adjust: impl FnOnce(&mut YkcConfig)) -> TestMesh {
    let mesh = TestMesh::start_with_options(|opts| {
        let ykc = &mut opts.config.gateway.ykc;
        ykc.listen = "127.0.0.1:0".into();
        ykc.operators = vec![chargemesh_ykc::config::OperatorNetworks {
            operator_id: OP.into(),
            networks: vec!["127.0.0.1/32".into()],
        }];
        adjust(ykc);
    })
    .await;
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    let mut station = demo::station(OP, "S1", "330602");
    // Card starts are authorised without a token list.
    station.accept_any_id_token = true;
    op.create_station(asset::CreateStationRequest {
        station: Some(station),
    })
    .await
    .expect("station");
    common::verified_pile(&mut op, "S1", PILE, asset::PileType::Dc, 60.0).await;
    op.update_pile(asset::UpdatePileRequest {
        pile: Some(asset::Pile {
            operator_id: OP.into(),
            pile_id: PILE.into(),
            protocol: asset::PileProtocol::Ykc as i32,
            charge_point_id: CODE.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["protocol".into(), "charge_point_id".into()],
        }),
        reason: "the pile speaks YKC".into(),
    })
    .await
    .expect("a YKC pile");
    mesh
}

fn edge(mesh: &TestMesh) -> SocketAddr {
    mesh.mesh
        .as_ref()
        .and_then(|m| m.ykc_addr)
        .expect("the YKC edge listens")
}

/// A pile's connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A pile's end of a YKC connection.
struct YkcPile {
    stream: Box<dyn Io>,
    reader: FrameReader,
    frames: u16,
    code: String,
    order: CrcOrder,
}

impl YkcPile {
    async fn connect(edge: SocketAddr, code: &str) -> Self {
        Self::connect_from(None, edge, code).await
    }

    async fn connect_from(source: Option<IpAddr>, edge: SocketAddr, code: &str) -> Self {
        let stream = match source {
            Some(ip) => {
                let socket = TcpSocket::new_v4().expect("socket");
                socket.bind(SocketAddr::new(ip, 0)).expect("bound");
                socket.connect(edge).await.expect("connected")
            }
            None => TcpStream::connect(edge).await.expect("connected"),
        };
        Self::over(Box::new(stream), code)
    }

    /// A pile on a connection already made (a TLS one).
    fn over(stream: Box<dyn Io>, code: &str) -> Self {
        Self {
            stream,
            reader: FrameReader::new(),
            frames: 0,
            code: code.into(),
            // Like 11 of the 32 real pile samples.
            order: CrcOrder::HighFirst,
        }
    }

    async fn send(&mut self, message: &Message) {
        let sequence = self.frames.to_le_bytes();
        self.frames = self.frames.wrapping_add(1);
        let bytes = message
            .to_frame(sequence)
            .and_then(|f| f.encode_with(self.order))
            .expect("encoded");
        self.stream.write_all(&bytes).await.expect("sent");
    }

    /// The next frame from the edge; `None` when the edge closed the connection.
    async fn next(&mut self) -> Option<(Frame, Message)> {
        let mut buffer = [0u8; 1024];
        loop {
            if let Some(received) = self.reader.next_frame() {
                assert_eq!(
                    received.crc_order,
                    CrcOrder::LowFirst,
                    "the edge sends low byte first"
                );
                let message = Message::decode(&received.frame).expect("the edge's frames decode");
                return Some((received.frame, message));
            }
            let n = tokio::time::timeout(Duration::from_secs(15), self.stream.read(&mut buffer))
                .await
                .expect("the edge answers in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.reader.extend(&buffer[..n]);
        }
    }

    /// The next frame `wanted` picks, skipping the others.
    async fn expect<T>(&mut self, what: &str, wanted: impl Fn(&Frame, &Message) -> Option<T>) -> T {
        loop {
            let (frame, message) = self
                .next()
                .await
                .unwrap_or_else(|| panic!("closed while waiting for {what}"));
            if let Some(found) = wanted(&frame, &message) {
                return found;
            }
        }
    }

    async fn login(&mut self) -> u8 {
        let code = self.code.clone();
        self.send(&Message::Login(Login {
            pile: code,
            pile_type: 0,
            guns: 1,
            protocol: 0x10,
            software: "TEST1.6".into(),
            network: 0,
            iccid: "898604D11722D0348606".into(),
            carrier: 2,
        }))
        .await;
        self.expect("the login's answer", |frame, m| match m {
            Message::LoginReply { result, .. } => {
                assert_eq!(
                    frame.sequence,
                    [0, 0],
                    "the reply echoes the login's sequence"
                );
                Some(*result)
            }
            _ => None,
        })
        .await
    }

    async fn realtime(&mut self, status: u8, serial: &str, energy: u32, faults: u16) {
        let code = self.code.clone();
        self.send(&Message::Realtime(Realtime {
            serial: serial.into(),
            pile: code,
            gun: 1,
            status,
            returned: 0,
            plugged: u8::from(status == 0x03),
            voltage: 4000,
            current: if status == 0x03 { 1500 } else { 0 },
            gun_temperature: 75,
            cable_code: [0; 8],
            soc: 40,
            battery_temperature: 75,
            minutes: 1,
            remaining_minutes: 30,
            energy,
            lossy_energy: energy,
            amount: 0,
            faults,
        }))
        .await;
    }

    /// A record of `energy` (0.0001 kWh) priced at `price` (yuan/kWh × 10⁵), as a pile prices
    /// it with its model.
    fn record(&self, serial: &str, energy: u32, stop_reason: u8, price: u32) -> Message {
        let now = chrono::Utc::now();
        let flat = PeriodUse {
            price,
            energy,
            lossy_energy: energy,
            amount: (u64::from(energy) * u64::from(price) / 100_000) as u32,
        };
        Message::Transaction(Box::new(Transaction {
            serial: serial.into(),
            pile: self.code.clone(),
            gun: 1,
            start: Cp56Time::from_utc(now - chrono::Duration::seconds(5)),
            end: Cp56Time::from_utc(now),
            periods: [
                PeriodUse::default(),
                PeriodUse::default(),
                flat,
                PeriodUse::default(),
            ],
            meter_start: 0,
            meter_stop: 0,
            energy,
            lossy_energy: energy,
            amount: flat.amount,
            vin: String::new(),
            start_type: 0x01,
            trade_time: Cp56Time::from_utc(now),
            stop_reason,
            physical_card: [0; 8],
        }))
    }

    /// Sends a record and waits for its confirmation's result.
    async fn settle(&mut self, record: &Message) -> u8 {
        self.send(record).await;
        let Message::Transaction(sent) = record else {
            panic!("not a record");
        };
        let serial = sent.serial.clone();
        self.expect("the record's confirmation", |_, m| match m {
            Message::TransactionAck { serial: s, result } if *s == serial => Some(*result),
            _ => None,
        })
        .await
    }
}

async fn connector_status(mesh: &TestMesh, done: impl Fn(i32) -> bool) -> i32 {
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let connector = format!("{PILE}-1");
    eventually(
        async || {
            regulator
                .get_station_status(reg::GetStationStatusRequest {
                    stations: vec![reg::StationKey {
                        operator_id: OP.into(),
                        station_id: "S1".into(),
                    }],
                })
                .await
                .map(|r| r.into_inner())
                .unwrap_or_default()
                .stations
                .iter()
                .flat_map(|s| &s.connectors)
                .find(|c| c.connector_id == connector)
                .map_or(-1, |c| c.cec_status)
        },
        |status| done(*status),
    )
    .await
}

#[tokio::test]
async fn netsec_1_a_ykc_pile_logs_in_reports_charges_and_is_settled_through_the_gateway() {
    let mesh = fleet_with(|_| {}).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(
        pile.login().await,
        0x00,
        "a registered pile code from its operator's network"
    );
    // After the login the edge sets the pile's clock and asks for each gun's data.
    pile.expect("a time sync", |_, m| {
        matches!(m, Message::TimeSync { .. }).then_some(())
    })
    .await;
    let gun = pile
        .expect("a request for real-time data", |_, m| match m {
            Message::ReadRealtime { gun, .. } => Some(*gun),
            _ => None,
        })
        .await;
    assert_eq!(gun, 1);

    // REQ MON-10: a pile without a model is told its model differs, asks for it, and is given
    // the station's tariff in force as 4 price pairs and 48 half-hour slots.
    pile.send(&Message::ModelCheck {
        pile: CODE.into(),
        model: "0000".into(),
    })
    .await;
    let differs = pile
        .expect("the model check's answer", |_, m| match m {
            Message::ModelCheckReply { result, .. } => Some(*result),
            _ => None,
        })
        .await;
    assert_eq!(differs, 0x01);
    pile.send(&Message::ModelRequest { pile: CODE.into() })
        .await;
    let model = pile
        .expect("the billing model", |_, m| match m {
            Message::Model(model) => Some(model.clone()),
            _ => None,
        })
        .await;
    assert_eq!(model.model, "0001", "the tariff's first version");
    assert_eq!(model.rates[1], (98_000, 80_000), "peak");
    assert_eq!(model.rates[2], (65_000, 60_000), "flat");
    assert_eq!(model.rates[3], (35_000, 40_000), "valley");
    assert_eq!(
        (model.slots[0], model.slots[15]),
        (3, 3),
        "00:00-08:00 valley"
    );
    assert_eq!(
        (model.slots[16], model.slots[33]),
        (2, 2),
        "08:00-17:00 flat"
    );
    assert_eq!(
        (model.slots[34], model.slots[41]),
        (1, 1),
        "17:00-21:00 peak"
    );
    assert_eq!(model.slots[47], 2, "21:00-24:00 flat");
    pile.send(&Message::ModelCheck {
        pile: CODE.into(),
        model: model.model.clone(),
    })
    .await;
    let same = pile
        .expect("the model check's answer", |_, m| match m {
            Message::ModelCheckReply { result, .. } => Some(*result),
            _ => None,
        })
        .await;
    assert_eq!(same, 0x00, "the model in force");

    pile.send(&Message::Heartbeat {
        pile: CODE.into(),
        gun: 1,
        status: 0,
    })
    .await;
    pile.expect("the heartbeat's answer", |_, m| {
        matches!(m, Message::HeartbeatReply { gun: 1, .. }).then_some(())
    })
    .await;

    // REQ MON-1: YKC idle (0x02) reaches the regulator as T/CEC idle (1), a fault (0x01) as 255.
    pile.realtime(0x02, &"0".repeat(32), 0, 0).await;
    assert_eq!(connector_status(&mesh, |s| s == 1).await, 1);
    pile.realtime(0x01, &"0".repeat(32), 0, 0b1).await;
    assert_eq!(connector_status(&mesh, |s| s == 255).await, 255);
    pile.realtime(0x02, &"0".repeat(32), 0, 0).await;
    assert_eq!(connector_status(&mesh, |s| s == 1).await, 1);

    // A remote start through the platform's API reaches the pile as 0x34 with a serial; the
    // pile starts and charges under it; a stop follows as 0x36.
    let mut metering = MeteringServiceClient::new(mesh.channel("operator"));
    let started = metering
        .start_charge(mt::StartChargeRequest {
            operator_id: OP.into(),
            pile_id: PILE.into(),
            connector_id: format!("{PILE}-1"),
            authorization_ref: "1234".into(),
        })
        .await
        .expect("started")
        .into_inner();
    let (frame_seq, start) = pile
        .expect("a remote start", |f, m| match m {
            Message::RemoteStart(start) => Some((f.sequence, start.clone())),
            _ => None,
        })
        .await;
    assert_eq!((start.pile.as_str(), start.gun), (CODE, 1));
    assert_eq!(start.logical_card, "0000000000001234");
    assert!(
        start.serial.starts_with(CODE),
        "the documented serial form: {}",
        start.serial
    );
    assert!(
        u16::from_le_bytes(frame_seq) >= 2,
        "the edge numbers its own frames after the time sync and the data request: {frame_seq:?}"
    );
    pile.send(&Message::RemoteStartReply {
        serial: start.serial.clone(),
        pile: CODE.into(),
        gun: 1,
        result: 0x01,
        reason: 0x00,
    })
    .await;
    pile.realtime(0x03, &start.serial, 0, 0).await;
    assert_eq!(connector_status(&mesh, |s| s == 3).await, 3, "charging");
    // A few seconds of charging at the pile's 60 kW (more energy in less time is flagged as
    // above its rating, REQ MON-9).
    tokio::time::sleep(Duration::from_secs(4)).await;
    pile.realtime(0x03, &start.serial, 300, 0).await;
    let mut telemetry =
        TelemetryServiceClient::new(mesh.direct_channel("telemetry", &mesh.pki_files("metering")));
    let stop = telemetry
        .send_pile_command(tm::SendPileCommandRequest {
            operator_id: OP.into(),
            command: Some(tm::PileCommand {
                pile_id: PILE.into(),
                connector_id: format!("{PILE}-1"),
                action: Some(tm::pile_command::Action::StopCharge(
                    tm::StopChargeCommand {
                        order_id: started.order_id.clone(),
                    },
                )),
                ..Default::default()
            }),
        })
        .await
        .expect("stop queued")
        .into_inner();
    pile.expect("a remote stop", |_, m| {
        matches!(m, Message::RemoteStop { gun: 1, .. }).then_some(())
    })
    .await;
    pile.send(&Message::RemoteStopReply {
        pile: CODE.into(),
        gun: 1,
        result: 0x01,
        reason: 0x00,
    })
    .await;
    let answered = eventually(
        async || {
            telemetry
                .get_pile_command(tm::GetPileCommandRequest {
                    operator_id: OP.into(),
                    command_id: stop.command_id.clone(),
                })
                .await
                .expect("command")
                .into_inner()
                .command
                .map(|c| c.state)
        },
        |state| *state == Some(tm::PileCommandState::Accepted as i32),
    )
    .await;
    assert_eq!(answered, Some(tm::PileCommandState::Accepted as i32));

    // The record (0.05 kWh, stopped by the platform) is confirmed once durable, and a resent
    // record is confirmed again and stored once (REQ SETTLE-1).
    // Priced as the pile's model prices now (the period in force depends on the hour).
    let local = chrono::Utc::now().with_timezone(&chargemesh_ykc::fields::china());
    let slot =
        (chrono::Timelike::hour(&local) * 2 + chrono::Timelike::minute(&local) / 30) as usize;
    let (electricity, service) = model.rates[usize::from(model.slots[slot])];
    let price = electricity + service;
    let record = pile.record(&start.serial, 500, 0x40, price);
    assert_eq!(pile.settle(&record).await, 0x00);
    assert_eq!(
        pile.settle(&record).await,
        0x00,
        "a resent record is confirmed again"
    );
    let settled = eventually(
        async || {
            metering
                .get_charge_order(mt::GetChargeOrderRequest {
                    operator_id: OP.into(),
                    order_id: started.order_id.clone(),
                    version: 0,
                })
                .await
                .ok()
                .and_then(|r| r.into_inner().order)
        },
        Option::is_some,
    )
    .await
    .expect("the remote order is settled");
    assert_eq!(settled.energy_kwh, "0.050");
    assert_eq!(settled.stop_reason, 1, "stopped by the home platform");
    assert!(settled.billable, "REQ BASE-5: a verified meter");
    assert_ne!(
        settled.total_money, "0.00",
        "priced by the station's tariff"
    );
    // REQ SETTLE-1: the pile's own figures (4 places) are kept and agree with metering's
    // within rounding.
    assert!(settled.flags.is_empty(), "{:?}", settled.flags);
    let money = 500 * u64::from(price) / 100_000;
    assert_eq!(
        (
            settled.reported_energy_kwh.as_str(),
            settled.reported_total_money.as_str()
        ),
        (
            "0.050",
            format!("{}.{:04}", money / 10_000, money % 10_000).as_str()
        )
    );
    let orders = orders_when(&mesh, |o| !o.is_empty()).await;
    assert_eq!(
        orders.iter().filter(|o| o.pile_id == PILE).count(),
        1,
        "stored once: {orders:?}"
    );
}

#[tokio::test]
async fn mon_9_a_record_of_a_session_never_seen_is_kept_as_an_abnormal_order() {
    let mesh = fleet_with(|_| {}).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
    // An offline session the pile ran while disconnected: its serial is its own.
    let record = pile.record("33060200000101012612061000000001", 12_345, 0x45, 125_000);
    assert_eq!(
        pile.settle(&record).await,
        0x00,
        "confirmed: the record is kept"
    );
    let orders = orders_when(&mesh, |o| o.iter().any(|o| o.pile_id == PILE)).await;
    let ours: Vec<_> = orders.iter().filter(|o| o.pile_id == PILE).collect();
    assert_eq!(ours.len(), 1, "{orders:?}");
    let kinds: Vec<i32> = ours[0].flags.iter().map(|f| f.kind).collect();
    assert!(
        kinds.contains(&(mt::FlagKind::NeverStarted as i32)),
        "{:?}",
        ours[0].flags
    );
    // REQ SETTLE-1: what the pile says it delivered and charged is kept on the order for the
    // monitor who verifies it.
    assert_eq!(
        (
            ours[0].reported_energy_kwh.as_str(),
            ours[0].reported_total_money.as_str()
        ),
        ("1.235", "1.5431")
    );
}

#[tokio::test]
async fn netsec_1_an_unregistered_pile_code_is_refused_and_the_connection_closed() {
    let mesh = fleet_with(|_| {}).await;
    let mut pile = YkcPile::connect(edge(&mesh), "99999999999999").await;
    assert_eq!(pile.login().await, 0x01, "login failure");
    assert!(pile.next().await.is_none(), "then the edge closes");
}

#[tokio::test]
async fn netsec_1_a_connection_from_outside_the_operator_s_networks_is_closed_unread() {
    let mesh = fleet_with(|_| {}).await;
    // 127.0.0.2 is in no operator's networks (only 127.0.0.1/32 is allowed).
    let mut pile =
        YkcPile::connect_from(Some("127.0.0.2".parse().expect("ip")), edge(&mesh), CODE).await;
    pile.send(&Message::Login(Login {
        pile: CODE.into(),
        pile_type: 0,
        guns: 1,
        protocol: 0x10,
        software: "TEST1.6".into(),
        network: 0,
        iccid: "0".repeat(20),
        carrier: 0,
    }))
    .await;
    assert!(pile.next().await.is_none(), "closed without a word");
    // The same pile code from its operator's network is served.
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
}

#[tokio::test]
async fn netsec_1_a_second_login_of_a_pile_code_replaces_the_older_connection() {
    let mesh = fleet_with(|_| {}).await;
    let mut first = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(first.login().await, 0x00);
    let mut second = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(second.login().await, 0x00);
    // The first connection is closed; frames left in it (the greeting) come first.
    while first.next().await.is_some() {}
    second.realtime(0x02, &"0".repeat(32), 0, 0).await;
    assert_eq!(connector_status(&mesh, |s| s == 1).await, 1);
}

#[tokio::test]
async fn mon_1_a_pile_that_goes_silent_turns_offline() {
    let mesh = fleet_with(|ykc| {
        ykc.heartbeat_s = 1;
        ykc.missed_heartbeats = 2;
    })
    .await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    assert_eq!(pile.login().await, 0x00);
    pile.realtime(0x02, &"0".repeat(32), 0, 0).await;
    assert_eq!(connector_status(&mesh, |s| s == 1).await, 1);
    // Silent from now on: the edge closes the connection and reports the gun offline (0).
    while pile.next().await.is_some() {}
    assert_eq!(connector_status(&mesh, |s| s == 0).await, 0);
}

#[tokio::test]
async fn garbage_an_encrypted_frame_and_an_unknown_type_do_not_drop_the_connection() {
    let mesh = fleet_with(|_| {}).await;
    let mut pile = YkcPile::connect(edge(&mesh), CODE).await;
    // Noise before the login is skipped.
    pile.stream
        .write_all(&[0x00, 0x68, 0x02, 0xFF])
        .await
        .expect("noise");
    assert_eq!(pile.login().await, 0x00);
    let mut encrypted = Message::Heartbeat {
        pile: CODE.into(),
        gun: 1,
        status: 0,
    }
    .to_frame([9, 0])
    .expect("frame");
    encrypted.encryption = 0x01;
    let bytes = encrypted.encode().expect("encoded");
    pile.stream.write_all(&bytes).await.expect("sent");
    pile.send(&Message::Other {
        kind: 0x61,
        body: vec![0; 16],
    })
    .await;
    pile.send(&Message::Heartbeat {
        pile: CODE.into(),
        gun: 1,
        status: 0,
    })
    .await;
    pile.expect("the heartbeat's answer", |_, m| {
        matches!(m, Message::HeartbeatReply { .. }).then_some(())
    })
    .await;
}
