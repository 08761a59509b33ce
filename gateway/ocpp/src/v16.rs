//! OCPP 1.6J: the charge point's CALLs as telemetry reports and answers, and pile commands as
//! CALLs. A transaction id is made from the start's own fields (so a start retried after a reboot
//! gets the same one) with the connector in its low 7 bits (so a stop, which names only the
//! transaction, reaches its connector even on another connection or replica).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use chargemesh_proto::telemetry::v1 as pb;
use pb::AlarmSeverity as Severity;
use pb::telemetry_message::Body;

use crate::map::{self, Sample, SampledValue};
use crate::rpc::{CallError, ErrorCode};
use crate::translate::{
    Handled, Memory, Report, Settings, Target, bounded, read, record, status, time_field,
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
struct MeterValue {
    timestamp: String,
    sampled_value: Vec<SampledValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeterValues {
    connector_id: u32,
    #[serde(default)]
    transaction_id: Option<i64>,
    meter_value: Vec<MeterValue>,
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataTransfer {
    vendor_id: String,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct StatusOnly {
    status: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityEvent {
    #[serde(rename = "type")]
    kind: String,
    timestamp: String,
    #[serde(default)]
    tech_info: Option<String>,
}

/// The transaction id of a start: 24 bits of its fields' fingerprint, then the connector.
pub fn transaction_id(connector: u32, id_tag: &str, meter_start: i64, at: &str) -> i64 {
    let hash = map::fingerprint(&[
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

fn id_tag_info(status: &str) -> Value {
    json!({ "status": status })
}

/// Answers one CALL. `now` stamps what has no timestamp of its own.
pub fn handle(
    action: &str,
    payload: &Value,
    memory: &mut Memory,
    settings: Settings,
    now: DateTime<Utc>,
) -> Result<Handled, CallError> {
    let now_text = map::format_time(now);
    match action {
        "BootNotification" => {
            let boot: Boot = read(action, payload)?;
            bounded(action, "chargePointVendor", &boot.charge_point_vendor, 20)?;
            bounded(action, "chargePointModel", &boot.charge_point_model, 20)?;
            let text = format!(
                "vendor={} model={} serial={} firmware={}",
                boot.charge_point_vendor,
                boot.charge_point_model,
                boot.charge_point_serial_number.unwrap_or_default(),
                boot.firmware_version.unwrap_or_default()
            );
            let interval = settings.heartbeat_interval_s;
            Ok(Handled {
                reports: vec![
                    Report {
                        identity: vec!["boot-heartbeat".into(), now_text.clone()],
                        target: Target::Pile,
                        at: now,
                        body: Body::Heartbeat(pb::Heartbeat {}),
                    },
                    record(
                        &["boot", &now_text],
                        now,
                        "BootNotification",
                        Severity::Info,
                        text,
                    ),
                ],
                reply: json!({"status": "Accepted", "currentTime": now_text, "interval": interval}),
                refused: Some(
                    json!({"status": "Rejected", "currentTime": now_text, "interval": interval}),
                ),
            })
        }
        "Heartbeat" => Ok(Handled::after(
            vec![Report {
                identity: vec!["heartbeat".into(), now_text.clone()],
                target: Target::Pile,
                at: now,
                body: Body::Heartbeat(pb::Heartbeat {}),
            }],
            json!({ "currentTime": now_text }),
        )),
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
                    _ => Report {
                        identity,
                        target: Target::Pile,
                        at,
                        body: Body::Heartbeat(pb::Heartbeat {}),
                    },
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
            let mut reports = Vec::new();
            for value in &m.meter_value {
                let at = time_field(action, "meterValue.timestamp", &value.timestamp)?;
                let sample = Sample::read(&value.sampled_value);
                // Connector 0 is the charge point's main meter: not a connector's register.
                let Some(meter) = sample.to_meter().filter(|_| m.connector_id > 0) else {
                    continue;
                };
                reports.push(Report {
                    identity: vec![
                        "meter".into(),
                        m.connector_id.to_string(),
                        m.transaction_id.unwrap_or_default().to_string(),
                        meter.energy_kwh.clone(),
                        map::format_time(at),
                    ],
                    target: Target::Connector(m.connector_id),
                    at,
                    body: Body::Meter(meter),
                });
            }
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
                    }),
                }],
                json!({ "transactionId": id, "idTagInfo": id_tag_info("Accepted") }),
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
            let report = if connector == 0 || s.transaction_id <= 0 {
                // Not a transaction this platform gave: kept as an abnormal transaction record
                // for the operator to verify and correct (REQ MON-9), never dropped.
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
                    }),
                }
            };
            Ok(Handled::after(
                vec![report],
                json!({ "idTagInfo": id_tag_info("Accepted") }),
            ))
        }
        "Authorize" => {
            let a: Authorize = read(action, payload)?;
            bounded(action, "idTag", &a.id_tag, 20)?;
            Ok(Handled::reply(
                json!({ "idTagInfo": id_tag_info("Accepted") }),
            ))
        }
        "DataTransfer" => {
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
                    &["data", &now_text, &text],
                    now,
                    "DataTransfer",
                    Severity::Info,
                    text.clone(),
                )],
                // Recorded, but no vendor extension is understood here.
                json!({ "status": "UnknownVendorId" }),
            ))
        }
        "DiagnosticsStatusNotification"
        | "FirmwareStatusNotification"
        | "SignedFirmwareStatusNotification"
        | "LogStatusNotification" => {
            let s: StatusOnly = read(action, payload)?;
            Ok(Handled::after(
                vec![record(
                    &[action, &s.status, &now_text],
                    now,
                    action,
                    Severity::Info,
                    s.status.clone(),
                )],
                json!({}),
            ))
        }
        "SecurityEventNotification" => {
            let e: SecurityEvent = read(action, payload)?;
            let at = time_field(action, "timestamp", &e.timestamp)?;
            let text = format!("{} {}", e.kind, e.tech_info.unwrap_or_default());
            Ok(Handled::after(
                vec![record(
                    &["security", &e.kind, &e.timestamp],
                    at,
                    "SecurityEvent",
                    Severity::Warning,
                    text.trim().to_owned(),
                )],
                json!({}),
            ))
        }
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
mod tests {
    use super::*;

