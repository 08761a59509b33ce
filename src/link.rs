//! A telemetry link: what a pile, a station controller or an operator platform runs to report
//! through the gateway. One bidirectional `TelemetryService/Connect` stream that outlives the
//! gateway it is connected to: every message is kept until the mesh acknowledges it and sent
//! again on the next connection (the mesh deduplicates by sequence, so a resend is harmless);
//! when the stream ends — a gateway draining for a rolling update answers `UNAVAILABLE`, a
//! crash cuts it — the link reconnects after a delay drawn with full jitter, doubling on each
//! failed attempt, so a fleet told to reconnect at once spreads out instead of stampeding.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use chargemesh_kit::tls;
use chargemesh_proto::telemetry::v1 as tm;
use chargemesh_proto::telemetry::v1::telemetry_service_client::TelemetryServiceClient;

/// How long to wait before reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The window of the first reconnect after a stream that worked.
    pub first: Duration,
    /// The largest window, however many attempts failed.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(2),
            max: Duration::from_secs(60),
        }
    }
}

/// The delay before a reconnect after `failures` failed attempts in a row (0 after a stream
/// that worked): uniform in `[0, min(max, first × 2^failures)]` ("full jitter"), with `unit` a
/// uniform draw from `[0, 1)`.
pub fn reconnect_delay(backoff: Backoff, failures: u32, unit: f64) -> Duration {
    let window = backoff
        .first
        .saturating_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
        .min(backoff.max);
    window.mul_f64(unit.clamp(0.0, 1.0))
}

/// What happened on the link, for its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// A stream is open (the `session`-th); unacknowledged messages were sent again on it.
    Connected { session: u64 },
    /// The mesh acknowledged these sequences: they are stored.
    Acknowledged { first: u64, last: u64 },
    /// The mesh refused one message for good (it is not sent again).
    Rejected(tm::Rejection),
    /// The mesh asks for every connector's current status.
    Resync,
    /// A command for a pile on this link.
    Command(tm::PileCommand),
    /// The stream ended: `code` and `reason` say how (`UNAVAILABLE` from a draining gateway).
    Dropped {
        session: u64,
        code: Option<tonic::Code>,
        reason: String,
    },
}

/// Where and as whom a link connects.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The gateway, such as `https://127.0.0.1:7443`.
    pub gateway: String,
    /// The reporter's identity (its certificate and the mesh CA).
    pub tls: Arc<rustls::ClientConfig>,
    pub backoff: Backoff,
    /// Seeds the jitter; give every link its own.
    pub seed: u64,
}

/// The owner's side of a running link; dropping it stops the link.
pub struct Link {
    outbox: Option<mpsc::Sender<Vec<tm::TelemetryMessage>>>,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    task: tokio::task::JoinHandle<()>,
}

/// The link stopped; nothing more can be reported on it.
#[derive(Debug, thiserror::Error)]
#[error("the telemetry link stopped")]
pub struct LinkStopped;

impl Link {
    /// Starts a link; it connects at once and keeps reconnecting until stopped.
    pub fn spawn(config: LinkConfig) -> Self {
        let (outbox, queued) = mpsc::channel(64);
        let (tell, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(
            Runner {
                config,
                queued,
                open: true,
                unacked: VecDeque::new(),
                tell,
            }
            .run(),
        );
        Self {
            outbox: Some(outbox),
            events,
            task,
        }
    }

    /// Queues messages to report (sequences rising per link); they are sent now if a stream is
    /// open, else on the next one, and kept until acknowledged.
    pub async fn send(&self, messages: Vec<tm::TelemetryMessage>) -> Result<(), LinkStopped> {
        match &self.outbox {
            Some(outbox) => outbox.send(messages).await.map_err(|_| LinkStopped),
            None => Err(LinkStopped),
        }
    }

    /// The next thing that happened on the link; `None` once it stopped.
    pub async fn event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    /// Reports nothing more: waits until everything queued is acknowledged, then stops.
    pub async fn finish(mut self) {
        self.outbox.take();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Runner {
    config: LinkConfig,
    queued: mpsc::Receiver<Vec<tm::TelemetryMessage>>,
    /// False once the owner dropped the outbox.
    open: bool,
    unacked: VecDeque<tm::TelemetryMessage>,
    tell: mpsc::UnboundedSender<LinkEvent>,
}

/// How a session ended.
enum Ended {
    /// The owner is done and nothing is left unacknowledged.
    Finished,
    /// The stream never opened.
    Refused(tonic::Status),
    /// The stream opened, then ended.
    Dropped(Option<tonic::Code>, String),
}

impl Runner {
    async fn run(mut self) {
        let mut jitter = Jitter::new(self.config.seed);
        let mut failures = 0u32;
        let mut session = 0u64;
        loop {
            session += 1;
            let (code, reason) = match self.session(session).await {
                Ended::Finished => return,
                Ended::Refused(status) => {
                    failures = failures.saturating_add(1);
                    (Some(status.code()), status.message().to_owned())
                }
                Ended::Dropped(code, reason) => {
                    failures = 0;
                    (code, reason)
                }
            };
            tracing::info!(session, ?code, %reason, "telemetry stream ended; reconnecting");
            let _ = self.tell.send(LinkEvent::Dropped {
                session,
                code,
                reason,
            });
            let delay = reconnect_delay(self.config.backoff, failures, jitter.unit());
            // Keep taking the owner's messages while waiting; they go on the next stream.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    batch = self.queued.recv(), if self.open => match batch {
                        Some(batch) => self.unacked.extend(batch),
                        None => self.open = false,
                    },
                }
            }
        }
    }

