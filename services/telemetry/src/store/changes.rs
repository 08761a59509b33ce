//! The status log's read: a watcher's span of changes within its scope, the same statement on
//! PostgreSQL and SQLite.

use chrono::{DateTime, Utc};

use chargemesh_kit::db::StoreError;
use chargemesh_kit::tenancy::StatusScope;

use super::StatusChange;
use super::sql::parse_state;
use crate::domain::ConnectorState;

/// The status log's columns, as [`ChangeRow`] names them.
pub(super) const CHANGE_COLUMNS: &str = "cursor, operator_id, station_id, pile_id, connector_id, area_code, state, previous_state, \
    fault_code, fault_text, origin, changed_at, recorded_at";

/// One status log row as read.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ChangeRow {
    cursor: i64,
    operator_id: String,
    station_id: String,
    pile_id: String,
    connector_id: String,
    area_code: String,
    state: String,
    previous_state: String,
    fault_code: String,
    fault_text: String,
    origin: String,
    changed_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
}

/// The read of the changes in `($1, $2]`, in cursor order, at most `limit`, and the value of
/// the scope's own parameter (`$3`) when it has one.
///
/// The range is closed so that the read is a range scan of the primary key whatever the planner
/// believes of the table's size (see `TelemetryStore::changes_after`).
pub(super) fn changes_after_sql(scope: &StatusScope, limit: u32) -> (String, Option<String>) {
    let (filter, value) = match scope {
        StatusScope::Operator(operator_id) => ("operator_id = $3 AND ", Some(operator_id.clone())),
        StatusScope::Area(prefix) => (
            "area_code LIKE $3 AND ",
            Some(format!("{}%", prefix.replace(['%', '_'], ""))),
        ),
        StatusScope::All => ("", None),
    };
    let sql = format!(
        "SELECT {CHANGE_COLUMNS} FROM status_changes WHERE {filter}cursor > $1 AND cursor <= $2 \
         ORDER BY cursor LIMIT {}",
        limit.max(1)
    );
    (sql, value)
}

/// A status change from its row.
pub(super) fn change_from_row(row: ChangeRow) -> Result<StatusChange, StoreError> {
    Ok(StatusChange {
        state: parse_state(&row.state)?,
        previous: ConnectorState::parse(&row.previous_state),
        cursor: row.cursor,
        operator_id: row.operator_id,
        station_id: row.station_id,
        pile_id: row.pile_id,
        connector_id: row.connector_id,
        area_code: row.area_code,
        fault_code: row.fault_code,
        fault_text: row.fault_text,
        origin: row.origin,
        changed_at: row.changed_at,
        recorded_at: row.recorded_at,
    })
}