    const SETTINGS: Settings = Settings {
        heartbeat_interval_s: 300,
    };

    fn now() -> DateTime<Utc> {
        map::timestamp("2026-12-06T04:00:00Z").expect("time")
    }

    fn call(action: &str, payload: Value, memory: &mut Memory) -> Result<Handled, CallError> {
        handle(action, &payload, memory, SETTINGS, now())
    }

    #[test]
    fn base_2_a_boot_is_accepted_with_the_interval_once_durable_and_rejected_if_refused() {
        let h = call(
            "BootNotification",
            json!({"chargePointVendor": "V", "chargePointModel": "M"}),
            &mut Memory::default(),
        )
        .expect("boot");
        assert_eq!(h.reply["status"], "Accepted");
        assert_eq!(h.reply["interval"], 300);
        assert_eq!(
            h.refused.as_ref().map(|r| r["status"].clone()),
            Some(json!("Rejected"))
        );
        assert!(matches!(h.reports[0].body, Body::Heartbeat(_)));
    }

    #[test]
    fn mon_1_status_of_a_connector_is_its_state_and_connector_0_is_the_pile() {
        let mut m = Memory::default();
        let h = call(
            "StatusNotification",
            json!({"connectorId": 2, "errorCode": "GroundFailure", "status": "Faulted",
                   "timestamp": "2026-12-06T03:59:00Z", "info": "leak"}),
            &mut m,
        )
        .expect("status");
        assert_eq!(h.reports[0].target, Target::Connector(2));
        let Body::Status(s) = &h.reports[0].body else {
            panic!("a status")
        };
        assert_eq!(s.state, pb::ConnectorState::Fault as i32);
        assert_eq!(s.fault_code, "GroundFailure");
        let pile = call(
            "StatusNotification",
            json!({"connectorId": 0, "errorCode": "NoError", "status": "Available"}),
            &mut m,
        )
        .expect("status");
        assert_eq!(pile.reports[0].target, Target::Pile);
        assert!(matches!(pile.reports[0].body, Body::Heartbeat(_)));
    }

    #[test]
    fn settle_1_a_retried_start_gets_the_same_transaction_and_the_stop_finds_its_connector() {
        let start = json!({"connectorId": 3, "idTag": "CARD1", "meterStart": 1000,
                           "timestamp": "2026-12-06T03:00:00Z"});
        let first = call("StartTransaction", start.clone(), &mut Memory::default()).expect("start");
        let again = call("StartTransaction", start, &mut Memory::default()).expect("again");
        let id = first.reply["transactionId"].as_i64().expect("an id");
        assert_eq!(again.reply["transactionId"].as_i64(), Some(id));
        assert_eq!(first.reports, again.reports, "the same report, stored once");
        assert_eq!(transaction_connector(id), 3);
        let Body::SessionStart(s) = &first.reports[0].body else {
            panic!("a start")
        };
        assert_eq!(s.meter_start_kwh, "1.000");

        let stop = json!({"transactionId": id, "meterStop": 13500,
                          "timestamp": "2026-12-06T04:00:00Z", "reason": "EVDisconnected"});
        let ended = call("StopTransaction", stop, &mut Memory::default()).expect("stop");
        assert_eq!(ended.reports[0].target, Target::Connector(3));
        let Body::SessionEnd(e) = &ended.reports[0].body else {
            panic!("an end")
        };
        assert_eq!(e.meter_stop_kwh, "13.500");
        assert_eq!(e.stop_reason, 4);
        assert!(e.physically_separated);
    }

