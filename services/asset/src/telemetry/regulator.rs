//! `chargemesh.regulator.v1.RegulatorService`: what the municipal regulator reads, always within
//! its area (REQ BASE-2, SVC-2, MON-1).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::paging::{decode_token, encode_token};
use chargemesh_kit::server::principal;
use chargemesh_kit::time::{from_timestamp, to_timestamp};
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::regulator::v1 as pb;
use chargemesh_proto::regulator::v1::regulator_service_server::{
    RegulatorService, RegulatorServiceServer,
};

use super::domain::ConnectorState;
use super::feed::ChangeFeed;
use super::ingest::state_to_pb;
use super::store::{StatusChange, TelemetryStore};
use super::trial::{TrialDay, energy_from_registers};
use crate::domain::codes::area_prefix;
use crate::domain::model::{Pile, Station};
use crate::domain::tenancy::PLATFORM_ADMIN;
use crate::grpc::{pile_to_pb, station_to_pb};
use crate::store::{AssetStore, Filter, Page};
use rust_decimal::Decimal;

const MAX_STATIONS: usize = 50;
const WATCH_BATCH: u32 = 500;

#[derive(Debug, Clone)]
pub struct RegulatorApi {
    assets: Arc<dyn AssetStore>,
    store: Arc<dyn TelemetryStore>,
    feed: ChangeFeed,
    /// What is published is as of now: the price board in force.
    clock: SharedClock,
}

/// The area a caller may see: `Some(prefix)` for a regulator, `None` for everything.
fn area_scope(p: &Principal) -> Result<Option<String>, Error> {
    match p {
        Principal::Regulator { area_code } => Ok(Some(area_prefix(area_code).to_owned())),
        Principal::Service { .. } => Ok(None),
        Principal::Staff {
            operator_id: None, ..
        } if p.has_role(PLATFORM_ADMIN) => Ok(None),
        _ => Err(Error::PermissionDenied(format!("{p} is not a regulator"))),
    }
}

pub fn encode_cursor(cursor: i64) -> String {
    encode_token(&[&cursor.to_string()])
}

pub fn decode_cursor(token: &str) -> Result<i64, Error> {
    let bad = || Error::bad_field("cursor", "is not a cursor this service issued");
    match decode_token(token, 1)? {
        Some(parts) => parts[0].parse().map_err(|_| bad()),
        None => Err(bad()),
    }
}

