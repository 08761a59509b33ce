//! Protobuf <-> domain translation. Unset enums and malformed values become field errors that
//! name the field and, where the standard is behind the field, the rule.

use chrono::{DateTime, Utc};

use chargemesh_kit::Error;
use chargemesh_kit::time::{opt_timestamp, to_timestamp};
use chargemesh_proto::asset::v1 as pb;
use chargemesh_proto::common::v1 as common;

use crate::domain::codes::parse_date;
use crate::domain::model::*;

fn unspecified(field: &str, rule: Option<&'static str>) -> Error {
    match rule {
        Some(rule) => Error::invalid(field, rule, "must be set"),
        None => Error::bad_field(field, "must be set"),
    }
}

pub fn station_kind(field: &str, v: i32) -> Result<StationKind, Error> {
    match pb::StationKind::try_from(v) {
        Ok(pb::StationKind::Dedicated) => Ok(StationKind::Dedicated),
        Ok(pb::StationKind::UrbanPublic) => Ok(StationKind::UrbanPublic),
        Ok(pb::StationKind::IntercityFast) => Ok(StationKind::IntercityFast),
        Ok(pb::StationKind::ResidentialCommunity) => Ok(StationKind::ResidentialCommunity),
        _ => Err(unspecified(field, Some("SCOPE-1"))),
    }
}

/// A station state filter: `None` for UNSPECIFIED (every state).
pub fn station_state_filter(field: &str, v: i32) -> Result<Option<StationState>, Error> {
    Ok(Some(match pb::StationState::try_from(v) {
        Ok(pb::StationState::Unspecified) => return Ok(None),
        Ok(pb::StationState::Registered) => StationState::Registered,
        Ok(pb::StationState::Accepted) => StationState::Accepted,
        Ok(pb::StationState::Filed) => StationState::Filed,
        Ok(pb::StationState::Connected) => StationState::Connected,
        Ok(pb::StationState::TrialOperation) => StationState::TrialOperation,
        Ok(pb::StationState::Commissioned) => StationState::Commissioned,
        Err(_) => {
            return Err(Error::bad_field(
                field,
                format!("{v} is not a station state"),
            ));
        }
    }))
}

pub fn connection_mode(field: &str, v: i32) -> Result<Option<ConnectionMode>, Error> {
    match pb::ConnectionMode::try_from(v) {
        Ok(pb::ConnectionMode::Unspecified) => Ok(None),
        Ok(pb::ConnectionMode::SinglePile) => Ok(Some(ConnectionMode::SinglePile)),
        Ok(pb::ConnectionMode::WholeStation) => Ok(Some(ConnectionMode::WholeStation)),
        Ok(pb::ConnectionMode::PlatformInterconnection) => {
            Ok(Some(ConnectionMode::PlatformInterconnection))
        }
        Err(_) => Err(Error::invalid(
            field,
            "BASE-2",
            "is not a known connection mode",
        )),
    }
}

pub fn service_zone(field: &str, v: i32) -> Result<ServiceZone, Error> {
    match pb::ServiceZone::try_from(v) {
        Ok(pb::ServiceZone::MainUrban) => Ok(ServiceZone::MainUrban),
        Ok(pb::ServiceZone::Other) => Ok(ServiceZone::Other),
        _ => Err(unspecified(field, Some("FAULT-5"))),
    }
}

pub fn pile_type(field: &str, v: i32) -> Result<PileType, Error> {
    match pb::PileType::try_from(v) {
        Ok(pb::PileType::Ac) => Ok(PileType::Ac),
        Ok(pb::PileType::Dc) => Ok(PileType::Dc),
        Ok(pb::PileType::AcDc) => Ok(PileType::AcDc),
        _ => Err(unspecified(field, Some("SIGN-1"))),
    }
}

pub fn protocol(field: &str, v: i32) -> Result<PileProtocol, Error> {
    match pb::PileProtocol::try_from(v) {
        Ok(pb::PileProtocol::Unspecified) => Ok(PileProtocol::Native),
        Ok(pb::PileProtocol::Ocpp16) => Ok(PileProtocol::Ocpp16),
        Ok(pb::PileProtocol::Ocpp201) => Ok(PileProtocol::Ocpp201),
        Ok(pb::PileProtocol::Ykc) => Ok(PileProtocol::Ykc),
        Err(_) => Err(Error::bad_field(field, format!("{v} is not a protocol"))),
    }
}

pub fn protocol_to_pb(p: PileProtocol) -> pb::PileProtocol {
    match p {
        PileProtocol::Native => pb::PileProtocol::Unspecified,
        PileProtocol::Ocpp16 => pb::PileProtocol::Ocpp16,
        PileProtocol::Ocpp201 => pb::PileProtocol::Ocpp201,
        PileProtocol::Ykc => pb::PileProtocol::Ykc,
    }
}

