//! OCPP 1.6J: the charge point's CALLs as telemetry reports and answers, and pile commands as
//! CALLs. A transaction id is made from the start's own fields (so a start retried after a reboot
//! gets the same one) with the connector in its low 7 bits (so a stop, which names only the
//! transaction, reaches its connector even on another connection or replica).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use chargemesh_kit::identity::report_sequence;
use chargemesh_proto::telemetry::v1 as pb;
use pb::AlarmSeverity as Severity;
use pb::telemetry_message::Body;

use crate::map;
use crate::rpc::{CallError, ErrorCode};
use crate::translate::{
    self, Handled, Known, Memory, Report, Settings, Target, bounded, id_tag_info, read, record,
    status, time_field,
};

/// The CALLs a 1.6 charge point may send that the edge takes.
pub const ACTIONS: &[&str] = &[
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "SecurityEventNotification",
    "SignedFirmwareStatusNotification",
    "LogStatusNotification",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Boot {
    charge_point_vendor: String,
    charge_point_model: String,
    #[serde(default)]
    charge_point_serial_number: Option<String>,
    #[serde(default)]
    firmware_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusNotification {
    connector_id: u32,
    error_code: String,
    status: String,
    #[serde(default)]
    info: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    vendor_error_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeterValues {
    connector_id: u32,
    #[serde(default)]
    transaction_id: Option<i64>,
    meter_value: Vec<translate::MeterValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartTransaction {
    connector_id: u32,
    id_tag: String,
    meter_start: i64,
    timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopTransaction {
    transaction_id: i64,
    meter_stop: i64,
    timestamp: String,
    #[serde(default)]
    id_tag: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authorize {
    id_tag: String,
}

/// The transaction id of a start: 24 bits of its fields' fingerprint, then the connector.
pub fn transaction_id(connector: u32, id_tag: &str, meter_start: i64, at: &str) -> i64 {
    let hash = report_sequence(&[
        "tx",
        &connector.to_string(),
        id_tag,
        &meter_start.to_string(),
        at,
    ]);
    let high = ((hash >> 20) & 0xFF_FFFF).max(1) as i64;
    (high << 7) | i64::from(connector & 0x7F)
}

/// The connector a transaction id names.
pub fn transaction_connector(transaction_id: i64) -> u32 {
    (transaction_id & 0x7F) as u32
}

/// The id tag a CALL carries, for the session to look up before it is handled.
pub fn token(action: &str, payload: &Value) -> Option<String> {
    match action {
        "Authorize" | "StartTransaction" => payload.get("idTag")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Answers one CALL. `now` stamps what has no timestamp of its own.
pub fn handle(
    action: &str,
    payload: &Value,
    memory: &mut Memory,
    settings: Settings,
    known: &Known,
    now: DateTime<Utc>,
) -> Result<Handled, CallError> {
    match action {
        "BootNotification" => {
            let boot: Boot = read(action, payload)?;
            bounded(action, "chargePointVendor", &boot.charge_point_vendor, 20)?;
            bounded(action, "chargePointModel", &boot.charge_point_model, 20)?;
            let difference = translate::ledger_difference(
                known.ledger.as_ref(),
                &boot.charge_point_vendor,
                &boot.charge_point_model,
                boot.charge_point_serial_number.as_deref(),
            );
            let text = format!(
                "vendor={} model={} serial={} firmware={}",
                boot.charge_point_vendor,
                boot.charge_point_model,
                boot.charge_point_serial_number.unwrap_or_default(),
                boot.firmware_version.unwrap_or_default()
            );
            Ok(translate::boot(text, difference, settings, now))
        }
        "Heartbeat" => Ok(translate::heartbeat(now)),
        "StatusNotification" => {
            let s: StatusNotification = read(action, payload)?;
            let at = match &s.timestamp {
                Some(t) => time_field(action, "timestamp", t)?,
                None => now,
            };
            let mapped = map::connector_state(&s.status, &s.error_code).ok_or_else(|| {
                CallError::new(
                    ErrorCode::PropertyConstraintViolation,
                    format!("{action}.status: {:?} is not a 1.6 status", s.status),
                )
            })?;
            let text = [s.info.as_deref(), s.vendor_error_code.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let identity = vec![
                "status".into(),
                s.connector_id.to_string(),
                s.status.clone(),
                s.error_code.clone(),
                map::format_time(at),
            ];
            let report = if s.connector_id == 0 {
                // The charge point as a whole: a fault or an outage is an alarm of the pile; any
                // other status says it is alive.
                match mapped.state {
                    pb::ConnectorState::Fault => record(
                        &identity.iter().map(String::as_str).collect::<Vec<_>>(),
                        at,
                        &mapped.fault_code,
                        Severity::Critical,
                        text,
                    ),
                    _ => translate::alive(
                        &identity.iter().map(String::as_str).collect::<Vec<_>>(),
                        at,
                    ),
                }
            } else {
                status(
                    identity,
                    Target::Connector(s.connector_id),
                    at,
                    mapped,
                    text,
                )
            };
            Ok(Handled::after(vec![report], json!({})))
        }
        "MeterValues" => {
            let m: MeterValues = read(action, payload)?;
            let identity = [
                m.connector_id.to_string(),
                m.transaction_id.unwrap_or_default().to_string(),
            ];
            let reports =
                translate::meter_reports(action, m.connector_id, &identity, &m.meter_value)?;
            Ok(Handled::after(reports, json!({})))
        }
        "StartTransaction" => {
            let s: StartTransaction = read(action, payload)?;
            bounded(action, "idTag", &s.id_tag, 20)?;
            if s.connector_id == 0 || s.connector_id > 0x7F {
                return Err(CallError::new(
                    ErrorCode::PropertyConstraintViolation,
                    format!("{action}.connectorId must be 1 to 127"),
                ));
            }
            if s.meter_start < 0 {
                return Err(CallError::new(
                    ErrorCode::PropertyConstraintViolation,
                    format!("{action}.meterStart must not be negative"),
                ));
            }
            let at = time_field(action, "timestamp", &s.timestamp)?;
            let id = transaction_id(s.connector_id, &s.id_tag, s.meter_start, &s.timestamp);
            let order_id = memory
                .remote_starts
                .remove(&s.connector_id)
                .unwrap_or_default();
            memory.running.insert(s.connector_id, id);
            memory.bound();
            Ok(Handled::after(
                vec![Report {
                    identity: vec!["start".into(), id.to_string()],
                    target: Target::Connector(s.connector_id),
                    at,
                    body: Body::SessionStart(pb::SessionStart {
                        order_id,
                        authorization_ref: s.id_tag.clone(),
                        meter_start_kwh: map::kwh(s.meter_start),
                        // The charger checked the connector and began charging when it sent this.
                        connector_checked: true,
                        charging_confirmed: true,
                        any_token: translate::any_token(known),
                    }),
                }],
                // The transaction is recorded whatever the verdict; a charger told Blocked or
                // Invalid stops it (and its StopTransaction settles what was delivered).
                json!({ "transactionId": id, "idTagInfo": id_tag_info(known.token.as_ref()) }),
            ))
        }
        "StopTransaction" => {
            let s: StopTransaction = read(action, payload)?;
            if let Some(tag) = &s.id_tag {
                bounded(action, "idTag", tag, 20)?;
            }
            if s.meter_stop < 0 {
                return Err(CallError::new(
                    ErrorCode::PropertyConstraintViolation,
                    format!("{action}.meterStop must not be negative"),
                ));
            }
            let at = time_field(action, "timestamp", &s.timestamp)?;
            let connector = transaction_connector(s.transaction_id);
            memory.running.retain(|_, id| *id != s.transaction_id);
            let identity = vec!["stop".into(), s.transaction_id.to_string()];
            let report =
                if connector == 0 || s.transaction_id <= 0 || connector as usize > known.connectors
                {
                    // Not a transaction this platform gave (its connector bits name no connector):
                    // kept as an abnormal transaction record for the operator to verify and correct
                    // (REQ MON-9), never dropped. A stop of a transaction whose start never arrived
                    // reaches metering as a session end, which keeps it as an abnormal order.
                    record(
                        &["stop", &s.transaction_id.to_string()],
                        at,
                        "UnknownTransaction",
                        Severity::Warning,
                        format!(
                            "StopTransaction of unknown transaction {} meterStop={}Wh reason={}",
                            s.transaction_id,
                            s.meter_stop,
                            s.reason.as_deref().unwrap_or("Local")
                        ),
                    )
                } else {
                    Report {
                        identity,
                        target: Target::Connector(connector),
                        at,
                        body: Body::SessionEnd(pb::SessionEnd {
                            order_id: String::new(),
                            meter_stop_kwh: map::kwh(s.meter_stop),
                            stop_reason: map::stop_reason(s.reason.as_deref()),
                            end_confirmed: true,
                            physically_separated: s.reason.as_deref() == Some("EVDisconnected"),
                            ..Default::default()
                        }),
                    }
                };
            Ok(Handled::after(
                vec![report],
                json!({ "idTagInfo": id_tag_info(None) }),
            ))
        }
        "Authorize" => {
            let a: Authorize = read(action, payload)?;
            bounded(action, "idTag", &a.id_tag, 20)?;
            // The operator's token list answers (or the station accepts any token).
            let verdict = translate::authorize_verdict(action, known)?;
            Ok(Handled::reply(
                json!({ "idTagInfo": id_tag_info(Some(&verdict)) }),
            ))
        }
        "DataTransfer"
        | "DiagnosticsStatusNotification"
        | "FirmwareStatusNotification"
        | "SignedFirmwareStatusNotification"
        | "LogStatusNotification"
        | "SecurityEventNotification" => translate::recorded(action, payload, now),
        other => Err(CallError::new(
            ErrorCode::NotImplemented,
            format!("{other} is not an action this central system takes"),
        )),
    }
}

/// A pile command as a 1.6 CALL: the action and payload, or why it cannot be sent.
pub fn command(
    command: &pb::PileCommand,
    connector: u32,
    memory: &mut Memory,
) -> Result<(&'static str, Value), String> {
    use pb::pile_command::Action as A;
    match &command.action {
        Some(A::StartCharge(start)) => {
            memory
                .remote_starts
                .insert(connector, start.order_id.clone());
            memory.bound();
            let tag = if start.authorization_ref.is_empty() {
                start.order_id.as_str()
            } else {
                start.authorization_ref.as_str()
            };
            let tag: String = tag.chars().take(20).collect();
            Ok((
                "RemoteStartTransaction",
                json!({ "connectorId": connector, "idTag": tag }),
            ))
        }
        Some(A::StopCharge(_)) => match memory.running.get(&connector) {
            Some(id) => Ok(("RemoteStopTransaction", json!({ "transactionId": id }))),
            None => Err(format!(
                "no transaction is known to run on connector {connector}"
            )),
        },
        Some(A::ChangeAvailability(c)) => Ok((
            "ChangeAvailability",
            json!({
                "connectorId": connector,
                "type": if c.operative { "Operative" } else { "Inoperative" },
            }),
        )),
        Some(A::Reset(r)) => Ok((
            "Reset",
            json!({ "type": if r.hard { "Hard" } else { "Soft" } }),
        )),
        Some(A::UnlockConnector(_)) => Ok(("UnlockConnector", json!({ "connectorId": connector }))),
        Some(A::TriggerStatus(_)) => Ok((
            "TriggerMessage",
            if connector == 0 {
                json!({ "requestedMessage": "StatusNotification" })
            } else {
                json!({ "requestedMessage": "StatusNotification", "connectorId": connector })
            },
        )),
        Some(A::GetConfiguration(g)) => Ok((
            "GetConfiguration",
            if g.keys.is_empty() {
                json!({})
            } else {
                json!({ "key": g.keys })
            },
        )),
        Some(A::SetConfiguration(s)) => Ok((
            "ChangeConfiguration",
            json!({ "key": s.key, "value": s.value }),
        )),
        None => Err("the command has no action".into()),
    }
}

/// A 1.6 CALLRESULT to a command as its outcome and what the pile said.
pub fn outcome(action: &str, payload: &Value) -> (pb::CommandOutcome, String) {
    use pb::CommandOutcome as O;
    if action == "GetConfiguration" {
        return (O::Accepted, payload.to_string());
    }
    let status = payload["status"].as_str().unwrap_or_default();
    let outcome = match status {
        "Accepted" | "Unlocked" | "Scheduled" | "RebootRequired" => O::Accepted,
        "Rejected" | "NotSupported" | "UnlockFailed" | "NotImplemented" => O::Rejected,
        _ => O::Failed,
    };
    (outcome, status.to_owned())
}

#[cfg(test)]
#[path = "v16_tests.rs"]
mod tests;
