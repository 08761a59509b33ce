//! Pushes to regulator platforms over T/CEC 102 (REQ BASE-2): each station when it changes
//! (`notification_stationInfo`), every connector status change
//! (`notification_stationStatus`), each running session's progress every few minutes
//! (`notification_equip_charge_status`) and every finished charge order
//! (`notification_charge_order_info`, resent until the peer confirms it with `ConfirmResult` 0).
//!
//! The outbox is durable: deliveries are made from the logs reporting has already kept — the
//! status history it copies from the asset component's log, the charge-order facts from
//! metering's journal, each written in the same transaction as the change it records — one row
//! per peer and item, inserted with the position it was read to, in one transaction. A crash, a
//! restart or a peer outage of hours loses nothing: what is not confirmed is sent again, with
//! exponential backoff and jitter. Items of one lane (a connector's changes, an order's versions)
//! go in order. One the peer refuses for its content (`Ret` 4004) or that fails too often is
//! parked: kept, visible through `ReportingService/ListParkedPushes`, no longer retried.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use chargemesh_cec::Ret;
use chargemesh_cec::client::{Https, PeerClient};
use chargemesh_cec::peers::{PeerAccess, PeerConfig};
use chargemesh_kit::area::area_covers;
use chargemesh_kit::db::{Database, Placeholders, StoreError, generated};
use chargemesh_kit::paging::{Keyed, Keyset};

/// The push settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// Our platform's OperatorID, which the pushes carry.
    pub operator_id: String,
    /// The peers; those with a `push_url` and `outbound` secrets are pushed to.
    pub peers: Vec<PeerConfig>,
    /// How often the outbox is looked at, in milliseconds.
    pub interval_ms: u64,
    /// The first retry's delay; each further one doubles, up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// After this many failed attempts an item is parked.
    pub max_attempts: u32,
    /// How often a running session's progress is pushed, in seconds (the 5 minutes regulators
    /// ask for).
    pub charge_status_every_s: u64,
    /// How long a peer may take to accept a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// How long one push may take, answer included, in milliseconds.
    pub request_timeout_ms: u64,
    /// The largest answer read from a peer, in bytes.
    pub max_response_bytes: usize,
    /// Pushes in flight to one peer at once (each to a different connector or order, so every
    /// lane stays in order).
    pub concurrency: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            operator_id: String::new(),
            peers: Vec::new(),
            interval_ms: 1_000,
            backoff_base_ms: 1_000,
            backoff_max_ms: 300_000,
            max_attempts: 20,
            charge_status_every_s: 300,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            max_response_bytes: 1 << 20,
            concurrency: 8,
        }
    }
}

/// The most deliveries one pass sends to a peer.
const PAGE: i64 = 500;

/// What one pass to a peer did.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    delivered: usize,
    /// What still waits after it.
    backlog: i64,
}

impl Sent {
    /// Whether the next pass should go at once: this one got items through and more wait (the
    /// next of a lane it just delivered to, or the page after a full one). A peer that took
    /// nothing is not asked again before the interval.
    fn behind(&self) -> bool {
        self.delivered > 0 && self.backlog > 0
    }
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry(String),
    Park(String),
}

/// The verdict on a peer's answer to a push.
pub fn judge(interface: &str, ret: Ret, answer: &Value) -> Outcome {
    match ret {
        Ret::Ok => {}
        Ret::BadPayload => return Outcome::Park(format!("the peer refused the content: {answer}")),
        other => return Outcome::Retry(format!("Ret {}", other.code())),
    }
    match interface {
        // 0 accepted, 1 ignored (not to be resent): either way it is the peer's now.
        "notification_stationStatus" => Outcome::Delivered,
        "notification_charge_order_info" => match answer["ConfirmResult"].as_i64() {
            Some(0) => Outcome::Delivered,
            other => Outcome::Retry(format!("ConfirmResult {other:?}")),
        },
        _ => Outcome::Delivered,
    }
}

/// The delay before attempt `attempts + 1`: doubling from `base`, at most `max`, less up to a
/// fifth by a jitter drawn from `seed` so that retries of many items spread out.
pub fn backoff(attempts: u32, base: Duration, max: Duration, seed: u64) -> Duration {
    let doubled = base
        .checked_mul(1u32.checked_shl(attempts.min(30)).unwrap_or(u32::MAX))
        .unwrap_or(max)
        .min(max);
    let jitter = seed % 1_000;
    doubled.saturating_sub(doubled / 5 * u32::try_from(jitter).unwrap_or(0) / 1_000)
}

fn seed(text: &str, attempts: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(attempts);
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What a queued delivery is: its stream, key, lane and place in the lane, and the interface.
struct Item<'a> {
    stream: &'static str,
    key: String,
    lane: &'a str,
    seq: i64,
    interface: &'static str,
}

