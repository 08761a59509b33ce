//! Piles that report like real ones: each over its own link (reconnecting with jittered backoff,
//! resending what was not acknowledged), a status change every 20 ms, recording what it sent,
//! what was acknowledged and every time its stream dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chargemesh::link::{Backoff, Link, LinkConfig, LinkEvent};
use chargemesh_kit::tls::{self, TlsFiles};
use chargemesh_proto::telemetry::v1 as tm;

/// What one pile saw on its link.
#[derive(Debug, Default)]
pub struct Seen {
    pub sent: Vec<u64>,
    pub acknowledged: std::collections::BTreeSet<u64>,
    pub sessions: u64,
    pub drops: Vec<(Option<tonic::Code>, String)>,
}

pub fn state_of(sequence: u64) -> tm::ConnectorState {
    if sequence % 2 == 1 {
        tm::ConnectorState::OccupiedNotCharging
    } else {
        tm::ConnectorState::Idle
    }
}

/// A pile reporting a status change every 20 ms until `stop`, then until all is acknowledged.
pub fn pile(
    pile_id: &str,
    files: TlsFiles,
    port: u16,
    seed: u64,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    let pile_id = pile_id.to_owned();
    let task = tokio::spawn(async move {
        let mut link = Link::spawn(LinkConfig {
            gateway: format!("https://127.0.0.1:{port}"),
            tls: Arc::new(tls::client_config(&files).expect("pile identity")),
            backoff: Backoff {
                first: Duration::from_millis(300),
                max: Duration::from_secs(1),
            },
            seed,
        });
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        let mut sequence = 0u64;
        loop {
            let stopping = *stop.borrow();
            let done = {
                let seen = record.lock().expect("seen");
                stopping && seen.sent.iter().all(|s| seen.acknowledged.contains(s))
            };
            if done {
                return;
            }
            tokio::select! {
                _ = ticks.tick(), if !stopping => {
                    sequence += 1;
                    let message = tm::TelemetryMessage {
                        sequence,
                        pile_id: pile_id.clone(),
                        connector_id: format!("{pile_id}-1"),
                        observe_time: Some(chargemesh_kit::time::to_timestamp(chrono::Utc::now())),
                        body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                            state: state_of(sequence) as i32,
                            ..Default::default()
                        })),
                        ..Default::default()
                    };
                    record.lock().expect("seen").sent.push(sequence);
                    link.send(vec![message]).await.expect("link runs");
                }
                event = link.event() => {
                    let mut seen = record.lock().expect("seen");
                    match event.expect("link runs") {
                        LinkEvent::Connected { .. } => seen.sessions += 1,
                        LinkEvent::Acknowledged { first, last } => {
                            seen.acknowledged.extend(first..=last);
                        }
                        LinkEvent::Dropped { code, reason, .. } => seen.drops.push((code, reason)),
                        LinkEvent::Rejected(r) => panic!("{pile_id}: rejected {r:?}"),
                        LinkEvent::Resync | LinkEvent::Command(_) => {}
                    }
                }
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    });
    (seen, task)
}
