//! The complaint desk (REQ CMP-1: every complaint answered within 24 hours; CMP-4: the
//! lifecycle from acknowledgement through investigation, a promise, resolution, a revisit with
//! the customer's satisfaction, to the archive): the queue with its clocks, a complaint's page
//! with its record and the next step, and the form the desk takes a phone complaint with
//! (REQ CMP-2).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use chargemesh_proto::complaints::v1 as pb;

use crate::form::Form;
use crate::i18n::{Lang, local, local_input};
use crate::mesh::as_person;
use crate::pages::clock::{Clock, clock_cell, time};
use crate::pages::layout::{Ctx, Notice, page};
use crate::pages::outcome::{Saved, refusal_code, settle};
use crate::session::{Person, Session};
use crate::web::Shared;

/// Who works the desk (the gateway's policy has the last word).
const DESK: [&str; 2] = ["complaint_handler", "om_manager"];
/// Who may take a complaint down (REQ CMP-2).
const TAKERS: [&str; 4] = [
    "complaint_handler",
    "monitor",
    "station_master",
    "om_manager",
];

/// The time a complaint reached `state`, from its record.
fn reached(complaint: &pb::Complaint, state: pb::ComplaintState) -> Option<DateTime<Utc>> {
    complaint
        .steps
        .iter()
        .find(|s| s.state == state as i32)
        .and_then(|s| time(&s.step_time))
}

/// REQ CMP-1, CMP-4: the response clock (met by the acknowledgement) and the promise's (met by
/// the resolution).
pub fn clocks(complaint: &pb::Complaint) -> Vec<Clock> {
    let mut out = Vec::new();
    if let Some(due) = time(&complaint.response_due_time) {
        out.push(Clock {
            what: "response",
            due,
            met: reached(complaint, pb::ComplaintState::Acknowledged),
        });
    }
    if let Some(due) = time(&complaint.promise_due_time) {
        out.push(Clock {
            what: "promise",
            due,
            met: reached(complaint, pb::ComplaintState::Resolved),
        });
    }
    out
}

/// The next step of a complaint in `state` that `person` may take.
pub fn next_step(person: &Person, state: pb::ComplaintState) -> Option<&'static str> {
    use pb::ComplaintState as S;
    let step = match state {
        S::Received => "acknowledge",
        S::Acknowledged => "investigate",
        S::Investigating => "promise",
        S::Promised => "resolve",
        // The customer is called back by the desk itself.
        S::Resolved if person.has_role("complaint_handler") => return Some("revisit"),
        S::Resolved => return None,
        S::Revisited => "archive",
        _ => return None,
    };
    person.any_role(&DESK).then_some(step)
}

fn state_name(lang: Lang, state: i32) -> &'static str {
    use pb::ComplaintState as S;
    match S::try_from(state) {
        Ok(S::Received) => lang.t("cmp.state.received"),
        Ok(S::Acknowledged) => lang.t("cmp.state.acknowledged"),
        Ok(S::Investigating) => lang.t("cmp.state.investigating"),
        Ok(S::Promised) => lang.t("cmp.state.promised"),
        Ok(S::Resolved) => lang.t("cmp.state.resolved"),
        Ok(S::Revisited) => lang.t("cmp.state.revisited"),
        Ok(S::Archived) => lang.t("cmp.state.archived"),
        _ => "?",
    }
}

/// The categories a complaint is filed under, with their words.
pub const CATEGORIES: [(pb::ComplaintCategory, &str); 7] = [
    (
        pb::ComplaintCategory::ChargingFailure,
        "cmp.cat.charging_failure",
    ),
    (pb::ComplaintCategory::Billing, "cmp.cat.billing"),
    (pb::ComplaintCategory::Pricing, "cmp.cat.pricing"),
    (
        pb::ComplaintCategory::ServiceAttitude,
        "cmp.cat.service_attitude",
    ),
    (
        pb::ComplaintCategory::FacilitySafety,
        "cmp.cat.facility_safety",
    ),
    (pb::ComplaintCategory::Queueing, "cmp.cat.queueing"),
    (pb::ComplaintCategory::Other, "cmp.cat.other"),
];

pub fn category_name(lang: Lang, category: i32) -> &'static str {
    CATEGORIES
        .iter()
        .find(|(c, _)| *c as i32 == category)
        .map_or("?", |(_, key)| lang.t(key))
}

/// A category from its form value (its number), or none.
pub fn category_of(value: &str) -> pb::ComplaintCategory {
    value
        .parse::<i32>()
        .ok()
        .and_then(|v| pb::ComplaintCategory::try_from(v).ok())
        .unwrap_or(pb::ComplaintCategory::Unspecified)
}

