//! Metering end to end through the gateway on the injectable clock: orders reported by platforms,
//! sessions streamed by piles, and who sees them, one module each; the fleet with one verified and
//! one expired meter is here.

mod access;
#[path = "../common/mod.rs"]
mod common;
mod orders;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use chargemesh::demo;
use chargemesh::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_kit::clock::ManualClock;
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::metering::v1 as pb;
use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
use common::{TestMesh, with_token};

const OP: &str = DEMO_OPERATOR_ID;

fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("time")
        .to_utc()
}

fn ts(s: &str) -> Option<prost_types::Timestamp> {
    Some(chargemesh_kit::time::to_timestamp(t(s)))
}

/// The demo operator with station S1 in Yuecheng (330602) on the demo price board, a verified
/// pile P1 and a pile P2 whose certificate expired in September; the clock at 18:00 local on
/// 20 November 2026.
async fn setup(clock: &ManualClock) -> TestMesh {
    clock.set(t("2026-11-20T08:00:00+08:00"));
    let mesh_clock = clock.clone();
    let mesh = TestMesh::start_with_options(move |opts| {
        opts.clock = Arc::new(mesh_clock);
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
    for (pile, verified_on) in [("P1", "2026-11-01"), ("P2", "2025-10-01")] {
        op.create_pile(asset::CreatePileRequest {
            pile: Some(demo::pile(OP, "S1", pile, asset::PileType::Dc, 60.0)),
        })
        .await
        .expect("pile");
        op.create_metrology_certificate(asset::CreateMetrologyCertificateRequest {
            certificate: Some(demo::certificate(
                OP,
                pile,
                asset::VerificationProcedure::Jjg1149,
                &format!("JJG1149-{pile}"),
                chrono::NaiveDate::parse_from_str(verified_on, "%Y-%m-%d").expect("date"),
            )),
        })
        .await
        .expect("certificate");
    }
    clock.advance(chrono::Duration::hours(10));
    mesh
}

fn metering(mesh: &TestMesh, name: &str) -> MeteringServiceClient<tonic::transport::Channel> {
    MeteringServiceClient::new(mesh.channel(name))
}

fn sample(at: &str, kwh: &str) -> pb::MeterSample {
    pb::MeterSample {
        sample_time: ts(at),
        register_kwh: kwh.into(),
    }
}

/// 16:30 to 17:30 local on P1: 20 kWh at flat (0.65 + 0.60), then 20 kWh at peak (0.98 + 0.80).
fn session(order_id: &str, pile: &str) -> pb::ReportChargeOrderRequest {
    pb::ReportChargeOrderRequest {
        operator_id: OP.into(),
        order_id: order_id.into(),
        station_id: "S1".into(),
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        start_time: ts("2026-11-20T16:30:00+08:00"),
        end_time: ts("2026-11-20T17:30:00+08:00"),
        stop_reason: 0,
        samples: vec![
            sample("2026-11-20T16:30:00+08:00", "1000.000"),
            sample("2026-11-20T17:00:00+08:00", "1020.000"),
            sample("2026-11-20T17:30:00+08:00", "1040.000"),
        ],
        steps: Some(pb::ChargingSteps {
            connector_checked: true,
            charging_confirmed: true,
            end_confirmed: true,
            physically_separated: true,
        }),
        ..Default::default()
    }
}

/// A message of P1's connector on the telemetry stream.
fn message(
    sequence: u64,
    at: &str,
    body: chargemesh_proto::telemetry::v1::telemetry_message::Body,
) -> chargemesh_proto::telemetry::v1::TelemetryMessage {
    chargemesh_proto::telemetry::v1::TelemetryMessage {
        sequence,
        pile_id: "P1".into(),
        connector_id: "P1-1".into(),
        observe_time: ts(at),
        body: Some(body),
        ..Default::default()
    }
}

const ORDER_1: &str = "MA2D3K7Q0261120163000000001";
const ORDER_2: &str = "MA2D3K7Q0261120163000000002";
