//! What YKC's numbers mean in Chargemesh's terms (`design/ykc.md` §4): connector states, the
//! hardware fault bits as fault codes and alarms, stop reasons as T/CEC 102 StopReason, YKC's
//! fixed-point energies as kWh registers, and the serials the platform makes for its starts.

use chargemesh_proto::telemetry::v1 as pb;
use chrono::{DateTime, Utc};

use crate::records::{FAULT_BITS, Realtime};

/// The state a 0x13 reports (§4.1; YKC 0x01 is a fault where T/CEC 1 is idle). `None` for a
/// status code YKC does not define, which is logged and not reported.
pub fn connector_state(data: &Realtime) -> Option<pb::ConnectorState> {
    use pb::ConnectorState as S;
    Some(match data.status {
        0x00 => S::Offline,
        0x01 => S::Fault,
        0x02 if data.plugged == 1 => S::OccupiedNotCharging,
        0x02 => S::Idle,
        0x03 if data.in_session() => S::Charging,
        // Charging without a session's serial: occupied (JCPP's rule).
        0x03 => S::OccupiedNotCharging,
        _ => return None,
    })
}

/// The names of the fault bits set in a 0x13's hardware fault field; bits YKC does not define
/// are named by number.
pub fn fault_names(faults: u16) -> Vec<String> {
    (0..16)
        .filter(|bit| faults & (1 << bit) != 0)
        .map(|bit| match FAULT_BITS.get(bit) {
            Some(name) => (*name).to_owned(),
            None => format!("bit-{}", bit + 1),
        })
        .collect()
}

/// The fault code of a faulted connector: its fault bits, or `ykc.fault` when it sets none.
pub fn fault_code(faults: u16) -> String {
    let names = fault_names(faults);
    if names.is_empty() {
        "ykc.fault".into()
    } else {
        names
            .iter()
            .map(|n| format!("ykc.hw.{n}"))
            .collect::<Vec<_>>()
            .join(",")
            .chars()
            .take(64)
            .collect()
    }
}

/// One alarm per fault bit newly set (`before` → `now`): emergency stop and door open are
/// warnings, the rest critical.
pub fn new_fault_alarms(before: u16, now: u16) -> Vec<pb::Alarm> {
    fault_names(now & !before)
        .into_iter()
        .map(|name| pb::Alarm {
            severity: if matches!(name.as_str(), "emergency-stop" | "door-open") {
                pb::AlarmSeverity::Warning
            } else {
                pb::AlarmSeverity::Critical
            } as i32,
            text: format!("YKC hardware fault: {name}"),
            code: format!("ykc.hw.{name}"),
        })
        .collect()
}

/// A 0x3B stop reason as T/CEC 102 StopReason (§4.3): 0 user, 1 home platform, 2 BMS, 3 charger
/// fault, 4 unplugged, 5 other. `platform_stopped`: our operator sent the 0x36.
pub fn stop_reason(code: u8, platform_stopped: bool) -> i32 {
    match code {
        0x40 if platform_stopped => 1,
        0x40 | 0x42..=0x45 => 0,
        0x41 | 0x52 | 0x59..=0x62 | 0x79..=0x82 | 0x84..=0x89 => 2,
        0x4B | 0x6B => 4,
        0x4E | 0x6E => 1,
        0x46..=0x49 | 0x58 | 0x65..=0x69 | 0x78 | 0x8A..=0x8F | 0x90 => 5,
        0x4A..=0x83 => 3,
        _ => 5,
    }
}

/// A stop reason that says the session never started (§4.3: a zero-energy, non-billable order).
pub fn failed_start(code: u8) -> bool {
    (0x4A..=0x69).contains(&code)
}

/// YKC energy (0.0001 kWh) as a register of at most 3 places, rounded half up.
pub fn kwh(ten_thousandths: u64) -> String {
    let thousandths = ten_thousandths.saturating_add(5) / 10;
    format!("{}.{:03}", thousandths / 1000, thousandths % 1000)
}

/// YKC money (0.0001 yuan) as a decimal with its 4 places.
pub fn yuan(ten_thousandths: u32) -> String {
    format!(
        "{}.{:04}",
        ten_thousandths / 10_000,
        ten_thousandths % 10_000
    )
}

