//! The T/CEC 102 edge end to end on 127.0.0.1 (REQ BASE-2): a regulator platform pulls the
//! stations of its area page by page, their status, statistics and prices, the way it pulls any
//! operator platform; forged, stale, replayed and token-less requests get the standard's codes.

mod common;

use serde_json::json;

use chargemesh::demo;
use chargemesh::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID};
use chargemesh_cec::client::Https;
use chargemesh_cec::edge::CecConfig;
use chargemesh_cec::{Dialect, Request, Ret, Secrets};
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_kit::tls;
use chargemesh_proto::asset::v1 as asset;
use common::TestMesh;
use common::cec::{Replica, SHANGHAI, SHAOXING, cec_config, client, client_at, mesh_at, secrets};

const OP: &str = DEMO_OPERATOR_ID;
type RegulatorClient = chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient<
    tonic::transport::Channel,
>;

/// The next change of `connector` on a regulator's watch, within ten seconds each batch.
async fn next_change_of(
    watch: &mut tonic::Streaming<chargemesh_proto::regulator::v2::WatchStatusChangesResponse>,
    connector: &str,
) -> chargemesh_proto::regulator::v2::StatusChange {
    loop {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
            .await
            .expect("a change in time")
            .expect("stream")
            .expect("batch");
        if let Some(c) = batch.changes.into_iter().find(|c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.connector_id == connector)
        }) {
            return c;
        }
    }
}

/// The live CEC status of a connector of the demo operator's station, as the regulator reads it.
async fn live_status(regulator: &mut RegulatorClient, station: &str, connector: &str) -> i32 {
    use chargemesh_proto::regulator::v2 as reg;
    let live = regulator
        .get_station_status(reg::GetStationStatusRequest {
            stations: vec![reg::StationKey {
                operator_id: OP.into(),
                station_id: station.into(),
            }],
        })
        .await
        .expect("status")
        .into_inner();
    live.stations[0]
        .connectors
        .iter()
        .find(|c| c.connector_id == connector)
        .expect("the connector")
        .cec_status
}

/// Three stations: two in Shaoxing's Yuecheng district, one in Shanghai.
async fn fleet(mesh: &TestMesh) {
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    for (station, pile, area) in [
        ("S-A", "PA", "330602"),
        ("S-B", "PB", "330602"),
        ("S-SH", "PSH", "310101"),
    ] {
        op.create_station(asset::CreateStationRequest {
            station: Some(demo::station(OP, station, area)),
        })
        .await
        .expect("station");
        common::verified_pile(&mut op, station, pile, asset::PileType::Dc, 60.0).await;
    }
}

#[tokio::test]
async fn base_2_a_regulator_pulls_exactly_the_stations_of_its_area_page_by_page() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    fleet(&mesh).await;
    let shaoxing = client(&mesh, &clock, "sx", SHAOXING);
    let mut seen = Vec::new();
    for page in 1..=3 {
        let (ret, value) = shaoxing
            .call(
                "query_stations_info",
                &json!({"PageNo": page, "PageSize": 1}),
            )
            .await
            .expect("page");
        assert_eq!(ret, Ret::Ok);
        assert_eq!(
            (value["PageCount"].as_u64(), value["ItemSize"].as_u64()),
            (Some(2), Some(2))
        );
        for s in value["StationInfos"].as_array().expect("stations") {
            seen.push(s["StationID"].as_str().expect("id").to_owned());
            assert_eq!(s["AreaCode"], "330602");
            assert_eq!(s["EquipmentInfos"][0]["EquipmentType"], 1, "DC");
        }
    }
    assert_eq!(seen, ["S-A", "S-B"], "exactly its area, each once");
    // A page far past the end is empty, not an overflow.
    let (ret, far) = shaoxing
        .call(
            "query_stations_info",
            &json!({"PageNo": u64::MAX, "PageSize": 100}),
        )
        .await
        .expect("page");
    assert_eq!(ret, Ret::Ok);
    assert_eq!(far["StationInfos"], json!([]));
    // Shanghai's regulator sees only Shanghai's.
    let (_, shanghai) = client(&mesh, &clock, "sh", SHANGHAI)
        .call("query_stations_info", &json!({}))
        .await
        .expect("stations");
    let ids: Vec<_> = shanghai["StationInfos"]
        .as_array()
        .expect("stations")
        .iter()
        .map(|s| s["StationID"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids, ["S-SH"]);
    // Status of its stations; another area's station is not among them.
    let (ret, status) = shaoxing
        .call(
            "query_station_status",
            &json!({"StationIDs": ["S-A", "S-SH"]}),
        )
        .await
        .expect("status");
    assert_eq!(ret, Ret::Ok);
    assert_eq!(status["Total"], 1);
    assert_eq!(status["StationStatusInfos"][0]["StationID"], "S-A");
    let (ret, too_many) = shaoxing
        .call(
            "query_station_status",
            &json!({"StationIDs": (0..51).map(|i| format!("S-{i}")).collect::<Vec<_>>()}),
        )
        .await
        .expect("answer");
    assert_eq!((ret, too_many), (Ret::BadPayload, serde_json::Value::Null));
    // Prices of a connector, with the 4-place prices of the board.
    let (ret, policy) = shaoxing
        .call(
            "query_equip_business_policy",
            &json!({"EquipBizSeq": "SEQ1", "ConnectorID": "PA-1"}),
        )
        .await
        .expect("policy");
    assert_eq!(ret, Ret::Ok);
    assert_eq!(policy["SuccStat"], 0);
    assert!(policy["SumPeriod"].as_u64().unwrap_or(0) >= 1, "{policy}");
    // Statistics over whole days.
    let today = chargemesh_kit::clock::china_date(clock.now())
        .format("%Y-%m-%d")
        .to_string();
    let (ret, stats) = shaoxing
        .call(
            "query_station_stats",
            &json!({"StationID": "S-A", "StartTime": today, "EndTime": today}),
        )
        .await
        .expect("stats");
    assert_eq!(ret, Ret::Ok, "{stats}");
    assert_eq!(stats["StationStats"]["StationID"], "S-A");
    mesh.stop().await;
}

