//! Trial-operation data (REQ BASE-2): per station and local day, the availability, charging
//! sessions, energy, faults and offline minutes, computed from the status log and meter samples
//! as each day closes and published to the regulator; the asset component's commissioning asks
//! for them (REQ BASE-2).

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::domain::ConnectorState;

/// One connector's states through a window: the state at its start (`None`: never heard, so
/// offline) and the changes inside it, in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub initial: Option<ConnectorState>,
    pub changes: Vec<(DateTime<Utc>, ConnectorState)>,
}

/// The figures of one trial day of one station.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialDay {
    pub operator_id: String,
    pub station_id: String,
    pub day: NaiveDate,
    /// Connector-minutes observed in the day (the first day starts with the trial).
    pub connector_minutes: i64,
    /// Connector-minutes neither offline nor faulted.
    pub available_minutes: i64,
    pub offline_minutes: i64,
    pub fault_minutes: i64,
    /// available / observed, percent, rounded half-up to 2 places.
    pub availability_percent: Decimal,
    pub sessions_started: u32,
    pub sessions_completed: u32,
    /// Energy delivered, kWh, from the meter registers, to 3 places.
    pub energy_kwh: Decimal,
    pub faults_raised: u32,
    pub faults_cleared: u32,
}

/// The local (UTC+8) day window `[start, end)` of a date, clipped to begin no earlier than `from`.
pub fn day_window(day: NaiveDate, from: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let (start, end) = chargemesh_kit::clock::china_day(day);
    (start.max(from), end)
}

/// Computes a day's figures from the connectors' timelines and the energy delivered.
pub fn day_figures(
    operator_id: &str,
    station_id: &str,
    day: NaiveDate,
    window: (DateTime<Utc>, DateTime<Utc>),
    timelines: &[Timeline],
    energy_kwh: Decimal,
) -> TrialDay {
    let (start, end) = window;
    let mut seconds = [0i64; 3]; // available, offline, fault
    let (mut started, mut completed, mut raised, mut cleared) = (0, 0, 0, 0);
    for t in timelines {
        let mut state = t.initial.unwrap_or(ConnectorState::Offline);
        let mut since = start;
        let changes = t.changes.iter().filter(|(at, _)| *at >= start && *at < end);
        for (at, next) in changes.chain(std::iter::once(&(end, state))) {
            let span = (*at - since).num_seconds().max(0);
            match state {
                ConnectorState::Offline => seconds[1] += span,
                ConnectorState::Fault => seconds[2] += span,
                _ => seconds[0] += span,
            }
            if *at == end {
                break;
            }
            if *next == ConnectorState::Charging && state != ConnectorState::Charging {
                started += 1;
            }
            if state == ConnectorState::Charging
                && matches!(
                    next,
                    ConnectorState::Idle
                        | ConnectorState::OccupiedNotCharging
                        | ConnectorState::Reserved
                )
            {
                completed += 1;
            }
            if *next == ConnectorState::Fault && state != ConnectorState::Fault {
                raised += 1;
            }
            if state == ConnectorState::Fault && *next != ConnectorState::Fault {
                cleared += 1;
            }
            state = *next;
            since = *at;
        }
    }
    let observed = seconds.iter().sum::<i64>();
    let availability_percent = if observed == 0 {
        Decimal::ZERO
    } else {
        (Decimal::from(seconds[0]) * Decimal::from(100) / Decimal::from(observed))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    };
    TrialDay {
        operator_id: operator_id.to_owned(),
        station_id: station_id.to_owned(),
        day,
        connector_minutes: observed / 60,
        available_minutes: seconds[0] / 60,
        offline_minutes: seconds[1] / 60,
        fault_minutes: seconds[2] / 60,
        availability_percent,
        sessions_started: started,
        sessions_completed: completed,
        energy_kwh: energy_kwh.round_dp(3),
        faults_raised: raised,
        faults_cleared: cleared,
    }
}

/// Energy delivered by one connector in a window: the register's rise across its samples
/// (a register that goes backwards, such as after a meter exchange, counts from the new reading).
pub fn energy_from_registers(samples: &[Decimal]) -> Decimal {
    samples
        .windows(2)
        .map(|w| (w[1] - w[0]).max(Decimal::ZERO))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn base_2_a_local_day_runs_from_utc_16_to_16() {
        let (start, end) = day_window(d("2026-03-02"), t("2000-01-01T00:00:00Z"));
        assert_eq!(start, t("2026-03-01T16:00:00Z"));
        assert_eq!(end, t("2026-03-02T16:00:00Z"));
        let (start, _) = day_window(d("2026-03-02"), t("2026-03-02T01:30:00Z"));
        assert_eq!(
            start,
            t("2026-03-02T01:30:00Z"),
            "the trial's first day starts with the trial"
        );
    }

    #[test]
    fn base_2_a_scripted_day_gives_its_figures_to_the_minute() {
        let window = day_window(d("2026-03-02"), t("2000-01-01T00:00:00Z"));
        // Connector A: idle all night, charges 08:00-09:30 local, faults 12:00-12:45, idle after.
        let a = Timeline {
            initial: Some(ConnectorState::Idle),
            changes: vec![
                (t("2026-03-02T00:00:00Z"), ConnectorState::Charging),
                (t("2026-03-02T01:30:00Z"), ConnectorState::Idle),
                (t("2026-03-02T04:00:00Z"), ConnectorState::Fault),
                (t("2026-03-02T04:45:00Z"), ConnectorState::Idle),
            ],
        };
        // Connector B: never heard until 06:00 local, then idle; offline again 20:00-20:30 local.
        let b = Timeline {
            initial: None,
            changes: vec![
                (t("2026-03-01T22:00:00Z"), ConnectorState::Idle),
                (t("2026-03-02T12:00:00Z"), ConnectorState::Offline),
                (t("2026-03-02T12:30:00Z"), ConnectorState::Idle),
            ],
        };
        let day = day_figures(
            "OP",
            "S1",
            d("2026-03-02"),
            window,
            &[a, b],
            Decimal::new(45_500, 3),
        );
        assert_eq!(day.connector_minutes, 2 * 24 * 60);
        assert_eq!(day.fault_minutes, 45);
        assert_eq!(day.offline_minutes, 6 * 60 + 30);
        assert_eq!(day.available_minutes, 2880 - 45 - 390);
        assert_eq!(day.availability_percent, Decimal::new(8490, 2)); // 2445 / 2880
        assert_eq!((day.sessions_started, day.sessions_completed), (1, 1));
        assert_eq!((day.faults_raised, day.faults_cleared), (1, 1));
        assert_eq!(day.energy_kwh, Decimal::new(45_500, 3));
    }

    #[test]
    fn energy_is_the_rise_of_the_register() {
        let r = |v: i64| Decimal::new(v, 3);
        assert_eq!(energy_from_registers(&[r(1000), r(1500), r(2500)]), r(1500));
        assert_eq!(
            energy_from_registers(&[r(1000), r(1500), r(100), r(300)]),
            r(700),
            "meter exchanged"
        );
        assert_eq!(energy_from_registers(&[]), Decimal::ZERO);
    }
}
