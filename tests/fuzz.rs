//! Fuzz-style properties over the two edges clients write to (REQ NETSEC-1): thousands of
//! arbitrary T/CEC 102 requests, sealed correctly by a configured peer so they reach every step
//! past the envelope, and thousands of arbitrary telemetry messages on a pile stream. Each gets
//! an answer in its protocol's terms, nothing panics, and the mesh keeps serving afterwards.
//! The cases come from proptest's generators, run against the real components.

mod common;

use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::{Config, TestRunner};

use chargemesh_cec::edge::Edge;
use chargemesh_cec::token::TokenKey;
use chargemesh_cec::{Request, Response, Ret};
use chargemesh_kit::clock::SystemClock;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::connect_response::Body as Answer;
use common::cec::{SHAOXING, cec_config, mesh_with, secrets, upstreams};
use common::{TelemetryStream, TestMesh};

/// The cases of `strategy`, `count` of them, from a fixed seed (a failure names its case).
fn cases<S: Strategy>(strategy: S, count: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).expect("a case").current())
        .collect()
}

/// Any JSON, with the payload keys of every interface among the names.
fn any_payload() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| {
            serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)
        }),
        "\\PC{0,24}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("2026-03-01 08:00:00")),
        Just(serde_json::Value::from("S-URB")),
        Just(serde_json::Value::from("P1-1")),
        (0u64..u64::MAX).prop_map(|n| serde_json::Value::from(n.to_string())),
    ];
    let key = prop_oneof![
        Just("OperatorID"),
        Just("OperatorSecret"),
        Just("PageNo"),
        Just("PageSize"),
        Just("LastQueryTime"),
        Just("StationIDs"),
        Just("StationID"),
        Just("StartTime"),
        Just("EndTime"),
        Just("ConnectorID"),
        Just("EquipBizSeq"),
        Just("ConnectorStatusInfo"),
        Just("Status"),
        Just("StartChargeSeq"),
        Just("TotalPower"),
        Just("TotalMoney"),
        Just("ChargeDetails"),
        Just("DetailStartTime"),
        Just("DetailPower"),
        Just("CheckOrderSeq"),
        Just("ChargeOrders"),
    ]
    .prop_map(str::to_owned);
    leaf.prop_recursive(3, 40, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const INTERFACES: [&str; 11] = [
    "query_token",
    "query_stations_info",
    "query_station_status",
    "query_station_stats",
    "query_equip_business_policy",
    "notification_stationStatus",
    "notification_equip_charge_status",
    "notification_charge_order_info",
    "check_charge_orders",
    "query_start_charge",
    "",
];

#[tokio::test]
async fn netsec_1_the_cec_edge_answers_thousands_of_arbitrary_sealed_requests_with_a_code() {
    let clock = chargemesh_kit::clock::ManualClock::new(chrono::Utc::now());
    let mesh = mesh_with(&clock, |_| {}).await;
    common::two_station_fleet(&mesh).await;
    let tokens = TokenKey::random();
    let edge = Edge::new(
        &cec_config(),
        upstreams(&mesh),
        Arc::new(SystemClock),
        tokens.clone(),
        Arc::new(chargemesh_kit::events::InProcessBus::new()),
    )
    .expect("edge");
    // The Shaoxing regulator and the demo operator's platform, each with its token.
    let peers = [
        (SHAOXING, secrets("sx").secrets().expect("secrets")),
        (
            chargemesh::pki::DEMO_OPERATOR_ID,
            secrets("op").secrets().expect("secrets"),
        ),
    ];
    let expires = chrono::Utc::now() + chrono::Duration::hours(1);
    let strategy = (0..INTERFACES.len(), 0..peers.len(), any_payload());
    let mut codes = std::collections::BTreeMap::new();
    for (i, (interface, peer, payload)) in cases(strategy, 2_500).into_iter().enumerate() {
        let (operator_id, peer_secrets) = &peers[peer];
        let token = tokens.issue(operator_id, expires);
        let body = serde_json::to_vec(&payload).expect("json");
        let seq = u16::try_from(i % 9_999 + 1).expect("seq");
        let request = Request::seal(
            peer_secrets,
            operator_id,
            &body,
            &chargemesh_cec::timestamp(chrono::Utc::now()),
            seq,
        );
        let path = format!("/evcs/v1/{}", INTERFACES[interface]);
        let (status, answer) = edge
            .handle(
                &path,
                Some(&token),
                &serde_json::to_vec(&request).expect("json"),
            )
            .await;
        assert_eq!(status, 200, "case {i}: {} {payload}", INTERFACES[interface]);
        let response: Response = serde_json::from_slice(&answer).expect("an envelope");
        let (ret, _) = response
            .open(peer_secrets)
            .unwrap_or_else(|e| panic!("case {i}: a signed answer ({e}): {payload}"));
        assert!(
            [Ret::Ok, Ret::BadEnvelope, Ret::BadPayload, Ret::SystemError].contains(&ret),
            "case {i}: {ret:?} for {payload}"
        );
        *codes.entry(ret.code()).or_insert(0) += 1;
    }
    // Both kinds of answer were met: the cases reach past the envelope.
    assert!(
        codes.contains_key(&0) && codes.contains_key(&4004),
        "{codes:?}"
    );
    // And the edge still answers a plain request.
    let (status, _) = edge
        .handle("/evcs/v1/query_stations_info", None, b"{}")
        .await;
    assert_eq!(status, 200);
    mesh.stop().await;
}

/// Any telemetry message: numbers at their extremes, strings of any characters, bodies of
/// every kind, or none.
fn any_message() -> impl Strategy<Value = tm::TelemetryMessage> {
    use tm::telemetry_message::Body;
    let text = prop_oneof![Just(String::new()), "\\PC{0,24}"];
    let id = |known: &'static str| {
        prop_oneof![Just(String::new()), Just(known.to_owned()), "\\PC{0,12}"]
    };
    let decimal = prop_oneof![
        "[0-9]{0,12}(\\.[0-9]{0,5})?",
        "\\PC{0,16}",
        Just("1e400".to_owned())
    ];
    let time = prop_oneof![
        Just(None),
        (any::<i64>(), any::<i32>())
            .prop_map(|(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos })),
        (1_700_000_000i64..1_900_000_000)
            .prop_map(|seconds| Some(prost_types::Timestamp { seconds, nanos: 0 })),
    ];
    let body = prop_oneof![
        Just(None),
        (any::<i32>(), text.clone(), text.clone()).prop_map(|(state, fault_code, fault_text)| {
            Some(Body::Status(tm::ConnectorStatus {
                state,
                fault_code,
                fault_text,
            }))
        }),
        Just(Some(Body::Heartbeat(tm::Heartbeat {}))),
        (
            decimal.clone(),
            any::<f64>(),
            any::<f64>(),
            any::<f64>(),
            any::<f64>()
        )
            .prop_map(|(energy_kwh, power_kw, voltage, current, soc_percent)| {
                Some(Body::Meter(tm::MeterSample {
                    energy_kwh,
                    power_kw,
                    voltage,
                    current,
                    soc_percent,
                }))
            }),
        (text.clone(), text.clone(), any::<bool>(), any::<f64>()).prop_map(
            |(link_id, iccid, up, traffic_mb_24h)| {
                Some(Body::Link(tm::LinkState {
                    link_id,
                    iccid,
                    up,
                    traffic_mb_24h,
                }))
            }
        ),
        (
            text.clone(),
            text.clone(),
            decimal.clone(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(
                    order_id,
                    authorization_ref,
                    meter_start_kwh,
                    connector_checked,
                    charging_confirmed,
                )| {
                    Some(Body::SessionStart(tm::SessionStart {
                        order_id,
                        authorization_ref,
                        meter_start_kwh,
                        connector_checked,
                        charging_confirmed,
                        any_token: false,
                    }))
                }
            ),
        (
            text.clone(),
            decimal,
            any::<i32>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(order_id, meter_stop_kwh, stop_reason, end_confirmed, physically_separated)| {
                    Some(Body::SessionEnd(tm::SessionEnd {
                        order_id,
                        meter_stop_kwh,
                        stop_reason,
                        end_confirmed,
                        physically_separated,
                        ..Default::default()
                    }))
                }
            ),
        (text.clone(), any::<i32>(), text).prop_map(|(command_id, outcome, detail)| {
            Some(Body::CommandResult(tm::CommandResult {
                command_id,
                outcome,
                detail,
            }))
        }),
    ];
    (
        prop_oneof![Just(0u64), 1u64..1_000, any::<u64>()],
        id(chargemesh::pki::DEMO_OPERATOR_ID),
        id("P1"),
        id("P1-1"),
        time,
        body,
    )
        .prop_map(
            |(sequence, operator_id, pile_id, connector_id, observe_time, body)| {
                tm::TelemetryMessage {
                    sequence,
                    operator_id,
                    pile_id,
                    connector_id,
                    observe_time,
                    body,
                }
            },
        )
}

