//! The newest committed status-change cursor, so watchers wake when there is something to read.
//! Local commits advance it directly; other replicas' commits arrive as bus events.

use prost::Message as _;
use tokio::sync::watch;

use chargemesh_kit::events::{EventEnvelope, Publisher, SharedBus, envelope};
use chargemesh_proto::regulator::v2 as pb;

use crate::convert::{change_to_pb, decode_cursor};
use crate::store::StatusChange;

/// The bus topic of connector status changes.
pub const STATUS_TOPIC: &str = "status-changes";
pub const STATUS_EVENT: &str = "chargemesh.regulator.v2.StatusChange";
/// The bus topic of published trial-operation days (JSON payload).
pub const TRIAL_TOPIC: &str = "trial-operation";
pub const TRIAL_EVENT: &str = "chargemesh.trial_operation_day";

/// Batches of events that may wait for an unreachable bus before some are dropped.
const PUBLISH_QUEUE: usize = 4_096;

#[derive(Debug, Clone)]
pub struct ChangeFeed {
    latest: watch::Sender<i64>,
    bus: SharedBus,
    publisher: Publisher,
}

impl ChangeFeed {
    pub fn new(start: i64, bus: SharedBus) -> Self {
        Self {
            latest: watch::channel(start).0,
            publisher: Publisher::spawn(bus.clone(), PUBLISH_QUEUE),
            bus,
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest.subscribe()
    }

    fn advance(&self, cursor: i64) {
        self.latest.send_if_modified(|v| {
            let newer = cursor > *v;
            if newer {
                *v = cursor;
            }
            newer
        });
    }

    /// Announces committed changes: wakes local watchers at once and queues one event per change
    /// for other replicas and consumers, published off the caller's path (an unreachable bus
    /// delays wake-ups, never the writer). A lost event costs a second: the status log is the
    /// truth, and [`ChangeFeed::watch_log`] reads its head.
    pub fn committed(&self, changes: &[StatusChange]) {
        let Some(last) = changes.last() else { return };
        self.advance(last.cursor);
        let events: Vec<EventEnvelope> = changes
            .iter()
            .map(|change| {
                let payload = change_to_pb(change).encode_to_vec();
                envelope(
                    "telemetry",
                    &change.operator_id,
                    STATUS_EVENT,
                    payload,
                    change.recorded_at,
                )
            })
            .collect();
        self.publisher.offer(STATUS_TOPIC, events);
    }

    /// Announces a published trial-operation day to the bus (REQ BASE-2).
    pub fn published_trial_day(
        &self,
        day: &crate::trial::TrialDay,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let payload = serde_json::to_vec(day).unwrap_or_default();
        let event = envelope("telemetry", &day.operator_id, TRIAL_EVENT, payload, at);
        self.publisher.offer(TRIAL_TOPIC, vec![event]);
    }

    /// Reads the log's head every `every`: one query per replica, however many watchers, so
    /// they wake on other replicas' commits even when the bus lost their events.
    pub fn watch_log(
        &self,
        store: std::sync::Arc<dyn crate::store::TelemetryStore>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(std::time::Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match store.latest_cursor().await {
                    Ok(head) => this.advance(head),
                    Err(error) => tracing::debug!(%error, "status log head unreadable"),
                }
            }
        })
    }

    /// Follows the bus so this replica's watchers wake on other replicas' commits.
    pub fn follow_bus(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let group = format!("watchers-{}", uuid::Uuid::now_v7().simple());
            loop {
                let mut sub = match this.bus.subscribe(STATUS_TOPIC, &group, "feed").await {
                    Ok(sub) => sub,
                    Err(error) => {
                        tracing::warn!(%error, "cannot follow the bus, retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                        continue;
                    }
                };
                loop {
                    match sub.next().await {
                        Ok(delivery) => {
                            let envelope = &delivery.envelope;
                            chargemesh_kit::telemetry::event_span(
                                &envelope.r#type,
                                &envelope.traceparent,
                            )
                            .in_scope(|| {
                                if let Some(cursor) = cursor_of(envelope) {
                                    this.advance(cursor);
                                }
                            });
                            let _ = sub.ack(&delivery.id).await;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "bus read failed, resubscribing");
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            break;
                        }
                    }
                }
            }
        })
    }
}

fn cursor_of(event: &EventEnvelope) -> Option<i64> {
    if event.r#type != STATUS_EVENT {
        return None;
    }
    let change = pb::StatusChange::decode(event.payload.as_slice()).ok()?;
    decode_cursor(&change.cursor).ok()
}