fn connector_type(field: &str, v: i32) -> Result<ConnectorType, Error> {
    match pb::ConnectorType::try_from(v) {
        Ok(pb::ConnectorType::HouseholdSocket) => Ok(ConnectorType::HouseholdSocket),
        Ok(pb::ConnectorType::AcSocket) => Ok(ConnectorType::AcSocket),
        Ok(pb::ConnectorType::AcPlug) => Ok(ConnectorType::AcPlug),
        Ok(pb::ConnectorType::DcGun) => Ok(ConnectorType::DcGun),
        Ok(pb::ConnectorType::Wireless) => Ok(ConnectorType::Wireless),
        Ok(pb::ConnectorType::Other) => Ok(ConnectorType::Other),
        _ => Err(unspecified(field, None)),
    }
}

fn national_standard(field: &str, v: i32) -> Result<NationalStandard, Error> {
    match pb::NationalStandard::try_from(v) {
        Ok(pb::NationalStandard::Gb2011) => Ok(NationalStandard::Gb2011),
        Ok(pb::NationalStandard::Gb2015) => Ok(NationalStandard::Gb2015),
        _ => Err(unspecified(field, None)),
    }
}

pub fn suspension_reason(field: &str, v: i32) -> Result<SuspensionReason, Error> {
    match pb::SuspensionReason::try_from(v) {
        Ok(pb::SuspensionReason::PlannedMaintenance) => Ok(SuspensionReason::PlannedMaintenance),
        Ok(pb::SuspensionReason::UnrepairedFault) => Ok(SuspensionReason::UnrepairedFault),
        Ok(pb::SuspensionReason::DistributionMaintenance) => {
            Ok(SuspensionReason::DistributionMaintenance)
        }
        Ok(pb::SuspensionReason::ExtremeWeather) => Ok(SuspensionReason::ExtremeWeather),
        Ok(pb::SuspensionReason::OtherExternal) => Ok(SuspensionReason::OtherExternal),
        _ => Err(Error::invalid(
            field,
            "MON-4",
            "must be one of the MON-4 reasons",
        )),
    }
}

pub fn equipment_category(field: &str, v: i32) -> Result<EquipmentCategory, Error> {
    match pb::EquipmentCategory::try_from(v) {
        Ok(pb::EquipmentCategory::Distribution) => Ok(EquipmentCategory::Distribution),
        Ok(pb::EquipmentCategory::ChargingMonitoring) => Ok(EquipmentCategory::ChargingMonitoring),
        Ok(pb::EquipmentCategory::TestMaintenance) => Ok(EquipmentCategory::TestMaintenance),
        Ok(pb::EquipmentCategory::Security) => Ok(EquipmentCategory::Security),
        _ => Err(unspecified(field, Some("EQ-1"))),
    }
}

pub fn procedure(field: &str, v: i32) -> Result<Procedure, Error> {
    match pb::VerificationProcedure::try_from(v) {
        Ok(pb::VerificationProcedure::Jjg1148) => Ok(Procedure::Jjg1148),
        Ok(pb::VerificationProcedure::Jjg1149) => Ok(Procedure::Jjg1149),
        _ => Err(unspecified(field, Some("BASE-5"))),
    }
}

pub fn price_board(field: &str, periods: &[pb::PricePeriod]) -> Result<Vec<PricePeriod>, Error> {
    chargemesh_kit::tariff::wire::board_from_pb(field, periods)
}

pub fn location(field: &str, loc: Option<&common::GeoPoint>) -> Result<GeoPoint, Error> {
    let loc = loc.ok_or_else(|| Error::bad_field(field, "must be set"))?;
    Ok(GeoPoint {
        longitude: loc.longitude,
        latitude: loc.latitude,
    })
}

pub fn connectors(field: &str, list: &[pb::Connector]) -> Result<Vec<Connector>, Error> {
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let f = |name: &str| format!("{field}[{i}].{name}");
            Ok(Connector {
                connector_id: c.connector_id.trim().to_owned(),
                name: c.name.clone(),
                connector_type: connector_type(&f("connector_type"), c.connector_type)?,
                national_standard: national_standard(&f("national_standard"), c.national_standard)?,
                voltage_upper_limit: c.voltage_upper_limit,
                voltage_lower_limit: c.voltage_lower_limit,
                current: c.current,
                power_kw: c.power_kw,
                park_no: c.park_no.clone(),
            })
        })
        .collect()
}

pub fn acceptance(a: Option<&pb::Acceptance>) -> Result<Acceptance, Error> {
    let a = a.ok_or_else(|| {
        Error::invalid("acceptance", "BASE-1", "the acceptance record is required")
    })?;
    Ok(Acceptance {
        report_reference: a.report_reference.clone(),
        accepted_on: parse_date("acceptance.accepted_on", &a.accepted_on)?,
    })
}