/// Reads answers until one acknowledges `sentinel`; every answer must be one of the stream's.
async fn until_acknowledged(stream: &mut TelemetryStream, sentinel: u64) -> usize {
    let mut answers = 0;
    loop {
        answers += 1;
        match stream.next().await {
            Answer::Acknowledgement(ack)
                if ack.first_sequence <= sentinel && sentinel <= ack.last_sequence =>
            {
                return answers;
            }
            Answer::Acknowledgement(_)
            | Answer::Rejection(_)
            | Answer::Resync(_)
            | Answer::Command(_) => {}
        }
    }
}

#[tokio::test]
async fn netsec_1_telemetry_answers_thousands_of_arbitrary_messages_and_the_stream_lives() {
    let mesh = TestMesh::start().await;
    common::two_station_fleet(&mesh).await;
    let mut stream = TelemetryStream::open(mesh.channel("operator")).await;
    let batches = cases(proptest::collection::vec(any_message(), 1..24), 300);
    let mut messages = 0;
    for (i, mut batch) in batches.into_iter().enumerate() {
        messages += batch.len();
        // A well-formed report closes each batch; its acknowledgement ends the batch's answers.
        let sentinel = (1 << 62) + i as u64;
        batch.push(tm::TelemetryMessage {
            sequence: sentinel,
            pile_id: "P1".into(),
            connector_id: "P1-1".into(),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {})),
            ..Default::default()
        });
        stream.send(batch).await;
        until_acknowledged(&mut stream, sentinel).await;
    }
    assert!(messages > 3_000, "{messages} arbitrary messages");
    // A new stream is served as ever.
    let mut fresh = TelemetryStream::open(mesh.channel("operator")).await;
    fresh
        .send(vec![tm::TelemetryMessage {
            sequence: 1 << 63,
            pile_id: "P1".into(),
            connector_id: "P1-1".into(),
            observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
            body: Some(tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {})),
            ..Default::default()
        }])
        .await;
    until_acknowledged(&mut fresh, 1 << 63).await;
    mesh.stop().await;
}
