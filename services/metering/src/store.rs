//! Metering persistence: every version of every charge order, append-only (REQ REC-2: the
//! database itself refuses updates and deletes). The statements run unchanged on PostgreSQL and
//! SQLite.

use chargemesh_kit::db::BeginWrite as _;
use chrono::{DateTime, Utc};

use chargemesh_kit::db::{Database, Migrations, StoreError};

use crate::domain::order::ChargeOrder;
use crate::domain::session::OpenSession;

pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
};

/// Which orders a listing wants; always the latest version of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderQuery {
    pub operator_id: Option<String>,
    /// Stations whose area code starts with this (a regulator's area).
    pub area_prefix: Option<String>,
    pub station_id: Option<String>,
    pub connector_id: Option<String>,
    /// Orders that started in `[from, to)`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub flagged_only: bool,
    /// Latest versions recorded at or after this.
    pub recorded_since: Option<DateTime<Utc>>,
    /// Resume after this (start, operator, order id).
    pub after: Option<(DateTime<Utc>, String, String)>,
    pub limit: u32,
}

#[tonic::async_trait]
pub trait MeteringStore: Send + Sync + std::fmt::Debug + 'static {
    /// Adds a version; `Unique` when that version of the order exists.
    async fn insert(&self, order: &ChargeOrder) -> Result<(), StoreError>;
    /// One version of an order, or the latest with `None`.
    async fn order(
        &self,
        operator_id: &str,
        order_id: &str,
        version: Option<u32>,
    ) -> Result<Option<ChargeOrder>, StoreError>;
    /// Latest versions, ordered by start, operator and order id.
    async fn orders(&self, query: &OrderQuery) -> Result<Vec<ChargeOrder>, StoreError>;
    /// The session running on a connector, if one is.
    async fn open_session(
        &self,
        operator_id: &str,
        connector_id: &str,
    ) -> Result<Option<OpenSession>, StoreError>;
    /// The sessions running on the connectors (operator, connector) given, by connector.
    async fn open_sessions(
        &self,
        connectors: &[(String, String)],
    ) -> Result<std::collections::HashMap<(String, String), OpenSession>, StoreError>;
    /// Keeps a running session, replacing what the connector had.
    async fn put_session(
        &self,
        session: &OpenSession,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn drop_session(&self, operator_id: &str, connector_id: &str) -> Result<(), StoreError>;
    /// Where the reading of a log stands; 0 before the first read.
    async fn position(&self, name: &str) -> Result<i64, StoreError>;
    async fn set_position(&self, name: &str, position: i64) -> Result<(), StoreError>;
}

