//! The regulator's view of charge orders: `chargemesh.regulator.v2.OrderService`, always within
//! the regulator's area (REQ SETTLE-1, BASE-5).

use tonic::{Request, Response, Status};

use chargemesh_kit::server::principal;
use chargemesh_proto::metering::v1 as pb;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::order_service_server::{OrderService, OrderServiceServer};

use crate::MeteringApi;

#[derive(Debug, Clone)]
pub struct RegulatorOrders {
    api: MeteringApi,
}

impl RegulatorOrders {
    pub fn new(api: MeteringApi) -> Self {
        Self { api }
    }

    pub fn into_server(self) -> OrderServiceServer<Self> {
        OrderServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl OrderService for RegulatorOrders {
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
}
