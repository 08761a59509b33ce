//! Dispatch persistence: staff, work orders (JSON documents beside their key columns), durable
//! deadlines and breaches. The statements run unchanged on PostgreSQL and SQLite.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use chargemesh_kit::db::{Database, Migrations, StoreError};
use chargemesh_kit::journal;
use chargemesh_kit::paging::{Keyed, Keyset};

use crate::domain::crew::StaffMember;
use crate::domain::defect::{Defect, DefectState};
use crate::domain::work_order::{State, WorkOrder};

mod sql;

pub use sql::{PgDispatchStore, SqliteDispatchStore};

pub static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
pub static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub const MIGRATIONS: Migrations = Migrations {
    postgres: &POSTGRES_MIGRATIONS,
    sqlite: &SQLITE_MIGRATIONS,
};

/// The kinds of record kept whole in the document store.
pub mod kind {
    pub const PLAN: &str = "maintenance_plan";
    pub const PATROL: &str = "patrol";
    pub const PATROL_SCHEDULE: &str = "patrol_schedule";
    pub const EMERGENCY_PLAN: &str = "emergency_plan";
    pub const DRILL: &str = "drill";
    pub const DOWNTIME: &str = "downtime";
    pub const STAFFING: &str = "staffing";
    pub const MONITORING: &str = "monitoring_register";
    pub const DAILY_CHECK: &str = "daily_check";
    pub const INCIDENT: &str = "incident";
    pub const WORK_LOG: &str = "work_log";
    pub const SHIFT_HANDOVER: &str = "shift_handover";
}

/// A record as the document store keeps it.
pub fn to_doc<T: Serialize>(value: &T) -> Result<serde_json::Value, chargemesh_kit::Error> {
    serde_json::to_value(value).map_err(|e| StoreError::Internal(e.to_string()).into())
}

/// A record back from the document store.
pub fn from_doc<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, chargemesh_kit::Error> {
    serde_json::from_value(value).map_err(|e| StoreError::Internal(e.to_string()).into())
}

/// Where a document is filed: its kind, operator and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocKey<'a> {
    pub kind: &'a str,
    pub operator_id: &'a str,
    pub id: &'a str,
}

/// A record kept whole in the document store, filed under its kind and keys.
pub trait Document: Serialize + serde::de::DeserializeOwned + Send + Sync {
    const KIND: &'static str;
    fn operator_id(&self) -> &str;
    fn doc_id(&self) -> &str;
    fn station_id(&self) -> &str;
    /// Whether the record still asks for work (a patrol not done, an incident not closed), so
    /// listings of open records find it without reading closed ones.
    fn is_open(&self) -> bool {
        true
    }
    /// What reporting is told of the record as it stands, if anything.
    fn fact(&self) -> Option<chargemesh_proto::journal::v1::fact::Fact> {
        None
    }
}

/// The journal entry of a record at `version`, when it has a fact to tell.
fn entries_of<D: Document>(record: &D, version: i64, now: DateTime<Utc>) -> Vec<journal::Entry> {
    record
        .fact()
        .map(|fact| {
            journal::Entry::new(
                record.operator_id(),
                D::KIND,
                record.doc_id(),
                version,
                now,
                fact,
            )
        })
        .into_iter()
        .collect()
}

macro_rules! document {
    ($type:ty, $kind:expr, $id:ident $(, fact = $fact:path)? $(, open = $open:expr)?) => {
        impl Document for $type {
            const KIND: &'static str = $kind;
            fn operator_id(&self) -> &str {
                &self.operator_id
            }
            fn doc_id(&self) -> &str {
                &self.$id
            }
            fn station_id(&self) -> &str {
                &self.station_id
            }
            $(
            fn is_open(&self) -> bool {
                let open: fn(&Self) -> bool = $open;
                open(self)
            }
            )?
            $(
            fn fact(&self) -> Option<chargemesh_proto::journal::v1::fact::Fact> {
                Some($fact(self))
            }
            )?
        }
    };
}

document!(
    crate::domain::plan::MaintenancePlan,
    kind::PLAN,
    plan_id,
    fact = crate::journal::plan_fact
);
document!(
    crate::domain::patrol::Patrol,
    kind::PATROL,
    patrol_id,
    open = |p| p.done_at.is_none()
);
document!(
    crate::domain::patrol::PatrolSchedule,
    kind::PATROL_SCHEDULE,
    schedule_id
);
document!(
    crate::domain::emergency::EmergencyPlan,
    kind::EMERGENCY_PLAN,
    plan_id
);
document!(
    crate::domain::emergency::Drill,
    kind::DRILL,
    drill_id,
    fact = crate::journal::drill_fact
);
document!(crate::domain::logbook::WorkLog, kind::WORK_LOG, log_id);
document!(
    crate::domain::logbook::ShiftHandover,
    kind::SHIFT_HANDOVER,
    handover_id
);
document!(
    crate::domain::incident::Incident,
    kind::INCIDENT,
    incident_id,
    open = |i| i.closed_at.is_none()
);