macro_rules! sql_metering_store {
    ($store:ident, $pool:ty, $journal:path) => {
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
        impl MeteringStore for $store {
            async fn insert(&self, order: &ChargeOrder) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                sqlx::query(
                    "INSERT INTO charge_orders (operator_id, order_id, version, station_id, connector_id, area_code, \
                     start_at, billable, flagged, doc, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&order.operator_id)
                .bind(&order.order_id)
                .bind(i64::from(order.version))
                .bind(&order.station_id)
                .bind(&order.connector_id)
                .bind(&order.area_code)
                .bind(order.start)
                .bind(order.billable)
                .bind(!order.flags.is_empty())
                .bind(sqlx::types::Json(order))
                .bind(order.recorded_at)
                .execute(&mut *tx)
                .await?;
                $journal(&mut tx, &[crate::journal::charge_order_entry(order)]).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn order(&self, operator_id: &str, order_id: &str, version: Option<u32>)
            -> Result<Option<ChargeOrder>, StoreError> {
                let row: Option<sqlx::types::Json<ChargeOrder>> = sqlx::query_scalar(
                    "SELECT doc FROM charge_orders WHERE operator_id = $1 AND order_id = $2 \
                     AND ($3 = 0 OR version = $3) ORDER BY version DESC LIMIT 1",
                )
                .bind(operator_id)
                .bind(order_id)
                .bind(i64::from(version.unwrap_or(0)))
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|j| j.0))
            }

            async fn orders(&self, q: &OrderQuery) -> Result<Vec<ChargeOrder>, StoreError> {
                // Bounds both backends store and compare as they do real times (SQLite keeps
                // RFC 3339 text, so the year must keep four digits).
                let far_past = DateTime::<Utc>::UNIX_EPOCH;
                let far_future = DateTime::parse_from_rfc3339("9999-12-31T23:59:59Z")
                    .map_or(DateTime::<Utc>::UNIX_EPOCH, |t| t.to_utc());
                let (after_start, after_op, after_id) = q
                    .after
                    .clone()
                    .unwrap_or((far_past, String::new(), String::new()));
                let sql = format!(
                    "SELECT doc FROM charge_orders c WHERE \
                     version = (SELECT MAX(version) FROM charge_orders l WHERE l.operator_id = c.operator_id AND l.order_id = c.order_id) \
                     AND ($1 = '' OR operator_id = $1) \
                     AND substr(area_code, 1, length($2)) = $2 \
                     AND ($3 = '' OR station_id = $3) \
                     AND ($4 = '' OR connector_id = $4) \
                     AND start_at >= $5 AND start_at < $6 \
                     AND ($7 = 0 OR flagged) \
                     AND (start_at > $8 OR (start_at = $8 AND (operator_id > $9 OR (operator_id = $9 AND order_id > $10)))) \
                     AND recorded_at >= $11 \
                     ORDER BY start_at, operator_id, order_id LIMIT {}",
                    q.limit.clamp(1, 1000)
                );
                let rows: Vec<sqlx::types::Json<ChargeOrder>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(q.operator_id.as_deref().unwrap_or(""))
                    .bind(q.area_prefix.as_deref().unwrap_or(""))
                    .bind(q.station_id.as_deref().unwrap_or(""))
                    .bind(q.connector_id.as_deref().unwrap_or(""))
                    .bind(q.from.unwrap_or(far_past))
                    .bind(q.to.unwrap_or(far_future))
                    .bind(i64::from(q.flagged_only))
                    .bind(after_start)
                    .bind(after_op)
                    .bind(after_id)
                    .bind(q.recorded_since.unwrap_or(far_past))
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn open_session(&self, operator_id: &str, connector_id: &str) -> Result<Option<OpenSession>, StoreError> {
                let row: Option<sqlx::types::Json<OpenSession>> = sqlx::query_scalar(
                    "SELECT doc FROM open_sessions WHERE operator_id = $1 AND connector_id = $2",
                )
                .bind(operator_id)
                .bind(connector_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|j| j.0))
            }

            async fn open_sessions(
                &self,
                connectors: &[(String, String)],
            ) -> Result<std::collections::HashMap<(String, String), OpenSession>, StoreError> {
                let mut out = std::collections::HashMap::new();
                // Chunks of 200 connectors: 400 parameters, within either backend's limit.
                for chunk in connectors.chunks(200) {
                    let sql = format!(
                        "SELECT doc FROM open_sessions WHERE (operator_id, connector_id) IN (VALUES {})",
                        chargemesh_kit::db::Placeholders::Numbered.rows(chunk.len(), 2)
                    );
                    let mut query = sqlx::query_scalar::<_, sqlx::types::Json<OpenSession>>(sqlx::AssertSqlSafe(sql))
                        .persistent(false);
                    for (operator_id, connector_id) in chunk {
                        query = query.bind(operator_id).bind(connector_id);
                    }
                    for session in query.fetch_all(&self.pool).await? {
                        let session = session.0;
                        out.insert((session.operator_id.clone(), session.connector_id.clone()), session);
                    }
                }
                Ok(out)
            }

            async fn put_session(&self, session: &OpenSession, now: DateTime<Utc>) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                sqlx::query(
                    "INSERT INTO open_sessions (operator_id, connector_id, doc, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (operator_id, connector_id) DO UPDATE SET doc = $3, updated_at = $4",
                )
                .bind(&session.operator_id)
                .bind(&session.connector_id)
                .bind(sqlx::types::Json(session))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                $journal(&mut tx, &[crate::journal::session_entry(session, true, now)]).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn drop_session(&self, operator_id: &str, connector_id: &str) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let running: Option<sqlx::types::Json<OpenSession>> = sqlx::query_scalar(
                    "SELECT doc FROM open_sessions WHERE operator_id = $1 AND connector_id = $2",
                )
                .bind(operator_id)
                .bind(connector_id)
                .fetch_optional(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM open_sessions WHERE operator_id = $1 AND connector_id = $2")
                    .bind(operator_id)
                    .bind(connector_id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(session) = running {
                    let ended = session.0.samples.last().map_or(session.0.start, |s| s.at);
                    $journal(&mut tx, &[crate::journal::session_entry(&session.0, false, ended)]).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn position(&self, name: &str) -> Result<i64, StoreError> {
                let found: Option<i64> = sqlx::query_scalar("SELECT position FROM follow_state WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.unwrap_or(0))
            }

            async fn set_position(&self, name: &str, position: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO follow_state (name, position) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET position = $2",
                )
                .bind(name)
                .bind(position)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

sql_metering_store!(
    PgMeteringStore,
    sqlx::PgPool,
    chargemesh_kit::journal::append_pg
);
sql_metering_store!(
    SqliteMeteringStore,
    sqlx::SqlitePool,
    chargemesh_kit::journal::append_sqlite
);

/// Migrates the database and returns the store for its backend.
pub async fn open(database: &Database) -> Result<std::sync::Arc<dyn MeteringStore>, StoreError> {
    database.migrate(MIGRATIONS).await?;
    Ok(for_database(database))
}

/// The store for a migrated database's backend.
pub fn for_database(database: &Database) -> std::sync::Arc<dyn MeteringStore> {
    match database {
        Database::Postgres(pool) => std::sync::Arc::new(PgMeteringStore::new(pool.clone())),
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteMeteringStore::new(pool.clone())),
    }
}
