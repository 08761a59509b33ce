//! OCPP 2.0.1: the charging station's CALLs as telemetry reports and answers, and pile commands
//! as CALLs. EVSE n is the pile's n-th connector. A transaction is reported by `TransactionEvent`
//! Started / Updated / Ended with the station's own id; the connection remembers which connector
//! each runs on, for the events that do not repeat their EVSE.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use chargemesh_kit::identity::report_sequence;
use chargemesh_proto::telemetry::v1 as pb;
use pb::AlarmSeverity as Severity;
use pb::telemetry_message::Body;

use crate::map::{self, Sample};
use crate::rpc::{CallError, ErrorCode};
use crate::translate::{
    self, Handled, Known, Memory, Report, Settings, Target, Transaction, bounded, id_token_info,
    read, record, status, time_field,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Station {
    model: String,
    vendor_name: String,
    #[serde(default)]
    serial_number: Option<String>,
    #[serde(default)]
    firmware_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Boot {
    charging_station: Station,
    reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusNotification {
    timestamp: String,
    connector_status: String,
    evse_id: u32,
    connector_id: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeterValues {
    evse_id: u32,
    meter_value: Vec<translate::MeterValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdToken {
    id_token: String,
    /// Required by the schema, so a token without it is refused; not used.
    #[serde(rename = "type")]
    #[allow(dead_code)]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionInfo {
    transaction_id: String,
    #[serde(default)]
    charging_state: Option<String>,
    #[serde(default)]
    stopped_reason: Option<String>,
    #[serde(default)]
    remote_start_id: Option<i32>,
}

#[derive(Deserialize)]
struct Evse {
    id: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TransactionEvent {
    event_type: String,
    timestamp: String,
    trigger_reason: String,
    seq_no: u32,
    transaction_info: TransactionInfo,
    #[serde(default)]
    id_token: Option<IdToken>,
    #[serde(default)]
    evse: Option<Evse>,
    #[serde(default)]
    meter_value: Vec<translate::MeterValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authorize {
    id_token: IdToken,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventData {
    timestamp: String,
    trigger: String,
    actual_value: String,
    component: Named,
    variable: Named,
    #[serde(default)]
    tech_info: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotifyEvent {
    seq_no: u32,
    event_data: Vec<EventData>,
}

/// The answer to a transaction event: the token's standing when it carries one.
fn token_answer(token: &Option<IdToken>, known: &Known) -> Value {
    match token {
        Some(_) => json!({ "idTokenInfo": id_token_info(known.token.as_ref()) }),
        None => json!({}),
    }
}

/// The id token a CALL carries, for the session to look up before it is handled.
pub fn token(action: &str, payload: &Value) -> Option<String> {
    match action {
        "Authorize" | "TransactionEvent" => payload
            .get("idToken")?
            .get("idToken")?
            .as_str()
            .map(str::to_owned),
        _ => None,
    }
}

/// The energy register of a transaction's meter values, Wh: the one in the `context` given
/// (`Transaction.Begin`, `Transaction.End`) if any, the last one otherwise.
fn register(values: &[translate::MeterValue], context: &str) -> Option<i64> {
    let of = |v: &translate::MeterValue| Sample::read(&v.sampled_value).energy_wh;
    values
        .iter()
        .find(|v| {
            v.sampled_value
                .iter()
                .any(|s| s.context.as_deref() == Some(context))
        })
        .and_then(of)
        .or_else(|| values.iter().rev().find_map(of))
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
            let station = &boot.charging_station;
            bounded(action, "chargingStation.model", &station.model, 20)?;
            bounded(
                action,
                "chargingStation.vendorName",
                &station.vendor_name,
                50,
            )?;
            let text = format!(
                "vendor={} model={} serial={} firmware={} reason={}",
                station.vendor_name,
                station.model,
                station.serial_number.as_deref().unwrap_or_default(),
                station.firmware_version.as_deref().unwrap_or_default(),
                boot.reason
            );
            let difference = translate::ledger_difference(
                known.ledger.as_ref(),
                &station.vendor_name,
                &station.model,
                station.serial_number.as_deref(),
            );
            Ok(translate::boot(text, difference, settings, now))
        }
        "Heartbeat" => Ok(translate::heartbeat(now)),
        "StatusNotification" => {
            let s: StatusNotification = read(action, payload)?;
            let at = time_field(action, "timestamp", &s.timestamp)?;
            let mapped = map::connector_state(&s.connector_status, "")
                .filter(|_| {
                    matches!(
                        s.connector_status.as_str(),
                        "Available" | "Occupied" | "Reserved" | "Unavailable" | "Faulted"
                    )
                })
                .ok_or_else(|| {
                    CallError::new(
                        ErrorCode::PropertyConstraintViolation,
                        format!(
                            "{action}.connectorStatus: {:?} is not a 2.0.1 status",
                            s.connector_status
                        ),
                    )
                })?;
            if s.evse_id == 0 {
                return Err(CallError::new(
                    ErrorCode::PropertyConstraintViolation,
                    format!("{action}.evseId must be 1 or more"),
                ));
            }
            let identity = vec![
                "status".into(),
                s.evse_id.to_string(),
                s.connector_id.to_string(),
                s.connector_status.clone(),
                map::format_time(at),
            ];
            Ok(Handled::after(
                vec![status(
                    identity,
                    Target::Connector(s.evse_id),
                    at,
                    mapped,
                    String::new(),
                )],
                json!({}),
            ))
        }
        "MeterValues" => {
            let m: MeterValues = read(action, payload)?;
            let identity = [m.evse_id.to_string()];
            let reports = translate::meter_reports(action, m.evse_id, &identity, &m.meter_value)?;
            Ok(Handled::after(reports, json!({})))
        }
        "TransactionEvent" => transaction_event(action, payload, memory, known),
        "Authorize" => {
            let a: Authorize = read(action, payload)?;
            bounded(action, "idToken.idToken", &a.id_token.id_token, 36)?;
            // The operator's token list answers (or the station accepts any token).
            let verdict = translate::authorize_verdict(action, known)?;
            Ok(Handled::reply(
                json!({ "idTokenInfo": id_token_info(Some(&verdict)) }),
            ))
        }
        "DataTransfer"
        | "FirmwareStatusNotification"
        | "LogStatusNotification"
        | "SecurityEventNotification" => translate::recorded(action, payload, now),
        "NotifyEvent" => {
            // Components' problems and state changes, each recorded for the operator.
            let n: NotifyEvent = read(action, payload)?;
            let mut reports = Vec::new();
            for (i, e) in n.event_data.iter().enumerate() {
                let at = time_field(action, "eventData.timestamp", &e.timestamp)?;
                let problem = e.variable.name == "Problem" && e.actual_value == "true";
                let text = format!(
                    "{}/{}={} trigger={} {}",
                    e.component.name,
                    e.variable.name,
                    e.actual_value,
                    e.trigger,
                    e.tech_info.as_deref().unwrap_or_default()
                );
                reports.push(record(
                    &["event", &n.seq_no.to_string(), &i.to_string(), &e.timestamp],
                    at,
                    &format!("{}/{}", e.component.name, e.variable.name),
                    if problem {
                        Severity::Critical
                    } else {
                        Severity::Info
                    },
                    text.trim().to_owned(),
                ));
            }
            Ok(Handled::after(reports, json!({})))
        }
        // The answer to GetBaseReport comes in parts; nothing in them is telemetry.
        "NotifyReport" => Ok(Handled::reply(json!({}))),
        other => Err(CallError::new(
            ErrorCode::NotImplemented,
            format!("{other} is not an action this CSMS takes"),
        )),
    }
}

fn transaction_event(
    action: &str,
    payload: &Value,
    memory: &mut Memory,
    known: &Known,
) -> Result<Handled, CallError> {
    let t: TransactionEvent = read(action, payload)?;
    let id = bounded(
        action,
        "transactionInfo.transactionId",
        &t.transaction_info.transaction_id,
        36,
    )?
    .to_owned();
    if let Some(token) = &t.id_token {
        bounded(action, "idToken.idToken", &token.id_token, 36)?;
    }
    let at = time_field(action, "timestamp", &t.timestamp)?;
    let seen = memory.transactions.get(&id).cloned();
    let connector = t
        .evse
        .as_ref()
        .map(|e| e.id)
        .filter(|id| *id > 0)
        .or(seen.as_ref().map(|k| k.connector));
    let identity = |what: &str| -> Vec<String> {
        vec![
            "tx".into(),
            id.clone(),
            t.event_type.clone(),
            t.seq_no.to_string(),
            what.to_owned(),
        ]
    };
    let mut reports = Vec::new();
    let Some(connector) = connector else {
        if t.event_type == "Started" {
            return Err(CallError::new(
                ErrorCode::OccurrenceConstraintViolation,
                format!("{action}.evse is required when a transaction starts"),
            ));
        }
        // An event of a transaction this connection never saw start: kept as an abnormal
        // transaction record (REQ MON-9), never dropped.
        reports.push(record(
            &["tx", &id, &t.event_type, &t.seq_no.to_string()],
            at,
            "UnknownTransaction",
            Severity::Warning,
            format!(
                "TransactionEvent {} of unknown transaction {id} without evse: meter={:?}Wh",
                t.event_type,
                register(&t.meter_value, "Transaction.End")
            ),
        ));
        return Ok(Handled::after(reports, token_answer(&t.id_token, known)));
    };
    let mut tx = seen.unwrap_or(Transaction {
        connector,
        ..Transaction::default()
    });
    for (i, value) in t.meter_value.iter().enumerate() {
        let at = time_field(action, "meterValue.timestamp", &value.timestamp)?;
        if let Some(meter) = Sample::read(&value.sampled_value).to_meter() {
            reports.push(Report {
                identity: identity(&format!("meter{i}")),
                target: Target::Connector(connector),
                at,
                body: Body::Meter(meter),
            });
        }
    }
    if let Some(wh) = register(&t.meter_value, "Transaction.End") {
        tx.last_wh = Some(wh);
    }
    match t.event_type.as_str() {
        "Started" => {
            let order_id = t
                .transaction_info
                .remote_start_id
                .and_then(|r| memory.remote_ids.remove(&r))
                .or_else(|| memory.remote_starts.remove(&connector))
                .unwrap_or_default();
            memory.remote_starts.remove(&connector);
            // The register at the start; a station that sends none starts from zero (its
            // order will show the whole register as energy, for the operator to correct).
            let start_wh = register(&t.meter_value, "Transaction.Begin").unwrap_or(0);
            reports.insert(
                0,
                Report {
                    identity: identity("start"),
                    target: Target::Connector(connector),
                    at,
                    body: Body::SessionStart(pb::SessionStart {
                        order_id,
                        authorization_ref: t
                            .id_token
                            .as_ref()
                            .map(|k| k.id_token.clone())
                            .unwrap_or_default(),
                        meter_start_kwh: map::kwh(start_wh),
                        connector_checked: true,
                        charging_confirmed: true,
                        any_token: translate::any_token(known),
                    }),
                },
            );
            tx.started = true;
        }
        "Updated" | "Ended" => {}
        other => {
            return Err(CallError::new(
                ErrorCode::PropertyConstraintViolation,
                format!("{action}.eventType: {other:?} is not Started, Updated or Ended"),
            ));
        }
    }
    let charging = match t.transaction_info.charging_state.as_deref() {
        Some("Charging") => Some(pb::ConnectorState::Charging),
        Some("EVConnected" | "SuspendedEV" | "SuspendedEVSE") => {
            Some(pb::ConnectorState::OccupiedNotCharging)
        }
        _ => None,
    };
    if let Some(state) = charging.filter(|_| t.event_type != "Ended") {
        reports.push(Report {
            identity: identity("state"),
            target: Target::Connector(connector),
            at,
            body: Body::Status(pb::ConnectorStatus {
                state: state as i32,
                fault_code: String::new(),
                fault_text: format!("trigger={}", t.trigger_reason),
            }),
        });
    }
    if t.event_type == "Ended" {
        memory.transactions.remove(&id);
        match tx.last_wh {
            Some(wh) => reports.push(Report {
                identity: identity("end"),
                target: Target::Connector(connector),
                at,
                body: Body::SessionEnd(pb::SessionEnd {
                    order_id: String::new(),
                    meter_stop_kwh: map::kwh(wh),
                    stop_reason: map::stop_reason(t.transaction_info.stopped_reason.as_deref()),
                    end_confirmed: true,
                    physically_separated: t.transaction_info.stopped_reason.as_deref()
                        == Some("EVDisconnected"),
                    ..Default::default()
                }),
            }),
            None => reports.push(record(
                &["tx", &id, "end-without-register"],
                at,
                "TransactionWithoutMeter",
                Severity::Warning,
                format!("transaction {id} ended without an energy register"),
            )),
        }
    } else {
        memory.transactions.insert(id, tx);
        memory.bound();
    }
    Ok(Handled::after(reports, token_answer(&t.id_token, known)))
}

fn component_variable(key: &str) -> Value {
    let (component, variable) = key.split_once('/').unwrap_or(("", key));
    json!({ "component": { "name": component }, "variable": { "name": variable } })
}

/// A pile command as a 2.0.1 CALL: the action and payload, or why it cannot be sent.
pub fn command(
    command: &pb::PileCommand,
    evse: u32,
    memory: &mut Memory,
) -> Result<(&'static str, Value), String> {
    use pb::pile_command::Action as A;
    let with_evse = |mut payload: Value| {
        if evse > 0 {
            payload["evse"] = json!({ "id": evse });
        }
        payload
    };
    match &command.action {
        Some(A::StartCharge(start)) => {
            // The remote start's id: the order's fingerprint, within 31 bits.
            let remote_id = (report_sequence(&[&start.order_id]) & 0x3FFF_FFFF) as i32;
            memory.remote_ids.insert(remote_id, start.order_id.clone());
            memory.remote_starts.insert(evse, start.order_id.clone());
            memory.bound();
            let token = if start.authorization_ref.is_empty() {
                &start.order_id
            } else {
                &start.authorization_ref
            };
            let token: String = token.chars().take(36).collect();
            Ok((
                "RequestStartTransaction",
                json!({
                    "idToken": { "idToken": token, "type": "Central" },
                    "remoteStartId": remote_id,
                    "evseId": evse,
                }),
            ))
        }
        Some(A::StopCharge(_)) => memory
            .transactions
            .iter()
            .find(|(_, t)| t.connector == evse)
            .map(|(id, _)| ("RequestStopTransaction", json!({ "transactionId": id })))
            .ok_or_else(|| format!("no transaction is known to run on EVSE {evse}")),
        Some(A::ChangeAvailability(c)) => Ok((
            "ChangeAvailability",
            with_evse(json!({
                "operationalStatus": if c.operative { "Operative" } else { "Inoperative" },
            })),
        )),
        Some(A::Reset(r)) => Ok((
            "Reset",
            json!({ "type": if r.hard { "Immediate" } else { "OnIdle" } }),
        )),
        Some(A::UnlockConnector(_)) => Ok((
            "UnlockConnector",
            json!({ "evseId": evse, "connectorId": 1 }),
        )),
        Some(A::TriggerStatus(_)) => Ok((
            "TriggerMessage",
            if evse > 0 {
                json!({ "requestedMessage": "StatusNotification",
                        "evse": { "id": evse, "connectorId": 1 } })
            } else {
                json!({ "requestedMessage": "StatusNotification" })
            },
        )),
        Some(A::GetConfiguration(g)) if !g.keys.is_empty() => Ok((
            "GetVariables",
            json!({ "getVariableData": g.keys.iter().map(|k| component_variable(k)).collect::<Vec<_>>() }),
        )),
        Some(A::GetConfiguration(_)) => {
            Err("2.0.1 reads named variables: give keys as Component/Variable".into())
        }
        Some(A::SetConfiguration(s)) => {
            let mut data = component_variable(&s.key);
            data["attributeValue"] = json!(s.value);
            Ok(("SetVariables", json!({ "setVariableData": [data] })))
        }
        None => Err("the command has no action".into()),
    }
}

/// A 2.0.1 CALLRESULT to a command as its outcome and what the station said.
pub fn outcome(action: &str, payload: &Value) -> (pb::CommandOutcome, String) {
    use pb::CommandOutcome as O;
    match action {
        "GetVariables" => (O::Accepted, payload.to_string()),
        "SetVariables" => {
            let statuses: Vec<&str> = payload["setVariableResult"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v["attributeStatus"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let ok = !statuses.is_empty()
                && statuses
                    .iter()
                    .all(|s| matches!(*s, "Accepted" | "RebootRequired"));
            (
                if ok { O::Accepted } else { O::Rejected },
                statuses.join(","),
            )
        }
        _ => {
            let status = payload["status"].as_str().unwrap_or_default();
            let outcome = match status {
                "Accepted" | "Unlocked" | "Scheduled" => O::Accepted,
                "Rejected"
                | "UnlockFailed"
                | "NotImplemented"
                | "UnknownConnector"
                | "OngoingAuthorizedTransaction" => O::Rejected,
                _ => O::Failed,
            };
            (outcome, status.to_owned())
        }
    }
}

#[cfg(test)]
#[path = "v201_tests.rs"]
mod tests;
