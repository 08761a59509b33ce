//! End to end through the gateway over real mutual TLS, as the mesh's users call it: the registry's
//! rules and commissioning, who may see and do what, and the gateway's own behaviour, one module
//! each; the registration helpers they share are here.

mod access;
mod charge_points;
#[path = "../common/mod.rs"]
mod common;
mod gateway;
mod registry;

use tonic::Code;

use chargemesh::demo;
use chargemesh::pki::{self, Authority, DEMO_CREDIT_CODE, DEMO_OPERATOR_ID};
use chargemesh_kit::Principal;
use chargemesh_kit::jwt::{StaffClaims, sign_es256};
use chargemesh_proto::asset::v1 as pb;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use common::{TD, TestMesh, with_token};

const OP: &str = DEMO_OPERATOR_ID;
/// A second operator, "91330100MA2BCDEF38" with OperatorID MA2BCDEF3.
const OTHER_CREDIT_CODE: &str = "91330100MA2BCDEF38";
const OTHER_OP: &str = "MA2BCDEF3";

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive() - chrono::Duration::days(10)
}

async fn register(client: &mut AssetServiceClient<tonic::transport::Channel>, credit_code: &str) {
    client
        .create_operator(pb::CreateOperatorRequest {
            operator: Some(demo::operator(credit_code)),
        })
        .await
        .expect("operator registers itself");
}

async fn station_of(
    client: &mut AssetServiceClient<tonic::transport::Channel>,
    op: &str,
    id: &str,
    area: &str,
) {
    client
        .create_station(pb::CreateStationRequest {
            station: Some(demo::station(op, id, area)),
        })
        .await
        .expect("station registered");
}

fn code_and_message<T: std::fmt::Debug>(r: Result<T, tonic::Status>) -> (Code, String) {
    let status = r.expect_err("refused");
    (status.code(), status.message().to_owned())
}