#[tokio::test]
async fn forged_stale_replayed_and_tokenless_requests_get_4001_4003_and_4002() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    fleet(&mesh).await;
    let shaoxing = client(&mesh, &clock, "sx", SHAOXING);
    let token = shaoxing.fetch_token().await.expect("token");
    let payload = json!({"PageNo": 1});
    // A wrong signature: 4001, and the envelope carries no Data.
    let mut forged = shaoxing.seal(&payload);
    forged.sig = "0".repeat(32);
    let answer = shaoxing
        .send("query_stations_info", &forged, Some(&token))
        .await
        .expect("answer");
    assert_eq!((answer.ret, answer.data.as_str()), (4001, ""));
    // Signed with another peer's secrets: 4001 too.
    let wrong = Secrets::new(
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
        "0000000000000000",
    )
    .expect("secrets");
    let stamp = chargemesh_cec::timestamp(clock.now());
    let other = Request::seal(&wrong, SHAOXING, b"{}", &stamp, 9);
    let answer = shaoxing
        .send("query_stations_info", &other, Some(&token))
        .await
        .expect("answer");
    assert_eq!(answer.ret, 4001);
    // A malformed envelope: 4003.
    let mut missing = serde_json::to_value(shaoxing.seal(&payload)).expect("json");
    missing.as_object_mut().expect("object").remove("Seq");
    let (status, body) = Https::new(tls::anonymous_client_config(&mesh.pki().ca()).expect("tls"))
        .post(
            &format!(
                "https://127.0.0.1:{}/evcs/v1/query_stations_info",
                mesh.mesh
                    .as_ref()
                    .and_then(|m| m.cec_addr)
                    .expect("edge")
                    .port()
            ),
            Some(&token),
            serde_json::to_vec(&missing).expect("json"),
        )
        .await
        .expect("answer");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!((status, answer["Ret"].as_i64()), (200, Some(4003)));
    // The same Seq twice within its second: 4003 the second time.
    let once = shaoxing.seal(&payload);
    let first = shaoxing
        .send("query_stations_info", &once, Some(&token))
        .await
        .expect("answer");
    assert_eq!(first.ret, 0);
    let replayed = shaoxing
        .send("query_stations_info", &once, Some(&token))
        .await
        .expect("answer");
    assert_eq!(replayed.ret, 4003);
    // A timestamp ten minutes old: 4003.
    let old = Request::seal(
        &secrets("sx").secrets().expect("secrets"),
        SHAOXING,
        b"{\"PageNo\":1}",
        &chargemesh_cec::timestamp(clock.now() - chrono::Duration::minutes(10)),
        1,
    );
    let stale = shaoxing
        .send("query_stations_info", &old, Some(&token))
        .await
        .expect("answer");
    assert_eq!(stale.ret, 4003);
    // No token, an unknown token, another peer's token: 4002.
    for bearer in [None, Some("not-a-token")] {
        let answer = shaoxing
            .send("query_stations_info", &shaoxing.seal(&payload), bearer)
            .await
            .expect("answer");
        assert_eq!(answer.ret, 4002);
    }
    let shanghai = client(&mesh, &clock, "sh", SHANGHAI);
    let theirs = shanghai.fetch_token().await.expect("token");
    let answer = shaoxing
        .send(
            "query_stations_info",
            &shaoxing.seal(&payload),
            Some(&theirs),
        )
        .await
        .expect("answer");
    assert_eq!(answer.ret, 4002);
    // A wrong OperatorSecret gets no token.
    let bad_secret = shaoxing.seal(&json!({"OperatorID": SHAOXING, "OperatorSecret": "guess"}));
    let answer = shaoxing
        .send("query_token", &bad_secret, None)
        .await
        .expect("answer");
    let (ret, value) = shaoxing.open(&answer).expect("opened");
    assert_eq!(
        (
            ret,
            value["SuccStat"].as_i64(),
            value["FailReason"].as_i64()
        ),
        (Ret::Ok, Some(1), Some(2))
    );
    // Two hours on, the token has expired: 4002; the client fetches a new one and retries once.
    clock.advance(chrono::Duration::hours(2) + chrono::Duration::seconds(1));
    let expired = shaoxing
        .send(
            "query_stations_info",
            &shaoxing.seal(&payload),
            Some(&token),
        )
        .await
        .expect("answer");
    assert_eq!(expired.ret, 4002);
    let (ret, _) = shaoxing
        .call("query_stations_info", &payload)
        .await
        .expect("retried with a new token");
    assert_eq!(ret, Ret::Ok);
    mesh.stop().await;
}

