//! Telemetry rules as pure functions: what a sender may report for, what a valid message is,
//! and when silence means offline (REQ MON-1). The T/CEC 102 codes of the states are
//! `chargemesh_cec::status`'s.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

use chargemesh_kit::Principal;

/// A connector's state: the six states of T/CEC 102 ConnectorStatusInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    Offline,
    Idle,
    OccupiedNotCharging,
    Charging,
    Reserved,
    Fault,
}

impl ConnectorState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorState::Offline => "offline",
            ConnectorState::Idle => "idle",
            ConnectorState::OccupiedNotCharging => "occupied_not_charging",
            ConnectorState::Charging => "charging",
            ConnectorState::Reserved => "reserved",
            ConnectorState::Fault => "fault",
        }
    }

    /// Every state, in T/CEC 102 code order.
    pub const ALL: [ConnectorState; 6] = [
        ConnectorState::Offline,
        ConnectorState::Idle,
        ConnectorState::OccupiedNotCharging,
        ConnectorState::Charging,
        ConnectorState::Reserved,
        ConnectorState::Fault,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmSeverity {
    Info,
    Warning,
    Critical,
}

/// What a pile answered to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    Accepted,
    Rejected,
    Failed,
}

impl CommandOutcome {
    /// The command's state once answered so.
    pub fn state(self) -> &'static str {
        match self {
            CommandOutcome::Accepted => "accepted",
            CommandOutcome::Rejected => "rejected",
            CommandOutcome::Failed => "failed",
        }
    }
}

/// The body of an accepted message, as kept in the telemetry log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    Status {
        state: ConnectorState,
        fault_code: String,
        fault_text: String,
    },
    Heartbeat,
    Meter {
        energy_kwh: Decimal,
        power_kw: f64,
        voltage: f64,
        current: f64,
        soc_percent: Option<f64>,
    },
    Alarm {
        code: String,
        severity: AlarmSeverity,
        text: String,
    },
    /// REQ CHG-1, SETTLE-1: a charging session starts on the connector.
    SessionStart {
        /// The StartChargeSeq, empty when the pile started the session on its own.
        order_id: String,
        authorization_ref: String,
        meter_start_kwh: Decimal,
        connector_checked: bool,
        charging_confirmed: bool,
    },
    /// The session on the connector ends.
    SessionEnd {
        order_id: String,
        meter_stop_kwh: Decimal,
        stop_reason: i32,
        end_confirmed: bool,
        physically_separated: bool,
    },
    /// The pile's answer to a command it was sent.
    CommandResult {
        command_id: String,
        outcome: CommandOutcome,
        detail: String,
    },
    /// REQ MON-8: a communication link's state, for the monitor's daily check.
    Link {
        link_id: String,
        iccid: String,
        up: bool,
        /// Data carried over the last 24 hours, MB.
        traffic_mb_24h: f64,
    },
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Status { .. } => "status",
            Body::Heartbeat => "heartbeat",
            Body::Meter { .. } => "meter",
            Body::Alarm { .. } => "alarm",
            Body::Link { .. } => "link",
            Body::SessionStart { .. } => "session_start",
            Body::SessionEnd { .. } => "session_end",
            Body::CommandResult { .. } => "command_result",
        }
    }
}

/// A message as the sender sent it, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub sequence: u64,
    pub operator_id: String,
    pub pile_id: String,
    pub connector_id: String,
    pub observed_at: Option<DateTime<Utc>>,
    pub body: Result<Body, Rejection>,
}

/// A validated message, ready for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The sender, as its identity string; with `sequence` the key of deduplication.
    pub source: String,
    pub sequence: u64,
    pub operator_id: String,
    pub station_id: String,
    pub pile_id: String,
    /// Empty for pile-level messages (heartbeat, alarm).
    pub connector_id: String,
    pub area_code: String,
    /// The connectors the message speaks for, sorted: its own, or every connector of its pile.
    pub connectors: Vec<String>,
    pub observed_at: DateTime<Utc>,
    pub body: Body,
}

/// Why one message was refused; the stream goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: tonic::Code,
    pub reason: String,
}

impl Rejection {
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self {
            code: tonic::Code::InvalidArgument,
            reason: reason.into(),
        }
    }

    fn denied(reason: impl Into<String>) -> Self {
        Self {
            code: tonic::Code::PermissionDenied,
            reason: reason.into(),
        }
    }

    fn unknown(reason: impl Into<String>) -> Self {
        Self {
            code: tonic::Code::NotFound,
            reason: reason.into(),
        }
    }
}

/// What the registry knows of one operator's piles, for validating reports.
#[derive(Debug, Clone, Default)]
pub struct OperatorIndex {
    pub piles: HashMap<String, PileRef>,
    pub stations: HashMap<String, StationRef>,
}

