//! Complaints persistence: each complaint and corrective action a document with its steps under
//! optimistic concurrency, their durable clocks and the breaches they recorded, and the
//! satisfaction answers. The statements run unchanged on PostgreSQL and SQLite.

use chargemesh_kit::db::BeginWrite as _;
use chrono::{DateTime, Utc};

use chargemesh_kit::db::{Database, Migrations, StoreError};
use chargemesh_kit::paging::{Keyed, Keyset};

use crate::domain::action::CorrectiveAction;
use crate::domain::complaint::Complaint;
use crate::domain::satisfaction::{Answer, Bucket, Tally, month_of};

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

/// Which complaints a listing wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ComplaintFilter<'a> {
    pub station_id: Option<&'a str>,
    /// Archived ones too.
    pub include_archived: bool,
}

/// Which corrective actions a listing wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionFilter<'a> {
    /// Only those answering this complaint.
    pub complaint_id: Option<&'a str>,
    /// Effective (closed) ones too.
    pub include_closed: bool,
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

#[tonic::async_trait]
pub trait ComplaintStore: Send + Sync + std::fmt::Debug + 'static {
    /// Files a complaint with its clocks.
    async fn create(
        &self,
        complaint: &Complaint,
        clocks: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        self.create_with_steps(complaint, clocks, &[]).await
    }
    /// Keeps a new complaint with its clocks and the steps that must follow it (the work order
    /// it calls for, the dispute of its order) written to the outbox in the same transaction.
    async fn create_with_steps(
        &self,
        complaint: &Complaint,
        clocks: &[(String, DateTime<Utc>)],
        steps: &[chargemesh_kit::outbox::Step],
    ) -> Result<(), StoreError>;
    async fn complaint(
        &self,
        operator_id: &str,
        complaint_id: &str,
    ) -> Result<Option<(Complaint, i64)>, StoreError>;
    /// A page of the operator's complaints, newest first.
    async fn complaints(
        &self,
        operator_id: &str,
        filter: ComplaintFilter<'_>,
        page: &Keyset,
    ) -> Result<Vec<Keyed<Complaint>>, StoreError>;
    /// Complaints received at or after `since`, oldest first.
    async fn complaints_since(
        &self,
        operator_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Complaint>, StoreError>;
    /// Writes a complaint back with any new clocks and satisfaction answers, in one
    /// transaction; `Conflict` when it changed since `version`.
    async fn update(
        &self,
        complaint: &Complaint,
        version: i64,
        clocks: &[(String, DateTime<Utc>)],
        answers: &[Answer],
    ) -> Result<(), StoreError>;
    /// REQ EVAL-2: keeps an answer once; returns the answer as kept under its id (an earlier one
    /// when the id was used).
    async fn record_answer(&self, answer: &Answer) -> Result<Answer, StoreError>;
    /// REQ EVAL-2: the counts of answers and of complaints by kind, per month and station, for
    /// the months `from..=to` ("YYYY-MM").
    async fn tallies(
        &self,
        operator_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<Tally>, StoreError>;
    /// REQ EVAL-3: files a corrective action with its first clock.
    async fn create_action(
        &self,
        action: &CorrectiveAction,
        clocks: &[(String, DateTime<Utc>)],
    ) -> Result<(), StoreError>;
    async fn action(
        &self,
        operator_id: &str,
        action_id: &str,
    ) -> Result<Option<(CorrectiveAction, i64)>, StoreError>;
    /// A page of the operator's actions, newest first.
    async fn actions(
        &self,
        operator_id: &str,
        filter: ActionFilter<'_>,
        page: &Keyset,
    ) -> Result<Vec<Keyed<CorrectiveAction>>, StoreError>;
    /// Writes an action back with any new clock; `Conflict` when it changed since `version`.
    async fn update_action(
        &self,
        action: &CorrectiveAction,
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

fn name_of(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_lowercase()
}

macro_rules! sql_complaint_store {
    ($store:ident, $pool:ty, $db:ty, $journal:path, $outbox:path) => {
        #[derive(Debug, Clone)]
        pub struct $store {
            pool: $pool,
        }

        impl $store {
            pub fn new(pool: $pool) -> Self {
                Self { pool }
            }

            /// Starts the clocks of a complaint or an action (its id in `complaint_id`).
            async fn insert_clocks(
                tx: &mut sqlx::Transaction<'static, $db>,
                operator_id: &str,
                id: &str,
                clocks: &[(String, DateTime<Utc>)],
            ) -> Result<(), StoreError> {
                for (kind, due) in clocks {
                    sqlx::query(
                        "INSERT INTO complaint_deadlines (operator_id, complaint_id, kind, due_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(operator_id)
                    .bind(id)
                    .bind(kind)
                    .bind(*due)
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            async fn insert_answer(
                tx: &mut sqlx::Transaction<'static, $db>,
                a: &Answer,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "INSERT INTO satisfaction_answers \
                     (operator_id, answer_id, source, station_id, month, score, answered_at, doc) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(&a.operator_id)
                .bind(&a.answer_id)
                .bind(a.source.as_str())
                .bind(a.station_id.as_deref().unwrap_or(""))
                .bind(a.month())
                .bind(i32::from(a.score))
                .bind(a.answered_at)
                .bind(sqlx::types::Json(a))
                .execute(&mut **tx)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[tonic::async_trait]
        impl ComplaintStore for $store {
            async fn create_with_steps(&self, c: &Complaint, clocks: &[(String, DateTime<Utc>)], steps: &[chargemesh_kit::outbox::Step]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                sqlx::query(
                    "INSERT INTO complaints (operator_id, complaint_id, station_id, state, version, doc, received_at, kind, month, updated_at) \
                     VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $6)",
                )
                .bind(&c.operator_id)
                .bind(&c.complaint_id)
                .bind(c.station_id.as_deref().unwrap_or(""))
                .bind(name_of(c.state))
                .bind(sqlx::types::Json(c))
                .bind(c.received_at)
                .bind(name_of(c.kind))
                .bind(month_of(c.received_at))
                .execute(&mut *tx)
                .await?;
                Self::insert_clocks(&mut tx, &c.operator_id, &c.complaint_id, clocks).await?;
                $outbox(&mut tx, steps, c.received_at).await?;
                $journal(&mut tx, &[crate::journal::complaint_entry(c, 1, c.received_at)]).await?;
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

            async fn complaints(&self, operator_id: &str, filter: ComplaintFilter<'_>, page: &Keyset) -> Result<Vec<Keyed<Complaint>>, StoreError> {
                let rows: Vec<(sqlx::types::Json<Complaint>, DateTime<Utc>, String)> = sqlx::query_as(
                    "SELECT doc, received_at, complaint_id FROM complaints WHERE operator_id = $1 \
                     AND ($2 = '' OR station_id = $2) AND ($3 = 1 OR state <> 'archived') \
                     AND (received_at < $4 OR (received_at = $4 AND complaint_id < $5)) \
                     ORDER BY received_at DESC, complaint_id DESC LIMIT $6",
                )
                .bind(operator_id)
                .bind(filter.station_id.unwrap_or(""))
                .bind(i64::from(filter.include_archived))
                .bind(page.before_at)
                .bind(&page.before_id)
                .bind(page.fetch())
                .fetch_all(&self.pool)
                .await?;
                Ok(keyed(rows))
            }

            async fn complaints_since(&self, operator_id: &str, since: DateTime<Utc>) -> Result<Vec<Complaint>, StoreError> {
                let rows: Vec<sqlx::types::Json<Complaint>> = sqlx::query_scalar(
                    "SELECT doc FROM complaints WHERE operator_id = $1 AND received_at >= $2 \
                     ORDER BY received_at, complaint_id LIMIT 10000",
                )
                .bind(operator_id)
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|j| j.0).collect())
            }

            async fn update(
                &self,
                c: &Complaint,
                version: i64,
                clocks: &[(String, DateTime<Utc>)],
                answers: &[Answer],
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE complaints SET state = $3, doc = $4, version = version + 1, updated_at = $6 \
                     WHERE operator_id = $1 AND complaint_id = $2 AND version = $5",
                )
                .bind(&c.operator_id)
                .bind(&c.complaint_id)
                .bind(name_of(c.state))
                .bind(sqlx::types::Json(c))
                .bind(version)
                .bind(c.steps.last().map_or(c.received_at, |s| s.at))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("complaint {}", c.complaint_id)));
                }
                Self::insert_clocks(&mut tx, &c.operator_id, &c.complaint_id, clocks).await?;
                for answer in answers {
                    Self::insert_answer(&mut tx, answer).await?;
                }
                let now = c.steps.last().map_or(c.received_at, |s| s.at);
                $journal(&mut tx, &[crate::journal::complaint_entry(c, version + 1, now)]).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_answer(&self, answer: &Answer) -> Result<Answer, StoreError> {
                let mut tx = self.pool.begin_write().await?;
                Self::insert_answer(&mut tx, answer).await?;
                let kept: sqlx::types::Json<Answer> = sqlx::query_scalar(
                    "SELECT doc FROM satisfaction_answers WHERE operator_id = $1 AND answer_id = $2",
                )
                .bind(&answer.operator_id)
                .bind(&answer.answer_id)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(kept.0)
            }

            async fn tallies(&self, operator_id: &str, from: &str, to: &str) -> Result<Vec<Tally>, StoreError> {
                let answers: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT month, station_id, source, COUNT(*), SUM(score), \
                            SUM(CASE WHEN score >= 4 THEN 1 ELSE 0 END) \
                     FROM satisfaction_answers WHERE operator_id = $1 AND month >= $2 AND month <= $3 \
                     GROUP BY month, station_id, source",
                )
                .bind(operator_id)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                let received: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT month, station_id, kind, COUNT(*) FROM complaints \
                     WHERE operator_id = $1 AND month >= $2 AND month <= $3 \
                     GROUP BY month, station_id, kind",
                )
                .bind(operator_id)
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                let count = |n: i64| u64::try_from(n).unwrap_or(0);
                let counted = received
                    .into_iter()
                    .map(|(month, station_id, bucket, n)| (month, station_id, bucket, n, 0, 0));
                Ok(answers
                    .into_iter()
                    .chain(counted)
                    .filter_map(|(month, station_id, bucket, n, sum, satisfied)| {
                        Some(Tally {
                            month,
                            station_id,
                            bucket: Bucket::parse(&bucket)?,
                            count: count(n),
                            score_sum: count(sum),
                            satisfied: count(satisfied),
                        })
                    })
                    .collect())
            }

            async fn create_action(&self, a: &CorrectiveAction, clocks: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                sqlx::query(
                    "INSERT INTO corrective_actions (operator_id, action_id, state, version, doc, opened_at, updated_at) \
                     VALUES ($1, $2, $3, 1, $4, $5, $5)",
                )
                .bind(&a.operator_id)
                .bind(&a.action_id)
                .bind(name_of(a.state))
                .bind(sqlx::types::Json(a))
                .bind(a.opened_at)
                .execute(&mut *tx)
                .await?;
                for complaint_id in &a.complaint_ids {
                    sqlx::query(
                        "INSERT INTO corrective_action_complaints (operator_id, complaint_id, action_id) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(&a.operator_id)
                    .bind(complaint_id)
                    .bind(&a.action_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Self::insert_clocks(&mut tx, &a.operator_id, &a.action_id, clocks).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn action(&self, operator_id: &str, action_id: &str) -> Result<Option<(CorrectiveAction, i64)>, StoreError> {
                let row: Option<(sqlx::types::Json<CorrectiveAction>, i64)> = sqlx::query_as(
                    "SELECT doc, version FROM corrective_actions WHERE operator_id = $1 AND action_id = $2",
                )
                .bind(operator_id)
                .bind(action_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(doc, version)| (doc.0, version)))
            }

            async fn actions(&self, operator_id: &str, filter: ActionFilter<'_>, page: &Keyset) -> Result<Vec<Keyed<CorrectiveAction>>, StoreError> {
                let rows: Vec<(sqlx::types::Json<CorrectiveAction>, DateTime<Utc>, String)> = sqlx::query_as(
                    "SELECT a.doc, a.opened_at, a.action_id FROM corrective_actions a WHERE a.operator_id = $1 \
                     AND ($2 = '' OR EXISTS (SELECT 1 FROM corrective_action_complaints l \
                         WHERE l.operator_id = a.operator_id AND l.action_id = a.action_id AND l.complaint_id = $2)) \
                     AND ($3 = 1 OR a.state <> 'effective') \
                     AND (a.opened_at < $4 OR (a.opened_at = $4 AND a.action_id < $5)) \
                     ORDER BY a.opened_at DESC, a.action_id DESC LIMIT $6",
                )
                .bind(operator_id)
                .bind(filter.complaint_id.unwrap_or(""))
                .bind(i64::from(filter.include_closed))
                .bind(page.before_at)
                .bind(&page.before_id)
                .bind(page.fetch())
                .fetch_all(&self.pool)
                .await?;
                Ok(keyed(rows))
            }

            async fn update_action(&self, a: &CorrectiveAction, version: i64, clocks: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE corrective_actions SET state = $3, doc = $4, version = version + 1, updated_at = $6 \
                     WHERE operator_id = $1 AND action_id = $2 AND version = $5",
                )
                .bind(&a.operator_id)
                .bind(&a.action_id)
                .bind(name_of(a.state))
                .bind(sqlx::types::Json(a))
                .bind(version)
                .bind(a.steps.last().map_or(a.opened_at, |s| s.at))
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!("corrective action {}", a.action_id)));
                }
                Self::insert_clocks(&mut tx, &a.operator_id, &a.action_id, clocks).await?;
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
                let mut tx = self.pool.begin_write().await?;
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

sql_complaint_store!(
    PgComplaintStore,
    sqlx::PgPool,
    sqlx::Postgres,
    chargemesh_kit::journal::append_pg,
    chargemesh_kit::outbox::push_pg
);
sql_complaint_store!(
    SqliteComplaintStore,
    sqlx::SqlitePool,
    sqlx::Sqlite,
    chargemesh_kit::journal::append_sqlite,
    chargemesh_kit::outbox::push_sqlite
);

/// Migrates the database and returns the store for its backend.
pub async fn open(database: &Database) -> Result<std::sync::Arc<dyn ComplaintStore>, StoreError> {
    database.migrate(MIGRATIONS).await?;
    Ok(for_database(database))
}

/// The store for a migrated database's backend.
pub fn for_database(database: &Database) -> std::sync::Arc<dyn ComplaintStore> {
    match database {
        Database::Postgres(pool) => std::sync::Arc::new(PgComplaintStore::new(pool.clone())),
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteComplaintStore::new(pool.clone())),
    }
}
