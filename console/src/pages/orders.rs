//! Abnormal transactions (REQ MON-9: the monitor verifies every flagged order and corrects the
//! wrong ones, each correction a new version with its reason): the flagged orders with what
//! raised each flag, and for the posts the gateway lets correct (monitor, O&M manager) the two
//! answers: verified normal, or the meter's stop reading corrected.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use chargemesh_proto::metering::v1 as pb;

use crate::form::Form;
use crate::i18n::{Lang, local};
use crate::mesh::as_person;
use crate::pages::clock::time;
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::{Saved, or_reason, settle};
use crate::session::Session;
use crate::web::Shared;

/// Who verifies and corrects (the gateway's policy has the last word).
const CORRECTORS: [&str; 2] = ["monitor", "om_manager"];

pub fn flag_name(lang: Lang, kind: i32) -> &'static str {
    use pb::FlagKind as F;
    match F::try_from(kind) {
        Ok(F::EnergyAboveRated) => lang.t("ord.flag.above_rated"),
        Ok(F::RegisterBackwards) => lang.t("ord.flag.backwards"),
        Ok(F::ZeroEnergy) => lang.t("ord.flag.zero"),
        Ok(F::Overlap) => lang.t("ord.flag.overlap"),
        Ok(F::NeverEnded) => lang.t("ord.flag.never_ended"),
        Ok(F::DuplicateOrderId) => lang.t("ord.flag.duplicate"),
        Ok(F::AmountMismatch) => lang.t("ord.flag.amount"),
        Ok(F::CustomerDispute) => lang.t("ord.flag.dispute"),
        Ok(F::NeverStarted) => lang.t("ord.flag.never_started"),
        _ => "?",
    }
}

/// The readings with the last (the meter stop) replaced by `stop_kwh`.
pub fn with_stop(samples: &[pb::MeterSample], stop_kwh: &str) -> Vec<pb::MeterSample> {
    let mut out = samples.to_vec();
    if let Some(last) = out.last_mut() {
        last.register_kwh = stop_kwh.to_owned();
    }
    out
}

/// GET /orders: the flagged orders.
pub async fn list(
    State(app): State<Shared>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/orders") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    render(
        &app,
        &ctx,
        &session,
        saved.notice(),
        &Form::default(),
        StatusCode::OK,
    )
    .await
}

async fn render(
    app: &Shared,
    ctx: &Ctx,
    session: &Session,
    notice: Option<Notice>,
    kept: &Form,
    code: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let listed = app
        .gateway
        .metering()
        .list_charge_orders(as_person(
            &session.token,
            pb::ListChargeOrdersRequest {
                operator_id: session.person.operator_id.clone(),
                flagged_only: true,
                page_size: 200,
                ..Default::default()
            },
        ))
        .await;
    let (orders, notice) = or_reason(listed.map(|r| r.into_inner().orders), notice);
    let may = session.person.any_role(&CORRECTORS);
    let body = html! {
        @if orders.is_empty() { p { (t("ord.none")) } }
        @for o in &orders {
            article.pile {
                h3 { (o.order_id) " · " (o.station_id) " " (o.connector_id) }
                ul.flags {
                    @for f in &o.flags {
                        li { strong { (flag_name(lang, f.kind)) } " " (f.detail) }
                    }
                }
                dl.order {
                    dt { (t("ord.time")) }
                    dd { (time(&o.start_time).map(local).unwrap_or_default()) " – " (time(&o.end_time).map(local).unwrap_or_default()) }
                    dt { (t("rep.energy")) } dd { (o.energy_kwh) }
                    dt { (t("ord.money")) } dd { (o.total_money) }
                    @if !o.reported_total_money.is_empty() {
                        dt { (t("ord.reported")) } dd { (o.reported_energy_kwh) " kWh, " (o.reported_total_money) }
                    }
                    dt { (t("ord.version")) } dd { (o.version) }
                }
                @if may {
                    form.step method="post" action={ "/orders/" (o.order_id) "/verify" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        label for={ "reason-" (o.order_id) } { (t("ord.reason")) }
                        input id={ "reason-" (o.order_id) } name="reason" required value=(kept.get("reason"));
                        label for={ "stop-" (o.order_id) } { (t("ord.stop")) }
                        input id={ "stop-" (o.order_id) } name="stop_kwh" inputmode="decimal" value=(kept.get("stop_kwh"));
                        button type="submit" { (t("ord.verify")) }
                    }
                }
            }
        }
    };
    (code, page(ctx, t("ord.title"), notice.as_ref(), body)).into_response()
}

/// POST /orders/{id}/verify: verified normal (no reading given), or the stop reading corrected.
pub async fn verify(
    State(app): State<Shared>,
    Path((order_id, _step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, session, form) = match app.posted(&headers, "/orders", &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let operator_id = session.person.operator_id.clone();
    let mut metering = app.gateway.metering();
    let samples = if form.get("stop_kwh").is_empty() {
        Ok(Vec::new())
    } else {
        metering
            .get_charge_order(as_person(
                &session.token,
                pb::GetChargeOrderRequest {
                    operator_id: operator_id.clone(),
                    order_id: order_id.clone(),
                    version: 0,
                },
            ))
            .await
            .map(|r| {
                r.into_inner()
                    .order
                    .map(|o| with_stop(&o.samples, form.get("stop_kwh")))
                    .unwrap_or_default()
            })
    };
    let done = match samples {
        Ok(samples) => metering
            .correct_charge_order(as_person(
                &session.token,
                pb::CorrectChargeOrderRequest {
                    operator_id,
                    order_id,
                    reason: form.get("reason").to_owned(),
                    samples,
                    end_time: None,
                },
            ))
            .await
            .map(drop),
        Err(status) => Err(status),
    };
    settle(done, "/orders?saved=1", |notice, code| {
        render(&app, &ctx, &session, Some(notice), &form, code)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_9_a_correction_replaces_the_meter_stop_and_keeps_the_rest() {
        let sample = |kwh: &str| pb::MeterSample {
            sample_time: None,
            register_kwh: kwh.into(),
        };
        let corrected = with_stop(
            &[sample("10.000"), sample("11.000"), sample("9.000")],
            "12.500",
        );
        let registers: Vec<&str> = corrected.iter().map(|s| s.register_kwh.as_str()).collect();
        assert_eq!(registers, ["10.000", "11.000", "12.500"]);
        assert!(with_stop(&[], "1.000").is_empty());
        assert_eq!(
            flag_name(Lang::Zh, pb::FlagKind::ZeroEnergy as i32),
            "零电量"
        );
    }
}