    #[test]
    fn mon_9_a_stop_of_an_unknown_transaction_is_kept_as_an_abnormal_record() {
        let stop =
            json!({"transactionId": 128, "meterStop": 5, "timestamp": "2026-12-06T04:00:00Z"});
        let h = call("StopTransaction", stop, &mut Memory::default()).expect("kept");
        let Body::Alarm(a) = &h.reports[0].body else {
            panic!("an alarm")
        };
        assert_eq!(a.code, "UnknownTransaction");
        assert_eq!(h.reply["idTagInfo"]["status"], "Accepted");
    }

    #[test]
    fn a_remote_start_gives_the_session_its_order() {
        let mut m = Memory::default();
        let cmd = pb::PileCommand {
            command_id: "c1".into(),
            pile_id: "P".into(),
            connector_id: "P-1".into(),
            action: Some(pb::pile_command::Action::StartCharge(
                pb::StartChargeCommand {
                    order_id: "MA01H3BQ2ORDER000000000001".into(),
                    authorization_ref: String::new(),
                },
            )),
        };
        let (action, payload) = command(&cmd, 1, &mut m).expect("a call");
        assert_eq!(action, "RemoteStartTransaction");
        assert_eq!(payload["idTag"].as_str().map(str::len), Some(20));
        let h = call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "x", "meterStart": 0, "timestamp": "2026-12-06T03:00:00Z"}),
            &mut m,
        )
        .expect("start");
        let Body::SessionStart(s) = &h.reports[0].body else {
            panic!("a start")
        };
        assert_eq!(s.order_id, "MA01H3BQ2ORDER000000000001");
        let stop = pb::PileCommand {
            action: Some(pb::pile_command::Action::StopCharge(
                pb::StopChargeCommand {
                    order_id: s.order_id.clone(),
                },
            )),
            ..cmd
        };
        let (action, payload) = command(&stop, 1, &mut m).expect("a stop");
        assert_eq!(action, "RemoteStopTransaction");
        assert_eq!(payload["transactionId"], h.reply["transactionId"]);
    }

    #[test]
    fn bad_payloads_are_refused_with_the_right_error() {
        let mut m = Memory::default();
        let missing = call("StatusNotification", json!({"connectorId": 1}), &mut m);
        assert_eq!(
            missing.expect_err("missing").code,
            ErrorCode::OccurrenceConstraintViolation
        );
        let typed = call(
            "StartTransaction",
            json!({"connectorId": "one", "idTag": "a", "meterStart": 0, "timestamp": "x"}),
            &mut m,
        );
        assert_eq!(
            typed.expect_err("type").code,
            ErrorCode::TypeConstraintViolation
        );
        let long_tag = call("Authorize", json!({"idTag": "x".repeat(21)}), &mut m);
        assert_eq!(
            long_tag.expect_err("length").code,
            ErrorCode::PropertyConstraintViolation
        );
        let status = call(
            "StatusNotification",
            json!({"connectorId": 1, "errorCode": "NoError", "status": "Dancing"}),
            &mut m,
        );
        assert_eq!(
            status.expect_err("value").code,
            ErrorCode::PropertyConstraintViolation
        );
        let unknown = call("FlyToTheMoon", json!({}), &mut m);
        assert_eq!(
            unknown.expect_err("unknown").code,
            ErrorCode::NotImplemented
        );
    }

    #[test]
    fn command_answers_become_outcomes() {
        use pb::CommandOutcome as O;
        assert_eq!(
            outcome("Reset", &json!({"status": "Accepted"})).0,
            O::Accepted
        );
        assert_eq!(
            outcome("ChangeAvailability", &json!({"status": "Scheduled"})).0,
            O::Accepted
        );
        assert_eq!(
            outcome("UnlockConnector", &json!({"status": "UnlockFailed"})).0,
            O::Rejected
        );
        assert_eq!(outcome("Reset", &json!({})).0, O::Failed);
    }
}
