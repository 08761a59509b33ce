//! How each record kind sits in its table (a JSON document beside its key and index columns),
//! and the statements every backend shares for them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::model::{
    Certificate, Equipment, IdToken, Operator, Pile, Station, UnknownChargePoint,
};

use super::{ChangeQuery, Filter, Page};

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
pub(super) fn key_and_index_columns<E: Entity>() -> Vec<&'static str> {
    let mut cols = vec!["operator_id"];
    if E::ID_COLUMN != "operator_id" {
        cols.push(E::ID_COLUMN);
    }
    cols.extend_from_slice(E::COLUMNS);
    cols
}

pub(super) fn key_and_index_values<E: Entity>(e: &E) -> Vec<String> {
    let mut values = vec![e.operator_id().to_owned()];
    if E::ID_COLUMN != "operator_id" {
        values.push(e.id().to_owned());
    }
    values.extend(e.columns());
    values
}

pub(super) fn insert_sql<E: Entity>() -> String {
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

pub(super) fn select_sql<E: Entity>() -> String {
    format!(
        "SELECT version, doc FROM {} WHERE operator_id = $1 AND {} = $2",
        E::TABLE,
        E::ID_COLUMN
    )
}

/// `UPDATE ... WHERE version = $n`: binds index values, doc, updated_at, then the key and version.
pub(super) fn update_sql<E: Entity>() -> String {
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
pub(super) fn list_sql<E: Entity>(filters: &[Filter], page: &Page) -> (String, Vec<String>) {
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

pub(super) const INSERT_CHANGE: &str = "INSERT INTO change_records \
    (operator_id, entity_type, entity_id, action, actor, note, recorded_at, before_doc, after_doc) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(super) fn changes_sql(q: &ChangeQuery) -> (String, Vec<String>) {
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
