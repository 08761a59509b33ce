//! `chargemesh.metering.v1.MeteringService`: translation, access and persistence; the rules are
//! in [`crate::domain`].

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tonic::Request;

use chargemesh_kit::area::{area_covers, area_prefix};
use chargemesh_kit::error::{Reply, reply};
use chargemesh_kit::paging::{decode_token, encode_token, page_size};
use chargemesh_kit::server::principal;
use chargemesh_kit::tariff::PeriodLabel;
use chargemesh_kit::tariff::wire::label_to_pb;
use chargemesh_kit::time::{from_timestamp, opt_timestamp, to_timestamp};
use chargemesh_kit::{Error, Principal};
use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::metering::v1 as pb;
use chargemesh_proto::metering::v1::metering_service_server::{
    MeteringService, MeteringServiceServer,
};

use crate::domain::abnormal::FlagKind;
use crate::domain::bounds;
use crate::domain::order::{ChargeOrder, ChargingSteps, Correction, MAX_STOP_REASON};
use crate::domain::order_id::{check_order_id, new_order_id};
use crate::domain::reconcile::{Reason, reconcile};
use crate::domain::settlement::Sample;
use crate::engine::Engine;
use crate::store::OrderQuery;

#[derive(Debug, Clone)]
pub struct MeteringApi {
    engine: Engine,
}

/// The operator a request is about, when the caller may act for it (see
/// [`Principal::acting_for`]).
fn operator_for(p: &Principal, requested: &str) -> Result<String, Error> {
    p.acting_for(requested, "charge orders")
}

/// Whether the caller may read an order: its operator (or a station its own), a regulator of
/// its area, a mesh service.
fn may_read(p: &Principal, order: &ChargeOrder) -> bool {
    match p {
        Principal::Service { .. } => true,
        Principal::Regulator { area_code } => area_covers(area_code, &order.area_code),
        Principal::Station {
            operator_id,
            station_id,
        } => *operator_id == order.operator_id && *station_id == order.station_id,
        other => other.operator_id() == Some(order.operator_id.as_str()),
    }
}

fn decimal(field: &str, value: &str, places: u32) -> Result<Decimal, Error> {
    let d = Decimal::from_str(value.trim())
        .map_err(|_| Error::bad_field(field, "must be a decimal number"))?;
    if d.is_sign_negative() || d.scale() > places {
        return Err(Error::bad_field(
            field,
            format!("must be a non-negative decimal with at most {places} places"),
        ));
    }
    Ok(d)
}

fn time(field: &str, value: Option<&prost_types::Timestamp>) -> Result<DateTime<Utc>, Error> {
    let value = value.ok_or_else(|| Error::bad_field(field, "is required"))?;
    let at = from_timestamp(value).ok_or_else(|| Error::bad_field(field, "is not a valid time"))?;
    bounds::check_time(field, at)
}

fn samples(field: &str, input: &[pb::MeterSample]) -> Result<Vec<Sample>, Error> {
    bounds::check_sample_count(field, input.len())?;
    input
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let register = format!("{field}[{i}].register_kwh");
            Ok(Sample {
                at: time(&format!("{field}[{i}].sample_time"), s.sample_time.as_ref())?,
                register_kwh: bounds::check_register(
                    &register,
                    decimal(&register, &s.register_kwh, 3)?,
                )?,
            })
        })
        .collect()
}

fn money(d: Decimal) -> String {
    format!("{:.2}", d)
}

fn energy(d: Decimal) -> String {
    format!("{:.3}", d)
}

fn flag_to_pb(kind: FlagKind) -> i32 {
    (match kind {
        FlagKind::EnergyAboveRated => pb::FlagKind::EnergyAboveRated,
        FlagKind::RegisterBackwards => pb::FlagKind::RegisterBackwards,
        FlagKind::ZeroEnergy => pb::FlagKind::ZeroEnergy,
        FlagKind::Overlap => pb::FlagKind::Overlap,
        FlagKind::NeverEnded => pb::FlagKind::NeverEnded,
        FlagKind::DuplicateOrderId => pb::FlagKind::DuplicateOrderId,
        FlagKind::AmountMismatch => pb::FlagKind::AmountMismatch,
        FlagKind::CustomerDispute => pb::FlagKind::CustomerDispute,
        FlagKind::NeverStarted => pb::FlagKind::NeverStarted,
    }) as i32
}

