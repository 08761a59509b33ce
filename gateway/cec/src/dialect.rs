//! Per-peer dialects (protocols.md §1.6, §2.2): the spellings, shapes and codes a platform
//! expects. Chargemesh writes the 2016 text's canonical forms internally (`SevicePrice`,
//! `ElecMoney`, CEC `EquipmentType`); a peer's dialect maps them on the way out and any known
//! variant back on the way in.

use serde::{Deserialize, Serialize};

/// How a peer spells the service-fee fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceSpelling {
    /// `SevicePrice`, `SeviceMoney`, `TotalSeviceMoney`: the 2016 text.
    #[default]
    Sevice,
    /// `ServicePrice`, `ServiceMoney`, ...: DiDi, Zhejiang and others.
    Service,
}

/// How a peer spells the electricity-fee money fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElecSpelling {
    #[default]
    Elec,
    Elect,
}

/// The shape of the status push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusPush {
    /// `{"ConnectorStatusInfo": {...}}`, as the standard writes it.
    #[default]
    Object,
    /// `{"ConnectorStatusInfos": [{...}]}`.
    Array,
}

/// Which `EquipmentType` codes a peer uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EquipmentCodes {
    /// 1 DC, 2 AC, 3 AC/DC, 4 wireless, 5 other.
    #[default]
    Cec,
    /// Zhejiang: 5 is orderly charging, 6 V2G, 7 other.
    Zhejiang,
}

/// A peer's dialect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dialect {
    pub service_spelling: ServiceSpelling,
    pub elec_spelling: ElecSpelling,
    pub status_push: StatusPush,
    pub equipment_codes: EquipmentCodes,
}

/// Canonical key and its variants.
const SERVICE_KEYS: &[(&str, &str)] = &[
    ("SevicePrice", "ServicePrice"),
    ("SeviceMoney", "ServiceMoney"),
    ("TotalSeviceMoney", "TotalServiceMoney"),
    ("DetailSeviceMoney", "DetailServiceMoney"),
];
const ELEC_KEYS: &[(&str, &str)] = &[
    ("ElecMoney", "ElectMoney"),
    ("TotalElecMoney", "TotalElectMoney"),
    ("DetailElecMoney", "DetailElectMoney"),
];

fn rename_keys(value: &mut serde_json::Value, rename: &dyn Fn(&str) -> Option<&'static str>) {
    match value {
        serde_json::Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if let Some(mut inner) = map.remove(&key) {
                    rename_keys(&mut inner, rename);
                    let new = rename(&key).map_or(key, str::to_owned);
                    map.insert(new, inner);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                rename_keys(item, rename);
            }
        }
        _ => {}
    }
}

fn map_equipment(value: &mut serde_json::Value, from: i64, to: i64) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "EquipmentType" && inner.as_i64() == Some(from) {
                    *inner = serde_json::Value::from(to);
                } else {
                    map_equipment(inner, from, to);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                map_equipment(item, from, to);
            }
        }
        _ => {}
    }
}

impl Dialect {
    /// A canonical payload in the peer's dialect.
    pub fn outbound(&self, value: &mut serde_json::Value) {
        let service = self.service_spelling;
        let elec = self.elec_spelling;
        rename_keys(value, &|key| {
            let service_key = SERVICE_KEYS
                .iter()
                .find(|(canonical, _)| *canonical == key)
                .map(|(_, variant)| *variant)
                .filter(|_| service == ServiceSpelling::Service);
            let elec_key = ELEC_KEYS
                .iter()
                .find(|(canonical, _)| *canonical == key)
                .map(|(_, variant)| *variant)
                .filter(|_| elec == ElecSpelling::Elect);
            service_key.or(elec_key)
        });
        if self.equipment_codes == EquipmentCodes::Zhejiang {
            map_equipment(value, 5, 7);
        }
    }