/// GET /complaints: the queue, the nearest limit first.
pub async fn list(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/complaints") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let listed = app
        .gateway
        .complaints()
        .list_complaints(as_person(
            &session.token,
            pb::ListComplaintsRequest {
                operator_id: session.person.operator_id.clone(),
                page_size: 500,
                ..Default::default()
            },
        ))
        .await;
    let (mut queue, notice) = match listed {
        Ok(listed) => (listed.into_inner().complaints, None),
        Err(status) => (
            Vec::new(),
            Some(Notice::Refused(status.message().to_owned())),
        ),
    };
    let left = |q: &pb::QueuedComplaint| q.time_left.as_ref().map_or(i64::MAX, |d| d.seconds);
    queue.sort_by_key(left);
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let now = Utc::now();
    let body = html! {
        @if session.person.any_role(&TAKERS) {
            p { a href="/complaints/new" { (t("cmp.new")) } }
        }
        @if queue.is_empty() {
            p { (t("cmp.none")) }
        } @else {
            table.orders {
                thead { tr {
                    th { (t("cmp.id")) } th { (t("cmp.received")) } th { (t("cmp.category")) }
                    th { (t("wo.station")) } th { (t("wo.state")) } th { (t("cmp.clock")) }
                } }
                tbody {
                    @for queued in &queue {
                        @let Some(c) = &queued.complaint else { continue };
                        @let clocks = clocks(c);
                        @let running = clocks.iter().find(|k| k.what == queued.next_limit);
                        tr.breached[clocks.iter().any(|k| k.breached(now))] {
                            td { a href={ "/complaints/" (c.complaint_id) } { (c.complaint_id) } }
                            td { (time(&c.receive_time).map(local).unwrap_or_default()) }
                            td { (category_name(lang, c.category)) }
                            td { (c.station_id) }
                            td { (state_name(lang, c.state)) }
                            td { (clock_cell(lang, running, now)) }
                        }
                    }
                }
            }
        }
    };
    page(&ctx, t("cmp.title"), notice.as_ref(), body).into_response()
}

