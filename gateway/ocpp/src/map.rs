//! What both versions share: connector states to the six states of T/CEC 102, meter values to
//! samples (units as real chargers spell them), stop reasons and timestamps.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use chargemesh_proto::telemetry::v1 as pb;

/// A connector state of either version, as a telemetry state with the fault's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub state: pb::ConnectorState,
    pub fault_code: String,
}

/// An OCPP connector status to a telemetry state (REQ MON-1; the T/CEC 102 codes in the proto).
/// 1.6 `Preparing`, `SuspendedEV`, `SuspendedEVSE` and `Finishing` and 2.0.1 `Occupied` are a
/// plugged connector not charging; `Unavailable` (taken out of service, by the operator or by a
/// suspension under MON-4) is not chargeable and shows as a fault with the code `Unavailable`;
/// `Faulted` carries the pile's error code. `None` for a status neither version has.
pub fn connector_state(status: &str, error_code: &str) -> Option<Mapped> {
    use pb::ConnectorState as S;
    let plain = |state| Mapped {
        state,
        fault_code: String::new(),
    };
    Some(match status {
        "Available" => plain(S::Idle),
        "Preparing" | "SuspendedEV" | "SuspendedEVSE" | "Finishing" | "Occupied" => {
            plain(S::OccupiedNotCharging)
        }
        "Charging" => plain(S::Charging),
        "Reserved" => plain(S::Reserved),
        "Unavailable" => Mapped {
            state: S::Fault,
            fault_code: "Unavailable".into(),
        },
        "Faulted" => Mapped {
            state: S::Fault,
            fault_code: match error_code.trim() {
                "" | "NoError" => "Faulted".into(),
                code => code.to_owned(),
            },
        },
        _ => return None,
    })
}

/// One sampled value of a meter value, as both versions send it (1.6 has `unit`, 2.0.1
/// `unitOfMeasure`; values are strings in 1.6, numbers in 2.0.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampledValue {
    pub value: serde_json::Value,
    #[serde(default)]
    pub measurand: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub unit_of_measure: Option<UnitOfMeasure>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UnitOfMeasure {
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub multiplier: Option<i32>,
}

/// A meter value's samples, read into one telemetry sample. The energy register (the default
/// measurand) is kWh with 3 places; a value signed or in a unit we do not know is left out, and a
/// meter value without an energy register gives no sample (telemetry's samples carry one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub energy_wh: Option<i64>,
    pub power_kw: Option<f64>,
    pub voltage: Option<f64>,
    pub current: Option<f64>,
    pub soc_percent: Option<f64>,
}

impl Sample {
    pub fn read(values: &[SampledValue]) -> Self {
        let mut sample = Sample::default();
        for v in values {
            if v.format.as_deref() == Some("SignedData") {
                continue;
            }
            let Some(number) = number(&v.value) else {
                continue;
            };
            let (unit, multiplier) = match &v.unit_of_measure {
                Some(u) => (u.unit.clone(), u.multiplier.unwrap_or(0)),
                None => (v.unit.clone(), 0),
            };
            let scaled = number * 10f64.powi(multiplier);
            let unit = unit.unwrap_or_default().to_ascii_lowercase();
            // A per-phase value is taken only when no total came.
            let phased = v.phase.as_deref().is_some_and(|p| !p.is_empty());
            match v
                .measurand
                .as_deref()
                .unwrap_or("Energy.Active.Import.Register")
            {
                "Energy.Active.Import.Register" => {
                    let wh = match unit.as_str() {
                        "" | "wh" => scaled,
                        "kwh" => scaled * 1000.0,
                        _ => continue,
                    };
                    if !phased || sample.energy_wh.is_none() {
                        sample.energy_wh = Some(wh.round() as i64);
                    }
                }
                "Power.Active.Import" => {
                    let kw = match unit.as_str() {
                        "" | "w" => scaled / 1000.0,
                        "kw" => scaled,
                        _ => continue,
                    };
                    set(&mut sample.power_kw, kw, phased);
                }
                "Voltage" if matches!(unit.as_str(), "" | "v") => {
                    set(&mut sample.voltage, scaled, phased)
                }
                "Current.Import" if matches!(unit.as_str(), "" | "a") => {
                    set(&mut sample.current, scaled, phased)
                }
                "SoC" if (0.0..=100.0).contains(&scaled) => {
                    set(&mut sample.soc_percent, scaled, phased)
                }
                // Temperatures ("Celsius", "Celcius" as some firmware writes it), frequency and
                // the rest have no place in a telemetry sample.
                _ => {}
            }
        }
        sample
    }

    /// The telemetry sample, when there is an energy register.
    pub fn to_meter(&self) -> Option<pb::MeterSample> {
        let wh = self.energy_wh.filter(|wh| *wh >= 0)?;
        Some(pb::MeterSample {
            energy_kwh: kwh(wh),
            power_kw: self.power_kw.unwrap_or(0.0),
            voltage: self.voltage.unwrap_or(0.0),
            current: self.current.unwrap_or(0.0),
            soc_percent: self.soc_percent.unwrap_or(-1.0),
        })
    }
}

fn set(slot: &mut Option<f64>, value: f64, phased: bool) {
    if !phased || slot.is_none() {
        *slot = Some(value);
    }
}

fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

/// Watt-hours as telemetry's kWh register, exactly: `1234567` is `"1234.567"`.
pub fn kwh(wh: i64) -> String {
    format!("{}.{:03}", wh / 1000, wh % 1000)
}

/// A stop reason of either version to T/CEC 102's StopReason: 0 the user, 1 the platform, 3 a
/// charger fault or loss of power, 4 the vehicle unplugged, 5 anything else; a missing reason is
/// the user's (1.6's default, `Local`).
pub fn stop_reason(reason: Option<&str>) -> i32 {
    match reason.unwrap_or("Local") {
        "Local" | "StoppedByEV" => 0,
        "Remote" | "DeAuthorized" | "UnlockCommand" | "ReqEnergyTransfer" => 1,
        "EmergencyStop" | "PowerLoss" | "HardReset" | "SoftReset" | "Reboot" | "GroundFault"
        | "OvercurrentFault" | "PowerQuality" | "Timeout" => 3,
        "EVDisconnected" => 4,
        _ => 5,
    }
}

/// An OCPP timestamp (RFC 3339; without a zone, as some firmware sends it, it is UTC).
pub fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// An OCPP timestamp as it is answered.
pub fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(v: serde_json::Value) -> Vec<SampledValue> {
        serde_json::from_value(v).expect("sampled values")
    }

    #[test]
    fn mon_1_every_connector_status_of_both_versions_maps_to_one_of_six_states() {
        use pb::ConnectorState as S;
        for (status, state) in [
            ("Available", S::Idle),
            ("Preparing", S::OccupiedNotCharging),
            ("Charging", S::Charging),
            ("SuspendedEV", S::OccupiedNotCharging),
            ("SuspendedEVSE", S::OccupiedNotCharging),
            ("Finishing", S::OccupiedNotCharging),
            ("Reserved", S::Reserved),
            ("Unavailable", S::Fault),
            ("Faulted", S::Fault),
            ("Occupied", S::OccupiedNotCharging),
        ] {
            assert_eq!(
                connector_state(status, "NoError").map(|m| m.state),
                Some(state),
                "{status}"
            );
        }
        assert_eq!(
            connector_state("Faulted", "GroundFailure").map(|m| m.fault_code),
            Some("GroundFailure".into())
        );
        assert_eq!(
            connector_state("Faulted", "NoError").map(|m| m.fault_code),
            Some("Faulted".into())
        );
        assert_eq!(connector_state("Sleeping", "NoError"), None);
    }

    #[test]
    fn meter_values_in_wh_or_kwh_with_phases_and_odd_spellings_make_one_sample() {
        let s = Sample::read(&values(json!([
            {"value": "12345", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "231.5", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
            {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
            {"value": "55", "measurand": "SoC", "unit": "Percent"},
            {"value": "31.5", "measurand": "Temperature", "unit": "Celcius"},
        ])));
        assert_eq!(s.energy_wh, Some(12345));
        assert_eq!(s.power_kw, Some(7.2));
        assert_eq!(s.voltage, Some(231.5));
        assert_eq!(s.current, Some(16.0));
        assert_eq!(s.soc_percent, Some(55.0));
        let meter = s.to_meter().expect("a sample");
        assert_eq!(meter.energy_kwh, "12.345");

        let kwh_default = Sample::read(&values(json!([{"value": "1.5", "unit": "kWh"}])));
        assert_eq!(kwh_default.energy_wh, Some(1500), "the default measurand");
        let v201 = Sample::read(&values(json!([
            {"value": 2.5, "unitOfMeasure": {"unit": "kWh", "multiplier": 1}},
            {"value": 3000, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}}
        ])));
        assert_eq!(v201.energy_wh, Some(25000));
        assert_eq!(v201.power_kw, Some(3.0));
        let signed = Sample::read(&values(json!([{"value": "AbC=", "format": "SignedData"}])));
        assert_eq!(signed.to_meter(), None, "no register, no sample");
        let odd_unit = Sample::read(&values(json!([{"value": "9", "unit": "MJ"}])));
        assert_eq!(odd_unit.energy_wh, None);
    }

    #[test]
    fn watt_hours_become_an_exact_kwh_register() {
        assert_eq!(kwh(0), "0.000");
        assert_eq!(kwh(1_234_567), "1234.567");
        assert_eq!(kwh(5), "0.005");
    }

    #[test]
    fn stop_reasons_map_to_tcec_codes() {
        assert_eq!(stop_reason(None), 0);
        assert_eq!(stop_reason(Some("Remote")), 1);
        assert_eq!(stop_reason(Some("EmergencyStop")), 3);
        assert_eq!(stop_reason(Some("EVDisconnected")), 4);
        assert_eq!(stop_reason(Some("Other")), 5);
    }

    #[test]
    fn timestamps_with_or_without_a_zone_are_read() {
        let z = timestamp("2026-12-01T08:00:00Z").expect("zulu");
        assert_eq!(timestamp("2026-12-01T16:00:00+08:00"), Some(z));
        assert_eq!(timestamp("2026-12-01T08:00:00.000"), Some(z));
        assert_eq!(timestamp("yesterday"), None);
    }
}
