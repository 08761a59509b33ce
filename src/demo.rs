//! The demo fleet `up --demo` seeds through the gateway, as the demo operator would: its
//! registration, three stations in Shaoxing (one of OCPP charge points), their piles,
//! certificates and ledger, and one station walked through acceptance, filing and connection
//! into trial operation.

use std::net::SocketAddr;

use anyhow::Context as _;
use tonic::Code;
use tonic::transport::Channel;

use chargemesh_kit::tls::{self, TlsFiles};
use chargemesh_proto::asset::v1 as pb;
use chargemesh_proto::asset::v1::asset_service_client::AssetServiceClient;
use chargemesh_proto::asset::v1::charge_point_service_client::ChargePointServiceClient;
use chargemesh_proto::common::v1::GeoPoint;

use crate::pki::{DEMO_CREDIT_CODE, DEMO_OPERATOR_ID, DEMO_PILE_ID, DEMO_STATION_ID};

/// An asset client through the gateway with the given client certificate.
pub fn asset_client(
    gateway: SocketAddr,
    files: &TlsFiles,
) -> anyhow::Result<AssetServiceClient<Channel>> {
    let config = std::sync::Arc::new(tls::client_config(files)?);
    let channel = tls::channel(&format!("https://127.0.0.1:{}", gateway.port()), config)?;
    Ok(AssetServiceClient::new(channel))
}

/// The demo's OCPP station: charge points connect to the gateway's OCPP edge.
pub const DEMO_OCPP_STATION_ID: &str = "SX-YC-003";
/// Its OCPP 1.6J pile (security profile 3: the development CA's pile certificate).
pub const DEMO_OCPP16_PILE_ID: &str = "SX-YC-003-P01";
/// Its OCPP 2.0.1 pile (security profile 2: HTTP Basic with [`DEMO_OCPP_PASSWORD`]).
pub const DEMO_OCPP201_PILE_ID: &str = "SX-YC-003-P02";
/// The demo's profile 2 password (development only).
pub const DEMO_OCPP_PASSWORD: &str = "chargemesh-demo-ocpp";
/// Its YKC (云快充) 1.6 pile, on the gateway's YKC edge.
pub const DEMO_YKC_PILE_ID: &str = "SX-YC-003-P03";
/// The pile code it logs in with.
pub const DEMO_YKC_PILE_CODE: &str = "33060200000301";

/// Sets a pile's OCPP security profile 2 password, as the operator's platform.
pub async fn set_password(
    gateway: SocketAddr,
    pki: &crate::pki::PkiDir,
    pile_id: &str,
    password: &str,
) -> anyhow::Result<()> {
    let config = std::sync::Arc::new(tls::client_config(&pki.files("operator"))?);
    let channel = tls::channel(&format!("https://127.0.0.1:{}", gateway.port()), config)?;
    ChargePointServiceClient::new(channel)
        .set_charge_point_password(pb::SetChargePointPasswordRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            pile_id: pile_id.into(),
            password: password.into(),
        })
        .await
        .with_context(|| format!("setting the OCPP password of {pile_id}"))?;
    Ok(())
}

pub fn operator(credit_code: &str) -> pb::Operator {
    pb::Operator {
        credit_code: credit_code.into(),
        name: "绍兴示范充电运营有限公司".into(),
        business_scope: "充电设施运营；新能源汽车充电服务；充电设备维修".into(),
        supervision_hotline: "0575-85123456".into(),
        ..Default::default()
    }
}

/// A time-of-use board: valley at night, flat by day, peak in the evening.
pub fn price_board() -> Vec<pb::PricePeriod> {
    let period =
        |start: &str, end: &str, label: pb::PeriodLabel, electricity: &str, service: &str| {
            pb::PricePeriod {
                start_time: start.into(),
                end_time: end.into(),
                label: label as i32,
                electricity_price: electricity.into(),
                service_fee: service.into(),
            }
        };
    vec![
        period(
            "00:00",
            "08:00",
            pb::PeriodLabel::Valley,
            "0.3500",
            "0.4000",
        ),
        period("08:00", "17:00", pb::PeriodLabel::Flat, "0.6500", "0.6000"),
        period("17:00", "21:00", pb::PeriodLabel::Peak, "0.9800", "0.8000"),
        period("21:00", "24:00", pb::PeriodLabel::Flat, "0.6500", "0.6000"),
    ]
}

pub fn station(operator_id: &str, station_id: &str, area_code: &str) -> pb::Station {
    pb::Station {
        operator_id: operator_id.into(),
        station_id: station_id.into(),
        name: format!("{station_id} 公共充电站"),
        kind: pb::StationKind::UrbanPublic as i32,
        area_code: area_code.into(),
        address: "绍兴市越城区人民中路 1 号".into(),
        location: Some(GeoPoint {
            longitude: 120.582,
            latitude: 30.0,
        }),
        opening_hours: "00:00-24:00".into(),
        service_phone: "0575-88888888".into(),
        connection_mode: pb::ConnectionMode::WholeStation as i32,
        service_zone: pb::ServiceZone::MainUrban as i32,
        price_board: price_board(),
        service_items: vec!["快充".into(), "慢充".into(), "停车".into()],
        ..Default::default()
    }
}