#[derive(Debug, Clone)]
pub struct PileRef {
    pub station_id: String,
    /// In the order the registry lists them.
    pub connectors: Vec<String>,
    pub rated_power_kw: f64,
    /// REQ MON-6: a retired pile reports nothing.
    pub retired: bool,
}

#[derive(Debug, Clone)]
pub struct StationRef {
    pub area_code: String,
    /// Filed and waiting for its first report to be connected (REQ BASE-2).
    pub filed: bool,
}

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
    );
    if needs_connector && msg.connector_id.is_empty() {
        return Err(Rejection::invalid(
            "connector_id is required for status, meter and session messages",
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

fn check_ranges(body: &Body, rated_power_kw: f64) -> Result<(), Rejection> {
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
        Body::Heartbeat => {}
    }
    Ok(())
}

/// REQ MON-8: a link's latest reported state.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkReport {
    pub pile_id: String,
    pub observed_at: DateTime<Utc>,
    pub link_id: String,
    pub iccid: String,
    pub up: bool,
    pub traffic_mb_24h: f64,
}

/// REQ MON-8: the latest report of each link, from reports in observation order; a link is
/// known by its id, or by its ICCID when reported without one. Ordered by link.
pub fn latest_links(reports: Vec<(String, DateTime<Utc>, Body)>) -> Vec<LinkReport> {
    let mut latest: std::collections::BTreeMap<String, LinkReport> = Default::default();
    for (pile_id, observed_at, body) in reports {
        if let Body::Link {
            link_id,
            iccid,
            up,
            traffic_mb_24h,
        } = body
        {
            let key = if link_id.is_empty() {
                iccid.clone()
            } else {
                link_id.clone()
            };
            latest.insert(
                key,
                LinkReport {
                    pile_id,
                    observed_at,
                    link_id,
                    iccid,
                    up,
                    traffic_mb_24h,
                },
            );
        }
    }
    latest.into_values().collect()
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

/// REQ MON-1: a connector not heard from for `offline_after` is offline.
pub fn is_silent(last_seen: DateTime<Utc>, now: DateTime<Utc>, offline_after: Duration) -> bool {
    now - last_seen >= offline_after
}

/// Sequence numbers as the fewest inclusive ranges, for acknowledgements.
pub fn ranges(mut sequences: Vec<u64>) -> Vec<(u64, u64)> {
    sequences.sort_unstable();
    sequences.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in sequences {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .expect("t")
            .to_utc()
    }

    fn index() -> OperatorIndex {
        let mut idx = OperatorIndex::default();
        idx.piles.insert(
            "P1".into(),
            PileRef {
                station_id: "S1".into(),
                connectors: ["C1".to_owned()].into(),
                rated_power_kw: 60.0,
                retired: false,
            },
        );
        idx.piles.insert(
            "P9".into(),
            PileRef {
                station_id: "S9".into(),
                connectors: ["C9".to_owned()].into(),
                rated_power_kw: 60.0,
                retired: false,
            },
        );
        for s in ["S1", "S9"] {
            idx.stations.insert(
                s.into(),
                StationRef {
                    area_code: "330602".into(),
                    filed: true,
                },
            );
        }
        idx
    }

    fn status(pile: &str, connector: &str, state: ConnectorState) -> Incoming {
        Incoming {
            sequence: 1,
            operator_id: String::new(),
            pile_id: pile.into(),
            connector_id: connector.into(),
            observed_at: Some(now()),
            body: Ok(Body::Status {
                state,
                fault_code: String::new(),
                fault_text: String::new(),
            }),
        }
    }

    fn pile_principal() -> Principal {
        Principal::Pile {
            operator_id: "OP".into(),
            station_id: "S1".into(),
            pile_id: "P1".into(),
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in ConnectorState::ALL {
            assert_eq!(ConnectorState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ConnectorState::parse("unplugged"), None);
    }

    #[test]
    fn netsec_1_a_pile_reports_only_for_itself() {
        let p = pile_principal();
        let ok = validate(
            &p,
            &status("", "C1", ConnectorState::Idle),
            Some(&index()),
            now(),
        )
        .expect("own pile by default");
        assert_eq!(
            (ok.station_id.as_str(), ok.area_code.as_str()),
            ("S1", "330602")
        );
        let other = validate(
            &p,
            &status("P9", "C9", ConnectorState::Idle),
            Some(&index()),
            now(),
        )
        .expect_err("refused");
        assert_eq!(other.code, tonic::Code::PermissionDenied);
        let mut foreign = status("", "C1", ConnectorState::Idle);
        foreign.operator_id = "OTHER".into();
        assert_eq!(
            validate(&p, &foreign, Some(&index()), now())
                .expect_err("refused")
                .code,
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn netsec_1_a_station_reports_for_its_own_piles_and_an_operator_for_all() {
        let station = Principal::Station {
            operator_id: "OP".into(),
            station_id: "S1".into(),
        };
        assert!(
            validate(
                &station,
                &status("P1", "C1", ConnectorState::Idle),
                Some(&index()),
                now()
            )
            .is_ok()
        );
        let err = validate(
            &station,
            &status("P9", "C9", ConnectorState::Idle),
            Some(&index()),
            now(),
        )
        .expect_err("refused");
        assert_eq!(err.code, tonic::Code::PermissionDenied);
        let operator = Principal::Operator {
            operator_id: "OP".into(),
        };
        assert!(
            validate(
                &operator,
                &status("P9", "C9", ConnectorState::Idle),
                Some(&index()),
                now()
            )
            .is_ok()
        );
        let regulator = Principal::Regulator {
            area_code: "330600".into(),
        };
        assert!(
            validate(
                &regulator,
                &status("P1", "C1", ConnectorState::Idle),
                Some(&index()),
                now()
            )
            .is_err()
        );
    }

    #[test]
    fn mon_1_unknown_connectors_future_times_and_out_of_range_values_are_rejected() {
        let op = Principal::Operator {
            operator_id: "OP".into(),
        };
        let unknown = validate(
            &op,
            &status("P1", "C7", ConnectorState::Idle),
            Some(&index()),
            now(),
        )
        .expect_err("unknown");
        assert_eq!(unknown.code, tonic::Code::NotFound);
        assert!(
            validate(
                &op,
                &status("P7", "C1", ConnectorState::Idle),
                Some(&index()),
                now()
            )
            .is_err()
        );
        let mut future = status("P1", "C1", ConnectorState::Idle);
        future.observed_at = Some(now() + Duration::hours(1));
        assert!(
            validate(&op, &future, Some(&index()), now())
                .expect_err("future")
                .reason
                .contains("future")
        );
        let mut meter = status("P1", "C1", ConnectorState::Idle);
        meter.body = Ok(Body::Meter {
            energy_kwh: Decimal::new(1234567, 3),
            power_kw: 500.0,
            voltage: 400.0,
            current: 100.0,
            soc_percent: Some(50.0),
        });
        assert!(
            validate(&op, &meter, Some(&index()), now())
                .expect_err("power")
                .reason
                .contains("power_kw")
        );
        let fault = status("P1", "C1", ConnectorState::Fault);
        assert!(
            validate(&op, &fault, Some(&index()), now())
                .expect_err("code")
                .reason
                .contains("fault_code")
        );
        let mut zero = status("P1", "C1", ConnectorState::Idle);
        zero.sequence = 0;
        assert!(validate(&op, &zero, Some(&index()), now()).is_err());
    }

    #[test]
    fn mon_1_silence_for_the_interval_means_offline() {
        let last = now();
        assert!(!is_silent(
            last,
            last + Duration::seconds(179),
            Duration::minutes(3)
        ));
        assert!(is_silent(
            last,
            last + Duration::minutes(3),
            Duration::minutes(3)
        ));
    }

    #[test]
    fn mon_8_the_latest_report_of_each_link_wins_and_bad_reports_are_refused() {
        let link = |id: &str, iccid: &str, up: bool, mb: f64| Body::Link {
            link_id: id.into(),
            iccid: iccid.into(),
            up,
            traffic_mb_24h: mb,
        };
        let t0 = now();
        let latest = latest_links(vec![
            ("P1".into(), t0, link("SIM-1", "8986", true, 10.0)),
            ("P2".into(), t0, link("", "8987", true, 3.0)),
            ("P1".into(), t0, Body::Heartbeat),
            (
                "P1".into(),
                t0 + Duration::hours(1),
                link("SIM-1", "8986", false, 0.0),
            ),
        ]);
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[0].iccid, "8987", "keyed by ICCID without an id");
        assert_eq!((latest[1].link_id.as_str(), latest[1].up), ("SIM-1", false));
        assert!(check_ranges(&link("", "", true, 1.0), 60.0).is_err());
        assert!(check_ranges(&link("L", "", true, -1.0), 60.0).is_err());
        assert!(check_ranges(&link("L", "", true, f64::NAN), 60.0).is_err());
        assert!(check_ranges(&link("L", "", true, 12.5), 60.0).is_ok());
    }

    #[test]
    fn acknowledgements_cover_the_fewest_ranges() {
        assert_eq!(
            ranges(vec![5, 3, 4, 9, 10, 4, 1]),
            vec![(1, 1), (3, 5), (9, 10)]
        );
        assert!(ranges(vec![]).is_empty());
    }
}
