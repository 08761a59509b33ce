//! The one writer of a process: it merges the batches waiting from every stream into one
//! transaction, so a commit (and its fsync and round trips) serves them all, then answers each
//! stream. Nothing is acknowledged before its transaction commits (REQ MON-1).
//!
//! Transactions are paced: one starts at most every `writer_pace_ms`. A fleet's piles each send
//! one message at a time at a low rate, so without a pace the writer commits every message or two
//! on its own, and the fixed cost of a transaction (nine statements, each a round trip, and a
//! WAL flush) is paid per message. A batch arriving when the pace has already passed goes at
//! once, and a full merge never waits, so a quiet pile waits for nothing and a busy writer (whose
//! transactions take longer than the pace) is not slowed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use chargemesh_kit::clock::SharedClock;
use chargemesh_kit::db::StoreError;

use crate::domain::Report;
use crate::feed::ChangeFeed;
use crate::store::TelemetryStore;

/// The most messages one transaction of the writer takes, merged from the waiting batches.
const MAX_MERGE: usize = 20_000;
/// A merge this large starts at once, paced or not: a transaction's fixed cost spread over this
/// many messages is a few microseconds each, and a busy stream of batches is not slowed.
const SHARED_ENOUGH: usize = 32;

/// The writer of a process; cloned into every stream.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

#[derive(Debug)]
struct Job {
    reports: Vec<Report>,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// What the writer did with one stream's batch.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// How many of the batch's reports were stored now (the rest are resends).
    pub stored: usize,
    /// A connector of the batch spoke while marked offline by silence.
    pub resync: bool,
}

/// The highest sequence this writer stored per sender. A sender's sequences only grow, so a
/// report above its sender's mark cannot be in the log unless another replica stored it
/// meanwhile (the insert then conflicts and the batch is appended again, searched): only the
/// others are searched for in the log, which at a fleet's rates is a sender's first report
/// after it connects, and its resends.
#[derive(Debug)]
struct Watermarks {
    marks: std::collections::HashMap<String, u64>,
    /// Senders remembered at most; past it the marks start again (costing searches only). A
    /// sender is an authenticated, registered identity, so this is a fleet's size.
    max_senders: usize,
}

impl Default for Watermarks {
    fn default() -> Self {
        Self {
            marks: std::collections::HashMap::new(),
            max_senders: 1 << 20,
        }
    }
}

impl Watermarks {
    fn may_be_resent(&self, reports: &[Report]) -> Vec<bool> {
        reports
            .iter()
            .map(|r| {
                self.marks
                    .get(&r.source)
                    .is_none_or(|mark| r.sequence <= *mark)
            })
            .collect()
    }

    fn note(&mut self, stored: &[(String, u64)]) {
        if self.marks.len() + stored.len() > self.max_senders {
            self.marks.clear();
        }
        for (source, sequence) in stored {
            match self.marks.get_mut(source) {
                Some(mark) => *mark = (*mark).max(*sequence),
                None => {
                    self.marks.insert(source.clone(), *sequence);
                }
            }
        }
    }
}

/// When the next transaction may start, holding `count` messages so far: `None` is at once (the
/// writer has not written yet, the merge is shared enough, or there is no pace); otherwise the
/// last transaction's start plus the pace, which may have passed already.
fn next_start(last_start: Option<Instant>, pace: Duration, count: usize) -> Option<Instant> {
    if count >= SHARED_ENOUGH || pace.is_zero() {
        return None;
    }
    last_start.map(|start| start + pace)
}

