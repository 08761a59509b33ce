//! Tests of the registry rules, and the fixtures other tests of the domain build on.
use super::*;
use crate::domain::price::parse_clock;
use rust_decimal::Decimal;

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

pub fn operator() -> Operator {
    let now = at("2026-01-01T00:00:00Z");
    Operator {
        operator_id: String::new(),
        credit_code: "91330602MA2D3K7Q02".into(),
        name: "Shaoxing Demo Charging Co.".into(),
        business_scope: "充电设施运营；电动汽车充电服务".into(),
        supervision_hotline: "0575-12345".into(),
        created_at: now,
        updated_at: now,
    }
}

pub fn station() -> Station {
    let now = at("2026-01-01T00:00:00Z");
    Station {
        operator_id: "MA2D3K7Q0".into(),
        station_id: "SX001".into(),
        name: "Yuecheng Public Station".into(),
        kind: StationKind::UrbanPublic,
        area_code: "330602".into(),
        address: "1 Renmin Rd, Yuecheng".into(),
        location: GeoPoint {
            longitude: 120.58,
            latitude: 30.0,
        },
        opening_hours: "00:00-24:00".into(),
        service_phone: "0575-88888888".into(),
        connection_mode: ConnectionMode::WholeStation,
        service_zone: ServiceZone::MainUrban,
        tariff: {
            let mut tariff = Tariff::default();
            tariff
                .add_version(
                    "station.price_board",
                    now,
                    vec![PricePeriod {
                        start_minute: parse_clock("s", "00:00").expect("t"),
                        end_minute: parse_clock("e", "24:00").expect("t"),
                        label: PeriodLabel::Flat,
                        electricity_price: Decimal::new(6800, 4),
                        service_fee: Decimal::new(4000, 4),
                    }],
                    now,
                )
                .expect("version 1");
            tariff
        },
        service_items: vec!["charging".into()],
        accept_any_id_token: false,
        state: StationState::Registered,
        acceptance: None,
        filing: None,
        connected_at: None,
        trial_started_at: None,
        commissioned_at: None,
        created_at: now,
        updated_at: now,
    }
}

pub fn pile(pile_type: PileType) -> Pile {
    let now = at("2026-01-01T00:00:00Z");
    let (connector_type, power) = match pile_type {
        PileType::Ac => (ConnectorType::AcSocket, 7.0),
        _ => (ConnectorType::DcGun, 60.0),
    };
    Pile {
        operator_id: "MA2D3K7Q0".into(),
        pile_id: "P001".into(),
        station_id: "SX001".into(),
        pile_type,
        manufacturer: "Acme".into(),
        model: "X1".into(),
        serial_number: "SN1".into(),
        production_date: date("2025-06-01"),
        rated_voltage: 750.0,
        rated_current: 80.0,
        rated_power_kw: power,
        connectors: vec![Connector {
            connector_id: "P001-1".into(),
            name: "gun 1".into(),
            connector_type,
            national_standard: NationalStandard::Gb2015,
            voltage_upper_limit: 750.0,
            voltage_lower_limit: 200.0,
            current: 80.0,
            power_kw: power,
            park_no: "A1".into(),
        }],
        protocol: PileProtocol::Native,
        charge_point_id: String::new(),
        password_set_at: None,
        state: PileState::InService,
        suspension: None,
        retired_at: None,
        created_at: now,
        updated_at: now,
    }
}

pub fn certificate(procedure: Procedure, from: &str, until: &str) -> Certificate {
    Certificate {
        operator_id: "MA2D3K7Q0".into(),
        pile_id: "P001".into(),
        certificate_id: "c1".into(),
        procedure,
        certificate_number: "ZJ-2026-001".into(),
        verifying_body: "Shaoxing Institute of Metrology".into(),
        verified_on: date(from),
        valid_until: date(until),
        created_at: at("2026-01-01T00:00:00Z"),
    }
}

fn rule_of(err: &Error) -> Option<&'static str> {
    match err {
        Error::Invalid { rule, .. } | Error::Precondition { rule, .. } => *rule,
        _ => None,
    }
}

