//! Persistence of the asset registry: one trait, a PostgreSQL and a SQLite implementation that
//! share every statement (the SQL below runs unchanged on both), and a conformance suite that
//! runs against both.
//!
//! Each record is a JSON document beside its key and index columns. Updates are optimistic
//! (`version`), and every write appends its change record in the same transaction (REQ REC-2).

use chrono::{DateTime, Utc};

use chargemesh_kit::db::{Database, Migrations, StoreError};

use chargemesh_kit::outbox::Step;

mod entity;
mod sql;

pub use entity::{Entity, StationCertificate};
pub use sql::{PgAssetStore, SqliteAssetStore};

use crate::domain::model::{
    Certificate, ChangeRecord, Equipment, IdToken, Operator, Pile, Station, UnknownChargePoint,
};

pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The asset service's migrations for [`Database::migrate`].
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
};

/// A record with the version its next update must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: i64,
}

/// One page of a listing keyed by (operator_id, id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub after: Option<(String, String)>,
    pub limit: u32,
}

impl Page {
    /// Everything of one station in a single page: a station has far fewer piles than this.
    pub const WHOLE_STATION: Page = Page::first(10_000);

    /// The first `limit` rows.
    pub const fn first(limit: u32) -> Page {
        Page { after: None, limit }
    }
}

/// A column condition of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Eq(&'static str, String),
    Prefix(&'static str, String),
    /// The column is one of these values.
    In(&'static str, Vec<String>),
    /// A station with a pile that has this connector (stations only).
    HasConnector(String),
}

/// A change to append to the history.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChange {
    pub operator_id: String,
    pub entity_type: &'static str,
    pub entity_id: String,
    pub action: &'static str,
    pub actor: String,
    /// Why, in the caller's words (a maintenance record, an evidence reference).
    pub note: String,
    pub recorded_at: DateTime<Utc>,
    pub before: Option<serde_json::Value>,
    pub after: serde_json::Value,
}

/// Which history to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeQuery {
    pub operator_id: String,
    pub entity_type: Option<String>,
    pub entity_id: Option<String>,
    pub after_sequence: i64,
    pub limit: u32,
}

/// A charge point's row: whose pile it is and its profile 2 password hash, if one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargePointRow {
    pub operator_id: String,
    pub pile_id: String,
    pub password_hash: Option<String>,
}

/// The asset registry's persistence.
#[tonic::async_trait]
pub trait AssetStore: Send + Sync + std::fmt::Debug + 'static {
    async fn create_operator(&self, op: &Operator, change: &NewChange) -> Result<(), StoreError>;
    async fn operator(&self, operator_id: &str) -> Result<Option<Versioned<Operator>>, StoreError>;
    async fn list_operators(
        &self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<Vec<Operator>, StoreError>;
    async fn update_operator(
        &self,
        op: &Operator,
        version: i64,
        change: &NewChange,
    ) -> Result<(), StoreError>;

    async fn create_station(&self, st: &Station, change: &NewChange) -> Result<(), StoreError>;
    async fn station(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Option<Versioned<Station>>, StoreError>;
    async fn list_stations(
        &self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<Vec<Station>, StoreError>;
    async fn update_station(
        &self,
        st: &Station,
        version: i64,
        change: &NewChange,
    ) -> Result<(), StoreError>;

    /// Creates the pile and claims its connector ids.
    async fn create_pile(&self, pile: &Pile, change: &NewChange) -> Result<(), StoreError>;
    async fn pile(
        &self,
        operator_id: &str,
        pile_id: &str,
    ) -> Result<Option<Versioned<Pile>>, StoreError>;
    async fn list_piles(&self, filters: &[Filter], page: &Page) -> Result<Vec<Pile>, StoreError>;
    /// Updates the pile and re-claims its connector ids and charge point id. Saves a pile; `steps` follow the commit (kit::outbox), written in its transaction.
    async fn update_pile(
        &self,
        pile: &Pile,
        version: i64,
        change: &NewChange,
        steps: &[Step],
    ) -> Result<(), StoreError>;

    /// Saves a pile whose profile 2 password changed, with the new hash (REQ NETSEC-1).
    async fn set_charge_point_password(
        &self,
        pile: &Pile,
        version: i64,
        hash: &str,
        change: &NewChange,
    ) -> Result<(), StoreError>;

    /// The pile a charge point id names.
    async fn charge_point(
        &self,
        charge_point_id: &str,
    ) -> Result<Option<ChargePointRow>, StoreError>;

    /// Notes a connection of an unregistered charge point (first and last seen, attempts).
    async fn note_unknown_charge_point(
        &self,
        operator_id: &str,
        charge_point_id: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    async fn list_unknown_charge_points(
        &self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<Vec<UnknownChargePoint>, StoreError>;

    /// Adds a token or replaces it.
    async fn put_id_token(
        &self,
        token: &IdToken,
        change: &NewChange,
    ) -> Result<IdToken, StoreError>;

    async fn id_token(&self, operator_id: &str, token: &str)
    -> Result<Option<IdToken>, StoreError>;

    async fn list_id_tokens(
        &self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<Vec<IdToken>, StoreError>;

    async fn create_equipment(&self, eq: &Equipment, change: &NewChange) -> Result<(), StoreError>;
    async fn equipment(
        &self,
        operator_id: &str,
        equipment_id: &str,
    ) -> Result<Option<Versioned<Equipment>>, StoreError>;
    async fn list_equipment(
        &self,
        filters: &[Filter],
        page: &Page,
    ) -> Result<Vec<Equipment>, StoreError>;
    async fn update_equipment(
        &self,
        eq: &Equipment,
        version: i64,
        change: &NewChange,
    ) -> Result<(), StoreError>;

    async fn create_certificate(
        &self,
        cert: &StationCertificate,
        change: &NewChange,
    ) -> Result<(), StoreError>;
    async fn list_certificates(&self, filters: &[Filter]) -> Result<Vec<Certificate>, StoreError>;

    async fn list_changes(&self, query: &ChangeQuery) -> Result<Vec<ChangeRecord>, StoreError>;
}

/// Migrates the database and returns the store for its backend.
pub async fn open(database: &Database) -> Result<std::sync::Arc<dyn AssetStore>, StoreError> {
    database.migrate(MIGRATIONS).await?;
    Ok(for_database(database))
}

/// The store for a migrated database's backend.
pub fn for_database(database: &Database) -> std::sync::Arc<dyn AssetStore> {
    match database {
        Database::Postgres(pool) => std::sync::Arc::new(PgAssetStore::new(pool.clone())),
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteAssetStore::new(pool.clone())),
    }
}
