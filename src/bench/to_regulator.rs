//! How long a status change takes to reach a regulator, both ways the mesh tells one: on the
//! gRPC `WatchStatusChanges` stream (from the pile's observation to the change's arrival on the
//! stream), and as a T/CEC 102 `notification_stationStatus` push to a mock regulator platform
//! the benchmark runs (from the observation to the push's arrival there).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chargemesh_cec::mock::MockPeer;
use chargemesh_kit::tls;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_reporting::push::PushConfig;

use super::fleet::Run;
use crate::pki::PkiDir;
use crate::regulator;

/// A change the regulator's stream carried: its connector, T/CEC status code and the time the
/// pile observed it.
#[derive(Debug, Clone)]
pub(super) struct Change {
    connector: String,
    cec_status: i32,
    at: SystemTime,
}

/// What the regulator's stream showed over a run.
#[derive(Debug, Default)]
pub(super) struct Watched {
    /// From observation to arrival on the stream, with when it arrived, for the changes made
    /// once all piles were connected.
    pub(super) arrivals: Vec<super::stretch::TimedAck>,
    /// Every change, in the order it arrived.
    pub(super) changes: Vec<Change>,
}

/// Follows the regulator's stream until `until`.
pub(super) async fn watch(
    gateway: SocketAddr,
    pki: PkiDir,
    until: Instant,
    run: Arc<Run>,
) -> anyhow::Result<Watched> {
    let steady = &run.steady;
    let config = Arc::new(tls::client_config(&pki.files("regulator"))?);
    let channel = tls::channel(&format!("https://{gateway}"), config)?;
    let mut stream = StatusServiceClient::new(channel)
        .watch_status_changes(reg::WatchStatusChangesRequest {
            cursor: String::new(),
            from_start: false,
        })
        .await?
        .into_inner();
    let mut watched = Watched::default();
    while Instant::now() < until {
        let next = tokio::time::timeout(
            until.saturating_duration_since(Instant::now()),
            stream.message(),
        )
        .await;
        let Ok(Ok(Some(batch))) = next else { break };
        let now = chrono::Utc::now();
        for change in batch.changes {
            let Some(status) = change.status else {
                continue;
            };
            let Some(at) = status
                .change_time
                .as_ref()
                .and_then(chargemesh_kit::time::from_timestamp)
            else {
                continue;
            };
            watched.changes.push(Change {
                connector: status.connector_id.clone(),
                cec_status: status.cec_status,
                at: at.into(),
            });
            // Only reported changes of the steady state count: the first status of each pile
            // was made before its connection opened.
            if change.origin == "telemetry" && steady.get().is_some_and(|since| at >= *since) {
                let latency = (now - at).to_std().unwrap_or_default();
                watched.arrivals.push(super::stretch::timed_ack(latency));
            }
        }
    }
    Ok(watched)
}

/// A mock regulator platform the mesh pushes to over T/CEC 102.
pub(super) struct Regulator {
    listener: Option<tokio::net::TcpListener>,
    addr: SocketAddr,
    peer: Option<MockPeer>,
}

impl Regulator {
    /// Takes a loopback port for it, so the mesh can be configured before it runs.
    pub(super) async fn bind() -> anyhow::Result<Self> {
        let listener = chargemesh_kit::component::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener: Some(listener),
            addr,
            peer: None,
        })
    }

    /// The mesh's push settings: this regulator, Shaoxing's area, the default intervals.
    pub(super) fn push_config(&self) -> PushConfig {
        regulator::push_to(regulator::demo_peer(&format!(
            "https://127.0.0.1:{}{}",
            self.addr.port(),
            regulator::PREFIX.trim_end_matches('/')
        )))
    }

    /// Serves, with a certificate of the mesh's PKI (which the pusher trusts).
    pub(super) fn start(&mut self, pki: &PkiDir) -> anyhow::Result<()> {
        if let Some(listener) = self.listener.take() {
            self.peer = Some(regulator::start_mock(
                listener,
                &pki.dir,
                regulator::DEMO_PLATFORM_ID,
                regulator::DEMO_CEC_SECRET,
                regulator::PREFIX,
            )?);
        }
        Ok(())
    }

    /// The status pushes that arrived: connector, T/CEC status and when.
    pub(super) fn status_pushes(&self) -> Vec<(String, i32, SystemTime)> {
        let Some(peer) = &self.peer else {
            return Vec::new();
        };
        peer.received_since(0)
            .into_iter()
            .filter(|(interface, _, _)| interface == "notification_stationStatus")
            .flat_map(|(_, payload, at)| {
                chargemesh_cec::Dialect::status_received(&payload)
                    .into_iter()
                    .filter_map(move |info| {
                        let connector = info.get("ConnectorID")?.as_str()?.to_owned();
                        let status = i32::try_from(info.get("Status")?.as_i64()?).ok()?;
                        Some((connector, status, at))
                    })
            })
            .collect()
    }
}

/// How long each change made since `since` took to arrive as a push: each connector's pushes
/// come in the order of its changes, one per change, so a push is the oldest change of its
/// connector not yet pushed with the same status (a change the stream showed but the push
/// skipped over would be one the pusher lost, and the count below would show it).
pub(super) fn push_latencies(
    changes: &[Change],
    pushes: &[(String, i32, SystemTime)],
    since: SystemTime,
) -> Vec<Duration> {
    let mut pending: HashMap<&str, VecDeque<&Change>> = HashMap::new();
    for change in changes {
        pending
            .entry(change.connector.as_str())
            .or_default()
            .push_back(change);
    }
    let mut latencies = Vec::new();
    for (connector, status, arrived) in pushes {
        let Some(queue) = pending.get_mut(connector.as_str()) else {
            continue;
        };
        while let Some(change) = queue.pop_front() {
            if change.cec_status == *status {
                if change.at >= since {
                    latencies.push(arrived.duration_since(change.at).unwrap_or_default());
                }
                break;
            }
        }
    }
    latencies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(connector: &str, cec_status: i32, secs: u64) -> Change {
        Change {
            connector: connector.into(),
            cec_status,
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn push(connector: &str, status: i32, secs: u64) -> (String, i32, SystemTime) {
        (
            connector.into(),
            status,
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        )
    }

    #[test]
    fn a_push_is_timed_from_its_connectors_oldest_change_of_that_status() {
        let changes = [
            change("A", 1, 10),
            change("B", 3, 11),
            change("A", 3, 12),
            change("A", 1, 14),
        ];
        let pushes = [push("A", 1, 11), push("B", 3, 13), push("A", 3, 15)];
        let latencies = push_latencies(&changes, &pushes, SystemTime::UNIX_EPOCH);
        assert_eq!(
            latencies,
            [
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3)
            ]
        );
    }

    #[test]
    fn changes_before_the_steady_state_and_unknown_connectors_are_not_timed() {
        let changes = [change("A", 1, 10), change("A", 3, 20)];
        let pushes = [push("A", 1, 12), push("A", 3, 21), push("Z", 1, 22)];
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs(15);
        assert_eq!(
            push_latencies(&changes, &pushes, since),
            [Duration::from_secs(1)]
        );
    }
}