/// A delivery row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub peer: String,
    pub stream: String,
    pub item_key: String,
    pub lane: String,
    pub seq: i64,
    pub interface: String,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: String,
}

/// A delivery as a query reads it, column by column.
type DeliveryRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    i32,
    DateTime<Utc>,
    String,
);

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Self {
            peer: r.0,
            stream: r.1,
            item_key: r.2,
            lane: r.3,
            seq: r.4,
            interface: r.5,
            payload: r.6,
            state: r.7,
            attempts: r.8,
            next_attempt_at: r.9,
            last_error: r.10,
        }
    }
}

macro_rules! on_backend {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Database::Postgres($pool) => $body,
            Database::Sqlite($pool) => $body,
        }
    };
}

mod enqueue;

/// Deliveries whose answers are recorded in one transaction.
const RECORD_BATCH: usize = 64;

const INSERT: &str = "INSERT INTO cec_deliveries (peer, stream, item_key, lane, seq, interface, payload, state, \
    attempts, next_attempt_at, last_error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, '', $8) \
    ON CONFLICT DO NOTHING";

/// The pusher: one pass enqueues what the logs hold beyond each peer's position and sends what
/// is due.
#[derive(Clone)]
pub struct Pusher {
    db: Database,
    config: PushConfig,
    clients: Vec<(PeerConfig, std::sync::Arc<PeerClient>)>,
    /// The station directory's generation is read through the store.
    store: std::sync::Arc<dyn crate::store::ReportingStore>,
    memo: std::sync::Arc<std::sync::Mutex<enqueue::Memo>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("peers", &self.clients.len())
            .finish()
    }
}

fn in_scope(peer: &PeerConfig, operator_id: &str, area_code: &str) -> bool {
    match &peer.access {
        PeerAccess::Regulator { area_code: area } => area_covers(area, area_code),
        PeerAccess::Operator { operator_id: own } => own == operator_id,
    }
}

impl Pusher {
    /// The pusher of `config`'s peers that take pushes, over `tls`.
    /// Envelopes are stamped, and retries paced, by wall time: the peer checks its own clock.
    pub fn new(
        db: Database,
        config: PushConfig,
        tls: rustls::ClientConfig,
    ) -> Result<Self, chargemesh_cec::CecError> {
        let https = Https::new(tls).with_limits(chargemesh_cec::client::Limits {
            connect_timeout: Duration::from_millis(config.connect_timeout_ms.max(1)),
            request_timeout: Duration::from_millis(config.request_timeout_ms.max(1)),
            max_response_bytes: config.max_response_bytes,
        });
        let mut clients = Vec::new();
        for peer in &config.peers {
            // An empty area code would cover every area: refused at start, not pushed to.
            peer.validate()?;
            let (Some(url), Some(secrets)) = (&peer.push_url, &peer.outbound) else {
                continue;
            };
            let client = PeerClient::new(
                https.clone(),
                url,
                &config.operator_id,
                secrets.secrets()?,
                peer.dialect,
            );
            clients.push((peer.clone(), std::sync::Arc::new(client)));
        }
        Ok(Self {
            store: crate::store::for_database(&db),
            db,
            config,
            clients,
            memo: Default::default(),
        })
    }

