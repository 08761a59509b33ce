//! Work orders on their clocks (REQ FAULT-5: arrival within 1 h in the main urban area and 2 h
//! elsewhere, repair within 4 h, both from receipt): the open orders with live countdowns, the
//! most urgent first and breaches highlighted; an order's page with the step its state and the
//! person's role allow: dispatch to a crew (monitor, station master, O&M manager; REQ FAULT-1
//! is the dispatch component's check), check-in on site and resolution (repairer), confirmation
//! (monitor, REQ FAULT-8). A refused step shows the API's reason with the input kept.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use chargemesh_proto::dispatch::v1 as pb;

use crate::form::Form;
use crate::i18n::{Lang, local};
use crate::mesh::as_person;
use crate::pages::clock::{Clock, clock_cell, time};
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::Saved;
use crate::session::{Person, Session};
use crate::web::Shared;

/// REQ FAULT-5, FAULT-6: an order's clocks (a follow-up has no arrival limit).
pub fn clocks(order: &pb::WorkOrder) -> Vec<Clock> {
    let mut out = Vec::new();
    if let Some(due) = time(&order.arrival_due_time) {
        out.push(Clock {
            what: "arrival",
            due,
            met: time(&order.arrive_time),
        });
    }
    if let Some(due) = time(&order.resolution_due_time) {
        out.push(Clock {
            what: "resolution",
            due,
            met: time(&order.resolve_time),
        });
    }
    out
}

/// How urgent an order is, for the list: breached first, then the nearest unmet limit.
pub fn urgency(order: &pb::WorkOrder, now: DateTime<Utc>) -> (bool, i64) {
    let clocks = clocks(order);
    let breached = clocks.iter().any(|c| c.breached(now));
    let nearest = clocks
        .iter()
        .filter_map(|c| c.remaining(now))
        .min()
        .unwrap_or(i64::MAX);
    (!breached, nearest)
}

/// A step on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Dispatch,
    CheckIn,
    Resolve,
    Confirm,
}

impl Step {
    fn path(self) -> &'static str {
        match self {
            Self::Dispatch => "dispatch",
            Self::CheckIn => "check-in",
            Self::Resolve => "resolve",
            Self::Confirm => "confirm",
        }
    }

    fn from_path(path: &str) -> Option<Self> {
        [Self::Dispatch, Self::CheckIn, Self::Resolve, Self::Confirm]
            .into_iter()
            .find(|s| s.path() == path)
    }
}

/// The steps `person` may take on an order in `state`: only what the gateway's policy lets
/// their role do is offered.
pub fn steps(person: &Person, state: pb::WorkOrderState) -> Vec<Step> {
    use pb::WorkOrderState as S;
    let mut out = Vec::new();
    match state {
        S::Received if person.any_role(&["monitor", "station_master", "om_manager"]) => {
            out.push(Step::Dispatch);
        }
        S::Dispatched if person.has_role("repairer") => out.push(Step::CheckIn),
        S::Arrived if person.has_role("repairer") => out.push(Step::Resolve),
        S::Resolved if person.has_role("monitor") => out.push(Step::Confirm),
        _ => {}
    }
    out
}

fn state_name(lang: Lang, state: i32) -> &'static str {
    use pb::WorkOrderState as S;
    match S::try_from(state) {
        Ok(S::Received) => lang.t("state.received"),
        Ok(S::Dispatched) => lang.t("state.dispatched"),
        Ok(S::Arrived) => lang.t("state.arrived"),
        Ok(S::Resolved) => lang.t("state.resolved"),
        Ok(S::Closed) => lang.t("state.closed"),
        _ => "?",
    }
}

fn refused(status: &tonic::Status) -> Notice {
    Notice::Refused(status.message().to_owned())
}

