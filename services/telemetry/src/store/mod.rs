//! Persistence of telemetry: the durable log with deduplication, the live status of every
//! connector, and the gapless, commit-ordered log of status changes. The statements run
//! unchanged on PostgreSQL and SQLite.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use chargemesh_kit::db::StoreError;
use chargemesh_kit::tenancy::StatusScope;

use rust_decimal::Decimal;

use chargemesh_kit::db::{Database, Migrations};

use crate::domain::{Body, ConnectorState, Report};
use crate::trial::{Timeline, TrialDay};

mod changes;
mod log;
mod sql;

pub use sql::{PgTelemetryStore, SqliteTelemetryStore};

/// Where a status change came from.
pub const ORIGIN_TELEMETRY: &str = "telemetry";
/// A change derived from silence (REQ MON-1).
pub const ORIGIN_LIVENESS: &str = "liveness";

#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub cursor: i64,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    pub connector_id: String,
    pub area_code: String,
    pub state: ConnectorState,
    pub previous: Option<ConnectorState>,
    pub fault_code: String,
    pub fault_text: String,
    pub origin: String,
    pub changed_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveStatus {
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    pub connector_id: String,
    pub state: ConnectorState,
    pub fault_code: String,
    pub fault_text: String,
    pub origin: String,
    pub changed_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// What appending a batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppendOutcome {
    /// (sender, sequence) stored now; the others were stored before (resends).
    pub stored: Vec<(String, u64)>,
    pub changes: Vec<StatusChange>,
    /// Senders whose connector spoke while marked offline by silence: they should resync.
    pub resync: std::collections::HashSet<String>,
}

/// A command for a pile as the store keeps it; `command` is the encoded `PileCommand`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QueuedCommand {
    pub command_id: String,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    pub command: Vec<u8>,
    pub queued_at: DateTime<Utc>,
}

/// A command with where it stands.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CommandRecord {
    #[sqlx(flatten)]
    pub queued: QueuedCommand,
    /// queued, sent, accepted, rejected, failed, timed_out.
    pub state: String,
    pub attempts: i32,
    pub sent_at: Option<DateTime<Utc>>,
    pub answered_at: Option<DateTime<Utc>>,
    pub detail: String,
}

/// One accepted message as the log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub sequence: i64,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    pub connector_id: String,
    pub observed_at: DateTime<Utc>,
    pub body: Body,
}

#[tonic::async_trait]
pub trait TelemetryStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends the reports (of one or several senders) and applies them to the live status, in
    /// one transaction.
    async fn append(
        &self,
        reports: &[Report],
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome, StoreError> {
        self.append_checking(reports, None, now).await
    }
    /// As `append`, searching the log for resends only among the reports `may_be_resent` marks
    /// (in the order of `reports`; all when `None`). One not marked that the log holds after all
    /// fails the append with `Conflict` and nothing is written: the caller appends again with
    /// every report searched.
    async fn append_checking(
        &self,
        reports: &[Report],
        may_be_resent: Option<&[bool]>,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome, StoreError>;
    /// Moves the last-seen time of connectors heard from by heartbeat (operator, connector,
    /// when) forward, in one transaction; returns those the store holds offline by silence
    /// (REQ MON-1), whose piles must resync.
    async fn touch(
        &self,
        seen: &[(String, String, DateTime<Utc>)],
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// Marks offline every connector not heard from since `cutoff` (REQ MON-1).
    async fn sweep_offline(
        &self,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<StatusChange>, StoreError>;
    /// Status changes in `(cursor, upto]` within `scope`, in cursor order, at most `limit`.
    ///
    /// The range is closed so that the read is a range scan of the primary key whatever the
    /// planner believes of the table: with only a lower bound, a statement planned while the
    /// table was young (as a prepared statement's generic plan is) read every change and sorted
    /// them on each call, two thirds of PostgreSQL's busy time under 20,000 reporting piles.
    async fn changes_after(
        &self,
        cursor: i64,
        upto: i64,
        scope: &StatusScope,
        limit: u32,
    ) -> Result<Vec<StatusChange>, StoreError>;
    /// The cursor of the newest committed change.
    async fn latest_cursor(&self) -> Result<i64, StoreError>;
    /// How many connectors are in each live state (states with none are left out).
    async fn count_by_state(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// The live status of a station's connectors that have reported.
    async fn station_status(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Vec<LiveStatus>, StoreError>;
    /// Each connector's state at `start` (its last change before) and its changes in
    /// `[start, end)` in order.
    async fn timelines(
        &self,
        operator_id: &str,
        station_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<BTreeMap<String, Timeline>, StoreError>;
    /// Meter register readings per pile and connector in `[start, end)`, in observation order.
    async fn meter_registers(
        &self,
        operator_id: &str,
        station_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<BTreeMap<(String, String), Vec<Decimal>>, StoreError>;
    /// Up to `limit` entries of the log after `after`, in sequence order, keeping those of the
    /// `kinds` given (all when empty); with the last sequence scanned, where a reader resumes.
    async fn log_after(
        &self,
        after: i64,
        kinds: &[String],
        limit: u32,
    ) -> Result<(Vec<Logged>, i64), StoreError>;
    /// Keeps a command for a pile until it is delivered.
    async fn queue_command(&self, command: &QueuedCommand) -> Result<(), StoreError>;
    /// Commands to (re)send, oldest first: queued ones, and ones sent before `resend_before`
    /// that are not answered.
    async fn open_commands(
        &self,
        resend_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedCommand>, StoreError>;
    /// Takes a command for sending now; `false` when another sender has it, it was answered,
    /// or it has had its attempts.
    async fn claim_command(
        &self,
        command_id: &str,
        now: DateTime<Utc>,
        resend_before: DateTime<Utc>,
        max_attempts: i32,
    ) -> Result<bool, StoreError>;
    /// Gives a claimed command back (it could not go out after all).
    async fn release_command(&self, command_id: &str) -> Result<(), StoreError>;
    /// Marks timed out the commands sent before `resend_before`, unanswered, that have had
    /// their attempts; how many.
    async fn expire_commands(
        &self,
        resend_before: DateTime<Utc>,
        max_attempts: i32,
    ) -> Result<u64, StoreError>;
    /// A command of an operator with where it stands.
    async fn command(
        &self,
        operator_id: &str,
        command_id: &str,
    ) -> Result<Option<CommandRecord>, StoreError>;
    /// REQ MON-8: the link reports of a station in `[start, end)`, in observation order:
    /// (pile, observed at, body).
    async fn link_reports(
        &self,
        operator_id: &str,
        station_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>, Body)>, StoreError>;
    /// Publishes a trial day; `false` when it was published before.
    async fn publish_trial_day(
        &self,
        day: &TrialDay,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// A station's published trial days, oldest first.
    async fn trial_days(
        &self,
        operator_id: &str,
        station_id: &str,
    ) -> Result<Vec<TrialDay>, StoreError>;
}

pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The telemetry component's migrations for [`Database::migrate`].
pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
};

/// The store for a migrated database's backend.
pub fn for_database(database: &Database) -> std::sync::Arc<dyn TelemetryStore> {
    match database {
        Database::Postgres(pool) => std::sync::Arc::new(PgTelemetryStore::new(pool.clone())),
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteTelemetryStore::new(pool.clone())),
    }
}
