//! Liveness without a database write per heartbeat (REQ MON-1). A fleet of 100,000 piles sends
//! well over a thousand heartbeats a second, and a heartbeat says one thing: the pile is there.
//! A heartbeat of a pile whose liveness the database confirmed recently (its last report went
//! through the log, or a flush found none of its connectors offline) is acknowledged at once and
//! noted in memory. Every few seconds a flush moves forward the last-seen time of the noted
//! connectors that are due: those of piles whose confirmation is older than
//! `TelemetrySettings::heartbeat_write_after` (two thirds of the silence limit), 500 to a
//! transaction, beside the writer's transactions. A younger confirmation vouches that the store's
//! last-seen time keeps the connectors from being judged silent until then, so their notes wait
//! (each keeping its latest heartbeat) and most heartbeats are never written: what the store
//! needs is a last-seen time recent enough, not every one. Silence is judged against minutes
//! (`offline_after_seconds`), with a third of them left for the flush; a heartbeat lost in a
//! crash before its flush is one of many the pile keeps sending, and a stopping component
//! writes every note. Any other heartbeat (the first of a stream, or of a pile not confirmed
//! lately) goes through the log as before, which is where a connector marked offline by silence
//! is found and the pile asked to resync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{Body, Report};
use crate::store::TelemetryStore;

/// How many connectors one transaction of a flush moves.
const FLUSH_CHUNK: usize = 500;

/// A connector: (operator, connector).
pub type Connector = (String, String);

#[derive(Debug, Default)]
struct State {
    /// Connectors whose liveness the database confirmed, and as of when: the store holds a
    /// last-seen time at least this recent for each.
    confirmed: HashMap<Connector, DateTime<Utc>>,
    /// Connectors heard from and not written yet, with the latest time each was heard.
    noted: HashMap<Connector, DateTime<Utc>>,
}

/// Heartbeats held in memory between flushes.
#[derive(Debug)]
pub struct Heartbeats {
    state: Mutex<State>,
    /// How long a confirmation lets a connector's heartbeats skip the log.
    fresh_for: chrono::Duration,
    /// How old a confirmation grows before its connector's note is written.
    write_after: chrono::Duration,
}

/// The connectors `reports` speak for.
fn each_connector(reports: &[Report]) -> impl Iterator<Item = Connector> + '_ {
    reports.iter().flat_map(|r| {
        r.connectors
            .iter()
            .map(|c| (r.operator_id.clone(), c.clone()))
    })
}

/// The connectors `reports` speak for, to confirm or refute once they are written.
pub fn connectors(reports: &[Report]) -> Vec<Connector> {
    each_connector(reports).collect()
}