/// GET /work-orders: the open orders, most urgent first.
pub async fn list(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/work-orders") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let listed = app
        .gateway
        .dispatch()
        .list_work_orders(as_person(
            &session.token,
            pb::ListWorkOrdersRequest {
                operator_id: session.person.operator_id.clone(),
                open_only: true,
                page_size: 500,
                ..Default::default()
            },
        ))
        .await;
    let (mut orders, notice) = match listed {
        Ok(listed) => (listed.into_inner().work_orders, None),
        Err(status) => (Vec::new(), Some(refused(&status))),
    };
    let now = Utc::now();
    orders.sort_by_key(|o| urgency(o, now));
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let body = html! {
        @if orders.is_empty() {
            p { (t("wo.none")) }
        } @else {
            table.orders {
                thead { tr {
                    th { (t("wo.order")) } th { (t("wo.station")) } th { (t("wo.fault")) }
                    th { (t("wo.state")) } th { (t("wo.arrival_due")) } th { (t("wo.resolution_due")) }
                } }
                tbody {
                    @for order in &orders {
                        @let clocks = clocks(order);
                        tr.breached[clocks.iter().any(|c| c.breached(now))] {
                            td { a href={ "/work-orders/" (order.order_id) } { (order.order_id) } }
                            td { (order.station_id) " / " (order.pile_id) }
                            td { (order.fault_code) " " (order.description) }
                            td { (state_name(lang, order.state)) }
                            td { (clock_cell(lang, clocks.iter().find(|c| c.what == "arrival"), now)) }
                            td { (clock_cell(lang, clocks.iter().find(|c| c.what == "resolution"), now)) }
                        }
                    }
                }
            }
        }
    };
    page(&ctx, t("wo.title"), notice.as_ref(), body).into_response()
}

