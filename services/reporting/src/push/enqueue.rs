//! What goes into a peer's outbox: the status changes past its position, every finished order
//! version, each running session's progress per period and each station's StationInfo version,
//! each as one delivery row. An item outside the peer's scope (another area, another operator) is
//! recorded as `skipped`, so it is considered once and never stands in front of the items after
//! it; an item whose station the directory does not know yet is left for a later pass without
//! stopping the ones behind it.

use chargemesh_kit::db::BeginWrite as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prost::Message as _;
use serde_json::{Value, json};

use chargemesh_cec::peers::PeerConfig;
use chargemesh_kit::db::{Database, Placeholders, StoreError, generated};
use chargemesh_proto::journal::v1 as jpb;

use super::{INSERT, Item, Pusher, in_scope};

/// Candidates read per query; a pass reads on while a page brings something new.
const PAGE: i64 = 500;

/// Records an item as considered and outside the peer's scope.
const SKIP: &str = "INSERT INTO cec_deliveries (peer, stream, item_key, lane, seq, interface, payload, state, \
    attempts, next_attempt_at, last_error, created_at) VALUES ($1, $2, $3, $4, $5, $6, '', 'skipped', 0, $7, '', $7) \
    ON CONFLICT DO NOTHING";

/// Status deliveries inserted by one statement (six parameters each).
const STATUS_ROWS: usize = 200;
/// The most history sequences one pass reads for status pushes; a longer run out of the
/// peer's scope is passed over a span a pass.
const STATUS_SPAN: i64 = 20_000;