/// A serial for a session the platform starts or authorises, in the documented form: pile code
/// (14), gun (2), yyMMddHHmmss (12) in China Standard Time, counter (4).
pub fn new_serial(pile: &str, gun: u8, at: DateTime<Utc>, counter: u16) -> String {
    let local = at.with_timezone(&crate::fields::china());
    format!(
        "{pile}{gun:02}{}{:04}",
        local.format("%y%m%d%H%M%S"),
        counter % 10_000
    )
}

/// Card and account numbers go to the pile as 8 BCD bytes: the digits of `reference` when it
/// is at most 16 hex digits, zeros otherwise.
pub fn logical_card(reference: &str) -> String {
    let reference = reference.trim();
    if !reference.is_empty()
        && reference.len() <= 16
        && reference.bytes().all(|b| b.is_ascii_hexdigit())
    {
        format!("{:0>16}", reference.to_ascii_uppercase())
    } else {
        "0".repeat(16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::ConnectorState as S;

    fn realtime(status: u8, plugged: u8, serial: &str) -> Realtime {
        Realtime {
            serial: serial.into(),
            pile: "20231212000010".into(),
            gun: 1,
            status,
            returned: 0,
            plugged,
            voltage: 0,
            current: 0,
            gun_temperature: 50,
            cable_code: [0; 8],
            soc: 0,
            battery_temperature: 50,
            minutes: 0,
            remaining_minutes: 0,
            energy: 0,
            lossy_energy: 0,
            amount: 0,
            faults: 0,
        }
    }

    #[test]
    fn mon_1_ykc_states_map_to_t_cec_states_not_by_number() {
        let none = "0".repeat(32);
        let serial = "20231212000010000000001005713600";
        assert_eq!(connector_state(&realtime(0x00, 0, &none)), Some(S::Offline));
        assert_eq!(connector_state(&realtime(0x01, 0, &none)), Some(S::Fault));
        assert_eq!(connector_state(&realtime(0x02, 0, &none)), Some(S::Idle));
        assert_eq!(
            connector_state(&realtime(0x02, 1, &none)),
            Some(S::OccupiedNotCharging)
        );
        assert_eq!(
            connector_state(&realtime(0x03, 1, serial)),
            Some(S::Charging)
        );
        assert_eq!(
            connector_state(&realtime(0x03, 1, &none)),
            Some(S::OccupiedNotCharging)
        );
        assert_eq!(connector_state(&realtime(0x07, 0, &none)), None);
    }

    #[test]
    fn fault_bits_become_codes_and_alarms_once() {
        assert_eq!(fault_code(0), "ykc.fault");
        assert_eq!(fault_code(0b1), "ykc.hw.emergency-stop");
        assert_eq!(
            fault_code(0b1_0000_0000_0001),
            "ykc.hw.emergency-stop,ykc.hw.door-open"
        );
        let alarms = new_fault_alarms(0b1, 0b101);
        assert_eq!(alarms.len(), 1, "only the newly set bit");
        assert_eq!(alarms[0].code, "ykc.hw.air-outlet-over-temperature");
        assert_eq!(alarms[0].severity, pb::AlarmSeverity::Critical as i32);
        assert_eq!(fault_names(1 << 15), ["bit-16"]);
    }

    #[test]
    fn stop_reasons_follow_the_note_s_table() {
        assert_eq!(stop_reason(0x40, false), 0);
        assert_eq!(stop_reason(0x40, true), 1);
        assert_eq!(stop_reason(0x41, false), 2);
        assert_eq!(stop_reason(0x4B, false), 4);
        assert_eq!(stop_reason(0x6E, false), 1);
        assert_eq!(stop_reason(0x72, false), 3);
        assert_eq!(stop_reason(0x58, false), 5);
        assert_eq!(stop_reason(0x90, false), 5);
        assert!(failed_start(0x4A) && failed_start(0x69) && !failed_start(0x6A));
    }

    #[test]
    fn fixed_point_values_become_decimals() {
        assert_eq!(kwh(1_650), "0.165");
        assert_eq!(kwh(88_000), "8.800");
        assert_eq!(kwh(12_345), "1.235");
        assert_eq!(yuan(1_400), "0.1400");
        assert_eq!(yuan(93_280), "9.3280");
    }

    #[test]
    fn serials_take_the_documented_form() {
        let at = DateTime::parse_from_rfc3339("2020-01-06T10:03:42Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(
            new_serial("32010600019236", 1, at, 3060),
            "32010600019236012001061803423060"
        );
        assert_eq!(logical_card("1234"), "0000000000001234");
        assert_eq!(logical_card("not a card"), "0".repeat(16));
    }
}
