//! What a valid telemetry message is: the sender's scope, the registry, times and ranges
//! (REQ MON-1, NETSEC-1).

use super::*;

/// How far ahead of the server's clock an observation may be, for clock skew.
pub const MAX_FUTURE: Duration = Duration::minutes(5);
/// How old a resent observation may be.
pub const MAX_AGE: Duration = Duration::days(30);

/// The operator and pile a message is about, defaulted from the sender's identity.
fn target(principal: &Principal, msg: &Incoming) -> Result<(String, String), Rejection> {
    let operator = if msg.operator_id.is_empty() {
        principal
            .operator_id()
            .ok_or_else(|| Rejection::invalid("operator_id is required"))?
            .to_owned()
    } else {
        msg.operator_id.clone()
    };
    let pile = match (principal, msg.pile_id.is_empty()) {
        (Principal::Pile { pile_id, .. }, true) => pile_id.clone(),
        (_, true) => return Err(Rejection::invalid("pile_id is required")),
        (_, false) => msg.pile_id.clone(),
    };
    Ok((operator, pile))
}

/// Validates one message against the sender's scope and the registry (REQ MON-1, NETSEC-1).
/// `index` is the registry of the message's operator, if the sender may report for it at all.
pub fn validate(
    principal: &Principal,
    msg: &Incoming,
    index: Option<&OperatorIndex>,
    now: DateTime<Utc>,
) -> Result<Report, Rejection> {
    if msg.sequence == 0 {
        return Err(Rejection::invalid("sequence must be positive"));
    }
    let body = msg.body.clone()?;
    let (operator_id, pile_id) = target(principal, msg)?;
    // Scope: a pile reports only for itself, a station for its piles, an operator for its own.
    let own_operator = match principal {
        Principal::Operator { operator_id: own }
        | Principal::Station {
            operator_id: own, ..
        }
        | Principal::Pile {
            operator_id: own, ..
        } => Some(own.as_str()),
        Principal::Service { .. } => None,
        _ => {
            return Err(Rejection::denied(format!(
                "{principal} does not report telemetry"
            )));
        }
    };
    if own_operator.is_some_and(|own| own != operator_id) {
        return Err(Rejection::denied(format!(
            "{principal} may not report for operator {operator_id}"
        )));
    }
    if let Principal::Pile { pile_id: own, .. } = principal
        && *own != pile_id
    {
        return Err(Rejection::denied(format!(
            "{principal} may report only for itself"
        )));
    }
    let index =
        index.ok_or_else(|| Rejection::unknown(format!("unknown pile {operator_id}/{pile_id}")))?;
    let pile = index
        .piles
        .get(&pile_id)
        .ok_or_else(|| Rejection::unknown(format!("unknown pile {operator_id}/{pile_id}")))?;
    if let Principal::Station { station_id, .. } | Principal::Pile { station_id, .. } = principal
        && *station_id != pile.station_id
    {
        return Err(Rejection::denied(format!(
            "pile {pile_id} is not at {principal}'s station"
        )));
    }
    if pile.retired {
        return Err(Rejection {
            code: tonic::Code::FailedPrecondition,
            reason: format!("pile {pile_id} is retired (REQ MON-6)"),
        });
    }
    let needs_connector = matches!(
        body,
        Body::Status { .. }
            | Body::Meter { .. }
            | Body::SessionStart { .. }
            | Body::SessionEnd { .. }
            | Body::VehicleData { .. }
    );
    if needs_connector && msg.connector_id.is_empty() {
        return Err(Rejection::invalid(
            "connector_id is required for status, meter, session and vehicle data messages",
        ));
    }
    if !msg.connector_id.is_empty() && !pile.connectors.contains(&msg.connector_id) {
        return Err(Rejection::unknown(format!(
            "unknown connector {} of pile {pile_id}",
            msg.connector_id
        )));
    }
    let observed_at = msg
        .observed_at
        .ok_or_else(|| Rejection::invalid("observe_time is required"))?;
    if observed_at > now + MAX_FUTURE {
        return Err(Rejection::invalid(format!(
            "observe_time {observed_at} is in the future"
        )));
    }
    if observed_at < now - MAX_AGE {
        return Err(Rejection::invalid(format!(
            "observe_time {observed_at} is older than 30 days"
        )));
    }
    check_ranges(&body, pile.rated_power_kw)?;
    let station = index
        .stations
        .get(&pile.station_id)
        .ok_or_else(|| Rejection::unknown(format!("unknown station of pile {pile_id}")))?;
    let mut connectors: Vec<String> = if msg.connector_id.is_empty() {
        pile.connectors.to_vec()
    } else {
        vec![msg.connector_id.clone()]
    };
    connectors.sort();
    Ok(Report {
        source: principal.to_string(),
        sequence: msg.sequence,
        operator_id,
        station_id: pile.station_id.clone(),
        pile_id,
        connector_id: msg.connector_id.clone(),
        area_code: station.area_code.clone(),
        connectors,
        observed_at,
        body,
    })
}

