//! `TelemetryService/Connect`: batches in, rejections and acknowledgements out. A batch is
//! acknowledged only after its transaction commits (REQ MON-1: nothing acknowledged is lost);
//! resends are recognised by (sender, sequence).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tonic::Status;

use chargemesh_kit::Principal;
use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::db::StoreError;
use chargemesh_proto::telemetry::v1 as pb;
use chargemesh_proto::telemetry::v1::telemetry_service_server::TelemetryServiceServer;

use crate::TelemetrySettings;
use crate::convert::{incoming, rejection};
use crate::domain::{self, Rejection, Report};
use crate::feed::ChangeFeed;
use crate::registry::Registry;
use crate::store::TelemetryStore;

/// The most messages one transaction of the writer takes, merged from the waiting batches.
const MAX_MERGE: usize = 20_000;
/// The largest telemetry frame the component decodes.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The one writer of a process: it merges the batches waiting from every stream into one
/// transaction, so a commit (and its fsync) serves them all, then answers each stream.
#[derive(Debug, Clone)]
struct Writer {
    tx: tokio::sync::mpsc::Sender<Job>,
}

#[derive(Debug)]
struct Job {
    reports: Vec<Report>,
    reply: tokio::sync::oneshot::Sender<Result<Written, StoreError>>,
}

/// What the writer did with one stream's batch.
#[derive(Debug, Default)]
struct Written {
    /// How many of the batch's reports were stored now (the rest are resends).
    stored: usize,
    /// A connector of the batch spoke while marked offline by silence.
    resync: bool,
}

/// The highest sequence this writer stored per sender. A sender's sequences only grow, so a
/// report above its sender's mark cannot be in the log unless another replica stored it
/// meanwhile (the insert then conflicts and the batch is appended again, searched): only the
/// others are searched for in the log, which at a fleet's rates is a sender's first report
/// after it connects, and its resends.
#[derive(Debug)]
struct Watermarks {
    marks: std::collections::HashMap<String, u64>,
    /// Senders remembered at most; past it the marks start again (costing searches only). A
    /// sender is an authenticated, registered identity, so this is a fleet's size.
    max_senders: usize,
}

impl Default for Watermarks {
    fn default() -> Self {
        Self {
            marks: std::collections::HashMap::new(),
            max_senders: 1 << 20,
        }
    }
}

impl Watermarks {
    fn may_be_resent(&self, reports: &[Report]) -> Vec<bool> {
        reports
            .iter()
            .map(|r| {
                self.marks
                    .get(&r.source)
                    .is_none_or(|mark| r.sequence <= *mark)
            })
            .collect()
    }

    fn note(&mut self, stored: &[(String, u64)]) {
        if self.marks.len() + stored.len() > self.max_senders {
            self.marks.clear();
        }
        for (source, sequence) in stored {
            match self.marks.get_mut(source) {
                Some(mark) => *mark = (*mark).max(*sequence),
                None => {
                    self.marks.insert(source.clone(), *sequence);
                }
            }
        }
    }
}

