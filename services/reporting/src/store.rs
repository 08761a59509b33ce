//! Reporting's store: the status history, append-only and idempotent on the source cursor. The
//! statements run unchanged on PostgreSQL and SQLite.

use chrono::{DateTime, Utc};

use chargemesh_kit::db::{Database, Migrations, StoreError};
use chargemesh_kit::time::{from_timestamp, to_timestamp};
use chargemesh_proto::regulator::v1 as pb;

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
}

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
                let mut tx = self.pool.begin().await?;
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
        }
    };
}

sql_reporting_store!(PgReportingStore, sqlx::PgPool);
sql_reporting_store!(SqliteReportingStore, sqlx::SqlitePool);

/// Migrates the database and returns the store for its backend.
pub async fn open(database: &Database) -> Result<std::sync::Arc<dyn ReportingStore>, StoreError> {
    database.migrate(MIGRATIONS).await?;
    Ok(match database {
        Database::Postgres(pool) => std::sync::Arc::new(PgReportingStore::new(pool.clone())),
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteReportingStore::new(pool.clone())),
    })
}