/// A DC pile of `power_kw` with one gun, or an AC pile with one socket.
pub fn pile(
    operator_id: &str,
    station_id: &str,
    pile_id: &str,
    pile_type: pb::PileType,
    power_kw: f64,
) -> pb::Pile {
    let dc = pile_type != pb::PileType::Ac;
    pb::Pile {
        operator_id: operator_id.into(),
        pile_id: pile_id.into(),
        station_id: station_id.into(),
        pile_type: pile_type as i32,
        manufacturer: "Zhejiang Demo Power".into(),
        model: if dc { "DC-120" } else { "AC-7" }.into(),
        serial_number: format!("SN-{pile_id}"),
        production_date: "2025-06-01".into(),
        rated_voltage: if dc { 750.0 } else { 220.0 },
        rated_current: if dc { 250.0 } else { 32.0 },
        rated_power_kw: power_kw,
        connectors: vec![pb::Connector {
            connector_id: format!("{pile_id}-1"),
            name: "1号枪".into(),
            connector_type: if dc {
                pb::ConnectorType::DcGun
            } else {
                pb::ConnectorType::AcSocket
            } as i32,
            national_standard: pb::NationalStandard::Gb2015 as i32,
            voltage_upper_limit: if dc { 750.0 } else { 220.0 },
            voltage_lower_limit: if dc { 200.0 } else { 220.0 },
            current: if dc { 250.0 } else { 32.0 },
            power_kw,
            park_no: "1".into(),
        }],
        ..Default::default()
    }
}

/// A certificate under the procedure the pile type needs, valid for a year from `verified_on`.
pub fn certificate(
    operator_id: &str,
    pile_id: &str,
    procedure: pb::VerificationProcedure,
    number: &str,
    verified_on: chrono::NaiveDate,
) -> pb::MetrologyCertificate {
    pb::MetrologyCertificate {
        operator_id: operator_id.into(),
        pile_id: pile_id.into(),
        procedure: procedure as i32,
        certificate_number: number.into(),
        verifying_body: "绍兴市质量技术监督检测院".into(),
        verified_on: verified_on.to_string(),
        valid_until: (verified_on + chrono::Duration::days(364)).to_string(),
        ..Default::default()
    }
}

