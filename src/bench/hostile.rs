//! `bench hostile`: what two hostile clients cost a `chargemesh up` (REQ NETSEC-1). One POSTs
//! 400 MiB with no credentials to the T/CEC 102 edge — declared up front, then streamed in
//! chunks with no length; the other sends, with a pile operator's certificate, one 4 MiB
//! telemetry frame of a million 4-byte messages. The process's resident memory (now, and its
//! peak) is printed idle and after each, with what each client was told.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use chargemesh_kit::tls;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

use super::ingest::seed;
use super::{IngestOptions, Up, free_port};

const POST_BYTES: u64 = 400 << 20;

/// A TLS connection to the T/CEC 102 edge, as any client on the network may open one.
async fn connect(
    up: &Up,
    port: u16,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut config = tls::anonymous_client_config(&up.pki.ca())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?)
}

/// Sends `head`, then body bytes (`chunked` or as they are) until the edge stops taking them or
/// 400 MiB are sent; returns the status line it answered and how many bytes it took.
async fn post(up: &Up, port: u16, head: &str, chunked: bool) -> anyhow::Result<(String, u64)> {
    let stream = connect(up, port).await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    writer.write_all(head.as_bytes()).await?;
    let sender = tokio::spawn(async move {
        let block = vec![b'x'; 64 << 10];
        let chunk = format!("{:x}\r\n", block.len());
        let mut sent = 0_u64;
        while sent < POST_BYTES {
            let wrote = if chunked {
                async {
                    writer.write_all(chunk.as_bytes()).await?;
                    writer.write_all(&block).await?;
                    writer.write_all(b"\r\n").await
                }
                .await
            } else {
                writer.write_all(&block).await
            };
            if wrote.is_err() {
                break;
            }
            sent += block.len() as u64;
        }
        sent
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut answer)).await;
    let taken = sender.await?;
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("(closed without an answer)")
        .to_owned();
    Ok((status, taken))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs the benchmark against `binary up` and prints its figures.
pub async fn hostile(binary: &Path) -> anyhow::Result<()> {
    let cec_port = free_port()?;
    let up = Up::start(
        binary,
        &[(
            "CHARGEMESH_GATEWAY__CEC__LISTEN",
            format!("127.0.0.1:{cec_port}"),
        )],
    )
    .await?;
    let opts = IngestOptions {
        connections: 1,
        piles_per_connection: 1,
        batch: 1,
        window: 1,
        seconds: 0,
        database_url: None,
        redis_url: None,
    };
    seed(up.gateway, &up.pki, &opts).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = up.memory()?;
    println!(
        "bench hostile: chargemesh up, idle: {:.1} MiB resident (peak {:.1} MiB)",
        mib(idle.0),
        mib(idle.1)
    );

    for (what, head, chunked) in [
        (
            "400 MiB declared, no credentials, to query_token",
            format!(
                "POST /evcs/v1/query_token HTTP/1.1\r\nHost: localhost\r\nContent-Length: {POST_BYTES}\r\n\r\n"
            ),
            false,
        ),
        (
            "400 MiB in chunks, no length, no credentials, to query_token",
            "POST /evcs/v1/query_token HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_owned(),
            true,
        ),
        (
            "400 MiB declared, no token, to query_stations_info",
            format!(
                "POST /evcs/v1/query_stations_info HTTP/1.1\r\nHost: localhost\r\nContent-Length: {POST_BYTES}\r\n\r\n"
            ),
            false,
        ),
    ] {
        let started = Instant::now();
        let (status, taken) = post(&up, cec_port, &head, chunked).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = up.memory()?;
        println!(
            "  POST {what}: answered {status:?} in {:.2} s, {:.1} MiB sent before the edge closed\n    \
             after: {:.1} MiB resident (peak {:.1} MiB)",
            started.elapsed().as_secs_f64(),
            taken as f64 / (1 << 20) as f64,
            mib(after.0),
            mib(after.1)
        );
    }

    // A million 4-byte messages in one 4 MiB frame: `0a 02 08 01` is a message with sequence 1.
    let frame = tm::ConnectRequest {
        messages: vec![
            tm::TelemetryMessage {
                sequence: 1,
                ..Default::default()
            };
            1 << 20
        ],
    };
    let config = Arc::new(tls::client_config(&up.pki.files("operator"))?);
    let channel = tls::channel(&format!("https://{}", up.gateway), config)?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(frame).await?;
    let started = Instant::now();
    let mut client = TelemetryServiceClient::new(channel);
    let mut answers = 0_u64;
    let outcome = match client
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(response) => {
            let mut inbound = response.into_inner();
            loop {
                match tokio::time::timeout(Duration::from_secs(60), inbound.message()).await {
                    Ok(Ok(Some(_))) => answers += 1,
                    Ok(Ok(None)) => break "the stream ended".to_owned(),
                    Ok(Err(status)) => break format!("{:?}: {}", status.code(), status.message()),
                    Err(_) => break "no end within 60 s".to_owned(),
                }
            }
        }
        Err(status) => format!("{:?}: {}", status.code(), status.message()),
    };
    drop(tx);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = up.memory()?;
    println!(
        "  one 4 MiB telemetry frame of 1,048,576 four-byte messages: {answers} answers, then {outcome} \
         ({:.2} s)\n    after: {:.1} MiB resident (peak {:.1} MiB)",
        started.elapsed().as_secs_f64(),
        mib(after.0),
        mib(after.1)
    );
    up.stop().await;
    Ok(())
}
