//! `chargemesh.regulator.v2.StatusService`: the live status, the status log, the energy and the
//! trial-operation days as the municipal regulator reads them, always within its area
//! (REQ BASE-2, SVC-2, MON-1). Stations and their piles come from the registry cache.

use std::pin::Pin;
use std::sync::Arc;

use rust_decimal::Decimal;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use chargemesh_kit::server::principal;
use chargemesh_kit::tenancy::{StatusScope, regulator_status_scope, status_scope};
use chargemesh_kit::time::{from_timestamp, to_timestamp};
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::regulator::v2 as pb;
use chargemesh_proto::regulator::v2::status_service_server::{StatusService, StatusServiceServer};

use crate::convert::{cec_code, change_to_pb, decode_cursor, state_to_pb};
use crate::domain::{ConnectorState, OperatorIndex, StationRef};
use crate::feed::ChangeFeed;
use crate::registry::Registry;
use crate::store::TelemetryStore;
use crate::trial::{TrialDay, energy_from_registers};

const MAX_STATIONS: usize = 50;
const WATCH_BATCH: u32 = 500;
/// The most cursors one read of a watcher scans: the read is a bounded range of the status
/// log's key, and a watcher whose scope skips a long run of changes resumes after the span.
const WATCH_SPAN: i64 = 20_000;
/// The longest period `GetStationStats` covers.
const MAX_STATS_DAYS: i64 = 31;

#[derive(Debug, Clone)]
pub struct StatusApi {
    store: Arc<dyn TelemetryStore>,
    registry: Arc<Registry>,
    feed: ChangeFeed,
}

fn trial_day_to_pb(d: &TrialDay) -> pb::TrialOperationDay {
    pb::TrialOperationDay {
        day: d.day.to_string(),
        connector_minutes: d.connector_minutes,
        available_minutes: d.available_minutes,
        offline_minutes: d.offline_minutes,
        fault_minutes: d.fault_minutes,
        availability_percent: format!("{:.2}", d.availability_percent),
        sessions_started: d.sessions_started,
        sessions_completed: d.sessions_completed,
        energy_kwh: format!("{:.3}", d.energy_kwh),
        faults_raised: d.faults_raised,
        faults_cleared: d.faults_cleared,
    }
}

/// The piles of a station in the index, in pile order, with their connectors in registry order.
fn station_connectors<'a>(
    index: &'a OperatorIndex,
    station_id: &str,
) -> Vec<(&'a str, &'a [String])> {
    let mut piles: Vec<(&str, &[String])> = index
        .piles
        .iter()
        .filter(|(_, p)| p.station_id == station_id)
        .map(|(id, p)| (id.as_str(), p.connectors.as_slice()))
        .collect();
    piles.sort_unstable_by_key(|(id, _)| *id);
    piles
}

impl StatusApi {
    pub fn new(store: Arc<dyn TelemetryStore>, registry: Arc<Registry>, feed: ChangeFeed) -> Self {
        Self {
            store,
            registry,
            feed,
        }
    }

    pub fn into_server(self) -> StatusServiceServer<Self> {
        StatusServiceServer::new(self)
    }

    /// A station the caller may see, with its operator's index; one outside its area is
    /// reported as absent.
    async fn visible_station(
        &self,
        scope: &StatusScope,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Option<(Arc<OperatorIndex>, StationRef)>, Error> {
        let Some(index) = self.registry.index(operator_id, "").await? else {
            return Ok(None);
        };
        let Some(station) = index.stations.get(station_id).cloned() else {
            return Ok(None);
        };
        if !scope.covers(operator_id, &station.area_code) {
            return Ok(None);
        }
        Ok(Some((index, station)))
    }

    async fn require_station(
        &self,
        p: &Principal,
        operator_id: &str,
        station_id: &str,
    ) -> Result<(Arc<OperatorIndex>, StationRef), Error> {
        let scope = regulator_status_scope(p)?;
        self.visible_station(&scope, operator_id, station_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("station {operator_id}/{station_id}")))
    }