#[test]
fn base_3_operator_without_charging_operation_scope_is_refused() {
    let mut op = operator();
    op.business_scope = "电动汽车销售".into();
    let err = validate_operator(op).expect_err("refused");
    assert_eq!(rule_of(&err), Some("BASE-3"));
    let ok = validate_operator(operator()).expect("valid");
    assert_eq!(ok.operator_id, "MA2D3K7Q0");
}

#[test]
fn svc_1_operator_needs_a_supervision_hotline() {
    let mut op = operator();
    op.supervision_hotline = String::new();
    assert_eq!(
        rule_of(&validate_operator(op).expect_err("refused")),
        Some("SVC-1")
    );
}

#[test]
fn sign_2_station_publishes_phone_and_price_board() {
    let mut st = station();
    st.service_phone = "none".into();
    assert_eq!(
        rule_of(&validate_station(st).expect_err("refused")),
        Some("SIGN-2")
    );
    let mut st = station();
    st.tariff.versions.clear();
    assert_eq!(
        rule_of(&validate_station(st).expect_err("refused")),
        Some("BASE-3")
    );
    assert!(validate_station(station()).is_ok());
}

#[test]
fn scope_2_pile_below_7_kw_is_refused() {
    let mut p = pile(PileType::Ac);
    p.rated_power_kw = 5.0;
    p.connectors[0].power_kw = 5.0;
    let err = validate_pile(p, date("2026-01-01")).expect_err("refused");
    assert_eq!(rule_of(&err), Some("SCOPE-2"));
    assert!(err.to_string().contains("pile.rated_power_kw"));
    assert!(
        validate_pile(pile(PileType::Ac), date("2026-01-01")).is_ok(),
        "7 kW is in scope"
    );
}

#[test]
fn sign_1_pile_parameters_are_all_required() {
    for strip in 0..5 {
        let mut p = pile(PileType::Dc);
        match strip {
            0 => p.manufacturer.clear(),
            1 => p.model.clear(),
            2 => p.rated_voltage = 0.0,
            3 => p.rated_current = f64::NAN,
            _ => p.connectors.clear(),
        }
        let err = validate_pile(p, date("2026-01-01")).expect_err("refused");
        assert_eq!(rule_of(&err), Some("SIGN-1"), "case {strip}: {err}");
    }
}

#[test]
fn sign_1_connectors_match_the_pile_type() {
    let mut p = pile(PileType::Ac);
    p.connectors[0].connector_type = ConnectorType::DcGun;
    assert!(validate_pile(p, date("2026-01-01")).is_err());
    let mut p = pile(PileType::Dc);
    p.connectors.push(p.connectors[0].clone());
    assert!(
        validate_pile(p, date("2026-01-01")).is_err(),
        "repeated connector id"
    );
}

#[test]
fn eq_1_equipment_ledger_needs_name_model_and_quantity() {
    let now = at("2026-01-01T00:00:00Z");
    let eq = Equipment {
        operator_id: "MA2D3K7Q0".into(),
        equipment_id: "e1".into(),
        station_id: "SX001".into(),
        category: EquipmentCategory::Distribution,
        name: "Box transformer".into(),
        manufacturer: "Acme".into(),
        model: "630kVA".into(),
        serial_number: String::new(),
        quantity: 1,
        parameters: [("capacity_kva".to_owned(), "630".to_owned())].into(),
        created_at: now,
        updated_at: now,
    };
    assert!(validate_equipment(eq.clone()).is_ok());
    let mut zero = eq;
    zero.quantity = 0;
    assert_eq!(
        rule_of(&validate_equipment(zero).expect_err("refused")),
        Some("EQ-1")
    );
}

