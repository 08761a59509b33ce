//! Persistence of the asset registry: one trait, a PostgreSQL and a SQLite implementation that
//! share every statement (the SQL below runs unchanged on both), and a conformance suite that
//! runs against both.
//!
//! Each record is a JSON document beside its key and index columns. Updates are optimistic
//! (`version`), and every write appends its change record in the same transaction (REQ REC-2).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use chargemesh_kit::db::{Database, Migrations, StoreError};

use chargemesh_kit::outbox::Step;

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

/// A record kind kept in its own table.
pub trait Entity: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    const TABLE: &'static str;
    const ID_COLUMN: &'static str;
    /// Index columns besides the key, in the order of [`Entity::columns`].
    const COLUMNS: &'static [&'static str];
    fn operator_id(&self) -> &str;
    fn id(&self) -> &str;
    fn columns(&self) -> Vec<String>;
    fn created_at(&self) -> DateTime<Utc>;
    fn updated_at(&self) -> DateTime<Utc>;
}

impl Entity for Operator {
    const TABLE: &'static str = "operators";
    const ID_COLUMN: &'static str = "operator_id";
    const COLUMNS: &'static [&'static str] = &["credit_code"];
    fn operator_id(&self) -> &str {
        &self.operator_id
    }
    fn id(&self) -> &str {
        &self.operator_id
    }
    fn columns(&self) -> Vec<String> {
        vec![self.credit_code.clone()]
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

impl Entity for Station {
    const TABLE: &'static str = "stations";
    const ID_COLUMN: &'static str = "station_id";
    const COLUMNS: &'static [&'static str] = &["area_code", "state"];
    fn operator_id(&self) -> &str {
        &self.operator_id
    }
    fn id(&self) -> &str {
        &self.station_id
    }
    fn columns(&self) -> Vec<String> {
        vec![self.area_code.clone(), self.state.as_str().to_owned()]
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

impl Entity for Pile {
    const TABLE: &'static str = "piles";
    const ID_COLUMN: &'static str = "pile_id";
    const COLUMNS: &'static [&'static str] = &["station_id", "state"];
    fn operator_id(&self) -> &str {
        &self.operator_id
    }
    fn id(&self) -> &str {
        &self.pile_id
    }
    fn columns(&self) -> Vec<String> {
        vec![self.station_id.clone(), self.state.as_str().to_owned()]
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

impl Entity for Equipment {
    const TABLE: &'static str = "equipment";
    const ID_COLUMN: &'static str = "equipment_id";
    const COLUMNS: &'static [&'static str] = &["station_id", "category"];
    fn operator_id(&self) -> &str {
        &self.operator_id
    }
    fn id(&self) -> &str {
        &self.equipment_id
    }
    fn columns(&self) -> Vec<String> {
        vec![self.station_id.clone(), self.category.as_str().to_owned()]
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

impl Entity for IdToken {
    const TABLE: &'static str = "id_tokens";
    const ID_COLUMN: &'static str = "token";
    const COLUMNS: &'static [&'static str] = &["status"];
    fn operator_id(&self) -> &str {
        &self.operator_id
    }
    fn id(&self) -> &str {
        &self.token
    }
    fn columns(&self) -> Vec<String> {
        vec![self.status.as_str().to_owned()]
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

impl Entity for UnknownChargePoint {
    const TABLE: &'static str = "unknown_charge_points";
    const ID_COLUMN: &'static str = "charge_point_id";
    const COLUMNS: &'static [&'static str] = &[];
    fn operator_id(&self) -> &str {
        &self.operator_id
    }
    fn id(&self) -> &str {
        &self.charge_point_id
    }
    fn columns(&self) -> Vec<String> {
        Vec::new()
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.first_seen
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.last_seen
    }
}

/// A charge point's row: whose pile it is and its profile 2 password hash, if one is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargePointRow {
    pub operator_id: String,
    pub pile_id: String,
    pub password_hash: Option<String>,
}

/// Certificates are stored with their pile's station so a station's can be read at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StationCertificate {
    pub station_id: String,
    #[serde(flatten)]
    pub certificate: Certificate,
}

impl Entity for StationCertificate {
    const TABLE: &'static str = "metrology_certificates";
    const ID_COLUMN: &'static str = "certificate_id";
    const COLUMNS: &'static [&'static str] = &[
        "pile_id",
        "station_id",
        "certificate_number",
        "verifying_body",
    ];
    fn operator_id(&self) -> &str {
        &self.certificate.operator_id
    }
    fn id(&self) -> &str {
        &self.certificate.certificate_id
    }
    fn columns(&self) -> Vec<String> {
        let c = &self.certificate;
        vec![
            c.pile_id.clone(),
            self.station_id.clone(),
            c.certificate_number.clone(),
            c.verifying_body.clone(),
        ]
    }
    fn created_at(&self) -> DateTime<Utc> {
        self.certificate.created_at
    }
    fn updated_at(&self) -> DateTime<Utc> {
        self.certificate.created_at
    }
}

/// Key columns, then index columns: the order values are bound in.
fn key_and_index_columns<E: Entity>() -> Vec<&'static str> {
    let mut cols = vec!["operator_id"];
    if E::ID_COLUMN != "operator_id" {
        cols.push(E::ID_COLUMN);
    }
    cols.extend_from_slice(E::COLUMNS);
    cols
}

