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

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use chargemesh_cec::Ret;
use chargemesh_cec::client::{Https, PeerClient};
use chargemesh_cec::peers::{PeerAccess, PeerConfig};
use chargemesh_kit::area::area_covers;
use chargemesh_kit::db::{Database, StoreError};

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
        }
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

/// The deliveries to attempt now: the first pending one of each lane, when it is due.
pub fn heads(pending: &[Delivery], now: DateTime<Utc>) -> Vec<&Delivery> {
    let mut lanes = HashSet::new();
    let mut out = Vec::new();
    for d in pending {
        if !lanes.insert((&d.stream, &d.lane)) {
            continue;
        }
        if d.next_attempt_at <= now {
            out.push(d);
        }
    }
    out
}

macro_rules! on_backend {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Database::Postgres($pool) => $body,
            Database::Sqlite($pool) => $body,
        }
    };
}

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
        let https = Https::new(tls);
        let mut clients = Vec::new();
        for peer in &config.peers {
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
            db,
            config,
            clients,
        })
    }

    /// Enqueues and sends once; returns how many items were delivered.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        // One replica pushes at a time, so each delivery is claimed by one sender.
        let Some(lead) = self.db.leadership("cec-push").await? else {
            return Ok(0);
        };
        let mut delivered = 0;
        let mut outcome = Ok(());
        for (peer, client) in &self.clients {
            let pass = async {
                self.enqueue_status(peer).await?;
                self.enqueue_orders(peer).await?;
                self.enqueue_charge_status(peer).await?;
                self.enqueue_station_info(peer).await?;
                self.send(peer, client).await
            };
            match pass.await {
                Ok(n) => delivered += n,
                Err(error) => {
                    outcome = Err(error);
                    break;
                }
            }
        }
        lead.release().await;
        outcome.map(|()| delivered)
    }

    /// Runs passes every `interval_ms` until the task is aborted.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis(this.config.interval_ms.max(10));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = this.pass().await {
                    tracing::warn!(%error, "T/CEC 102 push pass failed");
                }
            }
        })
    }

    /// The status changes kept since the peer's position, as deliveries, with the new position,
    /// in one transaction.
    async fn enqueue_status(&self, peer: &PeerConfig) -> Result<(), StoreError> {
        type Row = (i64, String, String, String, String, i32, DateTime<Utc>);
        let now = Utc::now();
        on_backend!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let position: Option<i64> = sqlx::query_scalar(
                "SELECT position FROM cec_push_positions WHERE peer = $1 AND stream = 'status'",
            )
            .bind(&peer.name)
            .fetch_optional(&mut *tx)
            .await?;
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT sequence, operator_id, area_code, station_id, connector_id, cec_status, changed_at \
                 FROM status_history WHERE sequence > $1 ORDER BY sequence LIMIT 1000",
            )
            .bind(position.unwrap_or(0))
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last().map(|r| r.0) else {
                return Ok(());
            };
            for (sequence, operator_id, area_code, _station, connector, status, _at) in &rows {
                if !in_scope(peer, operator_id, area_code) {
                    continue;
                }
                let payload = peer.dialect.status_push(json!({
                    "ConnectorID": connector,
                    "Status": status,
                    "ParkStatus": 0,
                    "LockStatus": 0,
                }));
                sqlx::query(INSERT)
                    .bind(&peer.name)
                    .bind("status")
                    .bind(sequence.to_string())
                    .bind(connector)
                    .bind(*sequence)
                    .bind("notification_stationStatus")
                    .bind(payload.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO cec_push_positions (peer, stream, position) VALUES ($1, 'status', $2) \
                 ON CONFLICT (peer, stream) DO UPDATE SET position = excluded.position",
            )
            .bind(&peer.name)
            .bind(last)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The finished charge orders (each version) not yet queued for the peer.
    async fn enqueue_orders(&self, peer: &PeerConfig) -> Result<(), StoreError> {
        use prost::Message as _;
        type Row = (String, String, i64, Vec<u8>);
        let now = Utc::now();
        let rows: Vec<Row> = on_backend!(&self.db, pool => sqlx::query_as(
            "SELECT f.operator_id, f.subject_id, f.version, f.fact FROM facts f \
             WHERE f.kind = 'charge_order' AND f.until IS NOT NULL AND NOT EXISTS \
             (SELECT 1 FROM cec_deliveries d WHERE d.peer = $1 AND d.stream = 'order' \
              AND d.lane = f.subject_id AND d.seq = f.version) ORDER BY f.at LIMIT 500",
        )
        .bind(&peer.name)
        .fetch_all(pool)
        .await?);
        if rows.is_empty() {
            return Ok(());
        }
        let areas = self.areas().await?;
        for (operator_id, order_id, version, bytes) in rows {
            let Ok(chargemesh_proto::journal::v1::Fact {
                fact: Some(chargemesh_proto::journal::v1::fact::Fact::ChargeOrder(o)),
            }) = chargemesh_proto::journal::v1::Fact::decode(bytes.as_slice())
            else {
                continue;
            };
            let area = areas
                .get(&(operator_id.clone(), o.station_id.clone()))
                .cloned()
                .unwrap_or_default();
            if !in_scope(peer, &operator_id, &area) {
                continue;
            }
            let time = |ts: &Option<prost_types::Timestamp>| {
                ts.as_ref()
                    .and_then(chargemesh_kit::time::from_timestamp)
                    .map(chargemesh_cec::payload_time)
                    .unwrap_or_default()
            };
            let number = |text: &str| text.parse::<f64>().unwrap_or(0.0);
            let mut payload = json!({
                "StartChargeSeq": order_id,
                "ConnectorID": o.connector_id,
                "StartTime": time(&o.start_time),
                "EndTime": time(&o.end_time),
                "TotalPower": number(&o.energy_kwh),
                "TotalMoney": number(&o.total_money),
                "StopReason": 0,
                "SumPeriod": 0,
                "ChargeDetails": [],
            });
            peer.dialect.outbound(&mut payload);
            self.queue(
                peer,
                Item {
                    stream: "order",
                    key: format!("{order_id}@{version}"),
                    lane: &order_id,
                    seq: version,
                    interface: "notification_charge_order_info",
                },
                &payload,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// One progress report per running session and period of `charge_status_every_s`.
    async fn enqueue_charge_status(&self, peer: &PeerConfig) -> Result<(), StoreError> {
        use prost::Message as _;
        type Row = (String, String, Vec<u8>);
        let now = Utc::now();
        let every = i64::try_from(self.config.charge_status_every_s.max(1)).unwrap_or(300);
        let slot = now.timestamp().div_euclid(every);
        let rows: Vec<Row> = on_backend!(&self.db, pool => sqlx::query_as(
            "SELECT f.operator_id, f.subject_id, f.fact FROM facts f \
             WHERE f.kind = 'charge_session' AND f.until IS NULL AND NOT EXISTS \
             (SELECT 1 FROM cec_deliveries d WHERE d.peer = $1 AND d.stream = 'charge' \
              AND d.lane = f.subject_id AND d.seq = $2) LIMIT 500",
        )
        .bind(&peer.name)
        .bind(slot)
        .fetch_all(pool)
        .await?);
        if rows.is_empty() {
            return Ok(());
        }
        let areas = self.areas().await?;
        for (operator_id, order_id, bytes) in rows {
            let Ok(chargemesh_proto::journal::v1::Fact {
                fact: Some(chargemesh_proto::journal::v1::fact::Fact::ChargeSession(c)),
            }) = chargemesh_proto::journal::v1::Fact::decode(bytes.as_slice())
            else {
                continue;
            };
            let area = areas
                .get(&(operator_id.clone(), c.station_id.clone()))
                .cloned()
                .unwrap_or_default();
            if !in_scope(peer, &operator_id, &area) {
                continue;
            }
            let time = |ts: &Option<prost_types::Timestamp>| {
                ts.as_ref()
                    .and_then(chargemesh_kit::time::from_timestamp)
                    .map(chargemesh_cec::payload_time)
                    .unwrap_or_default()
            };
            let mut payload = json!({
                "StartChargeSeq": order_id,
                "StartChargeSeqStat": 2,
                "ConnectorID": c.connector_id,
                "ConnectorStatus": 3,
                "CurrentA": 0,
                "VoltageA": 0,
                "Soc": 0,
                "StartTime": time(&c.start_time),
                "EndTime": time(&c.sample_time),
                "TotalPower": c.energy_kwh.parse::<f64>().unwrap_or(0.0),
                "ElecMoney": 0,
                "SeviceMoney": 0,
                "TotalMoney": 0,
                "SumPeriod": 0,
                "ChargeDetails": [],
            });
            peer.dialect.outbound(&mut payload);
            self.queue(
                peer,
                Item {
                    stream: "charge",
                    key: format!("{order_id}@{slot}"),
                    lane: &order_id,
                    seq: slot,
                    interface: "notification_equip_charge_status",
                },
                &payload,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Each station whose StationInfo version the peer has not been pushed.
    async fn enqueue_station_info(&self, peer: &PeerConfig) -> Result<(), StoreError> {
        type Row = (String, String, String, String, i64);
        let now = Utc::now();
        let rows: Vec<Row> = on_backend!(&self.db, pool => sqlx::query_as(
            "SELECT s.operator_id, s.station_id, s.area_code, s.info, s.version FROM station_infos s \
             WHERE NOT EXISTS (SELECT 1 FROM cec_deliveries d WHERE d.peer = $1 AND d.stream = 'station' \
             AND d.lane = s.operator_id || '/' || s.station_id AND d.seq = s.version) LIMIT 500",
        )
        .bind(&peer.name)
        .fetch_all(pool)
        .await?);
        for (operator_id, station_id, area_code, info, version) in rows {
            if !in_scope(peer, &operator_id, &area_code) {
                continue;
            }
            let info: Value = serde_json::from_str(&info).unwrap_or(Value::Null);
            let mut payload = json!({ "StationInfo": info });
            peer.dialect.outbound(&mut payload);
            let lane = format!("{operator_id}/{station_id}");
            self.queue(
                peer,
                Item {
                    stream: "station",
                    key: format!("{lane}@{version}"),
                    lane: &lane,
                    seq: version,
                    interface: "notification_stationInfo",
                },
                &payload,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Queues one delivery for the peer, once: a second time changes nothing.
    async fn queue(
        &self,
        peer: &PeerConfig,
        item: Item<'_>,
        payload: &Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_backend!(&self.db, pool => {
            sqlx::query(INSERT)
                .bind(&peer.name)
                .bind(item.stream)
                .bind(item.key)
                .bind(item.lane)
                .bind(item.seq)
                .bind(item.interface)
                .bind(payload.to_string())
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Each station's area, for the peers' scopes.
    async fn areas(
        &self,
    ) -> Result<std::collections::HashMap<(String, String), String>, StoreError> {
        Ok(on_backend!(&self.db, pool => {
            let stations: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT operator_id, station_id, area_code FROM stations",
            )
            .fetch_all(pool)
            .await?;
            stations.into_iter().map(|(o, s, a)| ((o, s), a)).collect()
        }))
    }

    /// Deliveries in a state: a peer's pending ones in lane order, or every parked one newest
    /// first.
    async fn deliveries(&self, peer: Option<&str>) -> Result<Vec<Delivery>, StoreError> {
        type Row = (
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
        let (filter, order) = match peer {
            Some(_) => (
                "peer = $1 AND state = 'pending'",
                "stream, lane, seq LIMIT 2000",
            ),
            None => (
                "$1 = '' AND state = 'parked'",
                "next_attempt_at DESC LIMIT 1000",
            ),
        };
        let sql = format!(
            "SELECT peer, stream, item_key, lane, seq, interface, payload, state, attempts, next_attempt_at, last_error \
             FROM cec_deliveries WHERE {filter} ORDER BY {order}"
        );
        let rows: Vec<Row> = on_backend!(&self.db, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(peer.unwrap_or_default())
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|r| Delivery {
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
            })
            .collect())
    }

    async fn record(&self, d: &Delivery, outcome: &Outcome) -> Result<(), StoreError> {
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
        on_backend!(&self.db, pool => {
            sqlx::query(
                "UPDATE cec_deliveries SET state = $4, attempts = $5, last_error = $6, next_attempt_at = $7, \
                 delivered_at = CASE WHEN $4 = 'delivered' THEN $7 ELSE delivered_at END \
                 WHERE peer = $1 AND stream = $2 AND item_key = $3",
            )
            .bind(&d.peer)
            .bind(&d.stream)
            .bind(&d.item_key)
            .bind(state)
            .bind(attempts)
            .bind(&error)
            .bind(next)
            .execute(pool)
            .await?;
        });
        if state == "parked" {
            tracing::warn!(peer = %d.peer, item = %d.item_key, %error, "T/CEC 102 push parked");
        }
        Ok(())
    }

    async fn send(&self, peer: &PeerConfig, client: &PeerClient) -> Result<usize, StoreError> {
        let pending = self.deliveries(Some(&peer.name)).await?;
        let mut delivered = 0;
        for d in heads(&pending, Utc::now()) {
            let payload: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
            let outcome = match client.call(&d.interface, &payload).await {
                Ok((ret, answer)) => judge(&d.interface, ret, &answer),
                Err(error) => Outcome::Retry(error.to_string()),
            };
            if outcome == Outcome::Delivered {
                delivered += 1;
            }
            self.record(d, &outcome).await?;
        }
        let backlog = pending.len().saturating_sub(delivered);
        chargemesh_kit::metrics::metrics()
            .push_backlog
            .get_or_create(&chargemesh_kit::metrics::PeerLabels {
                peer: peer.name.clone(),
            })
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        Ok(delivered)
    }

    /// The parked deliveries, newest first.
    pub async fn parked(&self) -> Result<Vec<Delivery>, StoreError> {
        self.deliveries(None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

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

    #[test]
    fn only_the_head_of_each_lane_goes_and_only_when_due() {
        let d = |lane: &str, seq: i64, due: &str| Delivery {
            peer: "sx".into(),
            stream: "status".into(),
            item_key: format!("{lane}{seq}"),
            lane: lane.into(),
            seq,
            interface: "notification_stationStatus".into(),
            payload: "{}".into(),
            state: "pending".into(),
            attempts: 0,
            next_attempt_at: t(due),
            last_error: String::new(),
        };
        let pending = [
            d("C1", 1, "2026-03-01T00:00:00Z"),
            d("C1", 2, "2026-03-01T00:00:00Z"),
            d("C2", 3, "2026-03-01T00:10:00Z"),
            d("C2", 4, "2026-03-01T00:00:00Z"),
            d("C3", 5, "2026-03-01T00:00:00Z"),
        ];
        let sent: Vec<i64> = heads(&pending, t("2026-03-01T00:05:00Z"))
            .iter()
            .map(|d| d.seq)
            .collect();
        assert_eq!(
            sent,
            [1, 5],
            "C2's head waits for its backoff; C2's next waits for it"
        );
    }
}