    async fn session(&mut self, session: u64) -> Ended {
        let channel = match tls::channel(&self.config.gateway, self.config.tls.clone()) {
            Ok(channel) => channel,
            Err(error) => {
                return Ended::Refused(tonic::Status::invalid_argument(error.to_string()));
            }
        };
        let (tx, rx) = mpsc::channel(16);
        // Everything not yet acknowledged goes first, in order.
        let resend: Vec<_> = self.unacked.iter().cloned().collect();
        if !resend.is_empty() {
            let _ = tx.send(tm::ConnectRequest { messages: resend }).await;
        }
        let mut inbound = match TelemetryServiceClient::new(channel)
            .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) => return Ended::Refused(status),
        };
        let _ = self.tell.send(LinkEvent::Connected { session });
        loop {
            if !self.open && self.unacked.is_empty() {
                return Ended::Finished;
            }
            tokio::select! {
                batch = self.queued.recv(), if self.open => match batch {
                    Some(batch) => {
                        self.unacked.extend(batch.iter().cloned());
                        if tx.send(tm::ConnectRequest { messages: batch }).await.is_err() {
                            return Ended::Dropped(None, "the stream closed".into());
                        }
                    }
                    None => self.open = false,
                },
                answer = inbound.message() => match answer {
                    Ok(Some(answer)) => self.answer(answer.body),
                    Ok(None) => return Ended::Dropped(None, "the server ended the stream".into()),
                    Err(status) => {
                        return Ended::Dropped(Some(status.code()), status.message().to_owned());
                    }
                },
            }
        }
    }

    fn answer(&mut self, body: Option<tm::connect_response::Body>) {
        use tm::connect_response::Body;
        let event = match body {
            Some(Body::Acknowledgement(ack)) => {
                let (first, last) = (ack.first_sequence, ack.last_sequence);
                self.unacked
                    .retain(|m| m.sequence < first || m.sequence > last);
                LinkEvent::Acknowledged { first, last }
            }
            Some(Body::Rejection(rejection)) => {
                self.unacked.retain(|m| m.sequence != rejection.sequence);
                LinkEvent::Rejected(rejection)
            }
            Some(Body::Resync(_)) => LinkEvent::Resync,
            Some(Body::Command(command)) => LinkEvent::Command(command),
            None => return,
        };
        let _ = self.tell.send(event);
    }
}

/// Uniform draws for the jitter (splitmix64); not for secrets.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        first: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };

    #[test]
    fn the_first_reconnect_after_a_working_stream_falls_within_the_first_window() {
        assert_eq!(reconnect_delay(B, 0, 0.0), Duration::ZERO);
        assert_eq!(reconnect_delay(B, 0, 0.5), Duration::from_secs(1));
        assert!(reconnect_delay(B, 0, 0.999_999) < Duration::from_secs(2));
    }

    #[test]
    fn failed_attempts_double_the_window_up_to_the_maximum() {
        assert_eq!(reconnect_delay(B, 1, 0.5), Duration::from_secs(2));
        assert_eq!(reconnect_delay(B, 3, 0.5), Duration::from_secs(8));
        assert_eq!(reconnect_delay(B, 10, 0.5), Duration::from_secs(30));
        assert_eq!(reconnect_delay(B, u32::MAX, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn a_fleet_told_to_reconnect_at_once_spreads_over_the_window() {
        // 1,000 links, each with its own seed: the delays cover the window, about evenly.
        let mut buckets = [0u32; 10];
        for seed in 0..1000u64 {
            let unit = Jitter::new(seed.wrapping_mul(7919)).unit();
            let delay = reconnect_delay(B, 0, unit);
            let bucket = (delay.as_secs_f64() / 0.2) as usize;
            buckets[bucket.min(9)] += 1;
        }
        for (i, n) in buckets.iter().enumerate() {
            assert!((50..=150).contains(n), "bucket {i} has {n}: {buckets:?}");
        }
    }
}
