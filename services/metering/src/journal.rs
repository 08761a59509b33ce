//! What metering tells reporting: a fact per version of a charge order (sessions and energy for
//! the KPIs; not-billable orders as evidence of charging on an unverified meter, REQ BASE-5),
//! appended to the journal in the same transaction as the version.

use chargemesh_kit::journal::Entry;
use chargemesh_kit::time::opt_timestamp;
use chargemesh_proto::journal::v1 as pb;

use crate::domain::order::ChargeOrder;
use crate::domain::session::OpenSession;

/// The fact of one version of a charge order.
pub fn charge_order_entry(o: &ChargeOrder) -> Entry {
    let settled = o.settlement.as_ref();
    let fact = pb::ChargeOrderFact {
        order_id: o.order_id.clone(),
        station_id: o.station_id.clone(),
        pile_id: o.pile_id.clone(),
        connector_id: o.connector_id.clone(),
        start_time: opt_timestamp(Some(o.start)),
        end_time: opt_timestamp(o.end),
        energy_kwh: settled
            .map(|s| s.energy_kwh.to_string())
            .unwrap_or_default(),
        total_money: settled
            .map(|s| s.total_money.to_string())
            .unwrap_or_default(),
        billable: o.billable,
        not_billable_reason: o.not_billable_reason.clone().unwrap_or_default(),
    };
    Entry::new(
        &o.operator_id,
        "charge_order",
        &o.order_id,
        i64::from(o.version),
        o.recorded_at,
        pb::fact::Fact::ChargeOrder(fact),
    )
}

/// The fact of a running session (or, with `running` false, of its end); its version grows with
/// each reading, and its end is later than any reading.
pub fn session_entry(s: &OpenSession, running: bool, now: chrono::DateTime<chrono::Utc>) -> Entry {
    let first = s.samples.first();
    let last = s.samples.last();
    let energy = match (first, last) {
        (Some(a), Some(b)) => (b.register_kwh - a.register_kwh).round_dp(3).to_string(),
        _ => "0".into(),
    };
    let readings = i64::try_from(s.samples.len()).unwrap_or(i64::MAX - 1);
    let fact = pb::ChargeSessionFact {
        order_id: s.order_id.clone(),
        station_id: s.station_id.clone(),
        pile_id: s.pile_id.clone(),
        connector_id: s.connector_id.clone(),
        start_time: opt_timestamp(Some(s.start)),
        sample_time: opt_timestamp(Some(last.map_or(s.start, |l| l.at))),
        energy_kwh: energy,
        running,
    };
    Entry::new(
        &s.operator_id,
        "charge_session",
        &s.order_id,
        if running { readings } else { readings + 1 },
        now,
        pb::fact::Fact::ChargeSession(fact),
    )
}
