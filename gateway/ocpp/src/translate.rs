//! What a charge point's CALL becomes, for either version: telemetry reports to make durable,
//! then the answer; and what the edge remembers of one connection (orders started remotely, the
//! transactions running), bounded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use chargemesh_proto::telemetry::v1 as pb;
use pb::telemetry_message::Body;

use crate::rpc::{CallError, ErrorCode};

/// The most transactions and remote starts one connection keeps in mind; a charger has a few
/// connectors, so only a misbehaving one reaches it (the oldest are forgotten).
pub const MAX_REMEMBERED: usize = 64;

/// Where a report applies: the whole pile (OCPP connector 0, or none) or a connector by its
/// OCPP number (1-based; the pile's connectors in registry order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pile,
    Connector(u32),
}

/// One telemetry report before the edge gives it its sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// What identifies this report however often the charger sends it: the parts its sequence
    /// is made from.
    pub identity: Vec<String>,
    pub target: Target,
    pub at: DateTime<Utc>,
    pub body: Body,
}

/// What one CALL becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Handled {
    /// Made durable before the answer; none answers at once.
    pub reports: Vec<Report>,
    /// The CALLRESULT once every report is durable.
    pub reply: Value,
    /// The CALLRESULT when telemetry refuses a report (a boot of a pile it does not know is
    /// `Rejected`); `None` answers a CALLERROR with telemetry's reason.
    pub refused: Option<Value>,
}

impl Handled {
    pub fn reply(reply: Value) -> Self {
        Self {
            reports: Vec::new(),
            reply,
            refused: None,
        }
    }

    pub fn after(reports: Vec<Report>, reply: Value) -> Self {
        Self {
            reports,
            reply,
            refused: None,
        }
    }
}

/// A 2.0.1 transaction as the connection knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    pub connector: u32,
    /// The last energy register seen, Wh: the stop reading when `Ended` brings none.
    pub last_wh: Option<i64>,
    pub started: bool,
}

/// What one connection remembers.
#[derive(Debug, Default)]
pub struct Memory {
    /// Orders the platform started remotely, by connector, until their session starts.
    pub remote_starts: HashMap<u32, String>,
    /// 2.0.1: the order of each `remoteStartId` given.
    pub remote_ids: HashMap<i32, String>,
    /// 1.6: the transaction running on each connector (for a remote stop).
    pub running: HashMap<u32, i64>,
    /// 2.0.1: transactions by id.
    pub transactions: HashMap<String, Transaction>,
}

impl Memory {
    /// Keeps every map within [`MAX_REMEMBERED`].
    pub fn bound(&mut self) {
        fn trim<K: Clone + Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>) {
            while map.len() > MAX_REMEMBERED {
                let Some(key) = map.keys().next().cloned() else {
                    break;
                };
                map.remove(&key);
            }
        }
        trim(&mut self.remote_starts);
        trim(&mut self.remote_ids);
        trim(&mut self.running);
        trim(&mut self.transactions);
    }
}

/// How the platform answers a charge point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The heartbeat interval a boot is answered with, seconds.
    pub heartbeat_interval_s: u32,
}

/// Reads a payload into its type, or the CALLERROR that says what is wrong with it.
pub fn read<T: serde::de::DeserializeOwned>(action: &str, payload: &Value) -> Result<T, CallError> {
    T::deserialize(payload).map_err(|e| CallError::from_payload(action, &e))
}

/// A timestamp field, or a PropertyConstraintViolation naming it.
pub fn time_field(action: &str, field: &str, text: &str) -> Result<DateTime<Utc>, CallError> {
    crate::map::timestamp(text).ok_or_else(|| {
        CallError::new(
            ErrorCode::PropertyConstraintViolation,
            format!("{action}.{field}: {text:?} is not an RFC 3339 date-time"),
        )
    })
}

/// A string field within its OCPP length, or a PropertyConstraintViolation naming it.
pub fn bounded<'a>(
    action: &str,
    field: &str,
    text: &'a str,
    max: usize,
) -> Result<&'a str, CallError> {
    if text.chars().count() > max {
        return Err(CallError::new(
            ErrorCode::PropertyConstraintViolation,
            format!("{action}.{field} is longer than {max} characters"),
        ));
    }
    Ok(text)
}

/// An alarm report (firmware and diagnostics status, security events, data transfers): kept in
/// the telemetry log as the pile's record of what it said.
pub fn record(
    identity: &[&str],
    at: DateTime<Utc>,
    code: &str,
    severity: pb::AlarmSeverity,
    text: String,
) -> Report {
    let mut text = text;
    if text.len() > 500 {
        let mut cut = 500;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Report {
        identity: identity.iter().map(|s| (*s).to_owned()).collect(),
        target: Target::Pile,
        at,
        body: Body::Alarm(pb::Alarm {
            code: code.to_owned(),
            severity: severity as i32,
            text,
        }),
    }
}

/// The status report of a connector.
pub fn status(
    identity: Vec<String>,
    target: Target,
    at: DateTime<Utc>,
    mapped: crate::map::Mapped,
    text: String,
) -> Report {
    Report {
        identity,
        target,
        at,
        body: Body::Status(pb::ConnectorStatus {
            state: mapped.state as i32,
            fault_code: mapped.fault_code,
            fault_text: text,
        }),
    }
}