    /// Enqueues and sends once to every peer; returns how many items were delivered.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let mut delivered = 0;
        for index in 0..self.clients.len() {
            delivered += self.pass_peer(index).await?.delivered;
        }
        Ok(delivered)
    }

    /// One peer's pass: what is new into its outbox, then what is due out of it. One replica
    /// at a time serves a peer, so each delivery has one sender.
    async fn pass_peer(&self, index: usize) -> Result<Sent, StoreError> {
        let (peer, client) = &self.clients[index];
        let Some(lead) = self
            .db
            .leadership(&format!("cec-push/{}", peer.name))
            .await?
        else {
            return Ok(Sent::default());
        };
        let outcome = async {
            self.enqueue(peer).await?;
            self.send(peer, client).await
        }
        .await;
        lead.release().await;
        outcome
    }

    /// Runs passes every `interval_ms` until the task is aborted: one loop per peer, so a slow
    /// or unreachable peer delays only its own pushes.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut peers = tokio::task::JoinSet::new();
            for index in 0..this.clients.len() {
                let this = this.clone();
                peers.spawn(async move {
                    let every = Duration::from_millis(this.config.interval_ms.max(10));
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut behind = false;
                    loop {
                        // A pass that got items through while more wait goes again at once: a
                        // backlog (a fleet reconnecting, a peer back from an outage, a connector's
                        // changes queued behind each other) drains at the peer's pace, not one
                        // page or one change per lane per interval.
                        if !behind {
                            tick.tick().await;
                        }
                        behind = match this.pass_peer(index).await {
                            Ok(sent) => sent.behind(),
                            Err(error) => {
                                tracing::warn!(peer = %this.clients[index].0.name, %error, "T/CEC 102 push pass failed");
                                false
                            }
                        };
                    }
                });
            }
            // Aborting this task drops the set, which aborts every peer's loop.
            while peers.join_next().await.is_some() {}
        })
    }

    /// A peer's pending deliveries that head their lane and are due by `now` (each lane's first
    /// pending item; the next waits for it), at most [`PAGE`]. One pass over the peer's pending
    /// rows in lane order (the `cec_deliveries_lanes` index), whatever the planner knows of the
    /// table: a backlog of tens of thousands costs a scan, never a comparison of every pair.
    async fn deliveries(
        &self,
        peer: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<DeliveryRow> = on_backend!(&self.db, pool => sqlx::query_as(
            "SELECT peer, stream, item_key, lane, seq, interface, payload, state, attempts, next_attempt_at, last_error \
             FROM (SELECT peer, stream, item_key, lane, seq, interface, payload, state, attempts, next_attempt_at, last_error, \
                   ROW_NUMBER() OVER (PARTITION BY stream, lane ORDER BY seq) AS place \
                   FROM cec_deliveries WHERE peer = $1 AND state = 'pending') heads \
             WHERE place = 1 AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at, stream, lane LIMIT $3",
        )
        .bind(peer)
        .bind(now)
        .bind(PAGE)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(Delivery::from).collect())
    }

    /// How many deliveries to a peer wait.
    async fn backlog(&self, peer: &str) -> Result<i64, StoreError> {
        Ok(on_backend!(&self.db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM cec_deliveries WHERE peer = $1 AND state = 'pending'",
        )
        .bind(peer)
        .fetch_one(pool)
        .await?))
    }

    /// What a delivery's outcome makes of its row: (state, error, next attempt, attempts).
    fn verdict(
        &self,
        d: &Delivery,
        outcome: &Outcome,
    ) -> (&'static str, String, DateTime<Utc>, i32) {
        // Retries are paced by wall time: backoff is about the network, not the standard's
        // clocks.
        let now = Utc::now();
        let attempts = d.attempts.saturating_add(1);
        let (state, error, next) = match outcome {
            Outcome::Delivered => ("delivered", String::new(), now),
            Outcome::Park(why) => ("parked", why.clone(), now),
            Outcome::Retry(why)
                if u32::try_from(attempts).unwrap_or(0) >= self.config.max_attempts =>
            {
                (
                    "parked",
                    format!("{why}; gave up after {attempts} attempts"),
                    now,
                )
            }
            Outcome::Retry(why) => {
                let delay = backoff(
                    u32::try_from(d.attempts).unwrap_or(0),
                    Duration::from_millis(self.config.backoff_base_ms),
                    Duration::from_millis(self.config.backoff_max_ms),
                    seed(&d.item_key, u32::try_from(attempts).unwrap_or(0)),
                );
                let delay = chrono::Duration::from_std(delay).unwrap_or_default();
                ("pending", why.clone(), now + delay)
            }
        };
        (state, error, next, attempts)
    }

    /// Records what became of several deliveries in one statement: at 50,000 reconnecting
    /// piles one commit per push was most of what PostgreSQL did (sampled), each waiting for
    /// its WAL flush, and then one statement per delivery in a shared commit still was. A crash
    /// before the commit sends those again, which a peer takes as it takes any resend.
    async fn record(&self, done: &[(&Delivery, Outcome)]) -> Result<(), StoreError> {
        if done.is_empty() {
            return Ok(());
        }
        let verdicts: Vec<_> = done
            .iter()
            .map(|(d, outcome)| (*d, self.verdict(d, outcome)))
            .collect();
        let sql = format!(
            "UPDATE cec_deliveries SET state = v.column4, attempts = v.column5, last_error = v.column6, \
             next_attempt_at = v.column7, \
             delivered_at = CASE WHEN v.column4 = 'delivered' THEN v.column7 ELSE cec_deliveries.delivered_at END \
             FROM (VALUES {}) AS v \
             WHERE cec_deliveries.peer = v.column1 AND cec_deliveries.stream = v.column2 \
             AND cec_deliveries.item_key = v.column3",
            Placeholders::Numbered.rows(verdicts.len(), 7)
        );
        on_backend!(&self.db, pool => {
            let mut query = generated(sql.clone());
            for (d, (state, error, next, attempts)) in &verdicts {
                query = query
                    .bind(&d.peer)
                    .bind(&d.stream)
                    .bind(&d.item_key)
                    .bind(*state)
                    .bind(*attempts)
                    .bind(error)
                    .bind(*next);
            }
            query.execute(pool).await?;
        });
        for (d, (state, error, _, _)) in &verdicts {
            if *state == "parked" {
                tracing::warn!(peer = %d.peer, item = %d.item_key, %error, "T/CEC 102 push parked");
            }
        }
        Ok(())
    }

    /// Sends what is due, each lane in order: the items due are heads of distinct lanes, so up
    /// to `concurrency` go at once without reordering any lane. Answers are recorded a batch at
    /// a time (`RECORD_BATCH`), so a crash can resend at most the items of one batch whose
    /// answers were not recorded yet.
    async fn send(&self, peer: &PeerConfig, client: &PeerClient) -> Result<Sent, StoreError> {
        use futures_util::StreamExt as _;
        let due = self.deliveries(&peer.name, Utc::now()).await?;
        let mut delivered = 0;
        let mut waiting = due.iter();
        let mut in_flight = futures_util::stream::FuturesUnordered::new();
        let mut done = Vec::new();
        loop {
            while in_flight.len() < self.config.concurrency.max(1) {
                let Some(d) = waiting.next() else { break };
                in_flight.push(self.attempt(client, d));
            }
            let Some((d, outcome)) = in_flight.next().await else {
                break;
            };
            if outcome == Outcome::Delivered {
                delivered += 1;
            }
            done.push((d, outcome));
            if done.len() >= RECORD_BATCH {
                self.record(&done).await?;
                done.clear();
            }
        }
        self.record(&done).await?;
        let backlog = self.backlog(&peer.name).await?;
        chargemesh_kit::metrics::metrics()
            .push_backlog
            .get_or_create(&chargemesh_kit::metrics::PeerLabels {
                peer: peer.name.clone(),
            })
            .set(backlog);
        Ok(Sent { delivered, backlog })
    }

    /// Sends one delivery; what became of it, for the caller to record.
    async fn attempt<'d>(&self, client: &PeerClient, d: &'d Delivery) -> (&'d Delivery, Outcome) {
        let payload: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
        let outcome = match client.call(&d.interface, &payload).await {
            Ok((ret, answer)) => judge(&d.interface, ret, &answer),
            Err(error) => Outcome::Retry(error.to_string()),
        };
        (d, outcome)
    }

    /// A page of the parked deliveries, the latest parked first.
    pub async fn parked(&self, page: &Keyset) -> Result<Vec<Keyed<Delivery>>, StoreError> {
        // A delivery's key is its peer, stream and item, as one string ordered the same way in
        // the query and in the token.
        let rows: Vec<DeliveryRow> = on_backend!(&self.db, pool => sqlx::query_as(
            "SELECT peer, stream, item_key, lane, seq, interface, payload, state, attempts, next_attempt_at, last_error \
             FROM cec_deliveries WHERE state = 'parked' \
             AND (next_attempt_at < $1 OR (next_attempt_at = $1 AND (peer || ' ' || stream || ' ' || item_key) < $2)) \
             ORDER BY next_attempt_at DESC, (peer || ' ' || stream || ' ' || item_key) DESC LIMIT $3",
        )
        .bind(page.before_at)
        .bind(&page.before_id)
        .bind(page.fetch())
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|row| {
                let d = Delivery::from(row);
                Keyed {
                    at: d.next_attempt_at,
                    id: format!("{} {} {}", d.peer, d.stream, d.item_key),
                    item: d,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base_2_an_order_is_resent_until_confirmed_and_refused_content_is_parked() {
        let order = "notification_charge_order_info";
        assert_eq!(
            judge(order, Ret::Ok, &json!({"ConfirmResult": 0})),
            Outcome::Delivered
        );
        assert!(matches!(
            judge(order, Ret::Ok, &json!({"ConfirmResult": 1})),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            judge(order, Ret::SystemError, &Value::Null),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            judge(order, Ret::BadPayload, &Value::Null),
            Outcome::Park(_)
        ));
        let status = "notification_stationStatus";
        assert_eq!(
            judge(status, Ret::Ok, &json!({"Status": 1})),
            Outcome::Delivered
        );
    }

    #[test]
    fn retries_back_off_doubling_with_jitter_up_to_the_cap() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        assert_eq!(backoff(0, base, max, 0), Duration::from_secs(1));
        assert_eq!(backoff(3, base, max, 0), Duration::from_secs(8));
        assert_eq!(backoff(20, base, max, 0), max);
        let jittered = backoff(3, base, max, 999);
        assert!(jittered < Duration::from_secs(8) && jittered >= Duration::from_millis(6_400));
    }
}
