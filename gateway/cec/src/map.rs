//! The registry and live status as T/CEC 102 writes them (protocols.md §1.6): StationInfo with
//! EquipmentInfos and ConnectorInfos, ConnectorStatusInfo, StationStats and PolicyInfos, in the
//! canonical spelling (a peer's dialect is applied after).

use serde_json::{Value, json};

use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::regulator::v2 as reg;

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// StationType: 1 public, 50 private (dedicated), 255 other.
fn station_type(kind: i32) -> i32 {
    match asset::StationKind::try_from(kind) {
        Ok(asset::StationKind::UrbanPublic | asset::StationKind::IntercityFast) => 1,
        Ok(asset::StationKind::Dedicated) => 50,
        _ => 255,
    }
}

/// StationStatus: 50 in service once in trial operation or commissioned, 1 under construction
/// before; 0 unknown.
fn station_status(state: i32) -> i32 {
    match asset::StationState::try_from(state) {
        Ok(asset::StationState::TrialOperation | asset::StationState::Commissioned) => 50,
        Ok(asset::StationState::Unspecified) | Err(_) => 0,
        Ok(_) => 1,
    }
}

/// EquipmentType in CEC codes: 1 DC, 2 AC, 3 AC/DC, 5 other.
fn equipment_type(pile_type: i32) -> i32 {
    match asset::PileType::try_from(pile_type) {
        Ok(asset::PileType::Dc) => 1,
        Ok(asset::PileType::Ac) => 2,
        Ok(asset::PileType::AcDc) => 3,
        _ => 5,
    }
}

fn connector_info(c: &asset::Connector) -> Value {
    json!({
        "ConnectorID": c.connector_id,
        "ConnectorName": c.name,
        "ConnectorType": if c.connector_type == 0 { 6 } else { c.connector_type },
        "VoltageUpperLimits": round(c.voltage_upper_limit, 0) as i64,
        "VoltageLowerLimits": round(c.voltage_lower_limit, 0) as i64,
        "Current": round(c.current, 0) as i64,
        "Power": round(c.power_kw, 1),
        "ParkNo": c.park_no,
        "NationalStandard": if c.national_standard == 0 { 2 } else { c.national_standard },
    })
}

fn equipment_info(
    p: &asset::Pile,
    location: Option<&chargemesh_proto::common::v1::GeoPoint>,
) -> Value {
    json!({
        "EquipmentID": p.pile_id,
        "ManufacturerName": p.manufacturer,
        "EquipmentModel": p.model,
        "ProductionDate": p.production_date,
        "EquipmentType": equipment_type(p.pile_type),
        "EquipmentLng": location.map_or(0.0, |l| round(l.longitude, 6)),
        "EquipmentLat": location.map_or(0.0, |l| round(l.latitude, 6)),
        "Power": round(p.rated_power_kw, 1),
        "EquipmentName": p.pile_id,
        "ConnectorInfos": p.connectors.iter().map(connector_info).collect::<Vec<_>>(),
    })
}

/// The price board as a line of text, for the StationInfo fee fields.
fn fees(board: &[asset::PricePeriod], pick: fn(&asset::PricePeriod) -> &str) -> String {
    board
        .iter()
        .map(|p| format!("{}-{} {}", p.start_time, p.end_time, pick(p)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// StationInfo with its equipment.
pub fn station_info(record: &reg::StationRecord) -> Value {
    let s = record.station.clone().unwrap_or_default();
    let location = s.location.as_ref();
    json!({
        "StationID": s.station_id,
        "OperatorID": s.operator_id,
        "EquipmentOwnerID": s.operator_id,
        "StationName": s.name,
        "CountryCode": "CN",
        "AreaCode": s.area_code,
        "Address": s.address,
        "ServiceTel": s.service_phone,
        "StationTel": s.service_phone,
        "StationType": station_type(s.kind),
        "StationStatus": station_status(s.state),
        "ParkNums": 0,
        "StationLng": location.map_or(0.0, |l| round(l.longitude, 6)),
        "StationLat": location.map_or(0.0, |l| round(l.latitude, 6)),
        "Construction": 255,
        "BusineHours": s.opening_hours,
        "ElectricityFee": fees(&s.price_board, |p| &p.electricity_price),
        "ServiceFee": fees(&s.price_board, |p| &p.service_fee),
        "EquipmentInfos": record.piles.iter().map(|p| equipment_info(p, location)).collect::<Vec<_>>(),
    })
}

/// ConnectorStatusInfo: the T/CEC status code; park and lock states unknown.
pub fn connector_status(c: &reg::ConnectorStatusInfo) -> Value {
    json!({
        "ConnectorID": c.connector_id,
        "Status": c.cec_status,
        "ParkStatus": 0,
        "LockStatus": 0,
    })
}

/// StationStatusInfo.
pub fn station_status_info(s: &reg::StationStatus) -> Value {
    json!({
        "StationID": s.station_id,
        "ConnectorStatusInfos": s.connectors.iter().map(connector_status).collect::<Vec<_>>(),
    })
}

/// StationStats for the days `start..=end` (yyyy-MM-dd).
pub fn station_stats(s: &reg::GetStationStatsResponse, start: &str, end: &str) -> Value {
    let number = |text: &str| text.parse::<f64>().unwrap_or(0.0);
    let equipment: Vec<Value> = s
        .piles
        .iter()
        .map(|p| {
            json!({
                "EquipmentID": p.pile_id,
                "EquipmentElectricity": number(&p.energy_kwh),
                "ConnectorStatsInfos": s
                    .connectors
                    .iter()
                    .filter(|c| c.pile_id == p.pile_id)
                    .map(|c| json!({"ConnectorID": c.connector_id, "ConnectorElectricity": number(&c.energy_kwh)}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "StationStats": {
            "StationID": s.station_id,
            "StartTime": start,
            "EndTime": end,
            "StationElectricity": number(&s.energy_kwh),
            "EquipmentStatsInfos": equipment,
        }
    })
}

/// PolicyInfos of a price board: each period's start `HHmmss` with its prices (4 places).
pub fn policy_infos(board: &[asset::PricePeriod]) -> Vec<Value> {
    let price = |text: &str| {
        text.parse::<f64>()
            .map(|v| format!("{v:.4}"))
            .unwrap_or_default()
    };
    board
        .iter()
        .map(|p| {
            json!({
                "StartTime": format!("{}00", p.start_time.replace(':', "")),
                "ElecPrice": price(&p.electricity_price),
                "SevicePrice": price(&p.service_fee),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_price_board_becomes_policy_infos_with_four_places() {
        let board = vec![asset::PricePeriod {
            start_time: "08:00".into(),
            end_time: "12:00".into(),
            label: 0,
            electricity_price: "0.68".into(),
            service_fee: "0.8".into(),
        }];
        let infos = policy_infos(&board);
        assert_eq!(infos[0]["StartTime"], "080000");
        assert_eq!(infos[0]["ElecPrice"], "0.6800");
        assert_eq!(infos[0]["SevicePrice"], "0.8000");
    }

    #[test]
    fn codes_follow_the_cec_tables() {
        assert_eq!(equipment_type(asset::PileType::Dc as i32), 1);
        assert_eq!(equipment_type(asset::PileType::AcDc as i32), 3);
        assert_eq!(station_status(asset::StationState::Commissioned as i32), 50);
        assert_eq!(station_status(asset::StationState::Registered as i32), 1);
        assert_eq!(station_type(asset::StationKind::UrbanPublic as i32), 1);
    }
}
