//! Maintenance plans (REQ MAINT-1: drafted by O&M, approved by an O&M manager; MAINT-2, MAINT-3:
//! carried out item by item, each with its record): the plans with what is done of them, the
//! draft form with the MAINT-3 items, the manager's approval, and an item's completion.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;

use chargemesh_proto::dispatch::v1 as pb;

use crate::form::Form;
use crate::i18n::{Lang, local};
use crate::mesh::as_person;
use crate::pages::clock::time;
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::{Saved, or_reason, settle};
use crate::session::Session;
use crate::web::Shared;

const DRAFTERS: [&str; 3] = ["repairer", "station_master", "om_manager"];
const APPROVERS: [&str; 1] = ["om_manager"];

/// The MAINT-3 items, with their words.
const ITEMS: [(&str, &str); 12] = [
    ("distribution_equipment", "plan.item.distribution"),
    ("charging_modes", "plan.item.modes"),
    ("communication", "plan.item.communication"),
    ("display", "plan.item.display"),
    ("input", "plan.item.input"),
    ("metering", "plan.item.metering"),
    ("cabinets_monitoring_signage", "plan.item.cabinets"),
    ("cleaning", "plan.item.cleaning"),
    ("lubrication", "plan.item.lubrication"),
    ("grounding_resistance_test", "plan.item.grounding"),
    ("annual_meter_verification", "plan.item.verification"),
    ("real_charging_test", "plan.item.charging_test"),
];

fn item_name(lang: Lang, item: &str) -> String {
    ITEMS
        .iter()
        .find(|(name, _)| *name == item)
        .map_or_else(|| item.to_owned(), |(_, key)| lang.t(key).to_owned())
}

/// The plan's items not yet carried out.
pub fn outstanding(plan: &pb::MaintenancePlan) -> Vec<&str> {
    plan.items
        .iter()
        .filter(|item| !plan.completions.iter().any(|c| &c.item == *item))
        .map(String::as_str)
        .collect()
}

/// GET /plans.
pub async fn list(
    State(app): State<Shared>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/plans") {
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
        .dispatch()
        .list_maintenance_plans(as_person(
            &session.token,
            pb::ListMaintenancePlansRequest {
                operator_id: session.person.operator_id.clone(),
                page_size: 200,
                ..Default::default()
            },
        ))
        .await;
    let (plans, notice) = or_reason(listed.map(|r| r.into_inner().plans), notice);
    let drafter = session.person.any_role(&DRAFTERS);
    let approver = session.person.any_role(&APPROVERS);
    let kept_items = kept.all("items");
    let body = html! {
        @if plans.is_empty() { p { (t("plan.none")) } }
        @for plan in &plans {
            @let approved = plan.state == pb::PlanState::Approved as i32;
            @let left = outstanding(plan);
            article.pile {
                h3 { (plan.title) " · " (plan.station_id) " · " (plan.period) }
                p.state { @if approved { (t("plan.approved")) " " (plan.approved_by) } @else { (t("plan.awaiting")) } }
                ul {
                    @for item in &plan.items {
                        li {
                            (item_name(lang, item))
                            @if let Some(done) = plan.completions.iter().find(|c| &c.item == item) {
                                " — " strong { (t("plan.done")) } " "
                                (time(&done.complete_time).map(local).unwrap_or_default()) " " (done.record)
                            }
                        }
                    }
                }
                @if approver && !approved {
                    form.step method="post" action={ "/plans/" (plan.plan_id) "/approve" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { (t("plan.approve")) }
                    }
                }
                @if drafter && approved && !left.is_empty() {
                    form.step method="post" action={ "/plans/" (plan.plan_id) "/complete" } {
                        input type="hidden" name="csrf" value=(session.csrf);
                        label for={ "item-" (plan.plan_id) } { (t("plan.item")) }
                        select id={ "item-" (plan.plan_id) } name="item" {
                            @for item in &left { option value=(item) { (item_name(lang, item)) } }
                        }
                        label for={ "record-" (plan.plan_id) } { (t("def.record")) }
                        textarea id={ "record-" (plan.plan_id) } name="record" rows="2" required { (kept.get("record")) }
                        button type="submit" { (t("plan.complete")) }
                    }
                }
            }
        }
        @if drafter {
            h2 { (t("plan.draft")) }
            form.step method="post" action="/plans/new/draft" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="station_id" { (t("wo.station")) }
                input id="station_id" name="station_id" required value=(kept.get("station_id"));
                label for="title" { (t("plan.title_field")) }
                input id="title" name="title" required value=(kept.get("title"));
                label for="period" { (t("plan.period")) }
                input id="period" name="period" required placeholder="2026-12" value=(kept.get("period"));
                fieldset {
                    legend { (t("plan.items")) }
                    @for (item, key) in ITEMS {
                        label { input type="checkbox" name="items" value=(item) checked[kept_items.iter().any(|k| k == item)]; " " (t(key)) }
                    }
                }
                button type="submit" { (t("plan.draft")) }
            }
        }
    };
    (code, page(ctx, t("plan.title"), notice.as_ref(), body)).into_response()
}

/// POST /plans/new/draft, /plans/{id}/approve and /plans/{id}/complete.
pub async fn act(
    State(app): State<Shared>,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (ctx, session, form) = match app.posted(&headers, "/plans", &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let operator_id = session.person.operator_id.clone();
    let token = session.token.as_str();
    let mut dispatch = app.gateway.dispatch();
    let done = match (id.as_str(), step.as_str()) {
        ("new", "draft") => dispatch
            .create_maintenance_plan(as_person(
                token,
                pb::CreateMaintenancePlanRequest {
                    plan: Some(pb::MaintenancePlan {
                        operator_id,
                        station_id: form.get("station_id").to_owned(),
                        title: form.get("title").to_owned(),
                        period: form.get("period").to_owned(),
                        items: form.all("items"),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .map(drop),
        (_, "approve") => dispatch
            .approve_maintenance_plan(as_person(
                token,
                pb::ApproveMaintenancePlanRequest {
                    operator_id,
                    plan_id: id.clone(),
                },
            ))
            .await
            .map(drop),
        (_, "complete") => dispatch
            .record_maintenance_completion(as_person(
                token,
                pb::RecordMaintenanceCompletionRequest {
                    operator_id,
                    plan_id: id.clone(),
                    item: form.get("item").to_owned(),
                    record: form.get("record").to_owned(),
                    ledger_change: None,
                },
            ))
            .await
            .map(drop),
        _ => return (StatusCode::NOT_FOUND, ctx.lang.t("error.not_found")).into_response(),
    };
    settle(done, "/plans?saved=1", |notice, code| {
        render(&app, &ctx, &session, Some(notice), &form, code)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maint_3_what_is_left_of_a_plan_is_the_items_without_a_completion() {
        let plan = pb::MaintenancePlan {
            items: vec!["metering".into(), "cleaning".into()],
            completions: vec![pb::MaintenanceCompletion {
                item: "cleaning".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(outstanding(&plan), ["metering"]);
        for (item, key) in ITEMS {
            assert_ne!(Lang::Zh.t(key), key, "{item} has words");
        }
    }
}
