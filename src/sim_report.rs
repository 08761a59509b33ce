//! `chargemesh sim-report`: one connector status reported as its pile, through the gateway,
//! waited on until telemetry says it is durable. The simulated fleet's states wander at random;
//! this is the fault (or recovery) you choose, when you want to see what a monitor sees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use chargemesh_kit::Principal;
use chargemesh_kit::tls;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use crate::pki::{Authority, PkiDir};

/// What to report.
#[derive(Debug, Clone)]
pub struct Report {
    pub gateway: SocketAddr,
    pub pki: PkiDir,
    pub trust_domain: String,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    pub connector_id: String,
    pub state: tm::ConnectorState,
    pub fault_code: String,
    pub fault_text: String,
}

/// Reports the status and waits for telemetry's answer: durable, or why it was refused.
pub async fn report(r: Report) -> anyhow::Result<()> {
    let ca =
        Authority::load(&r.pki.dir).context("the development CA issues the pile's identity")?;
    let principal = Principal::Pile {
        operator_id: r.operator_id.clone(),
        station_id: r.station_id.clone(),
        pile_id: r.pile_id.clone(),
    };
    let files = r.pki.simulated(
        &ca,
        &r.trust_domain,
        &format!("report-{}", r.pile_id),
        &principal,
    )?;
    let channel = tls::channel(
        &format!("https://127.0.0.1:{}", r.gateway.port()),
        Arc::new(tls::client_config(&files)?),
    )?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let now = chrono::Utc::now();
    let sequence = u64::try_from(now.timestamp_micros()).unwrap_or(1).max(1);
    tx.send(tm::ConnectRequest {
        messages: vec![tm::TelemetryMessage {
            sequence,
            pile_id: r.pile_id.clone(),
            connector_id: r.connector_id.clone(),
            observe_time: Some(chargemesh_kit::time::to_timestamp(now)),
            body: Some(tm::telemetry_message::Body::Status(tm::ConnectorStatus {
                state: r.state as i32,
                fault_code: r.fault_code.clone(),
                fault_text: r.fault_text.clone(),
            })),
            ..Default::default()
        }],
    })
    .await?;
    let mut answers = TelemetryServiceClient::new(channel)
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .context("opening the pile's telemetry stream")?
        .into_inner();
    let answered = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match answers.message().await? {
                Some(tm::ConnectResponse {
                    body: Some(tm::connect_response::Body::Acknowledgement(ack)),
                }) if (ack.first_sequence..=ack.last_sequence).contains(&sequence) => {
                    return Ok::<_, anyhow::Error>(());
                }
                Some(tm::ConnectResponse {
                    body: Some(tm::connect_response::Body::Rejection(rejection)),
                }) => anyhow::bail!("refused: {} {}", rejection.code, rejection.reason),
                Some(_) => continue,
                None => anyhow::bail!("the stream ended before an answer"),
            }
        }
    })
    .await
    .context("no answer within 15 s")?;
    answered?;
    println!(
        "{}/{} reported {:?}, durable",
        r.pile_id,
        r.connector_id,
        r.state.as_str_name()
    );
    Ok(())
}