#[tokio::test]
async fn a_platform_in_platform_mode_pushes_status_and_orders_by_cec_and_the_grpc_side_shows_them()
{
    use chargemesh_proto::metering::v1 as mt;
    use chargemesh_proto::regulator::v2 as reg;
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    fleet(&mesh).await;
    let mut platform = client(&mesh, &clock, "op", OP);
    platform = platform.with_dialect(Dialect {
        service_spelling: chargemesh_cec::dialect::ServiceSpelling::Service,
        status_push: chargemesh_cec::dialect::StatusPush::Array,
        ..Dialect::default()
    });
    let mut regulator =
        chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient::new(
            mesh.channel("regulator"),
        );
    let mut watch = regulator
        .watch_status_changes(reg::WatchStatusChangesRequest {
            cursor: String::new(),
            from_start: true,
        })
        .await
        .expect("watch")
        .into_inner();
    // A connector goes to fault, pushed the Zhejiang way (an array).
    let (ret, answer) = platform
        .call(
            "notification_stationStatus",
            &json!({"ConnectorStatusInfos": [{"ConnectorID": "PA-1", "Status": 255}]}),
        )
        .await
        .expect("pushed");
    assert_eq!((ret, answer["Status"].as_i64()), (Ret::Ok, Some(0)));
    let change = next_change_of(&mut watch, "PA-1").await;
    let status = change.status.expect("status");
    assert_eq!(
        (status.station_id.as_str(), status.cec_status),
        ("S-A", 255)
    );
    // A forged push (wrong signature) is refused with 4001 and changes nothing.
    let token = platform.fetch_token().await.expect("token");
    let mut forged =
        platform.seal(&json!({"ConnectorStatusInfos": [{"ConnectorID": "PA-1", "Status": 1}]}));
    forged.sig = "F".repeat(32);
    let refused = platform
        .send("notification_stationStatus", &forged, Some(&token))
        .await
        .expect("answer");
    assert_eq!(refused.ret, 4001);
    let pa = live_status(&mut regulator, "S-A", "PA-1").await;
    assert_eq!(pa, 255, "still faulted");
    // An unknown connector is the payload's fault: 4004, nothing kept.
    let (ret, _) = platform
        .call(
            "notification_stationStatus",
            &json!({"ConnectorStatusInfos": [{"ConnectorID": "NOPE-1", "Status": 1}]}),
        )
        .await
        .expect("answered");
    assert_eq!(ret, Ret::BadPayload);
    // A regulator may not push a station's status.
    let (ret, _) = client(&mesh, &clock, "sx", SHAOXING)
        .call(
            "notification_stationStatus",
            &json!({"ConnectorStatusInfo": {"ConnectorID": "PA-1", "Status": 1}}),
        )
        .await
        .expect("answered");
    assert_eq!(ret, Ret::BadPayload);

    // A charge status push: its connector status reaches the same telemetry (charging, code 3).
    clock.advance(chrono::Duration::minutes(1));
    let progress = |status: i64| {
        json!({
            "StartChargeSeq": format!("{OP}000000000000000009"),
            "StartChargeSeqStat": 2,
            "ConnectorID": "PA-1",
            "ConnectorStatus": status,
            "CurrentA": 120.0,
            "VoltageA": 400.0,
            "Soc": 40.0,
            "StartTime": chargemesh_cec::payload_time(clock.now() - chrono::Duration::minutes(10)),
            "EndTime": chargemesh_cec::payload_time(clock.now()),
            "TotalPower": 8.5,
        })
    };
    let (ret, answer) = platform
        .call("notification_equip_charge_status", &progress(3))
        .await
        .expect("pushed");
    assert_eq!(ret, Ret::Ok, "{answer}");
    assert_eq!(answer["SuccStat"], 0);
    let charging = next_change_of(&mut watch, "PA-1").await;
    assert_eq!(charging.status.expect("status").cec_status, 3);
    // A status outside the CEC codes is the payload's fault and changes nothing.
    let (ret, _) = platform
        .call("notification_equip_charge_status", &progress(9))
        .await
        .expect("answered");
    assert_eq!(ret, Ret::BadPayload);
    let pa = live_status(&mut regulator, "S-A", "PA-1").await;
    assert_eq!(pa, 3, "still charging");

    // A finished order with its details, in the Service spelling, after the station's first
    // tariff came into force.
    clock.advance(chrono::Duration::hours(3));
    let start = clock.now() - chrono::Duration::hours(2);
    let t = |minutes: i64| chargemesh_cec::payload_time(start + chrono::Duration::minutes(minutes));
    let seq = format!("{OP}000000000000000001");
    let order = json!({
        "StartChargeSeq": seq,
        "ConnectorID": "PA-1",
        "StartTime": t(0),
        "EndTime": t(60),
        "TotalPower": 20.5,
        "TotalElecMoney": 10.25,
        "TotalServiceMoney": 8.2,
        "TotalMoney": 18.45,
        "StopReason": 0,
        "SumPeriod": 2,
        "ChargeDetails": [
            {"DetailStartTime": t(0), "DetailEndTime": t(30), "DetailPower": 10.0},
            {"DetailStartTime": t(30), "DetailEndTime": t(60), "DetailPower": 10.5}
        ]
    });
    let (ret, confirmed) = platform
        .call("notification_charge_order_info", &order)
        .await
        .expect("pushed");
    assert_eq!(ret, Ret::Ok, "{confirmed}");
    assert_eq!(confirmed["ConfirmResult"], 0);
    // Sent again (the peer did not see our answer): the same order, confirmed again.
    let (_, again) = platform
        .call("notification_charge_order_info", &order)
        .await
        .expect("pushed");
    assert_eq!(again["ConfirmResult"], 0);
    // Another session under the same StartChargeSeq is disputed.
    let mut other = order.clone();
    other["TotalPower"] = json!(30.0);
    other["ChargeDetails"][1]["DetailPower"] = json!(20.0);
    let (_, disputed) = platform
        .call("notification_charge_order_info", &other)
        .await
        .expect("pushed");
    assert_eq!(disputed["ConfirmResult"], 1);
    // Impossible figures are refused as a bad payload, and change nothing.
    let mut absurd = order.clone();
    absurd["StartChargeSeq"] = json!(format!("{OP}000000000000000999"));
    absurd["TotalPower"] = json!(1e300);
    absurd["ChargeDetails"][1]["DetailPower"] = json!(1e300);
    let (ret, _) = platform
        .call("notification_charge_order_info", &absurd)
        .await
        .expect("answered");
    assert_eq!(ret, Ret::BadPayload);
    let kept = chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient::new(
        mesh.channel("operator"),
    )
    .get_charge_order(mt::GetChargeOrderRequest {
        operator_id: OP.into(),
        order_id: seq.clone(),
        version: 0,
    })
    .await
    .expect("kept")
    .into_inner()
    .order
    .expect("order");
    assert_eq!(kept.station_id, "S-A");
    assert!(kept.billable, "{}", kept.not_billable_reason);
    assert_eq!(kept.energy_kwh, "20.500");
    let registers: Vec<&str> = kept
        .samples
        .iter()
        .map(|s| s.register_kwh.as_str())
        .collect();
    assert_eq!(
        registers,
        ["0.000", "10.000", "20.500"],
        "each period keeps its energy"
    );
    // Reconciliation: the kept order matches; an order we never had is disputed as not found.
    let (ret, check) = platform
        .call(
            "check_charge_orders",
            &json!({
                "CheckOrderSeq": "CHK1",
                "StartTime": t(-60),
                "EndTime": t(120),
                "OrderCount": 2,
                "ChargeOrders": [
                    {"StartChargeSeq": seq, "TotalPower": 20.5, "TotalMoney": kept.total_money},
                    {"StartChargeSeq": format!("{OP}999999999999999999"), "TotalPower": 1.0, "TotalMoney": 1.0}
                ]
            }),
        )
        .await
        .expect("checked");
    assert_eq!(ret, Ret::Ok, "{check}");
    assert_eq!(check["TotalDisputeOrder"], 1, "{check}");
    assert_eq!(check["DisputeOrders"][0]["DisputeReason"], 1);
    mesh.stop().await;
}