pub(crate) fn check_ranges(body: &Body, rated_power_kw: f64) -> Result<(), Rejection> {
    match body {
        Body::Meter {
            energy_kwh,
            power_kw,
            voltage,
            current,
            soc_percent,
        } => {
            if energy_kwh.is_sign_negative()
                || *energy_kwh > Decimal::from(1_000_000_000u64)
                || energy_kwh.scale() > 3
            {
                return Err(Rejection::invalid(
                    "meter.energy_kwh must be 0 to 1e9 kWh with at most 3 decimals",
                ));
            }
            let limit = rated_power_kw * 1.2;
            if !power_kw.is_finite() || *power_kw < 0.0 || *power_kw > limit {
                return Err(Rejection::invalid(format!(
                    "meter.power_kw {power_kw} is outside 0 to {limit:.1} (the pile's rated power with 20% headroom)"
                )));
            }
            if !voltage.is_finite() || !(0.0..=1500.0).contains(voltage) {
                return Err(Rejection::invalid(format!(
                    "meter.voltage {voltage} is outside 0 to 1500 V"
                )));
            }
            if !current.is_finite() || !(0.0..=1000.0).contains(current) {
                return Err(Rejection::invalid(format!(
                    "meter.current {current} is outside 0 to 1000 A"
                )));
            }
            if soc_percent.is_some_and(|soc| !soc.is_finite() || !(0.0..=100.0).contains(&soc)) {
                return Err(Rejection::invalid("meter.soc_percent is outside 0 to 100"));
            }
        }
        Body::Status {
            state, fault_code, ..
        } => {
            if *state == ConnectorState::Fault && fault_code.trim().is_empty() {
                return Err(Rejection::invalid(
                    "status.fault_code is required with state FAULT",
                ));
            }
        }
        Body::Alarm { code, .. } => {
            if code.trim().is_empty() {
                return Err(Rejection::invalid("alarm.code is required"));
            }
        }
        Body::Link {
            link_id,
            iccid,
            traffic_mb_24h,
            ..
        } => {
            if link_id.trim().is_empty() && iccid.trim().is_empty() {
                return Err(Rejection::invalid(
                    "link.link_id or link.iccid names the link (REQ MON-8)",
                ));
            }
            if !traffic_mb_24h.is_finite() || !(0.0..=1_000_000.0).contains(traffic_mb_24h) {
                return Err(Rejection::invalid(format!(
                    "link.traffic_mb_24h {traffic_mb_24h} is outside 0 to 1000000 MB"
                )));
            }
        }
        Body::SessionStart {
            order_id,
            meter_start_kwh,
            ..
        } => {
            check_order_id("session_start.order_id", order_id)?;
            check_register("session_start.meter_start_kwh", *meter_start_kwh)?;
        }
        Body::SessionEnd {
            order_id,
            meter_stop_kwh,
            stop_reason,
            ..
        } => {
            check_order_id("session_end.order_id", order_id)?;
            check_register("session_end.meter_stop_kwh", *meter_stop_kwh)?;
            if !(0..=99).contains(stop_reason) {
                return Err(Rejection::invalid(
                    "session_end.stop_reason must be a T/CEC 102 StopReason code, 0 to 99",
                ));
            }
        }
        Body::CommandResult {
            command_id, detail, ..
        } => {
            if command_id.trim().is_empty() || command_id.len() > 64 {
                return Err(Rejection::invalid(
                    "command_result.command_id names the command answered",
                ));
            }
            if detail.len() > 1_000 {
                return Err(Rejection::invalid(
                    "command_result.detail is at most 1000 bytes",
                ));
            }
        }
        Body::VehicleData {
            session_ref,
            order_id,
            data_kind,
            ..
        } => {
            if session_ref.is_empty() || session_ref.len() > 64 {
                return Err(Rejection::invalid(
                    "vehicle_data.session_ref names the pile's session in 1 to 64 characters",
                ));
            }
            if data_kind.is_empty() || data_kind.len() > 32 {
                return Err(Rejection::invalid(
                    "vehicle_data.kind says what the data is in 1 to 32 characters",
                ));
            }
            check_order_id("vehicle_data.order_id", order_id)?;
        }
        Body::Heartbeat => {}
    }
    Ok(())
}

/// An order id given with a session: empty, or a T/CEC 102 StartChargeSeq of 27 characters.
fn check_order_id(field: &str, order_id: &str) -> Result<(), Rejection> {
    if order_id.is_empty()
        || (order_id.len() == 27 && order_id.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        Ok(())
    } else {
        Err(Rejection::invalid(format!(
            "{field} must be a T/CEC 102 StartChargeSeq of 27 letters and digits"
        )))
    }
}

/// An energy register: 0 to 1e9 kWh with at most 3 decimals.
fn check_register(field: &str, kwh: Decimal) -> Result<(), Rejection> {
    if kwh.is_sign_negative() || kwh > Decimal::from(1_000_000_000u64) || kwh.scale() > 3 {
        return Err(Rejection::invalid(format!(
            "{field} must be 0 to 1e9 kWh with at most 3 decimals"
        )));
    }
    Ok(())
}

/// Parses a meter energy register.
pub fn parse_energy(value: &str) -> Result<Decimal, Rejection> {
    Decimal::from_str(value.trim())
        .map_err(|_| Rejection::invalid("meter.energy_kwh must be a decimal such as 1234.567"))
}
