//! Defects (REQ DEF-2: whoever finds one registers it, with an elimination plan for a critical
//! or serious one and a maintenance plan for a general one; DEF-3: critical ones within their
//! deadline, serious ones within theirs; DEF-4: management accepts the elimination): the open
//! defects by class with their deadlines running, the register form, and each defect's next
//! step for the posts that take it.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};

use chargemesh_proto::dispatch::v1 as pb;

use crate::form::Form;
use crate::i18n::{Lang, local};
use crate::mesh::as_person;
use crate::pages::clock::{Clock, clock_cell, time};
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::{Saved, or_reason, settle};
use crate::session::{Person, Session};
use crate::web::Shared;

/// Who registers a defect, eliminates one, accepts one (the gateway's policy has the last word).
const FINDERS: [&str; 5] = [
    "monitor",
    "repairer",
    "station_master",
    "safety_officer",
    "om_manager",
];
const ELIMINATORS: [&str; 3] = ["repairer", "station_master", "om_manager"];
const ACCEPTORS: [&str; 2] = ["station_master", "om_manager"];

/// The next step on a defect in `state` that `person` may take.
pub fn next_step(person: &Person, state: pb::DefectState) -> Option<&'static str> {
    match state {
        pb::DefectState::Open if person.any_role(&ELIMINATORS) => Some("eliminate"),
        pb::DefectState::Eliminated if person.any_role(&ACCEPTORS) => Some("accept"),
        _ => None,
    }
}

/// REQ DEF-3: the deadline still running on an open defect (general ones have none; an
/// eliminated one's has stopped, and the service says whether it was `overdue`).
pub fn deadline(defect: &pb::Defect) -> Option<Clock> {
    if defect.state != pb::DefectState::Open as i32 {
        return None;
    }
    Some(Clock {
        what: "defect",
        due: time(&defect.due_time)?,
        met: None,
    })
}

fn class_name(lang: Lang, class: i32) -> &'static str {
    match pb::DefectClass::try_from(class) {
        Ok(pb::DefectClass::Critical) => lang.t("def.critical"),
        Ok(pb::DefectClass::Serious) => lang.t("def.serious"),
        Ok(pb::DefectClass::General) => lang.t("def.general"),
        _ => "?",
    }
}

fn state_name(lang: Lang, state: i32) -> &'static str {
    match pb::DefectState::try_from(state) {
        Ok(pb::DefectState::Open) => lang.t("def.open"),
        Ok(pb::DefectState::Eliminated) => lang.t("def.eliminated"),
        Ok(pb::DefectState::Accepted) => lang.t("def.accepted"),
        _ => "?",
    }
}

/// GET /defects.
pub async fn list(
    State(app): State<Shared>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/defects") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let notice = saved.notice();
    render(
        &app,
        &ctx,
        &session,
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
    notice: Option<Notice>,
    kept: &Form,
    code: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let listed = app
        .gateway
        .dispatch()
        .list_defects(as_person(
            &session.token,
            pb::ListDefectsRequest {
                operator_id: session.person.operator_id.clone(),
                open_only: true,
                page_size: 500,
                ..Default::default()
            },
        ))
        .await;
    let (mut defects, notice) = or_reason(listed.map(|r| r.into_inner().defects), notice);
    // The gravest first, then the nearest deadline.
    defects.sort_by_key(|d| (d.class, d.due_time.as_ref().map_or(i64::MAX, |t| t.seconds)));
    let now = Utc::now();
    let body = html! {
        @if defects.is_empty() { p { (t("def.none")) } }
        @for d in &defects {
            @let clock = deadline(d);
            article.pile.breached[d.overdue || clock.as_ref().is_some_and(|c| c.breached(now))] {
                h3 { (class_name(lang, d.class)) " · " (d.station_id) " " (d.pile_id) " · " (state_name(lang, d.state)) }
                p { (d.description) }
                dl.order {
                    dt { (t("def.found")) } dd { (time(&d.found_time).map(local).unwrap_or_default()) " " (d.finder) }
                    @if clock.is_some() {
                        dt { (t("def.due")) } dd { (clock_cell(lang, clock.as_ref(), now)) }
                    }
                    @if d.overdue { dt { (t("def.due")) } dd { strong.badge { (t("wo.breached")) } } }
                    @if !d.elimination_plan.is_empty() { dt { (t("def.elimination_plan")) } dd { (d.elimination_plan) } }
                    @if !d.maintenance_plan.is_empty() { dt { (t("def.maintenance_plan")) } dd { (d.maintenance_plan) } }
                    @if !d.elimination_record.is_empty() { dt { (t("def.record")) } dd { (d.elimination_record) } }
                }
                @let state = pb::DefectState::try_from(d.state).unwrap_or_default();
                @if let Some(step) = next_step(&session.person, state) {
                    (step_form(lang, &session.csrf, &d.defect_id, step, kept))
                }
            }
        }
        @if session.person.any_role(&FINDERS) {
            h2 { (t("def.register")) }
            form.step method="post" action="/defects/new" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="station_id" { (t("wo.station")) }
                input id="station_id" name="station_id" required value=(kept.get("station_id"));
                label for="pile_id" { (t("wo.pile")) }
                input id="pile_id" name="pile_id" value=(kept.get("pile_id"));
                label for="class" { (t("def.class")) }
                select id="class" name="class" {
                    @for (class, key) in [(pb::DefectClass::Critical, "def.critical"), (pb::DefectClass::Serious, "def.serious"), (pb::DefectClass::General, "def.general")] {
                        option value=(class as i32) selected[kept.get("class") == (class as i32).to_string()] { (t(key)) }
                    }
                }
                label for="description" { (t("cmp.description")) }
                textarea id="description" name="description" rows="3" required { (kept.get("description")) }
                label for="elimination_plan" { (t("def.elimination_plan")) " " (t("def.for_grave")) }
                textarea id="elimination_plan" name="elimination_plan" rows="2" { (kept.get("elimination_plan")) }
                label for="maintenance_plan" { (t("def.maintenance_plan")) " " (t("def.for_general")) }
                input id="maintenance_plan" name="maintenance_plan" value=(kept.get("maintenance_plan"));
                button type="submit" { (t("def.register")) }
            }
        }
    };
    (code, page(ctx, t("def.title"), notice.as_ref(), body)).into_response()
}

