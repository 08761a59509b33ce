//! The standard's rules for the asset registry, as pure functions over the plain types.

use chrono::{DateTime, NaiveDate, Utc};

use chargemesh_kit::Error;
use chargemesh_kit::clock::china_date;

use super::codes::{
    operator_id_from_credit_code, required_text, validate_area_code, validate_id, validate_phone,
};
use super::model::*;

/// The smallest rated power the standard covers (REQ SCOPE-2).
pub const MIN_RATED_POWER_KW: f64 = 7.0;
/// The business-scope words an operator must be licensed for (REQ BASE-3).
pub const REQUIRED_SCOPE: &str = "充电设施运营";

pub const STATION_ID_MAX: usize = 20;
pub const PILE_ID_MAX: usize = 23;
pub const CONNECTOR_ID_MAX: usize = 26;

/// Normalises and checks a new or changed operator; derives its OperatorID.
pub fn validate_operator(mut op: Operator) -> Result<Operator, Error> {
    op.operator_id = operator_id_from_credit_code("operator.credit_code", &op.credit_code)?;
    op.credit_code = op.credit_code.trim().to_owned();
    op.name = required_text("operator.name", &op.name, 200, None)?;
    op.business_scope = required_text(
        "operator.business_scope",
        &op.business_scope,
        2000,
        Some("BASE-3"),
    )?;
    // REQ BASE-3: the licensed business scope includes charging facility operation.
    if !op.business_scope.contains(REQUIRED_SCOPE) {
        return Err(Error::invalid(
            "operator.business_scope",
            "BASE-3",
            format!("the business scope must include {REQUIRED_SCOPE}"),
        ));
    }
    // REQ SVC-1, EVAL-2: the supervision hotline is published.
    op.supervision_hotline = validate_phone(
        "operator.supervision_hotline",
        &op.supervision_hotline,
        "SVC-1",
    )?;
    Ok(op)
}

/// Normalises and checks a station's registration data.
pub fn validate_station(mut st: Station) -> Result<Station, Error> {
    validate_id("station.station_id", &st.station_id, STATION_ID_MAX)?;
    st.name = required_text("station.name", &st.name, 200, Some("SVC-1"))?;
    validate_area_code("station.area_code", &st.area_code)?;
    st.address = required_text("station.address", &st.address, 500, Some("SVC-1"))?;
    let GeoPoint {
        longitude,
        latitude,
    } = st.location;
    if !(73.0..=136.0).contains(&longitude) || !(3.0..=54.0).contains(&latitude) {
        return Err(Error::bad_field(
            "station.location",
            "must be a GCJ-02 point in China",
        ));
    }
    // REQ SVC-1: opening hours are part of the public notice.
    st.opening_hours = required_text(
        "station.opening_hours",
        &st.opening_hours,
        100,
        Some("SVC-1"),
    )?;
    // REQ SIGN-2: the station publishes its service phone.
    st.service_phone = validate_phone("station.service_phone", &st.service_phone, "SIGN-2")?;
    // REQ BASE-3, SIGN-2: a price board is published; each version was checked to cover the
    // day when it was added.
    if st.tariff.versions.is_empty() {
        return Err(Error::invalid(
            "station.price_board",
            "BASE-3",
            "a price board must be published",
        ));
    }
    st.service_items = st
        .service_items
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    Ok(st)
}

