//! `TelemetryService/Connect`: batches in, rejections and acknowledgements out. A batch is
//! acknowledged only after its transaction commits (REQ MON-1: nothing acknowledged is lost);
//! resends are recognised by (sender, sequence).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tonic::Status;

use chargemesh_kit::Principal;
use chargemesh_kit::clock::SharedClock;
use chargemesh_proto::telemetry::v1 as pb;
use chargemesh_proto::telemetry::v1::telemetry_service_server::TelemetryServiceServer;

use crate::TelemetrySettings;
use crate::convert::{incoming, rejection};
use crate::domain::{self, Rejection, Report};
use crate::feed::ChangeFeed;
use crate::registry::{self, Registry};
use crate::store::TelemetryStore;
use crate::writer::{Writer, Written};

/// The largest telemetry frame the component decodes.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The ingest side of telemetry.
#[derive(Debug, Clone)]
pub struct Telemetry {
    pub(crate) store: Arc<dyn TelemetryStore>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) clock: SharedClock,
    pub(crate) feed: ChangeFeed,
    pub(crate) settings: TelemetrySettings,
    writer: Writer,
    pub(crate) heartbeats: Arc<crate::heartbeats::Heartbeats>,
    pub(crate) streams: Arc<crate::streams::Streams>,
}

impl Telemetry {
    pub fn new(
        store: Arc<dyn TelemetryStore>,
        registry: Arc<Registry>,
        clock: SharedClock,
        feed: ChangeFeed,
        settings: TelemetrySettings,
    ) -> Self {
        let writer = Writer::spawn(
            store.clone(),
            feed.clone(),
            clock.clone(),
            Duration::from_millis(settings.writer_pace_ms),
        );
        let heartbeats = Arc::new(crate::heartbeats::Heartbeats::new(
            settings.heartbeat_fresh_for(),
            settings.heartbeat_write_after(),
        ));
        Self {
            store,
            registry,
            clock,
            feed,
            settings,
            writer,
            heartbeats,
            streams: Arc::default(),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn TelemetryStore> {
        &self.store
    }

    pub(crate) fn streams(&self) -> &Arc<crate::streams::Streams> {
        &self.streams
    }

    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    pub fn into_server(self) -> TelemetryServiceServer<Self> {
        // A frame is a batch of small messages: none needs more than a megabyte (the gateway
        // holds clients to its own limit first).
        TelemetryServiceServer::new(self).max_decoding_message_size(MAX_FRAME_BYTES)
    }

    /// Handles one batch: validate, append durably, then answer.
    pub async fn handle_batch(
        &self,
        principal: &Principal,
        batch: pb::ConnectRequest,
    ) -> Result<Vec<pb::ConnectResponse>, Status> {
        let now = self.clock.now();
        let mut responses = Vec::new();
        let mut handled = Vec::with_capacity(batch.messages.len());
        let mut reports: Vec<Report> = Vec::with_capacity(batch.messages.len());
        let mut seen = std::collections::HashSet::new();
        let carried = batch.messages.len();
        let mut messages = batch.messages;
        if carried > self.settings.max_batch {
            // One answer for everything past the limit, however many: the first message not
            // taken, and how many follow it.
            let first = messages[self.settings.max_batch].sequence;
            let r = Rejection {
                code: tonic::Code::ResourceExhausted,
                reason: format!(
                    "a batch carries at most {} messages (telemetry max_batch): this and the {} after it were not taken; send them again",
                    self.settings.max_batch,
                    carried - self.settings.max_batch - 1
                ),
            };
            responses.push(rejection(first, &r));
            messages.truncate(self.settings.max_batch);
        }
        for msg in messages {
            let sequence = msg.sequence;
            if sequence != 0 && !seen.insert(sequence) {
                continue; // repeated within the batch: the first one stands
            }
            let incoming = incoming(msg);
            let operator = if incoming.operator_id.is_empty() {
                principal.operator_id().unwrap_or_default().to_owned()
            } else {
                incoming.operator_id.clone()
            };
            let pile = match (principal, incoming.pile_id.is_empty()) {
                (Principal::Pile { pile_id, .. }, true) => pile_id.clone(),
                _ => incoming.pile_id.clone(),
            };
            let index = if operator.is_empty() {
                None
            } else {
                self.registry
                    .index(&operator, &pile)
                    .await
                    .map_err(Status::from)?
            };
            match domain::validate(principal, &incoming, index.as_deref(), now) {
                Ok(report) => {
                    handled.push(sequence);
                    reports.push(report);
                }
                Err(r) => {
                    if sequence != 0 {
                        handled.push(sequence);
                    }
                    responses.push(rejection(sequence, &r));
                }
            }
        }
        let mut stations: Vec<(String, String)> = reports
            .iter()
            .map(|r| (r.operator_id.clone(), r.station_id.clone()))
            .collect();
        stations.sort_unstable();
        stations.dedup();
        let kinds: Vec<&'static str> = reports.iter().map(|r| r.body.kind()).collect();
        // REQ MON-1: a confirmed pile's heartbeat is noted for a later flush, not written now;
        // its meter samples and alarms go to the log without their connectors, so they do not
        // move (or lock) its status rows there.
        let outcome = if self.heartbeats.take(&reports, now) {
            Written::default()
        } else {
            self.heartbeats.vouch(&mut reports, now);
            // None when vouched for: what was noted is not confirmed again.
            let connectors = crate::heartbeats::connectors(&reports);
            let outcome = self
                .writer
                .append(reports)
                .await
                .map_err(|e| Status::from(chargemesh_kit::Error::Store(e)))?;
            if outcome.resync {
                self.heartbeats.refute(&connectors);
            } else {
                self.heartbeats.confirm(&connectors, now);
            }
            outcome
        };
        let ingested = &chargemesh_kit::metrics::metrics().telemetry_messages;
        for kind in kinds {
            ingested
                .get_or_create(&chargemesh_kit::metrics::KindLabels {
                    kind: kind.to_owned(),
                })
                .inc();
        }
        for (first, last) in domain::ranges(handled) {
            responses.push(pb::ConnectResponse {
                body: Some(pb::connect_response::Body::Acknowledgement(
                    pb::Acknowledgement {
                        first_sequence: first,
                        last_sequence: last,
                    },
                )),
            });
        }
        if outcome.resync {
            responses.push(pb::ConnectResponse {
                body: Some(pb::connect_response::Body::Resync(pb::ResyncRequest {
                    reason: "a connector was marked offline after silence (REQ MON-1); report every connector's status".into(),
                })),
            });
        }
        if outcome.stored > 0 {
            self.connect_stations(principal, &stations, now).await;
        }
        Ok(responses)
    }

    /// REQ BASE-2: the first report from a filed station marks it connected.
    async fn connect_stations(
        &self,
        principal: &Principal,
        stations: &[(String, String)],
        now: DateTime<Utc>,
    ) {
        for (operator_id, station_id) in stations {
            let (operator_id, station_id) = (operator_id.as_str(), station_id.as_str());
            let known = self.registry.index(operator_id, "").await.ok().flatten();
            let filed = known
                .as_ref()
                .and_then(|i| i.stations.get(station_id))
                .is_some_and(|s| s.filed);
            if !filed {
                continue;
            }
            let note = format!(
                "first telemetry report, from {principal} at {} (REQ BASE-2)",
                now.format("%Y-%m-%dT%H:%M:%SZ")
            );
            match self
                .registry
                .asset()
                .connect_station(operator_id, station_id, note)
                .await
            {
                Ok(()) => tracing::info!(
                    operator_id,
                    station_id,
                    "station connected by its first report"
                ),
                // Still filed: the next report tries again.
                Err(error) => {
                    tracing::warn!(operator_id, station_id, %error, "station not marked connected")
                }
            }
            // Read back without waiting for the announcement, so that later reports find it
            // connected sooner.
            self.registry.note(
                operator_id,
                registry::Touch::One(registry::Entity::Station(station_id.to_owned())),
            );
        }
    }
}