fn step_form(lang: Lang, csrf: &str, id: &str, step: &str, kept: &Form) -> Markup {
    let t = |key| lang.t(key);
    html! {
        form.step method="post" action={ "/defects/" (id) "/" (step) } {
            input type="hidden" name="csrf" value=(csrf);
            @if step == "eliminate" {
                label for={ "record-" (id) } { (t("def.record")) }
                textarea id={ "record-" (id) } name="record" rows="2" required { (kept.get("record")) }
                button type="submit" { (t("def.eliminate")) }
            } @else {
                label { input type="radio" name="passed" value="true" checked; " " (t("def.pass")) }
                label { input type="radio" name="passed" value="false"; " " (t("def.fail")) }
                button type="submit" { (t("def.accept")) }
            }
        }
    }
}

/// POST /defects/new and /defects/{id}/{step}.
pub async fn act(
    State(app): State<Shared>,
    Path(target): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, session, form) = match app.posted(&headers, "/defects", &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let operator_id = session.person.operator_id.clone();
    let token = session.token.as_str();
    let mut dispatch = app.gateway.dispatch();
    let done = match target.split('/').collect::<Vec<_>>().as_slice() {
        ["new"] => dispatch
            .register_defect(as_person(
                token,
                pb::RegisterDefectRequest {
                    operator_id,
                    station_id: form.get("station_id").to_owned(),
                    pile_id: form.get("pile_id").to_owned(),
                    class: form.get("class").parse().unwrap_or(0),
                    description: form.get("description").to_owned(),
                    elimination_plan: form.get("elimination_plan").to_owned(),
                    maintenance_plan: form.get("maintenance_plan").to_owned(),
                },
            ))
            .await
            .map(drop),
        [id, "eliminate"] => dispatch
            .eliminate_defect(as_person(
                token,
                pb::EliminateDefectRequest {
                    operator_id,
                    defect_id: (*id).to_owned(),
                    record: form.get("record").to_owned(),
                },
            ))
            .await
            .map(drop),
        [id, "accept"] => dispatch
            .accept_defect(as_person(
                token,
                pb::AcceptDefectRequest {
                    operator_id,
                    defect_id: (*id).to_owned(),
                    passed: form.get("passed") != "false",
                },
            ))
            .await
            .map(drop),
        _ => return (StatusCode::NOT_FOUND, ctx.lang.t("error.not_found")).into_response(),
    };
    settle(done, "/defects?saved=1", |notice, code| {
        render(&app, &ctx, &session, Some(notice), &form, code)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(role: &str) -> Person {
        Person {
            subject: "p".into(),
            name: "P".into(),
            operator_id: "OP".into(),
            roles: vec![role.into()],
        }
    }

    #[test]
    fn def_4_the_repairer_eliminates_and_management_accepts() {
        use pb::DefectState as S;
        assert_eq!(next_step(&person("repairer"), S::Open), Some("eliminate"));
        assert_eq!(next_step(&person("repairer"), S::Eliminated), None);
        assert_eq!(
            next_step(&person("station_master"), S::Eliminated),
            Some("accept")
        );
        assert_eq!(next_step(&person("monitor"), S::Open), None);
        assert_eq!(next_step(&person("om_manager"), S::Accepted), None);
    }

    #[test]
    fn def_3_only_graded_defects_run_a_deadline() {
        let general = pb::Defect {
            state: pb::DefectState::Open as i32,
            ..Default::default()
        };
        assert!(deadline(&general).is_none());
        let past = Utc::now() - chrono::Duration::hours(1);
        let critical = pb::Defect {
            state: pb::DefectState::Open as i32,
            due_time: Some(prost_types::Timestamp {
                seconds: past.timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        };
        assert!(deadline(&critical).is_some_and(|c| c.breached(Utc::now())));
    }
}