/// Normalises and checks a pile and its connectors.
pub fn validate_pile(mut pile: Pile, today: NaiveDate) -> Result<Pile, Error> {
    validate_id("pile.pile_id", &pile.pile_id, PILE_ID_MAX)?;
    validate_id("pile.station_id", &pile.station_id, STATION_ID_MAX)?;
    // REQ SIGN-1: every pile publishes its technical parameters.
    pile.manufacturer =
        required_text("pile.manufacturer", &pile.manufacturer, 200, Some("SIGN-1"))?;
    pile.model = required_text("pile.model", &pile.model, 200, Some("SIGN-1"))?;
    pile.serial_number = required_text(
        "pile.serial_number",
        &pile.serial_number,
        100,
        Some("SIGN-1"),
    )?;
    if pile.production_date > today {
        return Err(Error::invalid(
            "pile.production_date",
            "SIGN-1",
            "lies in the future",
        ));
    }
    for (field, value) in [
        ("pile.rated_voltage", pile.rated_voltage),
        ("pile.rated_current", pile.rated_current),
        ("pile.rated_power_kw", pile.rated_power_kw),
    ] {
        if !value.is_finite() || value <= 0.0 {
            return Err(Error::invalid(
                field,
                "SIGN-1",
                "is required and must be positive",
            ));
        }
    }
    // REQ SCOPE-2: equipment rated below 7 kW is outside the standard.
    if pile.rated_power_kw < MIN_RATED_POWER_KW {
        return Err(Error::invalid(
            "pile.rated_power_kw",
            "SCOPE-2",
            format!(
                "{} kW is below {MIN_RATED_POWER_KW} kW; such equipment is outside the standard",
                pile.rated_power_kw
            ),
        ));
    }
    if pile.connectors.is_empty() {
        return Err(Error::invalid(
            "pile.connectors",
            "SIGN-1",
            "a pile has at least one connector",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, c) in pile.connectors.iter_mut().enumerate() {
        let field = |name: &str| format!("pile.connectors[{i}].{name}");
        validate_id(&field("connector_id"), &c.connector_id, CONNECTOR_ID_MAX)?;
        if !seen.insert(c.connector_id.clone()) {
            return Err(Error::bad_field(field("connector_id"), "is repeated"));
        }
        c.name = c.name.trim().to_owned();
        c.park_no = c.park_no.trim().to_owned();
        let fits = match pile.pile_type {
            PileType::Ac => c.connector_type.is_ac() || c.connector_type == ConnectorType::Other,
            PileType::Dc => matches!(
                c.connector_type,
                ConnectorType::DcGun | ConnectorType::Other
            ),
            PileType::AcDc => true,
        };
        if !fits {
            return Err(Error::bad_field(
                field("connector_type"),
                "does not match the pile's current type",
            ));
        }
        for (name, value) in [
            ("voltage_upper_limit", c.voltage_upper_limit),
            ("voltage_lower_limit", c.voltage_lower_limit),
            ("current", c.current),
            ("power_kw", c.power_kw),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(Error::invalid(
                    field(name),
                    "SIGN-1",
                    "must be a non-negative number",
                ));
            }
        }
        if c.voltage_upper_limit <= 0.0 || c.current <= 0.0 || c.power_kw <= 0.0 {
            return Err(Error::invalid(
                field("power_kw"),
                "SIGN-1",
                "voltage, current and power are required",
            ));
        }
        if c.voltage_lower_limit > c.voltage_upper_limit {
            return Err(Error::bad_field(
                field("voltage_lower_limit"),
                "exceeds the upper limit",
            ));
        }
        if c.power_kw > pile.rated_power_kw {
            return Err(Error::bad_field(
                field("power_kw"),
                "exceeds the pile's rated power",
            ));
        }
    }
    // REQ NETSEC-1: an OCPP pile names itself by its charge point id.
    pile.charge_point_id = super::charge_points::charge_point_id(&pile)?;
    Ok(pile)
}

pub fn validate_equipment(mut eq: Equipment) -> Result<Equipment, Error> {
    validate_id("equipment.station_id", &eq.station_id, STATION_ID_MAX)?;
    eq.name = required_text("equipment.name", &eq.name, 200, Some("EQ-1"))?;
    eq.manufacturer = eq.manufacturer.trim().to_owned();
    eq.model = required_text("equipment.model", &eq.model, 200, Some("EQ-1"))?;
    eq.serial_number = eq.serial_number.trim().to_owned();
    if eq.quantity == 0 {
        return Err(Error::invalid(
            "equipment.quantity",
            "EQ-1",
            "must be at least 1",
        ));
    }
    if eq.parameters.keys().any(|k| k.trim().is_empty()) {
        return Err(Error::bad_field(
            "equipment.parameters",
            "names must not be empty",
        ));
    }
    Ok(eq)
}

/// The verification procedures a pile's metering needs (REQ BASE-5): JJG 1148 for AC,
/// JJG 1149 for DC, both for a combined AC/DC pile.
pub fn required_procedures(pile_type: PileType) -> &'static [Procedure] {
    match pile_type {
        PileType::Ac => &[Procedure::Jjg1148],
        PileType::Dc => &[Procedure::Jjg1149],
        PileType::AcDc => &[Procedure::Jjg1148, Procedure::Jjg1149],
    }
}