impl Writer {
    fn spawn(
        store: Arc<dyn TelemetryStore>,
        feed: ChangeFeed,
        clock: SharedClock,
        status_rows: Arc<tokio::sync::Mutex<()>>,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(1024);
        tokio::spawn(async move {
            let mut stored = Watermarks::default();
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                let mut count = jobs[0].reports.len();
                while count < MAX_MERGE {
                    match rx.try_recv() {
                        Ok(job) => {
                            count += job.reports.len();
                            jobs.push(job);
                        }
                        Err(_) => break,
                    }
                }
                let all: Vec<Report> = jobs
                    .iter()
                    .flat_map(|j| j.reports.iter().cloned())
                    .collect();
                let started = std::time::Instant::now();
                // The heartbeat flush writes the same status rows: one at a time, no deadlock.
                let rows = status_rows.lock().await;
                let marks = stored.may_be_resent(&all);
                let mut result = store.append_checking(&all, Some(&marks), clock.now()).await;
                tracing::debug!(
                    batches = jobs.len(),
                    messages = all.len(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "telemetry transaction"
                );
                if matches!(result, Err(StoreError::Conflict(_))) {
                    // Another replica made a connector's first status row meanwhile, or stored a
                    // report not searched for: once more, every report searched.
                    result = store.append(&all, clock.now()).await;
                }
                drop(rows);
                match result {
                    Ok(outcome) => {
                        stored.note(&outcome.stored);
                        let stored: std::collections::HashSet<(&str, u64)> = outcome
                            .stored
                            .iter()
                            .map(|(s, q)| (s.as_str(), *q))
                            .collect();
                        for job in jobs {
                            let written = Written {
                                stored: job
                                    .reports
                                    .iter()
                                    .filter(|r| stored.contains(&(r.source.as_str(), r.sequence)))
                                    .count(),
                                resync: job
                                    .reports
                                    .first()
                                    .is_some_and(|r| outcome.resync.contains(&r.source)),
                            };
                            let _ = job.reply.send(Ok(written));
                        }
                        // The senders have their acknowledgements; now wake the watchers.
                        feed.committed(&outcome.changes);
                    }
                    Err(error) => {
                        tracing::warn!(%error, batches = jobs.len(), "telemetry not stored; senders will resend");
                        for job in jobs {
                            let _ = job.reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    async fn append(&self, reports: Vec<Report>) -> Result<Written, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Unavailable("the telemetry writer stopped".into());
        self.tx
            .send(Job { reports, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

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
        let status_rows = Arc::new(tokio::sync::Mutex::new(()));
        let writer = Writer::spawn(
            store.clone(),
            feed.clone(),
            clock.clone(),
            status_rows.clone(),
        );
        let heartbeats = Arc::new(crate::heartbeats::Heartbeats::new(
            settings.heartbeat_fresh_for(),
            status_rows,
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
        let source = reports.first().map(|r| r.source.clone());
        // REQ MON-1: a confirmed pile's heartbeat is noted for the next flush, not written now.
        let outcome = if self.heartbeats.take(&reports, now) {
            Written::default()
        } else {
            let outcome = self
                .writer
                .append(reports)
                .await
                .map_err(|e| Status::from(chargemesh_kit::Error::Store(e)))?;
            if let Some(source) = &source {
                if outcome.resync {
                    self.heartbeats.refute(source);
                } else {
                    self.heartbeats.confirm(source, now);
                }
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
            self.registry.invalidate(operator_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Body;

    fn report(source: &str, sequence: u64) -> Report {
        Report {
            source: source.into(),
            sequence,
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: "P1".into(),
            connector_id: String::new(),
            area_code: "330602".into(),
            connectors: Vec::new(),
            observed_at: chrono::DateTime::UNIX_EPOCH,
            body: Body::Heartbeat,
        }
    }

    #[test]
    fn mon_1_a_sender_s_reports_above_what_this_writer_stored_are_not_searched_for() {
        let mut marks = Watermarks::default();
        let batch = [report("pile:A", 5), report("pile:B", 1)];
        assert_eq!(
            marks.may_be_resent(&batch),
            [true, true],
            "senders not heard from: searched"
        );
        marks.note(&[("pile:A".into(), 5), ("pile:A".into(), 3)]);
        let next = [
            report("pile:A", 6),
            report("pile:A", 5),
            report("pile:A", 1),
            report("pile:B", 2),
        ];
        assert_eq!(
            marks.may_be_resent(&next),
            [false, true, true, true],
            "a resend, or a sequence that started again, is at or below the mark"
        );
    }

    #[test]
    fn mon_1_the_marks_start_again_past_their_bound() {
        let mut marks = Watermarks {
            max_senders: 2,
            ..Watermarks::default()
        };
        marks.note(&[("pile:A".into(), 1), ("pile:B".into(), 1)]);
        marks.note(&[("pile:C".into(), 1)]);
        assert_eq!(marks.marks.len(), 1);
        assert_eq!(
            marks.may_be_resent(&[report("pile:A", 2), report("pile:C", 2)]),
            [true, false]
        );
    }
}