/// The jobs of the next transaction: `first`, everything waiting, and what arrives before the
/// pace lets the transaction start.
async fn gather(
    rx: &mut mpsc::Receiver<Job>,
    first: Job,
    last_start: Option<Instant>,
    pace: Duration,
) -> Vec<Job> {
    let mut count = first.reports.len();
    let mut jobs = vec![first];
    loop {
        while count < MAX_MERGE {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.reports.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let Some(due) = next_start(last_start, pace, count) else {
            return jobs;
        };
        match tokio::time::timeout_at(due, rx.recv()).await {
            Ok(Some(job)) => {
                count += job.reports.len();
                jobs.push(job);
            }
            // The pace has passed, or every stream is gone.
            Ok(None) | Err(_) => return jobs,
        }
    }
}

impl Writer {
    pub(crate) fn spawn(
        store: Arc<dyn TelemetryStore>,
        feed: ChangeFeed,
        clock: SharedClock,
        pace: Duration,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(1024);
        tokio::spawn(async move {
            let mut stored = Watermarks::default();
            let mut last_start = None;
            while let Some(first) = rx.recv().await {
                let jobs = gather(&mut rx, first, last_start, pace).await;
                last_start = Some(Instant::now());
                write(&*store, &feed, &clock, &mut stored, jobs).await;
            }
        });
        Self { tx }
    }

    pub(crate) async fn append(&self, reports: Vec<Report>) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the telemetry writer stopped".into());
        self.tx
            .send(Job { reports, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// One transaction for `jobs`, then each job's answer, then the watchers woken.
async fn write(
    store: &dyn TelemetryStore,
    feed: &ChangeFeed,
    clock: &SharedClock,
    stored: &mut Watermarks,
    jobs: Vec<Job>,
) {
    let all: Vec<Report> = jobs
        .iter()
        .flat_map(|j| j.reports.iter().cloned())
        .collect();
    let started = std::time::Instant::now();
    // The heartbeat flush and the liveness sweep write the same status rows, side by side with
    // this: every one of them locks rows in the one key order (see the store's touch), so a
    // connector in two of them waits for one commit and no two wait for each other.
    let marks = stored.may_be_resent(&all);
    let mut result = store.append_checking(&all, Some(&marks), clock.now()).await;
    tracing::debug!(
        batches = jobs.len(),
        messages = all.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "telemetry transaction"
    );
    if matches!(result, Err(StoreError::Conflict(_))) {
        // Another replica made a connector's first status row meanwhile, or stored a report not
        // searched for: once more, every report searched.
        result = store.append(&all, clock.now()).await;
    }
    match result {
        Ok(outcome) => {
            chargemesh_kit::metrics::metrics()
                .telemetry_transactions
                .inc();
            stored.note(&outcome.stored);
            let stored: std::collections::HashSet<(&str, u64)> = outcome
                .stored
                .iter()
                .map(|(s, q)| (s.as_str(), *q))
                .collect();
            for job in jobs {
                let written = Written {
                    stored: job
                        .reports
                        .iter()
                        .filter(|r| stored.contains(&(r.source.as_str(), r.sequence)))
                        .count(),
                    resync: job
                        .reports
                        .first()
                        .is_some_and(|r| outcome.resync.contains(&r.source)),
                };
                let _ = job.reply.send(Ok(written));
            }
            // The senders have their acknowledgements; now wake the watchers.
            feed.committed(&outcome.changes);
        }
        Err(error) => {
            tracing::warn!(%error, batches = jobs.len(), "telemetry not stored; senders will resend");
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Body;

    fn report(source: &str, sequence: u64) -> Report {
        Report {
            source: source.into(),
            sequence,
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: "P1".into(),
            connector_id: String::new(),
            area_code: "330602".into(),
            connectors: Vec::new(),
            observed_at: chrono::DateTime::UNIX_EPOCH,
            body: Body::Heartbeat,
        }
    }

    #[test]
    fn mon_1_a_sender_s_reports_above_what_this_writer_stored_are_not_searched_for() {
        let mut marks = Watermarks::default();
        let batch = [report("pile:A", 5), report("pile:B", 1)];
        assert_eq!(
            marks.may_be_resent(&batch),
            [true, true],
            "senders not heard from: searched"
        );
        marks.note(&[("pile:A".into(), 5), ("pile:A".into(), 3)]);
        let next = [
            report("pile:A", 6),
            report("pile:A", 5),
            report("pile:A", 1),
            report("pile:B", 2),
        ];
        assert_eq!(
            marks.may_be_resent(&next),
            [false, true, true, true],
            "a resend, or a sequence that started again, is at or below the mark"
        );
    }

    #[test]
    fn mon_1_the_marks_start_again_past_their_bound() {
        let mut marks = Watermarks {
            max_senders: 2,
            ..Watermarks::default()
        };
        marks.note(&[("pile:A".into(), 1), ("pile:B".into(), 1)]);
        marks.note(&[("pile:C".into(), 1)]);
        assert_eq!(marks.marks.len(), 1);
        assert_eq!(
            marks.may_be_resent(&[report("pile:A", 2), report("pile:C", 2)]),
            [true, false]
        );
    }

    fn job(source: &str, messages: usize) -> (Job, oneshot::Receiver<Result<Written, StoreError>>) {
        let (reply, answer) = oneshot::channel();
        let reports = (1..=messages as u64).map(|q| report(source, q)).collect();
        (Job { reports, reply }, answer)
    }

    fn sources(jobs: &[Job]) -> Vec<&str> {
        jobs.iter().map(|j| j.reports[0].source.as_str()).collect()
    }

    #[test]
    fn mon_1_the_first_transaction_a_shared_merge_and_no_pace_start_at_once() {
        let pace = Duration::from_millis(5);
        let then = Instant::now();
        assert_eq!(next_start(None, pace, 1), None, "nothing written yet");
        assert_eq!(
            next_start(Some(then), pace, SHARED_ENOUGH),
            None,
            "shared enough"
        );
        assert_eq!(
            next_start(Some(then), pace, SHARED_ENOUGH - 1),
            Some(then + pace)
        );
        assert_eq!(next_start(Some(then), Duration::ZERO, 1), None, "unpaced");
        assert_eq!(next_start(Some(then), pace, 1), Some(then + pace));
    }

    #[tokio::test(start_paused = true)]
    async fn mon_1_batches_arriving_within_the_pace_share_one_transaction() {
        let pace = Duration::from_millis(5);
        let (tx, mut rx) = mpsc::channel(16);
        let last_start = Instant::now();
        let (first, _a) = job("pile:A", 1);
        let (second, _b) = job("pile:B", 1);
        let (late, _c) = job("pile:C", 1);
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            tx.send(second).await.map_err(|_| "writer gone")?;
            tokio::time::sleep(Duration::from_millis(4)).await;
            tx.send(late).await.map_err(|_| "writer gone")?;
            Ok::<_, &str>(tx)
        });
        let jobs = gather(&mut rx, first, Some(last_start), pace).await;
        assert_eq!(sources(&jobs), ["pile:A", "pile:B"]);
        assert_eq!(
            Instant::now(),
            last_start + pace,
            "started when the pace allowed"
        );
        let _tx = sender.await.expect("sender").expect("sent");
        let (next, _d) = job("pile:D", 1);
        let jobs = gather(&mut rx, next, Some(last_start), pace).await;
        assert_eq!(
            sources(&jobs),
            ["pile:D", "pile:C"],
            "the pace has passed: what waits goes at once"
        );
        assert_eq!(Instant::now(), last_start + Duration::from_millis(7));
    }

    #[tokio::test(start_paused = true)]
    async fn mon_1_a_merge_of_many_messages_does_not_wait_for_the_pace() {
        let (tx, mut rx) = mpsc::channel(16);
        let start = Instant::now();
        let (first, _a) = job("pile:A", SHARED_ENOUGH - 10);
        let (second, _b) = job("pile:B", 10);
        tx.send(second).await.expect("queued");
        let jobs = gather(&mut rx, first, Some(start), Duration::from_secs(1)).await;
        assert_eq!(sources(&jobs), ["pile:A", "pile:B"]);
        assert_eq!(Instant::now(), start, "no wait");
    }
}