/// Seeds the demo fleet; does nothing if the demo operator already exists.
pub async fn seed(gateway: SocketAddr, operator_files: &TlsFiles) -> anyhow::Result<bool> {
    let mut asset = asset_client(gateway, operator_files)?;
    match asset
        .create_operator(pb::CreateOperatorRequest {
            operator: Some(operator(DEMO_CREDIT_CODE)),
        })
        .await
    {
        Ok(_) => {}
        Err(status) if status.code() == Code::AlreadyExists => return Ok(false),
        Err(status) => return Err(status).context("registering the demo operator"),
    }
    let op = DEMO_OPERATOR_ID;
    let today = chrono::Utc::now().date_naive() - chrono::Duration::days(30);
    let stations = [
        (DEMO_STATION_ID, "330602"),
        ("SX-KQ-002", "330603"),
        (DEMO_OCPP_STATION_ID, "330602"),
    ];
    for (station_id, area) in stations {
        let mut record = station(op, station_id, area);
        if station_id == DEMO_OCPP_STATION_ID {
            record.name = "绍兴越城 OCPP 示范站".into();
            // A car park's own barrier decides who charges: any card is accepted (recorded).
            record.accept_any_id_token = true;
        }
        asset
            .create_station(pb::CreateStationRequest {
                station: Some(record),
            })
            .await
            .with_context(|| format!("creating station {station_id}"))?;
    }
    let piles = [
        (
            DEMO_STATION_ID,
            DEMO_PILE_ID,
            pb::PileType::Dc,
            120.0,
            pb::VerificationProcedure::Jjg1149,
        ),
        (
            DEMO_STATION_ID,
            "SX-YC-001-P02",
            pb::PileType::Ac,
            7.0,
            pb::VerificationProcedure::Jjg1148,
        ),
        (
            "SX-KQ-002",
            "SX-KQ-002-P01",
            pb::PileType::Dc,
            60.0,
            pb::VerificationProcedure::Jjg1149,
        ),
        (
            DEMO_OCPP_STATION_ID,
            DEMO_OCPP16_PILE_ID,
            pb::PileType::Ac,
            7.0,
            pb::VerificationProcedure::Jjg1148,
        ),
        (
            DEMO_OCPP_STATION_ID,
            DEMO_OCPP201_PILE_ID,
            pb::PileType::Dc,
            60.0,
            pb::VerificationProcedure::Jjg1149,
        ),
        (
            DEMO_OCPP_STATION_ID,
            DEMO_YKC_PILE_ID,
            pb::PileType::Dc,
            60.0,
            pb::VerificationProcedure::Jjg1149,
        ),
    ];
    for (i, (station_id, pile_id, kind, power, procedure)) in piles.into_iter().enumerate() {
        let mut record = pile(op, station_id, pile_id, kind, power);
        record.protocol = match pile_id {
            DEMO_OCPP16_PILE_ID => pb::PileProtocol::Ocpp16,
            DEMO_OCPP201_PILE_ID => pb::PileProtocol::Ocpp201,
            DEMO_YKC_PILE_ID => pb::PileProtocol::Ykc,
            _ => pb::PileProtocol::Unspecified,
        } as i32;
        if pile_id == DEMO_YKC_PILE_ID {
            record.charge_point_id = DEMO_YKC_PILE_CODE.into();
        }
        asset
            .create_pile(pb::CreatePileRequest { pile: Some(record) })
            .await
            .with_context(|| format!("creating pile {pile_id}"))?;
        asset
            .create_metrology_certificate(pb::CreateMetrologyCertificateRequest {
                certificate: Some(certificate(
                    op,
                    pile_id,
                    procedure,
                    &format!("ZJSX-2026-{:04}", i + 1),
                    today,
                )),
            })
            .await
            .with_context(|| format!("certifying pile {pile_id}"))?;
    }
    asset
        .create_equipment(pb::CreateEquipmentRequest {
            equipment: Some(pb::Equipment {
                operator_id: op.into(),
                station_id: DEMO_STATION_ID.into(),
                category: pb::EquipmentCategory::Distribution as i32,
                name: "箱式变压器".into(),
                manufacturer: "Zhejiang Demo Power".into(),
                model: "ZGS11-630".into(),
                serial_number: "TX-001".into(),
                quantity: 1,
                parameters: [("capacity_kva".to_owned(), "630".to_owned())].into(),
                ..Default::default()
            }),
        })
        .await
        .context("recording the transformer")?;
    let key = |station_id: &str| (op.to_owned(), station_id.to_owned());
    for station_id in [DEMO_STATION_ID, "SX-KQ-002"] {
        let (operator_id, station_id) = key(station_id);
        asset
            .accept_station(pb::AcceptStationRequest {
                operator_id: operator_id.clone(),
                station_id: station_id.clone(),
                acceptance: Some(pb::Acceptance {
                    report_reference: format!("NB/T 33004 验收报告 {station_id}"),
                    accepted_on: today.to_string(),
                }),
            })
            .await?;
        asset
            .file_station(pb::FileStationRequest {
                operator_id,
                station_id: station_id.clone(),
                filing: Some(pb::Filing {
                    authority: "绍兴市市场监督管理局".into(),
                    filing_number: format!("SXBA-{station_id}"),
                    filed_on: today.to_string(),
                }),
            })
            .await?;
    }
    {
        let config = std::sync::Arc::new(tls::client_config(operator_files)?);
        let channel = tls::channel(&format!("https://127.0.0.1:{}", gateway.port()), config)?;
        ChargePointServiceClient::new(channel)
            .set_charge_point_password(pb::SetChargePointPasswordRequest {
                operator_id: op.into(),
                pile_id: DEMO_OCPP201_PILE_ID.into(),
                password: DEMO_OCPP_PASSWORD.into(),
            })
            .await
            .context("setting the demo OCPP password")?;
    }
    let (operator_id, station_id) = key(DEMO_STATION_ID);
    asset
        .connect_station(pb::ConnectStationRequest {
            operator_id: operator_id.clone(),
            station_id: station_id.clone(),
            connection_mode: pb::ConnectionMode::WholeStation as i32,
            note: "demo: connected to the platform (REQ BASE-2)".into(),
        })
        .await?;
    // Trial operation: the regulator receives a trial day as each day closes; commissioning
    // follows once enough good days are published (REQ BASE-2).
    asset
        .start_trial_operation(pb::StartTrialOperationRequest {
            operator_id,
            station_id,
        })
        .await
        .context("starting the demo station's trial operation")?;
    Ok(true)
}

/// The demo station's cameras and communication links, for the monitor's daily check (REQ
/// MON-7, MON-8); registering them again changes nothing.
pub async fn register_monitoring(
    gateway: SocketAddr,
    operator_files: &TlsFiles,
) -> anyhow::Result<()> {
    use chargemesh_proto::dispatch::v1 as dp;
    let config = std::sync::Arc::new(tls::client_config(operator_files)?);
    let channel = tls::channel(&format!("https://127.0.0.1:{}", gateway.port()), config)?;
    dp::dispatch_service_client::DispatchServiceClient::new(channel)
        .register_monitoring_equipment(dp::RegisterMonitoringEquipmentRequest {
            operator_id: DEMO_OPERATOR_ID.into(),
            station_id: DEMO_STATION_ID.into(),
            cameras: vec![
                dp::Camera {
                    camera_id: "CAM-01".into(),
                    covers: vec![DEMO_PILE_ID.into()],
                },
                dp::Camera {
                    camera_id: "CAM-02".into(),
                    covers: vec!["SX-YC-001-P02".into()],
                },
            ],
            links: vec![dp::CommunicationLink {
                link_id: "ETH-01".into(),
                ..Default::default()
            }],
        })
        .await
        .context("registering the demo station's cameras and links")?;
    Ok(())
}