fn key_and_index_values<E: Entity>(e: &E) -> Vec<String> {
    let mut values = vec![e.operator_id().to_owned()];
    if E::ID_COLUMN != "operator_id" {
        values.push(e.id().to_owned());
    }
    values.extend(e.columns());
    values
}

fn insert_sql<E: Entity>() -> String {
    let mut cols = key_and_index_columns::<E>();
    cols.extend(["version", "doc", "created_at", "updated_at"]);
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        E::TABLE,
        cols.join(", "),
        params.join(", ")
    )
}

fn select_sql<E: Entity>() -> String {
    format!(
        "SELECT version, doc FROM {} WHERE operator_id = $1 AND {} = $2",
        E::TABLE,
        E::ID_COLUMN
    )
}

/// `UPDATE ... WHERE version = $n`: binds index values, doc, updated_at, then the key and version.
fn update_sql<E: Entity>() -> String {
    let mut sets: Vec<String> = E::COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let n = E::COLUMNS.len();
    sets.push(format!("doc = ${}", n + 1));
    sets.push(format!("updated_at = ${}", n + 2));
    sets.push("version = version + 1".into());
    format!(
        "UPDATE {} SET {} WHERE operator_id = ${} AND {} = ${} AND version = ${}",
        E::TABLE,
        sets.join(", "),
        n + 3,
        E::ID_COLUMN,
        n + 4,
        n + 5
    )
}

/// A page of documents in key order; returns the SQL and the values to bind.
fn list_sql<E: Entity>(filters: &[Filter], page: &Page) -> (String, Vec<String>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    for f in filters {
        match f {
            Filter::Eq(col, v) => {
                values.push(v.clone());
                conditions.push(format!("{col} = ${}", values.len()));
            }
            Filter::Prefix(col, v) => {
                values.push(format!("{}%", v.replace(['%', '_'], "")));
                conditions.push(format!("{col} LIKE ${}", values.len()));
            }
            Filter::In(_, vs) if vs.is_empty() => conditions.push("1 = 0".to_owned()),
            Filter::In(col, vs) => {
                let mut params = Vec::with_capacity(vs.len());
                for v in vs {
                    values.push(v.clone());
                    params.push(format!("${}", values.len()));
                }
                conditions.push(format!("{col} IN ({})", params.join(", ")));
            }
            Filter::HasConnector(connector) => {
                values.push(connector.clone());
                conditions.push(format!(
                    "EXISTS (SELECT 1 FROM piles p JOIN connectors c \
                     ON c.operator_id = p.operator_id AND c.pile_id = p.pile_id \
                     WHERE p.operator_id = {table}.operator_id AND p.station_id = {table}.station_id \
                     AND c.connector_id = ${})",
                    values.len(),
                    table = E::TABLE,
                ));
            }
        }
    }
    if let Some((op, id)) = &page.after {
        conditions.push(format!(
            "(operator_id, {}) > (${}, ${})",
            E::ID_COLUMN,
            values.len() + 1,
            values.len() + 2
        ));
        values.push(op.clone());
        values.push(id.clone());
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT doc FROM {}{} ORDER BY operator_id, {} LIMIT {}",
        E::TABLE,
        filter,
        E::ID_COLUMN,
        page.limit.max(1)
    );
    (sql, values)
}

