//! A YKC connection's loop: the login read before anything else, then the pile's frames, the
//! telemetry stream's answers and a one-second tick, until one of them ends it.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

use chargemesh_proto::telemetry::v1 as pb;

use crate::records::Login;
use crate::session::{End, Session};
use crate::{CrcOrder, Frame, FrameReader, Message};

/// Reads the pile's login: the first 0x01 frame within `timeout`, skipping anything else.
pub async fn read_login<S>(
    stream: &mut S,
    reader: &mut FrameReader,
    timeout: Duration,
) -> Result<(Login, [u8; 2], CrcOrder), &'static str>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buffer = [0u8; 1024];
    loop {
        while let Some(received) = reader.next_frame() {
            match Message::decode(&received.frame) {
                Ok(Message::Login(login)) => {
                    return Ok((login, received.frame.sequence, received.crc_order));
                }
                Ok(other) => {
                    tracing::info!(kind = other.kind(), "a YKC frame before the login; skipped");
                }
                Err(error) => tracing::info!(%error, "a YKC frame before the login; skipped"),
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer))
            .await
            .map_err(|_| "no login in time")?
            .map_err(|_| "the connection failed")?;
        if read == 0 {
            return Err("closed before its login");
        }
        reader.extend(&buffer[..read]);
    }
}

/// Serves a logged-in pile until it goes, falls silent, is replaced or the edge stops.
pub async fn serve<S>(
    stream: &mut S,
    reader: &mut FrameReader,
    session: &mut Session,
    answers: &mut tonic::Streaming<pb::ConnectResponse>,
    replaced: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> End
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buffer = [0u8; 1024];
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let greeting = session.greeting();
    if write_all(stream, &greeting).await.is_err() {
        return End::Closed;
    }
    loop {
        let out = tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return End::Closed,
                Ok(n) => {
                    reader.extend(&buffer[..n]);
                    let mut out = Vec::new();
                    while let Some(received) = reader.next_frame() {
                        if received.crc_order != session.crc_order {
                            tracing::info!(pile = %session.pile.code, order = ?received.crc_order, "a YKC pile switched its CRC byte order");
                            session.crc_order = received.crc_order;
                        }
                        match session.on_frame(received.frame).await {
                            Ok(frames) => out.extend(frames),
                            Err(end) => return end,
                        }
                    }
                    out
                }
            },
            answer = answers.message() => match answer {
                Ok(Some(answer)) => match session.on_answer(answer).await {
                    Ok(frames) => frames,
                    Err(end) => return end,
                },
                Ok(None) | Err(_) => return End::Upstream,
            },
            _ = ticks.tick() => match session.tick().await {
                Ok(frames) => frames,
                Err(end) => return end,
            },
            _ = replaced.changed() => return End::Replaced,
            _ = stop.changed() => return End::Stopping,
        };
        if write_all(stream, &out).await.is_err() {
            return End::Closed;
        }
    }
}

async fn write_all<S>(stream: &mut S, frames: &[Frame]) -> std::io::Result<()>
where
    S: tokio::io::AsyncWrite + Unpin,
{
    if frames.is_empty() {
        return Ok(());
    }
    let mut bytes = Vec::new();
    for frame in frames {
        match frame.encode() {
            Ok(encoded) => bytes.extend(encoded),
            Err(error) => tracing::warn!(%error, "a YKC frame could not be encoded"),
        }
    }
    stream.write_all(&bytes).await?;
    stream.flush().await
}
