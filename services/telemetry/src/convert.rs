//! Protobuf to domain and back: a sender's message becomes an [`Incoming`] (a malformed body is
//! that message's rejection), a logged body becomes the protobuf other components read, and a
//! rejection becomes its answer on the stream.

use chargemesh_kit::Error;
use chargemesh_kit::paging::{decode_token, encode_token};
use chargemesh_kit::time::{from_timestamp, to_timestamp};
use chargemesh_proto::regulator::v2 as reg;
use chargemesh_proto::telemetry::v1 as pb;
use rust_decimal::Decimal;

use crate::domain::{
    self, AlarmSeverity, Body, CommandOutcome, ConnectorState, Incoming, Rejection,
};
use crate::store::StatusChange;

pub fn state_of(v: i32) -> Result<ConnectorState, Rejection> {
    Ok(match pb::ConnectorState::try_from(v) {
        Ok(pb::ConnectorState::Offline) => ConnectorState::Offline,
        Ok(pb::ConnectorState::Idle) => ConnectorState::Idle,
        Ok(pb::ConnectorState::OccupiedNotCharging) => ConnectorState::OccupiedNotCharging,
        Ok(pb::ConnectorState::Charging) => ConnectorState::Charging,
        Ok(pb::ConnectorState::Reserved) => ConnectorState::Reserved,
        Ok(pb::ConnectorState::Fault) => ConnectorState::Fault,
        _ => return Err(Rejection::invalid("status.state must be set")),
    })
}

pub fn state_to_pb(state: ConnectorState) -> pb::ConnectorState {
    match state {
        ConnectorState::Offline => pb::ConnectorState::Offline,
        ConnectorState::Idle => pb::ConnectorState::Idle,
        ConnectorState::OccupiedNotCharging => pb::ConnectorState::OccupiedNotCharging,
        ConnectorState::Charging => pb::ConnectorState::Charging,
        ConnectorState::Reserved => pb::ConnectorState::Reserved,
        ConnectorState::Fault => pb::ConnectorState::Fault,
    }
}

/// Translates a protobuf message; a malformed body becomes that message's rejection.
/// The most bytes of vehicle data one message carries.
pub const MAX_VEHICLE_DATA: usize = 512;

