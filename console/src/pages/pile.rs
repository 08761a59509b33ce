//! A pile as the monitor works it: its status history of the last week (REQ MON-1, MON-3) and
//! its suspension with the evidence collected first (REQ MON-4) and resumption (MON-5), for the
//! posts the gateway lets suspend (monitor, station master, O&M manager). A refusal shows the
//! API's reason with the input kept.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::html;

use chargemesh_proto::asset::v1 as asset;
use chargemesh_proto::reporting::v1 as rp;

use crate::form::Form;
use crate::i18n::local;
use crate::mesh::as_person;
use crate::pages::clock::time;
use crate::pages::fleet::status_name;
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::{Saved, settle};
use crate::session::Session;
use crate::web::Shared;

/// Who may suspend and resume (REQ MON-4, MON-5; the gateway's policy has the last word).
const SUSPENDERS: [&str; 3] = ["monitor", "station_master", "om_manager"];

/// The suspension reasons a person picks from.
const REASONS: [(asset::SuspensionReason, &str); 5] = [
    (
        asset::SuspensionReason::UnrepairedFault,
        "pile.reason.fault",
    ),
    (
        asset::SuspensionReason::PlannedMaintenance,
        "pile.reason.maintenance",
    ),
    (
        asset::SuspensionReason::DistributionMaintenance,
        "pile.reason.distribution",
    ),
    (
        asset::SuspensionReason::ExtremeWeather,
        "pile.reason.weather",
    ),
    (asset::SuspensionReason::OtherExternal, "pile.reason.other"),
];

/// GET /fleet/{station}/{pile}.
pub async fn show(
    State(app): State<Shared>,
    Path((station_id, pile_id)): Path<(String, String)>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/fleet/{station_id}/{pile_id}");
    let (ctx, session) = match app.signed_in(&headers, &path) {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let notice = saved.notice();
    let ids = (station_id.as_str(), pile_id.as_str());
    render(
        &app,
        &ctx,
        &session,
        ids,
        notice,
        &Form::default(),
        StatusCode::OK,
    )
    .await
}

async fn render(
    app: &Shared,
    ctx: &Ctx,
    session: &Session,
    (station_id, pile_id): (&str, &str),
    notice: Option<Notice>,
    kept: &Form,
    code: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let operator_id = session.person.operator_id.clone();
    let got = app
        .gateway
        .asset()
        .get_pile(as_person(
            &session.token,
            asset::GetPileRequest {
                operator_id: operator_id.clone(),
                pile_id: pile_id.to_owned(),
            },
        ))
        .await;
    let pile = match got.map(|r| r.into_inner().pile) {
        Ok(Some(pile)) if pile.station_id == station_id => pile,
        Ok(_) => return (StatusCode::NOT_FOUND, t("error.not_found")).into_response(),
        Err(status) => {
            let refused = Notice::Refused(status.message().to_owned());
            return (
                StatusCode::NOT_FOUND,
                page(ctx, pile_id, Some(&refused), html! {}),
            )
                .into_response();
        }
    };
    let week_ago = Utc::now() - chrono::Duration::days(7);
    let history = app
        .gateway
        .reporting()
        .list_status_history(as_person(
            &session.token,
            rp::ListStatusHistoryRequest {
                operator_id,
                station_id: station_id.to_owned(),
                start_time: Some(prost_types::Timestamp {
                    seconds: week_ago.timestamp(),
                    nanos: 0,
                }),
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().changes)
        .unwrap_or_default();
    let mut history: Vec<_> = history
        .into_iter()
        .filter_map(|c| c.status)
        .filter(|s| s.pile_id == pile_id)
        .collect();
    history.reverse();
    let suspended = pile.state == asset::PileState::Suspended as i32;
    let may = session.person.any_role(&SUSPENDERS);
    let action = format!("/fleet/{station_id}/{pile_id}");
    let body = html! {
        dl.order {
            dt { (t("reg.power")) } dd { (pile.rated_power_kw) " kW" }
            dt { (t("reg.pile_state")) }
            dd.state { @if suspended { (t("pub.suspended")) } @else { (t("reg.in_service")) } }
            @if let Some(s) = &pile.suspension {
                dt { (t("pile.evidence")) } dd { (s.evidence_refs.join(", ")) }
            }
        }
        @if may && !suspended {
            form.step method="post" action={ (action) "/suspend" } {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="reason" { (t("pile.reason")) }
                select id="reason" name="reason" {
                    @for (reason, key) in REASONS {
                        option value=(reason as i32) selected[kept.get("reason") == (reason as i32).to_string()] { (t(key)) }
                    }
                }
                label for="evidence" { (t("pile.evidence")) }
                textarea id="evidence" name="evidence" rows="3" required { (kept.get("evidence")) }
                label for="note" { (t("pile.note")) }
                input id="note" name="note" value=(kept.get("note"));
                button type="submit" { (t("pile.suspend")) }
            }
        }
        @if may && suspended {
            form.step method="post" action={ (action) "/resume" } {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="note" { (t("pile.note")) }
                input id="note" name="note" required value=(kept.get("note"));
                button type="submit" { (t("pile.resume")) }
            }
        }
        h2 { (t("pile.history")) }
        @if history.is_empty() { p { (t("pile.no_history")) } }
        @else {
            table.orders {
                thead { tr { th { (t("pile.time")) } th { (t("pile.connector")) } th { (t("wo.state")) } th { (t("wo.fault")) } } }
                tbody {
                    @for s in &history {
                        tr.breached[s.cec_status == 255] {
                            td { (time(&s.change_time).map(local).unwrap_or_default()) }
                            td { (s.connector_id) }
                            td { (status_name(lang, s.cec_status)) }
                            td { (s.fault_code) " " (s.fault_text) }
                        }
                    }
                }
            }
        }
        p { a href="/fleet" { (t("pile.back")) } }
    };
    let title = format!("{} {}", t("wo.pile"), pile_id);
    (code, page(ctx, &title, notice.as_ref(), body)).into_response()
}

/// POST /fleet/{station}/{pile}/{suspend|resume}.
pub async fn act(
    State(app): State<Shared>,
    Path((station_id, pile_id, step)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/fleet/{station_id}/{pile_id}");
    let (ctx, session, form) = match app.posted(&headers, &path, &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let operator_id = session.person.operator_id.clone();
    let mut registry = app.gateway.asset();
    let done = match step.as_str() {
        "suspend" => registry
            .suspend_pile(as_person(
                &session.token,
                asset::SuspendPileRequest {
                    operator_id,
                    pile_id: pile_id.clone(),
                    reason: form.get("reason").parse().unwrap_or(0),
                    evidence_refs: form.list("evidence"),
                    note: form.get("note").to_owned(),
                },
            ))
            .await
            .map(drop),
        "resume" => registry
            .resume_pile(as_person(
                &session.token,
                asset::ResumePileRequest {
                    operator_id,
                    pile_id: pile_id.clone(),
                    note: form.get("note").to_owned(),
                },
            ))
            .await
            .map(drop),
        _ => return (StatusCode::NOT_FOUND, ctx.lang.t("error.not_found")).into_response(),
    };
    let ids = (station_id.as_str(), pile_id.as_str());
    settle(done, &format!("{path}?saved=1"), |notice, code| {
        render(&app, &ctx, &session, ids, Some(notice), &form, code)
    })
    .await
}
