//! Who may see and change which records: an operator (or its staff) only its own, a station or
//! pile certificate only its own station's, a regulator only the stations of its area and only
//! to read, mesh services everything. A record the caller may not see is reported as absent,
//! so other tenants learn nothing about it.

use crate::Principal;

use crate::area::{area_covers, area_prefix};

/// The staff role that administers the platform itself, across operators.
pub const PLATFORM_ADMIN: &str = "platform_admin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// What a record is, for access decisions.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub operator_id: &'a str,
    pub station_id: Option<&'a str>,
    pub pile_id: Option<&'a str>,
    /// The area code of the station the record belongs to.
    pub area_code: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The caller may not know the record exists: answer NOT_FOUND.
    Hidden,
    /// The caller may see the record but not do this: answer PERMISSION_DENIED.
    Denied,
}

pub fn decide(principal: &Principal, target: Target<'_>, access: Access) -> Decision {
    let visible = match principal {
        Principal::Service { .. } => return Decision::Allow,
        // The public methods answer from purpose-built public views, never from records.
        Principal::Public => return Decision::Hidden,
        Principal::Staff {
            operator_id: None,
            roles,
            ..
        } => {
            return if roles.iter().any(|r| r == PLATFORM_ADMIN) {
                Decision::Allow
            } else {
                Decision::Hidden
            };
        }
        Principal::Operator { operator_id }
        | Principal::Staff {
            operator_id: Some(operator_id),
            ..
        } => {
            return if operator_id == target.operator_id {
                Decision::Allow
            } else {
                Decision::Hidden
            };
        }
        Principal::Station {
            operator_id,
            station_id,
        } => operator_id == target.operator_id && target.station_id == Some(station_id.as_str()),
        Principal::Pile {
            operator_id,
            station_id,
            pile_id,
        } => {
            operator_id == target.operator_id
                && target.station_id == Some(station_id.as_str())
                && target.pile_id.is_none_or(|p| p == pile_id)
        }
        Principal::Regulator { area_code } => target
            .area_code
            .is_some_and(|code| area_covers(area_code, code)),
    };
    match (visible, access) {
        (false, _) => Decision::Hidden,
        (true, Access::Read) => Decision::Allow,
        (true, Access::Write) => Decision::Denied,
    }
}

/// The area a caller of the regulator's views may see: `Some(prefix)` for a regulator (the
/// prefix its area's codes start with), `None` for everything (mesh services and the platform's
/// administrators); anyone else is no regulator.
pub fn regulator_scope(p: &Principal) -> Result<Option<String>, crate::Error> {
    match p {
        Principal::Regulator { area_code } => Ok(Some(area_prefix(area_code).to_owned())),
        Principal::Service { .. } => Ok(None),
        Principal::Staff {
            operator_id: None, ..
        } if p.has_role(PLATFORM_ADMIN) => Ok(None),
        _ => Err(crate::Error::PermissionDenied(format!(
            "{p} is not a regulator"
        ))),
    }
}

/// What a caller of the live status views may see (REQ MON-1: an operator's monitors watch
/// their own fleet; REQ BASE-2: a regulator its area).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusScope {
    /// Everything: mesh services and the platform's administrators.
    All,
    /// The stations whose area codes start with this prefix: a regulator.
    Area(String),
    /// One operator's stations: the operator's platform and its staff.
    Operator(String),
}

impl StatusScope {
    /// Whether a station of `operator_id` in `area_code` is in the scope.
    pub fn covers(&self, operator_id: &str, area_code: &str) -> bool {
        match self {
            Self::All => true,
            Self::Area(prefix) => area_code.starts_with(prefix.as_str()),
            Self::Operator(own) => own == operator_id,
        }
    }
}

/// The scope of a caller of the live status views; station controllers and piles have none.
pub fn status_scope(p: &Principal) -> Result<StatusScope, crate::Error> {
    match p {
        // REQ SVC-2: which connectors are free is every driver's to know.
        Principal::Public => Ok(StatusScope::All),
        Principal::Operator { operator_id }
        | Principal::Staff {
            operator_id: Some(operator_id),
            ..
        } => Ok(StatusScope::Operator(operator_id.clone())),
        other => regulator_status_scope(other),
    }
}

/// The scope of the regulator's own reports: a regulator's area, or the whole platform for
/// mesh services and the platform's administrators; anyone else is no regulator.
pub fn regulator_status_scope(p: &Principal) -> Result<StatusScope, crate::Error> {
    Ok(match regulator_scope(p)? {
        Some(prefix) => StatusScope::Area(prefix),
        None => StatusScope::All,
    })
}

/// Whether the principal acts for the whole platform: the mesh, or the platform's
/// administrators (who name no operator); anyone else is refused.
pub fn platform_scope(p: &Principal) -> Result<(), crate::Error> {
    match p {
        Principal::Service { .. } => Ok(()),
        Principal::Staff {
            operator_id: None, ..
        } if p.has_role(PLATFORM_ADMIN) => Ok(()),
        _ => Err(crate::Error::PermissionDenied(format!(
            "{p} does not act for the platform"
        ))),
    }
}

/// The part of a listing a principal may see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListScope {
    pub operator_id: Option<String>,
    pub station_id: Option<String>,
    /// Area codes starting with this prefix.
    pub area_prefix: Option<String>,
    /// The principal sees nothing of this kind.
    pub nothing: bool,
}

