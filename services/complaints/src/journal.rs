//! What complaints tell reporting (REQ CMP-1, EVAL-2): a fact per change of a complaint,
//! appended to the journal in the change's own transaction.

use chrono::{DateTime, Utc};

use chargemesh_kit::journal::Entry;
use chargemesh_kit::time::opt_timestamp;
use chargemesh_proto::journal::v1 as pb;

use crate::domain::complaint::Complaint;

fn name(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_lowercase()
}

/// The fact of a complaint as it stands, at its `version`.
pub fn complaint_entry(c: &Complaint, version: i64, now: DateTime<Utc>) -> Entry {
    let fact = pb::ComplaintFact {
        complaint_id: c.complaint_id.clone(),
        station_id: c.station_id.clone().unwrap_or_default(),
        kind: name(c.kind),
        category: serde_json::to_value(c.category)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        receive_time: opt_timestamp(Some(c.received_at)),
        response_due_time: opt_timestamp(Some(c.response_due())),
        acknowledge_time: opt_timestamp(c.acknowledged_at),
        satisfaction: c.satisfaction.map_or(0, u32::from),
        state: name(c.state),
    };
    Entry::new(
        &c.operator_id,
        "complaint",
        &c.complaint_id,
        version,
        now,
        pb::fact::Fact::Complaint(fact),
    )
}
