//! The regulator's view of charge orders: `chargemesh.regulator.v1.RegulatorService/
//! ListChargeOrders`, which the gateway routes to metering; the rest of the regulator API is the
//! asset component's, and answers UNIMPLEMENTED here.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use chargemesh_kit::server::principal;
use chargemesh_proto::metering::v1 as pb;
use chargemesh_proto::regulator::v1 as reg;
use chargemesh_proto::regulator::v1::regulator_service_server::{
    RegulatorService, RegulatorServiceServer,
};

use crate::MeteringApi;

#[derive(Debug, Clone)]
pub struct RegulatorOrders {
    api: MeteringApi,
}

fn elsewhere() -> Status {
    Status::unimplemented("served by the asset component")
}

impl RegulatorOrders {
    pub fn new(api: MeteringApi) -> Self {
        Self { api }
    }

    pub fn into_server(self) -> RegulatorServiceServer<Self> {
        RegulatorServiceServer::new(self)
    }
}

type Changes =
    Pin<Box<dyn Stream<Item = Result<reg::WatchStatusChangesResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl RegulatorService for RegulatorOrders {
    type WatchStatusChangesStream = Changes;

    async fn list_charge_orders(
        &self,
        request: Request<reg::ListChargeOrdersRequest>,
    ) -> Result<Response<reg::ListChargeOrdersResponse>, Status> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let listed = self
            .api
            .list(
                &p,
                pb::ListChargeOrdersRequest {
                    operator_id: r.operator_id,
                    station_id: r.station_id,
                    start_time: r.start_time,
                    end_time: r.end_time,
                    flagged_only: false,
                    page_size: r.page_size,
                    page_token: r.page_token,
                    updated_since: r.updated_since,
                },
            )
            .await?;
        Ok(Response::new(reg::ListChargeOrdersResponse {
            orders: listed.orders,
            next_page_token: listed.next_page_token,
        }))
    }

    async fn get_kpi_report(
        &self,
        _: Request<reg::GetKpiReportRequest>,
    ) -> Result<Response<reg::GetKpiReportResponse>, Status> {
        Err(Status::unimplemented("served by the reporting component"))
    }

    async fn list_stations(
        &self,
        _request: Request<reg::ListStationsRequest>,
    ) -> Result<Response<reg::ListStationsResponse>, Status> {
        Err(elsewhere())
    }

    async fn get_station_status(
        &self,
        _request: Request<reg::GetStationStatusRequest>,
    ) -> Result<Response<reg::GetStationStatusResponse>, Status> {
        Err(elsewhere())
    }

    async fn watch_status_changes(
        &self,
        _request: Request<reg::WatchStatusChangesRequest>,
    ) -> Result<Response<Changes>, Status> {
        Err(elsewhere())
    }

    async fn get_station_stats(
        &self,
        _request: Request<reg::GetStationStatsRequest>,
    ) -> Result<Response<reg::GetStationStatsResponse>, Status> {
        Err(elsewhere())
    }

    async fn get_trial_operation_report(
        &self,
        _request: Request<reg::GetTrialOperationReportRequest>,
    ) -> Result<Response<reg::GetTrialOperationReportResponse>, Status> {
        Err(elsewhere())
    }
}