pub fn incoming(msg: pb::TelemetryMessage) -> Incoming {
    use pb::telemetry_message::Body as B;
    let body = match msg.body {
        Some(B::Status(s)) => state_of(s.state).map(|state| Body::Status {
            state,
            fault_code: s.fault_code.trim().to_owned(),
            fault_text: s.fault_text.trim().to_owned(),
        }),
        Some(B::Heartbeat(_)) => Ok(Body::Heartbeat),
        Some(B::Meter(m)) => domain::parse_energy(&m.energy_kwh).map(|energy_kwh| Body::Meter {
            energy_kwh,
            power_kw: m.power_kw,
            voltage: m.voltage,
            current: m.current,
            soc_percent: (m.soc_percent >= 0.0).then_some(m.soc_percent),
        }),
        Some(B::Alarm(a)) => match pb::AlarmSeverity::try_from(a.severity) {
            Ok(pb::AlarmSeverity::Info) => Ok(AlarmSeverity::Info),
            Ok(pb::AlarmSeverity::Warning) => Ok(AlarmSeverity::Warning),
            Ok(pb::AlarmSeverity::Critical) => Ok(AlarmSeverity::Critical),
            _ => Err(Rejection::invalid("alarm.severity must be set")),
        }
        .map(|severity| Body::Alarm {
            code: a.code.trim().to_owned(),
            severity,
            text: a.text.trim().to_owned(),
        }),
        Some(B::VehicleData(v)) if v.data.len() > MAX_VEHICLE_DATA => Err(Rejection::invalid(
            format!("vehicle_data.data is at most {MAX_VEHICLE_DATA} bytes"),
        )),
        Some(B::VehicleData(v)) => Ok(Body::VehicleData {
            session_ref: v.session_ref.trim().to_owned(),
            order_id: v.order_id.trim().to_owned(),
            data_kind: v.kind.trim().to_owned(),
            data_hex: v.data.iter().map(|b| format!("{b:02x}")).collect(),
        }),
        Some(B::Link(l)) => Ok(Body::Link {
            link_id: l.link_id.trim().to_owned(),
            iccid: l.iccid.trim().to_owned(),
            up: l.up,
            traffic_mb_24h: l.traffic_mb_24h,
        }),
        Some(B::CommandResult(r)) => match pb::CommandOutcome::try_from(r.outcome) {
            Ok(pb::CommandOutcome::Accepted) => Ok(CommandOutcome::Accepted),
            Ok(pb::CommandOutcome::Rejected) => Ok(CommandOutcome::Rejected),
            Ok(pb::CommandOutcome::Failed) => Ok(CommandOutcome::Failed),
            _ => Err(Rejection::invalid("command_result.outcome must be set")),
        }
        .map(|outcome| Body::CommandResult {
            command_id: r.command_id.trim().to_owned(),
            outcome,
            detail: r.detail.trim().to_owned(),
        }),
        Some(B::SessionStart(m)) => {
            parse_register("session_start.meter_start_kwh", &m.meter_start_kwh).map(
                |meter_start_kwh| Body::SessionStart {
                    order_id: m.order_id.trim().to_owned(),
                    authorization_ref: m.authorization_ref.trim().to_owned(),
                    meter_start_kwh,
                    connector_checked: m.connector_checked,
                    charging_confirmed: m.charging_confirmed,
                    any_token: m.any_token,
                },
            )
        }
        Some(B::SessionEnd(m)) => parse_register("session_end.meter_stop_kwh", &m.meter_stop_kwh)
            .and_then(|meter_stop_kwh| Ok((meter_stop_kwh, parse_reported(&m)?)))
            .map(|(meter_stop_kwh, reported)| Body::SessionEnd {
                order_id: m.order_id.trim().to_owned(),
                meter_stop_kwh,
                stop_reason: m.stop_reason,
                end_confirmed: m.end_confirmed,
                physically_separated: m.physically_separated,
                reported,
            }),
        None => Err(Rejection::invalid("the message has no body")),
    };
    Incoming {
        sequence: msg.sequence,
        operator_id: msg.operator_id.trim().to_owned(),
        pile_id: msg.pile_id.trim().to_owned(),
        connector_id: msg.connector_id.trim().to_owned(),
        observed_at: msg.observe_time.as_ref().and_then(from_timestamp),
        body,
    }
}

fn parse_register(field: &str, value: &str) -> Result<rust_decimal::Decimal, Rejection> {
    use std::str::FromStr;
    rust_decimal::Decimal::from_str(value.trim())
        .map_err(|_| Rejection::invalid(format!("{field} must be a decimal such as 1234.567")))
}

