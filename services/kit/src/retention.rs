//! Record retention (REQ REC-3, FAULT-9): every record is kept at least 3 years from its last
//! change; a record marked important is kept for good. Deleting one earlier is refused with
//! `FAILED_PRECONDITION` naming the rule; a purge removes only what is past retention, and every
//! removal is logged, durably, with what was removed and by whom.
//!
//! Each component names its record tables ([`RecordTable`]) and its migrations create
//! `retention_marks` (important records), `retention_log` (removals) and `retention_purge_gate`
//! (a row present only inside a purge's own transaction, which the append-only triggers of the
//! component's tables let a deletion through by).

use crate::db::BeginWrite as _;
use chrono::{DateTime, Months, Utc};

use crate::Error;
use crate::db::{Database, StoreError};

/// REQ REC-3: how long every record is kept at least.
pub const KEPT_FOR: Months = Months::new(36);

/// One table of records: the kind callers name, where it lives and what goes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTable {
    /// The kind callers name, such as "work_order".
    pub kind: &'static str,
    pub table: &'static str,
    pub id_column: &'static str,
    /// When the record last changed; retention runs from the latest such time of its rows.
    pub time_column: &'static str,
    /// Only rows with this column at this value (documents of one kind in a shared table).
    pub filter: Option<(&'static str, &'static str)>,
    /// Rows of other tables that belong to the record, by the same operator and id column.
    pub dependents: &'static [(&'static str, &'static str)],
}

/// A log kept whole and purged by age (telemetry, status changes): its entries are not records
/// one deletes one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTable {
    pub kind: &'static str,
    pub table: &'static str,
    /// When an entry was recorded.
    pub time_column: &'static str,
}

/// A record's retention as of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub last_changed: DateTime<Utc>,
    /// Kept permanently (REQ FAULT-9).
    pub important: bool,
}

/// When a record last changed at `last_changed` may be deleted.
pub fn kept_until(last_changed: DateTime<Utc>) -> DateTime<Utc> {
    last_changed
        .checked_add_months(KEPT_FOR)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// REQ REC-3, FAULT-9: whether a record may be deleted at `now`.
pub fn may_delete(kind: &str, id: &str, r: &Retention, now: DateTime<Utc>) -> Result<(), Error> {
    if r.important {
        return Err(Error::precondition(
            "FAULT-9",
            format!("{kind} {id} is marked important and is kept permanently"),
        ));
    }
    let until = kept_until(r.last_changed);
    if now < until {
        return Err(Error::precondition(
            "REC-3",
            format!(
                "{kind} {id} is kept at least 3 years, until {}",
                until.format("%Y-%m-%d")
            ),
        ));
    }
    Ok(())
}

/// A record removed by a deletion or a purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub kind: &'static str,
    pub operator_id: String,
    pub record_id: String,
    pub last_changed: DateTime<Utc>,
}

fn where_clause(t: &RecordTable, first: usize) -> String {
    let mut clause = format!(
        "operator_id = ${first} AND {} = ${}",
        t.id_column,
        first + 1
    );
    if let Some((column, value)) = t.filter {
        clause.push_str(&format!(" AND {column} = '{value}'"));
    }
    clause
}

macro_rules! on_backend {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Database::Postgres($pool) => $body,
            Database::Sqlite($pool) => $body,
        }
    };
}

/// The record's retention: when it last changed and whether it is important; `None` when the
/// operator has no such record.
pub async fn retention(
    db: &Database,
    t: &RecordTable,
    operator_id: &str,
    id: &str,
) -> Result<Option<Retention>, StoreError> {
    let sql = format!(
        "SELECT MAX({}) FROM {} WHERE {}",
        t.time_column,
        t.table,
        where_clause(t, 1)
    );
    let last: Option<DateTime<Utc>> = on_backend!(db, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
        .bind(operator_id)
        .bind(id)
        .fetch_one(pool)
        .await?);
    let Some(last_changed) = last else {
        return Ok(None);
    };
    let important: Option<String> = on_backend!(db, pool => sqlx::query_scalar(
        "SELECT reason FROM retention_marks WHERE kind = $1 AND operator_id = $2 AND record_id = $3",
    )
    .bind(t.kind)
    .bind(operator_id)
    .bind(id)
    .fetch_optional(pool)
    .await?);
    Ok(Some(Retention {
        last_changed,
        important: important.is_some(),
    }))
}

