//! The OCPP edge driven by an independent implementation: the Python `ocpp` package over
//! `websockets` (tests/ocpp/charge_point.py), as 1.6J and 2.0.1 charge points over every
//! security profile. The suite needs a Python with those packages: `CHARGEMESH_OCPP_PYTHON`
//! names it (`.ci/run` makes the virtual environment); without it the tests say so and pass,
//! except in CI, which sets `CHARGEMESH_REQUIRE_OCPP_PYTHON`.
//!
//! - this file: the full scenario of each version (profile 3 with the mesh PKI);
//! - [`security`]: profiles 1 and 2, whitepaper certificates, refusals, unknown charge points;
//! - [`operations`]: the token list, suspension and resumption, abnormal transactions;
//! - [`simulator`]: `chargemesh sim --protocol ocpp1.6|ocpp2.0.1`, our own charge points.

#[path = "../common/mod.rs"]
mod common;
mod operations;
mod security;
mod simulator;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use chargemesh::demo;
use chargemesh::pki::{self, Authority, DEMO_CREDIT_CODE, DEMO_OPERATOR_ID as OP};
use chargemesh_kit::Principal;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::asset::v1::charge_point_service_client::ChargePointServiceClient;
use chargemesh_proto::metering::v1 as mt;
use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;
use common::{TD, TestMesh, eventually, orders_when};

fn python() -> Option<PathBuf> {
    match std::env::var("CHARGEMESH_OCPP_PYTHON") {
        Ok(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            assert!(
                std::env::var("CHARGEMESH_REQUIRE_OCPP_PYTHON").is_err(),
                "CHARGEMESH_OCPP_PYTHON must name a Python with ocpp and websockets"
            );
            eprintln!("CHARGEMESH_OCPP_PYTHON is not set; the OCPP suite is skipped");
            None
        }
    }
}

/// The mesh with the OCPP edge, an operator, a station and two verified piles.
async fn fleet() -> TestMesh {
    fleet_with(|_| {}).await
}

/// As [`fleet`], with the edge's settings adjusted.
async fn fleet_with(adjust: impl FnOnce(&mut chargemesh_ocpp::OcppConfig)) -> TestMesh {
    fleet_configured(|opts| adjust(&mut opts.config.gateway.ocpp)).await
}