/// A logged message in its protobuf form, for the components that read the log.
pub fn body_to_pb(body: &Body) -> pb::telemetry_message::Body {
    use pb::telemetry_message::Body as B;
    match body.clone() {
        Body::Status {
            state,
            fault_code,
            fault_text,
        } => B::Status(pb::ConnectorStatus {
            state: state_to_pb(state) as i32,
            fault_code,
            fault_text,
        }),
        Body::Heartbeat => B::Heartbeat(pb::Heartbeat {}),
        Body::Meter {
            energy_kwh,
            power_kw,
            voltage,
            current,
            soc_percent,
        } => B::Meter(pb::MeterSample {
            energy_kwh: energy_kwh.to_string(),
            power_kw,
            voltage,
            current,
            soc_percent: soc_percent.unwrap_or(-1.0),
        }),
        Body::Alarm {
            code,
            severity,
            text,
        } => B::Alarm(pb::Alarm {
            code,
            severity: (match severity {
                AlarmSeverity::Info => pb::AlarmSeverity::Info,
                AlarmSeverity::Warning => pb::AlarmSeverity::Warning,
                AlarmSeverity::Critical => pb::AlarmSeverity::Critical,
            }) as i32,
            text,
        }),
        Body::VehicleData {
            session_ref,
            order_id,
            data_kind,
            data_hex,
        } => B::VehicleData(pb::VehicleData {
            session_ref,
            order_id,
            kind: data_kind,
            data: (0..data_hex.len() / 2)
                .filter_map(|i| u8::from_str_radix(data_hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect(),
        }),
        Body::Link {
            link_id,
            iccid,
            up,
            traffic_mb_24h,
        } => B::Link(pb::LinkState {
            link_id,
            iccid,
            up,
            traffic_mb_24h,
        }),
        Body::SessionStart {
            order_id,
            authorization_ref,
            meter_start_kwh,
            connector_checked,
            charging_confirmed,
            any_token,
        } => B::SessionStart(pb::SessionStart {
            order_id,
            authorization_ref,
            meter_start_kwh: meter_start_kwh.to_string(),
            connector_checked,
            charging_confirmed,
            any_token,
        }),
        Body::SessionEnd {
            order_id,
            meter_stop_kwh,
            stop_reason,
            end_confirmed,
            physically_separated,
            reported,
        } => B::SessionEnd(pb::SessionEnd {
            order_id,
            meter_stop_kwh: meter_stop_kwh.to_string(),
            stop_reason,
            end_confirmed,
            physically_separated,
            reported_energy_kwh: reported.map(|r| r.0.to_string()).unwrap_or_default(),
            reported_total_money: reported.map(|r| r.1.to_string()).unwrap_or_default(),
        }),
        Body::CommandResult {
            command_id,
            outcome,
            detail,
        } => B::CommandResult(pb::CommandResult {
            command_id,
            outcome: (match outcome {
                CommandOutcome::Accepted => pb::CommandOutcome::Accepted,
                CommandOutcome::Rejected => pb::CommandOutcome::Rejected,
                CommandOutcome::Failed => pb::CommandOutcome::Failed,
            }) as i32,
            detail,
        }),
    }
}

pub fn rejection(sequence: u64, r: &Rejection) -> pb::ConnectResponse {
    pb::ConnectResponse {
        body: Some(pb::connect_response::Body::Rejection(pb::Rejection {
            sequence,
            code: code_name(r.code),
            reason: r.reason.clone(),
        })),
    }
}

/// A gRPC code as its canonical name: `PermissionDenied` -> `PERMISSION_DENIED`.
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The T/CEC 102 ConnectorStatusInfo.Status code of a state (`chargemesh_cec::status`).
pub fn cec_code(state: ConnectorState) -> i32 {
    chargemesh_cec::status::code_of(state_to_pb(state)).unwrap_or_default()
}

/// A status-log cursor as the opaque token clients pass back.
pub fn encode_cursor(cursor: i64) -> String {
    encode_token(&[&cursor.to_string()])
}

pub fn decode_cursor(token: &str) -> Result<i64, Error> {
    let bad = || Error::bad_field("cursor", "is not a cursor this service issued");
    match decode_token(token, 1)? {
        Some(parts) => parts[0].parse().map_err(|_| bad()),
        None => Err(bad()),
    }
}

/// A status change as the regulator reads it; its T/CEC 102 code from the one mapping.
pub fn change_to_pb(c: &StatusChange) -> reg::StatusChange {
    reg::StatusChange {
        cursor: encode_cursor(c.cursor),
        status: Some(reg::ConnectorStatusInfo {
            operator_id: c.operator_id.clone(),
            station_id: c.station_id.clone(),
            pile_id: c.pile_id.clone(),
            connector_id: c.connector_id.clone(),
            state: state_to_pb(c.state) as i32,
            cec_status: cec_code(c.state),
            fault_code: c.fault_code.clone(),
            fault_text: c.fault_text.clone(),
            change_time: Some(to_timestamp(c.changed_at)),
            last_seen_time: None,
            area_code: c.area_code.clone(),
        }),
        previous_state: c
            .previous
            .map(|p| state_to_pb(p) as i32)
            .unwrap_or_default(),
        origin: c.origin.clone(),
    }
}

/// A command as it stands.
pub fn command_to_pb(r: &crate::store::CommandRecord) -> pb::PileCommandStatus {
    use prost::Message as _;
    let state = match r.state.as_str() {
        "queued" => pb::PileCommandState::Queued,
        "sent" => pb::PileCommandState::Sent,
        "accepted" => pb::PileCommandState::Accepted,
        "rejected" => pb::PileCommandState::Rejected,
        "failed" => pb::PileCommandState::Failed,
        "timed_out" => pb::PileCommandState::TimedOut,
        _ => pb::PileCommandState::Unspecified,
    };
    pb::PileCommandStatus {
        operator_id: r.queued.operator_id.clone(),
        command: pb::PileCommand::decode(r.queued.command.as_slice()).ok(),
        state: state as i32,
        attempts: r.attempts,
        queue_time: Some(to_timestamp(r.queued.queued_at)),
        send_time: r.sent_at.map(to_timestamp),
        answer_time: r.answered_at.map(to_timestamp),
        detail: r.detail.clone(),
    }
}

/// The pile's own figures of a session end: both given or neither; decimals, not negative, the
/// energy to at most 3 places and the money to at most 4 (REQ SETTLE-1).
fn parse_reported(m: &pb::SessionEnd) -> Result<Option<(Decimal, Decimal)>, Rejection> {
    use std::str::FromStr as _;
    let (energy, money) = (m.reported_energy_kwh.trim(), m.reported_total_money.trim());
    if energy.is_empty() && money.is_empty() {
        return Ok(None);
    }
    let read = |field: &str, value: &str, places: u32| {
        Decimal::from_str(value)
            .ok()
            .filter(|d| !d.is_sign_negative() && d.scale() <= places)
            .ok_or_else(|| {
                Rejection::invalid(format!(
                    "session_end.{field} must be a decimal of at most {places} places, 0 or more, given with the other reported figure"
                ))
            })
    };
    Ok(Some((
        read("reported_energy_kwh", energy, 3)?,
        read("reported_total_money", money, 4)?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(energy: &str, money: &str) -> pb::TelemetryMessage {
        pb::TelemetryMessage {
            sequence: 1,
            body: Some(pb::telemetry_message::Body::SessionEnd(pb::SessionEnd {
                meter_stop_kwh: "12.000".into(),
                reported_energy_kwh: energy.into(),
                reported_total_money: money.into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn settle_1_a_pile_s_own_figures_come_both_or_neither_and_well_formed() {
        let reported = |energy: &str, money: &str| match incoming(end(energy, money)).body {
            Ok(Body::SessionEnd { reported, .. }) => Ok(reported),
            Ok(other) => panic!("{other:?}"),
            Err(rejection) => Err(rejection.reason),
        };
        assert_eq!(reported("", ""), Ok(None));
        assert_eq!(
            reported("1.235", "1.5431"),
            Ok(Some((Decimal::new(1235, 3), Decimal::new(15431, 4))))
        );
        let one = reported("1.235", "").expect_err("the money is missing");
        assert!(one.contains("session_end.reported_total_money"), "{one}");
        assert!(reported("1.2345", "1.00").is_err(), "energy to 3 places");
        assert!(reported("1.000", "-1").is_err(), "money not negative");
    }

    #[test]
    fn vehicle_data_is_kept_as_sent_and_bounded() {
        let data = |session_ref: &str, kind: &str, bytes: Vec<u8>| pb::TelemetryMessage {
            sequence: 1,
            body: Some(pb::telemetry_message::Body::VehicleData(pb::VehicleData {
                session_ref: session_ref.into(),
                order_id: String::new(),
                kind: kind.into(),
                data: bytes,
            })),
            ..Default::default()
        };
        let body = incoming(data("S1", "ykc.0x15", vec![0x01, 0xab, 0xff]))
            .body
            .expect("kept");
        assert!(matches!(&body, Body::VehicleData { data_hex, .. } if data_hex == "01abff"));
        assert!(crate::domain::check_ranges(&body, 60.0).is_ok());
        let pb::telemetry_message::Body::VehicleData(back) = body_to_pb(&body) else {
            panic!("a vehicle data body");
        };
        assert_eq!(
            back.data,
            vec![0x01, 0xab, 0xff],
            "the bytes come back as sent"
        );
        let too_long = incoming(data("S1", "ykc.0x15", vec![0; MAX_VEHICLE_DATA + 1]));
        assert!(too_long.body.is_err());
        for (session_ref, kind) in [("", "ykc.0x15"), ("S1", ""), (&"9".repeat(65)[..], "k")] {
            let body = incoming(data(session_ref, kind, vec![1]))
                .body
                .expect("read");
            assert!(
                crate::domain::check_ranges(&body, 60.0).is_err(),
                "{session_ref:?} {kind:?}"
            );
        }
    }
}
