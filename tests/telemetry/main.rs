//! Live telemetry end to end: piles, stations and platforms report through the gateway and the
//! regulator watches its area (REQ BASE-2, MON-1, SVC-2). One module per concern: ingest and the
//! live view, the trial-operation report, the simulator, reporting's status history; the fleet and
//! message builders they share are here.

#[path = "../common/mod.rs"]
mod common;
mod history;
mod ingest;
mod simulator;
mod trial;

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;

use chargemesh::demo;
use chargemesh::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_kit::clock::{Clock, ManualClock};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::connect_response::Body as Answer;
use common::{TelemetryStream, TestMesh, eventually};

const OP: &str = DEMO_OPERATOR_ID;

/// Registers the demo operator with a Shaoxing station (S1, pile P1) and a Shanghai one (SH, pile PSH).
async fn fleet(mesh: &TestMesh) {
    let mut op = mesh.client("operator");
    op.create_operator(asset::CreateOperatorRequest {
        operator: Some(demo::operator(DEMO_CREDIT_CODE)),
    })
    .await
    .expect("operator");
    for (station, area, pile) in [("S1", "330602", "P1"), ("SH", "310101", "PSH")] {
        op.create_station(asset::CreateStationRequest {
            station: Some(demo::station(OP, station, area)),
        })
        .await
        .expect("station");
        op.create_pile(asset::CreatePileRequest {
            pile: Some(demo::pile(OP, station, pile, asset::PileType::Dc, 60.0)),
        })
        .await
        .expect("pile");
    }
}

fn at(clock_now: chrono::DateTime<chrono::Utc>) -> Option<prost_types::Timestamp> {
    Some(chargemesh_kit::time::to_timestamp(clock_now))
}

fn status(sequence: u64, pile: &str, state: tm::ConnectorState) -> tm::TelemetryMessage {
    status_at(sequence, pile, state, chrono::Utc::now())
}

fn status_at(
    sequence: u64,
    pile: &str,
    state: tm::ConnectorState,
    when: chrono::DateTime<chrono::Utc>,
) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        observe_time: at(when),
        body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
            state: state as i32,
            fault_code: if state == tm::ConnectorState::Fault {
                "E42".into()
            } else {
                String::new()
            },
            fault_text: String::new(),
        })),
        ..Default::default()
    }
}

fn heartbeat_at(
    sequence: u64,
    pile: &str,
    when: chrono::DateTime<chrono::Utc>,
) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        pile_id: pile.into(),
        observe_time: at(when),
        body: Some(tm::telemetry_message::Body::Heartbeat(tm::Heartbeat {})),
        ..Default::default()
    }
}

/// Reads answers until every sequence in `expect` is acknowledged; returns the rejections seen.
async fn acknowledged(
    stream: &mut TelemetryStream,
    expect: impl IntoIterator<Item = u64>,
) -> Vec<tm::Rejection> {
    let mut pending: std::collections::BTreeSet<u64> = expect.into_iter().collect();
    let mut rejections = Vec::new();
    while !pending.is_empty() {
        match stream.next().await {
            Answer::Acknowledgement(ack) => {
                for s in ack.first_sequence..=ack.last_sequence {
                    pending.remove(&s);
                }
            }
            Answer::Rejection(r) => rejections.push(r),
            Answer::Resync(_) | Answer::Command(_) => {}
        }
    }
    rejections
}

struct Watch {
    inbound: tonic::Streaming<reg::WatchStatusChangesResponse>,
}

impl Watch {
    async fn open(
        client: &mut StatusServiceClient<tonic::transport::Channel>,
        cursor: &str,
    ) -> Self {
        let inbound = client
            .watch_status_changes(reg::WatchStatusChangesRequest {
                cursor: cursor.into(),
                from_start: false,
            })
            .await
            .expect("watch opens")
            .into_inner();
        Self { inbound }
    }

    /// The next `n` changes, within ten seconds.
    async fn changes(&mut self, n: usize) -> Vec<reg::StatusChange> {
        let mut out = Vec::new();
        while out.len() < n {
            let batch = tokio::time::timeout(Duration::from_secs(10), self.inbound.message())
                .await
                .expect("changes in time")
                .expect("watch healthy")
                .expect("watch open");
            out.extend(batch.changes);
        }
        out
    }
}

fn summary(changes: &[reg::StatusChange]) -> Vec<(String, i32)> {
    changes
        .iter()
        .map(|c| {
            let s = c.status.as_ref().expect("status");
            (s.pile_id.clone(), s.cec_status)
        })
        .collect()
}