pub fn validate_certificate(
    mut cert: Certificate,
    pile: &Pile,
    today: NaiveDate,
) -> Result<Certificate, Error> {
    // REQ BASE-5: AC piles are verified under JJG 1148, DC chargers under JJG 1149.
    if !required_procedures(pile.pile_type).contains(&cert.procedure) {
        let expected = required_procedures(pile.pile_type)
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(Error::invalid(
            "certificate.procedure",
            "BASE-5",
            format!(
                "{} does not verify this pile; it needs {expected}",
                cert.procedure.as_str()
            ),
        ));
    }
    cert.certificate_number = required_text(
        "certificate.certificate_number",
        &cert.certificate_number,
        100,
        Some("BASE-5"),
    )?;
    cert.verifying_body = required_text(
        "certificate.verifying_body",
        &cert.verifying_body,
        200,
        Some("BASE-5"),
    )?;
    if cert.verified_on > today {
        return Err(Error::invalid(
            "certificate.verified_on",
            "BASE-5",
            "lies in the future",
        ));
    }
    if cert.valid_until < cert.verified_on {
        return Err(Error::invalid(
            "certificate.valid_until",
            "EQ-4",
            "is before the verification date",
        ));
    }
    Ok(cert)
}

/// The answer to "may this pile charge for trade settlement at this time".
#[derive(Debug, Clone, PartialEq)]
pub struct Eligibility {
    pub eligible: bool,
    pub reason: String,
    /// The certificate in force for the pile's first procedure, if any.
    pub certificate: Option<Certificate>,
}

/// REQ BASE-5, EQ-4: equipment never verified, or past its verification period, must not charge
/// for trade settlement; nor may a retired (MON-6) or suspended (MON-4, EQ-3) pile.
pub fn settlement_eligibility(
    pile: &Pile,
    certificates: &[Certificate],
    at: DateTime<Utc>,
) -> Eligibility {
    let date = china_date(at);
    let mut in_force = None;
    let mut problems = Vec::new();
    if let Some(retired) = pile.retired_at.filter(|r| *r <= at) {
        problems.push(format!(
            "pile was retired on {} (REQ MON-6)",
            china_date(retired)
        ));
    }
    if let Some(s) = pile.suspension.as_ref().filter(|s| s.suspended_at <= at) {
        problems.push(format!(
            "pile is suspended since {} (REQ MON-4, EQ-3)",
            china_date(s.suspended_at)
        ));
    }
    for procedure in required_procedures(pile.pile_type) {
        let of_procedure: Vec<&Certificate> = certificates
            .iter()
            .filter(|c| c.pile_id == pile.pile_id && c.procedure == *procedure)
            .collect();
        let valid = of_procedure
            .iter()
            .filter(|c| c.verified_on <= date && date <= c.valid_until)
            .max_by_key(|c| c.valid_until);
        match valid {
            Some(c) => {
                in_force.get_or_insert_with(|| (*c).clone());
            }
            None => {
                let lapsed = of_procedure
                    .iter()
                    .filter(|c| c.valid_until < date)
                    .max_by_key(|c| c.valid_until);
                problems.push(match lapsed {
                    Some(c) => format!(
                        "{} certificate {} expired on {} (REQ BASE-5, EQ-4)",
                        procedure.as_str(),
                        c.certificate_number,
                        c.valid_until
                    ),
                    None => format!(
                        "never verified under {} on {date} (REQ BASE-5)",
                        procedure.as_str()
                    ),
                });
            }
        }
    }
    Eligibility {
        eligible: problems.is_empty(),
        reason: problems.join("; "),
        certificate: in_force,
    }
}

