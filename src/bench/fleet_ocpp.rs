//! The OCPP 1.6J charge point of `bench fleet --protocol ocpp1.6`: a WebSocket over TLS with the
//! pile's own certificate (security profile 3) to the gateway's OCPP edge, a BootNotification,
//! then the same realistic mix as a native pile (Heartbeat, StatusNotification, MeterValues),
//! each CALL timed until its CALLRESULT, which the edge sends once the report is durable.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::fleet::{FleetOptions, Run, pile_of};
use super::lifeline::Lifeline;
use super::schedule::{Due, Schedule};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Sends a CALL and waits for its CALLRESULT, answering any CALL of the edge meanwhile.
async fn call(ws: &mut Ws, id: u64, action: &str, payload: Value) -> anyhow::Result<Value> {
    let id = id.to_string();
    ws.send(Message::text(json!([2, id, action, payload]).to_string()))
        .await?;
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        let value: Value = serde_json::from_str(text.as_str())?;
        match value[0].as_u64() {
            Some(3) if value[1].as_str() == Some(id.as_str()) => return Ok(value[2].clone()),
            Some(4) if value[1].as_str() == Some(id.as_str()) => {
                anyhow::bail!("{action} answered with a CALLERROR: {value}")
            }
            // A trigger or a command from the edge: accepted.
            Some(2) => {
                let answer = json!([3, value[1], { "status": "Accepted" }]);
                ws.send(Message::text(answer.to_string())).await?;
            }
            _ => {}
        }
    }
    anyhow::bail!("the connection closed")
}

/// One OCPP charge point until `until`; a refused attempt or a dropped connection is tried
/// again after a jittered backoff, with a BootNotification and a StatusNotification first, as a
/// charge point does after every connect.
pub(super) async fn pile(
    index: usize,
    edge: std::net::SocketAddr,
    source: Option<std::net::IpAddr>,
    config: Arc<rustls::ClientConfig>,
    opts: FleetOptions,
    until: Instant,
    run: Arc<Run>,
) -> anyhow::Result<()> {
    let (pile_id, _) = pile_of(index);
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let mut schedule = Schedule::new(&opts, index as u64 * 7919 + 1);
    let mut line = Lifeline::new(index, until, run);
    let mut ids = 0u64;
    let ended = loop {
        let session = session(
            &pile_id,
            edge,
            source,
            &config,
            &mut schedule,
            until,
            &mut line,
            &mut ids,
        )
        .await;
        if let Some(ended) = line.after(session).await {
            break ended;
        }
    };
    line.finish().await;
    ended
}

/// One connection of a charge point, until `until` or an error.
#[allow(clippy::too_many_arguments)]
async fn session(
    pile_id: &str,
    edge: std::net::SocketAddr,
    source: Option<std::net::IpAddr>,
    config: &Arc<rustls::ClientConfig>,
    schedule: &mut Schedule,
    until: Instant,
    line: &mut Lifeline,
    ids: &mut u64,
) -> anyhow::Result<()> {
    schedule.connected(Instant::now());
    let tls = super::net::tls(source, edge, config.clone()).await?;
    let mut request = format!("wss://{edge}/ocpp/{pile_id}").into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static("ocpp1.6"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await?;
    let mut next_id = || {
        *ids += 1;
        *ids
    };
    let boot = call(
        &mut ws,
        next_id(),
        "BootNotification",
        json!({ "chargePointVendor": "Acme", "chargePointModel": "X1" }),
    )
    .await?;
    anyhow::ensure!(boot["status"] == "Accepted", "boot {boot}");
    let status = |charging: bool| {
        json!({ "connectorId": 1, "errorCode": "NoError",
                "status": if charging { "Charging" } else { "Available" }, "timestamp": now() })
    };
    call(
        &mut ws,
        next_id(),
        "StatusNotification",
        status(schedule.charging()),
    )
    .await
    .context("the first status")?;
    line.opened();
    while let Some(due) = schedule.next(until).await {
        let (action, payload) = match due {
            Due::Status(charging) => ("StatusNotification", status(charging)),
            Due::Meter(register_wh) => (
                "MeterValues",
                json!({ "connectorId": 1, "meterValue": [{ "timestamp": now(), "sampledValue": [
                    { "value": register_wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh" }
                ]}]}),
            ),
            Due::Heartbeat => ("Heartbeat", json!({})),
        };
        let sent = Instant::now();
        call(&mut ws, next_id(), action, payload).await?;
        line.acknowledged(sent.elapsed());
    }
    // The WebSocket stays open while it holds.
    line.hold().await;
    Ok(())
}
