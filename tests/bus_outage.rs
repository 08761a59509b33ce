//! An outage of the event bus delays wake-ups, never acknowledgements (REQ MON-1: nothing
//! acknowledged is lost, and nothing durable waits on Redis). With the mesh on a Redis of the
//! test's own, the Redis is killed under reporting piles: every report is still acknowledged
//! while it is down, and the status-change events queued meanwhile reach Redis once it is back.

mod common;

use std::time::Duration;

use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::connect_response::Body as Answer;
use common::{PrivateRedis, TelemetryStream, TestMesh};

fn status(sequence: u64, pile: &str, state: tm::ConnectorState) -> tm::TelemetryMessage {
    tm::TelemetryMessage {
        sequence,
        pile_id: pile.into(),
        connector_id: format!("{pile}-1"),
        observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
        body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
            state: state as i32,
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Waits (at most ten seconds) for the acknowledgement of `sequence`.
async fn acknowledged(stream: &mut TelemetryStream, sequence: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("report {sequence} not acknowledged in time"));
        if let Answer::Acknowledgement(a) = answer
            && a.last_sequence >= sequence
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mon_1_acknowledgements_go_on_while_the_bus_is_down_and_events_catch_up() {
    let Some(mut redis) = PrivateRedis::start() else {
        eprintln!("redis-server is not installed; skipped");
        return;
    };
    let prefix = format!(
        "outage{}:",
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    );
    let url = redis.url();
    let mesh = TestMesh::start_with_options(|opts| {
        opts.config.events.url = url.clone();
        opts.config.events.prefix = prefix.clone();
    })
    .await;
    common::two_station_fleet(&mesh).await;
    let mut platform = TelemetryStream::open(mesh.channel("operator")).await;
    platform
        .send(vec![status(1, "P1", tm::ConnectorState::Idle)])
        .await;
    acknowledged(&mut platform, 1).await;
    let key = format!("{prefix}status-changes");
    let carried = common::eventually(async || redis.stream_len(&key), |n| *n == Some(1)).await;
    assert_eq!(carried, Some(1), "the bus carries changes");
    // Twenty changes follow, each connector alternating between charging and idle.

    redis.stop();
    // Reports keep coming while the bus is down; each is acknowledged, Redis or not.
    let states = [tm::ConnectorState::Charging, tm::ConnectorState::Idle];
    for sequence in 2..=21u64 {
        let pile = if sequence % 2 == 0 { "P1" } else { "P2" };
        platform
            .send(vec![status(
                sequence,
                pile,
                states[(sequence / 2 + 1) as usize % 2],
            )])
            .await;
        acknowledged(&mut platform, sequence).await;
    }

    // Back up: the changes made during the outage reach the bus.
    assert!(redis.resume(), "redis restarts");
    let mut published = 0;
    for _ in 0..200 {
        published = redis.stream_len(&key).unwrap_or(0);
        if published >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        published >= 20,
        "the outage's status changes were published once the bus came back ({published})"
    );
    mesh.stop().await;
}