/// The precondition missing for a station in `state` to move on, with its REQ id.
fn missing_after(state: StationState) -> Error {
    match state {
        StationState::Registered => {
            Error::precondition("BASE-1", "the station has no NB/T 33004 acceptance yet")
        }
        StationState::Accepted => Error::precondition(
            "BASE-1",
            "the station is not filed with the market regulator yet",
        ),
        StationState::Filed => Error::precondition(
            "BASE-2",
            "the station is not connected to an operation management platform yet",
        ),
        StationState::Connected => {
            Error::precondition("BASE-2", "the station has not been in trial operation yet")
        }
        StationState::TrialOperation | StationState::Commissioned => {
            Error::state("the station is already commissioned")
        }
    }
}

/// Allows a step only from the state right before it.
fn require_state(st: &Station, before: StationState) -> Result<(), Error> {
    if st.state == before {
        Ok(())
    } else if st.state < before {
        Err(missing_after(st.state))
    } else {
        Err(Error::state(format!(
            "the station is already {}",
            st.state.as_str()
        )))
    }
}

/// REQ BASE-1: acceptance per NB/T 33004.
pub fn accept(
    mut st: Station,
    acceptance: Acceptance,
    now: DateTime<Utc>,
) -> Result<Station, Error> {
    require_state(&st, StationState::Registered)?;
    let report_reference = required_text(
        "acceptance.report_reference",
        &acceptance.report_reference,
        200,
        Some("BASE-1"),
    )?;
    if acceptance.accepted_on > china_date(now) {
        return Err(Error::invalid(
            "acceptance.accepted_on",
            "BASE-1",
            "lies in the future",
        ));
    }
    st.acceptance = Some(Acceptance {
        report_reference,
        ..acceptance
    });
    st.state = StationState::Accepted;
    st.updated_at = now;
    Ok(st)
}

/// REQ BASE-1: filing (备案登记) with the market regulator.
pub fn file(mut st: Station, filing: Filing, now: DateTime<Utc>) -> Result<Station, Error> {
    require_state(&st, StationState::Accepted)?;
    let authority = required_text("filing.authority", &filing.authority, 200, Some("BASE-1"))?;
    let filing_number = required_text(
        "filing.filing_number",
        &filing.filing_number,
        100,
        Some("BASE-1"),
    )?;
    if filing.filed_on > china_date(now) {
        return Err(Error::invalid(
            "filing.filed_on",
            "BASE-1",
            "lies in the future",
        ));
    }
    if st
        .acceptance
        .as_ref()
        .is_some_and(|a| filing.filed_on < a.accepted_on)
    {
        return Err(Error::invalid(
            "filing.filed_on",
            "BASE-1",
            "is before the acceptance",
        ));
    }
    st.filing = Some(Filing {
        authority,
        filing_number,
        filed_on: filing.filed_on,
    });
    st.state = StationState::Filed;
    st.updated_at = now;
    Ok(st)
}

/// REQ BASE-2: connection to an operation management platform in one of three modes.
pub fn connect(
    mut st: Station,
    mode: Option<ConnectionMode>,
    now: DateTime<Utc>,
) -> Result<Station, Error> {
    require_state(&st, StationState::Filed)?;
    if let Some(mode) = mode {
        st.connection_mode = mode;
    }
    st.state = StationState::Connected;
    st.connected_at = Some(now);
    st.updated_at = now;
    Ok(st)
}