/// GET /complaints/{id}.
pub async fn detail(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(saved): Query<Saved>,
    headers: HeaderMap,
) -> Response {
    let (ctx, session) = match app.signed_in(&headers, &format!("/complaints/{id}")) {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    let notice = saved.notice();
    render(
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

/// POST /complaints/{id}/{step}.
pub async fn act(
    State(app): State<Shared>,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/complaints/{id}");
    let (ctx, session, form) = match app.posted(&headers, &path, &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let operator_id = session.person.operator_id.clone();
    let token = session.token.as_str();
    let mut desk = app.gateway.complaints();
    let complaint_id = id.clone();
    let done = match step.as_str() {
        "acknowledge" => desk
            .acknowledge_complaint(as_person(
                token,
                pb::AcknowledgeComplaintRequest {
                    operator_id,
                    complaint_id,
                    reply: form.get("reply").to_owned(),
                },
            ))
            .await
            .map(drop),
        "investigate" => desk
            .investigate_complaint(as_person(
                token,
                pb::InvestigateComplaintRequest {
                    operator_id,
                    complaint_id,
                    event: form.get("event").to_owned(),
                    responsible_party: form.get("responsible_party").to_owned(),
                },
            ))
            .await
            .map(drop),
        "promise" => match local_input("due", form.get("due")) {
            Ok(due) => desk
                .promise_resolution(as_person(
                    token,
                    pb::PromiseResolutionRequest {
                        operator_id,
                        complaint_id,
                        handling: form.get("handling").to_owned(),
                        reply: form.get("reply").to_owned(),
                        due_time: Some(due),
                    },
                ))
                .await
                .map(drop),
            Err(status) => Err(status),
        },
        "resolve" => desk
            .resolve_complaint(as_person(
                token,
                pb::ResolveComplaintRequest {
                    operator_id,
                    complaint_id,
                    record: form.get("record").to_owned(),
                },
            ))
            .await
            .map(drop),
        "revisit" => desk
            .revisit_complaint(as_person(
                token,
                pb::RevisitComplaintRequest {
                    operator_id,
                    complaint_id,
                    satisfaction: form.get("satisfaction").parse().unwrap_or(0),
                    comment: form.get("comment").to_owned(),
                },
            ))
            .await
            .map(drop),
        "archive" => desk
            .archive_complaint(as_person(
                token,
                pb::ArchiveComplaintRequest {
                    operator_id,
                    complaint_id,
                },
            ))
            .await
            .map(drop),
        _ => return (StatusCode::NOT_FOUND, ctx.lang.t("error.not_found")).into_response(),
    };
    settle(done, &format!("{path}?saved=1"), |notice, code| {
        render(&app, &ctx, &session, &id, Some(notice), &form, code)
    })
    .await
}

async fn render(
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
        .complaints()
        .get_complaint(as_person(
            &session.token,
            pb::GetComplaintRequest {
                operator_id: session.person.operator_id.clone(),
                complaint_id: id.to_owned(),
            },
        ))
        .await;
    let complaint = match got.map(|r| r.into_inner().complaint) {
        Ok(Some(complaint)) => complaint,
        Ok(None) => return (StatusCode::NOT_FOUND, t("error.not_found")).into_response(),
        Err(status) => {
            let body = html! { p { a href="/complaints" { (t("cmp.back")) } } };
            let refused = Notice::Refused(status.message().to_owned());
            return (StatusCode::NOT_FOUND, page(ctx, id, Some(&refused), body)).into_response();
        }
    };
    let now = Utc::now();
    let clocks = clocks(&complaint);
    let state = pb::ComplaintState::try_from(complaint.state).unwrap_or_default();
    let step = next_step(&session.person, state);
    let body = html! {
        dl.order {
            dt { (t("cmp.category")) } dd { (category_name(lang, complaint.category)) }
            dt { (t("wo.station")) } dd { (complaint.station_id) " " (complaint.pile_id) }
            dt { (t("cmp.description")) } dd { (complaint.description) }
            dt { (t("cmp.contact")) } dd { (complaint.customer_contact) }
            dt { (t("wo.state")) } dd.state { (state_name(lang, complaint.state)) }
            dt { (t("cmp.response_due")) }
            dd { (clock_cell(lang, clocks.iter().find(|c| c.what == "response"), now)) }
            @if let Some(promise) = clocks.iter().find(|c| c.what == "promise") {
                dt { (t("cmp.promise_due")) } dd { (clock_cell(lang, Some(promise), now)) }
            }
            @if complaint.satisfaction > 0 {
                dt { (t("cmp.satisfaction")) } dd { (complaint.satisfaction) " / 5" }
            }
        }
        h2 { (t("cmp.record")) }
        ol.steps {
            @for s in &complaint.steps {
                li {
                    (time(&s.step_time).map(local).unwrap_or_default()) " "
                    strong { (state_name(lang, s.state)) } " " (s.by)
                    @if !s.note.is_empty() { " — " (s.note) }
                }
            }
        }
        @if let Some(step) = step {
            (step_form(lang, &session.csrf, id, step, kept))
        }
        p { a href="/complaints" { (t("cmp.back")) } }
    };
    let title = format!("{} {}", t("cmp.id"), id);
    (code, page(ctx, &title, notice.as_ref(), body)).into_response()
}

fn step_form(lang: Lang, csrf: &str, id: &str, step: &str, kept: &Form) -> Markup {
    let t = |key| lang.t(key);
    let area = |name: &'static str, label: &'static str| {
        html! {
            label for=(name) { (t(label)) }
            textarea id=(name) name=(name) rows="3" required { (kept.get(name)) }
        }
    };
    html! {
        form.step method="post" action={ "/complaints/" (id) "/" (step) } {
            input type="hidden" name="csrf" value=(csrf);
            @match step {
                "acknowledge" => {
                    (area("reply", "cmp.reply"))
                    button type="submit" { (t("cmp.acknowledge")) }
                }
                "investigate" => {
                    (area("event", "cmp.event"))
                    label for="responsible_party" { (t("cmp.responsible")) }
                    input id="responsible_party" name="responsible_party" required
                        value=(kept.get("responsible_party"));
                    button type="submit" { (t("cmp.investigate")) }
                }
                "promise" => {
                    (area("handling", "cmp.handling"))
                    (area("reply", "cmp.reply"))
                    label for="due" { (t("cmp.due")) }
                    input id="due" name="due" type="datetime-local" required value=(kept.get("due"));
                    button type="submit" { (t("cmp.promise")) }
                }
                "resolve" => {
                    (area("record", "cmp.resolution"))
                    button type="submit" { (t("cmp.resolve")) }
                }
                "revisit" => {
                    label for="satisfaction" { (t("cmp.satisfaction")) }
                    select id="satisfaction" name="satisfaction" {
                        @for n in (1..=5).rev() {
                            option value=(n) selected[kept.get("satisfaction") == n.to_string()] { (n) }
                        }
                    }
                    (area("comment", "cmp.comment"))
                    button type="submit" { (t("cmp.revisit")) }
                }
                _ => {
                    button type="submit" { (t("cmp.archive")) }
                }
            }
        }
    }
}

/// GET /complaints/new: the desk takes a complaint down.
pub async fn new_form(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let (ctx, session) = match app.signed_in(&headers, "/complaints/new") {
        Ok(signed_in) => signed_in,
        Err(redirect) => return redirect.into_response(),
    };
    new_page(&ctx, &session, None, &Form::default(), StatusCode::OK)
}

fn new_page(
    ctx: &Ctx,
    session: &Session,
    notice: Option<Notice>,
    kept: &Form,
    code: StatusCode,
) -> Response {
    let lang = ctx.lang;
    let t = |key| lang.t(key);
    let body = html! {
        form.step method="post" action="/complaints/new" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="category" { (t("cmp.category")) }
            select id="category" name="category" {
                @for (category, key) in CATEGORIES {
                    option value=(category as i32)
                        selected[kept.get("category") == (category as i32).to_string()] { (t(key)) }
                }
            }
            label for="station_id" { (t("wo.station")) }
            input id="station_id" name="station_id" required value=(kept.get("station_id"));
            label for="pile_id" { (t("wo.pile")) }
            input id="pile_id" name="pile_id" value=(kept.get("pile_id"));
            label for="customer_contact" { (t("cmp.contact")) }
            input id="customer_contact" name="customer_contact" value=(kept.get("customer_contact"));
            label for="description" { (t("cmp.description")) }
            textarea id="description" name="description" rows="4" required { (kept.get("description")) }
            button type="submit" { (t("cmp.submit")) }
        }
    };
    (code, page(ctx, t("cmp.new"), notice.as_ref(), body)).into_response()
}

/// POST /complaints/new.
pub async fn submit(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let (ctx, session, form) = match app.posted(&headers, "/complaints/new", &body) {
        Ok(posted) => posted,
        Err(not_taken) => return not_taken.into_response(),
    };
    let submitted = app
        .gateway
        .complaints()
        .submit_complaint(as_person(
            &session.token,
            pb::SubmitComplaintRequest {
                complaint: Some(pb::Complaint {
                    operator_id: session.person.operator_id.clone(),
                    kind: pb::ComplaintKind::Complaint as i32,
                    channel: pb::ComplaintChannel::Phone as i32,
                    category: category_of(form.get("category")) as i32,
                    customer_contact: form.get("customer_contact").to_owned(),
                    station_id: form.get("station_id").to_owned(),
                    pile_id: form.get("pile_id").to_owned(),
                    description: form.get("description").to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await;
    match submitted.map(|r| r.into_inner().complaint) {
        Ok(Some(c)) => {
            Redirect::to(&format!("/complaints/{}?saved=1", c.complaint_id)).into_response()
        }
        Ok(None) => Redirect::to("/complaints").into_response(),
        Err(status) => new_page(
            &ctx,
            &session,
            Some(Notice::Refused(status.message().to_owned())),
            &form,
            refusal_code(&status),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: 1_780_000_000 + hours * 3600,
            nanos: 0,
        })
    }

    #[test]
    fn cmp_1_the_response_clock_runs_until_the_acknowledgement() {
        let mut complaint = pb::Complaint {
            receive_time: at(0),
            response_due_time: at(24),
            ..Default::default()
        };
        let now = DateTime::from_timestamp(1_780_000_000 + 25 * 3600, 0).expect("now");
        assert!(clocks(&complaint)[0].breached(now), "unanswered after 25 h");
        complaint.steps.push(pb::ComplaintStep {
            state: pb::ComplaintState::Acknowledged as i32,
            step_time: at(23),
            ..Default::default()
        });
        let clock = &clocks(&complaint)[0];
        assert!(
            !clock.breached(now) && clock.met.is_some(),
            "answered at 23 h"
        );
    }

    #[test]
    fn cmp_4_the_desk_takes_each_step_and_only_the_desk_calls_the_customer_back() {
        let handler = Person {
            subject: "h".into(),
            name: "H".into(),
            operator_id: "OP".into(),
            roles: vec!["complaint_handler".into()],
        };
        let manager = Person {
            roles: vec!["om_manager".into()],
            ..handler.clone()
        };
        let monitor = Person {
            roles: vec!["monitor".into()],
            ..handler.clone()
        };
        use pb::ComplaintState as S;
        assert_eq!(next_step(&handler, S::Received), Some("acknowledge"));
        assert_eq!(next_step(&handler, S::Investigating), Some("promise"));
        assert_eq!(next_step(&handler, S::Resolved), Some("revisit"));
        assert_eq!(next_step(&manager, S::Resolved), None);
        assert_eq!(next_step(&manager, S::Revisited), Some("archive"));
        assert_eq!(next_step(&monitor, S::Received), None);
        assert_eq!(next_step(&handler, S::Archived), None);
    }

    #[test]
    fn a_promise_is_read_in_china_standard_time() {
        let due = local_input("due", "2026-12-08T18:00").expect("due");
        let utc = DateTime::parse_from_rfc3339("2026-12-08T10:00:00Z").expect("time");
        assert_eq!(due.seconds, utc.timestamp());
        assert!(local_input("due", "tomorrow").is_err());
    }
}