/// REQ FAULT-9: marks a record important; it is then kept permanently.
pub async fn mark_important(
    db: &Database,
    t: &RecordTable,
    operator_id: &str,
    id: &str,
    reason: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_backend!(db, pool => {
        sqlx::query(
            "INSERT INTO retention_marks (kind, operator_id, record_id, reason, marked_by, marked_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(t.kind)
        .bind(operator_id)
        .bind(id)
        .bind(reason)
        .bind(by)
        .bind(now)
        .execute(pool)
        .await?;
    });
    Ok(())
}

/// What deletion statements are bound to: a record's key, or a time before which all goes.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Record { operator_id: &'a str, id: &'a str },
    Before(DateTime<Utc>),
}

/// Runs deletion statements and logs the removal, in one transaction opened through the purge
/// gate the append-only triggers check.
async fn delete_logged(
    db: &Database,
    statements: &[String],
    target: Target<'_>,
    r: &Removed,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    on_backend!(db, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query("INSERT INTO retention_purge_gate (opened) VALUES (1)")
            .execute(&mut *tx)
            .await?;
        for sql in statements {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            let query = match target {
                Target::Record { operator_id, id } => query.bind(operator_id).bind(id),
                Target::Before(at) => query.bind(at),
            };
            query.execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO retention_log (kind, operator_id, record_id, last_changed, removed_at, removed_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(r.kind)
        .bind(&r.operator_id)
        .bind(&r.record_id)
        .bind(r.last_changed)
        .bind(now)
        .bind(by)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM retention_purge_gate")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Removes one record with the rows that belong to it and logs the removal, in one transaction
/// opened through the purge gate.
async fn remove(
    db: &Database,
    t: &RecordTable,
    r: &Removed,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut statements = vec![format!(
        "DELETE FROM {} WHERE {}",
        t.table,
        where_clause(t, 1)
    )];
    for (table, column) in t.dependents {
        statements.push(format!(
            "DELETE FROM {table} WHERE operator_id = $1 AND {column} = $2"
        ));
    }
    delete_logged(
        db,
        &statements,
        Target::Record {
            operator_id: &r.operator_id,
            id: &r.record_id,
        },
        r,
        by,
        now,
    )
    .await?;
    tracing::info!(
        kind = r.kind,
        operator = %r.operator_id,
        record = %r.record_id,
        last_changed = %r.last_changed,
        by,
        "record removed past retention (REQ REC-3)"
    );
    Ok(())
}

/// The record tables of a component and its database: deletions and purges by the rules.
#[derive(Debug, Clone)]
pub struct Records {
    db: Database,
    tables: &'static [RecordTable],
    logs: &'static [LogTable],
}

impl Records {
    pub fn new(db: Database, tables: &'static [RecordTable]) -> Self {
        Self {
            db,
            tables,
            logs: &[],
        }
    }

    /// With logs purged by age as a whole.
    pub fn with_logs(mut self, logs: &'static [LogTable]) -> Self {
        self.logs = logs;
        self
    }

    fn table(&self, kind: &str) -> Result<&'static RecordTable, Error> {
        if let Some(log) = self.logs.iter().find(|l| l.kind == kind.trim()) {
            return Err(Error::precondition(
                "REC-3",
                format!(
                    "the {} log is kept 3 years and purged by age, not entry by entry",
                    log.kind
                ),
            ));
        }
        self.tables
            .iter()
            .find(|t| t.kind == kind.trim())
            .ok_or_else(|| {
                let kinds: Vec<&str> = self.tables.iter().map(|t| t.kind).collect();
                Error::bad_field("kind", format!("is one of {}", kinds.join(", ")))
            })
    }

    /// Deletes one record when the rules allow it.
    pub async fn delete(
        &self,
        kind: &str,
        operator_id: &str,
        id: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Removed, Error> {
        let t = self.table(kind)?;
        let id = id.trim();
        let r = retention(&self.db, t, operator_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{} {id}", t.kind)))?;
        may_delete(t.kind, id, &r, now)?;
        let removed = Removed {
            kind: t.kind,
            operator_id: operator_id.to_owned(),
            record_id: id.to_owned(),
            last_changed: r.last_changed,
        };
        remove(&self.db, t, &removed, by, now).await?;
        Ok(removed)
    }

    /// REQ FAULT-9: marks a record important, to be kept permanently.
    pub async fn mark_important(
        &self,
        kind: &str,
        operator_id: &str,
        id: &str,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let t = self.table(kind)?;
        let id = id.trim();
        if reason.trim().is_empty() {
            return Err(Error::invalid(
                "reason",
                "FAULT-9",
                "why the record is important is recorded",
            ));
        }
        retention(&self.db, t, operator_id, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{} {id}", t.kind)))?;
        mark_important(&self.db, t, operator_id, id, reason.trim(), by, now).await?;
        Ok(())
    }

    /// Removes every record past retention and not important, at most `limit` per pass; with
    /// `dry_run`, only says what it would remove.
    pub async fn purge(
        &self,
        by: &str,
        now: DateTime<Utc>,
        limit: u32,
        dry_run: bool,
    ) -> Result<Vec<Removed>, Error> {
        let cutoff = now
            .checked_sub_months(KEPT_FOR)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let mut removed = Vec::new();
        for t in self.tables {
            let filter = t
                .filter
                .map(|(column, value)| format!(" AND {column} = '{value}'"))
                .unwrap_or_default();
            let sql = format!(
                "SELECT operator_id, {id}, MAX({time}) FROM {table} r WHERE 1 = 1{filter} \
                 GROUP BY operator_id, {id} HAVING MAX({time}) < $1 \
                 AND NOT EXISTS (SELECT 1 FROM retention_marks m WHERE m.kind = $2 \
                 AND m.operator_id = r.operator_id AND m.record_id = r.{id}) LIMIT {limit}",
                id = t.id_column,
                time = t.time_column,
                table = t.table,
                limit = limit.clamp(1, 10_000),
            );
            let rows: Vec<(String, String, DateTime<Utc>)> = on_backend!(&self.db, pool =>
                sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(cutoff)
                    .bind(t.kind)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::from)?);
            for (operator_id, record_id, last_changed) in rows {
                let r = Removed {
                    kind: t.kind,
                    operator_id,
                    record_id,
                    last_changed,
                };
                if !dry_run {
                    remove(&self.db, t, &r, by, now).await?;
                }
                removed.push(r);
            }
        }
        for log in self.logs {
            if let Some(r) = self.purge_log(log, cutoff, by, now, dry_run).await? {
                removed.push(r);
            }
        }
        Ok(removed)
    }

    /// Removes a log's entries recorded before `cutoff`, logging one removal with their number.
    async fn purge_log(
        &self,
        log: &LogTable,
        cutoff: DateTime<Utc>,
        by: &str,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Option<Removed>, StoreError> {
        let count_sql = format!(
            "SELECT COUNT(*) FROM {} WHERE {} < $1",
            log.table, log.time_column
        );
        let delete_sql = format!("DELETE FROM {} WHERE {} < $1", log.table, log.time_column);
        let count: i64 = on_backend!(&self.db, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.clone()))
            .bind(cutoff)
            .fetch_one(pool)
            .await?);
        if count == 0 {
            return Ok(None);
        }
        let r = Removed {
            kind: log.kind,
            operator_id: String::new(),
            record_id: format!(
                "{count} entries before {}",
                cutoff.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            last_changed: cutoff,
        };
        if dry_run {
            return Ok(Some(r));
        }
        delete_logged(&self.db, &[delete_sql], Target::Before(cutoff), &r, by, now).await?;
        tracing::info!(kind = r.kind, removed = %r.record_id, by, "log entries removed past retention (REQ REC-3)");
        Ok(Some(r))
    }

    /// Purges every `every` until the task is aborted.
    pub fn spawn_purge(
        &self,
        clock: crate::clock::SharedClock,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(std::time::Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match this
                    .purge("retention purge", clock.now(), 1_000, false)
                    .await
                {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(removed = removed.len(), "retention purge pass");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "retention purge failed"),
                }
            }
        })
    }
}

/// The removal as the protobuf `RemovedRecord`.
pub fn removed_to_pb(r: &Removed) -> chargemesh_proto::common::v1::RemovedRecord {
    chargemesh_proto::common::v1::RemovedRecord {
        kind: r.kind.to_owned(),
        operator_id: r.operator_id.clone(),
        record_id: r.record_id.clone(),
        last_change_time: Some(crate::time::to_timestamp(r.last_changed)),
    }
}

/// Implements a component's `<Component>RecordsService` (the same three methods in each
/// component's package) over [`Records`]: `records_service!(DispatchRecordsApi, dpb,
/// dispatch_records_service_server, DispatchRecordsService, DispatchRecordsServiceServer)` with
/// `dpb` the component's protobuf module.
#[macro_export]
macro_rules! records_service {
    ($api:ident, $pb:ident, $server_mod:ident, $service:ident, $server:ident) => {
        /// The component's records under the retention rules (REQ REC-3, FAULT-9).
        #[derive(Debug, Clone)]
        pub struct $api {
            records: $crate::retention::Records,
            clock: $crate::clock::SharedClock,
        }

        impl $api {
            pub fn new(
                records: $crate::retention::Records,
                clock: $crate::clock::SharedClock,
            ) -> Self {
                Self { records, clock }
            }

            pub fn into_server(self) -> $pb::$server_mod::$server<Self> {
                $pb::$server_mod::$server::new(self)
            }
        }

        #[tonic::async_trait]
        impl $pb::$server_mod::$service for $api {
            async fn delete_record(
                &self,
                request: tonic::Request<$pb::DeleteRecordRequest>,
            ) -> $crate::error::Reply<$pb::DeleteRecordResponse> {
                let p = $crate::server::principal(&request)?;
                let r = request.into_inner();
                let result = async {
                    let op = p.acting_for(&r.operator_id, "records")?;
                    let removed = self
                        .records
                        .delete(&r.kind, &op, &r.record_id, &p.to_string(), self.clock.now())
                        .await?;
                    Ok($pb::DeleteRecordResponse {
                        removed: Some($crate::retention::removed_to_pb(&removed)),
                    })
                };
                $crate::error::reply(result.await)
            }

            async fn mark_record_important(
                &self,
                request: tonic::Request<$pb::MarkRecordImportantRequest>,
            ) -> $crate::error::Reply<$pb::MarkRecordImportantResponse> {
                let p = $crate::server::principal(&request)?;
                let r = request.into_inner();
                let result = async {
                    let op = p.acting_for(&r.operator_id, "records")?;
                    self.records
                        .mark_important(
                            &r.kind,
                            &op,
                            &r.record_id,
                            &r.reason,
                            &p.to_string(),
                            self.clock.now(),
                        )
                        .await?;
                    Ok($pb::MarkRecordImportantResponse {})
                };
                $crate::error::reply(result.await)
            }

            async fn purge_expired_records(
                &self,
                request: tonic::Request<$pb::PurgeExpiredRecordsRequest>,
            ) -> $crate::error::Reply<$pb::PurgeExpiredRecordsResponse> {
                let p = $crate::server::principal(&request)?;
                let r = request.into_inner();
                let result = self
                    .records
                    .purge(&p.to_string(), self.clock.now(), 1_000, r.dry_run)
                    .await;
                $crate::error::reply(result.map(|removed| {
                    $pb::PurgeExpiredRecordsResponse {
                        removed: removed
                            .iter()
                            .map($crate::retention::removed_to_pb)
                            .collect(),
                    }
                }))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn rule(e: &Error) -> Option<&'static str> {
        match e {
            Error::Precondition { rule, .. } => *rule,
            _ => None,
        }
    }

    #[test]
    fn rec_3_a_record_is_kept_3_years_from_its_last_change() {
        let r = Retention {
            last_changed: t("2024-03-05T00:00:00Z"),
            important: false,
        };
        let two_years =
            may_delete("work_order", "WO-1", &r, t("2026-03-05T00:00:00Z")).expect_err("kept");
        assert_eq!(rule(&two_years), Some("REC-3"));
        assert!(two_years.to_string().contains("2027-03-05"), "{two_years}");
        assert!(may_delete("work_order", "WO-1", &r, t("2027-03-05T00:00:00Z")).is_ok());
    }

    #[test]
    fn fault_9_an_important_record_is_kept_permanently() {
        let r = Retention {
            last_changed: t("2010-01-01T00:00:00Z"),
            important: true,
        };
        let e = may_delete("defect", "D-1", &r, t("2026-03-05T00:00:00Z")).expect_err("kept");
        assert_eq!(rule(&e), Some("FAULT-9"));
    }
}
