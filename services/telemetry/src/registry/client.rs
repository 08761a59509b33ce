//! The asset component's registry as telemetry reads it over the mesh: whole operators page by
//! page, or one station or pile.

use tonic::Code;

use chargemesh_kit::Error;
use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::asset::v1 as apb;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;

use crate::domain::{OperatorIndex, PileRef, StationRef};

/// The largest page the asset API serves.
const PAGE: i32 = 500;

/// A client of the asset component's registry, as the telemetry component (a mesh service).
#[derive(Debug, Clone)]
pub struct AssetClient(AssetServiceClient<MeshChannel>);

impl AssetClient {
    pub fn new(channel: MeshChannel) -> Self {
        Self(AssetServiceClient::new(channel))
    }

    fn client(&self) -> AssetServiceClient<MeshChannel> {
        self.0.clone()
    }

    /// A station, or `None` when there is none.
    pub async fn station(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Option<apb::Station>, Error> {
        let request = apb::GetStationRequest {
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
        };
        match self.client().get_station(request).await {
            Ok(reply) => Ok(reply.into_inner().station),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(upstream(status)),
        }
    }

    /// A pile, or `None` when there is none.
    pub async fn pile(&self, operator_id: &str, pile_id: &str) -> Result<Option<apb::Pile>, Error> {
        let request = apb::GetPileRequest {
            operator_id: operator_id.to_owned(),
            pile_id: pile_id.to_owned(),
        };
        match self.client().get_pile(request).await {
            Ok(reply) => Ok(reply.into_inner().pile),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(upstream(status)),
        }
    }

    /// Every station of an operator (every operator when empty), optionally in one state.
    pub async fn stations(
        &self,
        operator_id: &str,
        state: apb::StationState,
    ) -> Result<Vec<apb::Station>, Error> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client()
                .list_stations(apb::ListStationsRequest {
                    operator_id: operator_id.to_owned(),
                    area_code: String::new(),
                    page_size: PAGE,
                    page_token,
                    state: state as i32,
                })
                .await
                .map_err(upstream)?
                .into_inner();
            out.extend(page.stations);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Every pile of an operator, or of one of its stations.
    pub async fn piles(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Vec<apb::Pile>, Error> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client()
                .list_piles(apb::ListPilesRequest {
                    operator_id: operator_id.to_owned(),
                    station_id: station_id.to_owned(),
                    page_size: PAGE,
                    page_token,
                })
                .await
                .map_err(upstream)?
                .into_inner();
            out.extend(page.piles);
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// Whether the operator is registered.
    pub async fn operator_exists(&self, operator_id: &str) -> Result<bool, Error> {
        let request = apb::GetOperatorRequest {
            operator_id: operator_id.to_owned(),
        };
        match self.client().get_operator(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(upstream(status)),
        }
    }

    /// REQ BASE-2: tells the registry a filed station is connected, by its first report.
    pub async fn connect_station(
        &self,
        operator_id: &str,
        station_id: &str,
        note: String,
    ) -> Result<(), Error> {
        let request = apb::ConnectStationRequest {
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
            connection_mode: apb::ConnectionMode::Unspecified as i32,
            note,
        };
        self.client()
            .connect_station(request)
            .await
            .map(|_| ())
            .map_err(upstream)
    }
}

/// A failed call to the asset component: unavailable to our caller, whatever it was upstream,
/// except a refusal it made for a reason the caller can act on.
fn upstream(status: tonic::Status) -> Error {
    match status.code() {
        Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound => {
            Error::Upstream(status.code(), status.message().to_owned())
        }
        _ => Error::Upstream(
            Code::Unavailable,
            format!("the registry is unavailable: {}", status.message()),
        ),
    }
}

/// Where the cache reads the registry from: the asset component, or a test's stand-in.
#[tonic::async_trait]
pub trait IndexSource: Send + Sync + std::fmt::Debug {
    /// The operator's stations and piles; `None` when the operator is not registered.
    async fn operator_index(&self, operator_id: &str) -> Result<Option<OperatorIndex>, Error>;
    /// One station; `None` when the registry has none by that id.
    async fn station_ref(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Option<StationRef>, Error>;
    /// One pile; `None` when the registry has none by that id.
    async fn pile_ref(&self, operator_id: &str, pile_id: &str) -> Result<Option<PileRef>, Error>;
}

fn station_ref(s: &apb::Station) -> StationRef {
    StationRef {
        area_code: s.area_code.clone(),
        filed: s.state == apb::StationState::Filed as i32,
    }
}

fn pile_ref(p: apb::Pile) -> PileRef {
    PileRef {
        retired: p.state == apb::PileState::Retired as i32,
        station_id: p.station_id,
        connectors: p.connectors.into_iter().map(|c| c.connector_id).collect(),
        rated_power_kw: p.rated_power_kw,
    }
}

#[tonic::async_trait]
impl IndexSource for AssetClient {
    async fn operator_index(&self, operator_id: &str) -> Result<Option<OperatorIndex>, Error> {
        if !self.operator_exists(operator_id).await? {
            return Ok(None);
        }
        let mut index = OperatorIndex::default();
        for s in self
            .stations(operator_id, apb::StationState::Unspecified)
            .await?
        {
            index.stations.insert(s.station_id.clone(), station_ref(&s));
        }
        for p in self.piles(operator_id, "").await? {
            index.piles.insert(p.pile_id.clone(), pile_ref(p));
        }
        Ok(Some(index))
    }

    async fn station_ref(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Option<StationRef>, Error> {
        Ok(self
            .station(operator_id, station_id)
            .await?
            .as_ref()
            .map(station_ref))
    }

    async fn pile_ref(&self, operator_id: &str, pile_id: &str) -> Result<Option<PileRef>, Error> {
        Ok(self.pile(operator_id, pile_id).await?.map(pile_ref))
    }
}