/// GET /work-orders/{id}: the order, its clocks and the steps the person may take.
pub async fn detail(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/work-orders/{id}");
    let (ctx, session) = match app.signed_in(&headers, &path) {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let notice = saved.notice();
    render_detail(
        &app,
        &ctx,
        &session,
        &id,
        notice,
        &Form::default(),
        StatusCode::OK,
    )
    .await
}

/// POST /work-orders/{id}/{step}: takes the step; the order's page again, with the API's
/// reason and the input kept when it is refused.
pub async fn act(
    State(app): State<Shared>,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/work-orders/{id}");
    let (ctx, session, form) = match app.posted(&headers, &path, &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let Some(step) = Step::from_path(&step) else {
        return (StatusCode::NOT_FOUND, ctx.lang.t("error.not_found")).into_response();
    };
    let operator_id = session.person.operator_id.clone();
    let token = session.token.as_str();
    let mut dispatch = app.gateway.dispatch();
    let done = match step {
        Step::Dispatch => dispatch
            .dispatch_work_order(as_person(
                token,
                pb::DispatchWorkOrderRequest {
                    operator_id,
                    order_id: id.clone(),
                    crew: form.all("crew"),
                    risk: risk_of(form.get("risk")) as i32,
                },
            ))
            .await
            .map(drop),
        Step::CheckIn => match (
            coordinate(&form, "longitude"),
            coordinate(&form, "latitude"),
        ) {
            (Ok(longitude), Ok(latitude)) => dispatch
                .check_in_work_order(as_person(
                    token,
                    pb::CheckInWorkOrderRequest {
                        operator_id,
                        order_id: id.clone(),
                        longitude,
                        latitude,
                    },
                ))
                .await
                .map(drop),
            (Err(status), _) | (_, Err(status)) => Err(status),
        },
        Step::Resolve => dispatch
            .resolve_work_order(as_person(
                token,
                pb::ResolveWorkOrderRequest {
                    operator_id,
                    order_id: id.clone(),
                    test_record: form.get("test_record").to_owned(),
                },
            ))
            .await
            .map(drop),
        Step::Confirm => dispatch
            .confirm_work_order(as_person(
                token,
                pb::ConfirmWorkOrderRequest {
                    operator_id,
                    order_id: id.clone(),
                },
            ))
            .await
            .map(drop),
    };
    match done {
        Ok(()) => Redirect::to(&format!("{path}?saved=1")).into_response(),
        Err(status) => {
            let code = match status.code() {
                tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                    StatusCode::FORBIDDEN
                }
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            render_detail(
                &app,
                &ctx,
                &session,
                &id,
                Some(refused(&status)),
                &form,
                code,
            )
            .await
        }
    }
}

fn risk_of(value: &str) -> pb::Risk {
    match value {
        "high_voltage" => pb::Risk::HighVoltage,
        "work_at_height" => pb::Risk::WorkAtHeight,
        _ => pb::Risk::Normal,
    }
}

/// A coordinate from the form, or the reason in the API's terms.
fn coordinate(form: &Form, field: &'static str) -> Result<f64, tonic::Status> {
    form.get(field)
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| tonic::Status::invalid_argument(format!("{field}: a number in degrees")))
}

async fn render_detail(
    app: &Shared,
    ctx: &Ctx,
    session: &Session,
    id: &str,
    notice: Option<Notice>,
    kept: &Form,
    code: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let got = app
        .gateway
        .dispatch()
        .get_work_order(as_person(
            &session.token,
            pb::GetWorkOrderRequest {
                operator_id: session.person.operator_id.clone(),
                order_id: id.to_owned(),
            },
        ))
        .await;
    let order = match got.map(|r| r.into_inner().work_order) {
        Ok(Some(order)) => order,
        Ok(None) => return (StatusCode::NOT_FOUND, t("error.not_found")).into_response(),
        Err(status) => {
            let body = html! { p { a href="/work-orders" { (t("wo.back")) } } };
            let code = if status.code() == tonic::Code::NotFound {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_GATEWAY
            };
            return (code, page(ctx, id, Some(&refused(&status)), body)).into_response();
        }
    };
    let state = pb::WorkOrderState::try_from(order.state).unwrap_or_default();
    let steps = steps(&session.person, state);
    let crew_choices = if steps.contains(&Step::Dispatch) {
        crew_choices(app, session).await
    } else {
        Vec::new()
    };
    let now = Utc::now();
    let clocks = clocks(&order);
    let body = html! {
        dl.order {
            dt { (t("wo.station")) } dd { (order.station_id) }
            dt { (t("wo.pile")) } dd { (order.pile_id) " " (order.connector_id) }
            dt { (t("wo.fault")) } dd { (order.fault_code) " " (order.description) }
            dt { (t("wo.state")) } dd.state { (state_name(lang, order.state)) }
            dt { (t("wo.received")) } dd { (time(&order.receive_time).map(local).unwrap_or_default()) }
            dt { (t("wo.arrival_due")) }
            dd { (clock_cell(lang, clocks.iter().find(|c| c.what == "arrival"), now)) }
            dt { (t("wo.resolution_due")) }
            dd { (clock_cell(lang, clocks.iter().find(|c| c.what == "resolution"), now)) }
            dt { (t("wo.crew")) } dd { (order.crew.join(", ")) }
        }
        @for step in &steps {
            (step_form(lang, &session.csrf, id, *step, kept, &crew_choices))
        }
        p { a href="/work-orders" { (t("wo.back")) } }
    };
    (
        code,
        page(
            ctx,
            &format!("{} {}", t("wo.order"), id),
            notice.as_ref(),
            body,
        ),
    )
        .into_response()
}

/// The operator's staff a crew is picked from: (staff id, name).
async fn crew_choices(app: &Shared, session: &Session) -> Vec<(String, String)> {
    app.gateway
        .dispatch()
        .list_staff_members(as_person(
            &session.token,
            pb::ListStaffMembersRequest {
                operator_id: session.person.operator_id.clone(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await
        .map(|r| {
            r.into_inner()
                .staff_members
                .into_iter()
                .map(|m| (m.staff_id, m.name))
                .collect()
        })
        .unwrap_or_default()
}

fn step_form(
    lang: Lang,
    csrf: &str,
    id: &str,
    step: Step,
    kept: &Form,
    crew: &[(String, String)],
) -> Markup {
    let t = |key| lang.t(key);
    let action = format!("/work-orders/{id}/{}", step.path());
    let chosen = kept.all("crew");
    html! {
        form.step method="post" action=(action) {
            input type="hidden" name="csrf" value=(csrf);
            @match step {
                Step::Dispatch => {
                    fieldset {
                        legend { (t("wo.dispatch.crew")) }
                        @for (staff_id, name) in crew {
                            label {
                                input type="checkbox" name="crew" value=(staff_id)
                                    checked[chosen.contains(staff_id)];
                                " " (name) " (" (staff_id) ")"
                            }
                        }
                    }
                    label for="risk" { (t("wo.dispatch.risk")) }
                    select id="risk" name="risk" {
                        @for (value, key) in [("normal", "risk.normal"), ("high_voltage", "risk.high_voltage"), ("work_at_height", "risk.work_at_height")] {
                            option value=(value) selected[kept.get("risk") == value] { (t(key)) }
                        }
                    }
                    button type="submit" { (t("wo.dispatch")) }
                }
                Step::CheckIn => {
                    fieldset {
                        legend { (t("wo.checkin.where")) }
                        label for="longitude" { (t("wo.longitude")) }
                        input id="longitude" name="longitude" inputmode="decimal" required
                            value=(kept.get("longitude"));
                        label for="latitude" { (t("wo.latitude")) }
                        input id="latitude" name="latitude" inputmode="decimal" required
                            value=(kept.get("latitude"));
                        button type="button" data-locate hidden { (t("wo.checkin.locate")) }
                    }
                    button type="submit" { (t("wo.checkin")) }
                }
                Step::Resolve => {
                    label for="test_record" { (t("wo.test_record")) }
                    textarea id="test_record" name="test_record" rows="4" required {
                        (kept.get("test_record"))
                    }
                    button type="submit" { (t("wo.resolve")) }
                }
                Step::Confirm => {
                    button type="submit" { (t("wo.confirm")) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> Option<prost_types::Timestamp> {
        let t = DateTime::from_timestamp(1_780_000_000 + minutes * 60, 0).expect("time");
        Some(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        })
    }

    fn person(roles: &[&str]) -> Person {
        Person {
            subject: "p".into(),
            name: "P".into(),
            operator_id: "OP".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn fault_5_an_unmet_limit_past_due_is_breached_and_a_met_one_late_stays_breached() {
        let order = pb::WorkOrder {
            receive_time: at(0),
            arrival_due_time: at(60),
            resolution_due_time: at(240),
            arrive_time: at(75),
            ..Default::default()
        };
        let clocks = clocks(&order);
        let now = |m: i64| DateTime::from_timestamp(1_780_000_000 + m * 60, 0).expect("now");
        assert_eq!(clocks.len(), 2);
        assert!(clocks[0].breached(now(80)), "arrived 15 min late");
        assert_eq!(clocks[0].remaining(now(80)), None, "met");
        assert!(!clocks[1].breached(now(80)));
        assert_eq!(clocks[1].remaining(now(80)), Some(160 * 60));
        assert!(clocks[1].breached(now(241)), "unmet past 4 h");
        assert_eq!(clocks[1].remaining(now(241)), Some(-60));
    }

    #[test]
    fn fault_6_a_follow_up_has_no_arrival_clock() {
        let order = pb::WorkOrder {
            resolution_due_time: at(5 * 24 * 60),
            ..Default::default()
        };
        let clocks = clocks(&order);
        assert_eq!(clocks.len(), 1);
        assert_eq!(clocks[0].what, "resolution");
    }

    #[test]
    fn fault_5_breached_orders_come_first_then_the_nearest_limit() {
        let now = DateTime::from_timestamp(1_780_000_000 + 90 * 60, 0).expect("now");
        let late = pb::WorkOrder {
            arrival_due_time: at(60),
            resolution_due_time: at(240),
            ..Default::default()
        };
        let soon = pb::WorkOrder {
            arrival_due_time: at(100),
            resolution_due_time: at(280),
            ..Default::default()
        };
        let later = pb::WorkOrder {
            arrival_due_time: at(150),
            resolution_due_time: at(330),
            ..Default::default()
        };
        let mut orders = [later.clone(), soon.clone(), late.clone()];
        orders.sort_by_key(|o| urgency(o, now));
        assert_eq!(orders, [late, soon, later]);
    }

    #[test]
    fn each_role_is_offered_only_the_steps_its_post_may_take() {
        use pb::WorkOrderState as S;
        let monitor = person(&["monitor"]);
        let repairer = person(&["repairer"]);
        let handler = person(&["complaint_handler"]);
        assert_eq!(steps(&monitor, S::Received), [Step::Dispatch]);
        assert_eq!(steps(&repairer, S::Received), []);
        assert_eq!(steps(&repairer, S::Dispatched), [Step::CheckIn]);
        assert_eq!(steps(&repairer, S::Arrived), [Step::Resolve]);
        assert_eq!(steps(&monitor, S::Resolved), [Step::Confirm], "REQ FAULT-8");
        assert_eq!(steps(&repairer, S::Resolved), []);
        assert_eq!(steps(&handler, S::Received), []);
        assert_eq!(steps(&monitor, S::Closed), []);
        assert_eq!(
            steps(&person(&["station_master"]), S::Received),
            [Step::Dispatch]
        );
        assert_eq!(steps(&monitor, S::Dispatched), [], "dispatched once");
    }
}
