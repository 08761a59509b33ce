//! The dispatch store on SQL: one implementation, instantiated for PostgreSQL and SQLite, whose
//! statements run unchanged on both.

use super::*;
use chargemesh_kit::db::BeginWrite as _;

fn open_key(order: &WorkOrder) -> Option<String> {
    use crate::domain::work_order::Channel;
    match (&order.connector_id, order.channel, order.state) {
        (Some(c), Channel::Automatic, s) if s != State::Closed => Some(c.clone()),
        _ => None,
    }
}

/// Rows read with their (time, id) key, decoded from their JSON column.
fn keyed<T>(rows: Vec<(sqlx::types::Json<T>, DateTime<Utc>, String)>) -> Vec<Keyed<T>> {
    rows.into_iter()
        .map(|(doc, at, id)| Keyed {
            item: doc.0,
            at,
            id,
        })
        .collect()
}

macro_rules! sql_dispatch_store {
    ($store:ident, $pool:ty, $journal:path, $outbox:path) => {
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
        impl DispatchStore for $store {
            async fn create_staff(&self, staff: &StaffRecord, now: DateTime<Utc>) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO staff (operator_id, staff_id, doc, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&staff.operator_id)
                    .bind(&staff.member.staff_id)
                    .bind(sqlx::types::Json(staff))
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn staff(&self, operator_id: &str, page: &Keyset) -> Result<Vec<Keyed<StaffRecord>>, StoreError> {
                let rows: Vec<(sqlx::types::Json<StaffRecord>, DateTime<Utc>, String)> = sqlx::query_as(
                    "SELECT doc, created_at, staff_id FROM staff WHERE operator_id = $1 \
                     AND (created_at < $2 OR (created_at = $2 AND staff_id < $3)) \
                     ORDER BY created_at DESC, staff_id DESC LIMIT $4",
                )
                .bind(operator_id)
                .bind(page.before_at)
                .bind(&page.before_id)
                .bind(page.fetch())
                .fetch_all(&self.pool)
                .await?;
                Ok(keyed(rows))
            }

            async fn staff_member(&self, operator_id: &str, staff_id: &str) -> Result<Option<(StaffRecord, i64)>, StoreError> {
                let row: Option<(sqlx::types::Json<StaffRecord>, i64)> =
                    sqlx::query_as("SELECT doc, version FROM staff WHERE operator_id = $1 AND staff_id = $2")
                        .bind(operator_id)
                        .bind(staff_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(doc, version)| (doc.0, version)))
            }

            async fn update_staff(&self, staff: &StaffRecord, version: i64) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE staff SET doc = $3, version = version + 1 \
                     WHERE operator_id = $1 AND staff_id = $2 AND version = $4",
                )
                .bind(&staff.operator_id)
                .bind(&staff.member.staff_id)
                .bind(sqlx::types::Json(staff))
                .bind(version)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("staff member {}", staff.member.staff_id)));
                }
                Ok(())
            }

            async fn create_order(&self, order: &WorkOrder, deadlines: &[(&str, DateTime<Utc>)]) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let inserted = sqlx::query(
                    "INSERT INTO work_orders (operator_id, order_id, station_id, open_key, state, version, doc, created_at, updated_at, pile_id) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&order.operator_id)
                .bind(&order.order_id)
                .bind(&order.station_id)
                .bind(open_key(order))
                .bind(state_name(order.state))
                .bind(sqlx::types::Json(order))
                .bind(order.received_at)
                .bind(&order.pile_id)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Ok(false);
                }
                for (kind, due) in deadlines {
                    sqlx::query("INSERT INTO deadlines (operator_id, order_id, kind, due_at) VALUES ($1, $2, $3, $4)")
                        .bind(&order.operator_id)
                        .bind(&order.order_id)
                        .bind(*kind)
                        .bind(*due)
                        .execute(&mut *tx)
                        .await?;
                }
                $journal(&mut tx, &[crate::journal::work_order_entry(order, 1, order.received_at)]).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn order(&self, operator_id: &str, order_id: &str) -> Result<Option<(WorkOrder, i64)>, StoreError> {
                let row: Option<(sqlx::types::Json<WorkOrder>, i64)> =
                    sqlx::query_as("SELECT doc, version FROM work_orders WHERE operator_id = $1 AND order_id = $2")
                        .bind(operator_id)
                        .bind(order_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(doc, version)| (doc.0, version)))
            }

            async fn orders(&self, operator_id: &str, filter: OrderFilter<'_>, page: &Keyset) -> Result<Vec<Keyed<WorkOrder>>, StoreError> {
                let rows: Vec<(sqlx::types::Json<WorkOrder>, DateTime<Utc>, String)> = sqlx::query_as(
                    "SELECT doc, created_at, order_id FROM work_orders WHERE operator_id = $1 \
                     AND ($2 = '' OR station_id = $2) AND ($3 = '' OR pile_id = $3) \
                     AND ($4 = 0 OR state <> 'closed') \
                     AND (created_at < $5 OR (created_at = $5 AND order_id < $6)) \
                     ORDER BY created_at DESC, order_id DESC LIMIT $7",
                )
                .bind(operator_id)
                .bind(filter.station_id.unwrap_or(""))
                .bind(filter.pile_id.unwrap_or(""))
                .bind(i64::from(filter.open_only))
                .bind(page.before_at)
                .bind(&page.before_id)
                .bind(page.fetch())
                .fetch_all(&self.pool)
                .await?;
                Ok(keyed(rows))
            }

            async fn update_order(&self, order: &WorkOrder, version: i64, now: DateTime<Utc>, steps: &[chargemesh_kit::outbox::Step]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE work_orders SET open_key = $3, state = $4, doc = $5, updated_at = $6, version = version + 1 \
                     WHERE operator_id = $1 AND order_id = $2 AND version = $7",
                )
                .bind(&order.operator_id)
                .bind(&order.order_id)
                .bind(open_key(order))
                .bind(state_name(order.state))
                .bind(sqlx::types::Json(order))
                .bind(now)
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("work order {}", order.order_id)));
                }
                $outbox(&mut tx, steps, now).await?;
                $journal(&mut tx, &[crate::journal::work_order_entry(order, version + 1, now)]).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn add_deadline(&self, operator_id: &str, subject_id: &str, kind: &str, due_at: DateTime<Utc>) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO deadlines (operator_id, order_id, kind, due_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(operator_id)
                .bind(subject_id)
                .bind(kind)
                .bind(due_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn due_deadlines(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<DueDeadline>, StoreError> {
                let sql = format!(
                    "SELECT operator_id, order_id, kind, due_at FROM deadlines WHERE fired_at IS NULL AND due_at <= $1 \
                     ORDER BY due_at LIMIT {}",
                    limit.max(1)
                );
                let rows: Vec<(String, String, String, DateTime<Utc>)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(operator_id, subject_id, kind, due_at)| DueDeadline {
                        operator_id,
                        subject_id,
                        kind,
                        due_at,
                    })
                    .collect())
            }

            async fn fire(&self, due: &DueDeadline, breach: Option<&str>, now: DateTime<Utc>) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let fired = sqlx::query(
                    "UPDATE deadlines SET fired_at = $4 WHERE operator_id = $1 AND order_id = $2 AND kind = $3 AND fired_at IS NULL",
                )
                .bind(&due.operator_id)
                .bind(&due.subject_id)
                .bind(&due.kind)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if fired.rows_affected() == 0 {
                    return Ok(false);
                }
                if let Some(rule) = breach {
                    sqlx::query(
                        "INSERT INTO breaches (operator_id, order_id, what, rule, due_at, recorded_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    )
                    .bind(&due.operator_id)
                    .bind(&due.subject_id)
                    .bind(&due.kind)
                    .bind(rule)
                    .bind(due.due_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn breaches(&self, operator_id: &str, order_id: &str) -> Result<Vec<(String, String)>, StoreError> {
                Ok(sqlx::query_as("SELECT what, rule FROM breaches WHERE operator_id = $1 AND order_id = $2 ORDER BY due_at")
                    .bind(operator_id)
                    .bind(order_id)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn create_defect(&self, defect: &Defect) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                sqlx::query(
                    "INSERT INTO defects (operator_id, defect_id, station_id, pile_id, state, version, doc, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7)",
                )
                .bind(&defect.operator_id)
                .bind(&defect.defect_id)
                .bind(&defect.station_id)
                .bind(defect.pile_id.as_deref().unwrap_or(""))
                .bind(defect_state(defect.state))
                .bind(sqlx::types::Json(defect))
                .bind(defect.found_at)
                .execute(&mut *tx)
                .await?;
                $journal(&mut tx, &[crate::journal::defect_entry(defect, 1, defect.found_at)]).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn defect(&self, operator_id: &str, defect_id: &str) -> Result<Option<(Defect, i64)>, StoreError> {
                let row: Option<(sqlx::types::Json<Defect>, i64)> =
                    sqlx::query_as("SELECT doc, version FROM defects WHERE operator_id = $1 AND defect_id = $2")
                        .bind(operator_id)
                        .bind(defect_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(doc, version)| (doc.0, version)))
            }

            async fn update_defect(&self, defect: &Defect, version: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE defects SET state = $3, doc = $4, updated_at = $5, version = version + 1 \
                     WHERE operator_id = $1 AND defect_id = $2 AND version = $6",
                )
                .bind(&defect.operator_id)
                .bind(&defect.defect_id)
                .bind(defect_state(defect.state))
                .bind(sqlx::types::Json(defect))
                .bind(now)
                .bind(version)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("defect {}", defect.defect_id)));
                }
                $journal(&mut tx, &[crate::journal::defect_entry(defect, version + 1, now)]).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn defects(&self, operator_id: &str, filter: DefectFilter<'_>, page: &Keyset) -> Result<Vec<Keyed<Defect>>, StoreError> {
                let rows: Vec<(sqlx::types::Json<Defect>, DateTime<Utc>, String)> = sqlx::query_as(
                    "SELECT doc, created_at, defect_id FROM defects WHERE operator_id = $1 \
                     AND ($2 = '' OR station_id = $2) AND ($3 = '' OR pile_id = $3) \
                     AND ($4 = 0 OR state <> 'accepted') \
                     AND (created_at < $5 OR (created_at = $5 AND defect_id < $6)) \
                     ORDER BY created_at DESC, defect_id DESC LIMIT $7",
                )
                .bind(operator_id)
                .bind(filter.station_id.unwrap_or(""))
                .bind(filter.pile_id.unwrap_or(""))
                .bind(i64::from(filter.open_only))
                .bind(page.before_at)
                .bind(&page.before_id)
                .bind(page.fetch())
                .fetch_all(&self.pool)
                .await?;
                Ok(keyed(rows))
            }

            async fn insert_doc(&self, key: DocKey<'_>, station_id: &str, open: bool, doc: &serde_json::Value, now: DateTime<Utc>,
                entries: &[journal::Entry])
            -> Result<(), StoreError> {
                let DocKey { kind, operator_id, id } = key;
                let mut tx = self.pool.begin_write().await?;
                sqlx::query(
                    "INSERT INTO documents (kind, operator_id, doc_id, station_id, version, doc, created_at, updated_at, is_open) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6, $6, $7)",
                )
                .bind(kind)
                .bind(operator_id)
                .bind(id)
                .bind(station_id)
                .bind(sqlx::types::Json(doc))
                .bind(now)
                .bind(i64::from(open))
                .execute(&mut *tx)
                .await?;
                $journal(&mut tx, entries).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn doc(&self, kind: &str, operator_id: &str, id: &str) -> Result<Option<(serde_json::Value, i64)>, StoreError> {
                let row: Option<(sqlx::types::Json<serde_json::Value>, i64)> = sqlx::query_as(
                    "SELECT doc, version FROM documents WHERE kind = $1 AND operator_id = $2 AND doc_id = $3",
                )
                .bind(kind)
                .bind(operator_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(doc, version)| (doc.0, version)))
            }

            async fn update_doc(&self, key: DocKey<'_>, open: bool, doc: &serde_json::Value, version: i64, now: DateTime<Utc>,
                entries: &[journal::Entry])
            -> Result<(), StoreError> {
                let DocKey { kind, operator_id, id } = key;
                let mut tx = self.pool.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE documents SET doc = $4, updated_at = $5, version = version + 1, is_open = $7 \
                     WHERE kind = $1 AND operator_id = $2 AND doc_id = $3 AND version = $6",
                )
                .bind(kind)
                .bind(operator_id)
                .bind(id)
                .bind(sqlx::types::Json(doc))
                .bind(now)
                .bind(version)
                .bind(i64::from(open))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("{kind} {id}")));
                }
                $journal(&mut tx, entries).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn docs(&self, kind: &str, operator_id: &str, filter: DocFilter<'_>, page: &Keyset) -> Result<Vec<Keyed<serde_json::Value>>, StoreError> {
                let rows: Vec<(sqlx::types::Json<serde_json::Value>, DateTime<Utc>, String)> = sqlx::query_as(
                    "SELECT doc, created_at, doc_id FROM documents WHERE kind = $1 AND operator_id = $2 \
                     AND ($3 = '' OR station_id = $3) AND ($4 = 0 OR is_open = 1) \
                     AND (created_at < $5 OR (created_at = $5 AND doc_id < $6)) \
                     ORDER BY created_at DESC, doc_id DESC LIMIT $7",
                )
                .bind(kind)
                .bind(operator_id)
                .bind(filter.station_id.unwrap_or(""))
                .bind(i64::from(filter.open_only))
                .bind(page.before_at)
                .bind(&page.before_id)
                .bind(page.fetch())
                .fetch_all(&self.pool)
                .await?;
                Ok(keyed(rows))
            }

            async fn follow_cursor(&self, name: &str) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar("SELECT cursor FROM follow_state WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn set_follow_cursor(&self, name: &str, cursor: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO follow_state (name, cursor) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET cursor = $2",
                )
                .bind(name)
                .bind(cursor)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

sql_dispatch_store!(
    PgDispatchStore,
    sqlx::PgPool,
    journal::append_pg,
    chargemesh_kit::outbox::push_pg
);
sql_dispatch_store!(
    SqliteDispatchStore,
    sqlx::SqlitePool,
    journal::append_sqlite,
    chargemesh_kit::outbox::push_sqlite
);
