//! The SQL of the telemetry store; the statements run unchanged on PostgreSQL and SQLite except
//! for the log insert (one UNNEST statement on PostgreSQL, multi-row VALUES on SQLite).

use chargemesh_kit::db::BeginWrite as _;
use chargemesh_kit::tenancy::StatusScope;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use chargemesh_kit::db::{StoreError, generated};

use super::changes::{CHANGE_COLUMNS, ChangeRow, change_from_row, changes_after_sql};
use super::{
    AppendOutcome, CommandRecord, LiveStatus, Logged, QueuedCommand, StatusChange, TelemetryStore,
};
use super::{ORIGIN_LIVENESS, ORIGIN_TELEMETRY};
use crate::domain::{Body, ConnectorState, Report};
use crate::trial::{Timeline, TrialDay};

/// The telemetry store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgTelemetryStore {
    pool: sqlx::PgPool,
}

impl PgTelemetryStore {
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
    }
}

/// The telemetry store on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteTelemetryStore {
    pool: sqlx::SqlitePool,
}

impl SqliteTelemetryStore {
    pub fn new(pool: sqlx::SqlitePool) -> Self {
        Self { pool }
    }
}

/// Rows per multi-row `VALUES` statement, inside both backends' parameter limits.
pub(super) const LOG_CHUNK: usize = 500;

pub(super) use chargemesh_kit::db::Placeholders;

/// A multi-row insert of `rows` log entries with their sequences.
pub(super) fn insert_log_sql(p: Placeholders, rows: usize) -> String {
    format!(
        "INSERT INTO telemetry_log \
         (sequence, source, source_sequence, operator_id, station_id, pile_id, connector_id, kind, observed_at, received_at, body) \
         VALUES {}",
        p.rows(rows, 11)
    )
}

/// Which of `rows` (sender, sequence) pairs the log holds already.
pub(super) fn existing_sql(p: Placeholders, rows: usize) -> String {
    format!(
        "SELECT source, source_sequence FROM telemetry_log WHERE (source, source_sequence) IN (VALUES {})",
        p.rows(rows, 2)
    )
}

/// Marks `connectors` (the third parameter on) of an operator (the second) seen at the first,
/// and returns what each holds.
///
/// On PostgreSQL the rows are locked first in key order: concurrent writers (ingest flushes, the
/// heartbeat toucher, the liveness sweep) each lock many connectors over several statements, and
/// an UPDATE locks in whatever order its plan visits rows, so two of them could each hold a row
/// the other waits for (at 100,000 piles thousands of batches failed with "deadlock detected").
/// Callers pass connectors sorted, operator by operator, so every transaction locks in one order.
fn touch_sql(p: Placeholders, connectors: usize) -> String {
    match p {
        // The update names the connectors again, so it can find them by the primary key instead
        // of reading every connector of the operator to join them to the locked ones. Sent
        // unprepared (see `Placeholders`): a cached generic plan compared every row with the
        // list one by one.
        Placeholders::Numbered => format!(
            "WITH locked AS (SELECT connector_id FROM connector_status WHERE operator_id = $2 \
             AND connector_id IN ({list}) ORDER BY connector_id FOR UPDATE) \
             UPDATE connector_status SET last_seen_at = $1 FROM locked \
             WHERE connector_status.operator_id = $2 AND connector_status.connector_id IN ({list}) \
             AND connector_status.connector_id = locked.connector_id \
             RETURNING connector_status.connector_id, state, origin, changed_at",
            list = p.list(3, connectors)
        ),
        Placeholders::Positional => format!(
            "UPDATE connector_status SET last_seen_at = {} WHERE operator_id = {} AND connector_id IN ({}) \
             RETURNING connector_id, state, origin, changed_at",
            p.nth(1),
            p.nth(2),
            p.list(3, connectors)
        ),
    }
}
/// The most log sequences one read of the log scans for the kinds asked for.
const LOG_SCAN_SPAN: i64 = 20_000;
/// Takes `$1` numbers from a counter row (`$2`); the row stays locked to the commit, so numbers
/// follow commit order. Counters are always taken in the same order: the log's, then the status
/// changes'.
const ALLOCATE: &str = "UPDATE counters SET value = value + $1 WHERE name = $2 RETURNING value";
const LOG_COUNTER: &str = "telemetry_log";
const STATUS_COUNTER: &str = "status_changes";
const SILENT: &str = "SELECT operator_id, connector_id, state FROM connector_status \
    WHERE state <> 'offline' AND last_seen_at < $1 ORDER BY operator_id, connector_id LIMIT 10000";
