//! The PostgreSQL and SQLite stores: one implementation of [`AssetStore`], instantiated for each
//! backend; the statements are shared, only the pool differs.

use chargemesh_kit::db::BeginWrite as _;
use chrono::{DateTime, Utc};

use chargemesh_kit::db::StoreError;
use chargemesh_kit::outbox::Step;

use crate::domain::model::{
    Certificate, ChangeRecord, Equipment, IdToken, Operator, Pile, Station, UnknownChargePoint,
};

use super::entity::*;
use super::{AssetStore, ChangeQuery, ChargePointRow, Filter, NewChange, Page, Versioned};

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
                let mut tx = self.pool.begin_write().await?;
                Self::insert_in(&mut tx, record).await?;
                Self::append_change(&mut tx, change).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn update<E: Entity>(&self, record: &E, version: i64, change: &NewChange) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
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
                let mut tx = self.pool.begin_write().await?;
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
                let mut tx = self.pool.begin_write().await?;
                Self::update_in(&mut tx, pile, version).await?;
                Self::claim_connectors(&mut tx, pile).await?;
                Self::claim_charge_point(&mut tx, pile).await?;
                Self::append_change(&mut tx, change).await?;
                $push(&mut tx, steps, change.recorded_at).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn set_charge_point_password(&self, pile: &Pile, version: i64, hash: &str, change: &NewChange) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
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
                let mut tx = self.pool.begin_write().await?;
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
                let mut tx = self.pool.begin_write().await?;
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
