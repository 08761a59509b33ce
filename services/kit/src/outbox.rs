//! The durable outbox of a component: a step that must follow a commit (suspend a pile once a
//! repair is overdue, open the work order a complaint calls for) is written in the same
//! transaction as the change that calls for it, then carried out — at once when it can be, and
//! retried with backoff until it is done. Handlers make each step idempotent, so a step carried
//! out twice (a crash between doing it and recording it) has the effect of once. One replica at a
//! time works the outbox. Each component's migrations create the table:
//!
//! ```sql
//! CREATE TABLE outbox (step_id TEXT PRIMARY KEY, kind TEXT, operator_id TEXT, subject_id TEXT,
//!   payload TEXT, created_at <time>, attempts INTEGER, next_attempt_at <time>, done_at <time>,
//!   last_error TEXT);
//! ```

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::SharedClock;
use crate::db::{Database, StoreError};

/// One step to carry out after a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Unique; the same step written twice is kept once.
    pub step_id: String,
    pub kind: String,
    pub operator_id: String,
    /// What the step is about (an order, a complaint).
    pub subject_id: String,
    /// Whatever else the handler needs, as JSON.
    pub payload: String,
}

impl Step {
    pub fn new(kind: &str, operator_id: &str, subject_id: &str) -> Self {
        Self {
            step_id: format!("{kind}:{operator_id}:{subject_id}"),
            kind: kind.to_owned(),
            operator_id: operator_id.to_owned(),
            subject_id: subject_id.to_owned(),
            payload: String::new(),
        }
    }
}

/// Why a step is not done yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// Try again later (the other component is unreachable, busy, ...).
    #[error("{0}")]
    Retry(String),
    /// It can never be done (the record is gone); kept with the reason, not retried.
    #[error("{0}")]
    Abandon(String),
}

/// Carries out the steps of a component.
#[tonic::async_trait]
pub trait StepHandler: Send + Sync + 'static {
    async fn run(&self, step: &Step) -> Result<(), StepError>;
}

/// Retries are paced by wall time (they are about the network, not the standard's clocks), so
/// `next_attempt_at` is always wall time; `created_at` is the change's time.
const INSERT: &str = "INSERT INTO outbox (step_id, kind, operator_id, subject_id, payload, created_at, \
    attempts, next_attempt_at, done_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, NULL, '') \
    ON CONFLICT (step_id) DO NOTHING";

/// Writes steps inside a PostgreSQL transaction.
pub async fn push_pg(
    conn: &mut sqlx::PgConnection,
    steps: &[Step],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for s in steps {
        sqlx::query(INSERT)
            .bind(&s.step_id)
            .bind(&s.kind)
            .bind(&s.operator_id)
            .bind(&s.subject_id)
            .bind(&s.payload)
            .bind(now)
            .bind(Utc::now())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Writes steps inside a SQLite transaction.
pub async fn push_sqlite(
    conn: &mut sqlx::SqliteConnection,
    steps: &[Step],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for s in steps {
        sqlx::query(INSERT)
            .bind(&s.step_id)
            .bind(&s.kind)
            .bind(&s.operator_id)
            .bind(&s.subject_id)
            .bind(&s.payload)
            .bind(now)
            .bind(Utc::now())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

type Row = (String, String, String, String, String, i32);

/// A step not done yet, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub step: Step,
    pub attempts: i32,
}

/// The delay before attempt `attempts + 1`: doubling from one second, at most five minutes.
pub fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 16)).unwrap_or(0);
    Duration::from_secs(1u64 << exp).min(Duration::from_secs(300))
}

/// The outbox of one component's database, and who carries its steps out.
#[derive(Clone)]
pub struct Outbox {
    db: Database,
    handler: Arc<dyn StepHandler>,
    clock: SharedClock,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

macro_rules! on_backend {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Database::Postgres($pool) => $body,
            Database::Sqlite($pool) => $body,
        }
    };
}

impl Outbox {
    pub fn new(db: Database, handler: Arc<dyn StepHandler>, clock: SharedClock) -> Self {
        Self { db, handler, clock }
    }

    /// Steps due by now, oldest first.
    pub async fn due(&self, limit: u32) -> Result<Vec<Pending>, StoreError> {
        let rows: Vec<Row> = on_backend!(&self.db, pool => sqlx::query_as(
            "SELECT step_id, kind, operator_id, subject_id, payload, attempts FROM outbox \
             WHERE done_at IS NULL AND next_attempt_at <= $1 ORDER BY created_at LIMIT $2",
        )
        .bind(Utc::now())
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(pending).collect())
    }

    /// A step not done yet, by its id.
    pub async fn pending(&self, step_id: &str) -> Result<Option<Pending>, StoreError> {
        let row: Option<Row> = on_backend!(&self.db, pool => sqlx::query_as(
            "SELECT step_id, kind, operator_id, subject_id, payload, attempts FROM outbox \
             WHERE step_id = $1 AND done_at IS NULL",
        )
        .bind(step_id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(pending))
    }

    /// Carries out one step and records what became of it; true when it is done.
    pub async fn attempt(&self, p: &Pending) -> Result<bool, StoreError> {
        let outcome = self.handler.run(&p.step).await;
        let now = Utc::now();
        let (done, error, next) = match &outcome {
            Ok(()) => (Some(self.clock.now()), String::new(), now),
            Err(StepError::Abandon(why)) => {
                tracing::error!(step = %p.step.step_id, why, "outbox step abandoned");
                (Some(self.clock.now()), format!("abandoned: {why}"), now)
            }
            Err(StepError::Retry(why)) => {
                let delay = chrono::Duration::from_std(backoff(p.attempts)).unwrap_or_default();
                tracing::warn!(step = %p.step.step_id, why, attempts = p.attempts + 1, "outbox step not done yet; it is retried");
                (None, why.clone(), now + delay)
            }
        };
        on_backend!(&self.db, pool => {
            sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, done_at = $2, last_error = $3, next_attempt_at = $4 \
                 WHERE step_id = $1 AND done_at IS NULL",
            )
            .bind(&p.step.step_id)
            .bind(done)
            .bind(&error)
            .bind(next)
            .execute(pool)
            .await?;
        });
        Ok(outcome.is_ok())
    }

    /// Carries out a step just committed, at once (its later retries are the runner's).
    pub async fn run_now(&self, step_id: &str) -> Result<bool, StoreError> {
        match self.pending(step_id).await? {
            Some(p) => self.attempt(&p).await,
            None => Ok(true),
        }
    }

    /// One pass over the due steps, when this replica leads the outbox; how many got done.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let Some(lead) = self.db.leadership("outbox").await? else {
            return Ok(0);
        };
        let mut done = 0;
        let result = async {
            for p in self.due(100).await? {
                if self.attempt(&p).await? {
                    done += 1;
                }
            }
            Ok::<_, StoreError>(())
        }
        .await;
        lead.release().await;
        result.map(|()| done)
    }

    /// Runs passes every `every` until the task is aborted.
    pub fn spawn(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = this.pass().await {
                    tracing::warn!(%error, "outbox pass failed");
                }
            }
        })
    }
}

fn pending(r: Row) -> Pending {
    Pending {
        step: Step {
            step_id: r.0,
            kind: r.1,
            operator_id: r.2,
            subject_id: r.3,
            payload: r.4,
        },
        attempts: r.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_five_minutes() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(300));
        assert_eq!(backoff(-1), Duration::from_secs(1));
    }
}
