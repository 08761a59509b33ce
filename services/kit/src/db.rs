//! Database pools: PostgreSQL in production (one schema per service), SQLite files in the
//! embedded default, with each service's migrations embedded in its crate.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use tonic::Code;

/// A storage failure, classified so the API can answer with the right code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated: {0}")]
    Unique(String),
    #[error("referenced record missing: {0}")]
    ForeignKey(String),
    #[error("record refused by a constraint: {0}")]
    Constraint(String),
    #[error("{0} changed concurrently")]
    Conflict(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl StoreError {
    pub fn code(&self) -> Code {
        match self {
            StoreError::Unique(_) => Code::AlreadyExists,
            StoreError::ForeignKey(_) => Code::NotFound,
            StoreError::Constraint(_) => Code::FailedPrecondition,
            StoreError::Conflict(_) => Code::Aborted,
            StoreError::Unavailable(_) => Code::Unavailable,
            StoreError::Internal(_) => Code::Internal,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &err {
            sqlx::Error::Database(db) => {
                let what = db.constraint().unwrap_or_else(|| db.message()).to_owned();
                match db.kind() {
                    ErrorKind::UniqueViolation => StoreError::Unique(what),
                    ErrorKind::ForeignKeyViolation => StoreError::ForeignKey(what),
                    ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                        StoreError::Constraint(what)
                    }
                    _ => StoreError::Internal(err.to_string()),
                }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Internal(err.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Internal(format!("migration failed: {err}"))
    }
}

/// A write transaction, begun the way each backend wants it: on SQLite with the write lock
/// taken at once (`BEGIN IMMEDIATE`), so a transaction that reads and then writes waits its
/// turn under the busy timeout instead of failing with "database is locked" when another
/// writer committed in between; on PostgreSQL a plain `BEGIN`.
pub trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin()
    }
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

/// How a backend spells the n-th parameter of a long generated statement (multi-row `VALUES`).
///
/// Send such statements unprepared ([`generated`], `.persistent(false)`): each row count is its own text, so
/// they would churn the connection's statement cache, and on PostgreSQL a cached statement
/// gets a generic plan, which with parameters in place of values cannot hash an `IN` list and
/// may follow statistics from when the table was small (at 50,000 piles a touch of 500
/// connectors compared each of 20,000 rows with the 500 parameters one by one: 400 ms). SQLite gets plain `?`:
/// its lookup of `$n` names costs time in the number of parameters, for every parameter.
#[derive(Debug, Clone, Copy)]
pub enum Placeholders {
    Numbered,
    Positional,
}

impl Placeholders {
    pub fn nth(self, n: usize) -> String {
        match self {
            Placeholders::Numbered => format!("${n}"),
            Placeholders::Positional => "?".to_owned(),
        }
    }

    /// `count` parameters from the `first`, comma-separated.
    pub fn list(self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|i| self.nth(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The rows of a multi-row `VALUES`, `cols` parameters each, bound row after row.
    pub fn rows(self, rows: usize, cols: usize) -> String {
        (0..rows)
            .map(|row| format!("({})", self.list(row * cols + 1, cols)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A statement generated for a number of rows, sent unprepared as [`Placeholders`] says.
pub fn generated<'a, DB: sqlx::Database + sqlx::database::HasStatementCache>(
    sql: String,
) -> sqlx::query::Query<'a, DB, <DB as sqlx::Database>::Arguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false)
}

/// A connected database of one service.
#[derive(Debug, Clone)]
pub enum Database {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The migrations of one service, one set per backend.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    pub postgres: &'static Migrator,
    pub sqlite: &'static Migrator,
}

impl Database {
    /// Connects to `url` (`postgres://...` or `sqlite://...`). On PostgreSQL the service's
    /// tables live in `schema`, made if missing and set as the connections' search path.
    pub async fn connect(
        url: &str,
        schema: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if !is_sql_identifier(schema) {
                return Err(StoreError::Internal(format!(
                    "invalid schema name {schema}"
                )));
            }
            let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            if let Err(err) = sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&pool)
                .await
            {
                // Two replicas creating the schema at once: the loser sees a unique violation.
                if !matches!(StoreError::from(err), StoreError::Unique(_)) {
                    return Err(StoreError::Internal(format!(
                        "cannot create schema {schema}"
                    )));
                }
            }
            Ok(Database::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect_with(options)
                .await?;
            Ok(Database::Sqlite(pool))
        } else {
            Err(StoreError::Internal(
                "database url must start with postgres:// or sqlite:".into(),
            ))
        }
    }

    /// The SQLite URL of a file, made if missing.
    pub fn sqlite_url(path: &Path) -> String {
        format!("sqlite://{}", path.display())
    }

    /// Applies the service's pending migrations.
    pub async fn migrate(&self, migrations: Migrations) -> Result<(), StoreError> {
        match self {
            Database::Postgres(pool) => migrations.postgres.run(pool).await?,
            Database::Sqlite(pool) => migrations.sqlite.run(pool).await?,
        }
        Ok(())
    }

    /// Whether the database answers, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Database::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Database::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Database::Postgres(pool) => pool.close().await,
            Database::Sqlite(pool) => pool.close().await,
        }
    }

    /// Leadership of the work named `name` among the replicas of a component: `Some` for the
    /// one that holds it, while the returned guard lives; `None` for the others. On PostgreSQL
    /// a transaction-scoped advisory lock (released by any end of the guard, a crash included);
    /// on SQLite, which one process owns, always `Some`.
    pub async fn leadership(&self, name: &str) -> Result<Option<Leadership>, StoreError> {
        match self {
            Database::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let held: bool =
                    // Named within the component's schema: components sharing a database (and
                    // test schemas) do not take each other's leadership.
                    sqlx::query_scalar(
                        "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '/' || $1))",
                    )
                        .bind(name)
                        .fetch_one(&mut *tx)
                        .await?;
                Ok(held.then_some(Leadership { _held: Some(tx) }))
            }
            Database::Sqlite(_) => Ok(Some(Leadership { _held: None })),
        }
    }
}

/// Held leadership of some work; [`Leadership::release`] lets another replica take it at once
/// (a dropped one is let go when its connection is next used).
#[derive(Debug)]
pub struct Leadership {
    _held: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

impl Leadership {
    /// Lets go of the work.
    pub async fn release(self) {
        if let Some(tx) = self._held
            && let Err(error) = tx.rollback().await
        {
            tracing::warn!(%error, "releasing a leadership");
        }
    }
}

fn is_sql_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// A throwaway database for tests: a fresh schema in `CHARGEMESH_TEST_DATABASE_URL` when set,
/// else a fresh SQLite file removed when the guard drops.
#[derive(Debug)]
pub struct TestDatabase {
    pub database: Database,
    pub url: String,
    pub schema: String,
    file: Option<PathBuf>,
}

impl TestDatabase {
    /// Every backend a conformance suite runs on: SQLite always, and PostgreSQL when
    /// `CHARGEMESH_TEST_DATABASE_URL` is set.
    pub async fn every(service: &str) -> Result<Vec<Self>, StoreError> {
        let mut all = vec![Self::sqlite(service).await?];
        all.extend(Self::postgres(service).await?);
        Ok(all)
    }

    /// PostgreSQL when `CHARGEMESH_TEST_DATABASE_URL` is set, else SQLite.
    pub async fn new(service: &str) -> Result<Self, StoreError> {
        match Self::postgres(service).await? {
            Some(db) => Ok(db),
            None => Self::sqlite(service).await,
        }
    }

    fn unique_schema(service: &str) -> String {
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        format!("{service}_{}", &suffix[suffix.len() - 12..])
    }

    /// A fresh schema in `CHARGEMESH_TEST_DATABASE_URL`, or `None` when it is not set.
    pub async fn postgres(service: &str) -> Result<Option<Self>, StoreError> {
        let url = match std::env::var("CHARGEMESH_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => return Ok(None),
        };
        let schema = Self::unique_schema(service);
        let database = Database::connect(&url, &schema, 5).await?;
        Ok(Some(Self {
            database,
            url,
            schema,
            file: None,
        }))
    }

    /// A fresh SQLite file in the temporary directory.
    pub async fn sqlite(service: &str) -> Result<Self, StoreError> {
        let schema = Self::unique_schema(service);
        let path = std::env::temp_dir().join(format!("chargemesh-test-{schema}.db"));
        let url = Database::sqlite_url(&path);
        let database = Database::connect(&url, &schema, 5).await?;
        Ok(Self {
            database,
            url,
            schema,
            file: Some(path),
        })
    }

    /// Which backend the test runs on, for messages.
    pub fn backend(&self) -> &'static str {
        match self.database {
            Database::Postgres(_) => "postgres",
            Database::Sqlite(_) => "sqlite",
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(path) = &self.file {
            for ext in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(ext);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(is_sql_identifier("asset"));
        assert!(is_sql_identifier("asset_0123abcd"));
        assert!(!is_sql_identifier("asset; drop"));
        assert!(!is_sql_identifier("1asset"));
        assert!(!is_sql_identifier(""));
    }
}
