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
/// connectors, so only a misbehaving one reaches it (entries past it are dropped, whichever
/// the map yields first).
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

/// A token's standing in the operator's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    Accepted,
    Blocked,
    Expired,
    /// Not on the list.
    Unknown,
}

/// The registry's verdict on the id token a CALL carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenVerdict {
    pub status: TokenStatus,
    pub expiry: Option<DateTime<Utc>>,
    /// The station accepts any token; the session records it.
    pub any_token: bool,
}

/// What the registry records of the pile, to compare its boot with (REQ MAINT-4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub vendor: String,
    pub model: String,
    pub serial: String,
}

/// What the session looked up before a CALL is handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// The verdict on the CALL's id token; `None` when it carries none or the list could not
    /// be read.
    pub token: Option<TokenVerdict>,
    /// The pile as the registry records it; `None` for a pile it does not know.
    pub ledger: Option<Ledger>,
    /// How many connectors the pile has.
    pub connectors: usize,
}

/// 1.6 `idTagInfo`: an unlisted tag is `Invalid`; a list that could not be read accepts (the
/// transaction is recorded whatever the answer; the charger decides what to do with it).
pub fn id_tag_info(verdict: Option<&TokenVerdict>) -> Value {
    let status = match verdict.map(|v| v.status) {
        None | Some(TokenStatus::Accepted) => "Accepted",
        Some(TokenStatus::Blocked) => "Blocked",
        Some(TokenStatus::Expired) => "Expired",
        Some(TokenStatus::Unknown) => "Invalid",
    };
    let mut info = serde_json::json!({ "status": status });
    if let Some(expiry) = verdict.and_then(|v| v.expiry) {
        info["expiryDate"] = Value::String(crate::map::format_time(expiry));
    }
    info
}

/// 2.0.1 `idTokenInfo`, spelled as that version spells it.
pub fn id_token_info(verdict: Option<&TokenVerdict>) -> Value {
    let status = match verdict.map(|v| v.status) {
        None | Some(TokenStatus::Accepted) => "Accepted",
        Some(TokenStatus::Blocked) => "Blocked",
        Some(TokenStatus::Expired) => "Expired",
        Some(TokenStatus::Unknown) => "Unknown",
    };
    let mut info = serde_json::json!({ "status": status });
    if let Some(expiry) = verdict.and_then(|v| v.expiry) {
        info["cacheExpiryDateTime"] = Value::String(crate::map::format_time(expiry));
    }
    info
}

/// An `Authorize` needs the list's verdict: without it the charger is told to retry (it may
/// fall back on its local list).
pub fn authorize_verdict(action: &str, known: &Known) -> Result<TokenVerdict, CallError> {
    known.token.ok_or_else(|| {
        CallError::new(
            ErrorCode::InternalError,
            format!("{action}: the token list cannot be read now; retry"),
        )
    })
}

/// Whether the session a CALL starts was authorised by the station's "any token" setting.
pub fn any_token(known: &Known) -> bool {
    known.token.is_some_and(|t| t.any_token)
}

/// REQ MAINT-4: how a boot's vendor, model and serial differ from the ledger's manufacturer,
/// model and serial number (compared without case or surrounding space); `None` when they
/// agree or the pile is not in the ledger.
pub fn ledger_difference(
    ledger: Option<&Ledger>,
    vendor: &str,
    model: &str,
    serial: Option<&str>,
) -> Option<String> {
    let ledger = ledger?;
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    let mut differences = Vec::new();
    if !same(vendor, &ledger.vendor) {
        differences.push(format!("vendor {vendor:?} (ledger {:?})", ledger.vendor));
    }
    if !same(model, &ledger.model) {
        differences.push(format!("model {model:?} (ledger {:?})", ledger.model));
    }
    if let Some(serial) = serial.filter(|s| !same(s, &ledger.serial)) {
        differences.push(format!("serial {serial:?} (ledger {:?})", ledger.serial));
    }
    (!differences.is_empty()).then(|| {
        format!(
            "MAINT-4: the charge point reports {}; update the technical archive or check the pile",
            differences.join(", ")
        )
    })
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

/// A boot of either version, described by `text` (vendor, model, serial, firmware): the pile is
/// alive and the boot recorded; Accepted with the heartbeat interval once durable, Rejected
/// when telemetry does not know the pile (REQ BASE-2).
pub fn boot(
    text: String,
    difference: Option<String>,
    settings: Settings,
    now: DateTime<Utc>,
) -> Handled {
    let now_text = crate::map::format_time(now);
    let interval = settings.heartbeat_interval_s;
    let mut reports = vec![
        alive(&["boot-heartbeat", &now_text], now),
        record(
            &["boot", &now_text],
            now,
            "BootNotification",
            pb::AlarmSeverity::Info,
            text,
        ),
    ];
    if let Some(difference) = difference {
        // REQ MAINT-4: a difference from the ledger is recorded for the operator.
        reports.push(record(
            &["boot-ledger", &now_text],
            now,
            "LedgerMismatch",
            pb::AlarmSeverity::Warning,
            difference,
        ));
    }
    Handled {
        reports,
        reply: serde_json::json!({"status": "Accepted", "currentTime": now_text, "interval": interval}),
        refused: Some(
            serde_json::json!({"status": "Rejected", "currentTime": now_text, "interval": interval}),
        ),
    }
}

/// A heartbeat of either version: liveness (REQ MON-1), answered with the time.
pub fn heartbeat(now: DateTime<Utc>) -> Handled {
    let now_text = crate::map::format_time(now);
    Handled::after(
        vec![alive(&["heartbeat", &now_text], now)],
        serde_json::json!({ "currentTime": now_text }),
    )
}

/// The pile is alive (REQ MON-1).
pub fn alive(identity: &[&str], at: DateTime<Utc>) -> Report {
    Report {
        identity: identity.iter().map(|s| (*s).to_owned()).collect(),
        target: Target::Pile,
        at,
        body: Body::Heartbeat(pb::Heartbeat {}),
    }
}

/// One meter value, as both versions send it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValue {
    pub timestamp: String,
    pub sampled_value: Vec<crate::map::SampledValue>,
}