#[test]
fn base_5_certificate_procedure_must_match_the_pile_type() {
    let today = date("2026-03-01");
    let ac = pile(PileType::Ac);
    let wrong = certificate(Procedure::Jjg1149, "2026-01-01", "2027-01-01");
    assert_eq!(
        rule_of(&validate_certificate(wrong, &ac, today).expect_err("refused")),
        Some("BASE-5")
    );
    let right = certificate(Procedure::Jjg1148, "2026-01-01", "2027-01-01");
    assert!(validate_certificate(right, &ac, today).is_ok());
    let dc = pile(PileType::Dc);
    let wrong = certificate(Procedure::Jjg1148, "2026-01-01", "2027-01-01");
    assert!(validate_certificate(wrong, &dc, today).is_err());
    let backwards = certificate(Procedure::Jjg1149, "2026-01-01", "2025-01-01");
    assert_eq!(
        rule_of(&validate_certificate(backwards, &dc, today).expect_err("refused")),
        Some("EQ-4")
    );
}

#[test]
fn base_5_never_verified_pile_may_not_settle() {
    let e = settlement_eligibility(&pile(PileType::Dc), &[], at("2026-03-01T00:00:00Z"));
    assert!(!e.eligible);
    assert!(
        e.reason.contains("never verified") && e.reason.contains("BASE-5"),
        "{}",
        e.reason
    );
}

#[test]
fn eq_4_expired_certificate_stops_settlement_from_the_next_local_day() {
    let certs = [certificate(Procedure::Jjg1149, "2025-03-01", "2026-02-28")];
    let p = pile(PileType::Dc);
    // 2026-02-28 23:59 in China is 15:59 UTC.
    assert!(settlement_eligibility(&p, &certs, at("2026-02-28T15:59:00Z")).eligible);
    let e = settlement_eligibility(&p, &certs, at("2026-02-28T16:00:00Z"));
    assert!(!e.eligible);
    assert!(
        e.reason.contains("expired on 2026-02-28") && e.reason.contains("EQ-4"),
        "{}",
        e.reason
    );
}

#[test]
fn base_5_combined_pile_needs_both_procedures() {
    let p = pile(PileType::AcDc);
    let only_dc = [certificate(Procedure::Jjg1149, "2026-01-01", "2027-01-01")];
    let e = settlement_eligibility(&p, &only_dc, at("2026-03-01T00:00:00Z"));
    assert!(!e.eligible && e.reason.contains("JJG 1148"));
    let mut ac = certificate(Procedure::Jjg1148, "2026-01-01", "2027-01-01");
    ac.certificate_id = "c2".into();
    let both = [only_dc[0].clone(), ac];
    assert!(settlement_eligibility(&p, &both, at("2026-03-01T00:00:00Z")).eligible);
}

#[test]
fn mon_6_retired_pile_may_not_settle_after_retirement() {
    let certs = [certificate(Procedure::Jjg1149, "2026-01-01", "2027-01-01")];
    let p = retire(
        pile(PileType::Dc),
        "end of life",
        at("2026-02-01T00:00:00Z"),
    )
    .expect("retired");
    assert!(settlement_eligibility(&p, &certs, at("2026-01-15T00:00:00Z")).eligible);
    let e = settlement_eligibility(&p, &certs, at("2026-02-02T00:00:00Z"));
    assert!(!e.eligible && e.reason.contains("MON-6"));
}

