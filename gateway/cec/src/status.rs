//! The one mapping between our connector states and T/CEC 102 ConnectorStatusInfo.Status codes
//! (protocols.md §1.6): 0 offline, 1 idle, 2 occupied not charging, 3 charging, 4 reserved,
//! 255 fault. The telemetry component writes the code into the regulator's view with it, the
//! edge reads pushed statuses with it, and reporting pushes with what the view carries.

use chargemesh_proto::telemetry::v1::ConnectorState;

/// The T/CEC 102 status code of a state; `None` for an unset state.
pub fn code_of(state: ConnectorState) -> Option<i32> {
    Some(match state {
        ConnectorState::Offline => 0,
        ConnectorState::Idle => 1,
        ConnectorState::OccupiedNotCharging => 2,
        ConnectorState::Charging => 3,
        ConnectorState::Reserved => 4,
        ConnectorState::Fault => 255,
        ConnectorState::Unspecified => return None,
    })
}

/// The state of a T/CEC 102 status code; `None` for a code the standard does not define.
pub fn state_of(code: i64) -> Option<ConnectorState> {
    Some(match code {
        0 => ConnectorState::Offline,
        1 => ConnectorState::Idle,
        2 => ConnectorState::OccupiedNotCharging,
        3 => ConnectorState::Charging,
        4 => ConnectorState::Reserved,
        255 => ConnectorState::Fault,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_2_cec_codes_map_one_to_one() {
        for code in [0, 1, 2, 3, 4, 255] {
            let state = state_of(code).expect("a defined code");
            assert_eq!(code_of(state), Some(code as i32));
        }
        assert_eq!(state_of(5), None);
        assert_eq!(state_of(-1), None);
        assert_eq!(code_of(ConnectorState::Unspecified), None);
    }
}