/// A connector's meter values as samples, one per value with an energy register; `identity`
/// (the connector, a transaction) prefixes each one's identity. Connector 0 is the charge
/// point's main meter, not a connector's register: it gives none.
pub fn meter_reports(
    action: &str,
    connector: u32,
    identity: &[String],
    values: &[MeterValue],
) -> Result<Vec<Report>, CallError> {
    let mut reports = Vec::new();
    for value in values {
        let at = time_field(action, "meterValue.timestamp", &value.timestamp)?;
        let Some(meter) = crate::map::Sample::read(&value.sampled_value)
            .to_meter()
            .filter(|_| connector > 0)
        else {
            continue;
        };
        let mut id = vec!["meter".to_owned()];
        id.extend(identity.iter().cloned());
        id.extend([meter.energy_kwh.clone(), crate::map::format_time(at)]);
        reports.push(Report {
            identity: id,
            target: Target::Connector(connector),
            at,
            body: Body::Meter(meter),
        });
    }
    Ok(reports)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataTransfer {
    vendor_id: String,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(serde::Deserialize)]
struct StatusOnly {
    status: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityEvent {
    #[serde(rename = "type")]
    kind: String,
    timestamp: String,
    #[serde(default)]
    tech_info: Option<String>,
}

/// The CALLs whose content is only recorded as the pile's alarms, spelled alike in both
/// versions (each version's `handle` routes only its own): a data transfer (recorded; no vendor
/// extension is understood here, so `UnknownVendorId`), firmware, diagnostics and log status,
/// and security events.
pub fn recorded(action: &str, payload: &Value, now: DateTime<Utc>) -> Result<Handled, CallError> {
    let now_text = crate::map::format_time(now);
    match action {
        "DataTransfer" => data_transfer(action, payload, now),
        "SecurityEventNotification" => security_event(action, payload),
        _ => {
            let s: StatusOnly = read(action, payload)?;
            Ok(Handled::after(
                vec![record(
                    &[action, &s.status, &now_text],
                    now,
                    action,
                    pb::AlarmSeverity::Info,
                    s.status.clone(),
                )],
                serde_json::json!({}),
            ))
        }
    }
}

fn data_transfer(action: &str, payload: &Value, now: DateTime<Utc>) -> Result<Handled, CallError> {
    let d: DataTransfer = read(action, payload)?;
    bounded(action, "vendorId", &d.vendor_id, 255)?;
    let text = format!(
        "vendorId={} messageId={} data={}",
        d.vendor_id,
        d.message_id.unwrap_or_default(),
        d.data.map(|v| v.to_string()).unwrap_or_default()
    );
    Ok(Handled::after(
        vec![record(
            &["data", &crate::map::format_time(now), &text],
            now,
            "DataTransfer",
            pb::AlarmSeverity::Info,
            text.clone(),
        )],
        serde_json::json!({ "status": "UnknownVendorId" }),
    ))
}

fn security_event(action: &str, payload: &Value) -> Result<Handled, CallError> {
    let e: SecurityEvent = read(action, payload)?;
    let at = time_field(action, "timestamp", &e.timestamp)?;
    let text = format!("{} {}", e.kind, e.tech_info.unwrap_or_default());
    Ok(Handled::after(
        vec![record(
            &["security", &e.kind, &e.timestamp],
            at,
            "SecurityEvent",
            pb::AlarmSeverity::Warning,
            text.trim().to_owned(),
        )],
        serde_json::json!({}),
    ))
}