fn order_to_pb(o: &ChargeOrder) -> pb::ChargeOrder {
    let s = o.settlement.as_ref();
    let by_label = |label| {
        s.map(|s| energy(s.energy_by_label(label)))
            .unwrap_or_default()
    };
    pb::ChargeOrder {
        operator_id: o.operator_id.clone(),
        order_id: o.order_id.clone(),
        version: o.version,
        station_id: o.station_id.clone(),
        pile_id: o.pile_id.clone(),
        connector_id: o.connector_id.clone(),
        start_time: Some(to_timestamp(o.start)),
        end_time: opt_timestamp(o.end),
        stop_reason: o.stop_reason,
        samples: o
            .samples
            .iter()
            .map(|x| pb::MeterSample {
                sample_time: Some(to_timestamp(x.at)),
                register_kwh: energy(x.register_kwh),
            })
            .collect(),
        steps: Some(pb::ChargingSteps {
            connector_checked: o.steps.connector_checked,
            charging_confirmed: o.steps.charging_confirmed,
            end_confirmed: o.steps.end_confirmed,
            physically_separated: o.steps.physically_separated,
        }),
        billable: o.billable,
        not_billable_reason: o.not_billable_reason.clone().unwrap_or_default(),
        energy_kwh: s.map(|s| energy(s.energy_kwh)).unwrap_or_default(),
        electricity_money: s.map(|s| money(s.electricity_money)).unwrap_or_default(),
        service_money: s.map(|s| money(s.service_money)).unwrap_or_default(),
        total_money: s.map(|s| money(s.total_money)).unwrap_or_default(),
        details: s
            .map(|s| {
                s.details
                    .iter()
                    .map(|d| pb::ChargeDetail {
                        start_time: Some(to_timestamp(d.start)),
                        end_time: Some(to_timestamp(d.end)),
                        label: label_to_pb(d.label),
                        tariff_version: d.tariff_version,
                        electricity_price: format!("{:.4}", d.electricity_price),
                        service_fee: format!("{:.4}", d.service_fee),
                        energy_kwh: energy(d.energy_kwh),
                        electricity_money: money(d.electricity_money),
                        service_money: money(d.service_money),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        flags: o
            .flags
            .iter()
            .map(|f| pb::AbnormalFlag {
                kind: flag_to_pb(f.kind),
                detail: f.detail.clone(),
            })
            .collect(),
        reported_energy_kwh: o.reported.map(|(e, _)| energy(e)).unwrap_or_default(),
        // As reported: a platform's 2 places, a pile's 4 (YKC).
        reported_total_money: o
            .reported
            .map(|(_, m)| {
                if m.scale() > 2 {
                    m.to_string()
                } else {
                    money(m)
                }
            })
            .unwrap_or_default(),
        correction_reason: o.correction_reason.clone().unwrap_or_default(),
        recorded_by: o.recorded_by.clone(),
        record_time: Some(to_timestamp(o.recorded_at)),
        area_code: o.area_code.clone(),
        verified_flags: o.verified_flags.iter().map(|k| flag_to_pb(*k)).collect(),
        authorization_ref: o.authorization_ref.clone(),
        any_token: o.any_token,
        cusp_energy_kwh: by_label(PeriodLabel::Cusp),
        peak_energy_kwh: by_label(PeriodLabel::Peak),
        flat_energy_kwh: by_label(PeriodLabel::Flat),
        valley_energy_kwh: by_label(PeriodLabel::Valley),
    }
}

impl MeteringApi {
    pub fn new(engine: Engine) -> Self {
        Self { engine }
    }

    pub fn into_server(self) -> MeteringServiceServer<Self> {
        MeteringServiceServer::new(self)
    }

    /// REQ SETTLE-1, BASE-5, MON-9: a whole session as a platform reports it.
    async fn report(
        &self,
        p: &Principal,
        r: pb::ReportChargeOrderRequest,
    ) -> Result<ChargeOrder, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let order_id = r.order_id.trim().to_owned();
        check_order_id("order_id", &order_id, &op)?;
        if !(0..=MAX_STOP_REASON).contains(&r.stop_reason) {
            return Err(Error::bad_field(
                "stop_reason",
                "must be a T/CEC 102 StopReason code, 0 to 99",
            ));
        }
        let start = time("start_time", r.start_time.as_ref())?;
        let end = time("end_time", r.end_time.as_ref())?;
        bounds::check_session(start, end)?;
        let samples = samples("samples", &r.samples)?;
        if samples.len() < 2 {
            return Err(Error::invalid(
                "samples",
                "SETTLE-1",
                "a session carries its meter start and meter stop at least",
            ));
        }
        if samples.iter().any(|s| s.at < start || s.at > end) {
            return Err(Error::bad_field(
                "samples",
                "every reading lies within the session's start and end",
            ));
        }
        let reported = match (r.reported_energy_kwh.trim(), r.reported_total_money.trim()) {
            ("", "") => None,
            (e, m) => {
                let (energy, money) = (
                    decimal("reported_energy_kwh", e, 3)?,
                    decimal("reported_total_money", m, 2)?,
                );
                bounds::check_reported(energy, money)?;
                Some((energy, money))
            }
        };
        let pile_id = r.pile_id.trim().to_owned();
        let context = self.engine.context(&op, &pile_id, start).await?;
        if !r.station_id.trim().is_empty() && r.station_id.trim() != context.station_id {
            return Err(Error::bad_field(
                "station_id",
                format!("pile {pile_id} is at station {}", context.station_id),
            ));
        }
        if let Principal::Station { station_id, .. } = p
            && *station_id != context.station_id
        {
            return Err(Error::NotFound(format!("pile {op}/{pile_id}")));
        }
        let connector_id = r.connector_id.trim().to_owned();
        if !context.connectors.contains(&connector_id) {
            return Err(Error::bad_field(
                "connector_id",
                format!("{connector_id} is not a connector of pile {pile_id}"),
            ));
        }
        let steps = r.steps.unwrap_or_default();
        let order = ChargeOrder {
            operator_id: op.clone(),
            order_id: order_id.clone(),
            version: 1,
            station_id: context.station_id.clone(),
            pile_id,
            connector_id,
            area_code: context.area_code.clone(),
            start,
            end: Some(end),
            stop_reason: r.stop_reason,
            samples,
            steps: ChargingSteps {
                connector_checked: steps.connector_checked,
                charging_confirmed: steps.charging_confirmed,
                end_confirmed: steps.end_confirmed,
                physically_separated: steps.physically_separated,
            },
            billable: false,
            not_billable_reason: None,
            settlement: None,
            flags: Vec::new(),
            reported,
            correction_reason: None,
            verified_flags: Vec::new(),
            authorization_ref: String::new(),
            any_token: false,
            recorded_by: p.to_string(),
            recorded_at: self.engine.clock.now(),
        };
        // A resend of the same session is answered with the order as kept; another session
        // under a used id is refused, so nothing is overwritten (REQ MON-9, REC-2).
        if let Some(first) = self.engine.store.order(&op, &order_id, Some(1)).await? {
            if first.same_session(&order) {
                // As it stands now, corrections included.
                return self
                    .engine
                    .store
                    .order(&op, &order_id, None)
                    .await?
                    .ok_or_else(|| Error::Conflict(format!("order {order_id}")));
            }
            return Err(Error::AlreadyExists(format!(
                "order {order_id} for another session (REQ MON-9: duplicate order id)"
            )));
        }
        match self.engine.record(order, &context, false).await {
            Err(Error::Store(chargemesh_kit::db::StoreError::Unique(_))) => self
                .engine
                .store
                .order(&op, &order_id, None)
                .await?
                .ok_or_else(|| Error::Conflict(format!("order {order_id}"))),
            other => other,
        }
    }

    /// T/CEC 102 query_start_charge: gated by the pile's state and its meter's verification
    /// now (REQ MON-4, MON-6, BASE-5), then the order id is assigned and the pile told.
    async fn start(
        &self,
        p: &Principal,
        r: pb::StartChargeRequest,
    ) -> Result<pb::StartChargeResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let pile_id = r.pile_id.trim();
        let connector_id = r.connector_id.trim();
        if r.authorization_ref.trim().is_empty() {
            return Err(Error::bad_field(
                "authorization_ref",
                "the user's authorisation is required",
            ));
        }
        let now = self.engine.clock.now();
        let context = self.engine.context(&op, pile_id, now).await?;
        if let Principal::Station { station_id, .. } = p
            && *station_id != context.station_id
        {
            return Err(Error::NotFound(format!("pile {op}/{pile_id}")));
        }
        match context.pile_state {
            asset::PileState::Suspended => {
                return Err(Error::precondition(
                    "MON-4",
                    format!("pile {pile_id} is suspended"),
                ));
            }
            asset::PileState::Retired => {
                return Err(Error::precondition(
                    "MON-6",
                    format!("pile {pile_id} is retired"),
                ));
            }
            _ => {}
        }
        if let Err(reason) = &context.pile.eligibility {
            return Err(Error::precondition(
                "BASE-5",
                format!("pile {pile_id} cannot charge for settlement: {reason}"),
            ));
        }
        if !context.connectors.iter().any(|c| c == connector_id) {
            return Err(Error::bad_field(
                "connector_id",
                format!("{connector_id} is not a connector of pile {pile_id}"),
            ));
        }
        let entropy = u64::try_from(uuid::Uuid::now_v7().as_u128() & u128::from(u64::MAX))
            .unwrap_or_default();
        let order_id = new_order_id(&op, now, entropy);
        let command_id = self
            .engine
            .send_start(
                &op,
                pile_id,
                connector_id,
                &order_id,
                r.authorization_ref.trim(),
            )
            .await?;
        Ok(pb::StartChargeResponse {
            order_id,
            command_id,
        })
    }

    async fn visible(
        &self,
        p: &Principal,
        operator_id: &str,
        order_id: &str,
        version: Option<u32>,
    ) -> Result<ChargeOrder, Error> {
        let op = match p {
            Principal::Regulator { .. } => operator_id.trim().to_owned(),
            _ => operator_for(p, operator_id)?,
        };
        let what = || format!("charge order {op}/{}", order_id.trim());
        let order = self
            .engine
            .store
            .order(&op, order_id.trim(), version)
            .await?
            .ok_or_else(|| Error::NotFound(what()))?;
        if !may_read(p, &order) {
            return Err(Error::NotFound(what()));
        }
        Ok(order)
    }

    /// The latest versions the caller may see: its own, or its area's for a regulator.
    pub(crate) async fn list(
        &self,
        p: &Principal,
        r: pb::ListChargeOrdersRequest,
    ) -> Result<pb::ListChargeOrdersResponse, Error> {
        let limit = page_size(r.page_size)?;
        let mut query = OrderQuery {
            station_id: Some(r.station_id.trim().to_owned()).filter(|s| !s.is_empty()),
            from: r.start_time.as_ref().and_then(from_timestamp),
            to: r.end_time.as_ref().and_then(from_timestamp),
            flagged_only: r.flagged_only,
            recorded_since: r.updated_since.as_ref().and_then(from_timestamp),
            limit,
            ..OrderQuery::default()
        };
        match p {
            Principal::Regulator { area_code } => {
                query.area_prefix = Some(area_prefix(area_code).to_owned());
                query.operator_id = Some(r.operator_id.trim().to_owned()).filter(|s| !s.is_empty());
            }
            Principal::Station { station_id, .. } => {
                query.operator_id = Some(operator_for(p, &r.operator_id)?);
                query.station_id = Some(station_id.clone());
            }
            _ => query.operator_id = Some(operator_for(p, &r.operator_id)?),
        }
        if let Some(parts) = decode_token(&r.page_token, 3)? {
            let start = DateTime::parse_from_rfc3339(&parts[0])
                .map_err(|_| Error::bad_field("page_token", "is not a token of this listing"))?
                .to_utc();
            query.after = Some((start, parts[1].clone(), parts[2].clone()));
        }
        let orders = self.engine.store.orders(&query).await?;
        let next_page_token = match orders.last() {
            Some(last) if orders.len() as u32 >= limit => {
                encode_token(&[&last.start.to_rfc3339(), &last.operator_id, &last.order_id])
            }
            _ => String::new(),
        };
        Ok(pb::ListChargeOrdersResponse {
            orders: orders.iter().map(order_to_pb).collect(),
            next_page_token,
        })
    }

    /// REQ MON-9, REC-2: a correction is a new version, evaluated again.
    async fn correct(
        &self,
        p: &Principal,
        r: pb::CorrectChargeOrderRequest,
    ) -> Result<ChargeOrder, Error> {
        let current = self.visible(p, &r.operator_id, &r.order_id, None).await?;
        let correction = Correction {
            reason: r.reason.clone(),
            samples: if r.samples.is_empty() {
                None
            } else {
                Some(samples("samples", &r.samples)?)
            },
            end: match &r.end_time {
                Some(_) => Some(time("end_time", r.end_time.as_ref())?),
                None => None,
            },
        };
        let next = current.corrected(correction, &p.to_string(), self.engine.clock.now())?;
        if let Some(end) = next.end {
            bounds::check_session(next.start, end)?;
        }
        let context = self
            .engine
            .context(&next.operator_id, &next.pile_id, next.start)
            .await?;
        match self.engine.record(next, &context, false).await {
            Err(Error::Store(chargemesh_kit::db::StoreError::Unique(_))) => Err(Error::Conflict(
                format!("charge order {}", current.order_id),
            )),
            other => other,
        }
    }

    /// REQ MON-9: a customer's dispute flags the order, as a new version.
    async fn dispute(
        &self,
        p: &Principal,
        r: pb::DisputeChargeOrderRequest,
    ) -> Result<ChargeOrder, Error> {
        let current = self.visible(p, &r.operator_id, &r.order_id, None).await?;
        let Some(next) = current.disputed(&r.reason, &p.to_string(), self.engine.clock.now())?
        else {
            return Ok(current);
        };
        match self.engine.store.insert(&next).await {
            Ok(()) => Ok(next),
            Err(chargemesh_kit::db::StoreError::Unique(_)) => Err(Error::Conflict(format!(
                "charge order {}",
                current.order_id
            ))),
            Err(other) => Err(other.into()),
        }
    }

    /// T/CEC 102 check_charge_orders.
    async fn reconcile(
        &self,
        p: &Principal,
        r: pb::ReconcileChargeOrdersRequest,
    ) -> Result<pb::ReconcileChargeOrdersResponse, Error> {
        let op = operator_for(p, &r.operator_id)?;
        let from = time("start_time", r.start_time.as_ref())?;
        let to = time("end_time", r.end_time.as_ref())?;
        if to <= from {
            return Err(Error::bad_field("end_time", "is not after start_time"));
        }
        let theirs = r
            .orders
            .iter()
            .enumerate()
            .map(|(i, o)| {
                Ok((
                    o.order_id.as_str(),
                    decimal(&format!("orders[{i}].energy_kwh"), &o.energy_kwh, 3)?,
                    decimal(&format!("orders[{i}].total_money"), &o.total_money, 2)?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut ours = Vec::new();
        let mut query = OrderQuery {
            operator_id: Some(op),
            from: Some(from),
            to: Some(to),
            limit: 1000,
            ..OrderQuery::default()
        };
        loop {
            let page = self.engine.store.orders(&query).await?;
            let full = page.len() >= 1000;
            query.after = page
                .last()
                .map(|o| (o.start, o.operator_id.clone(), o.order_id.clone()));
            ours.extend(page);
            if !full {
                break;
            }
        }
        let billable: Vec<(&str, Decimal, Decimal)> = ours
            .iter()
            .filter_map(|o| {
                o.billable_totals()
                    .map(|(e, m)| (o.order_id.as_str(), e, m))
            })
            .collect();
        let result = reconcile(&billable, &theirs);
        Ok(pb::ReconcileChargeOrdersResponse {
            check_order_seq: r.check_order_seq.clone(),
            order_count: u32::try_from(result.order_count).unwrap_or(u32::MAX),
            energy_kwh: energy(result.energy_kwh),
            total_money: money(result.total_money),
            dispute_count: u32::try_from(result.disputes.len()).unwrap_or(u32::MAX),
            dispute_energy_kwh: energy(result.dispute_energy_kwh),
            dispute_money: money(result.dispute_money),
            disputes: result
                .disputes
                .iter()
                .map(|d| pb::Dispute {
                    order_id: d.order_id.to_owned(),
                    reason: (match d.reason {
                        Reason::NotFound => pb::DisputeReason::NotFound,
                        Reason::MoneyDiffers => pb::DisputeReason::MoneyDiffers,
                        Reason::EnergyDiffers => pb::DisputeReason::EnergyDiffers,
                    }) as i32,
                    energy_kwh: d.ours.map(|(e, _)| energy(e)).unwrap_or_default(),
                    total_money: d.ours.map(|(_, m)| money(m)).unwrap_or_default(),
                })
                .collect(),
        })
    }
}

#[tonic::async_trait]
impl MeteringService for MeteringApi {
    async fn report_charge_order(
        &self,
        request: Request<pb::ReportChargeOrderRequest>,
    ) -> Reply<pb::ReportChargeOrderResponse> {
        let p = principal(&request)?;
        reply(
            self.report(&p, request.into_inner())
                .await
                .map(|o| pb::ReportChargeOrderResponse {
                    order: Some(order_to_pb(&o)),
                }),
        )
    }

    async fn start_charge(
        &self,
        request: Request<pb::StartChargeRequest>,
    ) -> Reply<pb::StartChargeResponse> {
        let p = principal(&request)?;
        reply(self.start(&p, request.into_inner()).await)
    }

    async fn get_charge_order(
        &self,
        request: Request<pb::GetChargeOrderRequest>,
    ) -> Reply<pb::GetChargeOrderResponse> {
        let p = principal(&request)?;
        let r = request.into_inner();
        let result = async {
            let wanted = Some(r.version).filter(|v| *v > 0);
            let order = self
                .visible(&p, &r.operator_id, &r.order_id, wanted)
                .await?;
            let latest = match wanted {
                None => order.version,
                Some(_) => {
                    self.visible(&p, &r.operator_id, &r.order_id, None)
                        .await?
                        .version
                }
            };
            Ok(pb::GetChargeOrderResponse {
                order: Some(order_to_pb(&order)),
                latest_version: latest,
            })
        };
        reply(result.await)
    }

    async fn list_charge_orders(
        &self,
        request: Request<pb::ListChargeOrdersRequest>,
    ) -> Reply<pb::ListChargeOrdersResponse> {
        let p = principal(&request)?;
        reply(self.list(&p, request.into_inner()).await)
    }

    async fn correct_charge_order(
        &self,
        request: Request<pb::CorrectChargeOrderRequest>,
    ) -> Reply<pb::CorrectChargeOrderResponse> {
        let p = principal(&request)?;
        reply(self.correct(&p, request.into_inner()).await.map(|o| {
            pb::CorrectChargeOrderResponse {
                order: Some(order_to_pb(&o)),
            }
        }))
    }

    async fn dispute_charge_order(
        &self,
        request: Request<pb::DisputeChargeOrderRequest>,
    ) -> Reply<pb::DisputeChargeOrderResponse> {
        let p = principal(&request)?;
        reply(self.dispute(&p, request.into_inner()).await.map(|o| {
            pb::DisputeChargeOrderResponse {
                order: Some(order_to_pb(&o)),
            }
        }))
    }

    async fn reconcile_charge_orders(
        &self,
        request: Request<pb::ReconcileChargeOrdersRequest>,
    ) -> Reply<pb::ReconcileChargeOrdersResponse> {
        let p = principal(&request)?;
        reply(self.reconcile(&p, request.into_inner()).await)
    }
}