/// Narrows a station listing to what the principal may see.
pub fn station_scope(principal: &Principal) -> ListScope {
    match principal {
        Principal::Service { .. } => ListScope::default(),
        Principal::Public => ListScope {
            nothing: true,
            ..ListScope::default()
        },
        Principal::Staff {
            operator_id: None,
            roles,
            ..
        } => ListScope {
            nothing: !roles.iter().any(|r| r == PLATFORM_ADMIN),
            ..ListScope::default()
        },
        Principal::Operator { operator_id }
        | Principal::Staff {
            operator_id: Some(operator_id),
            ..
        } => ListScope {
            operator_id: Some(operator_id.clone()),
            ..ListScope::default()
        },
        Principal::Station {
            operator_id,
            station_id,
        }
        | Principal::Pile {
            operator_id,
            station_id,
            ..
        } => ListScope {
            operator_id: Some(operator_id.clone()),
            station_id: Some(station_id.clone()),
            ..ListScope::default()
        },
        Principal::Regulator { area_code } => ListScope {
            area_prefix: Some(area_prefix(area_code).to_owned()),
            ..ListScope::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(op: &'a str, station: &'a str, area: &'a str) -> Target<'a> {
        Target {
            operator_id: op,
            station_id: Some(station),
            pile_id: None,
            area_code: Some(area),
        }
    }

    #[test]
    fn mon_1_the_live_status_of_a_fleet_is_its_operator_s_and_a_regulator_s_area() {
        let staff = Principal::Staff {
            subject: "mo".into(),
            operator_id: Some("A".into()),
            roles: vec!["monitor".into()],
        };
        let scope = status_scope(&staff).expect("scope");
        assert_eq!(scope, StatusScope::Operator("A".into()));
        assert!(scope.covers("A", "330602") && !scope.covers("B", "330602"));
        let city = Principal::Regulator {
            area_code: "330600".into(),
        };
        let area = status_scope(&city).expect("scope");
        assert!(area.covers("B", "330602") && !area.covers("B", "310101"));
        let pile = Principal::Pile {
            operator_id: "A".into(),
            station_id: "S".into(),
            pile_id: "P".into(),
        };
        assert!(status_scope(&pile).is_err());
        let lost = Principal::Staff {
            subject: "x".into(),
            operator_id: None,
            roles: vec!["monitor".into()],
        };
        assert!(
            status_scope(&lost).is_err(),
            "staff of no operator, not an admin"
        );
    }

    #[test]
    fn an_operator_sees_only_its_own_and_others_are_hidden() {
        let a = Principal::Operator {
            operator_id: "A".into(),
        };
        assert_eq!(
            decide(&a, target("A", "S1", "330602"), Access::Write),
            Decision::Allow
        );
        assert_eq!(
            decide(&a, target("B", "S1", "330602"), Access::Read),
            Decision::Hidden
        );
        assert_eq!(
            decide(&a, target("B", "S1", "330602"), Access::Write),
            Decision::Hidden
        );
    }

    #[test]
    fn a_regulator_reads_its_area_and_writes_nothing() {
        let city = Principal::Regulator {
            area_code: "330600".into(),
        };
        assert_eq!(
            decide(&city, target("A", "S1", "330602"), Access::Read),
            Decision::Allow
        );
        assert_eq!(
            decide(&city, target("A", "S1", "330602"), Access::Write),
            Decision::Denied
        );
        assert_eq!(
            decide(&city, target("A", "S1", "330102"), Access::Read),
            Decision::Hidden
        );
        let province = Principal::Regulator {
            area_code: "330000".into(),
        };
        assert_eq!(
            decide(&province, target("A", "S1", "330102"), Access::Read),
            Decision::Allow
        );
        assert_eq!(station_scope(&city).area_prefix.as_deref(), Some("3306"));
    }

    #[test]
    fn station_and_pile_certificates_read_only_their_station() {
        let st = Principal::Station {
            operator_id: "A".into(),
            station_id: "S1".into(),
        };
        assert_eq!(
            decide(&st, target("A", "S1", "330602"), Access::Read),
            Decision::Allow
        );
        assert_eq!(
            decide(&st, target("A", "S2", "330602"), Access::Read),
            Decision::Hidden
        );
        assert_eq!(
            decide(&st, target("A", "S1", "330602"), Access::Write),
            Decision::Denied
        );
        let pile = Principal::Pile {
            operator_id: "A".into(),
            station_id: "S1".into(),
            pile_id: "P1".into(),
        };
        let mut t = target("A", "S1", "330602");
        t.pile_id = Some("P2");
        assert_eq!(decide(&pile, t, Access::Read), Decision::Hidden);
    }

    #[test]
    fn staff_follow_their_operator_claim() {
        let staff = Principal::Staff {
            subject: "u".into(),
            operator_id: Some("A".into()),
            roles: vec!["om_manager".into()],
        };
        assert_eq!(
            decide(&staff, target("A", "S1", "330602"), Access::Write),
            Decision::Allow
        );
        assert_eq!(
            decide(&staff, target("B", "S1", "330602"), Access::Read),
            Decision::Hidden
        );
        let loose = Principal::Staff {
            subject: "u".into(),
            operator_id: None,
            roles: vec!["monitor".into()],
        };
        assert_eq!(
            decide(&loose, target("A", "S1", "330602"), Access::Read),
            Decision::Hidden
        );
        assert!(station_scope(&loose).nothing);
    }
}
