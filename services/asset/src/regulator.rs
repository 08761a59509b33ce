//! `chargemesh.regulator.v2.RegistryService`: the registry as the municipal regulator reads it,
//! always within its area (REQ BASE-2, SVC-1).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::paging::{decode_token, encode_token};
use chargemesh_kit::server::principal;
use chargemesh_kit::tenancy::regulator_scope;
use chargemesh_kit::time::from_timestamp;
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::regulator::v2 as pb;
use chargemesh_proto::regulator::v2::registry_service_server::{
    RegistryService, RegistryServiceServer,
};

use crate::domain::model::{Pile, Station};
use crate::grpc::{pile_to_pb, station_to_pb};
use crate::store::{AssetStore, Filter, Page};

/// The most stations one `ListStations` names by id.
const MAX_STATION_IDS: usize = 50;

#[derive(Debug, Clone)]
pub struct RegistryApi {
    store: Arc<dyn AssetStore>,
    /// What is published is as of now: the price board in force.
    clock: SharedClock,
}

impl RegistryApi {
    pub fn new(store: Arc<dyn AssetStore>, clock: SharedClock) -> Self {
        Self { store, clock }
    }

    pub fn into_server(self) -> RegistryServiceServer<Self> {
        RegistryServiceServer::new(self)
    }

    async fn piles_of(&self, station: &Station) -> Result<Vec<Pile>, Error> {
        let filters = [
            Filter::Eq("operator_id", station.operator_id.clone()),
            Filter::Eq("station_id", station.station_id.clone()),
        ];
        Ok(self
            .store
            .list_piles(&filters, &Page::WHOLE_STATION)
            .await?)
    }

    async fn list_stations_(
        &self,
        p: &Principal,
        req: pb::ListStationsRequest,
    ) -> Result<pb::ListStationsResponse, Error> {
        let scope = regulator_scope(p)?;
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
        let mut filters: Vec<Filter> = scope
            .into_iter()
            .map(|prefix| Filter::Prefix("area_code", prefix))
            .collect();
        if !req.station_ids.is_empty() {
            if req.station_ids.len() > MAX_STATION_IDS {
                return Err(Error::bad_field(
                    "station_ids",
                    format!("names at most {MAX_STATION_IDS} stations"),
                ));
            }
            filters.push(Filter::In("station_id", req.station_ids.clone()));
        }
        let connector = req.connector_id.trim();
        if !connector.is_empty() {
            filters.push(Filter::HasConnector(connector.to_owned()));
        }
        let page = Page { after, limit };
        let stations = self.store.list_stations(&filters, &page).await?;
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
}

#[tonic::async_trait]
impl RegistryService for RegistryApi {
    async fn list_stations(
        &self,
        request: Request<pb::ListStationsRequest>,
    ) -> Result<Response<pb::ListStationsResponse>, Status> {
        let p = principal(&request)?;
        Ok(Response::new(
            self.list_stations_(&p, request.into_inner()).await?,
        ))
    }
}