const INSERT_CHANGE: &str = "INSERT INTO change_records \
    (operator_id, entity_type, entity_id, action, actor, note, recorded_at, before_doc, after_doc) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

fn changes_sql(q: &ChangeQuery) -> (String, Vec<String>) {
    let mut sql = String::from(
        "SELECT sequence, operator_id, entity_type, entity_id, action, actor, note, recorded_at, before_doc, after_doc \
         FROM change_records WHERE operator_id = $1 AND sequence > $2",
    );
    let mut values = vec![q.operator_id.clone()];
    if let Some(t) = &q.entity_type {
        values.push(t.clone());
        sql.push_str(&format!(" AND entity_type = ${}", values.len() + 1));
    }
    if let Some(id) = &q.entity_id {
        values.push(id.clone());
        sql.push_str(&format!(" AND entity_id = ${}", values.len() + 1));
    }
    sql.push_str(&format!(" ORDER BY sequence LIMIT {}", q.limit.max(1)));
    (sql, values)
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

/// Implements [`AssetStore`] for one backend; the statements are shared, only the pool differs.
macro_rules! sql_asset_store {
    ($store:ident, $pool:ty, $db:ty, $push:path) => {
        #[derive(Debug, Clone)]
        pub struct $store {
            pub(crate) pool: $pool,
        }

        impl $store {
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            async fn insert_in<E: Entity>(
                tx: &mut sqlx::Transaction<'static, $db>,
                record: &E,
            ) -> Result<(), StoreError> {
                let sql = insert_sql::<E>();
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for v in key_and_index_values(record) {
                    query = query.bind(v);
                }
                query
                    .bind(1_i64)
                    .bind(sqlx::types::Json(record))
                    .bind(record.created_at())
                    .bind(record.updated_at())
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn update_in<E: Entity>(
                tx: &mut sqlx::Transaction<'static, $db>,
                record: &E,
                version: i64,
            ) -> Result<(), StoreError> {
                let sql = update_sql::<E>();
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for v in record.columns() {
                    query = query.bind(v);
                }
                let done = query
                    .bind(sqlx::types::Json(record))
                    .bind(record.updated_at())
                    .bind(record.operator_id().to_owned())
                    .bind(record.id().to_owned())
                    .bind(version)
                    .execute(&mut **tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("{} {}", E::TABLE, record.id())));
                }
                Ok(())
            }

            async fn append_change(
                tx: &mut sqlx::Transaction<'static, $db>,
                change: &NewChange,
            ) -> Result<(), StoreError> {
                sqlx::query(INSERT_CHANGE)
                    .bind(&change.operator_id)
                    .bind(change.entity_type)
                    .bind(&change.entity_id)
                    .bind(change.action)
                    .bind(&change.actor)
                    .bind(&change.note)
                    .bind(change.recorded_at)
                    .bind(change.before.as_ref().map(sqlx::types::Json))
                    .bind(sqlx::types::Json(&change.after))
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn claim_connectors(
                tx: &mut sqlx::Transaction<'static, $db>,
                pile: &Pile,
            ) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM connectors WHERE operator_id = $1 AND pile_id = $2")
                    .bind(&pile.operator_id)
                    .bind(&pile.pile_id)
                    .execute(&mut **tx)
                    .await?;
                for c in &pile.connectors {
                    sqlx::query("INSERT INTO connectors (operator_id, connector_id, pile_id) VALUES ($1, $2, $3)")
                        .bind(&pile.operator_id)
                        .bind(&c.connector_id)
                        .bind(&pile.pile_id)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }

            /// Holds the pile's charge point id (REQ NETSEC-1): unique across the platform; a
            /// changed id drops the old one and its password.
            async fn claim_charge_point(
                tx: &mut sqlx::Transaction<'static, $db>,
                pile: &Pile,
            ) -> Result<(), StoreError> {
                use sqlx::Row as _;
                sqlx::query("DELETE FROM charge_points WHERE operator_id = $1 AND pile_id = $2 AND charge_point_id <> $3")
                    .bind(&pile.operator_id)
                    .bind(&pile.pile_id)
                    .bind(&pile.charge_point_id)
                    .execute(&mut **tx)
                    .await?;
                if pile.charge_point_id.is_empty() {
                    return Ok(());
                }
                sqlx::query("INSERT INTO charge_points (charge_point_id, operator_id, pile_id, password_hash) \
                             VALUES ($1, $2, $3, NULL) ON CONFLICT (charge_point_id) DO NOTHING")
                    .bind(&pile.charge_point_id)
                    .bind(&pile.operator_id)
                    .bind(&pile.pile_id)
                    .execute(&mut **tx)
                    .await?;
                let row = sqlx::query("SELECT operator_id, pile_id FROM charge_points WHERE charge_point_id = $1")
                    .bind(&pile.charge_point_id)
                    .fetch_one(&mut **tx)
                    .await?;
                let owner: (String, String) = (row.try_get("operator_id")?, row.try_get("pile_id")?);
                if owner != (pile.operator_id.clone(), pile.pile_id.clone()) {
                    return Err(StoreError::Unique("charge_points".into()));
                }
                Ok(())
            }

            async fn create<E: Entity>(&self, record: &E, change: &NewChange) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::insert_in(&mut tx, record).await?;
                Self::append_change(&mut tx, change).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn update<E: Entity>(&self, record: &E, version: i64, change: &NewChange) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::update_in(&mut tx, record, version).await?;
                Self::append_change(&mut tx, change).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn fetch<E: Entity>(&self, operator_id: &str, id: &str) -> Result<Option<Versioned<E>>, StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query(sqlx::AssertSqlSafe(select_sql::<E>()))
                    .bind(operator_id)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| {
                    Ok(Versioned {
                        version: row.try_get("version")?,
                        value: row.try_get::<sqlx::types::Json<E>, _>("doc")?.0,
                    })
                })
                .transpose()
                .map_err(|e: sqlx::Error| StoreError::from(e))
            }

            async fn list<E: Entity>(&self, filters: &[Filter], page: &Page) -> Result<Vec<E>, StoreError> {
                use sqlx::Row as _;
                let (sql, values) = list_sql::<E>(filters, page);
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for v in values {
                    query = query.bind(v);
                }
                let rows = query.fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| Ok(row.try_get::<sqlx::types::Json<E>, _>("doc")?.0))
                    .collect::<Result<Vec<E>, sqlx::Error>>()
                    .map_err(StoreError::from)
            }
        }

        #[tonic::async_trait]
        impl AssetStore for $store {
            async fn create_operator(&self, op: &Operator, change: &NewChange) -> Result<(), StoreError> {
                self.create(op, change).await
            }

            async fn operator(&self, operator_id: &str) -> Result<Option<Versioned<Operator>>, StoreError> {
                self.fetch(operator_id, operator_id).await
            }

            async fn list_operators(&self, filters: &[Filter], page: &Page) -> Result<Vec<Operator>, StoreError> {
                self.list(filters, page).await
            }

            async fn update_operator(&self, op: &Operator, version: i64, change: &NewChange) -> Result<(), StoreError> {
                self.update(op, version, change).await
            }

            async fn create_station(&self, st: &Station, change: &NewChange) -> Result<(), StoreError> {
                self.create(st, change).await
            }

            async fn station(&self, operator_id: &str, station_id: &str) -> Result<Option<Versioned<Station>>, StoreError> {
                self.fetch(operator_id, station_id).await
            }

            async fn list_stations(&self, filters: &[Filter], page: &Page) -> Result<Vec<Station>, StoreError> {
                self.list(filters, page).await
            }

            async fn update_station(&self, st: &Station, version: i64, change: &NewChange) -> Result<(), StoreError> {
                self.update(st, version, change).await
            }

            async fn create_pile(&self, pile: &Pile, change: &NewChange) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::insert_in(&mut tx, pile).await?;
                Self::claim_connectors(&mut tx, pile).await?;
                Self::claim_charge_point(&mut tx, pile).await?;
                Self::append_change(&mut tx, change).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn pile(&self, operator_id: &str, pile_id: &str) -> Result<Option<Versioned<Pile>>, StoreError> {
                self.fetch(operator_id, pile_id).await
            }

            async fn list_piles(&self, filters: &[Filter], page: &Page) -> Result<Vec<Pile>, StoreError> {
                self.list(filters, page).await
            }

            async fn update_pile(&self, pile: &Pile, version: i64, change: &NewChange, steps: &[Step]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::update_in(&mut tx, pile, version).await?;
                Self::claim_connectors(&mut tx, pile).await?;
                Self::claim_charge_point(&mut tx, pile).await?;
                Self::append_change(&mut tx, change).await?;
                $push(&mut tx, steps, change.recorded_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_charge_point_password(&self, pile: &Pile, version: i64, hash: &str, change: &NewChange) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                Self::update_in(&mut tx, pile, version).await?;
                let done = sqlx::query("UPDATE charge_points SET password_hash = $1 WHERE charge_point_id = $2 AND operator_id = $3 AND pile_id = $4")
                    .bind(hash)
                    .bind(&pile.charge_point_id)
                    .bind(&pile.operator_id)
                    .bind(&pile.pile_id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("charge point {}", pile.charge_point_id)));
                }
                Self::append_change(&mut tx, change).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn charge_point(&self, charge_point_id: &str) -> Result<Option<ChargePointRow>, StoreError> {
                use sqlx::Row as _;
                let row = sqlx::query("SELECT operator_id, pile_id, password_hash FROM charge_points WHERE charge_point_id = $1")
                    .bind(charge_point_id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|row| {
                    Ok(ChargePointRow {
                        operator_id: row.try_get("operator_id")?,
                        pile_id: row.try_get("pile_id")?,
                        password_hash: row.try_get("password_hash")?,
                    })
                })
                .transpose()
                .map_err(|e: sqlx::Error| StoreError::from(e))
            }

            async fn note_unknown_charge_point(
                &self,
                operator_id: &str,
                charge_point_id: &str,
                detail: &str,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let seen: Option<Versioned<UnknownChargePoint>> = self.fetch(operator_id, charge_point_id).await?;
                let mut tx = self.pool.begin().await?;
                match seen {
                    Some(Versioned { mut value, version }) => {
                        value.last_seen = now;
                        value.attempts = value.attempts.saturating_add(1);
                        value.detail = detail.to_owned();
                        // A concurrent attempt counted first: this one is the same news.
                        match Self::update_in(&mut tx, &value, version).await {
                            Ok(()) | Err(StoreError::Conflict(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    None => {
                        let value = UnknownChargePoint {
                            operator_id: operator_id.to_owned(),
                            charge_point_id: charge_point_id.to_owned(),
                            first_seen: now,
                            last_seen: now,
                            attempts: 1,
                            detail: detail.to_owned(),
                        };
                        match Self::insert_in(&mut tx, &value).await {
                            Ok(()) | Err(StoreError::Unique(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_unknown_charge_points(&self, filters: &[Filter], page: &Page) -> Result<Vec<UnknownChargePoint>, StoreError> {
                self.list(filters, page).await
            }

            async fn put_id_token(&self, token: &IdToken, change: &NewChange) -> Result<IdToken, StoreError> {
                let current: Option<Versioned<IdToken>> = self.fetch(&token.operator_id, &token.token).await?;
                let mut tx = self.pool.begin().await?;
                let saved = match current {
                    Some(Versioned { value, version }) => {
                        let next = IdToken { created_at: value.created_at, ..token.clone() };
                        Self::update_in(&mut tx, &next, version).await?;
                        next
                    }
                    None => {
                        Self::insert_in(&mut tx, token).await?;
                        token.clone()
                    }
                };
                Self::append_change(&mut tx, change).await?;
                tx.commit().await?;
                Ok(saved)
            }

            async fn id_token(&self, operator_id: &str, token: &str) -> Result<Option<IdToken>, StoreError> {
                Ok(self.fetch::<IdToken>(operator_id, token).await?.map(|v| v.value))
            }

            async fn list_id_tokens(&self, filters: &[Filter], page: &Page) -> Result<Vec<IdToken>, StoreError> {
                self.list(filters, page).await
            }

            async fn create_equipment(&self, eq: &Equipment, change: &NewChange) -> Result<(), StoreError> {
                self.create(eq, change).await
            }

            async fn equipment(&self, operator_id: &str, equipment_id: &str) -> Result<Option<Versioned<Equipment>>, StoreError> {
                self.fetch(operator_id, equipment_id).await
            }

            async fn list_equipment(&self, filters: &[Filter], page: &Page) -> Result<Vec<Equipment>, StoreError> {
                self.list(filters, page).await
            }

            async fn update_equipment(&self, eq: &Equipment, version: i64, change: &NewChange) -> Result<(), StoreError> {
                self.update(eq, version, change).await
            }

            async fn create_certificate(&self, cert: &StationCertificate, change: &NewChange) -> Result<(), StoreError> {
                self.create(cert, change).await
            }

            async fn list_certificates(&self, filters: &[Filter]) -> Result<Vec<Certificate>, StoreError> {
                let certs: Vec<StationCertificate> = self.list(filters, &Page::WHOLE_STATION).await?;
                Ok(certs.into_iter().map(|c| c.certificate).collect())
            }

            async fn list_changes(&self, query: &ChangeQuery) -> Result<Vec<ChangeRecord>, StoreError> {
                use sqlx::Row as _;
                let (sql, values) = changes_sql(query);
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(values[0].clone()).bind(query.after_sequence);
                for v in &values[1..] {
                    q = q.bind(v.clone());
                }
                let rows = q.fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|row| {
                        Ok(ChangeRecord {
                            sequence: row.try_get("sequence")?,
                            operator_id: row.try_get("operator_id")?,
                            entity_type: row.try_get("entity_type")?,
                            entity_id: row.try_get("entity_id")?,
                            action: row.try_get("action")?,
                            actor: row.try_get("actor")?,
                            note: row.try_get("note")?,
                            recorded_at: row.try_get("recorded_at")?,
                            before: row
                                .try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>("before_doc")?
                                .map(|j| j.0),
                            after: row.try_get::<sqlx::types::Json<serde_json::Value>, _>("after_doc")?.0,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map_err(StoreError::from)
            }
        }
    };
}

sql_asset_store!(
    PgAssetStore,
    sqlx::PgPool,
    sqlx::Postgres,
    chargemesh_kit::outbox::push_pg
);
sql_asset_store!(
    SqliteAssetStore,
    sqlx::SqlitePool,
    sqlx::Sqlite,
    chargemesh_kit::outbox::push_sqlite
);

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