    /// A peer's payload in canonical form: every known variant accepted.
    pub fn inbound(&self, value: &mut serde_json::Value) {
        rename_keys(value, &|key| {
            SERVICE_KEYS
                .iter()
                .chain(ELEC_KEYS)
                .find(|(_, variant)| *variant == key)
                .map(|(canonical, _)| *canonical)
        });
        if self.equipment_codes == EquipmentCodes::Zhejiang {
            // Zhejiang's 5 (orderly) and 6 (V2G) have no CEC code: other.
            map_equipment(value, 5, 5);
            map_equipment(value, 6, 5);
            map_equipment(value, 7, 5);
        }
    }

    /// The status push's payload in the peer's shape.
    pub fn status_push(&self, connector: serde_json::Value) -> serde_json::Value {
        match self.status_push {
            StatusPush::Object => serde_json::json!({ "ConnectorStatusInfo": connector }),
            StatusPush::Array => serde_json::json!({ "ConnectorStatusInfos": [connector] }),
        }
    }

    /// The connectors of a received status push, whichever shape it came in.
    pub fn status_received(value: &serde_json::Value) -> Vec<serde_json::Value> {
        if let Some(one) = value.get("ConnectorStatusInfo").filter(|v| v.is_object()) {
            return vec![one.clone()];
        }
        value
            .get("ConnectorStatusInfos")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_and_elec_spellings_go_out_as_the_peer_spells_and_come_back_canonical() {
        let canonical = json!({
            "TotalSeviceMoney": "1.00",
            "TotalElecMoney": "2.00",
            "ChargeDetails": [{"SevicePrice": "0.8000", "DetailElecMoney": "2.00"}],
            "PolicyInfos": [{"SevicePrice": "0.8000", "ElecPrice": "1.0000"}]
        });
        let didi = Dialect {
            service_spelling: ServiceSpelling::Service,
            elec_spelling: ElecSpelling::Elect,
            ..Dialect::default()
        };
        let mut out = canonical.clone();
        didi.outbound(&mut out);
        assert_eq!(out["TotalServiceMoney"], "1.00");
        assert_eq!(out["TotalElectMoney"], "2.00");
        assert_eq!(out["ChargeDetails"][0]["ServicePrice"], "0.8000");
        assert_eq!(
            out["PolicyInfos"][0]["ElecPrice"], "1.0000",
            "prices keep Elec"
        );
        assert!(out.get("TotalSeviceMoney").is_none());
        let mut back = out;
        Dialect::default().inbound(&mut back);
        assert_eq!(back, canonical);
        let mut standard = canonical.clone();
        Dialect::default().outbound(&mut standard);
        assert_eq!(standard, canonical);
    }

    #[test]
    fn zhejiang_equipment_codes_and_the_status_push_shape() {
        let zhejiang = Dialect {
            equipment_codes: EquipmentCodes::Zhejiang,
            status_push: StatusPush::Array,
            ..Dialect::default()
        };
        let mut equipment = json!({"EquipmentInfos": [{"EquipmentType": 5}, {"EquipmentType": 1}]});
        zhejiang.outbound(&mut equipment);
        assert_eq!(equipment["EquipmentInfos"][0]["EquipmentType"], 7);
        assert_eq!(equipment["EquipmentInfos"][1]["EquipmentType"], 1);
        let mut v2g = json!({"EquipmentType": 6});
        zhejiang.inbound(&mut v2g);
        assert_eq!(v2g["EquipmentType"], 5);
        let push = zhejiang.status_push(json!({"ConnectorID": "C1", "Status": 1}));
        assert_eq!(push["ConnectorStatusInfos"][0]["ConnectorID"], "C1");
        assert_eq!(Dialect::status_received(&push).len(), 1);
        let object = Dialect::default().status_push(json!({"ConnectorID": "C1", "Status": 1}));
        assert_eq!(Dialect::status_received(&object)[0]["Status"], 1);
    }
}