impl Heartbeats {
    /// Confirmations last `fresh_for` (`TelemetrySettings::heartbeat_fresh_for`: the silence
    /// limit less two flushes); notes are written once their connector's confirmation is
    /// `write_after` old (`TelemetrySettings::heartbeat_write_after`), at most `fresh_for`.
    pub fn new(fresh_for: Duration, write_after: Duration) -> Self {
        let fresh_for =
            chrono::Duration::from_std(fresh_for).unwrap_or_else(|_| chrono::Duration::seconds(60));
        let write_after = chrono::Duration::from_std(write_after)
            .unwrap_or(fresh_for)
            .min(fresh_for);
        Self {
            state: Mutex::default(),
            fresh_for,
            write_after,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it leaves plain maps behind: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the connectors of `reports` heard at `now` when every one of them is confirmed
    /// live within `fresh_for` and `admit` holds for every report; nothing is noted otherwise.
    fn note_if_fresh(
        &self,
        reports: &[Report],
        now: DateTime<Utc>,
        admit: impl Fn(&Report) -> bool,
    ) -> bool {
        if reports.is_empty() || !reports.iter().all(admit) {
            return false;
        }
        let mut state = self.state();
        let fresh = each_connector(reports).all(|key| {
            state
                .confirmed
                .get(&key)
                .is_some_and(|at| now - *at < self.fresh_for)
        });
        if fresh {
            for key in each_connector(reports) {
                state.noted.insert(key, now);
            }
        }
        fresh
    }

    /// Takes `reports` when they are all heartbeats of connectors confirmed live within
    /// `fresh_for`: their connectors are noted and nothing is written now.
    pub fn take(&self, reports: &[Report], now: DateTime<Utc>) -> bool {
        self.note_if_fresh(reports, now, |r| matches!(r.body, Body::Heartbeat))
    }

    /// REQ MON-1: when `reports` carry no status and every connector they speak for is
    /// confirmed live within `fresh_for` (a charging pile's meter samples, mostly), notes their
    /// connectors as for a heartbeat and empties the reports' connector lists, so the log takes
    /// them without moving (or locking) the connectors' status rows; true when it did. Such a
    /// connector cannot be offline by silence (its confirmation vouches for its last-seen time),
    /// so there is nothing to resync either.
    pub fn vouch(&self, reports: &mut [Report], now: DateTime<Utc>) -> bool {
        let vouched = self.note_if_fresh(reports, now, |r| {
            !matches!(r.body, Body::Status { .. }) && !r.connectors.is_empty()
        });
        if vouched {
            for r in reports {
                r.connectors.clear();
            }
        }
        vouched
    }

    /// The database has just seen `connectors` live: reports for them went through the log,
    /// which moved their last-seen time to `now` or later, and none was offline by silence.
    pub fn confirm(&self, connectors: &[Connector], now: DateTime<Utc>) {
        let mut state = self.state();
        for key in connectors {
            state.confirmed.insert(key.clone(), now);
        }
    }

    /// Forgets the confirmation of `connectors`: their next heartbeat goes through the log.
    pub fn refute(&self, connectors: &[Connector]) {
        let mut state = self.state();
        for key in connectors {
            state.confirmed.remove(key);
        }
    }

    /// How many connectors wait to be written.
    pub fn waiting(&self) -> usize {
        self.state().noted.len()
    }

    /// Takes the notes due for writing at `now` (every note when `all`): those of connectors
    /// unconfirmed or confirmed `write_after` ago or longer.
    fn take_due(&self, now: DateTime<Utc>, all: bool) -> Vec<(String, String, DateTime<Utc>)> {
        let mut state = self.state();
        let State { confirmed, noted } = &mut *state;
        if all {
            return noted
                .drain()
                .map(|((operator, connector), at)| (operator, connector, at))
                .collect();
        }
        let mut due = Vec::new();
        noted.retain(|key, at| {
            let vouched = confirmed
                .get(key)
                .is_some_and(|confirmed| now - *confirmed < self.write_after);
            if !vouched {
                due.push((key.0.clone(), key.1.clone(), *at));
            }
            vouched
        });
        due
    }

    /// Moves the last-seen time of the noted connectors that are due forward in the store,
    /// `FLUSH_CHUNK` at a time; the others wait for a later flush. A connector the store holds
    /// offline by silence loses its confirmation, so its next heartbeat goes through the log and
    /// asks the pile to resync; a failed flush keeps the notes it did not write for the next one.
    pub async fn flush(&self, store: &dyn TelemetryStore, now: DateTime<Utc>) {
        self.write(store, now, false).await;
    }

    /// Writes every note, due or not: when the component stops, so that no pile's last-seen
    /// time stays behind what it sent.
    pub async fn flush_all(&self, store: &dyn TelemetryStore, now: DateTime<Utc>) {
        self.write(store, now, true).await;
    }

    async fn write(&self, store: &dyn TelemetryStore, now: DateTime<Utc>, all: bool) {
        let mut seen = self.take_due(now, all);
        if seen.is_empty() {
            return;
        }
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
        let mut state = self.state();
        tracing::debug!(
            connectors = seen.len(),
            written,
            waiting = state.noted.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "heartbeat flush"
        );
        // Confirmations past their freshness are of piles gone quiet: let them go.
        let fresh_for = self.fresh_for;
        state.confirmed.retain(|_, at| now - *at < fresh_for);
        if let Some(error) = &failed {
            tracing::warn!(%error, connectors = seen.len() - written, "heartbeats not flushed; kept for the next flush");
            for (operator, connector, at) in &seen[written..] {
                // A note taken since is later.
                state
                    .noted
                    .entry((operator.clone(), connector.clone()))
                    .or_insert(*at);
            }
        }
        // The database has just seen the written connectors live, as of the heartbeat written
        // (what the store holds is that time, not the flush's): their heartbeats keep skipping
        // the log. (Confirmed only by the log, a pile that sends nothing but heartbeats sent one
        // in every `fresh_for` through it, and at an interval as long as `fresh_for` every one.)
        for (operator, connector, at) in &seen[..written] {
            state
                .confirmed
                .entry((operator.clone(), connector.clone()))
                .and_modify(|confirmed| *confirmed = (*confirmed).max(*at))
                .or_insert(*at);
        }
        for key in silenced {
            state.confirmed.remove(&key);
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

    /// Confirmations fresh for 60 s, notes written once theirs is 40 s old.
    fn heartbeats() -> Heartbeats {
        Heartbeats::new(Duration::from_secs(60), Duration::from_secs(40))
    }

    /// A heartbeat of `pile` (connectors `{pile}-1` and `{pile}-2`).
    fn beat_of(pile: &str) -> Report {
        Report {
            pile_id: pile.into(),
            connectors: vec![format!("{pile}-1"), format!("{pile}-2")],
            ..report(&format!("pile:{pile}"), Body::Heartbeat)
        }
    }

    /// Confirms the connectors of `reports` at `at`.
    fn confirm(h: &Heartbeats, reports: &[Report], at: DateTime<Utc>) {
        h.confirm(&connectors(reports), at);
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
        confirm(&h, &[beat_of("P1")], now);
        assert!(h.take(&[beat_of("P1")], now + chrono::Duration::seconds(59)));
        assert_eq!(h.waiting(), 2, "both connectors of the pile are seen");
    }

    #[test]
    fn mon_1_a_stale_or_refuted_confirmation_sends_the_heartbeat_to_the_log() {
        let h = heartbeats();
        let now = Utc::now();
        confirm(&h, &[beat_of("P1")], now);
        assert!(!h.take(&[beat_of("P1")], now + chrono::Duration::seconds(60)));
        confirm(&h, &[beat_of("P2")], now);
        h.refute(&connectors(&[beat_of("P2")]));
        assert!(!h.take(&[beat_of("P2")], now));
        // A pile is confirmed connector by connector: one of its connectors confirmed is not
        // the pile.
        h.confirm(&[("OP".into(), "P3-1".into())], now);
        assert!(!h.take(&[beat_of("P3")], now));
        assert_eq!(h.waiting(), 0);
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
        confirm(&h, &[beat("pile-b", "P2")], t(240));
        assert!(h.take(&[beat("pile-b", "P2")], t(250)));
        h.flush(store.as_ref(), t(255)).await;
        assert_eq!(h.waiting(), 1, "a note of a confirmation 15 s old waits");
        h.flush(store.as_ref(), t(280)).await;
        assert_eq!(h.waiting(), 0, "written once the confirmation is 40 s old");
        assert!(!h.take(&[beat("pile-b", "P2")], t(285)));
        // Heartbeats every 50 s: each is within the freshness (60 s here) of the one before,
        // confirmed by its flush, though not of the confirmation from the log.
        confirm(&h, &[beat("pile-a", "P1")], t(240));
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
        let beats: Vec<Report> = piles
            .iter()
            .map(|pile| Report {
                connectors: vec![format!("{pile}-1")],
                pile_id: pile.clone(),
                ..report("platform", Body::Heartbeat)
            })
            .collect();
        confirm(&h, &beats, t(0));
        for beat in beats {
            assert!(h.take(&[beat], t(50)));
        }
        assert_eq!(h.waiting(), piles.len());
        h.flush(store.as_ref(), t(55)).await;
        assert_eq!(h.waiting(), 0);
        // Silent since before the heartbeats: none, every chunk's connectors were moved.
        let swept = store.sweep_offline(t(40), t(60)).await.expect("swept");
        assert!(swept.is_empty(), "{} left behind", swept.len());
    }

    /// The last-seen time the store holds for `connector` of station S1.
    async fn last_seen(store: &dyn TelemetryStore, connector: &str) -> DateTime<Utc> {
        store
            .station_status("OP", "S1")
            .await
            .expect("status")
            .into_iter()
            .find(|s| s.connector_id == connector)
            .map(|s| s.last_seen_at)
            .expect("the connector is stored")
    }

    /// A store holding pile-a's connector P1-1, idle and seen at a whole second: that second.
    async fn store_with_pile_a() -> (
        chargemesh_kit::db::TestDatabase,
        Arc<dyn TelemetryStore>,
        DateTime<Utc>,
    ) {
        use chrono::SubsecRound as _;
        let at = Utc::now().trunc_subsecs(0);
        let (db, store) = sqlite_store().await;
        store
            .append(&[idle("pile-a", "P1", at)], at)
            .await
            .expect("stored");
        (db, store, at)
    }

    #[tokio::test]
    async fn mon_1_heartbeats_of_a_recent_confirmation_wait_and_the_latest_is_written() {
        let (_db, store, at) = store_with_pile_a().await;
        let h = heartbeats();
        let t = |s: i64| at + chrono::Duration::seconds(s);
        let beat = Report {
            connectors: vec!["P1-1".into()],
            ..report("pile-a", Body::Heartbeat)
        };
        confirm(&h, std::slice::from_ref(&beat), at);
        // A heartbeat every 10 s, a flush 5 s after each: while the confirmation is younger
        // than 40 s the store keeps the time of the report that confirmed it.
        for s in [10, 20, 30] {
            assert!(h.take(std::slice::from_ref(&beat), t(s)));
            h.flush(store.as_ref(), t(s + 5)).await;
            assert_eq!(
                last_seen(store.as_ref(), "P1-1").await,
                at,
                "nothing written at {s} s"
            );
            assert_eq!(h.waiting(), 1);
        }
        // At 40 s the note is due: the latest heartbeat's time is written, and the pile is
        // confirmed as of it, so the next ones wait again.
        assert!(h.take(std::slice::from_ref(&beat), t(40)));
        h.flush(store.as_ref(), t(45)).await;
        assert_eq!(last_seen(store.as_ref(), "P1-1").await, t(40));
        assert_eq!(h.waiting(), 0);
        assert!(h.take(std::slice::from_ref(&beat), t(50)));
        h.flush(store.as_ref(), t(55)).await;
        assert_eq!(last_seen(store.as_ref(), "P1-1").await, t(40));
        // A stopping component writes what waits.
        h.flush_all(store.as_ref(), t(56)).await;
        assert_eq!(last_seen(store.as_ref(), "P1-1").await, t(50));
        assert_eq!(h.waiting(), 0);
    }

    #[tokio::test]
    async fn mon_1_a_confirmed_piles_meter_sample_is_logged_without_touching_its_connector() {
        let (_db, store, at) = store_with_pile_a().await;
        let h = heartbeats();
        let t = |s: i64| at + chrono::Duration::seconds(s);
        let sample = |s: i64| Report {
            sequence: 1 + s as u64,
            connectors: vec!["P1-1".into()],
            connector_id: "P1-1".into(),
            observed_at: t(s),
            ..report(
                "pile-a",
                Body::Meter {
                    energy_kwh: rust_decimal::Decimal::new(1234, 1),
                    power_kw: 7.0,
                    voltage: 220.0,
                    current: 32.0,
                    soc_percent: None,
                },
            )
        };
        // Not confirmed: the sample goes through the log with its connector.
        let mut first = vec![sample(5)];
        assert!(!h.vouch(&mut first, t(5)));
        assert_eq!(first[0].connectors, ["P1-1"]);
        confirm(&h, &first, at);
        // Confirmed: noted, and logged without its connector, so the store's last-seen time
        // stays until the note is due.
        let mut later = vec![sample(10)];
        assert!(h.vouch(&mut later, t(10)));
        assert!(later[0].connectors.is_empty());
        let outcome = store.append(&later, t(10)).await.expect("logged");
        assert_eq!(outcome.stored.len(), 1, "the sample is in the log");
        assert_eq!(last_seen(store.as_ref(), "P1-1").await, at);
        assert_eq!(h.waiting(), 1);
        h.flush(store.as_ref(), t(45)).await;
        assert_eq!(last_seen(store.as_ref(), "P1-1").await, t(10));
    }

    #[test]
    fn mon_1_anything_but_heartbeats_goes_through_the_log() {
        let h = heartbeats();
        let now = Utc::now();
        confirm(&h, &[beat_of("P1")], now);
        let status = Report {
            body: Body::Status {
                state: crate::domain::ConnectorState::Idle,
                fault_code: String::new(),
                fault_text: String::new(),
            },
            ..beat_of("P1")
        };
        assert!(!h.take(&[beat_of("P1"), status.clone()], now));
        // A heartbeat of a pile not confirmed spoils the batch's.
        assert!(!h.take(&[beat_of("P1"), beat_of("P2")], now));
        assert!(!h.take(&[], now));
        assert_eq!(h.waiting(), 0);
        // Nor are status changes vouched for: they go through the log with their connectors.
        let mut reports = vec![status];
        assert!(!h.vouch(&mut reports, now));
        assert_eq!(reports[0].connectors.len(), 2);
        assert_eq!(h.waiting(), 0);
    }
}