/// Typed access to the document store: each record under its own kind and keys.
impl dyn DispatchStore {
    /// Files a new record; `AlreadyExists` when its id is taken.
    pub async fn insert<D: Document>(
        &self,
        record: &D,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_value(record).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.insert_doc(
            DocKey {
                kind: D::KIND,
                operator_id: record.operator_id(),
                id: record.doc_id(),
            },
            record.station_id(),
            record.is_open(),
            &doc,
            now,
            &entries_of(record, 1, now),
        )
        .await
    }

    /// A record with the version a save must name.
    pub async fn load<D: Document>(
        &self,
        operator_id: &str,
        id: &str,
    ) -> Result<Option<(D, i64)>, StoreError> {
        match self.doc(D::KIND, operator_id, id).await? {
            Some((doc, version)) => serde_json::from_value(doc)
                .map(|d| Some((d, version)))
                .map_err(|e| StoreError::Internal(e.to_string())),
            None => Ok(None),
        }
    }

    /// Writes a record back; `Conflict` when it changed since `version` was read.
    pub async fn save<D: Document>(
        &self,
        record: &D,
        version: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_value(record).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.update_doc(
            DocKey {
                kind: D::KIND,
                operator_id: record.operator_id(),
                id: record.doc_id(),
            },
            record.is_open(),
            &doc,
            version,
            now,
            &entries_of(record, version + 1, now),
        )
        .await
    }

    /// A page of an operator's records of the kind, newest first.
    pub async fn list<D: Document>(
        &self,
        operator_id: &str,
        filter: DocFilter<'_>,
        page: &Keyset,
    ) -> Result<Vec<Keyed<D>>, StoreError> {
        self.docs(D::KIND, operator_id, filter, page)
            .await?
            .into_iter()
            .map(|row| {
                row.try_map(|doc| {
                    serde_json::from_value(doc).map_err(|e| StoreError::Internal(e.to_string()))
                })
            })
            .collect()
    }

    /// The newest records of the kind that match, at most [`INTERNAL_READ`] of them: what a rule
    /// computed over a station's records (its plans, its drills) reads.
    pub async fn newest<D: Document>(
        &self,
        operator_id: &str,
        filter: DocFilter<'_>,
    ) -> Result<Vec<D>, StoreError> {
        let page = Keyset::first(INTERNAL_READ);
        Ok(self
            .list(operator_id, filter, &page)
            .await?
            .into_iter()
            .map(|row| row.item)
            .collect())
    }
}

/// How many of the newest records a rule reads at most. Every rule over them (the latest plan
/// per hazard, the last drill, the last maintenance) needs only the newest few; the bound keeps
/// one station with an absurd history from costing more than this.
pub const INTERNAL_READ: u32 = 2000;

/// Which documents a listing wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DocFilter<'a> {
    /// Only one station's.
    pub station_id: Option<&'a str>,
    /// Only those still open (see [`Document::is_open`]).
    pub open_only: bool,
}

/// Which work orders a listing wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderFilter<'a> {
    pub station_id: Option<&'a str>,
    pub pile_id: Option<&'a str>,
    /// Only those not closed.
    pub open_only: bool,
}

/// Which defects a listing wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefectFilter<'a> {
    pub station_id: Option<&'a str>,
    pub pile_id: Option<&'a str>,
    /// Only those not yet accepted (REQ DEF-3).
    pub open_only: bool,
}

/// A member of an operator's staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRecord {
    pub operator_id: String,
    #[serde(flatten)]
    pub member: StaffMember,
}

/// A clock of an order that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDeadline {
    pub operator_id: String,
    /// The record the clock belongs to: a work order, or a patrol schedule.
    pub subject_id: String,
    pub kind: String,
    pub due_at: DateTime<Utc>,
}