/// REQ BASE-2: trial operation, whose data the regulator receives before commissioning.
pub fn start_trial(mut st: Station, now: DateTime<Utc>) -> Result<Station, Error> {
    require_state(&st, StationState::Connected)?;
    st.state = StationState::TrialOperation;
    st.trial_started_at = Some(now);
    st.updated_at = now;
    Ok(st)
}

/// REQ BASE-1, BASE-2, BASE-5: commissioning needs the whole lifecycle behind it and a valid
/// metrology certificate on every pile that is not retired.
pub fn commission(
    mut st: Station,
    piles: &[Pile],
    certificates: &[Certificate],
    now: DateTime<Utc>,
) -> Result<Station, Error> {
    require_state(&st, StationState::TrialOperation)?;
    let active: Vec<&Pile> = piles
        .iter()
        .filter(|p| p.state != PileState::Retired)
        .collect();
    if active.is_empty() {
        return Err(Error::precondition(
            "BASE-2",
            "the station has no pile to commission",
        ));
    }
    let unverified: Vec<String> = active
        .iter()
        .filter_map(|p| {
            let e = settlement_eligibility(p, certificates, now);
            (!e.eligible).then(|| format!("{}: {}", p.pile_id, e.reason))
        })
        .collect();
    if !unverified.is_empty() {
        return Err(Error::precondition(
            "BASE-5",
            format!(
                "every pile needs a valid metrology certificate: {}",
                unverified.join("; ")
            ),
        ));
    }
    st.state = StationState::Commissioned;
    st.commissioned_at = Some(now);
    st.updated_at = now;
    Ok(st)
}

fn require_not_retired(pile: &Pile) -> Result<(), Error> {
    if pile.state == PileState::Retired {
        return Err(Error::precondition(
            "MON-6",
            "the pile is retired, which is final",
        ));
    }
    Ok(())
}

/// REQ MON-4: suspension for a listed reason, with evidence collected first.
pub fn suspend(
    mut pile: Pile,
    reason: SuspensionReason,
    evidence_refs: Vec<String>,
    note: String,
    now: DateTime<Utc>,
) -> Result<Pile, Error> {
    require_not_retired(&pile)?;
    if pile.state == PileState::Suspended {
        return Err(Error::state("the pile is already suspended"));
    }
    let evidence_refs: Vec<String> = evidence_refs
        .into_iter()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if evidence_refs.is_empty() {
        return Err(Error::invalid(
            "evidence_refs",
            "MON-4",
            "evidence is collected before a suspension",
        ));
    }
    pile.state = PileState::Suspended;
    pile.suspension = Some(Suspension {
        reason,
        evidence_refs,
        note: note.trim().to_owned(),
        suspended_at: now,
    });
    pile.updated_at = now;
    Ok(pile)
}

/// REQ MON-5: resumption (复投) of a suspended pile.
pub fn resume(mut pile: Pile, now: DateTime<Utc>) -> Result<Pile, Error> {
    require_not_retired(&pile)?;
    if pile.state != PileState::Suspended {
        return Err(Error::precondition(
            "MON-5",
            "only a suspended pile can be resumed",
        ));
    }
    pile.state = PileState::InService;
    pile.suspension = None;
    pile.updated_at = now;
    Ok(pile)
}

/// REQ MON-6: retirement (退运) is final.
pub fn retire(mut pile: Pile, reason: &str, now: DateTime<Utc>) -> Result<Pile, Error> {
    require_not_retired(&pile)?;
    required_text("reason", reason, 500, Some("MON-6"))?;
    pile.state = PileState::Retired;
    pile.suspension = None;
    pile.retired_at = Some(now);
    pile.updated_at = now;
    Ok(pile)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
pub(crate) mod tests;
