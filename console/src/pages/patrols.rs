//! Patrols (REQ PATROL-1: normal patrols on their schedule; PATROL-2: special ones after a
//! trigger; PATROL-3: a failed checklist item becomes a defect): the open patrols with their
//! deadlines, each one's checklist to complete (a failed item with its defect class and plan),
//! and a patrol scheduled by hand.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use maud::{Markup, html};

use chargemesh_proto::dispatch::v1 as pb;

use crate::form::Form;
use crate::i18n::{Lang, local_input};
use crate::mesh::as_person;
use crate::pages::clock::{Clock, clock_cell, time};
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::{Saved, settle};
use crate::session::Session;
use crate::web::Shared;

const PATROLLERS: [&str; 4] = ["repairer", "monitor", "station_master", "safety_officer"];
const SCHEDULERS: [&str; 3] = ["monitor", "station_master", "om_manager"];

/// The checklist's results from the form: item `i` passed when `ok` carries `i`; a failed one
/// carries its note, defect class and plan.
pub fn results(checklist: &[String], form: &Form) -> Vec<pb::ChecklistResult> {
    let passed = form.all("ok");
    checklist
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let ok = passed.contains(&i.to_string());
            let class = form.get(&format!("class-{i}")).parse().unwrap_or(0);
            let plan = form.get(&format!("plan-{i}")).to_owned();
            let general = class == pb::DefectClass::General as i32;
            pb::ChecklistResult {
                item: item.clone(),
                ok,
                note: form.get(&format!("note-{i}")).to_owned(),
                defect_class: if ok { 0 } else { class },
                maintenance_plan: if !ok && general {
                    plan.clone()
                } else {
                    String::new()
                },
                elimination_plan: if !ok && !general { plan } else { String::new() },
            }
        })
        .collect()
}

/// GET /patrols.
pub async fn list(
    State(app): State<Shared>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/patrols") {
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

async fn open_patrols(app: &Shared, session: &Session) -> Result<Vec<pb::Patrol>, tonic::Status> {
    Ok(app
        .gateway
        .dispatch()
        .list_patrols(as_person(
            &session.token,
            pb::ListPatrolsRequest {
                operator_id: session.person.operator_id.clone(),
                open_only: true,
                page_size: 200,
                ..Default::default()
            },
        ))
        .await?
        .into_inner()
        .patrols)
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
    let (mut patrols, notice) = match open_patrols(app, session).await {
        Ok(patrols) => (patrols, notice),
        Err(status) => (
            Vec::new(),
            notice.or(Some(Notice::Refused(status.message().to_owned()))),
        ),
    };
    patrols.sort_by_key(|p| p.due_time.as_ref().map_or(i64::MAX, |t| t.seconds));
    let now = Utc::now();
    let patroller = session.person.any_role(&PATROLLERS);
    let body = html! {
        @if patrols.is_empty() { p { (t("pat.none")) } }
        @for p in &patrols {
            @let clock = time(&p.due_time).map(|due| Clock { what: "patrol", due, met: None });
            article.pile.breached[p.overdue] {
                h3 { (p.station_id) " · " @if p.kind == "special" { (t("pat.special")) } @else { (t("pat.normal")) } }
                dl.order { dt { (t("pat.due")) } dd { (clock_cell(lang, clock.as_ref(), now)) } }
                @if patroller { (complete_form(lang, &session.csrf, p, kept)) }
                @else {
                    ul { @for item in &p.checklist { li { (item) } } }
                }
            }
        }
        @if session.person.any_role(&SCHEDULERS) {
            h2 { (t("pat.schedule")) }
            form.step method="post" action="/patrols/new/schedule" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="station_id" { (t("wo.station")) }
                input id="station_id" name="station_id" required value=(kept.get("station_id"));
                label for="due" { (t("pat.due")) " " (t("ex.start")) }
                input id="due" name="due" type="datetime-local" required value=(kept.get("due"));
                button type="submit" { (t("pat.schedule")) }
            }
        }
    };
    (code, page(ctx, t("pat.title"), notice.as_ref(), body)).into_response()
}

