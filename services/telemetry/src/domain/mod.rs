//! Telemetry's model and rules as pure functions: the messages, when silence means offline
//! (REQ MON-1), the links' latest states (MON-8) and acknowledgement ranges; what a sender may
//! report for and what a valid message is are in [`validate`](mod@validate). The T/CEC 102 codes of the states are
//! `chargemesh_cec::status`'s.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

use chargemesh_kit::Principal;

mod validate;

#[cfg(test)]
pub(crate) use validate::check_ranges;
pub use validate::{MAX_AGE, MAX_FUTURE, parse_energy, validate};

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
        /// The station accepted any token for it.
        #[serde(default)]
        any_token: bool,
    },
    /// The session on the connector ends.
    SessionEnd {
        order_id: String,
        meter_stop_kwh: Decimal,
        stop_reason: i32,
        end_confirmed: bool,
        physically_separated: bool,
        /// What the pile computed itself (energy kWh, total money yuan), when it says.
        reported: Option<(Decimal, Decimal)>,
    },
    /// The pile's answer to a command it was sent.
    CommandResult {
        command_id: String,
        outcome: CommandOutcome,
        detail: String,
    },
    /// What the vehicle's BMS told the pile in a session, kept with it.
    VehicleData {
        /// The pile's own id of the session.
        session_ref: String,
        order_id: String,
        /// What the data is ("ykc.0x15").
        data_kind: String,
        /// The data as the pile sent it, as lowercase hex.
        data_hex: String,
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
            Body::VehicleData { .. } => "vehicle_data",
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
    /// Emptied when their sighting is noted in memory instead (`Heartbeats::vouch`): the store
    /// then logs the message without touching their status rows.
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
