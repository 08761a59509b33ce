//! The asset registry's plain types. They are what the store keeps (as JSON documents) and what
//! the rules reason about; the gRPC layer translates them to and from protobuf.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use chargemesh_kit::tariff::{PeriodLabel, PricePeriod, Tariff, TariffVersion};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    pub operator_id: String,
    pub credit_code: String,
    pub name: String,
    pub business_scope: String,
    pub supervision_hotline: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// REQ SCOPE-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StationKind {
    Dedicated,
    UrbanPublic,
    IntercityFast,
    ResidentialCommunity,
}

/// REQ BASE-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionMode {
    SinglePile,
    WholeStation,
    PlatformInterconnection,
}

/// REQ FAULT-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceZone {
    MainUrban,
    Other,
}

/// REQ BASE-1, BASE-2: the order is the lifecycle's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StationState {
    Registered,
    Accepted,
    Filed,
    Connected,
    TrialOperation,
    Commissioned,
}

impl StationState {
    pub fn as_str(self) -> &'static str {
        match self {
            StationState::Registered => "registered",
            StationState::Accepted => "accepted",
            StationState::Filed => "filed",
            StationState::Connected => "connected",
            StationState::TrialOperation => "trial_operation",
            StationState::Commissioned => "commissioned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    pub report_reference: String,
    pub accepted_on: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filing {
    pub authority: String,
    pub filing_number: String,
    pub filed_on: NaiveDate,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub longitude: f64,
    pub latitude: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Station {
    pub operator_id: String,
    pub station_id: String,
    pub name: String,
    pub kind: StationKind,
    pub area_code: String,
    pub address: String,
    pub location: GeoPoint,
    pub opening_hours: String,
    pub service_phone: String,
    pub connection_mode: ConnectionMode,
    pub service_zone: ServiceZone,
    /// REQ BASE-3, MON-10: the tariff's versions; the one in force is the published price board.
    pub tariff: Tariff,
    pub service_items: Vec<String>,
    /// Charge points here accept any authorisation token; each session records it.
    #[serde(default)]
    pub accept_any_id_token: bool,
    pub state: StationState,
    pub acceptance: Option<Acceptance>,
    pub filing: Option<Filing>,
    pub connected_at: Option<DateTime<Utc>>,
    pub trial_started_at: Option<DateTime<Utc>>,
    pub commissioned_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Station {
    /// REQ BASE-3: the price board published at `at`: the tariff version in force then.
    pub fn price_board(&self, at: DateTime<Utc>) -> &[PricePeriod] {
        self.tariff
            .in_force(at)
            .map_or(&[][..], |v| v.periods.as_slice())
    }
}

/// Current type; AC/DC piles meter both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PileType {
    Ac,
    Dc,
    AcDc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorType {
    HouseholdSocket,
    AcSocket,
    AcPlug,
    DcGun,
    Wireless,
    Other,
}

impl ConnectorType {
    pub fn is_ac(self) -> bool {
        matches!(
            self,
            ConnectorType::HouseholdSocket | ConnectorType::AcSocket | ConnectorType::AcPlug
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NationalStandard {
    Gb2011,
    Gb2015,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub connector_id: String,
    pub name: String,
    pub connector_type: ConnectorType,
    pub national_standard: NationalStandard,
    pub voltage_upper_limit: f64,
    pub voltage_lower_limit: f64,
    pub current: f64,
    pub power_kw: f64,
    pub park_no: String,
}

/// REQ MON-4, MON-5, MON-6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PileState {
    InService,
    Suspended,
    Retired,
}

impl PileState {
    pub fn as_str(self) -> &'static str {
        match self {
            PileState::InService => "in_service",
            PileState::Suspended => "suspended",
            PileState::Retired => "retired",
        }
    }
}

/// The MON-4 list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuspensionReason {
    PlannedMaintenance,
    UnrepairedFault,
    DistributionMaintenance,
    ExtremeWeather,
    OtherExternal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub reason: SuspensionReason,
    pub evidence_refs: Vec<String>,
    pub note: String,
    pub suspended_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pile {
    pub operator_id: String,
    pub pile_id: String,
    pub station_id: String,
    pub pile_type: PileType,
    pub manufacturer: String,
    pub model: String,
    pub serial_number: String,
    pub production_date: NaiveDate,
    pub rated_voltage: f64,
    pub rated_current: f64,
    pub rated_power_kw: f64,
    pub connectors: Vec<Connector>,
    /// How the pile talks to the platform.
    #[serde(default)]
    pub protocol: PileProtocol,
    /// OCPP piles: the id it names itself by; unique across the platform.
    #[serde(default)]
    pub charge_point_id: String,
    /// When its security profile 2 password was last set (the hash is kept apart).
    #[serde(default)]
    pub password_set_at: Option<DateTime<Utc>>,
    pub state: PileState,
    pub suspension: Option<Suspension>,
    pub retired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The protocol a pile speaks to the platform.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PileProtocol {
    /// The native telemetry stream.
    #[default]
    Native,
    Ocpp16,
    Ocpp201,
    Ykc,
}

impl PileProtocol {
    pub fn is_ocpp(self) -> bool {
        matches!(self, PileProtocol::Ocpp16 | PileProtocol::Ocpp201)
    }
}

/// An authorisation token's state in the operator's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdTokenStatus {
    Accepted,
    Blocked,
    Expired,
}

impl IdTokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenStatus::Accepted => "accepted",
            IdTokenStatus::Blocked => "blocked",
            IdTokenStatus::Expired => "expired",
        }
    }
}

/// An authorisation token of the operator (an RFID card, an app account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdToken {
    pub operator_id: String,
    pub token: String,
    pub status: IdTokenStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub note: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A charge point that connected with a valid credential of the operator but is not registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnknownChargePoint {
    pub operator_id: String,
    pub charge_point_id: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub attempts: i64,
    pub detail: String,
}

/// REQ EQ-1, besides the charging equipment itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EquipmentCategory {
    Distribution,
    ChargingMonitoring,
    TestMaintenance,
    Security,
}

impl EquipmentCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            EquipmentCategory::Distribution => "distribution",
            EquipmentCategory::ChargingMonitoring => "charging_monitoring",
            EquipmentCategory::TestMaintenance => "test_maintenance",
            EquipmentCategory::Security => "security",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equipment {
    pub operator_id: String,
    pub equipment_id: String,
    pub station_id: String,
    pub category: EquipmentCategory,
    pub name: String,
    pub manufacturer: String,
    pub model: String,
    pub serial_number: String,
    pub quantity: u32,
    pub parameters: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// REQ BASE-5: JJG 1148 verifies AC piles, JJG 1149 DC chargers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Procedure {
    Jjg1148,
    Jjg1149,
}

impl Procedure {
    pub fn as_str(self) -> &'static str {
        match self {
            Procedure::Jjg1148 => "JJG 1148",
            Procedure::Jjg1149 => "JJG 1149",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub operator_id: String,
    pub pile_id: String,
    pub certificate_id: String,
    pub procedure: Procedure,
    pub certificate_number: String,
    pub verifying_body: String,
    pub verified_on: NaiveDate,
    pub valid_until: NaiveDate,
    pub created_at: DateTime<Utc>,
}

/// An entry of the change history (REQ REC-2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    pub sequence: i64,
    pub operator_id: String,
    pub entity_type: String,
    pub entity_id: String,
    pub action: String,
    pub actor: String,
    pub note: String,
    pub recorded_at: DateTime<Utc>,
    pub before: Option<serde_json::Value>,
    pub after: serde_json::Value,
}