#[tokio::test]
async fn a_token_from_one_gateway_replica_is_good_on_another() {
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    fleet(&mesh).await;
    // A second gateway replica's edge: the same token key Secret, the same services.
    let running = mesh.mesh.as_ref().expect("running");
    let replica = Replica::start(
        &mesh,
        &clock,
        CecConfig {
            token_key_file: running.config.gateway.cec.token_key_file.clone(),
            ..cec_config()
        },
        mesh.pki_files("gateway"),
        running.bus.clone(),
    )
    .await;
    let port = replica.port;

    let token = client(&mesh, &clock, "sx", SHAOXING)
        .fetch_token()
        .await
        .expect("a token from the first replica");
    let other = client_at(&mesh, &clock, "sx", SHAOXING, port);
    let request = other.seal(&json!({"PageNo": 1, "PageSize": 10}));
    let answer = other
        .send("query_stations_info", &request, Some(&token))
        .await
        .expect("answered");
    let (ret, page) = other.open(&answer).expect("opened");
    assert_eq!(ret, Ret::Ok, "{page}");
    assert_eq!(page["ItemSize"], 2, "{page}");
    // Another peer presenting it is still refused there.
    let shanghai = client_at(&mesh, &clock, "sh", SHANGHAI, port);
    let request = shanghai.seal(&json!({"PageNo": 1, "PageSize": 10}));
    let answer = shanghai
        .send("query_stations_info", &request, Some(&token))
        .await
        .expect("answered");
    assert_eq!(answer.ret, 4002);
    replica.stop().await;
    mesh.stop().await;
}