fn complete_form(lang: Lang, csrf: &str, patrol: &pb::Patrol, kept: &Form) -> Markup {
    let t = |key| lang.t(key);
    html! {
        form.step method="post" action={ "/patrols/" (patrol.patrol_id) "/complete" } {
            input type="hidden" name="csrf" value=(csrf);
            @for (i, item) in patrol.checklist.iter().enumerate() {
                fieldset {
                    legend { (item) }
                    label { input type="checkbox" name="ok" value=(i) checked; " " (t("pat.ok")) }
                    label for={ "note-" (patrol.patrol_id) "-" (i) } { (t("pile.note")) }
                    input id={ "note-" (patrol.patrol_id) "-" (i) } name={ "note-" (i) } value=(kept.get(&format!("note-{i}")));
                    label for={ "class-" (patrol.patrol_id) "-" (i) } { (t("pat.if_failed")) }
                    select id={ "class-" (patrol.patrol_id) "-" (i) } name={ "class-" (i) } {
                        @for (class, key) in [(pb::DefectClass::General, "def.general"), (pb::DefectClass::Serious, "def.serious"), (pb::DefectClass::Critical, "def.critical")] {
                            option value=(class as i32) { (t(key)) }
                        }
                    }
                    input name={ "plan-" (i) } placeholder=(t("pat.plan")) aria-label=(t("pat.plan")) value=(kept.get(&format!("plan-{i}")));
                }
            }
            button type="submit" { (t("pat.complete")) }
        }
    }
}

/// POST /patrols/new/schedule and /patrols/{id}/complete.
pub async fn act(
    State(app): State<Shared>,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, session, form) = match app.posted(&headers, "/patrols", &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let operator_id = session.person.operator_id.clone();
    let mut dispatch = app.gateway.dispatch();
    let done = match (id.as_str(), step.as_str()) {
        ("new", "schedule") => match local_input("due", form.get("due")) {
            Ok(due) => dispatch
                .schedule_patrol(as_person(
                    &session.token,
                    pb::SchedulePatrolRequest {
                        operator_id,
                        station_id: form.get("station_id").to_owned(),
                        due_time: Some(due),
                    },
                ))
                .await
                .map(drop),
            Err(status) => Err(status),
        },
        (_, "complete") => {
            let checklist = open_patrols(&app, &session)
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|p| p.patrol_id == id))
                .map(|p| p.checklist)
                .unwrap_or_default();
            dispatch
                .complete_patrol(as_person(
                    &session.token,
                    pb::CompletePatrolRequest {
                        operator_id,
                        patrol_id: id.clone(),
                        results: results(&checklist, &form),
                    },
                ))
                .await
                .map(drop)
        }
        _ => return (StatusCode::NOT_FOUND, ctx.lang.t("error.not_found")).into_response(),
    };
    settle(done, "/patrols?saved=1", |notice, code| {
        render(&app, &ctx, &session, Some(notice), &form, code)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patrol_3_a_failed_item_carries_its_defect_class_and_the_plan_its_class_needs() {
        let checklist = vec!["canopy".to_owned(), "fire extinguisher".to_owned()];
        let form = Form::parse(b"ok=0&class-1=3&plan-1=monthly+plan&note-1=expired");
        let results = results(&checklist, &form);
        assert!(results[0].ok && results[0].defect_class == 0);
        assert!(!results[1].ok);
        assert_eq!(results[1].defect_class, pb::DefectClass::General as i32);
        assert_eq!(results[1].maintenance_plan, "monthly plan");
        assert!(results[1].elimination_plan.is_empty());
        let grave = results_of("class-1=1&plan-1=fence+off");
        assert_eq!(grave[1].elimination_plan, "fence off", "REQ DEF-2");
    }

    fn results_of(form: &str) -> Vec<pb::ChecklistResult> {
        results(
            &["a".into(), "b".into()],
            &Form::parse(format!("ok=0&{form}").as_bytes()),
        )
    }
}