pub fn filing(f: Option<&pb::Filing>) -> Result<Filing, Error> {
    let f = f.ok_or_else(|| Error::invalid("filing", "BASE-1", "the filing record is required"))?;
    Ok(Filing {
        authority: f.authority.clone(),
        filing_number: f.filing_number.clone(),
        filed_on: parse_date("filing.filed_on", &f.filed_on)?,
    })
}

pub fn operator_to_pb(o: &Operator) -> pb::Operator {
    pb::Operator {
        operator_id: o.operator_id.clone(),
        credit_code: o.credit_code.clone(),
        name: o.name.clone(),
        business_scope: o.business_scope.clone(),
        supervision_hotline: o.supervision_hotline.clone(),
        create_time: Some(to_timestamp(o.created_at)),
        update_time: Some(to_timestamp(o.updated_at)),
    }
}

pub use chargemesh_kit::tariff::wire::{period_to_pb, version_to_pb as tariff_version_to_pb};

/// A station as published at `now`: its price board is the tariff version in force then.
pub fn station_to_pb(s: &Station, now: DateTime<Utc>) -> pb::Station {
    pb::Station {
        operator_id: s.operator_id.clone(),
        station_id: s.station_id.clone(),
        name: s.name.clone(),
        kind: match s.kind {
            StationKind::Dedicated => pb::StationKind::Dedicated,
            StationKind::UrbanPublic => pb::StationKind::UrbanPublic,
            StationKind::IntercityFast => pb::StationKind::IntercityFast,
            StationKind::ResidentialCommunity => pb::StationKind::ResidentialCommunity,
        } as i32,
        area_code: s.area_code.clone(),
        address: s.address.clone(),
        location: Some(common::GeoPoint {
            longitude: s.location.longitude,
            latitude: s.location.latitude,
        }),
        opening_hours: s.opening_hours.clone(),
        service_phone: s.service_phone.clone(),
        connection_mode: match s.connection_mode {
            ConnectionMode::SinglePile => pb::ConnectionMode::SinglePile,
            ConnectionMode::WholeStation => pb::ConnectionMode::WholeStation,
            ConnectionMode::PlatformInterconnection => pb::ConnectionMode::PlatformInterconnection,
        } as i32,
        service_zone: match s.service_zone {
            ServiceZone::MainUrban => pb::ServiceZone::MainUrban,
            ServiceZone::Other => pb::ServiceZone::Other,
        } as i32,
        price_board: s.price_board(now).iter().map(period_to_pb).collect(),
        service_items: s.service_items.clone(),
        accept_any_id_token: s.accept_any_id_token,
        state: match s.state {
            StationState::Registered => pb::StationState::Registered,
            StationState::Accepted => pb::StationState::Accepted,
            StationState::Filed => pb::StationState::Filed,
            StationState::Connected => pb::StationState::Connected,
            StationState::TrialOperation => pb::StationState::TrialOperation,
            StationState::Commissioned => pb::StationState::Commissioned,
        } as i32,
        acceptance: s.acceptance.as_ref().map(|a| pb::Acceptance {
            report_reference: a.report_reference.clone(),
            accepted_on: a.accepted_on.to_string(),
        }),
        filing: s.filing.as_ref().map(|f| pb::Filing {
            authority: f.authority.clone(),
            filing_number: f.filing_number.clone(),
            filed_on: f.filed_on.to_string(),
        }),
        connect_time: opt_timestamp(s.connected_at),
        trial_operation_start_time: opt_timestamp(s.trial_started_at),
        commission_time: opt_timestamp(s.commissioned_at),
        create_time: Some(to_timestamp(s.created_at)),
        update_time: Some(to_timestamp(s.updated_at)),
    }
}

