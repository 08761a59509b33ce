//! Liveness without a database write per heartbeat (REQ MON-1). A fleet of 100,000 piles sends
//! well over a thousand heartbeats a second, and a heartbeat says one thing: the pile is there.
//! A heartbeat of a pile whose liveness the database confirmed recently (its last report went
//! through the log, or a flush found none of its connectors offline) is acknowledged at once and
//! noted in memory; every few seconds a flush moves the noted connectors' last-seen time
//! forward, 500 to a transaction, beside the writer's transactions. Silence is judged against
//! minutes (`offline_after_seconds`), so a last-seen time a flush behind changes nothing; a
//! heartbeat lost in a crash before its flush is one of many the pile keeps sending. Any other heartbeat (the first of a stream, or of a pile
//! not confirmed lately) goes through the log as before, which is where a connector marked
//! offline by silence is found and the pile asked to resync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{Body, Report};
use crate::store::TelemetryStore;

/// How many connectors one transaction of a flush moves.
const FLUSH_CHUNK: usize = 500;

/// The connectors heard from since the last flush: (operator, connector) to (source, when).
type Noted = HashMap<(String, String), (String, DateTime<Utc>)>;

#[derive(Debug, Default)]
struct State {
    /// Sources whose liveness the database confirmed, and when.
    confirmed: HashMap<String, DateTime<Utc>>,
    noted: Noted,
}

/// Heartbeats held in memory between flushes.
#[derive(Debug)]
pub struct Heartbeats {
    state: Mutex<State>,
    /// How long a confirmation lets a source's heartbeats skip the log.
    fresh_for: chrono::Duration,
}

