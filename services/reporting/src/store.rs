//! Reporting's store: the status history (append-only, idempotent on the source cursor), the
//! latest fact of each journaled record (replaced only by a greater version), each journal's
//! position, the station directory and the exemptions. The statements run unchanged on
//! PostgreSQL and SQLite.

use chargemesh_kit::db::BeginWrite as _;
use chrono::{DateTime, Utc};

use chargemesh_kit::db::{Database, Migrations, StoreError};
use chargemesh_kit::paging::{Keyed, Keyset};
use chargemesh_kit::time::{from_timestamp, to_timestamp};
use chargemesh_proto::journal::v1 as jpb;
use chargemesh_proto::regulator::v2 as pb;
use prost::Message as _;

use crate::domain::exemption::Exemption;
use crate::domain::period::Span;

/// A station as the directory keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationRow {
    pub operator_id: String,
    pub station_id: String,
    pub area_code: String,
    pub pile_ids: Vec<String>,
}

fn state_name(e: &Exemption) -> String {
    format!("{:?}", e.state).to_lowercase()
}

pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
};

/// Which part of the history to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    pub operator_id: String,
    pub station_id: String,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Only rows after this sequence (paging).
    pub after: i64,
    pub limit: u32,
}

#[tonic::async_trait]
pub trait ReportingStore: Send + Sync + std::fmt::Debug + 'static {
    /// Records changes in order; ones recorded before are skipped. Returns how many were new.
    async fn record(&self, changes: &[pb::StatusChange]) -> Result<usize, StoreError>;
    /// The source cursor of the newest recorded change.
    async fn last_cursor(&self) -> Result<Option<String>, StoreError>;
    /// The history of a station, oldest first, with each row's sequence.
    async fn history(
        &self,
        query: &HistoryQuery,
    ) -> Result<Vec<(i64, pb::StatusChange)>, StoreError>;
    /// The state of each connector of a station at its last change before `before`.
    async fn states_before(
        &self,
        operator_id: &str,
        station_id: &str,
        before: DateTime<Utc>,
    ) -> Result<Vec<(String, String, i32)>, StoreError>;

    /// Keeps the journal entries of `source`: each record's fact is replaced only by a greater
    /// version, so an entry read again changes nothing. Returns how many facts changed.
    async fn apply(&self, source: &str, entries: &[jpb::JournalEntry])
    -> Result<usize, StoreError>;
    /// How far the journal of `source` was read (0 before anything).
    async fn position(&self, source: &str) -> Result<i64, StoreError>;
    async fn set_position(&self, source: &str, position: i64) -> Result<(), StoreError>;
    /// The facts of a kind that matter to `span`: begun before its end and not over before its
    /// start.
    async fn facts(
        &self,
        operator_id: &str,
        kind: &str,
        span: &Span,
    ) -> Result<Vec<jpb::fact::Fact>, StoreError>;

    /// Keeps each station's area and piles; returns how many changed. A listing that changed
    /// anything moves the directory's generation (see `DIRECTORY_GENERATION`).
    async fn put_stations(&self, rows: &[StationRow]) -> Result<usize, StoreError>;
    /// Keeps each station's StationInfo; a station whose info changed gets the next version.
    /// Returns how many changed.
    async fn put_station_infos(
        &self,
        infos: &[(String, String, String, String)],
    ) -> Result<usize, StoreError>;
    async fn stations(&self) -> Result<Vec<StationRow>, StoreError>;
    /// The station directory's generation: it moves with every listing that changed a station
    /// or its StationInfo.
    async fn directory_generation(&self) -> Result<i64, StoreError>;

    async fn create_exemption(&self, e: &Exemption) -> Result<(), StoreError>;
    async fn exemption(
        &self,
        operator_id: &str,
        exemption_id: &str,
    ) -> Result<Option<(Exemption, i64)>, StoreError>;
    async fn update_exemption(&self, e: &Exemption, version: i64) -> Result<(), StoreError>;
    /// An operator's approved exemptions that overlap `span`: what a report leaves out.
    async fn approved_exemptions(
        &self,
        operator_id: &str,
        span: &Span,
    ) -> Result<Vec<Exemption>, StoreError>;
    /// A page of an operator's exemptions, the latest start first; only those in `state`
    /// ("declared", "approved", "rejected") when given.
    async fn exemptions(
        &self,
        operator_id: &str,
        state: Option<&str>,
        page: &Keyset,
    ) -> Result<Vec<Keyed<Exemption>>, StoreError>;
}