/// Inserts `rows` status deliveries, each bound as (peer, key, connector, sequence, payload,
/// now); one already there is left as it is.
fn insert_status_sql(rows: usize) -> String {
    let values = (0..rows)
        .map(|row| {
            let p = |n: usize| Placeholders::Numbered.nth(row * 6 + n);
            format!(
                "({}, 'status', {}, {}, {}, 'notification_stationStatus', {}, 'pending', 0, {}, '', {})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(6)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO cec_deliveries (peer, stream, item_key, lane, seq, interface, payload, state, \
         attempts, next_attempt_at, last_error, created_at) VALUES {values} ON CONFLICT DO NOTHING"
    )
}

/// Whether the peer takes an item of a station: `None` while the station's area is not known.
fn scope_of(
    peer: &PeerConfig,
    areas: &HashMap<(String, String), String>,
    operator_id: &str,
    station_id: &str,
) -> Option<bool> {
    let area = areas.get(&(operator_id.to_owned(), station_id.to_owned()))?;
    Some(in_scope(peer, operator_id, area))
}

fn payload_time(ts: &Option<prost_types::Timestamp>) -> String {
    ts.as_ref()
        .and_then(chargemesh_kit::time::from_timestamp)
        .map(chargemesh_cec::payload_time)
        .unwrap_or_default()
}

/// How often skipped progress reports are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What the pusher remembers of the station directory between passes (it runs every second,
/// and at once again while a backlog drains): read again only when the directory's generation
/// moved, which every listing that changes a station does in its own transaction.
#[derive(Debug, Default)]
pub(super) struct Memo {
    /// Each station's area, as of a generation.
    areas: Option<(i64, Arc<Areas>)>,
    /// Per peer, the generation whose StationInfo versions it was last considered for.
    station_infos: HashMap<String, i64>,
    /// When skipped progress reports were last pruned.
    pruned_at: Option<Instant>,
}

/// Each station's area, by (operator, station).
type Areas = HashMap<(String, String), String>;

impl Pusher {
    /// Everything new for the peer, into its outbox.
    pub(super) async fn enqueue(&self, peer: &PeerConfig) -> Result<(), StoreError> {
        // Read before the directory is: a listing committing after it moves it again.
        let generation = self.store.directory_generation().await?;
        self.enqueue_status(peer).await?;
        let areas = self.areas(generation).await?;
        self.enqueue_orders(peer, &areas).await?;
        self.enqueue_charge_status(peer, &areas).await?;
        if self.memo().station_infos.get(&peer.name) != Some(&generation) {
            self.enqueue_station_info(peer).await?;
            self.memo()
                .station_infos
                .insert(peer.name.clone(), generation);
        }
        self.prune_skipped().await
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Memo> {
        // The memo holds only what can be read again: a panic while it was held spoils nothing.
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The status changes kept since the peer's position, as deliveries, with the new position,
    /// in one transaction.
    async fn enqueue_status(&self, peer: &PeerConfig) -> Result<(), StoreError> {
        type Row = (i64, String, String, String, String, i32, DateTime<Utc>);
        let now = Utc::now();
        on_backend!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let position: Option<i64> = sqlx::query_scalar(
                "SELECT position FROM cec_push_positions WHERE peer = $1 AND stream = 'status'",
            )
            .bind(&peer.name)
            .fetch_optional(&mut *tx)
            .await?;
            let after = position.unwrap_or(0);
            let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(sequence) FROM status_history")
                .fetch_one(&mut *tx)
                .await?;
            let Some(newest) = newest.filter(|n| *n > after) else {
                return Ok(());
            };
            // A closed range of the key, so the read is a range scan whatever the planner
            // believes of the table (with only a lower bound, a plan made while the history was
            // young read all of it and sorted it on every pass).
            let end = newest.min(after.saturating_add(STATUS_SPAN));
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT sequence, operator_id, area_code, station_id, connector_id, cec_status, changed_at \
                 FROM status_history WHERE sequence > $1 AND sequence <= $2 ORDER BY sequence LIMIT 1000",
            )
            .bind(after)
            .bind(end)
            .fetch_all(&mut *tx)
            .await?;
            // A full page resumes after its last row; otherwise the whole span was read.
            let last = match rows.last() {
                Some(row) if rows.len() >= 1000 => row.0,
                _ => end,
            };
            // The history carries each change's area: out of scope is passed over here.
            let pushed: Vec<(i64, &String, String)> = rows
                .iter()
                .filter(|(_, operator_id, area_code, ..)| in_scope(peer, operator_id, area_code))
                .map(|(sequence, _, _, _, connector, status, _)| {
                    let payload = peer.dialect.status_push(json!({
                        "ConnectorID": connector,
                        "Status": status,
                        "ParkStatus": 0,
                        "LockStatus": 0,
                    }));
                    (*sequence, connector, payload.to_string())
                })
                .collect();
            // Many rows to a statement: a backlog of a reconnecting fleet's first statuses is
            // thousands of them.
            for chunk in pushed.chunks(STATUS_ROWS) {
                let mut query =
                    generated(insert_status_sql(chunk.len()));
                for (sequence, connector, payload) in chunk {
                    query = query
                        .bind(&peer.name)
                        .bind(sequence.to_string())
                        .bind(*connector)
                        .bind(*sequence)
                        .bind(payload)
                        .bind(now);
                }
                query.execute(&mut *tx).await?;
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

    /// Every finished charge order version not yet considered for the peer, oldest first.
    async fn enqueue_orders(
        &self,
        peer: &PeerConfig,
        areas: &HashMap<(String, String), String>,
    ) -> Result<(), StoreError> {
        type Row = (String, String, i64, Vec<u8>);
        let now = Utc::now();
        let mut offset = 0;
        loop {
            let rows: Vec<Row> = on_backend!(&self.db, pool => sqlx::query_as(
                "SELECT f.operator_id, f.subject_id, f.version, f.fact FROM facts f \
                 WHERE f.kind = 'charge_order' AND f.until IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM cec_deliveries d WHERE d.peer = $1 AND d.stream = 'order' \
                  AND d.item_key = f.subject_id || '@' || CAST(f.version AS TEXT)) \
                 ORDER BY f.at, f.subject_id, f.version LIMIT $2 OFFSET $3",
            )
            .bind(&peer.name)
            .bind(PAGE)
            .bind(offset)
            .fetch_all(pool)
            .await?);
            let full = rows.len() as i64 == PAGE;
            let mut waiting = 0;
            for (operator_id, order_id, version, bytes) in rows {
                let Ok(jpb::Fact {
                    fact: Some(jpb::fact::Fact::ChargeOrder(o)),
                }) = jpb::Fact::decode(bytes.as_slice())
                else {
                    self.skip(
                        peer,
                        "order",
                        &format!("{order_id}@{version}"),
                        &order_id,
                        version,
                        now,
                    )
                    .await?;
                    continue;
                };
                let key = format!("{order_id}@{version}");
                match scope_of(peer, areas, &operator_id, &o.station_id) {
                    None => {
                        waiting += 1;
                        continue;
                    }
                    Some(false) => {
                        self.skip(peer, "order", &key, &order_id, version, now)
                            .await?;
                        continue;
                    }
                    Some(true) => {}
                }
                let number = |text: &str| text.parse::<f64>().unwrap_or(0.0);
                let mut payload = json!({
                    "StartChargeSeq": order_id,
                    "ConnectorID": o.connector_id,
                    "StartTime": payload_time(&o.start_time),
                    "EndTime": payload_time(&o.end_time),
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
                        key,
                        lane: &order_id,
                        seq: version,
                        interface: "notification_charge_order_info",
                    },
                    &payload,
                    now,
                )
                .await?;
            }
            // Rows left where they were (their station unknown yet) come back on the next page
            // at the same place: step over them.
            offset += waiting;
            if !full {
                return Ok(());
            }
        }
    }

    /// One progress report per running session and period of `charge_status_every_s`.
    async fn enqueue_charge_status(
        &self,
        peer: &PeerConfig,
        areas: &HashMap<(String, String), String>,
    ) -> Result<(), StoreError> {
        type Row = (String, String, Vec<u8>);
        let now = Utc::now();
        let every = i64::try_from(self.config.charge_status_every_s.max(1)).unwrap_or(300);
        let slot = now.timestamp().div_euclid(every);
        let mut offset = 0;
        loop {
            let rows: Vec<Row> = on_backend!(&self.db, pool => sqlx::query_as(
                "SELECT f.operator_id, f.subject_id, f.fact FROM facts f \
                 WHERE f.kind = 'charge_session' AND f.until IS NULL AND NOT EXISTS \
                 (SELECT 1 FROM cec_deliveries d WHERE d.peer = $1 AND d.stream = 'charge' \
                  AND d.lane = f.subject_id AND d.seq = $2) \
                 ORDER BY f.subject_id LIMIT $3 OFFSET $4",
            )
            .bind(&peer.name)
            .bind(slot)
            .bind(PAGE)
            .bind(offset)
            .fetch_all(pool)
            .await?);
            let full = rows.len() as i64 == PAGE;
            let mut waiting = 0;
            for (operator_id, order_id, bytes) in rows {
                let key = format!("{order_id}@{slot}");
                let Ok(jpb::Fact {
                    fact: Some(jpb::fact::Fact::ChargeSession(c)),
                }) = jpb::Fact::decode(bytes.as_slice())
                else {
                    self.skip(peer, "charge", &key, &order_id, slot, now)
                        .await?;
                    continue;
                };
                match scope_of(peer, areas, &operator_id, &c.station_id) {
                    None => {
                        waiting += 1;
                        continue;
                    }
                    Some(false) => {
                        self.skip(peer, "charge", &key, &order_id, slot, now)
                            .await?;
                        continue;
                    }
                    Some(true) => {}
                }
                let mut payload = json!({
                    "StartChargeSeq": order_id,
                    "StartChargeSeqStat": 2,
                    "ConnectorID": c.connector_id,
                    "ConnectorStatus": 3,
                    "CurrentA": 0,
                    "VoltageA": 0,
                    "Soc": 0,
                    "StartTime": payload_time(&c.start_time),
                    "EndTime": payload_time(&c.sample_time),
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
                        key,
                        lane: &order_id,
                        seq: slot,
                        interface: "notification_equip_charge_status",
                    },
                    &payload,
                    now,
                )
                .await?;
            }
            offset += waiting;
            if !full {
                return Ok(());
            }
        }
    }

    /// Each station whose StationInfo version the peer has not been considered for. A delivery
    /// is looked up by its key (`lane@version`, the outbox's primary key): matched on lane and
    /// seq instead, the check had no index over delivered rows and scanned the outbox once per
    /// station (over a second a pass at 1,000 stations and 100,000 piles).
    async fn enqueue_station_info(&self, peer: &PeerConfig) -> Result<(), StoreError> {
        type Row = (String, String, String, String, i64);
        let now = Utc::now();
        loop {
            let rows: Vec<Row> = on_backend!(&self.db, pool => sqlx::query_as(
                "SELECT s.operator_id, s.station_id, s.area_code, s.info, s.version FROM station_infos s \
                 WHERE NOT EXISTS (SELECT 1 FROM cec_deliveries d WHERE d.peer = $1 AND d.stream = 'station' \
                 AND d.item_key = s.operator_id || '/' || s.station_id || '@' || CAST(s.version AS TEXT)) \
                 ORDER BY s.operator_id, s.station_id LIMIT $2",
            )
            .bind(&peer.name)
            .bind(PAGE)
            .fetch_all(pool)
            .await?);
            let full = rows.len() as i64 == PAGE;
            for (operator_id, station_id, area_code, info, version) in rows {
                let lane = format!("{operator_id}/{station_id}");
                let key = format!("{lane}@{version}");
                if !in_scope(peer, &operator_id, &area_code) {
                    self.skip(peer, "station", &key, &lane, version, now)
                        .await?;
                    continue;
                }
                let info: Value = serde_json::from_str(&info).unwrap_or(Value::Null);
                let mut payload = json!({ "StationInfo": info });
                peer.dialect.outbound(&mut payload);
                self.queue(
                    peer,
                    Item {
                        stream: "station",
                        key,
                        lane: &lane,
                        seq: version,
                        interface: "notification_stationInfo",
                    },
                    &payload,
                    now,
                )
                .await?;
            }
            if !full {
                return Ok(());
            }
        }
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

    /// Records an item as outside the peer's scope, so it is not considered again.
    async fn skip(
        &self,
        peer: &PeerConfig,
        stream: &str,
        key: &str,
        lane: &str,
        seq: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        on_backend!(&self.db, pool => {
            sqlx::query(SKIP)
                .bind(&peer.name)
                .bind(stream)
                .bind(key)
                .bind(lane)
                .bind(seq)
                .bind("")
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Skipped progress reports are only needed while their period may still come up; pruned
    /// once a minute.
    async fn prune_skipped(&self) -> Result<(), StoreError> {
        if self
            .memo()
            .pruned_at
            .is_some_and(|at| at.elapsed() < PRUNE_EVERY)
        {
            return Ok(());
        }
        let before = Utc::now() - chrono::Duration::days(1);
        on_backend!(&self.db, pool => {
            sqlx::query(
                "DELETE FROM cec_deliveries WHERE state = 'skipped' AND stream = 'charge' AND created_at < $1",
            )
            .bind(before)
            .execute(pool)
            .await?;
        });
        self.memo().pruned_at = Some(Instant::now());
        Ok(())
    }

    /// Each station's area, for the peers' scopes, as of `generation` or later.
    async fn areas(&self, generation: i64) -> Result<Arc<Areas>, StoreError> {
        if let Some((read, areas)) = &self.memo().areas
            && *read == generation
        {
            return Ok(areas.clone());
        }
        let areas: Areas = on_backend!(&self.db, pool => {
            let stations: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT operator_id, station_id, area_code FROM stations",
            )
            .fetch_all(pool)
            .await?;
            stations.into_iter().map(|(o, s, a)| ((o, s), a)).collect()
        });
        let areas = Arc::new(areas);
        self.memo().areas = Some((generation, areas.clone()));
        Ok(areas)
    }
}
