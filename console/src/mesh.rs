//! The console's calls to the mesh: through the gateway, as the signed-in person (their bearer
//! token on every call), so what they may see and do is decided where it always is. The
//! console presents no certificate and holds no authority of its own.

use std::sync::Arc;

use tonic::transport::Channel;

use chargemesh_kit::tls;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use chargemesh_proto::complaints::v1::complaints_service_client::ComplaintsServiceClient;
use chargemesh_proto::dispatch::v1::dispatch_service_client::DispatchServiceClient;
use chargemesh_proto::metering::v1::metering_service_client::MeteringServiceClient;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;
use chargemesh_proto::reporting::v1::reporting_service_client::ReportingServiceClient;

use crate::config::ConsoleConfig;

/// Why the gateway could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("console.gateway / console.ca_file: {0}")]
pub struct GatewayError(String);

/// The gateway, as a lazily connected channel.
#[derive(Debug, Clone)]
pub struct Gateway {
    channel: Channel,
}

impl Gateway {
    pub fn new(config: &ConsoleConfig) -> Result<Self, GatewayError> {
        let client = tls::anonymous_client_config(&config.ca_file)
            .map_err(|e| GatewayError(e.to_string()))?;
        let channel = tls::channel(&config.gateway, Arc::new(client))
            .map_err(|e| GatewayError(e.to_string()))?;
        Ok(Self { channel })
    }

    pub fn dispatch(&self) -> DispatchServiceClient<Channel> {
        DispatchServiceClient::new(self.channel.clone())
    }

    pub fn complaints(&self) -> ComplaintsServiceClient<Channel> {
        ComplaintsServiceClient::new(self.channel.clone())
    }

    pub fn asset(&self) -> AssetServiceClient<Channel> {
        AssetServiceClient::new(self.channel.clone())
    }

    pub fn metering(&self) -> MeteringServiceClient<Channel> {
        MeteringServiceClient::new(self.channel.clone())
    }

    pub fn reporting(&self) -> ReportingServiceClient<Channel> {
        ReportingServiceClient::new(self.channel.clone())
    }

    /// The live status views (REQ MON-1).
    pub fn status(&self) -> StatusServiceClient<Channel> {
        StatusServiceClient::new(self.channel.clone())
    }
}

/// How long a call the pages wait on may take.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request carrying `token` as its bearer, with no deadline (a live stream).
pub fn bearing<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// A call as the person: their token, and the pages' deadline.
pub fn as_person<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = bearing(token, message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// A request without a credential: the public methods only (a station's public page).
pub fn anonymous<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}