const UPSERT_FACT: &str = "INSERT INTO facts \
    (kind, operator_id, subject_id, source, version, entry_id, station_id, at, until, fact) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
    ON CONFLICT (kind, operator_id, subject_id) DO UPDATE SET source = excluded.source, \
    version = excluded.version, entry_id = excluded.entry_id, station_id = excluded.station_id, \
    at = excluded.at, until = excluded.until, fact = excluded.fact \
    WHERE facts.version < excluded.version";

/// Moves the station directory's generation: readers of the directory that remember the
/// generation they read (the pusher) read it again.
const BUMP_GENERATION: &str =
    "UPDATE directory_generation SET generation = generation + 1 WHERE id = 1";
/// The station directory's generation.
const DIRECTORY_GENERATION: &str = "SELECT generation FROM directory_generation WHERE id = 1";

const INSERT: &str = "INSERT INTO status_history \
    (source_cursor, operator_id, station_id, pile_id, connector_id, area_code, state, previous_state, cec_status, \
     fault_code, fault_text, origin, changed_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT (source_cursor) DO NOTHING";

macro_rules! sql_reporting_store {
    ($store:ident, $pool:ty) => {
        #[derive(Debug, Clone)]
        pub struct $store {
            pool: $pool,
        }

        impl $store {
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }
        }

        #[tonic::async_trait]
        impl ReportingStore for $store {
            async fn record(&self, changes: &[pb::StatusChange]) -> Result<usize, StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let mut new = 0;
                for c in changes {
                    let s = c.status.clone().unwrap_or_default();
                    let at = s
                        .change_time
                        .as_ref()
                        .and_then(from_timestamp)
                        .ok_or_else(|| StoreError::Internal("a status change without a time".into()))?;
                    let done = sqlx::query(INSERT)
                        .bind(&c.cursor)
                        .bind(&s.operator_id)
                        .bind(&s.station_id)
                        .bind(&s.pile_id)
                        .bind(&s.connector_id)
                        .bind(&s.area_code)
                        .bind(s.state)
                        .bind(c.previous_state)
                        .bind(s.cec_status)
                        .bind(&s.fault_code)
                        .bind(&s.fault_text)
                        .bind(&c.origin)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    new += done.rows_affected() as usize;
                }
                tx.commit().await?;
                Ok(new)
            }

            async fn last_cursor(&self) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT source_cursor FROM status_history ORDER BY sequence DESC LIMIT 1")
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn history(&self, q: &HistoryQuery) -> Result<Vec<(i64, pb::StatusChange)>, StoreError> {
                use sqlx::Row as _;
                // Only the bounds given become conditions: no sentinel times, which the two
                // backends would compare differently.
                let mut conditions = vec!["operator_id = $1", "station_id = $2", "sequence > $3"];
                if q.start.is_some() {
                    conditions.push("changed_at >= $4");
                }
                if q.end.is_some() {
                    conditions.push(if q.start.is_some() { "changed_at < $5" } else { "changed_at < $4" });
                }
                let sql = format!(
                    "SELECT sequence, source_cursor, operator_id, station_id, pile_id, connector_id, area_code, state, \
                     previous_state, cec_status, fault_code, fault_text, origin, changed_at FROM status_history \
                     WHERE {} ORDER BY sequence LIMIT {}",
                    conditions.join(" AND "),
                    q.limit.max(1)
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&q.operator_id)
                    .bind(&q.station_id)
                    .bind(q.after);
                for bound in [q.start, q.end].into_iter().flatten() {
                    query = query.bind(bound);
                }
                let rows = query.fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        let changed_at: DateTime<Utc> = row.try_get("changed_at")?;
                        Ok((
                            row.try_get("sequence")?,
                            pb::StatusChange {
                                cursor: row.try_get("source_cursor")?,
                                status: Some(pb::ConnectorStatusInfo {
                                    operator_id: row.try_get("operator_id")?,
                                    station_id: row.try_get("station_id")?,
                                    pile_id: row.try_get("pile_id")?,
                                    connector_id: row.try_get("connector_id")?,
                                    state: row.try_get("state")?,
                                    cec_status: row.try_get("cec_status")?,
                                    fault_code: row.try_get("fault_code")?,
                                    fault_text: row.try_get("fault_text")?,
                                    change_time: Some(to_timestamp(changed_at)),
                                    last_seen_time: None,
                                    area_code: row.try_get("area_code")?,
                                }),
                                previous_state: row.try_get("previous_state")?,
                                origin: row.try_get("origin")?,
                            },
                        ))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(StoreError::from)
            }

            async fn states_before(&self, operator_id: &str, station_id: &str, before: DateTime<Utc>)
            -> Result<Vec<(String, String, i32)>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT h.pile_id, h.connector_id, h.state FROM status_history h JOIN \
                     (SELECT pile_id, connector_id, MAX(sequence) AS last FROM status_history \
                      WHERE operator_id = $1 AND station_id = $2 AND changed_at < $3 \
                      GROUP BY pile_id, connector_id) x ON h.sequence = x.last",
                )
                .bind(operator_id)
                .bind(station_id)
                .bind(before)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn apply(&self, source: &str, entries: &[jpb::JournalEntry]) -> Result<usize, StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let mut changed = 0;
                for e in entries {
                    let Some(fact) = e.fact.as_ref().and_then(|f| f.fact.as_ref()) else {
                        continue;
                    };
                    let Some((station, at, until)) = crate::facts::window(fact) else {
                        tracing::warn!(entry = %e.entry_id, "a journal entry without its times; skipped");
                        continue;
                    };
                    let encoded = jpb::Fact { fact: Some(fact.clone()) }.encode_to_vec();
                    let done = sqlx::query(UPSERT_FACT)
                        .bind(&e.kind)
                        .bind(&e.operator_id)
                        .bind(&e.subject_id)
                        .bind(source)
                        .bind(e.version)
                        .bind(&e.entry_id)
                        .bind(station)
                        .bind(at)
                        .bind(until)
                        .bind(encoded)
                        .execute(&mut *tx)
                        .await?;
                    changed += done.rows_affected() as usize;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn position(&self, source: &str) -> Result<i64, StoreError> {
                let position: Option<i64> =
                    sqlx::query_scalar("SELECT position FROM journal_positions WHERE source = $1")
                        .bind(source)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(position.unwrap_or(0))
            }

            async fn set_position(&self, source: &str, position: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO journal_positions (source, position) VALUES ($1, $2) \
                     ON CONFLICT (source) DO UPDATE SET position = excluded.position",
                )
                .bind(source)
                .bind(position)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn facts(&self, operator_id: &str, kind: &str, span: &Span) -> Result<Vec<jpb::fact::Fact>, StoreError> {
                let rows: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT fact FROM facts WHERE operator_id = $1 AND kind = $2 AND at < $3 \
                     AND (until IS NULL OR until >= $4) ORDER BY at, subject_id",
                )
                .bind(operator_id)
                .bind(kind)
                .bind(span.end)
                .bind(span.start)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|bytes| {
                        jpb::Fact::decode(bytes.as_slice())
                            .map_err(|e| StoreError::Internal(format!("a kept fact: {e}")))
                            .map(|f| f.fact)
                    })
                    .filter_map(Result::transpose)
                    .collect()
            }

            async fn put_stations(&self, rows: &[StationRow]) -> Result<usize, StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let mut changed = 0;
                for r in rows {
                    // An unchanged station is not written: the listing runs every 30 s.
                    let done = sqlx::query(
                        "INSERT INTO stations (operator_id, station_id, area_code, pile_ids) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (operator_id, station_id) DO UPDATE SET area_code = excluded.area_code, \
                         pile_ids = excluded.pile_ids \
                         WHERE stations.area_code <> excluded.area_code OR stations.pile_ids <> excluded.pile_ids",
                    )
                    .bind(&r.operator_id)
                    .bind(&r.station_id)
                    .bind(&r.area_code)
                    .bind(r.pile_ids.join(","))
                    .execute(&mut *tx)
                    .await?;
                    changed += done.rows_affected() as usize;
                }
                if changed > 0 {
                    sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn put_station_infos(&self, infos: &[(String, String, String, String)]) -> Result<usize, StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let mut changed = 0;
                for (operator_id, station_id, area_code, info) in infos {
                    let done = sqlx::query(
                        "INSERT INTO station_infos (operator_id, station_id, area_code, info, version) \
                         VALUES ($1, $2, $3, $4, 1) ON CONFLICT (operator_id, station_id) DO UPDATE \
                         SET area_code = excluded.area_code, info = excluded.info, version = station_infos.version + 1 \
                         WHERE station_infos.info <> excluded.info",
                    )
                    .bind(operator_id)
                    .bind(station_id)
                    .bind(area_code)
                    .bind(info)
                    .execute(&mut *tx)
                    .await?;
                    changed += done.rows_affected() as usize;
                }
                if changed > 0 {
                    sqlx::query(BUMP_GENERATION).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            async fn directory_generation(&self) -> Result<i64, StoreError> {
                Ok(sqlx::query_scalar(DIRECTORY_GENERATION).fetch_one(&self.pool).await?)
            }

            async fn stations(&self) -> Result<Vec<StationRow>, StoreError> {
                let rows: Vec<(String, String, String, String)> = sqlx::query_as(
                    "SELECT operator_id, station_id, area_code, pile_ids FROM stations ORDER BY operator_id, station_id",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(operator_id, station_id, area_code, piles)| StationRow {
                        operator_id,
                        station_id,
                        area_code,
                        pile_ids: piles.split(',').filter(|p| !p.is_empty()).map(str::to_owned).collect(),
                    })
                    .collect())
            }

            async fn create_exemption(&self, e: &Exemption) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO exemptions (operator_id, exemption_id, state, version, start_at, end_at, doc) \
                     VALUES ($1, $2, $3, 1, $4, $5, $6)",
                )
                .bind(&e.operator_id)
                .bind(&e.exemption_id)
                .bind(state_name(e))
                .bind(e.start)
                .bind(e.end)
                .bind(sqlx::types::Json(e))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn exemption(&self, operator_id: &str, exemption_id: &str) -> Result<Option<(Exemption, i64)>, StoreError> {
                let row: Option<(sqlx::types::Json<Exemption>, i64)> = sqlx::query_as(
                    "SELECT doc, version FROM exemptions WHERE operator_id = $1 AND exemption_id = $2",
                )
                .bind(operator_id)
                .bind(exemption_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(doc, version)| (doc.0, version)))
            }

            async fn update_exemption(&self, e: &Exemption, version: i64) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE exemptions SET state = $3, doc = $4, version = version + 1 \
                     WHERE operator_id = $1 AND exemption_id = $2 AND version = $5",
                )
                .bind(&e.operator_id)
                .bind(&e.exemption_id)
                .bind(state_name(e))
                .bind(sqlx::types::Json(e))
                .bind(version)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("exemption {}", e.exemption_id)));
                }
                Ok(())
            }

            async fn approved_exemptions(&self, operator_id: &str, span: &Span) -> Result<Vec<Exemption>, StoreError> {
                let rows: Vec<sqlx::types::Json<Exemption>> = sqlx::query_scalar(
                    "SELECT doc FROM exemptions WHERE operator_id = $1 AND state = 'approved' \
                     AND start_at < $3 AND end_at > $2 ORDER BY start_at, exemption_id",
                )
                .bind(operator_id)
                .bind(span.start)
                .bind(span.end)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn exemptions(&self, operator_id: &str, state: Option<&str>, page: &Keyset) -> Result<Vec<Keyed<Exemption>>, StoreError> {
                let rows: Vec<(sqlx::types::Json<Exemption>, DateTime<Utc>, String)> = sqlx::query_as(
                    "SELECT doc, start_at, exemption_id FROM exemptions WHERE operator_id = $1 \
                     AND ($2 = '' OR state = $2) \
                     AND (start_at < $3 OR (start_at = $3 AND exemption_id < $4)) \
                     ORDER BY start_at DESC, exemption_id DESC LIMIT $5",
                )
                .bind(operator_id)
                .bind(state.unwrap_or(""))
                .bind(page.before_at)
                .bind(&page.before_id)
                .bind(page.fetch())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(doc, at, id)| Keyed { item: doc.0, at, id })
                    .collect())
            }
        }
    };
}

sql_reporting_store!(PgReportingStore, sqlx::PgPool);
sql_reporting_store!(SqliteReportingStore, sqlx::SqlitePool);

/// Migrates the database and returns the store for its backend.
pub async fn open(database: &Database) -> Result<std::sync::Arc<dyn ReportingStore>, StoreError> {
    database.migrate(MIGRATIONS).await?;
    Ok(for_database(database))
}

/// The store for a migrated database's backend.
pub fn for_database(database: &Database) -> std::sync::Arc<dyn ReportingStore> {
    match database {
        Database::Postgres(pool) => std::sync::Arc::new(PgReportingStore::new(pool.clone())),
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteReportingStore::new(pool.clone())),
    }
}