pub fn pile_to_pb(p: &Pile) -> pb::Pile {
    pb::Pile {
        operator_id: p.operator_id.clone(),
        pile_id: p.pile_id.clone(),
        station_id: p.station_id.clone(),
        pile_type: match p.pile_type {
            PileType::Ac => pb::PileType::Ac,
            PileType::Dc => pb::PileType::Dc,
            PileType::AcDc => pb::PileType::AcDc,
        } as i32,
        manufacturer: p.manufacturer.clone(),
        model: p.model.clone(),
        serial_number: p.serial_number.clone(),
        production_date: p.production_date.to_string(),
        rated_voltage: p.rated_voltage,
        rated_current: p.rated_current,
        rated_power_kw: p.rated_power_kw,
        connectors: p
            .connectors
            .iter()
            .map(|c| pb::Connector {
                connector_id: c.connector_id.clone(),
                name: c.name.clone(),
                connector_type: match c.connector_type {
                    ConnectorType::HouseholdSocket => pb::ConnectorType::HouseholdSocket,
                    ConnectorType::AcSocket => pb::ConnectorType::AcSocket,
                    ConnectorType::AcPlug => pb::ConnectorType::AcPlug,
                    ConnectorType::DcGun => pb::ConnectorType::DcGun,
                    ConnectorType::Wireless => pb::ConnectorType::Wireless,
                    ConnectorType::Other => pb::ConnectorType::Other,
                } as i32,
                national_standard: match c.national_standard {
                    NationalStandard::Gb2011 => pb::NationalStandard::Gb2011,
                    NationalStandard::Gb2015 => pb::NationalStandard::Gb2015,
                } as i32,
                voltage_upper_limit: c.voltage_upper_limit,
                voltage_lower_limit: c.voltage_lower_limit,
                current: c.current,
                power_kw: c.power_kw,
                park_no: c.park_no.clone(),
            })
            .collect(),
        state: match p.state {
            PileState::InService => pb::PileState::InService,
            PileState::Suspended => pb::PileState::Suspended,
            PileState::Retired => pb::PileState::Retired,
        } as i32,
        suspension: p.suspension.as_ref().map(|s| pb::Suspension {
            reason: match s.reason {
                SuspensionReason::PlannedMaintenance => pb::SuspensionReason::PlannedMaintenance,
                SuspensionReason::UnrepairedFault => pb::SuspensionReason::UnrepairedFault,
                SuspensionReason::DistributionMaintenance => {
                    pb::SuspensionReason::DistributionMaintenance
                }
                SuspensionReason::ExtremeWeather => pb::SuspensionReason::ExtremeWeather,
                SuspensionReason::OtherExternal => pb::SuspensionReason::OtherExternal,
            } as i32,
            evidence_refs: s.evidence_refs.clone(),
            note: s.note.clone(),
            suspend_time: Some(to_timestamp(s.suspended_at)),
        }),
        retire_time: opt_timestamp(p.retired_at),
        protocol: protocol_to_pb(p.protocol) as i32,
        charge_point_id: p.charge_point_id.clone(),
        password_set: p.password_set_at.is_some(),
        create_time: Some(to_timestamp(p.created_at)),
        update_time: Some(to_timestamp(p.updated_at)),
    }
}

pub fn equipment_to_pb(e: &Equipment) -> pb::Equipment {
    pb::Equipment {
        operator_id: e.operator_id.clone(),
        equipment_id: e.equipment_id.clone(),
        station_id: e.station_id.clone(),
        category: match e.category {
            EquipmentCategory::Distribution => pb::EquipmentCategory::Distribution,
            EquipmentCategory::ChargingMonitoring => pb::EquipmentCategory::ChargingMonitoring,
            EquipmentCategory::TestMaintenance => pb::EquipmentCategory::TestMaintenance,
            EquipmentCategory::Security => pb::EquipmentCategory::Security,
        } as i32,
        name: e.name.clone(),
        manufacturer: e.manufacturer.clone(),
        model: e.model.clone(),
        serial_number: e.serial_number.clone(),
        quantity: e.quantity,
        parameters: e.parameters.clone().into_iter().collect(),
        create_time: Some(to_timestamp(e.created_at)),
        update_time: Some(to_timestamp(e.updated_at)),
    }
}

pub fn certificate_to_pb(c: &Certificate) -> pb::MetrologyCertificate {
    pb::MetrologyCertificate {
        operator_id: c.operator_id.clone(),
        pile_id: c.pile_id.clone(),
        certificate_id: c.certificate_id.clone(),
        procedure: match c.procedure {
            Procedure::Jjg1148 => pb::VerificationProcedure::Jjg1148,
            Procedure::Jjg1149 => pb::VerificationProcedure::Jjg1149,
        } as i32,
        certificate_number: c.certificate_number.clone(),
        verifying_body: c.verifying_body.clone(),
        verified_on: c.verified_on.to_string(),
        valid_until: c.valid_until.to_string(),
        create_time: Some(to_timestamp(c.created_at)),
    }
}

pub fn change_to_pb(c: &ChangeRecord) -> common::ChangeRecord {
    common::ChangeRecord {
        sequence: c.sequence,
        entity_type: c.entity_type.clone(),
        entity_id: c.entity_id.clone(),
        operator_id: c.operator_id.clone(),
        action: c.action.clone(),
        actor: c.actor.clone(),
        record_time: Some(to_timestamp(c.recorded_at)),
        before_json: c.before.as_ref().map(|b| b.to_string()).unwrap_or_default(),
        after_json: c.after.to_string(),
        note: c.note.clone(),
    }
}
