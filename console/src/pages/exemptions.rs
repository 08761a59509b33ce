//! Exemptions (REQ MON-9: time lost to the platform failing, controllers being upgraded, severe
//! weather or another external cause is left out of the availability and on-time figures once
//! management approves it): the declarations with their state, the form the monitor declares
//! one with (stations, period in Beijing time, cause, evidence), and the O&M manager's decision.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use chargemesh_proto::reporting::v1 as pb;

use crate::form::Form;
use crate::i18n::{Lang, local, local_input};
use crate::mesh::as_person;
use crate::pages::clock::time;
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::{Saved, or_reason, settle};
use crate::session::Session;
use crate::web::Shared;

const DECLARERS: [&str; 2] = ["monitor", "om_manager"];
const DECIDERS: [&str; 1] = ["om_manager"];

const CAUSES: [(pb::ExemptionCause, &str); 4] = [
    (pb::ExemptionCause::PlatformFailure, "ex.cause.platform"),
    (pb::ExemptionCause::TcuUpgrade, "ex.cause.tcu"),
    (pb::ExemptionCause::SevereWeather, "ex.cause.weather"),
    (pb::ExemptionCause::Other, "ex.cause.other"),
];

fn cause_name(lang: Lang, cause: i32) -> &'static str {
    CAUSES
        .iter()
        .find(|(c, _)| *c as i32 == cause)
        .map_or("?", |(_, key)| lang.t(key))
}

fn state_name(lang: Lang, state: i32) -> &'static str {
    match pb::ExemptionState::try_from(state) {
        Ok(pb::ExemptionState::Declared) => lang.t("ex.declared"),
        Ok(pb::ExemptionState::Approved) => lang.t("ex.approved"),
        Ok(pb::ExemptionState::Rejected) => lang.t("ex.rejected"),
        _ => "?",
    }
}

/// GET /exemptions.
pub async fn list(
    State(app): State<Shared>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/exemptions") {
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
        .reporting()
        .list_exemptions(as_person(
            &session.token,
            pb::ListExemptionsRequest {
                operator_id: session.person.operator_id.clone(),
                page_size: 200,
                ..Default::default()
            },
        ))
        .await;
    let (exemptions, notice) = or_reason(listed.map(|r| r.into_inner().exemptions), notice);
    let decider = session.person.any_role(&DECIDERS);
    let body = html! {
        @if exemptions.is_empty() { p { (t("ex.none")) } }
        @for e in &exemptions {
            article.pile {
                h3 { (cause_name(lang, e.cause)) " · " (state_name(lang, e.state)) }
                dl.order {
                    dt { (t("ex.stations")) } dd { (e.station_ids.join(", ")) }
                    dt { (t("ex.period")) }
                    dd { (time(&e.start_time).map(local).unwrap_or_default()) " – " (time(&e.end_time).map(local).unwrap_or_default()) }
                    @if !e.cause_text.is_empty() { dt { (t("ex.cause_text")) } dd { (e.cause_text) } }
                    dt { (t("pile.evidence")) } dd { (e.evidence_refs.join(", ")) }
                    dt { (t("ex.declared_by")) } dd { (e.declared_by) }
                }
                @if decider && e.state == pb::ExemptionState::Declared as i32 {
                    form.step method="post" action={ "/exemptions/" (e.exemption_id) "/decide" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        label for={ "note-" (e.exemption_id) } { (t("pile.note")) }
                        input id={ "note-" (e.exemption_id) } name="note" value=(kept.get("note"));
                        label { input type="radio" name="approve" value="true" checked; " " (t("ex.approve")) }
                        label { input type="radio" name="approve" value="false"; " " (t("ex.reject")) }
                        button type="submit" { (t("ex.decide")) }
                    }
                }
            }
        }
        @if session.person.any_role(&DECLARERS) {
            h2 { (t("ex.declare")) }
            form.step method="post" action="/exemptions/new/declare" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="stations" { (t("ex.stations")) " " (t("ex.one_per_line")) }
                textarea id="stations" name="stations" rows="2" required { (kept.get("stations")) }
                label for="start" { (t("ex.start")) }
                input id="start" name="start" type="datetime-local" required value=(kept.get("start"));
                label for="end" { (t("ex.end")) }
                input id="end" name="end" type="datetime-local" required value=(kept.get("end"));
                label for="cause" { (t("ex.cause")) }
                select id="cause" name="cause" {
                    @for (cause, key) in CAUSES {
                        option value=(cause as i32) selected[kept.get("cause") == (cause as i32).to_string()] { (t(key)) }
                    }
                }
                label for="cause_text" { (t("ex.cause_text")) }
                input id="cause_text" name="cause_text" value=(kept.get("cause_text"));
                label for="evidence" { (t("pile.evidence")) }
                textarea id="evidence" name="evidence" rows="2" required { (kept.get("evidence")) }
                button type="submit" { (t("ex.declare")) }
            }
        }
    };
    (code, page(ctx, t("ex.title"), notice.as_ref(), body)).into_response()
}

/// POST /exemptions/new/declare and /exemptions/{id}/decide.
pub async fn act(
    State(app): State<Shared>,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, session, form) = match app.posted(&headers, "/exemptions", &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let operator_id = session.person.operator_id.clone();
    let mut reporting = app.gateway.reporting();
    let done = match (id.as_str(), step.as_str()) {
        ("new", "declare") => match (
            local_input("start", form.get("start")),
            local_input("end", form.get("end")),
        ) {
            (Ok(start), Ok(end)) => reporting
                .declare_exemption(as_person(
                    &session.token,
                    pb::DeclareExemptionRequest {
                        exemption: Some(pb::Exemption {
                            operator_id,
                            station_ids: form.list("stations"),
                            start_time: Some(start),
                            end_time: Some(end),
                            cause: form.get("cause").parse().unwrap_or(0),
                            cause_text: form.get("cause_text").to_owned(),
                            evidence_refs: form.list("evidence"),
                            ..Default::default()
                        }),
                    },
                ))
                .await
                .map(drop),
            (Err(status), _) | (_, Err(status)) => Err(status),
        },
        (_, "decide") => reporting
            .decide_exemption(as_person(
                &session.token,
                pb::DecideExemptionRequest {
                    operator_id,
                    exemption_id: id.clone(),
                    approve: form.get("approve") != "false",
                    note: form.get("note").to_owned(),
                },
            ))
            .await
            .map(drop),
        _ => return (StatusCode::NOT_FOUND, ctx.lang.t("error.not_found")).into_response(),
    };
    settle(done, "/exemptions?saved=1", |notice, code| {
        render(&app, &ctx, &session, Some(notice), &form, code)
    })
    .await
}
