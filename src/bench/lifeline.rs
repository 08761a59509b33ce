//! How a benchmark pile stays connected, as a real pile does: an attempt that fails, or a
//! connection that breaks, is tried again after a jittered exponential backoff until the run
//! ends, and every break and every return is counted, so a run that loses connections says so
//! instead of ending those piles as errors.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::fleet::Run;
use super::stretch::{TimedAck, timed_ack};
use crate::link::{Backoff, reconnect_delay};
use crate::sim::Rng;

/// How long past the run's end a pile keeps its connection: acknowledgements still in flight at
/// the end come back, and the fleet hangs up only once nothing is timed any more.
const HOLD_PAST_END: Duration = Duration::from_secs(5);

/// One pile's connection state over a run.
pub(super) struct Lifeline {
    run: Arc<Run>,
    until: Instant,
    rng: Rng,
    /// Failed attempts since the last connection that held.
    attempts: u32,
    /// Connected at least once.
    ever: bool,
    /// Connected now.
    up: bool,
    /// Acknowledgements of the steady state with when they came, handed to the run's tally at
    /// the end.
    acks: Vec<TimedAck>,
}

impl Lifeline {
    pub(super) fn new(index: usize, until: Instant, run: Arc<Run>) -> Self {
        Self {
            run,
            until,
            rng: Rng::new(index as u64 * 104_729 + 3),
            attempts: 0,
            ever: false,
            up: false,
            acks: Vec::new(),
        }
    }

    /// The pile's connection is open and its first report acknowledged.
    pub(super) fn opened(&mut self) {
        let counter = if self.ever {
            &self.run.back
        } else {
            &self.run.connected
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.ever = true;
        self.up = true;
        self.attempts = 0;
    }

    /// A report was acknowledged `latency` after it was sent.
    pub(super) fn acknowledged(&mut self, latency: Duration) {
        // Timed once every pile is connected: the steady state, not the opening rush.
        if self.run.steady.get().is_some() {
            self.acks.push(timed_ack(latency));
        }
        self.run.tally.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps the pile's connection open until just past the run's end, once it has nothing more
    /// to send before the end. A pile that hung up then tore the fleet down over the run's last
    /// minute (each pile after its last heartbeat), and the hang-ups cost the clients and the
    /// gateways enough CPU to slow every pile still timed: the late spell of every 100,000-pile
    /// run up to the twelfth session, which followed the run's end in runs of 600 and 720 s.
    pub(super) async fn hold(&self) {
        tokio::time::sleep_until(tokio::time::Instant::from_std(self.until + HOLD_PAST_END)).await;
    }

    /// A session ended with `ended`: `None` to open another (after the backoff, when it
    /// failed), or how the pile's run ends.
    pub(super) async fn after(&mut self, ended: anyhow::Result<()>) -> Option<anyhow::Result<()>> {
        let error = match ended {
            Ok(()) => return Some(Ok(())),
            Err(error) => error,
        };
        match self.retry(error).await {
            Ok(()) if self.over() => Some(Ok(())),
            Ok(()) => None,
            Err(error) => Some(Err(error)),
        }
    }

    /// The attempt failed or the connection broke with `error`: waits out the backoff and
    /// returns to try again, or returns the error when the run is over.
    async fn retry(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        if self.up {
            self.up = false;
            self.run.broken.fetch_add(1, Ordering::Relaxed);
        }
        if Instant::now() >= self.until {
            // A pile that was connected and lost it at the very end is not an error of the run.
            return if self.ever { Ok(()) } else { Err(error) };
        }
        self.attempts = self.attempts.saturating_add(1);
        let unit = (self.rng.draw() % 1000) as f64 / 1000.0;
        let wait = reconnect_delay(Backoff::default(), self.attempts, unit);
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            (Instant::now() + wait).min(self.until),
        ))
        .await;
        Ok(())
    }

    /// Whether the run is over.
    fn over(&self) -> bool {
        Instant::now() >= self.until
    }

    /// Hands the pile's acknowledgements to the run.
    pub(super) async fn finish(self) {
        self.run.tally.acks.lock().await.extend(self.acks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pile_with_nothing_more_to_send_holds_its_connection_past_the_end() {
        // A run that ended a moment ago: the pile holds on for the rest of the grace.
        let ended_ago = Duration::from_millis(4_800);
        let until = Instant::now() - ended_ago;
        let line = Lifeline::new(1, until, Arc::new(Run::default()));
        line.hold().await;
        assert!(
            until.elapsed() >= HOLD_PAST_END,
            "released {:?} after the end",
            until.elapsed()
        );
    }
}