    async fn station_stats_(
        &self,
        p: &Principal,
        req: pb::GetStationStatsRequest,
    ) -> Result<pb::GetStationStatsResponse, Error> {
        let start = req
            .start_time
            .as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| Error::bad_field("start_time", "is required"))?;
        let end = req
            .end_time
            .as_ref()
            .and_then(from_timestamp)
            .ok_or_else(|| Error::bad_field("end_time", "is required"))?;
        if end <= start || end - start > chrono::Duration::days(MAX_STATS_DAYS) {
            return Err(Error::bad_field(
                "end_time",
                format!("must be after start_time and within {MAX_STATS_DAYS} days of it"),
            ));
        }
        self.require_station(p, &req.operator_id, &req.station_id)
            .await?;
        let registers = self
            .store
            .meter_registers(&req.operator_id, &req.station_id, start, end)
            .await?;
        let mut piles: std::collections::BTreeMap<String, Decimal> =
            std::collections::BTreeMap::new();
        let mut connectors = Vec::new();
        for ((pile_id, connector_id), samples) in &registers {
            let energy = energy_from_registers(samples);
            *piles.entry(pile_id.clone()).or_default() += energy;
            connectors.push(pb::ConnectorEnergy {
                pile_id: pile_id.clone(),
                connector_id: connector_id.clone(),
                energy_kwh: format!("{energy:.3}"),
            });
        }
        let total: Decimal = piles.values().copied().sum();
        Ok(pb::GetStationStatsResponse {
            operator_id: req.operator_id,
            station_id: req.station_id,
            energy_kwh: format!("{total:.3}"),
            piles: piles
                .into_iter()
                .map(|(pile_id, e)| pb::PileEnergy {
                    pile_id,
                    energy_kwh: format!("{e:.3}"),
                })
                .collect(),
            connectors,
        })
    }

    async fn trial_report_(
        &self,
        p: &Principal,
        req: pb::GetTrialOperationReportRequest,
    ) -> Result<pb::GetTrialOperationReportResponse, Error> {
        self.require_station(p, &req.operator_id, &req.station_id)
            .await?;
        let station = self
            .registry
            .asset()
            .station(&req.operator_id, &req.station_id)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!("station {}/{}", req.operator_id, req.station_id))
            })?;
        let days = self
            .store
            .trial_days(&req.operator_id, &req.station_id)
            .await?;
        Ok(pb::GetTrialOperationReportResponse {
            station: Some(station),
            days: days.iter().map(trial_day_to_pb).collect(),
        })
    }

    async fn station_status_(
        &self,
        p: &Principal,
        req: pb::GetStationStatusRequest,
    ) -> Result<pb::GetStationStatusResponse, Error> {
        // REQ MON-1: an operator's staff watch their fleet, a regulator its area.
        let scope = status_scope(p)?;
        if req.stations.is_empty() || req.stations.len() > MAX_STATIONS {
            return Err(Error::bad_field(
                "stations",
                format!("name 1 to {MAX_STATIONS} stations"),
            ));
        }
        let mut out = Vec::new();
        for key in &req.stations {
            let Some((index, station)) = self
                .visible_station(&scope, &key.operator_id, &key.station_id)
                .await?
            else {
                continue; // unknown or outside the area: as if it did not exist
            };
            let live = self
                .store
                .station_status(&key.operator_id, &key.station_id)
                .await?;
            let mut connectors = Vec::new();
            for (pile_id, pile_connectors) in station_connectors(&index, &key.station_id) {
                for connector_id in pile_connectors {
                    let status = live
                        .iter()
                        .find(|s| s.pile_id == pile_id && &s.connector_id == connector_id);
                    let state = status.map_or(ConnectorState::Offline, |s| s.state);
                    connectors.push(pb::ConnectorStatusInfo {
                        operator_id: key.operator_id.clone(),
                        station_id: key.station_id.clone(),
                        pile_id: pile_id.to_owned(),
                        connector_id: connector_id.clone(),
                        state: state_to_pb(state) as i32,
                        cec_status: cec_code(state),
                        fault_code: status.map(|s| s.fault_code.clone()).unwrap_or_default(),
                        fault_text: status.map(|s| s.fault_text.clone()).unwrap_or_default(),
                        change_time: status.map(|s| to_timestamp(s.changed_at)),
                        last_seen_time: status.map(|s| to_timestamp(s.last_seen_at)),
                        area_code: station.area_code.clone(),
                    });
                }
            }
            out.push(pb::StationStatus {
                operator_id: key.operator_id.clone(),
                station_id: key.station_id.clone(),
                connectors,
            });
        }
        Ok(pb::GetStationStatusResponse { stations: out })
    }
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchStatusChangesResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl StatusService for StatusApi {
    type WatchStatusChangesStream = WatchStream;

    async fn get_station_stats(
        &self,
        request: Request<pb::GetStationStatsRequest>,
    ) -> Result<Response<pb::GetStationStatsResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(
            self.station_stats_(&p, request.into_inner()).await?,
        ))
    }

    async fn get_trial_operation_report(
        &self,
        request: Request<pb::GetTrialOperationReportRequest>,
    ) -> Result<Response<pb::GetTrialOperationReportResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(
            self.trial_report_(&p, request.into_inner()).await?,
        ))
    }

    async fn get_station_status(
        &self,
        request: Request<pb::GetStationStatusRequest>,
    ) -> Result<Response<pb::GetStationStatusResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(
            self.station_status_(&p, request.into_inner()).await?,
        ))
    }

    async fn watch_status_changes(
        &self,
        request: Request<pb::WatchStatusChangesRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let p = principal(&request)?;
        let scope = status_scope(&p)?;
        let req = request.into_inner();
        let cursor = if req.cursor.is_empty() && req.from_start {
            0
        } else if req.cursor.is_empty() {
            self.store
                .latest_cursor()
                .await
                .map_err(|e| Status::from(Error::Store(e)))?
        } else {
            decode_cursor(&req.cursor)?
        };
        let store = self.store.clone();
        let head = self.feed.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(follow_log(cursor, head, tx, move |after, upto| {
            let store = store.clone();
            let scope = scope.clone();
            async move { store.changes_after(after, upto, &scope, WATCH_BATCH).await }
        }));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Streams to `tx` the changes after `cursor` that `read` finds in a span `(after, upto]` (a
/// watcher's scope), reading only when the feed's `head` has moved past what was read, so an
/// idle watcher costs no query however many there are; a span is at most [`WATCH_SPAN`]
/// cursors. It ends when the client goes or the feed closes.
async fn follow_log<R, F>(
    mut cursor: i64,
    mut head: tokio::sync::watch::Receiver<i64>,
    tx: tokio::sync::mpsc::Sender<Result<pb::WatchStatusChangesResponse, Status>>,
    mut read: R,
) where
    R: FnMut(i64, i64) -> F,
    F: std::future::Future<
            Output = Result<Vec<crate::store::StatusChange>, chargemesh_kit::db::StoreError>,
        >,
{
    loop {
        let seen = *head.borrow_and_update();
        if seen <= cursor {
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
            continue;
        }
        let upto = seen.min(cursor.saturating_add(WATCH_SPAN));
        let changes = match read(cursor, upto).await {
            Ok(changes) => changes,
            Err(error) => {
                let _ = tx.send(Err(Status::from(Error::Store(error)))).await;
                return;
            }
        };
        let full = changes.len() >= WATCH_BATCH as usize;
        if let Some(last) = changes.last() {
            cursor = last.cursor;
            let message = pb::WatchStatusChangesResponse {
                changes: changes.iter().map(change_to_pb).collect(),
            };
            if tx.send(Ok(message)).await.is_err() {
                return;
            }
        }
        if !full {
            // The log is numbered in commit order: everything up to the head seen before the
            // read was committed, and the span was read whether or not it was in scope.
            cursor = cursor.max(upto);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::encode_cursor;
    use std::time::Duration;

    fn change(cursor: i64) -> crate::store::StatusChange {
        let at = chrono::DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default();
        crate::store::StatusChange {
            cursor,
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: "P1".into(),
            connector_id: "P1-1".into(),
            area_code: "330602".into(),
            state: ConnectorState::Idle,
            previous: None,
            fault_code: String::new(),
            fault_text: String::new(),
            origin: String::new(),
            changed_at: at,
            recorded_at: at,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_watcher_reads_nothing_until_the_head_moves() {
        let (head_tx, head) = tokio::sync::watch::channel(10_i64);
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let reads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = reads.clone();
        // Out of scope: nothing up to 12; in scope: change 13.
        tokio::spawn(follow_log(10, head, tx, move |after, _upto| {
            seen.lock().expect("reads").push(after);
            async move {
                Ok(if after < 13 {
                    vec![change(13)]
                        .into_iter()
                        .filter(|_| after >= 12)
                        .collect()
                } else {
                    Vec::new()
                })
            }
        }));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(
            reads.lock().expect("reads").is_empty(),
            "no read while idle"
        );
        head_tx.send(12).expect("head");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(*reads.lock().expect("reads"), [10], "one read per move");
        head_tx.send(13).expect("head");
        let sent = rx.recv().await.expect("sent").expect("changes");
        assert_eq!(sent.changes.len(), 1);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            *reads.lock().expect("reads"),
            [10, 12],
            "out-of-scope changes are skipped once, not read again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_watcher_far_behind_reads_bounded_spans_up_to_the_head() {
        let (_head_tx, head) = tokio::sync::watch::channel(50_000_i64);
        let (tx, _rx) = tokio::sync::mpsc::channel(16);
        let reads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = reads.clone();
        // Nothing in the watcher's scope: every span is read once and skipped.
        tokio::spawn(follow_log(0, head, tx, move |after, upto| {
            seen.lock().expect("reads").push((after, upto));
            async move { Ok(Vec::new()) }
        }));
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            *reads.lock().expect("reads"),
            [(0, 20_000), (20_000, 40_000), (40_000, 50_000)]
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).ok(), Some(42));
        assert!(decode_cursor("nope").is_err());
    }
}