#[tonic::async_trait]
pub trait DispatchStore: Send + Sync + std::fmt::Debug + 'static {
    async fn create_staff(&self, staff: &StaffRecord, now: DateTime<Utc>)
    -> Result<(), StoreError>;
    /// A page of an operator's staff, newest first.
    async fn staff(
        &self,
        operator_id: &str,
        page: &Keyset,
    ) -> Result<Vec<Keyed<StaffRecord>>, StoreError>;
    /// One member with the version an update must name.
    async fn staff_member(
        &self,
        operator_id: &str,
        staff_id: &str,
    ) -> Result<Option<(StaffRecord, i64)>, StoreError>;
    /// Writes a member back; `Conflict` when it changed since `version` was read.
    async fn update_staff(&self, staff: &StaffRecord, version: i64) -> Result<(), StoreError>;
    /// Creates an order with its deadlines; `false` when an automatic order is already open for
    /// the connector.
    async fn create_order(
        &self,
        order: &WorkOrder,
        deadlines: &[(&str, DateTime<Utc>)],
    ) -> Result<bool, StoreError>;
    async fn order(
        &self,
        operator_id: &str,
        order_id: &str,
    ) -> Result<Option<(WorkOrder, i64)>, StoreError>;
    /// A page of an operator's work orders, newest first.
    async fn orders(
        &self,
        operator_id: &str,
        filter: OrderFilter<'_>,
        page: &Keyset,
    ) -> Result<Vec<Keyed<WorkOrder>>, StoreError>;
    /// Saves an order at the next version, with the steps that must follow the change (such as
    /// the pile's suspension at the 4-hour mark) written to the outbox in the same transaction.
    async fn update_order(
        &self,
        order: &WorkOrder,
        version: i64,
        now: DateTime<Utc>,
        steps: &[chargemesh_kit::outbox::Step],
    ) -> Result<(), StoreError>;
    /// Deadlines due by `now` that have not fired, oldest first.
    /// Adds one durable clock to a record (an order, a schedule); adding it again is a no-op.
    async fn add_deadline(
        &self,
        operator_id: &str,
        subject_id: &str,
        kind: &str,
        due_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn due_deadlines(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DueDeadline>, StoreError>;
    /// Marks a deadline fired, with the breach it found if any; `false` if it had fired already.
    async fn fire(
        &self,
        due: &DueDeadline,
        breach: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// The deadlines breached for an order: (what, rule).
    async fn breaches(
        &self,
        operator_id: &str,
        order_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;
    async fn create_defect(&self, defect: &Defect) -> Result<(), StoreError>;
    async fn defect(
        &self,
        operator_id: &str,
        defect_id: &str,
    ) -> Result<Option<(Defect, i64)>, StoreError>;
    async fn update_defect(
        &self,
        defect: &Defect,
        version: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// A page of an operator's defects, newest first.
    async fn defects(
        &self,
        operator_id: &str,
        filter: DefectFilter<'_>,
        page: &Keyset,
    ) -> Result<Vec<Keyed<Defect>>, StoreError>;
    /// Plans, patrols and other records kept as documents of a `kind`.
    async fn insert_doc(
        &self,
        key: DocKey<'_>,
        station_id: &str,
        open: bool,
        doc: &serde_json::Value,
        now: DateTime<Utc>,
        journal: &[journal::Entry],
    ) -> Result<(), StoreError>;
    async fn doc(
        &self,
        kind: &str,
        operator_id: &str,
        id: &str,
    ) -> Result<Option<(serde_json::Value, i64)>, StoreError>;
    async fn update_doc(
        &self,
        key: DocKey<'_>,
        open: bool,
        doc: &serde_json::Value,
        version: i64,
        now: DateTime<Utc>,
        journal: &[journal::Entry],
    ) -> Result<(), StoreError>;
    /// A page of an operator's documents of a kind, newest first.
    async fn docs(
        &self,
        kind: &str,
        operator_id: &str,
        filter: DocFilter<'_>,
        page: &Keyset,
    ) -> Result<Vec<Keyed<serde_json::Value>>, StoreError>;
    async fn follow_cursor(&self, name: &str) -> Result<Option<String>, StoreError>;
    async fn set_follow_cursor(&self, name: &str, cursor: &str) -> Result<(), StoreError>;
}

pub(crate) fn state_name(state: State) -> &'static str {
    match state {
        State::Received => "received",
        State::Dispatched => "dispatched",
        State::Arrived => "arrived",
        State::Resolved => "resolved",
        State::Closed => "closed",
    }
}

pub(crate) fn defect_state(state: DefectState) -> &'static str {
    match state {
        DefectState::Open => "open",
        DefectState::Eliminated => "eliminated",
        DefectState::Accepted => "accepted",
    }
}

/// Migrates the database and returns the store for its backend.
pub async fn open(database: &Database) -> Result<std::sync::Arc<dyn DispatchStore>, StoreError> {
    database.migrate(MIGRATIONS).await?;
    Ok(for_database(database))
}

/// The store for a migrated database's backend.
pub fn for_database(database: &Database) -> std::sync::Arc<dyn DispatchStore> {
    match database {
        Database::Postgres(pool) => std::sync::Arc::new(PgDispatchStore::new(pool.clone())),
        Database::Sqlite(pool) => std::sync::Arc::new(SqliteDispatchStore::new(pool.clone())),
    }
}
