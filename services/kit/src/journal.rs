//! The journal every record-keeping component keeps for reporting: one entry per change of a
//! record, appended in the same transaction as the change, carrying a fact about the record as it
//! now stands (`chargemesh.journal.v1`). Followers read it from a sequence through
//! `JournalService/ReadJournal`, which this module serves for any component's database. The
//! sequences are taken from a counter row that stays locked to the commit, so they follow commit
//! order and a follower resuming after a sequence misses nothing. Each component's migrations
//! create the tables:
//!
//! ```sql
//! CREATE TABLE journal (sequence <integer key>, entry_id TEXT UNIQUE, operator_id TEXT,
//!   kind TEXT, subject_id TEXT, version BIGINT, recorded_at <time>, fact <bytes>);
//! CREATE TABLE journal_counter (value BIGINT NOT NULL);  -- one row
//! ```

use chrono::{DateTime, Utc};
use prost::Message as _;
use tonic::{Request, Response, Status};

use chargemesh_proto::journal::v1 as pb;
use chargemesh_proto::journal::v1::journal_service_server::{JournalService, JournalServiceServer};

use crate::Principal;
use crate::db::{Database, StoreError};
use crate::server::principal;
use crate::time::to_timestamp;

/// One change to append.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub entry_id: String,
    pub operator_id: String,
    pub kind: &'static str,
    pub subject_id: String,
    pub version: i64,
    pub recorded_at: DateTime<Utc>,
    pub fact: pb::fact::Fact,
}

impl Entry {
    /// A new entry with a fresh id.
    pub fn new(
        operator_id: &str,
        kind: &'static str,
        subject_id: &str,
        version: i64,
        recorded_at: DateTime<Utc>,
        fact: pb::fact::Fact,
    ) -> Self {
        Self {
            entry_id: uuid::Uuid::now_v7().simple().to_string(),
            operator_id: operator_id.to_owned(),
            kind,
            subject_id: subject_id.to_owned(),
            version,
            recorded_at,
            fact,
        }
    }

    fn encoded_fact(&self) -> Vec<u8> {
        pb::Fact {
            fact: Some(self.fact.clone()),
        }
        .encode_to_vec()
    }
}

/// Takes the entries' sequences; the row stays locked until the transaction commits.
const ALLOCATE: &str = "UPDATE journal_counter SET value = value + $1 RETURNING value";
const APPEND_PG: &str = "INSERT INTO journal (sequence, entry_id, operator_id, kind, subject_id, version, recorded_at, fact) \
    OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const APPEND_SQLITE: &str = "INSERT INTO journal (sequence, entry_id, operator_id, kind, subject_id, version, recorded_at, fact) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// The first of `n` sequences, in commit order.
fn first_of(last: i64, n: usize) -> i64 {
    last - n as i64 + 1
}

/// Appends entries inside a PostgreSQL transaction; call it as late in the transaction as the
/// change allows, as the counter row is held from here to the commit.
pub async fn append_pg(conn: &mut sqlx::PgConnection, entries: &[Entry]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let last: i64 = sqlx::query_scalar(ALLOCATE)
        .bind(entries.len() as i64)
        .fetch_one(&mut *conn)
        .await?;
    for (i, e) in entries.iter().enumerate() {
        sqlx::query(APPEND_PG)
            .bind(first_of(last, entries.len()) + i as i64)
            .bind(&e.entry_id)
            .bind(&e.operator_id)
            .bind(e.kind)
            .bind(&e.subject_id)
            .bind(e.version)
            .bind(e.recorded_at)
            .bind(e.encoded_fact())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Appends entries inside a SQLite transaction.
pub async fn append_sqlite(
    conn: &mut sqlx::SqliteConnection,
    entries: &[Entry],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let last: i64 = sqlx::query_scalar(ALLOCATE)
        .bind(entries.len() as i64)
        .fetch_one(&mut *conn)
        .await?;
    for (i, e) in entries.iter().enumerate() {
        sqlx::query(APPEND_SQLITE)
            .bind(first_of(last, entries.len()) + i as i64)
            .bind(&e.entry_id)
            .bind(&e.operator_id)
            .bind(e.kind)
            .bind(&e.subject_id)
            .bind(e.version)
            .bind(e.recorded_at)
            .bind(e.encoded_fact())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    DateTime<Utc>,
    Vec<u8>,
);

const READ: &str = "SELECT sequence, entry_id, operator_id, kind, subject_id, version, recorded_at, fact \
    FROM journal WHERE sequence > $1 ORDER BY sequence LIMIT $2";
const LAST: &str = "SELECT COALESCE(MAX(sequence), 0) FROM journal";

/// Entries after `after`, oldest first, and the journal's last sequence.
pub async fn read(
    database: &Database,
    after: i64,
    limit: u32,
) -> Result<(Vec<pb::JournalEntry>, i64), StoreError> {
    let limit = i64::from(limit.clamp(1, 1000));
    let (rows, last): (Vec<Row>, i64) = match database {
        Database::Postgres(pool) => (
            sqlx::query_as(READ)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            sqlx::query_scalar(LAST).fetch_one(pool).await?,
        ),
        Database::Sqlite(pool) => (
            sqlx::query_as(READ)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?,
            sqlx::query_scalar(LAST).fetch_one(pool).await?,
        ),
    };
    let entries = rows
        .into_iter()
        .map(
            |(sequence, entry_id, operator_id, kind, subject_id, version, at, fact)| {
                let fact = pb::Fact::decode(fact.as_slice())
                    .map_err(|e| StoreError::Internal(format!("journal entry {entry_id}: {e}")))?;
                Ok(pb::JournalEntry {
                    sequence,
                    entry_id,
                    operator_id,
                    kind,
                    subject_id,
                    version,
                    record_time: Some(to_timestamp(at)),
                    fact: Some(fact),
                })
            },
        )
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((entries, last))
}

/// `chargemesh.journal.v1.JournalService` over one component's database; mesh components only.
#[derive(Debug, Clone)]
pub struct JournalApi {
    database: Database,
}

impl JournalApi {
    pub fn new(database: Database) -> Self {
        Self { database }
    }

    pub fn into_server(self) -> JournalServiceServer<Self> {
        JournalServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl JournalService for JournalApi {
    async fn read_journal(
        &self,
        request: Request<pb::ReadJournalRequest>,
    ) -> Result<Response<pb::ReadJournalResponse>, Status> {
        if !matches!(principal(&request)?, Principal::Service { .. }) {
            return Err(Status::permission_denied(
                "the journal is read by mesh components only",
            ));
        }
        let r = request.into_inner();
        let limit = match r.limit {
            0 => 500,
            n if n < 0 => {
                return crate::error::reply(Err(crate::Error::bad_field(
                    "limit",
                    "must not be negative",
                )));
            }
            n => n.unsigned_abs().min(1000),
        };
        let result = read(&self.database, r.after_sequence.max(0), limit).await;
        crate::error::reply(
            result
                .map(|(entries, last_sequence)| pb::ReadJournalResponse {
                    entries,
                    last_sequence,
                })
                .map_err(crate::Error::from),
        )
    }
}