#[tokio::test]
async fn base_2_the_registry_finds_stations_by_id_and_by_connector_within_the_callers_area() {
    use chargemesh_proto::regulator::v2 as reg;
    use chargemesh_proto::regulator::v2::registry_service_client::RegistryServiceClient;
    let clock = ManualClock::new(chrono::Utc::now());
    let mesh = mesh_at(&clock).await;
    fleet(&mesh).await;
    // The demo regulator watches Shaoxing (3306): S-A and S-B, not Shanghai's S-SH.
    let mut registry = RegistryServiceClient::new(mesh.channel("regulator"));
    let ids = |page: reg::ListStationsResponse| -> Vec<String> {
        page.stations
            .into_iter()
            .filter_map(|r| r.station.map(|s| s.station_id))
            .collect()
    };
    let by_id = registry
        .list_stations(reg::ListStationsRequest {
            station_ids: vec!["S-B".into(), "S-SH".into(), "S-NONE".into()],
            ..Default::default()
        })
        .await
        .expect("by id")
        .into_inner();
    assert_eq!(ids(by_id), ["S-B"]);
    let by_connector = |connector: &str| reg::ListStationsRequest {
        connector_id: connector.into(),
        ..Default::default()
    };
    let found = registry
        .list_stations(by_connector("PA-1"))
        .await
        .expect("by connector")
        .into_inner();
    assert_eq!(ids(found.clone()), ["S-A"]);
    assert_eq!(found.stations[0].piles[0].pile_id, "PA");
    let elsewhere = registry
        .list_stations(by_connector("PSH-1"))
        .await
        .expect("another area's connector")
        .into_inner();
    assert!(ids(elsewhere).is_empty());
    let too_many = registry
        .list_stations(reg::ListStationsRequest {
            station_ids: (0..51).map(|i| format!("S-{i}")).collect(),
            ..Default::default()
        })
        .await
        .expect_err("51 ids");
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);
    assert!(
        too_many.message().contains("station_ids"),
        "{}",
        too_many.message()
    );
    // The T/CEC edge asks the same way: another area's connector has no price for Shaoxing.
    let shaoxing = client(&mesh, &clock, "sx", SHAOXING);
    let (ret, policy) = shaoxing
        .call(
            "query_equip_business_policy",
            &json!({"EquipBizSeq": "SEQ2", "ConnectorID": "PSH-1"}),
        )
        .await
        .expect("policy");
    assert_eq!(ret, Ret::Ok);
    assert_eq!(policy["SuccStat"], 1);
    mesh.stop().await;
}
