//! Where commissioning reads a station's published trial-operation days (REQ BASE-2): the
//! telemetry component, which computes and publishes them, asked over the mesh as this
//! component (`chargemesh.regulator.v2.StatusService/GetTrialOperationReport`).

use std::str::FromStr;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tonic::Code;

use chargemesh_kit::Error;
use chargemesh_kit::tls::MeshChannel;
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::regulator::v2::status_service_client::StatusServiceClient;

use crate::domain::commissioning::TrialDayFigures;

/// The telemetry component's published trial days.
#[derive(Debug, Clone)]
pub struct TrialDays(StatusServiceClient<MeshChannel>);

impl TrialDays {
    pub fn new(telemetry: MeshChannel) -> Self {
        Self(StatusServiceClient::new(telemetry))
    }

    /// A station's published days; none when telemetry has none for it.
    pub async fn days(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Vec<TrialDayFigures>, Error> {
        let request = reg::GetTrialOperationReportRequest {
            operator_id: operator_id.to_owned(),
            station_id: station_id.to_owned(),
        };
        let report = match self.0.clone().get_trial_operation_report(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == Code::NotFound => return Ok(Vec::new()),
            Err(status) => {
                return Err(Error::Upstream(
                    Code::Unavailable,
                    format!(
                        "the trial-operation days cannot be read now ({}); retry (REQ BASE-2)",
                        status.message()
                    ),
                ));
            }
        };
        report.days.iter().map(figures).collect()
    }
}

fn figures(day: &reg::TrialOperationDay) -> Result<TrialDayFigures, Error> {
    let bad = || {
        Error::Upstream(
            Code::Internal,
            "telemetry sent an unreadable trial day".into(),
        )
    };
    Ok(TrialDayFigures {
        day: NaiveDate::parse_from_str(&day.day, "%Y-%m-%d").map_err(|_| bad())?,
        availability_percent: Decimal::from_str(&day.availability_percent).map_err(|_| bad())?,
    })
}
