//! Complaints persistence: each complaint a document with its steps under optimistic
//! concurrency, its durable clocks, and the breaches they recorded. The statements run
//! unchanged on PostgreSQL and SQLite.

use chrono::{DateTime, Utc};

use chargemesh_kit::db::{Database, Migrations, StoreError};

use crate::domain::complaint::Complaint;

pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
};

/// A clock that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub operator_id: String,
    pub complaint_id: String,
    /// "response", or "promise:<n>" for the n-th promise.
    pub kind: String,
    pub due_at: DateTime<Utc>,
}

#[tonic::async_trait]
pub trait ComplaintStore: Send + Sync + std::fmt::Debug + 'static {
    /// Files a complaint with its clocks.
    async fn create(
        &self,
        complaint: &Complaint,
        clocks: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError>;
    async fn complaint(
        &self,
        operator_id: &str,
        complaint_id: &str,
    ) -> Result<Option<(Complaint, i64)>, StoreError>;
    async fn complaints(&self, operator_id: &str) -> Result<Vec<Complaint>, StoreError>;
    /// Writes a complaint back with any new clocks; `Conflict` when it changed since `version`.
    async fn update(
        &self,
        complaint: &Complaint,
        version: i64,
        clocks: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError>;
    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Due>, StoreError>;
    /// Marks a clock fired with the breach it found; `false` when it had fired already.
    async fn fire(
        &self,
        due: &Due,
        breach: Option<(&str, i64)>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

fn state_name(c: &Complaint) -> String {
    format!("{:?}", c.state).to_lowercase()
}

macro_rules! sql_complaint_store {
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
        impl ComplaintStore for $store {
            async fn create(&self, c: &Complaint, clocks: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO complaints (operator_id, complaint_id, station_id, state, version, doc, received_at) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6)",
                )
                .bind(&c.operator_id)
                .bind(&c.complaint_id)
                .bind(c.station_id.as_deref().unwrap_or(""))
                .bind(state_name(c))
                .bind(sqlx::types::Json(c))
                .bind(c.received_at)
                .execute(&mut *tx)
                .await?;
                for (kind, due) in clocks {
                    sqlx::query(
                        "INSERT INTO complaint_deadlines (operator_id, complaint_id, kind, due_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&c.operator_id)
                    .bind(&c.complaint_id)
                    .bind(kind)
                    .bind(*due)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn complaint(&self, operator_id: &str, complaint_id: &str) -> Result<Option<(Complaint, i64)>, StoreError> {
                let row: Option<(sqlx::types::Json<Complaint>, i64)> = sqlx::query_as(
                    "SELECT doc, version FROM complaints WHERE operator_id = $1 AND complaint_id = $2",
                )
                .bind(operator_id)
                .bind(complaint_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(doc, version)| (doc.0, version)))
            }

            async fn complaints(&self, operator_id: &str) -> Result<Vec<Complaint>, StoreError> {
                let rows: Vec<sqlx::types::Json<Complaint>> = sqlx::query_scalar(
                    "SELECT doc FROM complaints WHERE operator_id = $1 ORDER BY received_at, complaint_id LIMIT 1000",
                )
                .bind(operator_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn update(&self, c: &Complaint, version: i64, clocks: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE complaints SET state = $3, doc = $4, version = version + 1 \
                     WHERE operator_id = $1 AND complaint_id = $2 AND version = $5",
                )
                .bind(&c.operator_id)
                .bind(&c.complaint_id)
                .bind(state_name(c))
                .bind(sqlx::types::Json(c))
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("complaint {}", c.complaint_id)));
                }
                for (kind, due) in clocks {
                    sqlx::query(
                        "INSERT INTO complaint_deadlines (operator_id, complaint_id, kind, due_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&c.operator_id)
                    .bind(&c.complaint_id)
                    .bind(kind)
                    .bind(*due)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Due>, StoreError> {
                let sql = format!(
                    "SELECT operator_id, complaint_id, kind, due_at FROM complaint_deadlines \
                     WHERE fired_at IS NULL AND due_at <= $1 ORDER BY due_at LIMIT {}",
                    limit.clamp(1, 1000)
                );
                let rows: Vec<(String, String, String, DateTime<Utc>)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(operator_id, complaint_id, kind, due_at)| Due {
                        operator_id,
                        complaint_id,
                        kind,
                        due_at,
                    })
                    .collect())
            }

            async fn fire(&self, due: &Due, breach: Option<(&str, i64)>, now: DateTime<Utc>) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let fired = sqlx::query(
                    "UPDATE complaint_deadlines SET fired_at = $4 \
                     WHERE operator_id = $1 AND complaint_id = $2 AND kind = $3 AND fired_at IS NULL",
                )
                .bind(&due.operator_id)
                .bind(&due.complaint_id)
                .bind(&due.kind)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if fired.rows_affected() == 0 {
                    return Ok(false);
                }
                if let Some((rule, lateness)) = breach {
                    sqlx::query(
                        "INSERT INTO complaint_breaches (operator_id, complaint_id, kind, rule, due_at, lateness_seconds, recorded_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    )
                    .bind(&due.operator_id)
                    .bind(&due.complaint_id)
                    .bind(&due.kind)
                    .bind(rule)
                    .bind(due.due_at)
                    .bind(lateness)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

sql_complaint_store!(PgComplaintStore, sqlx::PgPool);
sql_complaint_store!(SqliteComplaintStore, sqlx::SqlitePool);

/// Migrates the database and returns the store for its backend.
pub async fn open(database: &Database) -> Result<std::sync::Arc<dyn ComplaintStore>, StoreError> {
    database.migrate(MIGRATIONS).await?;
    Ok(match database {
        Database::Postgres(pool) => std::sync::Arc::new(PgComplaintStore::new(pool.clone())),
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteComplaintStore::new(pool.clone())),
    })
}