/// As [`fleet`], with the mesh's options adjusted (the edge's settings, telemetry's, ...).
async fn fleet_configured(adjust: impl FnOnce(&mut chargemesh::mesh::EmbeddedOptions)) -> TestMesh {
    if let Ok(level) = std::env::var("RUST_LOG") {
        std::mem::forget(chargemesh_kit::telemetry::init(
            chargemesh_kit::telemetry::LogFormat::Text,
            &level,
        ));
    }
    let mesh = TestMesh::start_with_options(|opts| {
        opts.config.gateway.ocpp.listen = "127.0.0.1:0".into();
        adjust(opts);
    })
    .await;
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    op.create_station(asset::CreateStationRequest {
        station: Some(demo::station(OP, "S1", "330602")),
    })
    .await
    .expect("station");
    for pile in ["CP16", "CP201"] {
        common::verified_pile(&mut op, "S1", pile, asset::PileType::Ac, 7.0).await;
    }
    // The card the full scenario charges with is on the operator's list.
    charge_points(&mesh)
        .put_id_token(asset::PutIdTokenRequest {
            id_token: Some(asset::IdToken {
                operator_id: OP.into(),
                token: "CARD-0042".into(),
                status: asset::IdTokenStatus::Accepted as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("card");
    mesh
}

/// Registers `pile` as an OCPP pile of `protocol`, named `charge_point_id` (empty: its id).
async fn make_ocpp(
    mesh: &TestMesh,
    pile: &str,
    protocol: asset::PileProtocol,
    charge_point_id: &str,
) {
    mesh.client("operator")
        .update_pile(asset::UpdatePileRequest {
            pile: Some(asset::Pile {
                operator_id: OP.into(),
                pile_id: pile.into(),
                protocol: protocol as i32,
                charge_point_id: charge_point_id.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["protocol".into(), "charge_point_id".into()],
            }),
            reason: "the pile speaks OCPP".into(),
        })
        .await
        .expect("an OCPP pile");
}

/// The charge point API as the operator's platform.
fn charge_points(mesh: &TestMesh) -> ChargePointServiceClient<tonic::transport::Channel> {
    ChargePointServiceClient::new(mesh.channel("operator"))
}

/// The connector's state code (T/CEC: 0 offline, 1 idle) and last-seen time (ms), as the
/// regulator reads them.
async fn connector_seen(
    regulator: &mut StatusServiceClient<tonic::transport::Channel>,
    connector: &str,
) -> Option<(i32, Option<i64>)> {
    let status = regulator
        .get_station_status(reg::GetStationStatusRequest {
            stations: vec![reg::StationKey {
                operator_id: OP.into(),
                station_id: "S1".into(),
            }],
        })
        .await
        .ok()?
        .into_inner();
    status
        .stations
        .iter()
        .flat_map(|s| &s.connectors)
        .find(|c| c.connector_id == connector)
        .map(|c| {
            let seen = c.last_seen_time.as_ref();
            (
                c.cec_status,
                seen.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000),
            )
        })
}

/// A certificate and key for `pile` from `ca`, written under `dir` as `name`.
fn pile_identity(ca: &Authority, dir: &Path, name: &str, pile: &str) -> (PathBuf, PathBuf) {
    let principal = Principal::Pile {
        operator_id: OP.into(),
        station_id: "S1".into(),
        pile_id: pile.into(),
    };
    let now = time::OffsetDateTime::now_utc();
    let pair = ca
        .issue(
            &principal,
            TD,
            &[],
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        )
        .expect("issued");
    pki::write_pair(dir, name, &pair).expect("written");
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// The TLS URL of a charge point id at the mesh's OCPP edge.
fn wss_url(mesh: &TestMesh, id: &str) -> String {
    format!("wss://127.0.0.1:{}/ocpp/{id}", ocpp_port(mesh))
}

/// The port of the mesh's OCPP edge (TLS).
fn ocpp_port(mesh: &TestMesh) -> u16 {
    mesh.mesh
        .as_ref()
        .and_then(|m| m.ocpp_addr)
        .expect("the OCPP edge listens")
        .port()
}

/// A running charge point: its output, line by line.
pub struct ChargePoint {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

/// How a charge point proves who it is.
pub enum Credential {
    /// Security profile 3: a client certificate and its key.
    Certificate(PathBuf, PathBuf),
    /// Profiles 1 and 2: HTTP Basic.
    Basic(String, String),
}

impl ChargePoint {
    fn start(
        python: &Path,
        mesh: &TestMesh,
        version: &str,
        pile: &str,
        identity: &(PathBuf, PathBuf),
        scenario: &str,
    ) -> Self {
        let credential = Credential::Certificate(identity.0.clone(), identity.1.clone());
        Self::launch(
            python,
            &wss_url(mesh, pile),
            Some(&mesh.pki().ca()),
            &credential,
            version,
            scenario,
            &[],
        )
    }

    /// Starts the charge point at `url` with `credential`; `tokens` are the ones the tokens
    /// scenario presents.
    fn launch(
        python: &Path,
        url: &str,
        ca: Option<&Path>,
        credential: &Credential,
        version: &str,
        scenario: &str,
        tokens: &[&str],
    ) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ocpp/charge_point.py");
        let mut command = tokio::process::Command::new(python);
        command
            .arg(script)
            .args(["--version", version, "--scenario", scenario])
            .args(["--url", url])
            .arg(format!("--tokens={}", tokens.join(",")));
        if let Some(ca) = ca {
            command.arg("--ca").arg(ca);
        }
        match credential {
            Credential::Certificate(cert, key) => {
                command.arg("--cert").arg(cert).arg("--key").arg(key);
            }
            Credential::Basic(user, password) => {
                command.args(["--user", user, "--password", password]);
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python runs");
        let stdout = child.stdout.take().expect("stdout");
        Self {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next thing the charge point saw, whatever it is.
    async fn expect_any(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("nothing within a minute"))
            .expect("read")
            .unwrap_or_else(|| panic!("the charge point ended"));
        serde_json::from_str(&line).expect("a JSON line")
    }

    /// The next thing the charge point saw; `event` must be the next one.
    async fn expect(&mut self, event: &str) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no {event} within a minute"))
            .expect("read")
            .unwrap_or_else(|| panic!("the charge point ended before {event}"));
        let value: Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(value["event"], event, "{value}");
        value
    }

    async fn finish(mut self) {
        self.expect("done").await;
        let status = self.child.wait().await.expect("exit");
        assert!(status.success());
    }
}

/// Drives one version's full scenario and checks what the platform made of it.
async fn full_scenario(version: &str, pile: &str) {
    let Some(python) = python() else { return };
    let mesh = fleet().await;
    let identity = pile_identity(&mesh.ca, &mesh.dir, pile, pile);
    let mut regulator = StatusServiceClient::new(mesh.channel("regulator"));
    let mut cp = ChargePoint::start(&python, &mesh, version, pile, &identity, "full");
    let connected = cp.expect("connected").await;
    assert_eq!(
        connected["subprotocol"],
        if version == "1.6" {
            "ocpp1.6"
        } else {
            "ocpp2.0.1"
        }
    );
    let boot = cp.expect("boot").await;
    assert_eq!(boot["status"], "Accepted", "REQ BASE-2: a registered pile");
    assert_eq!(boot["interval"], 300);
    cp.expect("heartbeat").await;
    assert_eq!(cp.expect("authorize").await["status"], "Accepted");
    let tx = cp.expect("transaction").await;
    assert_eq!(
        tx["ids"][0], tx["ids"][1],
        "a retried start, the same transaction"
    );
    cp.expect("ready").await;

    // REQ MON-1: the regulator sees the connector as the charge point reported it.
    let connector = format!("{pile}-1");
    let seen = eventually(
        async || connector_seen(&mut regulator, &connector).await,
        |seen| seen.is_some_and(|(code, at)| code == 1 && at.is_some()),
    )
    .await;
    assert!(seen.is_some_and(|(code, _)| code == 1), "{seen:?}");

    // The regulator sees the energy the meter values measured (4 kWh between the 1.6 charger's
    // two readings; 10 kWh over the 2.0.1 transaction's begin, periodic and end readings).
    let now = chrono::Utc::now();
    let stats = regulator
        .get_station_stats(reg::GetStationStatsRequest {
            operator_id: OP.into(),
            station_id: "S1".into(),
            start_time: Some(prost_types::Timestamp {
                seconds: (now - chrono::Duration::hours(1)).timestamp(),
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: (now + chrono::Duration::hours(1)).timestamp(),
                nanos: 0,
            }),
        })
        .await
        .expect("stats")
        .into_inner();
    let measured = stats
        .connectors
        .iter()
        .find(|c| c.connector_id == connector)
        .map(|c| c.energy_kwh.clone());
    assert_eq!(
        measured.as_deref(),
        Some(if version == "1.6" { "4.000" } else { "10.000" }),
        "{stats:?}"
    );

    // REQ SETTLE-1: the transaction, its start retried and its stop sent twice, is one order of
    // 10 kWh (1,000 Wh to 11,000 Wh).
    let orders = orders_when(&mesh, |orders| orders.iter().any(|o| o.pile_id == pile)).await;
    let mut metering = MeteringServiceClient::new(mesh.channel("operator"));
    let ours: Vec<_> = orders.iter().filter(|o| o.pile_id == pile).collect();
    assert_eq!(ours.len(), 1, "stored once: {ours:?}");
    assert_eq!(ours[0].energy_kwh, "10.000");
    assert_eq!(ours[0].stop_reason, 4, "the vehicle unplugged");
    assert!(ours[0].billable, "REQ BASE-5: a verified meter");
    assert_ne!(ours[0].total_money, "0.00");

    // A remote start through the platform's API reaches the charge point, whose session carries
    // the order; a stop and a suspension follow as commands.
    let started = metering
        .start_charge(mt::StartChargeRequest {
            operator_id: OP.into(),
            pile_id: pile.into(),
            connector_id: connector.clone(),
            authorization_ref: "app-7".into(),
        })
        .await
        .expect("started")
        .into_inner();
    let remote = cp.expect("remote_started").await;
    assert_eq!(remote["id_tag"], "app-7");
    let mut telemetry =
        TelemetryServiceClient::new(mesh.direct_channel("telemetry", &mesh.pki_files("metering")));
    let stop = telemetry
        .send_pile_command(tm::SendPileCommandRequest {
            operator_id: OP.into(),
            command: Some(tm::PileCommand {
                pile_id: pile.into(),
                connector_id: connector.clone(),
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
    let stopped = cp.expect("remote_stopped").await;
    assert_eq!(
        stopped["matches"], true,
        "the running transaction is stopped"
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
    .expect("the remote order");
    assert_eq!(settled.energy_kwh, "6.000");
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

    // ChangeAvailability for the whole pile, as a suspension under REQ MON-4 asks.
    telemetry
        .send_pile_command(tm::SendPileCommandRequest {
            operator_id: OP.into(),
            command: Some(tm::PileCommand {
                pile_id: pile.into(),
                action: Some(tm::pile_command::Action::ChangeAvailability(
                    tm::ChangeAvailabilityCommand { operative: false },
                )),
                ..Default::default()
            }),
        })
        .await
        .expect("availability queued");
    let availability = cp.expect("availability").await;
    assert_eq!(availability["type"], "Inoperative");
    assert_eq!(availability["connector_id"], 0, "the whole pile");

    // Frames no schema allows get CALLERRORs, and the connection stays up.
    let malformed = cp.expect("malformed").await;
    let answers = &malformed["answers"];
    let code = |name: &str| answers[name][2].as_str().unwrap_or_default().to_owned();
    let v16 = version == "1.6";
    assert_eq!(answers["not_json"][0], 4);
    assert_eq!(answers["not_json"][1], "-1");
    assert_eq!(
        code("not_json"),
        if v16 {
            "FormationViolation"
        } else {
            "RpcFrameworkError"
        }
    );
    assert_eq!(code("unknown_action"), "NotImplemented");
    assert_eq!(code("wrong_type"), "TypeConstraintViolation");
    assert_eq!(
        code("missing_field"),
        if v16 {
            "OccurenceConstraintViolation"
        } else {
            "OccurrenceConstraintViolation"
        }
    );
    assert_eq!(code("bad_value"), "PropertyConstraintViolation");
    assert_eq!(answers["heartbeat_after"][0], 3, "still up: {answers}");
    cp.finish().await;
    mesh.stop().await;
}

#[tokio::test]
async fn base_2_an_ocpp_1_6_charge_point_boots_reports_charges_is_settled_and_obeys() {
    full_scenario("1.6", "CP16").await;
}

#[tokio::test]
async fn base_2_an_ocpp_2_0_1_station_boots_reports_charges_is_settled_and_obeys() {
    full_scenario("2.0.1", "CP201").await;
}