#[test]
fn base_1_commissioning_before_acceptance_is_refused() {
    let err = commission(station(), &[], &[], at("2026-03-01T00:00:00Z")).expect_err("refused");
    assert!(
        matches!(
            err,
            Error::Precondition {
                rule: Some("BASE-1"),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("acceptance"));
}

#[test]
fn base_1_filing_needs_acceptance_and_connection_needs_filing() {
    let now = at("2026-03-01T00:00:00Z");
    let filing = Filing {
        authority: "Shaoxing AMR".into(),
        filing_number: "F-1".into(),
        filed_on: date("2026-02-01"),
    };
    let err = file(station(), filing.clone(), now).expect_err("refused");
    assert_eq!(rule_of(&err), Some("BASE-1"));
    let accepted = accept(
        station(),
        Acceptance {
            report_reference: "NB/T 33004 R-1".into(),
            accepted_on: date("2026-01-20"),
        },
        now,
    )
    .expect("accepted");
    let err = connect(accepted.clone(), None, now).expect_err("refused");
    assert!(
        matches!(
            err,
            Error::Precondition {
                rule: Some("BASE-1"),
                ..
            }
        ),
        "{err}"
    );
    let filed = file(accepted, filing, now).expect("filed");
    assert_eq!(filed.state, StationState::Filed);
}

#[test]
fn base_2_trial_operation_needs_a_platform_connection() {
    let mut st = station();
    st.state = StationState::Filed;
    let err = start_trial(st.clone(), at("2026-03-01T00:00:00Z")).expect_err("refused");
    assert_eq!(rule_of(&err), Some("BASE-2"));
    let connected = connect(
        st,
        Some(ConnectionMode::SinglePile),
        at("2026-03-01T00:00:00Z"),
    )
    .expect("connected");
    assert_eq!(connected.connection_mode, ConnectionMode::SinglePile);
    assert!(start_trial(connected, at("2026-03-01T00:00:00Z")).is_ok());
}

#[test]
fn base_5_commissioning_needs_a_valid_certificate_on_every_pile() {
    let mut st = station();
    st.state = StationState::TrialOperation;
    let now = at("2026-03-01T00:00:00Z");
    let piles = [pile(PileType::Dc)];
    let err = commission(st.clone(), &piles, &[], now).expect_err("refused");
    assert!(
        matches!(
            err,
            Error::Precondition {
                rule: Some("BASE-5"),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("P001"));
    let certs = [certificate(Procedure::Jjg1149, "2026-01-01", "2027-01-01")];
    let done = commission(st, &piles, &certs, now).expect("commissioned");
    assert_eq!(done.state, StationState::Commissioned);
    assert_eq!(done.commissioned_at, Some(now));
}

#[test]
fn mon_4_suspension_needs_evidence() {
    let now = at("2026-03-01T00:00:00Z");
    let err = suspend(
        pile(PileType::Dc),
        SuspensionReason::ExtremeWeather,
        vec![" ".into()],
        String::new(),
        now,
    )
    .expect_err("refused");
    assert_eq!(rule_of(&err), Some("MON-4"));
    let s = suspend(
        pile(PileType::Dc),
        SuspensionReason::ExtremeWeather,
        vec!["photo-1".into()],
        String::new(),
        now,
    )
    .expect("suspended");
    assert_eq!(s.state, PileState::Suspended);
    assert!(
        suspend(
            s,
            SuspensionReason::ExtremeWeather,
            vec!["photo-2".into()],
            String::new(),
            now
        )
        .is_err()
    );
}

#[test]
fn mon_5_only_a_suspended_pile_resumes() {
    let now = at("2026-03-01T00:00:00Z");
    assert_eq!(
        rule_of(&resume(pile(PileType::Dc), now).expect_err("refused")),
        Some("MON-5")
    );
    let s = suspend(
        pile(PileType::Dc),
        SuspensionReason::PlannedMaintenance,
        vec!["plan-7".into()],
        String::new(),
        now,
    )
    .expect("suspended");
    let r = resume(s, now).expect("resumed");
    assert_eq!(r.state, PileState::InService);
    assert!(r.suspension.is_none());
}

#[test]
fn mon_6_retirement_is_final() {
    let now = at("2026-03-01T00:00:00Z");
    let r = retire(pile(PileType::Dc), "scrapped", now).expect("retired");
    assert_eq!(
        rule_of(&resume(r.clone(), now).expect_err("refused")),
        Some("MON-6")
    );
    assert_eq!(
        rule_of(
            &suspend(
                r.clone(),
                SuspensionReason::OtherExternal,
                vec!["x".into()],
                String::new(),
                now
            )
            .expect_err("refused")
        ),
        Some("MON-6")
    );
    assert_eq!(
        rule_of(&retire(r, "again", now).expect_err("refused")),
        Some("MON-6")
    );
}