const SILENCE: &str = "UPDATE connector_status SET state = 'offline', origin = 'liveness', fault_code = '', fault_text = '', changed_at = $5 \
    WHERE operator_id = $1 AND connector_id = $2 AND state = $3 AND last_seen_at < $4 \
    RETURNING station_id, pile_id, area_code";

/// The status a connector holds within a transaction.
#[derive(Debug, Clone)]
struct Current {
    state: ConnectorState,
    origin: String,
    changed_at: DateTime<Utc>,
}

pub(super) fn parse_state(s: &str) -> Result<ConnectorState, StoreError> {
    ConnectorState::parse(s)
        .ok_or_else(|| StoreError::Internal(format!("unknown connector state {s}")))
}

/// The reports of a batch, per connector in key order (a fixed lock order), each connector's in
/// the order they were sent.
fn per_connector(reports: &[Report]) -> BTreeMap<(&str, &str), Vec<&Report>> {
    let mut map: BTreeMap<(&str, &str), Vec<&Report>> = BTreeMap::new();
    for r in reports {
        for c in &r.connectors {
            map.entry((r.operator_id.as_str(), c.as_str()))
                .or_default()
                .push(r);
        }
    }
    map
}

macro_rules! sql_telemetry_store {
    ($store:ident, $db:ty, $placeholders:expr, $existing:path, $insert_log:path) => {
        impl $store {
            async fn allocate_and_record(
                tx: &mut sqlx::Transaction<'static, $db>,
                changes: &mut [StatusChange],
            ) -> Result<(), StoreError> {
                if changes.is_empty() {
                    return Ok(());
                }
                // The counter row is taken last and held to the commit: cursors follow commit order.
                let last: i64 = sqlx::query_scalar(ALLOCATE)
                    .bind(changes.len() as i64)
                    .bind(STATUS_COUNTER)
                    .fetch_one(&mut **tx)
                    .await?;
                let first = last - changes.len() as i64 + 1;
                for (i, c) in changes.iter_mut().enumerate() {
                    c.cursor = first + i as i64;
                }
                for chunk in changes.chunks(LOG_CHUNK) {
                    let sql = format!("INSERT INTO status_changes ({CHANGE_COLUMNS}) VALUES {}", $placeholders.rows(chunk.len(), 13));
                    let mut query = generated(sql);
                    for c in chunk {
                        query = query
                            .bind(c.cursor)
                            .bind(&c.operator_id)
                            .bind(&c.station_id)
                            .bind(&c.pile_id)
                            .bind(&c.connector_id)
                            .bind(&c.area_code)
                            .bind(c.state.as_str())
                            .bind(c.previous.map(|p| p.as_str()).unwrap_or(""))
                            .bind(&c.fault_code)
                            .bind(&c.fault_text)
                            .bind(&c.origin)
                            .bind(c.changed_at)
                            .bind(c.recorded_at);
                    }
                    query.execute(&mut **tx).await?;
                }
                Ok(())
            }
        }

        #[tonic::async_trait]
        impl TelemetryStore for $store {
            async fn append_checking(
                &self,
                reports: &[Report],
                may_be_resent: Option<&[bool]>,
                now: DateTime<Utc>,
            ) -> Result<AppendOutcome, StoreError> {
                use sqlx::Row as _;
                let mut tx = self.pool.begin_write().await?;
                let mut outcome = AppendOutcome::default();
                // Resends are what the log holds already; a resend racing its original on another
                // replica, or one not searched for, fails the log insert below, and the writer
                // tries again.
                let searched: Vec<&Report> = match may_be_resent {
                    Some(marks) => reports.iter().zip(marks).filter(|(_, m)| **m).map(|(r, _)| r).collect(),
                    None => reports.iter().collect(),
                };
                let held_before = $existing(&mut tx, &searched).await?;
                let mut batch_keys = std::collections::HashSet::new();
                let fresh: Vec<Report> = reports
                    .iter()
                    .filter(|r| {
                        let key = (r.source.clone(), r.sequence as i64);
                        !held_before.contains(&key) && batch_keys.insert(key)
                    })
                    .cloned()
                    .collect();
                outcome.stored = fresh.iter().map(|r| (r.source.clone(), r.sequence)).collect();
                let effects = per_connector(&fresh);
                // Every connector heard from is seen now; one statement per operator and chunk.
                let mut held: std::collections::HashMap<(String, String), Current> = std::collections::HashMap::new();
                let mut by_operator: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
                for (operator_id, connector_id) in effects.keys() {
                    by_operator.entry(operator_id).or_default().push(connector_id);
                }
                for (operator_id, mut connectors) in by_operator {
                    // In key order, as every writer locks them (see touch_sql).
                    connectors.sort_unstable();
                    for chunk in connectors.chunks(LOG_CHUNK) {
                        let mut query = generated(touch_sql($placeholders, chunk.len())).bind(now).bind(operator_id);
                        for c in chunk {
                            query = query.bind(*c);
                        }
                        for row in query.fetch_all(&mut *tx).await? {
                            held.insert(
                                (operator_id.to_owned(), row.try_get("connector_id")?),
                                Current {
                                    state: parse_state(row.try_get::<&str, _>("state")?)?,
                                    origin: row.try_get("origin")?,
                                    changed_at: row.try_get("changed_at")?,
                                },
                            );
                        }
                    }
                }
                let (mut updates, mut inserts) = (Vec::new(), Vec::new());
                for ((operator_id, connector_id), mine) in effects {
                    let mut current = held.remove(&(operator_id.to_owned(), connector_id.to_owned()));
                    let existed = current.is_some();
                    let mut reported_status = false;
                    let first_change = outcome.changes.len();
                    for r in &mine {
                        let Body::Status { state, fault_code, fault_text } = &r.body else { continue };
                        reported_status = true;
                        // An observation older than the reported state held is kept in the log only;
                        // a state derived from silence gives way to any report.
                        if current.as_ref().is_some_and(|c| c.origin == ORIGIN_TELEMETRY && r.observed_at < c.changed_at) {
                            continue;
                        }
                        if current.as_ref().is_some_and(|c| c.state == *state) {
                            continue;
                        }
                        outcome.changes.push(StatusChange {
                            cursor: 0,
                            operator_id: r.operator_id.clone(),
                            station_id: r.station_id.clone(),
                            pile_id: r.pile_id.clone(),
                            connector_id: connector_id.to_owned(),
                            area_code: r.area_code.clone(),
                            state: *state,
                            previous: current.as_ref().map(|c| c.state),
                            fault_code: fault_code.clone(),
                            fault_text: fault_text.clone(),
                            origin: ORIGIN_TELEMETRY.to_owned(),
                            changed_at: r.observed_at,
                            recorded_at: now,
                        });
                        current = Some(Current {
                            state: *state,
                            origin: ORIGIN_TELEMETRY.to_owned(),
                            changed_at: r.observed_at,
                        });
                    }
                    if !reported_status {
                        if current.as_ref().is_some_and(|c| c.state == ConnectorState::Offline && c.origin == ORIGIN_LIVENESS) {
                            outcome.resync.extend(mine.iter().map(|r| r.source.clone()));
                        }
                        continue;
                    }
                    let Some(last) = outcome.changes[first_change..].last().cloned() else { continue };
                    if existed {
                        updates.push(last);
                    } else {
                        inserts.push(last);
                    }
                }
                // The connectors' new states, one statement per chunk.
                for chunk in updates.chunks(LOG_CHUNK) {
                    let sql = format!(
                        "UPDATE connector_status SET state = v.column3, fault_code = v.column4, fault_text = v.column5, \
                         origin = v.column6, changed_at = v.column7 FROM (VALUES {}) AS v \
                         WHERE connector_status.operator_id = v.column1 AND connector_status.connector_id = v.column2",
                        $placeholders.rows(chunk.len(), 7)
                    );
                    let mut query = generated(sql);
                    for c in chunk {
                        query = query
                            .bind(&c.operator_id)
                            .bind(&c.connector_id)
                            .bind(c.state.as_str())
                            .bind(&c.fault_code)
                            .bind(&c.fault_text)
                            .bind(&c.origin)
                            .bind(c.changed_at);
                    }
                    query.execute(&mut *tx).await?;
                }
                for chunk in inserts.chunks(LOG_CHUNK) {
                    let sql = format!(
                        "INSERT INTO connector_status \
                         (operator_id, connector_id, station_id, pile_id, area_code, state, fault_code, fault_text, origin, changed_at, last_seen_at) \
                         VALUES {} ON CONFLICT (operator_id, connector_id) DO NOTHING",
                        $placeholders.rows(chunk.len(), 11)
                    );
                    let mut query = generated(sql);
                    for c in chunk {
                        query = query
                            .bind(&c.operator_id)
                            .bind(&c.connector_id)
                            .bind(&c.station_id)
                            .bind(&c.pile_id)
                            .bind(&c.area_code)
                            .bind(c.state.as_str())
                            .bind(&c.fault_code)
                            .bind(&c.fault_text)
                            .bind(&c.origin)
                            .bind(c.changed_at)
                            .bind(now);
                    }
                    if query.execute(&mut *tx).await?.rows_affected() < chunk.len() as u64 {
                        // Another writer made a connector's row first; the retry applies this batch.
                        return Err(StoreError::Conflict("a connector's first status".into()));
                    }
                }
                // Numbered last, in commit order: the log, then the status changes.
                if !fresh.is_empty() {
                    let last: i64 = sqlx::query_scalar(ALLOCATE)
                        .bind(fresh.len() as i64)
                        .bind(LOG_COUNTER)
                        .fetch_one(&mut *tx)
                        .await?;
                    let first = last - fresh.len() as i64 + 1;
                    $insert_log(&mut tx, &fresh, first, now).await?;
                }
                // A pile's answers settle its commands, in the same transaction as the log.
                for r in &fresh {
                    if let Body::CommandResult { command_id, outcome, detail } = &r.body {
                        sqlx::query(
                            "UPDATE pile_commands SET state = $4, answered_at = $5, detail = $6 \
                             WHERE command_id = $1 AND operator_id = $2 AND pile_id = $3 AND state IN ('queued', 'sent')",
                        )
                        .bind(command_id)
                        .bind(&r.operator_id)
                        .bind(&r.pile_id)
                        .bind(outcome.state())
                        .bind(now)
                        .bind(detail)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Self::allocate_and_record(&mut tx, &mut outcome.changes).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            async fn touch(&self, seen: &[(String, String, DateTime<Utc>)]) -> Result<Vec<(String, String)>, StoreError> {
                use sqlx::Row as _;
                let mut by_operator: BTreeMap<&str, Vec<(&str, DateTime<Utc>)>> = BTreeMap::new();
                for (operator_id, connector_id, at) in seen {
                    by_operator.entry(operator_id).or_default().push((connector_id, *at));
                }
                let mut silenced = Vec::new();
                let mut tx = self.pool.begin_write().await?;
                for (operator_id, mut connectors) in by_operator {
                    // In key order, as every writer locks them (see touch_sql).
                    connectors.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    for chunk in connectors.chunks(LOG_CHUNK) {
                        // One time per statement: the chunk's latest, at most a flush interval
                        // after its earliest.
                        let Some(at) = chunk.iter().map(|(_, at)| *at).max() else { continue };
                        let mut query = generated(touch_sql($placeholders, chunk.len())).bind(at).bind(operator_id);
                        for (connector_id, _) in chunk {
                            query = query.bind(*connector_id);
                        }
                        for row in query.fetch_all(&mut *tx).await? {
                            let state: String = row.try_get("state")?;
                            let origin: String = row.try_get("origin")?;
                            if parse_state(&state)? == ConnectorState::Offline && origin == ORIGIN_LIVENESS {
                                silenced.push((operator_id.to_owned(), row.try_get("connector_id")?));
                            }
                        }
                    }
                }
                tx.commit().await?;
                Ok(silenced)
            }

            async fn sweep_offline(&self, cutoff: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<StatusChange>, StoreError> {
                use sqlx::Row as _;
                let candidates = sqlx::query(SILENT).bind(cutoff).fetch_all(&self.pool).await?;
                if candidates.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.pool.begin_write().await?;
                let mut changes = Vec::new();
                for row in candidates {
                    let operator_id: String = row.try_get("operator_id")?;
                    let connector_id: String = row.try_get("connector_id")?;
                    let previous: String = row.try_get("state")?;
                    let updated = sqlx::query(SILENCE)
                        .bind(&operator_id)
                        .bind(&connector_id)
                        .bind(&previous)
                        .bind(cutoff)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                    let Some(updated) = updated else { continue };
                    changes.push(StatusChange {
                        cursor: 0,
                        operator_id,
                        station_id: updated.try_get("station_id")?,
                        pile_id: updated.try_get("pile_id")?,
                        connector_id,
                        area_code: updated.try_get("area_code")?,
                        state: ConnectorState::Offline,
                        previous: Some(parse_state(&previous)?),
                        fault_code: String::new(),
                        fault_text: String::new(),
                        origin: ORIGIN_LIVENESS.to_owned(),
                        changed_at: now,
                        recorded_at: now,
                    });
                }
                Self::allocate_and_record(&mut tx, &mut changes).await?;
                tx.commit().await?;
                Ok(changes)
            }

            async fn changes_after(&self, cursor: i64, upto: i64, scope: &StatusScope, limit: u32) -> Result<Vec<StatusChange>, StoreError> {
                let (sql, scoped) = changes_after_sql(scope, limit);
                let mut query = sqlx::query_as::<_, ChangeRow>(sqlx::AssertSqlSafe(sql)).bind(cursor).bind(upto);
                if let Some(value) = scoped {
                    query = query.bind(value);
                }
                query.fetch_all(&self.pool).await?.into_iter().map(change_from_row).collect()
            }

            async fn latest_cursor(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar("SELECT value FROM counters WHERE name = 'status_changes'")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn count_by_state(&self) -> Result<Vec<(String, i64)>, StoreError> {
                Ok(sqlx::query_as("SELECT state, COUNT(*) FROM connector_status GROUP BY state")
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn station_status(&self, operator_id: &str, station_id: &str) -> Result<Vec<LiveStatus>, StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT operator_id, station_id, pile_id, connector_id, state, fault_code, fault_text, origin, changed_at, last_seen_at \
                     FROM connector_status WHERE operator_id = $1 AND station_id = $2 ORDER BY pile_id, connector_id",
                )
                .bind(operator_id)
                .bind(station_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(LiveStatus {
                            operator_id: row.try_get("operator_id")?,
                            station_id: row.try_get("station_id")?,
                            pile_id: row.try_get("pile_id")?,
                            connector_id: row.try_get("connector_id")?,
                            state: parse_state(row.try_get::<&str, _>("state")?)?,
                            fault_code: row.try_get("fault_code")?,
                            fault_text: row.try_get("fault_text")?,
                            origin: row.try_get("origin")?,
                            changed_at: row.try_get("changed_at")?,
                            last_seen_at: row.try_get("last_seen_at")?,
                        })
                    })
                    .collect()
            }

            async fn timelines(&self, operator_id: &str, station_id: &str, start: DateTime<Utc>, end: DateTime<Utc>)
            -> Result<BTreeMap<String, Timeline>, StoreError> {
                use sqlx::Row as _;
                let mut out: BTreeMap<String, Timeline> = BTreeMap::new();
                let before = sqlx::query(
                    "SELECT s.connector_id, s.state FROM status_changes s \
                     WHERE s.operator_id = $1 AND s.station_id = $2 AND s.changed_at < $3 AND s.cursor = \
                     (SELECT MAX(x.cursor) FROM status_changes x \
                      WHERE x.operator_id = s.operator_id AND x.connector_id = s.connector_id AND x.changed_at < $3)",
                )
                .bind(operator_id)
                .bind(station_id)
                .bind(start)
                .fetch_all(&self.pool)
                .await?;
                for row in before {
                    out.entry(row.try_get("connector_id")?).or_default().initial =
                        Some(parse_state(row.try_get::<&str, _>("state")?)?);
                }
                let within = sqlx::query(
                    "SELECT connector_id, state, changed_at FROM status_changes \
                     WHERE operator_id = $1 AND station_id = $2 AND changed_at >= $3 AND changed_at < $4 \
                     ORDER BY changed_at, cursor",
                )
                .bind(operator_id)
                .bind(station_id)
                .bind(start)
                .bind(end)
                .fetch_all(&self.pool)
                .await?;
                for row in within {
                    out.entry(row.try_get("connector_id")?)
                        .or_default()
                        .changes
                        .push((row.try_get("changed_at")?, parse_state(row.try_get::<&str, _>("state")?)?));
                }
                Ok(out)
            }

            async fn meter_registers(&self, operator_id: &str, station_id: &str, start: DateTime<Utc>, end: DateTime<Utc>)
            -> Result<BTreeMap<(String, String), Vec<Decimal>>, StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT pile_id, connector_id, body FROM telemetry_log \
                     WHERE operator_id = $1 AND station_id = $2 AND kind = 'meter' AND observed_at >= $3 AND observed_at < $4 \
                     ORDER BY observed_at, sequence",
                )
                .bind(operator_id)
                .bind(station_id)
                .bind(start)
                .bind(end)
                .fetch_all(&self.pool)
                .await?;
                let mut out: BTreeMap<(String, String), Vec<Decimal>> = BTreeMap::new();
                for row in rows {
                    let body = row.try_get::<sqlx::types::Json<Body>, _>("body")?.0;
                    if let Body::Meter { energy_kwh, .. } = body {
                        out.entry((row.try_get("pile_id")?, row.try_get("connector_id")?))
                            .or_default()
                            .push(energy_kwh);
                    }
                }
                Ok(out)
            }

            async fn log_after(&self, after: i64, kinds: &[String], limit: u32) -> Result<(Vec<Logged>, i64), StoreError> {
                let limit = limit.clamp(1, 1000) as usize;
                // Everything up to the newest entry has committed: the log is numbered in commit
                // order. Read first, so an entry committing meanwhile is above it.
                let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(sequence) FROM telemetry_log")
                    .fetch_one(&self.pool)
                    .await?;
                let Some(newest) = newest.filter(|n| *n > after) else {
                    return Ok((Vec::new(), after));
                };
                // The kinds asked for are filtered in SQL (a follower of meter samples is not sent
                // every heartbeat and status), over a bounded span of sequences, so a read past a
                // long run of other kinds does bounded work and resumes where it stopped.
                let end = newest.min(after.saturating_add(LOG_SCAN_SPAN));
                let p = $placeholders;
                let filter = if kinds.is_empty() {
                    String::new()
                } else {
                    format!(" AND kind IN ({})", p.list(3, kinds.len()))
                };
                let sql = format!(
                    "SELECT sequence, operator_id, station_id, pile_id, connector_id, observed_at, body \
                     FROM telemetry_log WHERE sequence > {} AND sequence <= {}{filter} ORDER BY sequence LIMIT {limit}",
                    p.nth(1),
                    p.nth(2),
                );
                let mut query = sqlx::query_as::<_, (i64, String, String, String, String, DateTime<Utc>, sqlx::types::Json<Body>)>(
                    sqlx::AssertSqlSafe(sql),
                )
                .bind(after)
                .bind(end);
                for kind in kinds {
                    query = query.bind(kind);
                }
                let rows = query.fetch_all(&self.pool).await?;
                // A full page resumes after its last entry; a short one read the whole span.
                let last = if rows.len() == limit { rows.last().map_or(end, |r| r.0) } else { end };
                let out: Vec<Logged> = rows
                    .into_iter()
                    .map(|(sequence, operator_id, station_id, pile_id, connector_id, observed_at, body)| Logged {
                        sequence,
                        operator_id,
                        station_id,
                        pile_id,
                        connector_id,
                        observed_at,
                        body: body.0,
                    })
                    .collect();
                Ok((out, last))
            }

            async fn queue_command(&self, c: &QueuedCommand) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO pile_commands (command_id, operator_id, station_id, pile_id, command, queued_at, state, attempts, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, '')",
                )
                .bind(&c.command_id)
                .bind(&c.operator_id)
                .bind(&c.station_id)
                .bind(&c.pile_id)
                .bind(&c.command)
                .bind(c.queued_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn open_commands(&self, resend_before: DateTime<Utc>, limit: u32) -> Result<Vec<QueuedCommand>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT command_id, operator_id, station_id, pile_id, command, queued_at FROM pile_commands \
                     WHERE state = 'queued' OR (state = 'sent' AND sent_at < $1) \
                     ORDER BY queued_at, command_id LIMIT $2",
                )
                .bind(resend_before)
                .bind(i64::from(limit.clamp(1, 1000)))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn claim_command(&self, command_id: &str, now: DateTime<Utc>, resend_before: DateTime<Utc>, max_attempts: i32) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE pile_commands SET state = 'sent', sent_at = $2, attempts = attempts + 1 \
                     WHERE command_id = $1 AND attempts < $4 \
                     AND (state = 'queued' OR (state = 'sent' AND sent_at < $3))",
                )
                .bind(command_id)
                .bind(now)
                .bind(resend_before)
                .bind(max_attempts)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn release_command(&self, command_id: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE pile_commands SET state = 'queued', attempts = attempts - 1 \
                     WHERE command_id = $1 AND state = 'sent'",
                )
                .bind(command_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn expire_commands(&self, resend_before: DateTime<Utc>, max_attempts: i32) -> Result<u64, StoreError> {
                let done = sqlx::query(
                    "UPDATE pile_commands SET state = 'timed_out', \
                     detail = 'sent ' || attempts || ' times and never answered' \
                     WHERE state = 'sent' AND sent_at < $1 AND attempts >= $2",
                )
                .bind(resend_before)
                .bind(max_attempts)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn command(&self, operator_id: &str, command_id: &str) -> Result<Option<CommandRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT command_id, operator_id, station_id, pile_id, command, queued_at, state, attempts, sent_at, answered_at, detail \
                     FROM pile_commands WHERE operator_id = $1 AND command_id = $2",
                )
                .bind(operator_id)
                .bind(command_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn link_reports(&self, operator_id: &str, station_id: &str, start: DateTime<Utc>, end: DateTime<Utc>)
            -> Result<Vec<(String, DateTime<Utc>, Body)>, StoreError> {
                let rows: Vec<(String, DateTime<Utc>, sqlx::types::Json<Body>)> = sqlx::query_as(
                    "SELECT pile_id, observed_at, body FROM telemetry_log \
                     WHERE operator_id = $1 AND station_id = $2 AND kind = 'link' AND observed_at >= $3 AND observed_at < $4 \
                     ORDER BY observed_at, sequence",
                )
                .bind(operator_id)
                .bind(station_id)
                .bind(start)
                .bind(end)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(pile, at, body)| (pile, at, body.0)).collect())
            }

            async fn publish_trial_day(&self, day: &TrialDay, now: DateTime<Utc>) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO trial_days (operator_id, station_id, day, figures, published_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (operator_id, station_id, day) DO NOTHING",
                )
                .bind(&day.operator_id)
                .bind(&day.station_id)
                .bind(day.day.to_string())
                .bind(sqlx::types::Json(day))
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn trial_days(&self, operator_id: &str, station_id: &str) -> Result<Vec<TrialDay>, StoreError> {
                use sqlx::Row as _;
                let rows = sqlx::query(
                    "SELECT figures FROM trial_days WHERE operator_id = $1 AND station_id = $2 ORDER BY day",
                )
                .bind(operator_id)
                .bind(station_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| Ok(row.try_get::<sqlx::types::Json<TrialDay>, _>("figures")?.0))
                    .collect()
            }
        }
    };
}

sql_telemetry_store!(
    PgTelemetryStore,
    sqlx::Postgres,
    Placeholders::Numbered,
    super::log::existing_postgres,
    super::log::insert_log_postgres
);
sql_telemetry_store!(
    SqliteTelemetryStore,
    sqlx::Sqlite,
    Placeholders::Positional,
    super::log::existing_sqlite,
    super::log::insert_log_sqlite
);