pub fn change_to_pb(c: &StatusChange) -> pb::StatusChange {
    pb::StatusChange {
        cursor: encode_cursor(c.cursor),
        status: Some(pb::ConnectorStatusInfo {
            operator_id: c.operator_id.clone(),
            station_id: c.station_id.clone(),
            pile_id: c.pile_id.clone(),
            connector_id: c.connector_id.clone(),
            state: state_to_pb(c.state) as i32,
            cec_status: c.state.cec_code(),
            fault_code: c.fault_code.clone(),
            fault_text: c.fault_text.clone(),
            change_time: Some(to_timestamp(c.changed_at)),
            last_seen_time: None,
            area_code: c.area_code.clone(),
        }),
        previous_state: c
            .previous
            .map(|p| state_to_pb(p) as i32)
            .unwrap_or_default(),
        origin: c.origin.clone(),
    }
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

/// The longest period `GetStationStats` covers.
const MAX_STATS_DAYS: i64 = 31;

impl RegulatorApi {
    /// A station the caller may see; one outside its area is reported as absent.
    async fn visible_station(
        &self,
        p: &Principal,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Station, Error> {
        let scope = area_scope(p)?;
        let what = || format!("station {operator_id}/{station_id}");
        let station = self
            .assets
            .station(operator_id, station_id)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?
            .value;
        if scope
            .as_deref()
            .is_some_and(|prefix| !station.area_code.starts_with(prefix))
        {
            return Err(Error::NotFound(what()));
        }
        Ok(station)
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
        let station = self
            .visible_station(p, &req.operator_id, &req.station_id)
            .await?;
        let registers = self
            .store
            .meter_registers(&station.operator_id, &station.station_id, start, end)
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
            operator_id: station.operator_id,
            station_id: station.station_id,
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
        let station = self
            .visible_station(p, &req.operator_id, &req.station_id)
            .await?;
        let days = self
            .store
            .trial_days(&station.operator_id, &station.station_id)
            .await?;
        Ok(pb::GetTrialOperationReportResponse {
            station: Some(station_to_pb(&station, self.clock.now())),
            days: days.iter().map(trial_day_to_pb).collect(),
        })
    }

    pub fn new(
        assets: Arc<dyn AssetStore>,
        store: Arc<dyn TelemetryStore>,
        feed: ChangeFeed,
        clock: SharedClock,
    ) -> Self {
        Self {
            assets,
            store,
            feed,
            clock,
        }
    }

    pub fn into_server(self) -> RegulatorServiceServer<Self> {
        RegulatorServiceServer::new(self)
    }

    async fn piles_of(&self, station: &Station) -> Result<Vec<Pile>, Error> {
        let filters = [
            Filter::Eq("operator_id", station.operator_id.clone()),
            Filter::Eq("station_id", station.station_id.clone()),
        ];
        Ok(self
            .assets
            .list_piles(&filters, &Page::WHOLE_STATION)
            .await?)
    }

    async fn list_stations_(
        &self,
        p: &Principal,
        req: pb::ListStationsRequest,
    ) -> Result<pb::ListStationsResponse, Error> {
        let scope = area_scope(p)?;
        let limit = match req.page_size {
            n if n < 0 => return Err(Error::bad_field("page_size", "must not be negative")),
            0 => 20,
            n => (n as u32).min(100),
        };
        let since = match &req.updated_since {
            Some(ts) => Some(
                from_timestamp(ts)
                    .ok_or_else(|| Error::bad_field("updated_since", "is not a valid timestamp"))?,
            ),
            None => None,
        };
        let after = decode_token(&req.page_token, 2)?.map(|mut parts| {
            let id = parts.pop().unwrap_or_default();
            (parts.pop().unwrap_or_default(), id)
        });
        let filters: Vec<Filter> = scope
            .into_iter()
            .map(|prefix| Filter::Prefix("area_code", prefix))
            .collect();
        let page = Page { after, limit };
        let stations = self.assets.list_stations(&filters, &page).await?;
        let next_page_token = match stations.last() {
            Some(last) if stations.len() as u32 >= limit => {
                encode_token(&[&last.operator_id, &last.station_id])
            }
            _ => String::new(),
        };
        let mut records = Vec::with_capacity(stations.len());
        for station in &stations {
            let piles = self.piles_of(station).await?;
            let changed = since.is_none_or(|since| {
                station.updated_at >= since || piles.iter().any(|p| p.updated_at >= since)
            });
            if changed {
                records.push(pb::StationRecord {
                    station: Some(station_to_pb(station, self.clock.now())),
                    piles: piles.iter().map(pile_to_pb).collect(),
                });
            }
        }
        Ok(pb::ListStationsResponse {
            stations: records,
            next_page_token,
        })
    }

    async fn station_status_(
        &self,
        p: &Principal,
        req: pb::GetStationStatusRequest,
    ) -> Result<pb::GetStationStatusResponse, Error> {
        let scope = area_scope(p)?;
        if req.stations.is_empty() || req.stations.len() > MAX_STATIONS {
            return Err(Error::bad_field(
                "stations",
                format!("name 1 to {MAX_STATIONS} stations"),
            ));
        }
        let mut out = Vec::new();
        for key in &req.stations {
            let Some(station) = self
                .assets
                .station(&key.operator_id, &key.station_id)
                .await?
            else {
                continue;
            };
            let station = station.value;
            if scope
                .as_deref()
                .is_some_and(|prefix| !station.area_code.starts_with(prefix))
            {
                continue; // outside the area: as if it did not exist
            }
            let live = self
                .store
                .station_status(&station.operator_id, &station.station_id)
                .await?;
            let mut connectors = Vec::new();
            for pile in self.piles_of(&station).await? {
                for c in &pile.connectors {
                    let status = live
                        .iter()
                        .find(|s| s.pile_id == pile.pile_id && s.connector_id == c.connector_id);
                    let state = status.map_or(ConnectorState::Offline, |s| s.state);
                    connectors.push(pb::ConnectorStatusInfo {
                        operator_id: station.operator_id.clone(),
                        station_id: station.station_id.clone(),
                        pile_id: pile.pile_id.clone(),
                        connector_id: c.connector_id.clone(),
                        state: state_to_pb(state) as i32,
                        cec_status: state.cec_code(),
                        fault_code: status.map(|s| s.fault_code.clone()).unwrap_or_default(),
                        fault_text: status.map(|s| s.fault_text.clone()).unwrap_or_default(),
                        change_time: status.map(|s| to_timestamp(s.changed_at)),
                        last_seen_time: status.map(|s| to_timestamp(s.last_seen_at)),
                        area_code: station.area_code.clone(),
                    });
                }
            }
            out.push(pb::StationStatus {
                operator_id: station.operator_id.clone(),
                station_id: station.station_id.clone(),
                connectors,
            });
        }
        Ok(pb::GetStationStatusResponse { stations: out })
    }
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchStatusChangesResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RegulatorService for RegulatorApi {
    type WatchStatusChangesStream = WatchStream;

    /// Charge orders are the metering component's; the gateway routes this method there.
    async fn list_charge_orders(
        &self,
        _request: Request<pb::ListChargeOrdersRequest>,
    ) -> Result<Response<pb::ListChargeOrdersResponse>, Status> {
        Err(Status::unimplemented(
            "charge orders are served by the metering component",
        ))
    }

    async fn get_kpi_report(
        &self,
        _request: Request<pb::GetKpiReportRequest>,
    ) -> Result<Response<pb::GetKpiReportResponse>, Status> {
        Err(Status::unimplemented(
            "KPI reports are served by the reporting component",
        ))
    }

    async fn list_stations(
        &self,
        request: Request<pb::ListStationsRequest>,
    ) -> Result<Response<pb::ListStationsResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(
            self.list_stations_(&p, request.into_inner()).await?,
        ))
    }

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
        let scope = area_scope(&p)?;
        let req = request.into_inner();
        let mut cursor = if req.cursor.is_empty() && req.from_start {
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
        let mut wake = self.feed.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                wake.borrow_and_update();
                let changes = match store
                    .changes_after(cursor, scope.as_deref(), WATCH_BATCH)
                    .await
                {
                    Ok(changes) => changes,
                    Err(error) => {
                        let _ = tx.send(Err(Status::from(Error::Store(error)))).await;
                        return;
                    }
                };
                if let Some(last) = changes.last() {
                    cursor = last.cursor;
                    let message = pb::WatchStatusChangesResponse {
                        changes: changes.iter().map(change_to_pb).collect(),
                    };
                    if tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                    continue;
                }
                // Wait for a commit here or on another replica; poll now and then regardless.
                tokio::select! {
                    _ = wake.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).ok(), Some(42));
        assert!(decode_cursor("nope").is_err());
    }
}
