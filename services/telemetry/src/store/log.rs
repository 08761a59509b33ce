//! The telemetry log's own statements: which reports it holds already, and the insert of new
//! ones (one UNNEST statement on PostgreSQL, multi-row VALUES on SQLite), chunked.

use chrono::{DateTime, Utc};

use chargemesh_kit::db::{StoreError, generated};

use super::sql::{LOG_CHUNK, Placeholders, existing_sql, insert_log_sql};
use crate::domain::Report;

/// (sender, sequence) pairs.
type Keys = std::collections::HashSet<(String, i64)>;

/// PostgreSQL: which of the reports the log holds, in one statement.
pub(super) async fn existing_postgres(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    reports: &[&Report],
) -> Result<Keys, StoreError> {
    if reports.is_empty() {
        return Ok(Keys::new());
    }
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.source, t.source_sequence FROM telemetry_log t \
         JOIN UNNEST($1::text[], $2::bigint[]) AS u(s, q) ON t.source = u.s AND t.source_sequence = u.q",
    )
    .bind(reports.iter().map(|r| r.source.as_str()).collect::<Vec<&str>>())
    .bind(reports.iter().map(|r| r.sequence as i64).collect::<Vec<i64>>())
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// SQLite: which of the reports the log holds, a chunk at a time.
pub(super) async fn existing_sqlite(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    reports: &[&Report],
) -> Result<Keys, StoreError> {
    let mut held = Keys::new();
    for chunk in reports.chunks(LOG_CHUNK) {
        let sql = existing_sql(Placeholders::Positional, chunk.len());
        let mut query =
            sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql)).persistent(false);
        for r in chunk {
            query = query.bind(&r.source).bind(r.sequence as i64);
        }
        held.extend(query.fetch_all(&mut **tx).await?);
    }
    Ok(held)
}

/// A resend that committed meanwhile on another replica: the batch is applied again.
fn raced(inserted: u64, expected: usize) -> Result<(), StoreError> {
    if inserted < expected as u64 {
        return Err(StoreError::Conflict("a report resent meanwhile".into()));
    }
    Ok(())
}

/// PostgreSQL: the whole batch as arrays in one statement that stays prepared, whatever the
/// batch size, numbered from `first`. One statement also means one round trip.
pub(super) async fn insert_log_postgres(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    reports: &[Report],
    first: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let bodies = reports
        .iter()
        .map(|r| serde_json::to_string(&r.body))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    let column = |f: fn(&Report) -> &str| reports.iter().map(f).collect::<Vec<&str>>();
    let inserted = sqlx::query(
        "INSERT INTO telemetry_log \
         (sequence, source, source_sequence, operator_id, station_id, pile_id, connector_id, kind, observed_at, received_at, body) \
         SELECT n, s, q, o, st, p, c, k, t, $11, b::jsonb \
         FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::text[]) \
         AS u(n, s, q, o, st, p, c, k, t, b) \
         ON CONFLICT (source, source_sequence) DO NOTHING",
    )
    .bind((0..reports.len() as i64).map(|i| first + i).collect::<Vec<i64>>())
    .bind(column(|r| &r.source))
    .bind(reports.iter().map(|r| r.sequence as i64).collect::<Vec<i64>>())
    .bind(column(|r| &r.operator_id))
    .bind(column(|r| &r.station_id))
    .bind(column(|r| &r.pile_id))
    .bind(column(|r| &r.connector_id))
    .bind(column(|r| r.body.kind()))
    .bind(reports.iter().map(|r| r.observed_at).collect::<Vec<DateTime<Utc>>>())
    .bind(bodies)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    raced(inserted, reports.len())
}

/// SQLite: multi-row inserts with positional parameters, numbered from `first`.
pub(super) async fn insert_log_sqlite(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    reports: &[Report],
    first: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut sequence = first;
    for chunk in reports.chunks(LOG_CHUNK) {
        let sql = format!(
            "{} ON CONFLICT (source, source_sequence) DO NOTHING",
            insert_log_sql(Placeholders::Positional, chunk.len())
        );
        let mut query = generated(sql);
        for r in chunk {
            query = query
                .bind(sequence)
                .bind(&r.source)
                .bind(r.sequence as i64)
                .bind(&r.operator_id)
                .bind(&r.station_id)
                .bind(&r.pile_id)
                .bind(&r.connector_id)
                .bind(r.body.kind())
                .bind(r.observed_at)
                .bind(now)
                .bind(sqlx::types::Json(&r.body));
            sequence += 1;
        }
        raced(query.execute(&mut **tx).await?.rows_affected(), chunk.len())?;
    }
    Ok(())
}