impl Heartbeats {
    /// Confirmations last `fresh_for` (`TelemetrySettings::heartbeat_fresh_for`: the silence
    /// limit less two flushes).
    pub fn new(fresh_for: Duration) -> Self {
        Self {
            state: Mutex::default(),
            fresh_for: chrono::Duration::from_std(fresh_for)
                .unwrap_or_else(|_| chrono::Duration::seconds(60)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it leaves plain maps behind: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `reports` when they are all heartbeats of one source confirmed live within
    /// `fresh_for`: their connectors are noted for the next flush and nothing is written now.
    pub fn take(&self, reports: &[Report], now: DateTime<Utc>) -> bool {
        let Some(source) = reports.first().map(|r| r.source.as_str()) else {
            return false;
        };
        if !reports
            .iter()
            .all(|r| matches!(r.body, Body::Heartbeat) && r.source == source)
        {
            return false;
        }
        let mut state = self.state();
        let fresh = state
            .confirmed
            .get(source)
            .is_some_and(|at| now - *at < self.fresh_for);
        if !fresh {
            return false;
        }
        for r in reports {
            for connector in &r.connectors {
                state.noted.insert(
                    (r.operator_id.clone(), connector.clone()),
                    (r.source.clone(), now),
                );
            }
        }
        true
    }

    /// The database has just seen `source` live (its reports went through the log and none of
    /// its connectors was offline by silence).
    pub fn confirm(&self, source: &str, now: DateTime<Utc>) {
        self.state().confirmed.insert(source.to_owned(), now);
    }

    /// Forgets `source`'s confirmation: its next heartbeat goes through the log.
    pub fn refute(&self, source: &str) {
        self.state().confirmed.remove(source);
    }

    /// How many connectors wait for the next flush.
    pub fn waiting(&self) -> usize {
        self.state().noted.len()
    }

    /// Moves the noted connectors' last-seen time forward in the store, `FLUSH_CHUNK` at a
    /// time. A connector the store holds offline by silence refutes its source, whose next
    /// heartbeat then goes through the log and asks the pile to resync; a failed flush keeps the
    /// notes it did not write for the next one.
    pub async fn flush(&self, store: &dyn TelemetryStore, now: DateTime<Utc>) {
        let noted = std::mem::take(&mut self.state().noted);
        if noted.is_empty() {
            return;
        }
        let mut seen: Vec<(String, String, DateTime<Utc>)> = noted
            .iter()
            .map(|((operator, connector), (_, at))| (operator.clone(), connector.clone(), *at))
            .collect();
        // In key order, as every writer of the status rows locks them.
        seen.sort_unstable();
        let started = std::time::Instant::now();
        let mut silenced = Vec::new();
        let mut written = 0;
        let mut failed = None;
        // Each chunk its own transaction, beside the writer's (both lock rows in key order): an
        // ingest transaction that shares a connector with a flush waits for a chunk, not for the
        // whole fleet's heartbeats (at 100,000 piles, ~8,000 connectors a flush, which held a
        // lock the writer needed for a second when it was one transaction).
        for chunk in seen.chunks(FLUSH_CHUNK) {
            match store.touch(chunk).await {
                Ok(mut found) => {
                    silenced.append(&mut found);
                    written += chunk.len();
                }
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        tracing::debug!(
            connectors = seen.len(),
            written,
            elapsed_us = started.elapsed().as_micros() as u64,
            "heartbeat flush"
        );
        let refuted: std::collections::HashSet<&str> = silenced
            .iter()
            .filter_map(|key| noted.get(key).map(|(source, _)| source.as_str()))
            .collect();
        let mut state = self.state();
        // Confirmations past their freshness are of piles gone quiet: let them go.
        let fresh_for = self.fresh_for;
        state.confirmed.retain(|_, at| now - *at < fresh_for);
        if let Some(error) = &failed {
            tracing::warn!(%error, connectors = seen.len() - written, "heartbeats not flushed; kept for the next flush");
            for (operator, connector, _) in &seen[written..] {
                let key = (operator.clone(), connector.clone());
                if let Some(value) = noted.get(&key) {
                    state.noted.entry(key).or_insert_with(|| value.clone());
                }
            }
        }
        // After a whole flush the database has just seen every other source live: its
        // heartbeats keep skipping the log. (Confirmed only by the log, a pile that sends nothing
        // but heartbeats sent one in every `fresh_for` through it, and at an interval as long as
        // `fresh_for` every one.) Confirmed as of its latest heartbeat flushed, not of the flush:
        // what the store holds is that pile's last-seen time.
        for (source, at) in noted.values() {
            if refuted.contains(source.as_str()) {
                state.confirmed.remove(source);
            } else if failed.is_none() {
                state
                    .confirmed
                    .entry(source.clone())
                    .and_modify(|confirmed| *confirmed = (*confirmed).max(*at))
                    .or_insert(*at);
            }
        }
    }

    /// Flushes every `every` until the task is aborted.
    pub fn spawn_flusher(
        self: Arc<Self>,
        store: Arc<dyn TelemetryStore>,
        clock: chargemesh_kit::clock::SharedClock,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                self.flush(store.as_ref(), clock.now()).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(source: &str, body: Body) -> Report {
        Report {
            source: source.into(),
            sequence: 1,
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: "P1".into(),
            connector_id: String::new(),
            area_code: "330602".into(),
            connectors: vec!["P1-1".into(), "P1-2".into()],
            observed_at: Utc::now(),
            body,
        }
    }

    fn heartbeats() -> Heartbeats {
        Heartbeats::new(Duration::from_secs(60))
    }

    #[test]
    fn mon_1_a_heartbeat_of_an_unconfirmed_pile_goes_through_the_log() {
        let h = heartbeats();
        assert!(!h.take(&[report("pile-a", Body::Heartbeat)], Utc::now()));
        assert_eq!(h.waiting(), 0);
    }

    #[test]
    fn mon_1_a_confirmed_piles_heartbeat_is_noted_for_each_connector() {
        let h = heartbeats();
        let now = Utc::now();
        h.confirm("pile-a", now);
        assert!(h.take(
            &[report("pile-a", Body::Heartbeat)],
            now + chrono::Duration::seconds(59)
        ));
        assert_eq!(h.waiting(), 2, "both connectors of the pile are seen");
    }

    #[test]
    fn mon_1_a_stale_or_refuted_confirmation_sends_the_heartbeat_to_the_log() {
        let h = heartbeats();
        let now = Utc::now();
        h.confirm("pile-a", now);
        assert!(!h.take(
            &[report("pile-a", Body::Heartbeat)],
            now + chrono::Duration::seconds(60)
        ));
        h.confirm("pile-b", now);
        h.refute("pile-b");
        assert!(!h.take(&[report("pile-b", Body::Heartbeat)], now));
    }

    /// A store on a fresh, migrated SQLite database.
    async fn sqlite_store() -> (chargemesh_kit::db::TestDatabase, Arc<dyn TelemetryStore>) {
        let db = chargemesh_kit::db::TestDatabase::sqlite("telemetry")
            .await
            .expect("database");
        db.database
            .migrate(crate::store::MIGRATIONS)
            .await
            .expect("migrated");
        let store = crate::store::for_database(&db.database);
        (db, store)
    }

    /// `pile`'s one connector, reported idle by `source` at `at`.
    fn idle(source: &str, pile: &str, at: DateTime<Utc>) -> Report {
        Report {
            connectors: vec![format!("{pile}-1")],
            connector_id: format!("{pile}-1"),
            pile_id: pile.into(),
            observed_at: at,
            ..report(
                source,
                Body::Status {
                    state: crate::domain::ConnectorState::Idle,
                    fault_code: String::new(),
                    fault_text: String::new(),
                },
            )
        }
    }

    /// A store on a fresh SQLite database holding connector `P1-1` of `pile-a` (idle, seen at
    /// `at`) and `P2-1` of `pile-b` marked offline by silence.
    async fn store_with_two_piles(
        at: DateTime<Utc>,
    ) -> (chargemesh_kit::db::TestDatabase, Arc<dyn TelemetryStore>) {
        let (db, store) = sqlite_store().await;
        store
            .append(&[idle("pile-a", "P1", at), idle("pile-b", "P2", at)], at)
            .await
            .expect("stored");
        // pile-b falls silent past the limit; pile-a was seen since.
        store
            .touch(&[(
                "OP".into(),
                "P1-1".into(),
                at + chrono::Duration::seconds(200),
            )])
            .await
            .expect("touched");
        let cutoff = at + chrono::Duration::seconds(100);
        let swept = store
            .sweep_offline(cutoff, at + chrono::Duration::seconds(280))
            .await
            .expect("swept");
        assert_eq!(swept.len(), 1, "pile-b's connector offline by silence");
        (db, store)
    }

    #[tokio::test]
    async fn mon_1_a_flush_that_finds_a_pile_live_keeps_its_next_heartbeats_off_the_log() {
        let at = Utc::now();
        let (_db, store) = store_with_two_piles(at).await;
        let h = heartbeats();
        let beat = |source: &str, pile: &str| Report {
            connectors: vec![format!("{pile}-1")],
            ..report(source, Body::Heartbeat)
        };
        let t = |s: i64| at + chrono::Duration::seconds(s);
        // pile-b's heartbeat is noted; the flush finds its connector offline by silence, so its
        // next goes through the log (where the pile is asked to resync).
        h.confirm("pile-b", t(240));
        assert!(h.take(&[beat("pile-b", "P2")], t(250)));
        h.flush(store.as_ref(), t(255)).await;
        assert!(!h.take(&[beat("pile-b", "P2")], t(260)));
        // Heartbeats every 50 s: each is within the freshness (60 s here) of the one before,
        // confirmed by its flush, though not of the confirmation from the log.
        h.confirm("pile-a", t(240));
        for (n, s) in [290, 340, 390, 440].into_iter().enumerate() {
            assert!(
                h.take(&[beat("pile-a", "P1")], t(s)),
                "heartbeat {n} of a live pile is noted, not logged"
            );
            h.flush(store.as_ref(), t(s + 5)).await;
        }
        // The confirmation counts from the last heartbeat flushed, not from its flush: a pile
        // quiet for the freshness since goes through the log again.
        assert!(!h.take(&[beat("pile-a", "P1")], t(440 + 60)));
    }

    #[tokio::test]
    async fn mon_1_a_flush_of_more_than_a_chunk_moves_every_connector() {
        let (_db, store) = sqlite_store().await;
        let at = Utc::now();
        let piles: Vec<String> = (0..FLUSH_CHUNK * 2 + 7)
            .map(|n| format!("P{n:04}"))
            .collect();
        let idle: Vec<Report> = piles.iter().map(|p| idle("platform", p, at)).collect();
        store.append(&idle, at).await.expect("stored");
        let h = heartbeats();
        let t = |s: i64| at + chrono::Duration::seconds(s);
        h.confirm("platform", t(0));
        for pile in &piles {
            let beat = Report {
                connectors: vec![format!("{pile}-1")],
                pile_id: pile.clone(),
                ..report("platform", Body::Heartbeat)
            };
            assert!(h.take(&[beat], t(50)));
        }
        assert_eq!(h.waiting(), piles.len());
        h.flush(store.as_ref(), t(55)).await;
        assert_eq!(h.waiting(), 0);
        // Silent since before the heartbeats: none, every chunk's connectors were moved.
        let swept = store.sweep_offline(t(40), t(60)).await.expect("swept");
        assert!(swept.is_empty(), "{} left behind", swept.len());
    }

    #[test]
    fn mon_1_anything_but_heartbeats_goes_through_the_log() {
        let h = heartbeats();
        let now = Utc::now();
        h.confirm("pile-a", now);
        h.confirm("pile-b", now);
        let status = Body::Status {
            state: crate::domain::ConnectorState::Idle,
            fault_code: String::new(),
            fault_text: String::new(),
        };
        assert!(!h.take(
            &[report("pile-a", Body::Heartbeat), report("pile-a", status)],
            now
        ));
        assert!(!h.take(
            &[
                report("pile-a", Body::Heartbeat),
                report("pile-b", Body::Heartbeat)
            ],
            now
        ));
        assert!(!h.take(&[], now));
        assert_eq!(h.waiting(), 0);
    }
}
